/* Evaluation views: a steering sweep (persona evaluate steering's sweep.json) as two heatmaps over
   row x coefficient, a cell's answers on click; a monitor validation (persona evaluate monitor's
   monitor-eval.json) as a scatter of the monitoring row and a table of r per row. Opened like runs:
   dropped or picked with the file input. */
(function () {
  "use strict";
  const SVG = "http://www.w3.org/2000/svg";
  function s(tag, attrs, children) {
    const e = document.createElementNS(SVG, tag);
    for (const k of Object.keys(attrs || {})) e.setAttribute(k, attrs[k]);
    for (const c of children || []) e.appendChild(typeof c === "string" ? document.createTextNode(c) : c);
    return e;
  }
  function h(tag, attrs, children) {
    const e = document.createElement(tag);
    for (const k of Object.keys(attrs || {})) {
      if (k === "text") e.textContent = attrs[k];
      else if (k.startsWith("on")) e.addEventListener(k.slice(2), attrs[k]);
      else e.setAttribute(k, attrs[k]);
    }
    for (const c of children || []) if (c != null) e.appendChild(typeof c === "string" ? document.createTextNode(c) : c);
    return e;
  }
  const fmt = (x, d) => (x == null || !isFinite(x)) ? "–" : Number(x).toFixed(d == null ? 2 : d);
  const signed = (x) => (x == null || !isFinite(x)) ? "–" : (x >= 0 ? "+" : "") + Number(x).toFixed(2);

  function isSweep(v) { return v && typeof v === "object" && Array.isArray(v.cells) && v.baseline && v.monitoringRow != null; }
  function isMonitorEval(v) { return v && typeof v === "object" && Array.isArray(v.rows) && Array.isArray(v.points) && v.monitoringRow != null; }

  function show(view) {
    for (const id of ["empty-state", "run-view"]) { const e = document.getElementById(id); if (e) e.hidden = true; }
    const ev = document.getElementById("eval-view");
    ev.hidden = false;
    ev.replaceChildren(view);
  }

  function heatmap(sw, title, colour, label, onPick) {
    const coefs = Array.from(new Set(sw.cells.map((c) => c.coef))).sort((a, b) => a - b);
    const rows = Array.from(new Set(sw.cells.map((c) => c.row))).sort((a, b) => a - b);
    const cw = 58, ch = 24, left = 42, top = 26;
    const width = Math.max(280, left + cw * coefs.length + 4);
    const svg = s("svg", { width: width, height: top + ch * rows.length + 30, class: "sweep-heatmap",
                           role: "img", "aria-label": title });
    svg.appendChild(s("text", { x: left, y: 14, "font-weight": "bold" }, [title]));
    rows.forEach((r, i) => svg.appendChild(s("text", { x: left - 6, y: top + ch * i + 16, "text-anchor": "end" }, [String(r)])));
    coefs.forEach((c, j) => svg.appendChild(s("text", { x: left + cw * j + cw / 2, y: top + ch * rows.length + 14, "text-anchor": "middle" }, [String(c)])));
    svg.appendChild(s("text", { x: left, y: top + ch * rows.length + 27, class: "muted" }, ["coefficient → (rows: HF hidden-state row)"]));
    for (const cell of sw.cells) {
      const i = rows.indexOf(cell.row), j = coefs.indexOf(cell.coef);
      const chosen = sw.chosen && sw.chosen.row === cell.row && sw.chosen.coef === cell.coef;
      const g = s("g", { "data-testid": "sweep-cell", "data-row": cell.row, "data-coef": cell.coef, tabindex: 0, role: "button",
                         class: "sweep-cell" + (chosen ? " chosen" : "") + (cell.coherent ? "" : " incoherent") }, [
        s("title", {}, ["row " + cell.row + ", coef " + cell.coef + ": " + label(cell) + (cell.repetition != null ? ", repeated 3-grams " + fmt(cell.repetition) : "")]),
        s("rect", { x: left + cw * j, y: top + ch * i, width: cw - 2, height: ch - 2, fill: colour(cell),
                    stroke: chosen ? "#000" : (cell.coherent ? "none" : "#888"), "stroke-width": chosen ? 2.5 : 1,
                    "stroke-dasharray": cell.coherent || chosen ? "" : "3,2" }),
        s("text", { x: left + cw * j + cw / 2 - 1, y: top + ch * i + 16, "text-anchor": "middle", "font-size": 11 }, [label(cell)])]);
      g.addEventListener("click", () => onPick(cell));
      g.addEventListener("keydown", (e) => { if (e.key === "Enter" || e.key === " ") { e.preventDefault(); onPick(cell); } });
      svg.appendChild(g);
    }
    return svg;
  }

  function renderSweep(sw, name) {
    const maxEffect = Math.max(1e-9, ...sw.cells.map((c) => Math.abs(c.effect || 0)));
    const diverging = (c) => {
      const t = Math.max(-1, Math.min(1, (c.effect || 0) / maxEffect));
      return t >= 0 ? "rgb(255," + Math.round(255 * (1 - t)) + "," + Math.round(255 * (1 - t)) + ")"
                    : "rgb(" + Math.round(255 * (1 + t)) + "," + Math.round(255 * (1 + t)) + ",255)";
    };
    const ratio = (c) => c.perplexity / Math.max(1e-9, sw.baseline.perplexity);
    const coherenceColour = (c) => {
      const v = sw.judged ? Math.max(0, Math.min(1, (c.coherence || 0) / 100))
                          : c.coherent ? 1 - Math.max(0, Math.min(0.5, (ratio(c) - 1) / (2 * (sw.maxPerplexityRatio || 2) - 1))) : 0.15;
      return "rgb(" + Math.round(255 * (1 - v)) + "," + Math.round(200 * v + 55) + ",90)";
    };
    const answers = h("div", { id: "sweep-answers", "data-testid": "sweep-answers", class: "sweep-answers" },
                      [h("p", { class: "muted small", text: "Click a cell to read its answers next to the unsteered ones." })]);
    function pick(cell) {
      const mine = (sw.answers || []).filter((a) => a.row === cell.row && a.coef === cell.coef);
      const base = (sw.answers || []).filter((a) => a.coef === 0);
      answers.replaceChildren(h("h3", { text: "row " + cell.row + ", coef " + cell.coef + " — effect " + signed(cell.effect) +
                                          (sw.judged ? ", trait " + fmt(cell.trait, 1) + ", coherence " + fmt(cell.coherence, 1)
                                                     : ", perplexity " + fmt(cell.perplexity) + " (baseline " + fmt(sw.baseline.perplexity) + ")") }));
      if (!mine.length) answers.appendChild(h("p", { class: "muted", text: "This file has no answers (written by an older persona)." }));
      for (const a of mine) {
        const b = base.find((x) => x.question === a.question);
        answers.appendChild(h("div", { class: "sweep-answer", "data-testid": "sweep-answer" }, [
          h("div", { class: "q", text: "Q" + a.question + ": " + a.questionText }),
          h("div", { class: "a steered" }, [h("strong", { text: "steered: " }), a.answer,
            h("span", { class: "muted small", text: sw.judged ? "  (trait " + fmt(a.trait, 0) + ", coherence " + fmt(a.coherence, 0) + ")" : "  (projection " + fmt(a.projection) + ")" })]),
          b ? h("div", { class: "a base" }, [h("strong", { text: "unsteered: " }), b.answer]) : null]));
      }
    }
    const chosen = sw.chosen ? "chosen: row " + sw.chosen.row + ", coef " + sw.chosen.coef + " (effect " + signed(sw.chosen.effect) + ")" : "no setting chosen";
    const view = h("div", { class: "eval", "data-testid": "sweep-view" }, [
      h("h2", { text: "Steering sweep: " + sw.trait + " on " + sw.model }),
      h("p", { class: "muted small", text: name + " · " + sw.measure + " · effect measured at row " + sw.monitoringRow + " · " + chosen }),
      sw.judged ? null : h("p", { class: "notice", text: "Proxies only: the effect is the projection shift; a setting counts as coherent while its perplexity stays within the ratio and its answers do not loop (repeated token 3-grams). " + (sw.usableJudgments != null ? "The judge scored only " + sw.usableJudgments + " answers." : "No judge was used.") }),
      h("div", { class: "sweep-maps" }, [
        heatmap(sw, sw.judged ? "Trait score − baseline" : "Projection − baseline (proxy)", diverging, (c) => signed(c.effect), pick),
        heatmap(sw, sw.judged ? "Coherence (0–100)" : "Perplexity / baseline (proxy)", coherenceColour,
                (c) => sw.judged ? fmt(c.coherence, 0) : fmt(ratio(c)) + "×", pick)]),
      answers]);
    show(view);
    if (sw.chosen) pick(sw.cells.find((c) => c.row === sw.chosen.row && c.coef === sw.chosen.coef) || sw.chosen);
  }

  function renderMonitorEval(me, name) {
    const w = 520, hgt = 340, l = 56, b = 36, t = 16, rt = 16;
    const xs = me.points.map((p) => p.lastPrompt), ys = me.points.map((p) => p.score);
    const x0 = Math.min(...xs), x1 = Math.max(x0 + 1e-9, ...xs), y0 = Math.min(0, ...ys), y1 = Math.max(100, ...ys);
    const px = (x) => l + (x - x0) / (x1 - x0) * (w - l - rt), py = (y) => hgt - b - (y - y0) / (y1 - y0) * (hgt - b - t);
    const svg = s("svg", { width: w, height: hgt, class: "scatter", role: "img", "aria-label": "projection against score" }, [
      s("line", { x1: l, y1: hgt - b, x2: w - rt, y2: hgt - b, stroke: "currentColor" }),
      s("line", { x1: l, y1: t, x2: l, y2: hgt - b, stroke: "currentColor" }),
      s("text", { x: (l + w) / 2, y: hgt - 6, "text-anchor": "middle" }, ["last prompt token projection, row " + me.monitoringRow]),
      s("text", { x: 12, y: (t + hgt - b) / 2, transform: "rotate(-90 12 " + (t + hgt - b) / 2 + ")", "text-anchor": "middle" }, [me.judged ? "judged trait score" : "condition (proxy)"])]);
    for (const p of me.points) {
      const c = p.condition.startsWith("pos") ? "#d62728" : p.condition.startsWith("neg") ? "#1f77b4" : "#7f7f7f";
      svg.appendChild(s("circle", { cx: px(p.lastPrompt), cy: py(p.score), r: 4, fill: c, "fill-opacity": 0.75, "data-testid": "scatter-point" },
                        [s("title", {}, ["Q" + p.question + " " + p.condition + ": " + fmt(p.lastPrompt) + ", " + fmt(p.score, 1)])]));
    }
    const ci = (c) => c && c.r != null ? signed(c.r) + (c.low != null ? " [" + fmt(c.low) + ", " + fmt(c.high) + "]" : "") : "–";
    const table = h("table", { class: "stats", "data-testid": "monitor-eval-table" }, [
      h("thead", {}, [h("tr", {}, ["row", "last token: Pearson", "Spearman", "answer mean: Pearson", "Spearman"].map((x) => h("th", { scope: "col", text: x })))]),
      h("tbody", {}, me.rows.filter((r) => r.row > 0).map((r) => h("tr", { class: r.row === me.monitoringRow ? "current" : "" }, [
        h("td", { text: String(r.row) + (r.row === me.monitoringRow ? " (monitoring)" : "") }), h("td", { text: ci(r.lastPromptPearson) }),
        h("td", { text: ci(r.lastPromptSpearman) }), h("td", { text: ci(r.responsePearson) }), h("td", { text: ci(r.responseSpearman) })])))]);
    show(h("div", { class: "eval", "data-testid": "monitor-eval-view" }, [
      h("h2", { text: "Monitor validation: " + me.trait + " on " + me.model }),
      h("p", { class: "muted small", text: name + " · n = " + me.n + " · " + me.measure + " · 95% bootstrap intervals (" + me.bootstrap + " resamples)" }),
      me.judged ? null : h("p", { class: "notice", text: "No judge: the target is the system prompt's side, which measures separation, not behaviour." }),
      h("div", { class: "legend small" }, [h("span", { style: "color:#d62728", text: "● positive prompt  " }), h("span", { style: "color:#7f7f7f", text: "● no system prompt  " }), h("span", { style: "color:#1f77b4", text: "● negative prompt" })]),
      svg, h("div", { class: "table-wrap" }, [table])]));
  }

  /** Opens `value` if it is an evaluation file; returns whether it was one. */
  function open(value, name) {
    if (isSweep(value)) { renderSweep(value, name); return true; }
    if (isMonitorEval(value)) { renderMonitorEval(value, name); return true; }
    return false;
  }
  function hide() { const ev = document.getElementById("eval-view"); if (ev) ev.hidden = true; }
  window.PSEval = { open, hide, isSweep, isMonitorEval };
})();
