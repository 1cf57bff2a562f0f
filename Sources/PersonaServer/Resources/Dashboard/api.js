// PersonaScope dashboard: JSON API client (same origin) and the SSE reader for POST /api/generate.
(function (root) {
  "use strict";
  const PS = (root.PS = root.PS || {});

  class ApiError extends Error {
    constructor(message, status) { super(message); this.status = status; }
  }

  // Opened from disk there is no server: fail fast instead of issuing file:// requests.
  const noServer = typeof location !== "undefined" && location.protocol === "file:";

  async function errorFrom(res) {
    let msg = "HTTP " + res.status + (res.statusText ? " " + res.statusText : "");
    try {
      const text = await res.text();
      try {
        const j = JSON.parse(text);
        if (j && j.error && j.error.message) msg = j.error.message + " (HTTP " + res.status + ")";
        else if (j && typeof j.error === "string") msg = j.error + " (HTTP " + res.status + ")";
      } catch (_) {
        if (text && text.length < 300) msg += ": " + text.trim();
      }
    } catch (_) { /* body unreadable: keep the status line */ }
    return new ApiError(msg, res.status);
  }

  async function request(method, path, body, opts) {
    if (noServer) throw new ApiError("no server (page opened from a file)", 0);
    const init = { method, headers: {} };
    if (body !== undefined) {
      init.headers["Content-Type"] = "application/json";
      init.body = typeof body === "string" ? body : JSON.stringify(body);
    }
    if (opts && opts.signal) init.signal = opts.signal;
    let res;
    try {
      res = await fetch(path, init);
    } catch (err) {
      if (err && err.name === "AbortError") throw err;
      throw new ApiError("server not reachable (" + (err && err.message ? err.message : err) + ")", 0);
    }
    if (!res.ok) throw await errorFrom(res);
    if (opts && opts.raw) return res;
    const text = await res.text();
    if (!text) return null;
    try { return JSON.parse(text); } catch (_) { throw new ApiError(path + ": response is not JSON", res.status); }
  }

  function qs(params) {
    const parts = [];
    for (const k of Object.keys(params)) {
      const v = params[k];
      if (v === undefined || v === null || v === "") continue;
      parts.push(encodeURIComponent(k) + "=" + encodeURIComponent(v));
    }
    return parts.length ? "?" + parts.join("&") : "";
  }

  const api = {
    health: () => request("GET", "api/health"),
    model: () => request("GET", "api/model"),
    traits: () => request("GET", "api/traits"),
    listRuns: (p) => request("GET", "api/runs" + qs(p || {})),
    getRun: (id) => request("GET", "api/runs/" + encodeURIComponent(id)),
    deleteRun: (id) => request("DELETE", "api/runs/" + encodeURIComponent(id)),
    importRuns: (value) => request("POST", "api/runs", value),
    exportUrl: (id, format) => "api/runs/" + encodeURIComponent(id) + "/export?format=" + encodeURIComponent(format),

    /**
     * POST /api/generate and read the Server-Sent Events from the response body.
     * handlers: {token(data), done(data), error(data), event(name, data)}. Resolves when the
     * stream ends; rejects with ApiError on HTTP errors or AbortError when `signal` aborts.
     */
    async generate(body, handlers, signal) {
      const res = await request("POST", "api/generate", body, { raw: true, signal });
      if (!res.body || !res.body.getReader) throw new ApiError("streaming responses are not supported by this browser", 0);
      const reader = res.body.getReader();
      const dec = new TextDecoder();
      let buf = "";
      const dispatch = (block) => {
        let ev = "message";
        const data = [];
        for (const line of block.split(/\r\n|\r|\n/)) {
          if (!line || line[0] === ":") continue;
          const c = line.indexOf(":");
          const field = c < 0 ? line : line.slice(0, c);
          let val = c < 0 ? "" : line.slice(c + 1);
          if (val[0] === " ") val = val.slice(1);
          if (field === "event") ev = val;
          else if (field === "data") data.push(val);
        }
        if (!data.length) return;
        let parsed;
        try { parsed = JSON.parse(data.join("\n")); } catch (_) { parsed = { message: data.join("\n") }; }
        if (handlers.event) handlers.event(ev, parsed);
        const h = handlers[ev];
        if (h) h(parsed);
      };
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buf += dec.decode(value, { stream: true });
        for (;;) {
          const m = /\r\n\r\n|\n\n|\r\r/.exec(buf);
          if (!m) break;
          const block = buf.slice(0, m.index);
          buf = buf.slice(m.index + m[0].length);
          dispatch(block);
        }
      }
      buf += dec.decode();
      if (buf.trim()) dispatch(buf);
    },
  };

  PS.api = api;
  PS.ApiError = ApiError;
  PS.noServer = noServer;
})(typeof window !== "undefined" ? window : globalThis);
