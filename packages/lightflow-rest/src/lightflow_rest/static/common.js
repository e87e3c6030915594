/* What the dashboard and the API explorer share: the token, API calls, event streams.
 *
 * The token is kept in this tab's sessionStorage and sent as "Authorization: Bearer"
 * with every call. Event streams are read with fetch (EventSource cannot send that
 * header): a stream reconnects after a dropped connection with the Last-Event-ID it
 * last received, and ends at an "end" event or when its AbortSignal fires.
 */
"use strict";

const Lightflow = (() => {
  const KEY = "lightflow.token";

  function token() { return sessionStorage.getItem(KEY) || ""; }
  function setToken(value) { sessionStorage.setItem(KEY, value.trim()); }

  /* The headers of an API call: extra ones, and the token's. */
  function headers(extra) {
    const all = Object.assign({}, extra || {});
    if (token()) all.Authorization = "Bearer " + token();
    return all;
  }

  /* Call the API; resolve to {status, data}, data parsed from JSON when it is. */
  async function call(method, path, body) {
    const options = { method, headers: headers() };
    if (body !== undefined) {
      options.headers["Content-Type"] = "application/json";
      options.body = JSON.stringify(body);
    }
    const response = await fetch(path, options);
    const text = await response.text();
    let data = text;
    try { data = JSON.parse(text); } catch (error) { /* not JSON: keep the text */ }
    return { status: response.status, data };
  }

  /* Parse SSE text into messages {id, event, data}; return what is left over. */
  function parse(buffer, onMessage) {
    const blocks = buffer.split(/\r?\n\r?\n/);
    const rest = blocks.pop();
    for (const block of blocks) {
      const message = { id: null, event: "message", data: [] };
      for (const line of block.split(/\r?\n/)) {
        if (!line || line.startsWith(":")) continue;
        const colon = line.indexOf(":");
        const field = colon < 0 ? line : line.slice(0, colon);
        let value = colon < 0 ? "" : line.slice(colon + 1);
        if (value.startsWith(" ")) value = value.slice(1);
        if (field === "data") message.data.push(value);
        else if (field === "id") message.id = value;
        else if (field === "event") message.event = value;
      }
      if (!message.data.length) continue;
      const text = message.data.join("\n");
      try { message.data = JSON.parse(text); } catch (error) { message.data = text; }
      onMessage(message);
    }
    return rest;
  }

  /* Follow an event stream until "end" or abort; reconnect with Last-Event-ID. */
  async function follow(path, onMessage, signal, onState) {
    let lastId = null;
    let ended = false;
    while (!ended && !signal.aborted) {
      try {
        const extra = lastId === null ? {} : { "Last-Event-ID": lastId };
        const response = await fetch(path, { headers: headers(extra), signal });
        if (response.status !== 200) {
          const text = await response.text();
          let error = text;
          try { error = JSON.parse(text).error; } catch (e) { /* keep the text */ }
          throw new Error(error || "HTTP " + response.status);
        }
        if (onState) onState(true);
        const reader = response.body.getReader();
        const decoder = new TextDecoder();
        let buffer = "";
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          buffer = parse(buffer + decoder.decode(value, { stream: true }), (message) => {
            if (message.id !== null) lastId = message.id;
            if (message.event === "end") ended = true;
            onMessage(message);
          });
        }
      } catch (error) {
        if (signal.aborted) return;
        if (onState) onState(false, error);
      }
      if (!ended && !signal.aborted) await new Promise((resolve) => setTimeout(resolve, 2000));
    }
  }

  /* An element: el("td", {class: "x", text: "y"}, child, ...). */
  function el(tag, attributes, ...children) {
    const svg = ["svg", "g", "rect", "text", "path", "defs", "marker", "title"].includes(tag);
    const node = svg ? document.createElementNS("http://www.w3.org/2000/svg", tag) : document.createElement(tag);
    for (const [name, value] of Object.entries(attributes || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (name === "text") node.textContent = value;
      else if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
      else node.setAttribute(name, value === true ? "" : value);
    }
    for (const child of children.flat()) {
      if (child !== null && child !== undefined) node.append(child);
    }
    return node;
  }

  function showMessage(text, kind) {
    const box = document.getElementById("message");
    box.hidden = !text;
    box.textContent = text || "";
    box.className = "message" + (kind ? " " + kind : "");
  }

  function time(seconds) {
    return seconds ? new Date(seconds * 1000).toLocaleString() : "";
  }

  function duration(seconds) {
    if (seconds === null || seconds === undefined) return "";
    return seconds < 60 ? seconds.toFixed(2) + " s" : (seconds / 60).toFixed(1) + " min";
  }

  function tokenForm(onChange) {
    const form = document.getElementById("token-form");
    const input = document.getElementById("token");
    input.value = token();
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      setToken(input.value);
      onChange();
    });
  }

  return { call, follow, el, headers, showMessage, time, duration, tokenForm };
})();
