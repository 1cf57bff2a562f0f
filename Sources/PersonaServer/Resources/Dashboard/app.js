// PersonaScope dashboard: state, views and wiring. Depends on data.js, charts.js, api.js (window.PS).
(function () {
  "use strict";
  const PS = window.PS;
  const $ = (id) => document.getElementById(id);
  const LS = {
    get(k, d) { try { const v = localStorage.getItem(k); return v == null ? d : JSON.parse(v); } catch (_) { return d; } },
    set(k, v) { try { localStorage.setItem(k, JSON.stringify(v)); } catch (_) { /* storage full or disabled */ } },
  };

  const state = {
    server: "checking",          // checking | online | nomodel | offline
    model: null,
    serverTraits: [],
    serverItems: [],             // /api/runs list items
    localRuns: [],               // normalised runs loaded from files or streamed without saving
    cache: new Map(),            // list key -> normalised run
    current: null,               // normalised run shown as A
    currentKey: null,
    compare: null,               // run B
    compareKey: null,
    cursor: 0,
    window: LS.get("personascope.window", 10),
    heatTrait: null,
    heatCenter: LS.get("personascope.heatCenter", "mean"),
    hidden: new Set(),
    showRaw: true,
    showWs: false,
    showPrompt: false,
    snapshotMode: "raw",
    traitOrder: [],
    thresholds: LS.get("personascope.thresholds", {}),
    notes: {},
    gen: null,                   // {controller, run, count}
    lastLiveKey: null,
  };
  let charts = { curves: null, heatmap: null, across: null, compare: null };

  // ---------- helpers ----------
  function h(tag, attrs, children) {
    const e = document.createElement(tag);
    if (attrs) for (const k of Object.keys(attrs)) {
      const v = attrs[k];
      if (v == null || v === false) continue;
      if (k === "text") e.textContent = v;
      else if (k === "class") e.className = v;
      else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
      else e.setAttribute(k, v === true ? "" : v);
    }
    if (children) for (const c of children) if (c != null) e.appendChild(typeof c === "string" ? document.createTextNode(c) : c);
    return e;
  }
  const fmt = (v, d) => PS.fmt(v, d);
  function colorOf(trait) {
    let i = state.traitOrder.indexOf(trait);
    if (i < 0) { state.traitOrder.push(trait); i = state.traitOrder.length - 1; }
    const p = PS.palette();
    return p[i % p.length];
  }
  /** Visible form of a token: spaces optionally as "·", newline as "↵", tab as "⇥", controls escaped. */
  function tokenParts(t, showWs) {
    let s = String(t).replace(/\r\n|\r/g, "\n");
    const newlines = (s.match(/\n/g) || []).length;
    s = s.replace(/\n/g, "↵").replace(/\t/g, "⇥").replace(/[\u0000-\u0008\u000b-\u001f\u007f]/g,
      (c) => "\\x" + c.charCodeAt(0).toString(16).padStart(2, "0"));
    if (showWs) s = s.replace(/ /g, "·");
    return { text: s, newlines };
  }
  function shortText(t, max) {
    const s = tokenParts(t, true).text;
    return s.length > max ? s.slice(0, max - 1) + "…" : s;
  }
  let toastTimer = null;
  function toast(msg, kind) {
    const t = $("toast");
    PS.clearNode ? PS.clearNode(t) : (t.textContent = "");
    t.textContent = msg;
    t.appendChild(h("button", { type: "button", "aria-label": "Dismiss", onclick: () => { t.hidden = true; } }, ["×"]));
    t.className = "toast" + (kind === "error" ? " error" : "");
    t.hidden = false;
    clearTimeout(toastTimer);
    toastTimer = setTimeout(() => { t.hidden = true; }, kind === "error" ? 12000 : 4000);
  }
  function download(name, data, type) {
    const blob = data instanceof Blob ? data : new Blob([data], { type });
    const url = URL.createObjectURL(blob);
    const a = h("a", { href: url, download: name });
    document.body.appendChild(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 5000);
  }
  function fileStem(run) {
    const base = (run.prompt || "run").toLowerCase().replace(/[^a-z0-9]+/g, "-").replace(/^-|-$/g, "").slice(0, 40) || "run";
    return "personascope-" + base;
  }
  function debounce(fn, ms) { let t; return function () { const a = arguments; clearTimeout(t); t = setTimeout(() => fn.apply(null, a), ms); }; }
  function rafThrottle(fn) { let pending = false; return () => { if (pending) return; pending = true; requestAnimationFrame(() => { pending = false; fn(); }); }; }
  function num(v) { const x = Number(v); return v === "" || v == null || !Number.isFinite(x) ? null : x; }

  // ---------- server ----------
  async function checkServer() {
    const badge = $("server-status");
    try {
      await PS.api.health();
    } catch (err) {
      state.server = "offline";
      badge.dataset.state = "offline";
      badge.textContent = "offline";
      badge.title = "No PersonaScope server: " + err.message + ". Loading files still works.";
      setLiveAvailability();
      renderRunList();
      return;
    }
    try {
      const m = await PS.api.model();
      state.model = m;
      state.server = m && m.loaded === false ? "nomodel" : "online";
    } catch (err) {
      state.model = null;
      state.server = "nomodel";
    }
    badge.dataset.state = state.server;
    badge.textContent = state.server === "online" ? "online" : "no model";
    badge.title = state.server === "online" ? "Server connected" : "Server connected, but no model is loaded (runs can be browsed, not generated)";
    $("model-info").textContent = state.model ? [state.model.id, state.model.architecture,
      state.model.num_layers != null ? state.model.num_layers + " layers" : null].filter(Boolean).join(" · ") : "";
    try {
      // GET /api/traits answers {"traits": [...]}
      const body = await PS.api.traits();
      const traits = body && Array.isArray(body.traits) ? body.traits : [];
      state.serverTraits = traits.filter((t) => t && typeof t.name === "string");
    } catch (err) {
      state.serverTraits = [];
    }
    for (const t of state.serverTraits) colorOf(t.name);
    renderSteering();
    setLiveAvailability();
    await refreshServerRuns();
  }

  async function refreshServerRuns() {
    if (state.server === "offline" || state.server === "checking") { renderRunList(); return; }
    const f = filters();
    try {
      const items = await PS.api.listRuns({ q: f.q, trait: f.trait, min_score: f.minScore == null ? "" : f.minScore, limit: 200 });
      const list = Array.isArray(items) ? items : (items && Array.isArray(items.runs) ? items.runs : []);
      state.serverItems = list.filter((x) => x && x.id != null);
    } catch (err) {
      state.serverItems = [];
      toast("Could not list runs: " + err.message, "error");
    }
    renderRunList();
    if (!state.current) {
      const want = (/^#run=(.+)$/.exec(location.hash) || [])[1];
      const item = want ? state.serverItems.find((x) => String(x.id) === decodeURIComponent(want)) : null;
      const first = item || (!f.q && !f.trait && f.minScore == null ? state.serverItems[0] : null);
      if (first) selectRun("srv:" + first.id);
    }
  }

  // ---------- run list ----------
  function filters() {
    return { q: $("run-search").value.trim(), trait: $("run-trait-filter").value, minScore: num($("run-min-score").value) };
  }
  function listEntries() {
    const f = filters();
    const out = [];
    for (const r of state.localRuns) {
      if (!PS.matchesFilter(r, f.q, f.trait, f.minScore)) continue;
      out.push({ key: r.key, source: "file", prompt: r.prompt, origin: r.origin + (r.indexInFile != null ? " #" + (r.indexInFile + 1) : ""),
        n: r.tokens.length, model: r.model && r.model.id, maxScores: PS.maxScores(r), traits: r.traits, steering: r.steering });
    }
    for (const it of state.serverItems) {
      const model = typeof it.model === "string" ? it.model : (it.model && it.model.id);
      out.push({ key: "srv:" + it.id, source: "server", id: it.id, prompt: it.prompt || "", origin: it.created ? String(it.created).replace("T", " ").replace(/\.\d+/, "").replace("Z", " UTC") : "",
        n: it.num_tokens, model, maxScores: it.max_scores || {}, traits: it.traits || Object.keys(it.max_scores || {}), steering: it.steering });
    }
    return out;
  }
  function renderRunList() {
    const ul = $("run-list");
    PS.clearNode(ul);
    const entries = listEntries();
    const groups = [["file", "Loaded files"], ["server", "Server runs"]];
    for (const [src, title] of groups) {
      const es = entries.filter((e) => e.source === src);
      if (!es.length) continue;
      ul.appendChild(h("li", { class: "group", role: "presentation" }, [title + " (" + es.length + ")"]));
      for (const e of es) {
        const scores = h("span", { class: "scores" });
        for (const t of Object.keys(e.maxScores || {}).slice(0, 6)) {
          const v = e.maxScores[t];
          scores.appendChild(h("span", { class: "chip", title: "max " + t + " score" }, [h("span", { class: "sw", style: "background:" + colorOf(t) }), t + " " + fmt(Number(v), 2)]));
        }
        const steer = Array.isArray(e.steering) && e.steering.length ? " · steered " + e.steering.map((s) => s.trait + (s.mode === "ablate" ? " ablate" : " " + (s.coef > 0 ? "+" : "") + s.coef)).join(", ") : "";
        const btn = h("button", {
          type: "button", class: "run-item" + (e.key === state.compareKey ? " is-compare" : ""), "data-testid": "run-item",
          "data-run-key": e.key, "data-source": e.source, "aria-current": e.key === state.currentKey ? "true" : "false",
          onclick: () => selectRun(e.key),
        }, [h("span", { class: "p" }, [e.prompt || "(empty prompt)"]),
          h("span", { class: "m" }, [[e.origin, e.n != null ? e.n + " tokens" : null, e.model].filter(Boolean).join(" · ") + steer]), scores]);
        const cmp = h("button", {
          type: "button", class: "run-compare", "data-testid": "run-compare", "data-run-key": e.key,
          "aria-pressed": e.key === state.compareKey ? "true" : "false",
          "aria-label": "Compare with the current run (as run B)", title: "Compare as run B",
          onclick: (ev) => { ev.stopPropagation(); setCompare(e.key === state.compareKey ? null : e.key); },
        }, ["B"]);
        ul.appendChild(h("li", null, [btn, cmp]));
      }
    }
    $("run-count").textContent = entries.length ? entries.length + " run" + (entries.length === 1 ? "" : "s") :
      (state.server === "offline" ? "No runs: the server is offline. Open or drop a result file." : "No runs match.");
    renderTraitFilterOptions();
    renderCompareSelect(entries);
  }
  function allTraits() {
    const s = new Set(state.serverTraits.map((t) => t.name));
    for (const r of state.localRuns) for (const t of r.traits) s.add(t);
    for (const it of state.serverItems) for (const t of (it.traits || Object.keys(it.max_scores || {}))) s.add(t);
    return Array.from(s);
  }
  function renderTraitFilterOptions() {
    const sel = $("run-trait-filter");
    const cur = sel.value;
    const ts = allTraits();
    const have = Array.from(sel.options).map((o) => o.value).slice(1);
    if (have.join("\u0000") === ts.join("\u0000")) return;
    PS.clearNode(sel);
    sel.appendChild(h("option", { value: "" }, ["any"]));
    for (const t of ts) sel.appendChild(h("option", { value: t }, [t]));
    sel.value = ts.indexOf(cur) >= 0 ? cur : "";
  }

  async function loadRun(key) {
    if (state.cache.has(key)) return state.cache.get(key);
    const local = state.localRuns.find((r) => r.key === key);
    if (local) return local;
    if (key.startsWith("srv:")) {
      const id = key.slice(4);
      const doc = await PS.api.getRun(id);
      const run = PS.normalizeRun(doc, "server", null);
      run.key = key;
      run.serverId = id;
      state.cache.set(key, run);
      return run;
    }
    throw new Error("unknown run " + key);
  }

  async function selectRun(key) {
    try {
      const run = await loadRun(key);
      showRun(run, key);
      if (run.serverId) history.replaceState(null, "", "#run=" + encodeURIComponent(run.serverId));
    } catch (err) {
      toast("Could not open the run: " + err.message, "error");
    }
  }

  function showRun(run, key, keepCursor) {
    const prevKey = state.currentKey;
    state.current = run;
    state.currentKey = key || run.key;
    if (state.compareKey === state.currentKey) { state.compare = null; state.compareKey = null; }
    for (const t of run.traits) colorOf(t);
    if (!state.heatTrait || run.traits.indexOf(state.heatTrait) < 0) state.heatTrait = run.traits[0] || null;
    if (!keepCursor || prevKey !== state.currentKey) state.cursor = 0;
    state.cursor = Math.max(0, Math.min(state.cursor, run.tokens.length - 1));
    state.notes = LS.get("personascope.notes." + PS.storageKey(run), {});
    $("empty-state").hidden = true;
    if (window.PSEval) window.PSEval.hide();
    $("run-view").hidden = false;
    renderAll();
    for (const b of document.querySelectorAll("#run-list .run-item")) b.setAttribute("aria-current", b.dataset.runKey === state.currentKey ? "true" : "false");
    renderCompareSelect(listEntries());
  }

  // ---------- rendering of the selected run ----------
  function renderAll() {
    const run = state.current;
    if (!run) return;
    renderHeader();
    renderControls();
    renderTokens();
    renderCurves();
    renderStats();
    renderDecisionPoints();
    renderNotes();
    renderHeatmap();
    renderAcross();
    renderCorr();
    renderCompare();
    setCursor(state.cursor, { silent: true });
  }

  function renderHeader() {
    const run = state.current;
    $("run-title").textContent = run.prompt || "(empty prompt)";
    const meta = $("run-meta");
    PS.clearNode(meta);
    const parts = [];
    if (run.model && run.model.id) parts.push("model " + run.model.id);
    parts.push(run.tokens.length + " tokens");
    // Group traits by where they were read ("a, b @ blocks.2.hook_resid_post").
    const where = new Map();
    for (const t of run.traits) {
      const w = run.hookPoints[t] ? String(run.hookPoints[t]) : (run.layers[t] != null ? "row " + run.layers[t] : null);
      if (!w) continue;
      if (!where.has(w)) where.set(w, []);
      where.get(w).push(t);
    }
    if (where.size) parts.push(Array.from(where.entries()).map(([w, ts]) => ts.join(", ") + " @ " + w).join("; "));
    if (run.metadata.temperature != null) parts.push("T=" + run.metadata.temperature);
    if (run.metadata.seed != null) parts.push("seed " + run.metadata.seed);
    if (run.metadata.tokens_per_s != null) parts.push(fmt(Number(run.metadata.tokens_per_s), 1) + " tok/s");
    if (run.created) parts.push(run.created);
    if (run.origin && run.origin !== "server") parts.push("from " + run.origin + (run.indexInFile != null ? " #" + (run.indexInFile + 1) : ""));
    meta.appendChild(document.createTextNode(parts.join(" · ")));
    for (const s of run.steering) {
      meta.appendChild(document.createTextNode(" "));
      meta.appendChild(h("span", { class: "chip", title: "steering" }, ["steer " + s.trait + " " + (s.mode === "ablate" ? "ablate" : (s.coef > 0 ? "+" : "") + s.coef) + (s.positions ? " (" + s.positions + ")" : "") + (s.layer != null ? " L" + s.layer : "")]));
    }
    if (run.metadata.convention) meta.appendChild(h("div", { class: "small" }, ["Alignment: " + run.metadata.convention]));
    if (run.warnings.length) meta.appendChild(h("div", { class: "small", style: "color:var(--danger)" }, [run.warnings.join("; ")]));
    $("delete-run").hidden = !run.serverId;
    $("upload-run").hidden = !!run.serverId || state.server === "offline" || state.server === "checking" || !!state.gen;
  }

  function renderControls() {
    const run = state.current;
    const sel = $("heat-trait");
    PS.clearNode(sel);
    for (const t of run.traits) sel.appendChild(h("option", { value: t }, [t]));
    sel.value = state.heatTrait || "";
    $("heat-center").value = state.heatCenter;
    $("window-input").value = state.window;
    $("window-value").textContent = String(state.window);
    const sl = $("token-slider");
    sl.max = Math.max(0, run.tokens.length - 1);
    sl.disabled = run.tokens.length === 0;
    const chips = $("curve-traits");
    PS.clearNode(chips);
    for (const t of run.traits) {
      const cb = h("input", { type: "checkbox", "data-trait": t, onchange: (e) => { if (e.target.checked) state.hidden.delete(t); else state.hidden.add(t); renderCurves(); renderCompare(); } });
      cb.checked = !state.hidden.has(t);
      chips.appendChild(h("label", { title: "show " + t }, [cb, h("span", { class: "sw", style: "background:" + colorOf(t) }), t]));
    }
  }

  function heatScale(run, trait) {
    const x = run.scores[trait] || [];
    const s = PS.stats(x);
    const c = state.heatCenter === "zero" ? 0 : s.mean;
    let a = 0;
    for (const v of x) if (Number.isFinite(v)) a = Math.max(a, Math.abs(v - c));
    return { c, a: a || 1 };
  }
  function renderLegend(scale) {
    const lg = $("heat-legend");
    PS.clearNode(lg);
    if (!state.heatTrait) return;
    const stops = [-1, -0.5, 0, 0.5, 1].map((t) => PS.diverging(t)).join(",");
    lg.appendChild(h("span", null, [fmt(scale.c - scale.a, 2)]));
    lg.appendChild(h("span", { class: "bar", style: "background:linear-gradient(90deg," + stops + ")" }));
    lg.appendChild(h("span", null, [fmt(scale.c + scale.a, 2)]));
    lg.appendChild(h("span", null, [state.heatTrait + (state.heatCenter === "zero" ? " (centre 0)" : " (centre = mean " + fmt(scale.c, 2) + ")")]));
  }

  function alertSet(run) {
    const set = new Set();
    for (const t of run.traits) {
      const th = state.thresholds[t];
      if (!Number.isFinite(th)) continue;
      run.scores[t].forEach((v, i) => { if (v >= th) set.add(i); });
    }
    return set;
  }

  /** Fills `view` with token spans of `run` coloured by `trait`. */
  function fillTokens(view, run, trait, scale, opts) {
    PS.clearNode(view);
    const frag = document.createDocumentFragment();
    if (opts.prompt && run.promptTokens && run.promptTokens.length) {
      const ps = trait && run.promptScores && Array.isArray(run.promptScores[trait]) ? run.promptScores[trait] : null;
      run.promptTokens.forEach((t, k) => {
        const p = tokenParts(t, state.showWs);
        const span = h("span", { class: "tok prompt-tok", title: "prompt token " + (k + 1) + (ps ? "  " + trait + " " + fmt(Number(ps[k])) : "") }, [p.text]);
        if (ps && Number.isFinite(ps[k])) { const tn = (ps[k] - scale.c) / scale.a; span.style.background = PS.diverging(tn); span.style.color = PS.textOn(tn); }
        frag.appendChild(span);
        if (p.newlines) frag.appendChild(h("br"));
      });
      frag.appendChild(h("span", { class: "prompt-sep", "aria-hidden": "true" }, ["▸ response"]));
    } else if (opts.prompt && run.prompt) {
      frag.appendChild(h("span", { class: "tok prompt-tok" }, [tokenParts(run.prompt, state.showWs).text]));
      frag.appendChild(h("span", { class: "prompt-sep", "aria-hidden": "true" }, ["▸ response"]));
    }
    const x = trait ? run.scores[trait] : null;
    const alerts = opts.alerts || new Set();
    const dps = opts.dps || new Set();
    for (let i = 0; i < run.tokens.length; i++) {
      // the text the token adds (a split character whole on the token that completes it), not its byte codes
      const piece = run.pieces && run.pieces[i] != null ? run.pieces[i] : run.tokens[i];
      const partial = piece === "" && run.tokens[i] !== "";
      const p = tokenParts(piece, state.showWs);
      const v = x ? x[i] : NaN;
      const tn = x ? (v - scale.c) / scale.a : NaN;
      const span = h("span", {
        class: "tok" + (partial ? " partial" : p.text === "" ? " empty" : "") + (alerts.has(i) ? " alert" : "") + (opts.notes && opts.notes[i] ? " has-note" : "") + (dps.has(i) ? " dp" : ""),
        "data-index": i, "data-testid": "token",
        title: "#" + (i + 1) + (piece !== run.tokens[i] ? " " + run.tokens[i] + (partial ? " (part of the next character)" : "") : "")
          + (x ? "  " + trait + " " + fmt(v) : "") + (opts.notes && opts.notes[i] ? "\nnote: " + opts.notes[i] : ""),
      });
      if (x) { span.style.background = PS.diverging(tn); span.style.color = PS.textOn(tn); }
      // Keep whitespace glyphs dim so the words stay readable.
      if (/[·↵⇥]/.test(p.text)) {
        for (const part of p.text.split(/([·↵⇥]+)/)) {
          if (!part) continue;
          span.appendChild(/^[·↵⇥]+$/.test(part) ? h("span", { class: "ws" }, [part]) : document.createTextNode(part));
        }
      } else span.textContent = p.text;
      frag.appendChild(span);
      if (p.newlines) frag.appendChild(h("br"));
    }
    view.appendChild(frag);
  }

  function renderTokens() {
    const run = state.current;
    const scale = heatScale(run, state.heatTrait);
    renderLegend(scale);
    const dps = new Set();
    if (state.heatTrait) for (const d of PS.decisionPoints(run, state.heatTrait)) dps.add(d.index);
    fillTokens($("token-view"), run, state.heatTrait, scale, { prompt: state.showPrompt, alerts: alertSet(run), notes: state.notes, dps });
    markCurrent($("token-view"), state.cursor);
  }
  function markCurrent(view, i) {
    const old = view.querySelector(".tok.current");
    if (old) { old.classList.remove("current"); old.removeAttribute("aria-current"); }
    const cur = view.querySelector('.tok[data-index="' + i + '"]');
    if (cur) {
      cur.classList.add("current");
      cur.setAttribute("aria-current", "true");
      // Scroll inside the token box only (not the page).
      const vr = view.getBoundingClientRect(), cr = cur.getBoundingClientRect();
      if (cr.top < vr.top + 4) view.scrollTop -= vr.top + 4 - cr.top;
      else if (cr.bottom > vr.bottom - 4) view.scrollTop += cr.bottom - vr.bottom + 4;
    }
    return cur;
  }

  function visibleTraits(run) { return run.traits.filter((t) => !state.hidden.has(t)); }
  function smooth(run, t) { return PS.trailingAverage(run.scores[t], state.window); }

  function chartWidth(wrapId) {
    const w = $(wrapId).clientWidth;
    return w > 0 ? w : 700;
  }

  function renderCurves() {
    const run = state.current;
    const traits = visibleTraits(run);
    const series = traits.map((t) => ({ name: t, color: colorOf(t), values: smooth(run, t), raw: state.window > 1 && state.showRaw ? run.scores[t] : null }));
    const markers = [];
    const only = $("dp-filter").value === "trait" ? state.heatTrait : null;
    for (const t of traits) if (!only || t === only) for (const d of PS.decisionPoints(run, t)) markers.push({ series: t, index: d.index, kind: d.kind, title: t + " " + d.kind + " at token " + (d.index + 1) + " (" + (d.method || "") + ")" });
    const thresholds = traits.filter((t) => Number.isFinite(state.thresholds[t])).map((t) => ({ value: state.thresholds[t], color: colorOf(t), name: t }));
    const W = chartWidth("curve-wrap");
    charts.curves = PS.lineChart($("curve-chart"), {
      width: W, height: Math.max(220, Math.min(340, W * 0.36)), n: run.tokens.length, series, markers, thresholds, cursor: state.cursor,
      cursorId: "curve-cursor", xLabel: "token", yLabel: state.window > 1 ? "score (avg " + state.window + ")" : "score",
      onPick: (i) => setCursor(i),
      onHover: (i, evt) => tooltip($("curve-tooltip"), $("curve-wrap"), i, evt, [run], traits),
    });
  }

  function tooltip(tip, wrap, i, evt, runs, traits) {
    if (i == null) { tip.hidden = true; return; }
    PS.clearNode(tip);
    runs.forEach((run, k) => {
      if (i >= run.tokens.length) return;
      tip.appendChild(h("div", null, [(runs.length > 1 ? (k === 0 ? "A " : "B ") : "") + "#" + (i + 1) + " ", h("span", { class: "t" }, ["“" + tokenParts(run.tokens[i], true).text + "”"])]));
      const tb = h("table");
      for (const t of traits) {
        if (!run.scores[t]) continue;
        const avg = PS.trailingAverage(run.scores[t].slice(Math.max(0, i - state.window + 1), i + 1), state.window);
        tb.appendChild(h("tr", null, [h("td", null, [h("span", { class: "chip", style: "border-color:" + colorOf(t) }, [t])]),
          h("td", null, [fmt(run.scores[t][i])]), state.window > 1 ? h("td", { class: "muted" }, ["avg " + fmt(avg[avg.length - 1])]) : null]));
      }
      tip.appendChild(tb);
    });
    tip.hidden = false;
    const r = wrap.getBoundingClientRect();
    let x = evt.clientX - r.left + 14, y = evt.clientY - r.top + 10;
    if (x + tip.offsetWidth > r.width) x = evt.clientX - r.left - tip.offsetWidth - 14;
    tip.style.left = Math.max(0, x) + "px";
    tip.style.top = Math.max(0, y) + "px";
  }

  function renderSnapshot() {
    const run = state.current;
    const box = $("snapshot");
    const i = state.cursor;
    const z = state.snapshotMode === "z";
    let a = 0;
    const st = {};
    for (const t of run.traits) {
      st[t] = PS.stats(run.scores[t]);
      for (const v of run.scores[t]) if (Number.isFinite(v)) a = Math.max(a, Math.abs(z ? (v - st[t].mean) / (st[t].std || 1) : v));
    }
    a = a || 1;
    const rows = box.children;
    const rebuild = rows.length !== run.traits.length || Array.from(rows).some((r, k) => r.dataset.trait !== run.traits[k]);
    if (rebuild) {
      PS.clearNode(box);
      for (const t of run.traits) {
        box.appendChild(h("div", { class: "snap-row", role: "listitem", "data-testid": "snapshot-bar", "data-trait": t }, [
          h("span", { class: "name", title: t }, [h("span", { class: "sw", style: "background:" + colorOf(t) + ";margin-right:4px" }), t]),
          h("span", { class: "track" }, [h("span", { class: "zero" }), h("span", { class: "fill", style: "background:" + colorOf(t) }), h("span", { class: "avg", title: "trailing average" })]),
          h("span", { class: "val" }),
        ]));
      }
    }
    for (const row of box.children) {
      const t = row.dataset.trait;
      const raw = run.scores[t][i];
      const avgArr = PS.trailingAverage(run.scores[t].slice(Math.max(0, i - state.window + 1), i + 1), state.window);
      const avg = avgArr[avgArr.length - 1];
      const tr = (v) => (z ? (v - st[t].mean) / (st[t].std || 1) : v);
      const v = tr(raw);
      const fill = row.querySelector(".fill"), avgEl = row.querySelector(".avg");
      const pos = (x) => 50 + (Math.max(-a, Math.min(a, x)) / a) * 50;
      if (Number.isFinite(v)) {
        const p = pos(v);
        fill.style.left = Math.min(50, p) + "%";
        fill.style.width = Math.abs(p - 50) + "%";
      } else { fill.style.width = "0"; }
      if (state.window > 1 && Number.isFinite(avg)) { avgEl.hidden = false; avgEl.style.left = "calc(" + pos(tr(avg)) + "% - 1px)"; } else avgEl.hidden = true;
      row.dataset.value = Number.isFinite(raw) ? String(raw) : "";
      row.querySelector(".val").textContent = fmt(v, z ? 2 : 3);
      row.title = t + ": " + fmt(raw) + (state.window > 1 ? " (avg " + state.window + ": " + fmt(avg) + ")" : "") + ", z " + fmt((raw - st[t].mean) / (st[t].std || 1), 2);
      row.classList.toggle("alert", Number.isFinite(state.thresholds[t]) && raw >= state.thresholds[t]);
      row.setAttribute("aria-label", t + " " + fmt(raw));
    }
  }

  function renderDetail() {
    const run = state.current;
    const i = state.cursor;
    const d = $("token-detail");
    PS.clearNode(d);
    if (!run.tokens.length) { d.textContent = "No tokens."; return; }
    const tok = run.tokens[i];
    const cps = Array.from(String(tok)).slice(0, 6).map((c) => "U+" + c.codePointAt(0).toString(16).toUpperCase().padStart(4, "0")).join(" ");
    d.appendChild(h("div", null, ["Token " + (i + 1) + " ", h("span", { class: "big", title: cps }, [tokenParts(tok, true).text || "∅"]),
      run.tokenIds && run.tokenIds[i] != null ? h("span", { class: "muted" }, [" id " + run.tokenIds[i]]) : null,
      run.logprobs && Number.isFinite(run.logprobs[i]) ? h("span", { class: "muted" }, [" · p " + fmt(Math.exp(run.logprobs[i]), 3)]) : null]));
    const tk = run.topK && run.topK[i];
    if (tk && tk.length) {
      const box = h("div", { class: "topk", "aria-label": "top alternatives" });
      for (const c of tk.slice(0, 8)) box.appendChild(h("span", { title: "logprob " + fmt(c.logprob) }, [tokenParts(c.text, true).text + " " + (Number.isFinite(c.logprob) ? fmt(Math.exp(c.logprob), 2) : "")]));
      d.appendChild(box);
    }
  }

  function renderStats() {
    const run = state.current;
    const tb = $("stats-table");
    PS.clearNode(tb);
    tb.appendChild(h("thead", null, [h("tr", null, ["trait", "layer", "mean", "std", "min", "max", "spiky", "threshold ≥"].map((c) => h("th", { scope: "col" }, [c])))]));
    const body = h("tbody");
    for (const t of run.traits) {
      const s = PS.stats(run.scores[t]);
      const inp = h("input", { type: "number", step: "any", "data-testid": "threshold-input", "data-trait": t, "aria-label": "Alert threshold for " + t, placeholder: "off" });
      if (Number.isFinite(state.thresholds[t])) inp.value = state.thresholds[t];
      inp.addEventListener("change", () => {
        const v = num(inp.value);
        if (v == null) delete state.thresholds[t]; else state.thresholds[t] = v;
        LS.set("personascope.thresholds", state.thresholds);
        renderTokens(); renderCurves(); renderAlerts(); renderSnapshot(); setCursor(state.cursor, { silent: true });
      });
      const jump = (idx, label) => h("button", { type: "button", class: "btn ghost small", title: "go to token " + (idx + 1), onclick: () => setCursor(idx) }, [label]);
      body.appendChild(h("tr", null, [
        h("td", null, [h("span", { class: "chip", style: "border-color:" + colorOf(t) }, [h("span", { class: "sw", style: "background:" + colorOf(t) }), t])]),
        h("td", null, [run.layers[t] != null ? String(run.layers[t]) : "–"]),
        h("td", null, [fmt(s.mean)]), h("td", null, [fmt(s.std)]),
        h("td", null, [s.argmin >= 0 ? jump(s.argmin, fmt(s.min)) : "–"]), h("td", null, [s.argmax >= 0 ? jump(s.argmax, fmt(s.max)) : "–"]),
        h("td", { title: "std / |mean| > 0.5 (per-token project's rule)" }, [s.n ? (s.std / Math.abs(s.mean) > 0.5 ? "yes" : "no") : "–"]),
        h("td", null, [inp]),
      ]));
    }
    tb.appendChild(body);
    renderAlerts();
  }

  function renderAlerts() {
    const run = state.current;
    const ul = $("alert-list");
    PS.clearNode(ul);
    for (const t of run.traits) {
      const th = state.thresholds[t];
      if (!Number.isFinite(th)) continue;
      const x = run.scores[t];
      let count = 0;
      for (let i = 0; i < x.length; i++) {
        if (!(x[i] >= th) || (i > 0 && x[i - 1] >= th)) continue;
        count++;
        if (count > 50) break;
        ul.appendChild(h("li", null, [h("button", { type: "button", "data-index": i, onclick: () => setCursor(i) }, [
          h("span", { class: "kind" }, ["▲ " + t]), " ≥ " + fmt(th, 2) + " at #" + (i + 1), h("span", { class: "tokt" }, [shortText(run.tokens[i], 14)])])]));
      }
      if (!count) ul.appendChild(h("li", { class: "muted small" }, [t + ": never reaches " + fmt(th, 2)]));
    }
  }

  function renderDecisionPoints() {
    const run = state.current;
    const ul = $("decision-points");
    PS.clearNode(ul);
    const all = [];
    let own = false;
    const only = $("dp-filter").value === "trait" ? state.heatTrait : null;
    for (const t of run.traits) {
      if (only && t !== only) continue;
      if (run.decisionPoints[t] && run.decisionPoints[t].length) own = true;
      for (const d of PS.decisionPoints(run, t)) all.push(d);
    }
    all.sort((a, b) => a.index - b.index || a.trait.localeCompare(b.trait));
    $("dp-source").textContent = (only ? only + ": " : "all traits: ") + (own ? "from the run" : "per-token rule (first rise above the first 3 tokens' mean + std; spikes = peaks above mean + std)");
    if (!all.length) ul.appendChild(h("li", { class: "muted small" }, ["None found."]));
    const sym = { rise: "▲", fall: "▼", spike: "◆" };
    for (const d of all) {
      ul.appendChild(h("li", null, [h("button", {
        type: "button", "data-testid": "decision-point", "data-index": d.index, "data-trait": d.trait,
        title: (d.method || "") + (d.score != null ? " score " + fmt(Number(d.score), 2) : ""), onclick: () => setCursor(d.index),
      }, [h("span", { class: "kind", style: "color:" + colorOf(d.trait) }, [(sym[d.kind] || "●") + " " + d.kind]),
        h("span", null, [d.trait + " #" + (d.index + 1)]), h("span", { class: "tokt" }, [shortText(run.tokens[d.index], 14)]),
        h("span", { class: "sc" }, [d.score != null ? fmt(Number(d.score), 1) + "σ" : ""])])]));
    }
  }

  function renderNotes() {
    const run = state.current;
    const ul = $("note-list");
    PS.clearNode(ul);
    const idx = Object.keys(state.notes).map(Number).filter((i) => i >= 0 && i < run.tokens.length).sort((a, b) => a - b);
    if (!idx.length) ul.appendChild(h("li", { class: "muted small" }, ["Click a token, write a note, Save (or press N)."]));
    for (const i of idx) {
      ul.appendChild(h("li", null, [h("button", { type: "button", "data-index": i, onclick: () => setCursor(i) }, [
        h("span", { class: "tokt" }, ["#" + (i + 1) + " " + shortText(run.tokens[i], 10)]), h("span", { class: "txt" }, [state.notes[i]])])]));
    }
    syncNoteEditor();
  }
  function syncNoteEditor() {
    if (!state.current) return;
    $("note-label").textContent = "Note on token " + (state.cursor + 1);
    const inp = $("note-input");
    if (document.activeElement !== inp) inp.value = state.notes[state.cursor] || "";
  }
  function saveNote(text) {
    const run = state.current;
    if (!run) return;
    if (text) state.notes[state.cursor] = text; else delete state.notes[state.cursor];
    LS.set("personascope.notes." + PS.storageKey(run), state.notes);
    renderNotes();
    renderTokens();
  }

  function renderHeatmap() {
    const run = state.current;
    const t = state.heatTrait;
    const rows = t ? run.perLayer[t] : null;
    const svg = $("layer-heatmap");
    $("heatmap-trait").textContent = t ? "(" + t + ")" : "";
    const ok = rows && rows.length > 0;
    $("heatmap-empty").hidden = ok;
    svg.style.display = ok ? "" : "none";
    for (const id of ["export-heatmap-png", "export-heatmap-svg"]) $(id).disabled = !ok;
    if (!ok) { PS.clearNode(svg); charts.heatmap = null; return; }
    charts.heatmap = PS.heatmap(svg, { rows, n: run.tokens.length, width: chartWidth("heatmap-card") - 24, norm: $("heatmap-norm").value, cursorId: "heatmap-cursor",
      cursor: state.cursor, markRow: run.layers[t], onPick: (i) => setCursor(i) });
  }

  /** Prompt x token heatmap over the runs that came from the same file as the current one. */
  function renderAcross() {
    const run = state.current;
    const t = state.heatTrait;
    const group = run.serverId ? [] : state.localRuns.filter((r) => r.origin === run.origin && r.scores[t]);
    const card = $("across-card");
    card.hidden = group.length < 2;
    if (card.hidden) { charts.across = null; return; }
    const n = Math.max(...group.map((r) => r.tokens.length));
    const rows = group.map((r) => { const a = r.scores[t].slice(); while (a.length < n) a.push(NaN); return a; });
    $("across-trait").textContent = "(" + t + ")";
    $("across-origin").textContent = run.origin;
    charts.across = PS.heatmap($("across-heatmap"), {
      rows, n, width: chartWidth("across-card") - 24, norm: "pooled", cursor: state.cursor, cursorId: "across-cursor",
      rowLabels: group.map((r, k) => (k + 1) + ". " + r.prompt), markRow: group.indexOf(run),
      onPick: (i, k) => {
        const target = k != null ? group[k] : run;
        if (target !== state.current) showRun(target, target.key);
        setCursor(Math.min(i, target.tokens.length - 1));
      },
    });
  }

  function renderCorr() {
    const run = state.current;
    const svg = $("corr-matrix");
    if (run.traits.length < 2) {
      PS.clearNode(svg);
      $("corr-source").textContent = "needs two or more traits";
      return;
    }
    const c = PS.correlations(run);
    $("corr-source").textContent = c.source === "run" ? "from the run" : "Pearson r over tokens";
    PS.corrMatrix(svg, c);
  }

  // ---------- comparison ----------
  function renderCompareSelect(entries) {
    const sel = $("compare-select");
    PS.clearNode(sel);
    sel.appendChild(h("option", { value: "" }, ["(none)"]));
    for (const e of entries) {
      if (e.key === state.currentKey) continue;
      const label = (e.source === "file" ? "[file] " : "") + (e.prompt || "(empty)").slice(0, 60) + (e.steering && e.steering.length ? " [steered]" : "") + (e.n != null ? " · " + e.n + " tok" : "");
      sel.appendChild(h("option", { value: e.key }, [label]));
    }
    if (state.compareKey && !Array.from(sel.options).some((o) => o.value === state.compareKey)) {
      sel.appendChild(h("option", { value: state.compareKey }, [(state.compare && state.compare.prompt || "run B").slice(0, 60)]));
    }
    sel.value = state.compareKey || "";
  }
  async function setCompare(key, noScroll) {
    if (!key) { state.compare = null; state.compareKey = null; }
    else {
      try {
        state.compare = await loadRun(key);
        state.compareKey = key;
      } catch (err) { toast("Could not open run B: " + err.message, "error"); return; }
    }
    for (const b of document.querySelectorAll("#run-list .run-item")) b.classList.toggle("is-compare", b.dataset.runKey === state.compareKey);
    for (const b of document.querySelectorAll("#run-list .run-compare")) b.setAttribute("aria-pressed", b.dataset.runKey === state.compareKey ? "true" : "false");
    $("compare-select").value = state.compareKey || "";
    if (state.current) { renderCompare(); setCursor(state.cursor, { silent: true }); }
    if (key && !noScroll) $("compare-card").scrollIntoView({ block: "nearest", behavior: "smooth" });
  }
  function renderCompare() {
    const A = state.current, B = state.compare;
    const on = !!(A && B);
    $("compare-body").hidden = !on;
    $("compare-empty").hidden = on;
    for (const id of ["export-compare-png", "export-compare-svg", "compare-swap"]) $(id).disabled = !on;
    if (!on) { charts.compare = null; return; }
    const traits = visibleTraits(A).filter((t) => B.traits.indexOf(t) >= 0);
    const meta = $("compare-meta");
    PS.clearNode(meta);
    const desc = (r) => (r.steering.length ? "steered " + r.steering.map((s) => s.trait + " " + (s.mode === "ablate" ? "ablate" : s.coef)).join(", ") : "unsteered") + ", " + r.tokens.length + " tokens";
    meta.appendChild(h("span", null, [h("span", { class: "solid" }), "A: " + desc(A)]));
    meta.appendChild(h("span", null, [h("span", { class: "dashed" }), "B: " + desc(B)]));
    if (!traits.length) meta.appendChild(h("span", { style: "color:var(--danger)" }, ["The runs share no (visible) trait."]));
    const n = Math.max(A.tokens.length, B.tokens.length);
    const pad = (arr) => { const a = arr.slice(); while (a.length < n) a.push(NaN); return a; };
    const series = [];
    for (const t of traits) {
      series.push({ name: t + " (A)", color: colorOf(t), values: pad(smooth(A, t)) });
      series.push({ name: t + " (B)", color: colorOf(t), values: pad(smooth(B, t)), dash: "6 4" });
    }
    const W = chartWidth("compare-wrap");
    charts.compare = PS.lineChart($("compare-chart"), {
      width: W, height: Math.max(200, Math.min(300, W * 0.3)), n, series, cursor: state.cursor, cursorId: "compare-cursor",
      xLabel: "token", yLabel: state.window > 1 ? "score (avg " + state.window + ")" : "score",
      onPick: (i) => setCursor(Math.min(i, A.tokens.length - 1)),
      onHover: (i, evt) => tooltip($("compare-tooltip"), $("compare-wrap"), i, evt, [A, B], traits),
    });
    $("compare-title").textContent = B.prompt || "(empty prompt)";
    const t = state.heatTrait && B.scores[state.heatTrait] ? state.heatTrait : B.traits[0];
    fillTokens($("compare-tokens"), B, t, heatScale(B, t), {});
    markCurrent($("compare-tokens"), state.cursor);
    const tb = $("compare-table");
    PS.clearNode(tb);
    tb.appendChild(h("tr", null, ["trait", "A", "B", "B − A"].map((c) => h("th", { scope: "col" }, [c]))));
    for (const tr of A.traits.filter((x) => B.traits.indexOf(x) >= 0)) {
      const a = PS.stats(A.scores[tr]).mean, b = PS.stats(B.scores[tr]).mean;
      tb.appendChild(h("tr", null, [h("td", null, [tr]), h("td", null, [fmt(a)]), h("td", null, [fmt(b)]), h("td", { class: Math.abs(b - a) > 0 ? "" : "" }, [(b - a > 0 ? "+" : "") + fmt(b - a)])]));
    }
  }

  // ---------- cursor ----------
  let announce = debounce(() => {
    const run = state.current;
    if (!run || !run.tokens.length) return;
    const i = state.cursor;
    $("cursor-announce").textContent = "Token " + (i + 1) + " of " + run.tokens.length + ": " + tokenParts(run.tokens[i], true).text + ". " +
      run.traits.map((t) => t + " " + fmt(run.scores[t][i], 2)).join(", ");
  }, 350);
  function setCursor(i, opts) {
    const run = state.current;
    if (!run) return;
    const n = run.tokens.length;
    i = Math.max(0, Math.min(n - 1, Math.round(Number(i) || 0)));
    state.cursor = i;
    $("token-slider").value = i;
    $("token-position").textContent = n ? (i + 1) + " / " + n : "0 / 0";
    $("token-slider").setAttribute("aria-valuetext", n ? "token " + (i + 1) + " of " + n + ": " + tokenParts(run.tokens[i], true).text : "no tokens");
    markCurrent($("token-view"), i);
    if (charts.curves) charts.curves.setCursor(i);
    if (charts.heatmap) charts.heatmap.setCursor(i);
    if (charts.across) charts.across.setCursor(i);
    if (charts.compare) { charts.compare.setCursor(i); markCurrent($("compare-tokens"), i); }
    for (const b of document.querySelectorAll("#decision-points button")) b.classList.toggle("at", Number(b.dataset.index) === i);
    renderSnapshot();
    renderDetail();
    syncNoteEditor();
    if (!(opts && opts.silent)) announce();
  }
  function jumpDecision(dir) {
    const run = state.current;
    if (!run) return;
    const idx = Array.from(new Set(Array.from(document.querySelectorAll("#decision-points [data-index]")).map((b) => Number(b.dataset.index)))).sort((a, b) => a - b);
    const next = dir > 0 ? idx.find((x) => x > state.cursor) : idx.reverse().find((x) => x < state.cursor);
    if (next != null) setCursor(next);
  }

  // ---------- files ----------
  async function loadFiles(files) {
    let added = 0, opened = 0;
    const errors = [];
    let firstKey = null;
    for (const f of files) {
      let text;
      try { text = await f.text(); } catch (err) { errors.push(f.name + ": could not read (" + err.message + ")"); continue; }
      let value;
      try { value = JSON.parse(text); } catch (err) { errors.push(f.name + ": not valid JSON (" + err.message + ")"); continue; }
      if (window.PSEval && window.PSEval.open(value, f.name)) { opened++; continue; }
      const res = PS.parseRunFile(value, f.name);
      for (const r of res.runs) {
        state.localRuns.push(r);
        if (!firstKey) firstKey = r.key;
        added++;
      }
      errors.push(...res.errors);
    }
    renderRunList();
    if (added) {
      $("tab-runs").click();
      await selectRun(firstKey);
    }
    if (opened && !added && !errors.length) { toast("Opened " + opened + " evaluation file" + (opened === 1 ? "" : "s") + "."); return; }
    if (errors.length) toast((added ? "Loaded " + added + " run(s), with problems:\n" : "Nothing loaded:\n") + errors.slice(0, 8).join("\n") + (errors.length > 8 ? "\n… " + (errors.length - 8) + " more" : ""), "error");
    else if (added) toast("Loaded " + added + " run" + (added === 1 ? "" : "s") + ".");
  }
  function setupDrop() {
    let depth = 0;
    const ov = $("drop-overlay");
    const hasFiles = (e) => e.dataTransfer && Array.from(e.dataTransfer.types || []).indexOf("Files") >= 0;
    window.addEventListener("dragenter", (e) => { if (!hasFiles(e)) return; e.preventDefault(); depth++; ov.hidden = false; });
    window.addEventListener("dragover", (e) => { if (!hasFiles(e)) return; e.preventDefault(); e.dataTransfer.dropEffect = "copy"; });
    window.addEventListener("dragleave", (e) => { if (!hasFiles(e)) return; depth = Math.max(0, depth - 1); if (!depth) ov.hidden = true; });
    window.addEventListener("drop", (e) => {
      if (!hasFiles(e)) return;
      e.preventDefault();
      depth = 0; ov.hidden = true;
      loadFiles(Array.from(e.dataTransfer.files || []));
    });
    $("file-input").addEventListener("change", (e) => { const fs = Array.from(e.target.files || []); e.target.value = ""; if (fs.length) loadFiles(fs); });
  }

  // ---------- live generation ----------
  function setLiveAvailability() {
    const msg = $("live-unavailable");
    const ok = state.server === "online";
    msg.hidden = ok;
    msg.textContent = state.server === "offline" ? "The server is not reachable, so live generation is off. Start `persona serve --model …` and reload; dropped files still work."
      : state.server === "nomodel" ? "The server has no model loaded: start `persona serve --model PATH` to generate." : "Checking the server…";
    $("generate-btn").disabled = !ok || !!state.gen;
  }
  function renderSteering() {
    const box = $("steer-list");
    PS.clearNode(box);
    if (!state.serverTraits.length) { box.appendChild(h("p", { class: "muted small" }, ["No trait vectors loaded on the server."])); return; }
    const saved = LS.get("personascope.steer", {});
    for (const t of state.serverTraits) {
      const s = saved[t.name] || {};
      const id = "steer-" + t.name.replace(/[^A-Za-z0-9_-]/g, "_");
      const out = h("output", { for: id }, [fmt(Number(s.coef || 0), 1)]);
      // A coefficient chosen by `persona evaluate steering` (recommended_steering_coef) widens the range and gets a button.
      const lim = Math.max(3, t.steering_coef != null ? Math.ceil(Math.abs(t.steering_coef) * 1.5) : 3);
      const range = h("input", { type: "range", id, class: "coef", min: -lim, max: lim, step: 0.1, value: s.coef || 0, "data-testid": "steer-coef", "aria-label": "Steering coefficient for " + t.name });
      const pos = h("select", { "aria-label": "Positions steered for " + t.name, class: "pos" }, ["all", "prompt", "response"].map((p) => h("option", { value: p }, [p])));
      pos.value = s.positions || "all";
      const mode = h("select", { "aria-label": "Steering mode for " + t.name, class: "mode" }, [h("option", { value: "add" }, ["add"]), h("option", { value: "ablate" }, ["ablate"])]);
      mode.value = s.mode || "add";
      const row = h("div", { class: "steer-row", "data-testid": "steer-row", "data-trait": t.name }, [
        h("div", { class: "top" }, [h("span", { class: "sw", style: "background:" + colorOf(t.name) }),
          h("label", { for: id, class: "name", title: "scored at " + (t.hook_point || "row " + t.layer) + (t.steering_layer != null ? "; steered at row " + t.steering_layer : "") },
            [t.name + (t.steering_layer != null ? " · row " + t.steering_layer : "")]), out]),
        range, h("div", { class: "opts" }, [pos, mode, t.steering_coef != null ? h("button", { type: "button", class: "btn ghost small", "data-testid": "steer-recommended",
          title: "the setting persona evaluate steering chose (row " + t.steering_layer + ")",
          onclick: () => { range.value = t.steering_coef; mode.value = "add"; changed(); if ($("steer-auto").checked) autoRegen(); } }, ["use " + fmt(t.steering_coef, 1)]) : null])]);
      const changed = () => { out.textContent = fmt(Number(range.value), 1); range.disabled = mode.value === "ablate"; saveSteer(); };
      range.addEventListener("input", changed);
      range.addEventListener("change", () => { if ($("steer-auto").checked) autoRegen(); });
      pos.addEventListener("change", () => { saveSteer(); if ($("steer-auto").checked) autoRegen(); });
      mode.addEventListener("change", () => { changed(); if ($("steer-auto").checked) autoRegen(); });
      range.disabled = mode.value === "ablate";
      box.appendChild(row);
    }
  }
  function steerSpec() {
    const out = [];
    for (const row of document.querySelectorAll("#steer-list .steer-row")) {
      const coef = Number(row.querySelector(".coef").value);
      const mode = row.querySelector(".mode").value;
      if (mode === "add" && !coef) continue;
      const trait = row.dataset.trait;
      // No layer: the server steers at the vector's steering row (its scoring row is often too late to steer).
      out.push({ trait, coef: mode === "ablate" ? 0 : coef, positions: row.querySelector(".pos").value, mode });
    }
    return out;
  }
  function saveSteer() {
    const o = {};
    for (const row of document.querySelectorAll("#steer-list .steer-row")) o[row.dataset.trait] = { coef: Number(row.querySelector(".coef").value), positions: row.querySelector(".pos").value, mode: row.querySelector(".mode").value };
    LS.set("personascope.steer", o);
  }
  const autoRegen = debounce(() => { if (!state.gen && $("live-prompt").value.trim()) generate(); }, 500);

  function liveStatus(msg) { $("live-status").textContent = msg; }

  async function generate() {
    if (state.gen) return;
    const prompt = $("live-prompt").value;
    if (!prompt.trim()) { liveStatus("Type a prompt first."); $("live-prompt").focus(); return; }
    const body = {
      prompt,
      max_tokens: Math.max(1, Math.min(4096, Math.round(num($("live-max-tokens").value) || 64))),
      temperature: Math.max(0, num($("live-temperature").value) || 0),
      seed: Math.round(num($("live-seed").value) || 0),
      raw: $("live-raw").checked,
      steer: steerSpec(),
      save: $("live-save").checked,
    };
    // A system prompt goes in as a conversation, as persona_vectors' contrastive instructions do.
    const system = $("live-system").value;
    if (system.trim()) body.messages = [{ role: "system", content: system }, { role: "user", content: prompt }];
    // Compare with the previous generation, or with the shown run when it has the same prompt.
    const prevKey = state.lastLiveKey || (state.current && state.current.prompt === prompt ? state.currentKey : null);
    const run = PS.normalizeRun({ prompt, tokens: [], trait_scores: {}, steering: body.steer, model: state.model ? state.model.id : null,
      metadata: { temperature: body.temperature, seed: body.seed, max_new_tokens: body.max_tokens } }, "live", null);
    run.metadata = { temperature: body.temperature, seed: body.seed, max_new_tokens: body.max_tokens };
    run.logprobs = []; run.topK = []; run.tokenIds = [];
    run.key = PS.localId("live");
    const controller = new AbortController();
    state.gen = { controller, run, count: 0 };
    $("generate-btn").disabled = true;
    $("stop-btn").disabled = false;
    liveStatus("Generating…");
    showRun(run, run.key);
    const redraw = rafThrottle(() => {
      if (state.current !== run) return;
      if (run.traits.length !== $("heat-trait").options.length) renderControls();
      $("token-slider").max = Math.max(0, run.tokens.length - 1);
      $("token-slider").disabled = run.tokens.length === 0;
      renderHeader(); renderTokens(); renderCurves(); renderDecisionPoints(); renderCorr();
      if (!$("stats-card").contains(document.activeElement)) renderStats();
      setCursor(run.tokens.length - 1, { silent: true });
    });
    let finished = false;
    const t0 = performance.now();
    try {
      await PS.api.generate(body, {
        token(d) {
          const i = run.tokens.length;
          run.tokens.push(d.text != null ? String(d.text) : "");
          // the server sends `piece` where the response text differs from the token's display form
          if (!run.pieces) run.pieces = run.tokens.slice(0, i);
          run.pieces.push(d.piece != null ? String(d.piece) : run.tokens[i]);
          run.tokenIds.push(d.id);
          run.logprobs.push(Number.isFinite(d.logprob) ? d.logprob : NaN);
          run.topK.push(Array.isArray(d.top_k) ? d.top_k.map((c) => ({ id: c.id, text: c.text != null ? String(c.text) : String(c.token || ""), logprob: c.logprob })) : []);
          const sc = d.scores || {};
          for (const t of Object.keys(sc)) {
            if (!run.scores[t]) { run.scores[t] = new Array(i).fill(NaN); run.traits.push(t); colorOf(t); }
          }
          for (const t of run.traits) run.scores[t].push(Number.isFinite(sc[t]) ? sc[t] : NaN);
          if (!state.heatTrait || run.traits.indexOf(state.heatTrait) < 0) state.heatTrait = run.traits[0] || null;
          run.response += run.pieces[i];
          state.gen.count++;
          if (state.gen.count === 1 || state.gen.count % 10 === 0) liveStatus("Generating… " + state.gen.count + " tokens");
          redraw();
        },
        done(d) {
          finished = true;
          const secs = (performance.now() - t0) / 1000;
          let final = run;
          if (d && d.run) {
            try {
              final = PS.normalizeRun(d.run, "server", null);
              if (d.run_id != null) { final.serverId = String(d.run_id); final.key = "srv:" + d.run_id; }
            } catch (err) { toast("The finished run could not be read: " + err.message, "error"); }
          }
          if (!final.serverId) { final.origin = "live (not saved)"; state.localRuns.unshift(final); }
          else state.cache.set(final.key, final);
          liveStatus("Done: " + final.tokens.length + " tokens in " + secs.toFixed(1) + " s" + (d && d.finish_reason ? " (" + d.finish_reason + ")" : "") + (final.serverId ? ", saved." : "."));
          state.gen = null;
          showRun(final, final.key, true);
          setCursor(final.tokens.length - 1, { silent: true });
          if ($("live-compare-prev").checked && prevKey && prevKey !== final.key && (state.cache.has(prevKey) || state.localRuns.some((r) => r.key === prevKey))) setCompare(prevKey, true);
          state.lastLiveKey = final.key;
        },
        error(d) {
          finished = true;
          liveStatus("Error: " + (d && d.message ? d.message : "generation failed"));
          toast("Generation failed: " + (d && d.message ? d.message : "unknown error"), "error");
        },
      }, controller.signal);
      if (!finished) liveStatus("The stream ended early after " + run.tokens.length + " tokens.");
    } catch (err) {
      if (err && err.name === "AbortError") liveStatus("Stopped after " + run.tokens.length + " tokens.");
      else { liveStatus("Error: " + err.message); toast("Generation failed: " + err.message, "error"); }
    } finally {
      if (state.gen && state.gen.run === run) {
        state.gen = null;
        if (run.tokens.length) { run.origin = "live (partial)"; state.localRuns.unshift(run); showRun(run, run.key, true); }
      }
      $("stop-btn").disabled = true;
      setLiveAvailability();
      await refreshServerRuns();
    }
  }

  // ---------- exports ----------
  async function exportChart(svgId, kind, label) {
    const svg = $(svgId);
    if (!svg || !svg.firstChild || !state.current) { toast("Nothing to export.", "error"); return; }
    const name = fileStem(state.current) + "-" + label;
    try {
      if (kind === "svg") download(name + ".svg", PS.serializeSVG(svg, state.current.prompt), "image/svg+xml");
      else download(name + ".png", await PS.svgToPNG(svg, state.current.prompt), "image/png");
    } catch (err) { toast("Export failed: " + err.message, "error"); }
  }

  // ---------- wiring ----------
  function setTab(which) {
    const live = which === "live";
    $("tab-runs").setAttribute("aria-selected", String(!live)); $("tab-runs").tabIndex = live ? -1 : 0;
    $("tab-live").setAttribute("aria-selected", String(live)); $("tab-live").tabIndex = live ? 0 : -1;
    $("panel-runs").hidden = live; $("panel-live").hidden = !live;
  }
  function isTyping(el) {
    if (!el) return false;
    const tag = el.tagName;
    if (tag === "TEXTAREA" || tag === "SELECT" || el.isContentEditable) return true;
    if (tag === "INPUT") return el.type !== "checkbox" && el.type !== "button";
    return false;
  }
  function wire() {
    $("tab-runs").addEventListener("click", () => setTab("runs"));
    $("tab-live").addEventListener("click", () => setTab("live"));
    for (const id of ["tab-runs", "tab-live"]) $(id).addEventListener("keydown", (e) => {
      if (e.key === "ArrowRight" || e.key === "ArrowLeft") { const other = id === "tab-runs" ? "tab-live" : "tab-runs"; $(other).click(); $(other).focus(); e.preventDefault(); }
    });
    const refilter = debounce(() => { renderRunList(); refreshServerRuns(); }, 250);
    $("run-search").addEventListener("input", refilter);
    $("run-trait-filter").addEventListener("change", refilter);
    $("run-min-score").addEventListener("input", refilter);
    $("heat-trait").addEventListener("change", (e) => { state.heatTrait = e.target.value; renderTokens(); renderCurves(); renderDecisionPoints(); renderHeatmap(); renderAcross(); renderCompare(); setCursor(state.cursor, { silent: true }); });
    $("dp-filter").addEventListener("change", () => { if (state.current) { renderCurves(); renderDecisionPoints(); setCursor(state.cursor, { silent: true }); } });
    $("heat-center").addEventListener("change", (e) => { state.heatCenter = e.target.value; LS.set("personascope.heatCenter", state.heatCenter); renderTokens(); renderCompare(); setCursor(state.cursor, { silent: true }); });
    $("window-input").addEventListener("input", (e) => {
      state.window = Math.max(1, Math.min(20, Number(e.target.value) || 1));
      $("window-value").textContent = String(state.window);
      LS.set("personascope.window", state.window);
      if (!state.current) return;
      renderCurves(); renderCompare(); setCursor(state.cursor, { silent: true });
    });
    $("token-slider").addEventListener("input", (e) => setCursor(Number(e.target.value)));
    $("tok-prev").addEventListener("click", () => setCursor(state.cursor - 1));
    $("tok-next").addEventListener("click", () => setCursor(state.cursor + 1));
    $("show-ws").addEventListener("change", (e) => { state.showWs = e.target.checked; if (state.current) { renderTokens(); renderCompare(); setCursor(state.cursor, { silent: true }); } });
    $("show-prompt").addEventListener("change", (e) => { state.showPrompt = e.target.checked; if (state.current) renderTokens(); });
    $("show-raw").addEventListener("change", (e) => { state.showRaw = e.target.checked; if (state.current) renderCurves(); setCursor(state.cursor, { silent: true }); });
    $("snapshot-mode").addEventListener("change", (e) => { state.snapshotMode = e.target.value; if (state.current) renderSnapshot(); });
    $("heatmap-norm").addEventListener("change", () => { if (state.current) { renderHeatmap(); } });
    $("token-view").addEventListener("click", (e) => { const t = e.target.closest(".tok[data-index]"); if (t) setCursor(Number(t.dataset.index)); });
    $("token-view").addEventListener("dblclick", (e) => { const t = e.target.closest(".tok[data-index]"); if (t) { setCursor(Number(t.dataset.index)); $("note-input").focus(); } });
    $("compare-tokens").addEventListener("click", (e) => { const t = e.target.closest(".tok[data-index]"); if (t && state.current) setCursor(Math.min(Number(t.dataset.index), state.current.tokens.length - 1)); });
    $("compare-select").addEventListener("change", (e) => setCompare(e.target.value || null));
    $("compare-swap").addEventListener("click", () => {
      if (!state.compare) return;
      const a = state.currentKey, b = state.compareKey, bRun = state.compare;
      state.compare = null; state.compareKey = null;
      showRun(bRun, b, true);
      setCompare(a);
    });
    $("note-save").addEventListener("click", () => saveNote($("note-input").value.trim()));
    $("note-delete").addEventListener("click", () => { $("note-input").value = ""; saveNote(""); });
    $("note-input").addEventListener("keydown", (e) => { if (e.key === "Enter" && !e.shiftKey) { e.preventDefault(); saveNote($("note-input").value.trim()); $("note-input").blur(); } });
    $("export-csv").addEventListener("click", () => state.current && download(fileStem(state.current) + ".csv", PS.runToCSV(state.current, state.window), "text/csv"));
    $("export-json").addEventListener("click", () => state.current && download(fileStem(state.current) + ".json", JSON.stringify(PS.runToDocument(state.current), null, 1), "application/json"));
    $("export-pertoken").addEventListener("click", () => state.current && download(fileStem(state.current) + "-pertoken.json", JSON.stringify([PS.runToPertoken(state.current)], null, 1), "application/json"));
    for (const [base, svg] of [["curves", "curve-chart"], ["heatmap", "layer-heatmap"], ["across", "across-heatmap"], ["corr", "corr-matrix"], ["compare", "compare-chart"]]) {
      $("export-" + base + "-png").addEventListener("click", () => exportChart(svg, "png", base));
      $("export-" + base + "-svg").addEventListener("click", () => exportChart(svg, "svg", base));
    }
    $("delete-run").addEventListener("click", async () => {
      const run = state.current;
      if (!run || !run.serverId) return;
      if (!confirm("Delete this run from the server?")) return;
      try {
        await PS.api.deleteRun(run.serverId);
        state.cache.delete(run.key);
        state.current = null; state.currentKey = null;
        $("run-view").hidden = true; $("empty-state").hidden = false;
        history.replaceState(null, "", location.pathname + location.search);
        toast("Run deleted.");
        await refreshServerRuns();
      } catch (err) { toast("Delete failed: " + err.message, "error"); }
    });
    $("upload-run").addEventListener("click", async () => {
      const run = state.current;
      if (!run) return;
      try {
        const res = await PS.api.importRuns(PS.runToDocument(run));
        const ids = res && Array.isArray(res.ids) ? res.ids : [];
        state.localRuns = state.localRuns.filter((r) => r !== run);
        toast("Saved to the server" + (ids.length ? " (id " + ids[0] + ")." : "."));
        state.current = null;
        await refreshServerRuns();
        if (ids.length) selectRun("srv:" + ids[0]);
      } catch (err) { toast("Saving failed: " + err.message, "error"); }
    });
    $("live-form").addEventListener("submit", (e) => { e.preventDefault(); generate(); });
    $("live-prompt").addEventListener("keydown", (e) => { if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) { e.preventDefault(); generate(); } });
    $("stop-btn").addEventListener("click", () => { if (state.gen) state.gen.controller.abort(); });
    $("steer-reset").addEventListener("click", () => {
      for (const row of document.querySelectorAll("#steer-list .steer-row")) {
        row.querySelector(".coef").value = 0; row.querySelector(".coef").disabled = false;
        row.querySelector(".pos").value = "all"; row.querySelector(".mode").value = "add";
        row.querySelector("output").textContent = "0.0";
      }
      saveSteer();
    });
    $("theme-toggle").addEventListener("click", () => {
      const dark = document.documentElement.dataset.theme !== "dark";
      document.documentElement.dataset.theme = dark ? "dark" : "light";
      try { localStorage.setItem("personascope.theme", dark ? "dark" : "light"); } catch (_) { /* ignore */ }
      syncThemeButton();
      renderRunList();
      if (state.serverTraits.length) renderSteering();
      if (state.current) renderAll();
    });
    $("keys-btn").addEventListener("click", () => {
      const kh = $("keys-help");
      kh.hidden = !kh.hidden;
      $("keys-btn").setAttribute("aria-expanded", String(!kh.hidden));
    });
    document.addEventListener("keydown", (e) => {
      if (e.altKey || e.ctrlKey || e.metaKey) return;
      const tgt = e.target;
      if (e.key === "/" && !isTyping(tgt)) { e.preventDefault(); setTab("runs"); $("run-search").focus(); return; }
      if (!state.current || isTyping(tgt) && !(tgt.id === "token-slider")) return;
      if (tgt.id === "token-slider" && !e.shiftKey && ["ArrowLeft", "ArrowRight", "Home", "End"].indexOf(e.key) >= 0) return; // native range keys
      if (tgt.getAttribute && tgt.getAttribute("role") === "tab") return;
      const n = state.current.tokens.length;
      let to = null;
      switch (e.key) {
        case "ArrowLeft": to = state.cursor - (e.shiftKey ? 10 : 1); break;
        case "ArrowRight": to = state.cursor + (e.shiftKey ? 10 : 1); break;
        case "PageUp": to = state.cursor - 10; break;
        case "PageDown": to = state.cursor + 10; break;
        case "Home": to = 0; break;
        case "End": to = n - 1; break;
        case "[": jumpDecision(-1); e.preventDefault(); return;
        case "]": jumpDecision(1); e.preventDefault(); return;
        case "n": case "N": e.preventDefault(); $("note-input").focus(); return;
        default: return;
      }
      e.preventDefault();
      setCursor(to);
    });
    const onResize = debounce(() => { if (state.current) { renderCurves(); renderHeatmap(); renderAcross(); renderCompare(); setCursor(state.cursor, { silent: true }); } }, 150);
    if (window.ResizeObserver) new ResizeObserver(onResize).observe($("main"));
    else window.addEventListener("resize", onResize);
    setupDrop();
  }
  function syncThemeButton() {
    const dark = document.documentElement.dataset.theme === "dark";
    $("theme-toggle").textContent = dark ? "Light theme" : "Dark theme";
    $("theme-toggle").setAttribute("aria-pressed", String(dark));
  }

  function init() {
    wire();
    syncThemeButton();
    renderRunList();
    setLiveAvailability();
    checkServer();
    // Exposed for tests and the browser console.
    window.PersonaScope = { state, loadFiles, selectRun, setCursor, setCompare, parse: PS.parseRunFile };
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", init);
  else init();
})();
