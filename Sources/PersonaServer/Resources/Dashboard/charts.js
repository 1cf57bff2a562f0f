// PersonaScope dashboard: SVG charts (trait curves, token x layer heatmap, correlation matrix),
// colour scales and PNG/SVG export. Classic script; attaches to window.PS.
(function (root) {
  "use strict";
  const PS = (root.PS = root.PS || {});
  const NS = "http://www.w3.org/2000/svg";

  function el(tag, attrs, parent) {
    const e = document.createElementNS(NS, tag);
    if (attrs) for (const k of Object.keys(attrs)) if (attrs[k] != null) e.setAttribute(k, attrs[k]);
    if (parent) parent.appendChild(e);
    return e;
  }
  function clear(node) { while (node.firstChild) node.removeChild(node.firstChild); }
  function cssVar(name, fallback) {
    const v = getComputedStyle(document.documentElement).getPropertyValue(name).trim();
    return v || fallback;
  }

  // Okabe-Ito: distinguishable under the common colour-vision deficiencies.
  const PALETTE_LIGHT = ["#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#555555", "#8C6D1F"];
  const PALETTE_DARK = ["#56B4E9", "#E69F00", "#2FC59A", "#E38FC4", "#F0E442", "#8FC9EE", "#BBBBBB", "#D8B56A"];
  function palette() { return document.documentElement.dataset.theme === "dark" ? PALETTE_DARK : PALETTE_LIGHT; }

  // Diverging blue - white - orange (PuOr-like ends, colour-blind safe).
  const DIV_STOPS = [[-1, [33, 102, 172]], [-0.5, [146, 197, 222]], [0, [247, 247, 247]], [0.5, [253, 184, 99]], [1, [230, 97, 1]]];
  function diverging(t) {
    if (!Number.isFinite(t)) return "rgb(200,200,200)";
    t = Math.max(-1, Math.min(1, t));
    for (let i = 1; i < DIV_STOPS.length; i++) {
      const [t1, c1] = DIV_STOPS[i];
      if (t <= t1) {
        const [t0, c0] = DIV_STOPS[i - 1];
        const f = (t - t0) / (t1 - t0);
        return "rgb(" + c0.map((c, k) => Math.round(c + f * (c1[k] - c))).join(",") + ")";
      }
    }
    return "rgb(230,97,1)";
  }
  /** Black or white text for a diverging() background. */
  // Dark text has the better contrast everywhere except the deep-blue end.
  function textOn(t) { return Number.isFinite(t) && t < -0.85 ? "#fff" : "#111"; }

  function niceTicks(lo, hi, count) {
    if (!(hi > lo)) return [lo];
    const span = hi - lo;
    const step0 = Math.pow(10, Math.floor(Math.log10(span / count)));
    const err = span / count / step0;
    const step = step0 * (err >= 7.5 ? 10 : err >= 3.5 ? 5 : err >= 1.5 ? 2 : 1);
    const out = [];
    for (let v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) out.push(Math.abs(v) < step * 1e-9 ? 0 : v);
    return out;
  }
  function fmt(v, digits) {
    if (!Number.isFinite(v)) return "–";
    const d = digits == null ? 3 : digits;
    const a = Math.abs(v);
    if (a !== 0 && (a >= 1e4 || a < 1e-3)) return v.toExponential(2);
    return v.toFixed(a >= 100 ? 1 : d);
  }

  /**
   * Line chart of trait curves over token index.
   * opts: {width, height, n, series:[{name, color, values, raw?, dash?, id?}], cursor,
   *        markers:[{series, index, kind, title}], thresholds:[{value, color, name}],
   *        xLabel, yLabel, cursorId, onPick(i), onHover(i|null, evt)}
   * Returns {setCursor(i)}.
   */
  function lineChart(svg, opts) {
    clear(svg);
    const W = Math.max(200, opts.width), H = Math.max(120, opts.height);
    svg.setAttribute("viewBox", "0 0 " + W + " " + H);
    svg.setAttribute("width", W);
    svg.setAttribute("height", H);
    const fg = cssVar("--fg", "#222"), muted = cssVar("--muted", "#666"), grid = cssVar("--grid", "#e5e5e5");
    const m = { l: 52, r: 14, t: 12, b: 34 };
    const iw = W - m.l - m.r, ih = H - m.t - m.b;
    const n = Math.max(1, opts.n);
    let lo = Infinity, hi = -Infinity;
    for (const s of opts.series) {
      for (const arr of [s.values, s.raw]) {
        if (!arr) continue;
        for (const v of arr) if (Number.isFinite(v)) { if (v < lo) lo = v; if (v > hi) hi = v; }
      }
    }
    for (const th of opts.thresholds || []) if (Number.isFinite(th.value)) { lo = Math.min(lo, th.value); hi = Math.max(hi, th.value); }
    if (!(hi >= lo)) { lo = -1; hi = 1; }
    if (hi === lo) { lo -= 1; hi += 1; }
    const pad = (hi - lo) * 0.06; lo -= pad; hi += pad;
    const x = (i) => m.l + (n === 1 ? iw / 2 : (i / (n - 1)) * iw);
    const y = (v) => m.t + (1 - (v - lo) / (hi - lo)) * ih;
    el("rect", { x: 0, y: 0, width: W, height: H, fill: "none", class: "chart-bg" }, svg);
    const g = el("g", { "font-size": 11, "font-family": "system-ui, sans-serif", fill: muted }, svg);
    for (const v of niceTicks(lo, hi, 5)) {
      el("line", { x1: m.l, x2: W - m.r, y1: y(v), y2: y(v), stroke: v === 0 ? muted : grid, "stroke-width": v === 0 ? 1 : 0.7 }, g);
      const t = el("text", { x: m.l - 6, y: y(v) + 4, "text-anchor": "end" }, g);
      t.textContent = fmt(v, 2);
    }
    for (const v of niceTicks(0, n - 1, Math.max(2, Math.floor(iw / 70)))) {
      if (v !== Math.round(v)) continue;
      el("line", { x1: x(v), x2: x(v), y1: m.t + ih, y2: m.t + ih + 4, stroke: muted }, g);
      const t = el("text", { x: x(v), y: m.t + ih + 16, "text-anchor": "middle" }, g);
      t.textContent = String(v + 1);
    }
    el("line", { x1: m.l, x2: W - m.r, y1: m.t + ih, y2: m.t + ih, stroke: muted }, g);
    if (opts.xLabel) { const t = el("text", { x: m.l + iw / 2, y: H - 4, "text-anchor": "middle" }, g); t.textContent = opts.xLabel; }
    if (opts.yLabel) { const t = el("text", { x: 12, y: m.t + ih / 2, "text-anchor": "middle", transform: "rotate(-90 12 " + (m.t + ih / 2) + ")" }, g); t.textContent = opts.yLabel; }

    for (const th of opts.thresholds || []) {
      if (!Number.isFinite(th.value)) continue;
      el("line", { x1: m.l, x2: W - m.r, y1: y(th.value), y2: y(th.value), stroke: th.color, "stroke-dasharray": "2 3", "stroke-width": 1.2, class: "threshold-line" }, svg);
    }
    const path = (arr) => {
      let d = "", pen = false;
      for (let i = 0; i < arr.length; i++) {
        if (!Number.isFinite(arr[i])) { pen = false; continue; }
        d += (pen ? "L" : "M") + x(i).toFixed(1) + " " + y(arr[i]).toFixed(1);
        pen = true;
      }
      return d;
    };
    for (const s of opts.series) {
      if (s.raw) el("path", { d: path(s.raw), fill: "none", stroke: s.color, "stroke-width": 1, opacity: 0.28, "stroke-dasharray": s.dash || null }, svg);
    }
    for (const s of opts.series) {
      const p = el("path", { d: path(s.values), fill: "none", stroke: s.color, "stroke-width": 2, "stroke-dasharray": s.dash || null, "stroke-linejoin": "round", "data-series": s.name, class: "curve" }, svg);
      const ti = el("title", null, p); ti.textContent = s.name;
    }
    const seriesByName = {};
    for (const s of opts.series) seriesByName[s.name] = s;
    const mg = el("g", { class: "markers" }, svg);
    for (const mk of opts.markers || []) {
      const s = seriesByName[mk.series];
      if (!s) continue;
      const v = s.values[mk.index];
      if (!Number.isFinite(v)) continue;
      const cx = x(mk.index), cy = y(v), r = 6;
      let shape;
      if (mk.kind === "rise") shape = el("path", { d: `M${cx} ${cy - r}L${cx + r} ${cy + r * 0.7}L${cx - r} ${cy + r * 0.7}Z` }, mg);
      else if (mk.kind === "fall") shape = el("path", { d: `M${cx} ${cy + r}L${cx + r} ${cy - r * 0.7}L${cx - r} ${cy - r * 0.7}Z` }, mg);
      else shape = el("path", { d: `M${cx} ${cy - r}L${cx + r * 0.8} ${cy}L${cx} ${cy + r}L${cx - r * 0.8} ${cy}Z` }, mg);
      shape.setAttribute("fill", s.color);
      shape.setAttribute("stroke", cssVar("--bg", "#fff"));
      shape.setAttribute("stroke-width", 1.2);
      shape.setAttribute("class", "dp-marker");
      shape.setAttribute("data-index", mk.index);
      shape.setAttribute("data-testid", "curve-decision-marker");
      if (mk.title) { const ti = el("title", null, shape); ti.textContent = mk.title; }
    }
    const hover = el("line", { y1: m.t, y2: m.t + ih, stroke: muted, "stroke-width": 1, "stroke-dasharray": "3 3", visibility: "hidden", class: "hover-line" }, svg);
    const cursor = el("g", { id: opts.cursorId || null, "data-testid": opts.cursorId || null, class: "cursor" }, svg);
    const cline = el("line", { y1: m.t, y2: m.t + ih, stroke: fg, "stroke-width": 1.5 }, cursor);
    const dots = opts.series.map((s) => el("circle", { r: 3.5, fill: s.color, stroke: cssVar("--bg", "#fff"), "stroke-width": 1 }, cursor));
    const overlay = el("rect", { x: m.l, y: m.t, width: iw, height: ih, fill: "transparent", class: "overlay" }, svg);
    const idxAt = (evt) => {
      const r = svg.getBoundingClientRect();
      const px = ((evt.clientX - r.left) / r.width) * W;
      const i = n === 1 ? 0 : Math.round(((px - m.l) / iw) * (n - 1));
      return Math.max(0, Math.min(n - 1, i));
    };
    overlay.addEventListener("mousemove", (evt) => {
      const i = idxAt(evt);
      hover.setAttribute("x1", x(i)); hover.setAttribute("x2", x(i)); hover.setAttribute("visibility", "visible");
      if (opts.onHover) opts.onHover(i, evt);
    });
    overlay.addEventListener("mouseleave", () => { hover.setAttribute("visibility", "hidden"); if (opts.onHover) opts.onHover(null); });
    overlay.addEventListener("click", (evt) => { if (opts.onPick) opts.onPick(idxAt(evt)); });
    mg.addEventListener("click", (evt) => {
      const t = evt.target.closest ? evt.target.closest("[data-index]") : null;
      if (t && opts.onPick) opts.onPick(Number(t.getAttribute("data-index")));
    });
    // Markers sit above the overlay so they stay clickable and show their <title>.
    svg.appendChild(mg);
    function setCursor(i) {
      if (!(i >= 0)) { cursor.setAttribute("visibility", "hidden"); return; }
      cursor.setAttribute("visibility", "visible");
      cursor.setAttribute("data-index", i);
      cline.setAttribute("x1", x(i)); cline.setAttribute("x2", x(i));
      opts.series.forEach((s, k) => {
        const v = s.values[i];
        if (Number.isFinite(v)) { dots[k].setAttribute("cx", x(i)); dots[k].setAttribute("cy", y(v)); dots[k].setAttribute("visibility", "visible"); }
        else dots[k].setAttribute("visibility", "hidden");
      });
    }
    setCursor(opts.cursor);
    return { setCursor };
  }

  /**
   * Token x layer heatmap. rows: [L][n] values; normalisation "row" (each layer z-scored,
   * since the residual norm grows with depth) or "global". Returns {setCursor(i)}.
   */
  function heatmap(svg, opts) {
    clear(svg);
    const rows = opts.rows, L = rows.length, n = opts.n;
    const W = Math.max(200, opts.width);
    const labels = opts.rowLabels || null;
    const m = { l: labels ? 190 : 56, r: 10, t: 8, b: 30 };
    const cellH = Math.max(labels ? 14 : 8, Math.min(22, 300 / Math.max(1, L)));
    // Row 0 at the bottom for layers (depth grows upwards), at the top for labelled rows (runs).
    const rowY = (l) => m.t + (labels ? l : L - 1 - l) * cellH;
    const H = m.t + m.b + cellH * L;
    svg.setAttribute("viewBox", "0 0 " + W + " " + H);
    svg.setAttribute("width", W); svg.setAttribute("height", H);
    const iw = W - m.l - m.r, cw = iw / Math.max(1, n);
    const muted = cssVar("--muted", "#666"), fg = cssVar("--fg", "#222");
    const scale = [];
    if (opts.norm === "pooled") {
      let sum = 0, cnt = 0, a = 0;
      for (const r of rows) for (const v of r) if (Number.isFinite(v)) { sum += v; cnt++; }
      const c = cnt ? sum / cnt : 0;
      for (const r of rows) for (const v of r) if (Number.isFinite(v)) a = Math.max(a, Math.abs(v - c));
      for (let l = 0; l < L; l++) scale.push({ c, s: a || 1 });
    } else if (opts.norm === "global") {
      let a = 0;
      for (const r of rows) for (const v of r) if (Number.isFinite(v)) a = Math.max(a, Math.abs(v));
      for (let l = 0; l < L; l++) scale.push({ c: 0, s: a || 1 });
    } else {
      for (const r of rows) {
        const s = PS.stats(r);
        scale.push({ c: s.mean, s: (s.std || 1) * 2.5 });
      }
    }
    const g = el("g", { "shape-rendering": "crispEdges" }, svg);
    for (let l = 0; l < L; l++) {
      const r = rows[l], yy = rowY(l);
      for (let i = 0; i < n; i++) {
        const v = r[i];
        const rect = el("rect", { x: (m.l + i * cw).toFixed(2), y: yy.toFixed(2), width: (cw + 0.3).toFixed(2), height: cellH + 0.3, fill: diverging((v - scale[l].c) / scale[l].s) }, g);
        if (opts.titles !== false && n * L <= 6000) { const ti = el("title", null, rect); ti.textContent = (labels ? labels[l] : "layer row " + l) + ", token " + (i + 1) + ": " + fmt(v); }
      }
    }
    const lg = el("g", { "font-size": 10, "font-family": "system-ui, sans-serif", fill: muted }, svg);
    const every = Math.max(1, Math.ceil(12 / cellH));
    for (let l = 0; l < L; l += every) {
      const t = el("text", { x: m.l - 6, y: rowY(l) + cellH / 2 + 3.5, "text-anchor": "end", "font-weight": opts.markRow === l ? 700 : null, fill: opts.markRow === l ? fg : null }, lg);
      const lab = labels ? String(labels[l]) : "row " + l;
      t.textContent = (lab.length > 30 ? lab.slice(0, 29) + "…" : lab) + (!labels && opts.markRow === l ? " ◀" : "");
    }
    for (const v of niceTicks(0, n - 1, Math.max(2, Math.floor(iw / 70)))) {
      if (v !== Math.round(v)) continue;
      const t = el("text", { x: m.l + (v + 0.5) * cw, y: H - 14, "text-anchor": "middle" }, lg);
      t.textContent = String(v + 1);
    }
    const t = el("text", { x: m.l + iw / 2, y: H - 2, "text-anchor": "middle" }, lg);
    t.textContent = "token";
    const cursor = el("rect", { y: m.t, height: cellH * L, width: Math.max(2, cw), fill: "none", stroke: fg, "stroke-width": 1.5, id: opts.cursorId || null }, svg);
    if (labels && opts.markRow != null && opts.markRow >= 0) el("rect", { x: m.l - 1, y: rowY(opts.markRow), width: iw + 2, height: cellH, fill: "none", stroke: fg, "stroke-width": 1.5 }, svg);
    svg.onclick = (evt) => {
      const r = svg.getBoundingClientRect();
      const px = ((evt.clientX - r.left) / r.width) * W, py = ((evt.clientY - r.top) / r.height) * H;
      const i = Math.floor((px - m.l) / cw);
      const k = Math.floor((py - m.t) / cellH);
      const l = labels ? k : L - 1 - k;
      if (i >= 0 && i < n && opts.onPick) opts.onPick(i, l >= 0 && l < L ? l : null);
    };
    function setCursor(i) { cursor.setAttribute("x", m.l + i * cw); cursor.setAttribute("visibility", i >= 0 ? "visible" : "hidden"); }
    setCursor(opts.cursor);
    return { setCursor };
  }

  /** Trait x trait correlation matrix with values in the cells. */
  function corrMatrix(svg, corr) {
    clear(svg);
    const k = corr.traits.length;
    const labelW = Math.min(140, 12 + 7 * Math.max(4, ...corr.traits.map((t) => t.length)));
    const cell = Math.max(34, Math.min(64, 360 / Math.max(1, k)));
    const W = labelW + cell * k + 10, H = 8 + cell * k + labelW * 0.75;
    svg.setAttribute("viewBox", "0 0 " + W + " " + H);
    svg.setAttribute("width", W); svg.setAttribute("height", H);
    const muted = cssVar("--fg", "#222");
    const g = el("g", { "font-size": 11, "font-family": "system-ui, sans-serif" }, svg);
    for (let i = 0; i < k; i++) {
      const t = el("text", { x: labelW - 6, y: 8 + i * cell + cell / 2 + 4, "text-anchor": "end", fill: muted }, g);
      t.textContent = corr.traits[i];
      const tx = labelW + i * cell + cell / 2, ty = 8 + k * cell + 8;
      const t2 = el("text", { x: tx, y: ty, "text-anchor": "end", fill: muted, transform: `rotate(-40 ${tx} ${ty})` }, g);
      t2.textContent = corr.traits[i];
      for (let j = 0; j < k; j++) {
        const v = corr.matrix[i][j];
        const r = el("rect", { x: labelW + j * cell, y: 8 + i * cell, width: cell - 1, height: cell - 1, fill: diverging(v) }, g);
        const ti = el("title", null, r); ti.textContent = corr.traits[i] + " vs " + corr.traits[j] + ": r = " + fmt(v, 3);
        const tv = el("text", { x: labelW + j * cell + cell / 2, y: 8 + i * cell + cell / 2 + 4, "text-anchor": "middle", fill: textOn(v) }, g);
        tv.textContent = Number.isFinite(v) ? v.toFixed(2) : "–";
      }
    }
  }

  // ---- export ----
  const STYLE_PROPS = ["fill", "stroke", "stroke-width", "stroke-dasharray", "opacity", "font-size", "font-family", "font-weight", "visibility"];
  /** Standalone SVG text of `svg` with computed styles inlined and an opaque background. */
  function serializeSVG(svg, title) {
    const clone = svg.cloneNode(true);
    const src = svg.querySelectorAll("*"), dst = clone.querySelectorAll("*");
    for (let i = 0; i < src.length; i++) {
      const cs = getComputedStyle(src[i]);
      let style = "";
      for (const p of STYLE_PROPS) { const v = cs.getPropertyValue(p); if (v) style += p + ":" + v + ";"; }
      dst[i].setAttribute("style", style);
      dst[i].removeAttribute("class");
    }
    for (const o of clone.querySelectorAll(".overlay, .hover-line, [visibility=hidden]")) o.remove();
    clone.setAttribute("xmlns", NS);
    const vb = (svg.getAttribute("viewBox") || "0 0 800 300").split(/\s+/).map(Number);
    const bg = document.createElementNS(NS, "rect");
    bg.setAttribute("x", vb[0]); bg.setAttribute("y", vb[1]); bg.setAttribute("width", vb[2]); bg.setAttribute("height", vb[3]);
    bg.setAttribute("fill", cssVar("--panel", "#fff"));
    clone.insertBefore(bg, clone.firstChild);
    if (title) { const t = document.createElementNS(NS, "title"); t.textContent = title; clone.insertBefore(t, clone.firstChild); }
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + new XMLSerializer().serializeToString(clone);
  }
  /** PNG blob (2x) of the SVG. */
  function svgToPNG(svg, title) {
    const text = serializeSVG(svg, title);
    const vb = (svg.getAttribute("viewBox") || "0 0 800 300").split(/\s+/).map(Number);
    return new Promise((resolve, reject) => {
      const img = new Image();
      img.onload = () => {
        const c = document.createElement("canvas");
        c.width = Math.round(vb[2] * 2); c.height = Math.round(vb[3] * 2);
        const ctx = c.getContext("2d");
        ctx.scale(2, 2);
        ctx.drawImage(img, 0, 0, vb[2], vb[3]);
        c.toBlob((b) => (b ? resolve(b) : reject(new Error("PNG encoding failed"))), "image/png");
      };
      img.onerror = () => reject(new Error("could not render the SVG for PNG export"));
      img.src = "data:image/svg+xml;charset=utf-8," + encodeURIComponent(text);
    });
  }

  Object.assign(PS, { svgEl: el, clearNode: clear, cssVar, palette, diverging, textOn, niceTicks, fmt, lineChart, heatmap, corrMatrix, serializeSVG, svgToPNG });
})(typeof window !== "undefined" ? window : globalThis);
