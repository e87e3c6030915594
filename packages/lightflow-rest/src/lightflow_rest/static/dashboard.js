/* The dashboard: runs (live), a run (its DAGs drawn and coloured live, log tail,
 * errors, stop), the start form built from a workflow's parameters, the workers.
 *
 * Views are chosen by the URL's hash (#/runs, #/runs/ID, #/start, #/start/NAME,
 * #/workers); leaving a view aborts its event streams. DAGs are laid out here:
 * each task's column is the length of the longest path to it from a task without
 * predecessors, and tasks keep their definition order within a column.
 */
"use strict";

(() => {
  const { call, follow, el, showMessage, time, duration } = Lightflow;
  const view = document.getElementById("view");
  let streams = new AbortController();
  let role = null;

  const FINISHED = ["succeeded", "failed", "stopped", "aborted"];
  const NODE = { width: 140, height: 34, column: 190, row: 56, margin: 20 };

  function stateBadge(state) {
    return el("span", { class: "state state-" + state, "data-state": state, text: state });
  }

  /* Answer of a call, or null after showing its error. */
  async function fetchData(method, path, body) {
    const answer = await call(method, path, body);
    if (answer.status >= 400) {
      showMessage(answer.data && answer.data.error ? answer.data.error : "HTTP " + answer.status);
      return null;
    }
    return answer.data;
  }

  async function checkToken() {
    const answer = await call("GET", "/api/v2/token");
    role = answer.status === 200 ? answer.data.role : null;
    document.getElementById("role").textContent = role ? "role: " + role : "";
    if (!role) showMessage("Enter an API token (extensions.rest.tokens) to see the runs.", "info");
    return role;
  }

  // -- runs ----------------------------------------------------------------------------

  async function showRuns() {
    const table = el("table", { id: "runs" },
      el("thead", {}, el("tr", {}, ["Run", "Workflow", "State", "Created", "Duration", "Error"].map((h) => el("th", { text: h })))),
      el("tbody", {}));
    const live = el("span", { class: "live", id: "runs-live" });
    view.replaceChildren(el("h2", {}, "Runs", live), table);
    let pending = null;
    const refresh = async () => {
      pending = null;
      const data = await fetchData("GET", "/api/v2/runs?limit=100");
      if (!data) return;
      table.tBodies[0].replaceChildren(...data.runs.map((run) => el("tr", {
        class: "clickable", "data-run": run.id, onclick: () => { location.hash = "#/runs/" + run.id; },
      },
        el("td", {}, el("code", { text: run.id.slice(0, 12) })),
        el("td", { text: run.workflow }),
        el("td", {}, stateBadge(run.state)),
        el("td", { text: time(run.created) }),
        el("td", { text: duration(run.duration) }),
        el("td", { text: run.error || "" }))));
    };
    await refresh();
    follow("/api/v2/events", () => { if (!pending) pending = setTimeout(refresh, 250); }, streams.signal,
      (up) => { live.textContent = up ? "● live" : "reconnecting…"; });
  }

  // -- one run -------------------------------------------------------------------------

  function layout(tasks, edges) {
    const predecessors = new Map(tasks.map((t) => [t, []]));
    for (const edge of edges) if (predecessors.has(edge.to)) predecessors.get(edge.to).push(edge.from);
    const column = new Map();
    const depth = (task, seen) => {
      if (column.has(task)) return column.get(task);
      if (seen.has(task)) return 0;
      seen.add(task);
      const before = predecessors.get(task) || [];
      const value = before.length ? 1 + Math.max(...before.map((p) => depth(p, seen))) : 0;
      column.set(task, value);
      return value;
    };
    tasks.forEach((task) => depth(task, new Set()));
    const rows = new Map();
    const position = new Map();
    for (const task of tasks) {
      const c = column.get(task);
      const r = rows.get(c) || 0;
      rows.set(c, r + 1);
      position.set(task, { x: NODE.margin + c * NODE.column, y: NODE.margin + r * NODE.row });
    }
    return position;
  }

  function drawDag(name, tasks, edges) {
    const position = layout(tasks, edges);
    const xs = [...position.values()].map((p) => p.x);
    const ys = [...position.values()].map((p) => p.y);
    const width = Math.max(...xs, 0) + NODE.width + NODE.margin;
    const height = Math.max(...ys, 0) + NODE.height + NODE.margin;
    const marker = "arrow-" + name.replace(/[^A-Za-z0-9_-]/g, "_");
    const svg = el("svg", { class: "dag", "data-dag": name, width, height, viewBox: `0 0 ${width} ${height}` },
      el("defs", {}, el("marker", { id: marker, viewBox: "0 0 10 10", refX: 10, refY: 5, markerWidth: 7, markerHeight: 7, orient: "auto" },
        el("path", { class: "arrow", d: "M 0 0 L 10 5 L 0 10 z" }))));
    for (const edge of edges) {
      const from = position.get(edge.from);
      const to = position.get(edge.to);
      if (!from || !to) continue;
      const x1 = from.x + NODE.width, y1 = from.y + NODE.height / 2;
      const x2 = to.x, y2 = to.y + NODE.height / 2;
      const bend = (x2 - x1) / 2;
      svg.append(el("path", { class: "edge", d: `M ${x1} ${y1} C ${x1 + bend} ${y1}, ${x2 - bend} ${y2}, ${x2} ${y2}`, "marker-end": `url(#${marker})` }));
    }
    for (const task of tasks) {
      const p = position.get(task);
      svg.append(el("g", { class: "task state-pending", "data-task": task, "data-state": "pending", transform: `translate(${p.x},${p.y})` },
        el("title", { text: task }),
        el("rect", { width: NODE.width, height: NODE.height }),
        el("text", { x: NODE.width / 2, y: NODE.height / 2, text: task.length > 18 ? task.slice(0, 17) + "…" : task })));
    }
    return svg;
  }

  function setTaskState(dag, task, state) {
    const node = view.querySelector(`svg.dag[data-dag="${CSS.escape(dag)}"] g.task[data-task="${CSS.escape(task)}"]`);
    if (!node) return false;
    node.setAttribute("class", "task state-" + state);
    node.setAttribute("data-state", state);
    return true;
  }

  async function showRun(runId) {
    const run = await fetchData("GET", "/api/v2/runs/" + encodeURIComponent(runId));
    if (!run) return;
    const graph = await call("GET", "/api/v2/workflows/" + encodeURIComponent(run.workflow) + "/graph");
    const shapes = new Map(graph.status === 200 ? graph.data.dags.map((d) => [d.name, d]) : []);
    const facts = el("dl", { class: "facts" });
    const stop = el("button", { class: "danger", id: "stop", text: "Stop run", onclick: () => stopRun(run.id) });
    const dags = el("div", { id: "dags" });
    const errors = el("div", { id: "errors" });
    const log = el("pre", { class: "log", id: "log" });
    const live = el("span", { class: "live", id: "run-live" });
    view.replaceChildren(
      el("h2", {}, "Run ", el("code", { text: run.id }), live),
      facts, role === "operate" ? stop : null,
      el("h3", { text: "DAGs" }), dags, legend(), errors,
      el("h3", { text: "Log" }), log);

    const drawn = new Set();
    const ensureDag = (instance, tasksSeen) => {
      if (drawn.has(instance)) return;
      const shape = shapes.get(instance.split(":")[0]);
      const tasks = shape ? shape.tasks.map((t) => t.name) : tasksSeen;
      dags.append(el("h4", { text: instance }), drawDag(instance, tasks, shape ? shape.edges : []));
      drawn.add(instance);
    };

    const render = (detail) => {
      facts.replaceChildren(
        el("dt", { text: "Workflow" }), el("dd", { text: detail.workflow }),
        el("dt", { text: "State" }), el("dd", { id: "run-state" }, stateBadge(detail.state)),
        el("dt", { text: "Started" }), el("dd", { text: time(detail.started) }),
        el("dt", { text: "Ended" }), el("dd", { text: time(detail.ended) }),
        el("dt", { text: "Duration" }), el("dd", { text: duration(detail.duration) }),
        el("dt", { text: "Arguments" }), el("dd", {}, el("code", { text: JSON.stringify(detail.arguments) })));
      stop.disabled = FINISHED.includes(detail.state);
      for (const dag of detail.dags) {
        ensureDag(dag.name, dag.tasks.map((t) => t.name));
        for (const task of dag.tasks) setTaskState(dag.name, task.name, task.state);
      }
      errors.replaceChildren();
      const failed = detail.dags.flatMap((d) => d.tasks.filter((t) => t.message).map((t) => [d.name, t]));
      if (detail.error || failed.length) errors.append(el("h3", { text: "Errors" }));
      if (detail.error) errors.append(el("p", { class: "run-error", text: detail.error }));
      for (const [dag, task] of failed) {
        errors.append(el("p", {}, el("strong", { text: `${dag}/${task.name} (${task.state}): ` }), task.message));
        if (task.traceback) errors.append(el("pre", { class: "traceback", text: task.traceback }));
      }
    };
    for (const [name, shape] of shapes) if (shape.autostart) ensureDag(name, []);
    render(run);

    let refreshing = null;
    const refresh = async () => {
      refreshing = null;
      const detail = await fetchData("GET", "/api/v2/runs/" + encodeURIComponent(run.id));
      if (detail) render(detail);
    };
    follow("/api/v2/runs/" + encodeURIComponent(run.id) + "/events", (message) => {
      const event = message.data;
      if (message.event === "end" || !event.kind) { refresh(); return; }
      if (event.task && event.dag) {
        ensureDag(event.dag, [event.task]);
        if (!setTaskState(event.dag, event.task, event.kind.replace("task_", ""))) refreshTimer();
      }
      if (!event.task) refreshTimer();
    }, streams.signal, (up) => { live.textContent = up ? "● live" : "reconnecting…"; });
    function refreshTimer() { if (!refreshing) refreshing = setTimeout(refresh, 200); }

    follow("/api/v2/runs/" + encodeURIComponent(run.id) + "/logs/stream", (message) => {
      if (message.event === "end") return;
      log.append(message.data + "\n");
      while (log.childNodes.length > 500) log.firstChild.remove();
      log.scrollTop = log.scrollHeight;
    }, streams.signal);
  }

  function legend() {
    return el("p", { class: "legend" },
      ["pending", "started", "succeeded", "failed", "stopped", "skipped", "cancelled", "aborted"].map(stateBadge));
  }

  async function stopRun(runId) {
    const button = document.getElementById("stop");
    button.disabled = true;
    const answer = await fetchData("POST", "/api/v2/runs/" + encodeURIComponent(runId) + "/stop");
    if (answer) showMessage(answer.stopped ? "The run was asked to stop." : "The run had already ended.", "info");
  }

  // -- starting ------------------------------------------------------------------------

  async function showWorkflows() {
    const data = await fetchData("GET", "/api/v2/workflows");
    if (!data) return;
    view.replaceChildren(el("h2", { text: "Start a run" }), el("table", { id: "workflows" },
      el("thead", {}, el("tr", {}, el("th", { text: "Workflow" }), el("th", { text: "Summary" }))),
      el("tbody", {}, data.workflows.map((w) => el("tr", {
        class: "clickable", "data-workflow": w.name, onclick: () => { location.hash = "#/start/" + w.name; },
      }, el("td", {}, el("code", { text: w.name })), el("td", { text: w.error || w.summary }))))));
  }

  async function showStartForm(name) {
    const workflow = await fetchData("GET", "/api/v2/workflows/" + encodeURIComponent(name));
    if (!workflow) return;
    const inputs = new Map();
    const fields = workflow.parameters.map((p) => {
      const id = "param-" + p.name;
      let input;
      if (p.type === "bool") {
        input = el("input", { type: "checkbox", id, name: p.name, checked: p.default === true });
      } else {
        const numeric = p.type === "int" || p.type === "float";
        input = el("input", {
          type: numeric ? "number" : "text", step: p.type === "float" ? "any" : null, id, name: p.name,
          value: p.default === null ? "" : String(p.default), required: p.required,
        });
      }
      inputs.set(p.name, [p, input]);
      return el("div", {}, el("label", { for: id }, p.name + (p.required ? " *" : ""),
        el("span", { class: "help", text: `${p.type}${p.help ? " — " + p.help : ""}` })), input);
    });
    const keep = el("input", { type: "checkbox", id: "keep-data" });
    const form = el("form", { class: "start", id: "start-form" },
      fields, el("label", { for: "keep-data" }, keep, " keep the run's data store"),
      el("p", {}, el("button", { class: "primary", type: "submit", id: "start", text: "Start run" })));
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const argumentsGiven = {};
      for (const [parameter, input] of inputs.values()) {
        if (parameter.type === "bool") argumentsGiven[parameter.name] = input.checked ? "true" : "false";
        else if (input.value !== "") argumentsGiven[parameter.name] = input.value;
      }
      const answer = await fetchData("POST", "/api/v2/runs", { workflow: name, arguments: argumentsGiven, keep_data: keep.checked });
      if (answer) { showMessage(""); location.hash = "#/runs/" + answer.id; }
    });
    view.replaceChildren(el("h2", {}, "Start ", el("code", { text: name })),
      el("p", { text: workflow.docstring }), role === "operate" ? form : el("p", { text: "Starting a run needs a token with the operate role." }));
  }

  // -- workers -------------------------------------------------------------------------

  async function showWorkers() {
    const data = await fetchData("GET", "/api/v2/workers");
    if (!data) return;
    view.replaceChildren(el("h2", { text: "Workers" }), el("table", { id: "workers" },
      el("thead", {}, el("tr", {}, ["Worker", "State", "Queues", "Concurrency", "PID", "Jobs now"].map((h) => el("th", { text: h })))),
      el("tbody", {}, data.workers.map((w) => el("tr", { "data-worker": w.name },
        el("td", {}, el("code", { text: w.name })), el("td", {}, stateBadge(w.state)),
        el("td", { text: w.queues.join(", ") }), el("td", { text: w.concurrency ?? "" }),
        el("td", { text: w.pid ?? "" }), el("td", { text: w.running === null ? "?" : String(w.running.length) }))))));
  }

  // -- routing -------------------------------------------------------------------------

  async function route() {
    streams.abort();
    streams = new AbortController();
    const parts = (location.hash || "#/runs").slice(2).split("/").map(decodeURIComponent);
    for (const link of document.querySelectorAll("header nav a")) {
      link.classList.toggle("active", link.getAttribute("href") === "#/" + parts[0]);
    }
    showMessage("");
    if (!(await checkToken())) { view.replaceChildren(); return; }
    if (parts[0] === "runs" && parts[1]) return showRun(parts[1]);
    if (parts[0] === "start" && parts[1]) return showStartForm(parts[1]);
    if (parts[0] === "start") return showWorkflows();
    if (parts[0] === "workers") return showWorkers();
    return showRuns();
  }

  Lightflow.tokenForm(route);
  window.addEventListener("hashchange", route);
  route();
})();
