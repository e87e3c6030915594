/* The API explorer: every operation of /api/v2/openapi.json, to read and to try.
 *
 * Each operation shows its description, a field per parameter and, for a body, a
 * JSON example built from its schema (or key=value lines for the form-encoded 1.x
 * start); "Send" makes the call with the token and shows the status and the answer.
 * An event stream is shown for five seconds, then closed.
 */
"use strict";

(() => {
  const { call, el, headers, showMessage } = Lightflow;
  const view = document.getElementById("view");

  function resolve(schema, components) {
    return schema && schema.$ref ? components[schema.$ref.split("/").pop()] : schema;
  }

  function example(schema, components) {
    schema = resolve(schema, components) || {};
    if (schema.default !== undefined) return schema.default;
    if (schema.enum) return schema.enum[0];
    switch (schema.type) {
      case "object": {
        const value = {};
        for (const name of schema.required || []) value[name] = example(schema.properties[name], components);
        return value;
      }
      case "array": return [];
      case "integer": case "number": return 0;
      case "boolean": return false;
      default: return "";
    }
  }

  async function send(method, path, operation, inputs, body, output) {
    let url = path;
    const query = new URLSearchParams();
    const extra = {};
    for (const parameter of operation.parameters || []) {
      const value = inputs.get(parameter.name).value;
      if (value === "") continue;
      if (parameter.in === "path") url = url.replace("{" + parameter.name + "}", encodeURIComponent(value));
      else if (parameter.in === "header") extra[parameter.name] = value;
      else query.append(parameter.name, value);
    }
    if ([...query].length) url += "?" + query;
    const options = { method: method.toUpperCase(), headers: headers(extra) };
    if (body) {
      const form = body.dataset.media !== "application/json";
      options.headers["Content-Type"] = body.dataset.media;
      options.body = form ? new URLSearchParams(body.value.split("\n").filter(Boolean).map((l) => l.split("=", 2))) : body.value;
    }
    const controller = new AbortController();
    options.signal = controller.signal;
    output.textContent = options.method + " " + url + "\n…";
    try {
      const response = await fetch(url, options);
      let text;
      if ((response.headers.get("Content-Type") || "").startsWith("text/event-stream")) {
        setTimeout(() => controller.abort(), 5000);
        text = "";
        const reader = response.body.getReader();
        const decoder = new TextDecoder();
        try {
          for (;;) {
            const { value, done } = await reader.read();
            if (done) break;
            text += decoder.decode(value, { stream: true });
            output.textContent = `${response.status}\n${text}`;
          }
        } catch (error) { text += "\n(stream closed after 5 s)"; }
      } else {
        text = await response.text();
        try { text = JSON.stringify(JSON.parse(text), null, 2); } catch (error) { /* not JSON */ }
      }
      output.textContent = `${response.status} ${response.statusText}\n${text}`;
      output.dataset.status = String(response.status);
    } catch (error) {
      output.textContent = String(error);
    }
  }

  function operationView(method, path, operation, components) {
    const inputs = new Map();
    const params = (operation.parameters || []).map((parameter) => {
      const input = el("input", {
        type: "text", name: parameter.name, "data-param": parameter.name,
        placeholder: `${parameter.in}${parameter.required ? ", required" : ""}`,
      });
      inputs.set(parameter.name, input);
      return el("div", { class: "param" }, el("label", {}, el("code", { text: parameter.name }), " ", parameter.description || ""), el("br"), input);
    });
    let body = null;
    if (operation.requestBody) {
      const [media, content] = Object.entries(operation.requestBody.content)[0];
      const sample = example(content.schema, components);
      body = el("textarea", { "data-media": media, "aria-label": "request body" });
      body.value = media === "application/json" ? JSON.stringify(sample, null, 2) : "name=value";
    }
    const output = el("pre", { class: "response" });
    const button = el("button", { class: "primary", text: "Send", onclick: () => send(method, path, operation, inputs, body, output) });
    return el("details", { class: "operation", "data-operation": operation.operationId },
      el("summary", {}, el("span", { class: "method method-" + method, text: method.toUpperCase() }), el("code", { text: path }), " — ", operation.summary),
      el("div", { class: "body" },
        el("p", { text: operation.description }), params,
        body ? el("div", {}, el("label", { text: "Body (" + body.dataset.media + ")" }), body) : null,
        el("p", {}, button), output));
  }

  async function load() {
    showMessage("");
    const { status, data: documentData } = await call("GET", "/api/v2/openapi.json");
    if (status !== 200) {
      view.replaceChildren();
      showMessage("Enter an API token to read the API description (" + status + ").", "info");
      return;
    }
    const groups = new Map();
    for (const [path, methods] of Object.entries(documentData.paths)) {
      for (const [method, operation] of Object.entries(methods)) {
        const tag = (operation.tags || ["other"])[0];
        if (!groups.has(tag)) groups.set(tag, []);
        groups.get(tag).push(operationView(method, path, operation, documentData.components.schemas));
      }
    }
    view.replaceChildren(el("h2", { text: documentData.info.title + " " + documentData.info.version }),
      el("p", { text: documentData.info.description }),
      ...[...groups].map(([tag, items]) => el("section", { "data-tag": tag }, el("h3", { text: tag === "1.x" ? "1.x endpoints" : "API " + tag }), items)));
  }

  Lightflow.tokenForm(load);
  load();
})();
