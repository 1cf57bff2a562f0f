// PersonaScope dashboard: data layer (no DOM). Normalises run documents ("personascope.run/1")
// and the per-token project's result files into one internal shape, and computes the
// statistics the views need. Classic script (not an ES module) so the page also works
// when opened straight from disk (file:// blocks module scripts in Chromium).
(function (root) {
  "use strict";
  const PS = (root.PS = root.PS || {});

  const IMPORTED_CONVENTION =
    "imported from trait-interp: score[i] is the state of the position that predicted token i";

  function isNum(x) { return typeof x === "number" && Number.isFinite(x); }
  function numArray(a) {
    return Array.isArray(a) ? a.map((v) => (isNum(v) ? v : (v == null ? NaN : Number(v)))) : null;
  }
  function isPlainObject(o) { return o !== null && typeof o === "object" && !Array.isArray(o); }

  let seq = 0;
  function localId(prefix) { seq += 1; return prefix + "-" + Date.now().toString(36) + "-" + seq; }

  /** True when `e` looks like one run entry (ours or the per-token project's). */
  function looksLikeRun(e) {
    return isPlainObject(e) && (isPlainObject(e.trait_scores) || isPlainObject(e.projections)) &&
      (Array.isArray(e.tokens) || typeof e.response === "string");
  }

  /**
   * What each token adds to the text, or null when that is the token itself. A run's tokens are each shown on
   * their own, so the bytes of a character split across tokens (Thai, CJK, an emoji in a byte-level vocabulary)
   * are spelled <0xNN> and an answer would read as byte codes. Here the bytes are put back together in order: a
   * token that only starts a character adds "", the one that completes it adds the whole character (as the CLI's
   * live view prints it). A literal "<0xNN>" in a token's own text would be read as a byte too; no vocabulary we
   * know has one outside its byte tokens, which mean that byte.
   */
  function tokenPieces(tokens) {
    const escape = /<0x[0-9A-Fa-f]{2}>/;
    if (!tokens.some((t) => escape.test(t)) || typeof TextDecoder === "undefined") return null;
    const dec = new TextDecoder("utf-8"), enc = new TextEncoder();
    const out = tokens.map((t) => {
      const bytes = [];
      for (const part of t.split(/(<0x[0-9A-Fa-f]{2}>)/)) {
        if (!part) continue;
        const m = /^<0x([0-9A-Fa-f]{2})>$/.exec(part);
        if (m) bytes.push(parseInt(m[1], 16)); else for (const b of enc.encode(part)) bytes.push(b);
      }
      return dec.decode(new Uint8Array(bytes), { stream: true });
    });
    const rest = dec.decode();   // bytes left incomplete at the end: U+FFFD, on the last token
    if (rest && out.length) out[out.length - 1] += rest;
    return out;
  }

  /**
   * Turns one entry into the internal run shape. Throws an Error naming the problem for
   * entries that cannot be shown. `origin` is a label such as the file name.
   */
  function normalizeRun(e, origin, indexInFile) {
    if (!isPlainObject(e)) throw new Error("entry is not a JSON object");
    const scoresObj = isPlainObject(e.trait_scores) ? e.trait_scores
      : isPlainObject(e.projections) ? e.projections : null;
    if (!scoresObj) throw new Error("entry has neither \"trait_scores\" nor \"projections\"");
    const ours = typeof e.schema === "string" && e.schema.indexOf("personascope.run") === 0;
    const md = isPlainObject(e.metadata) ? e.metadata : {};
    const scores = {};
    const traits = [];
    let n = Array.isArray(e.tokens) ? e.tokens.length : -1;
    for (const t of Object.keys(scoresObj)) {
      if (t === "__proto__" || t === "constructor" || t === "prototype") throw new Error("invalid trait name \"" + t + "\"");
      const arr = numArray(scoresObj[t]);
      if (!arr) throw new Error("scores for trait \"" + t + "\" are not a list");
      scores[t] = arr;
      traits.push(t);
      if (n < 0) n = arr.length;
    }
    if (n < 0) n = 0;
    let tokens = Array.isArray(e.tokens) ? e.tokens.map((t) => (t == null ? "" : String(t))) : null;
    if (!tokens) tokens = new Array(n).fill("?");
    // Pad/trim score arrays so views can index safely; length mismatches are reported.
    const warnings = [];
    for (const t of traits) {
      if (scores[t].length !== tokens.length) {
        warnings.push("trait \"" + t + "\" has " + scores[t].length + " scores for " + tokens.length + " tokens");
        const a = scores[t].slice(0, tokens.length);
        while (a.length < tokens.length) a.push(NaN);
        scores[t] = a;
      }
    }
    const layers = {};
    if (isPlainObject(e.layers)) for (const t of traits) if (isNum(e.layers[t])) layers[t] = e.layers[t];
    if (!ours && isNum(md.layer)) for (const t of traits) if (!(t in layers)) layers[t] = md.layer;
    if (!ours && isNum(e.layer)) for (const t of traits) if (!(t in layers)) layers[t] = e.layer;
    const metadata = Object.assign({}, md);
    if (!ours && !metadata.convention) metadata.convention = IMPORTED_CONVENTION;
    let model = e.model;
    if (typeof model === "string") model = { id: model };
    if (!isPlainObject(model)) model = null;
    const perLayer = {};
    if (isPlainObject(e.per_layer)) {
      for (const t of Object.keys(e.per_layer)) {
        const rows = e.per_layer[t];
        if (Array.isArray(rows) && rows.every(Array.isArray)) perLayer[t] = rows.map(numArray);
      }
    }
    const dps = {};
    if (isPlainObject(e.decision_points)) {
      for (const t of Object.keys(e.decision_points)) {
        const l = e.decision_points[t];
        if (Array.isArray(l)) dps[t] = l.filter((d) => isPlainObject(d) && isNum(d.index) && d.index >= 0 && d.index < tokens.length);
      }
    }
    const topK = Array.isArray(e.top_k) ? e.top_k.map((row) => Array.isArray(row) ? row.filter(isPlainObject).map((c) => ({
      id: c.id, text: c.text != null ? String(c.text) : (c.token != null ? String(c.token) : ""), logprob: c.logprob })) : []) : null;
    return {
      key: localId("file"),  // unique even when the same file is loaded twice; the app rekeys server runs
      serverId: null,
      origin: origin || "",
      indexInFile: indexInFile == null ? null : indexInFile,
      schema: ours ? e.schema : null,
      created: typeof e.created === "string" ? e.created : null,
      model,
      prompt: typeof e.prompt === "string" ? e.prompt : "",
      promptText: typeof e.prompt_text === "string" ? e.prompt_text : null,
      response: typeof e.response === "string" ? e.response : tokens.join(""),
      tokens,
      pieces: tokenPieces(tokens),
      tokenIds: Array.isArray(e.token_ids) ? e.token_ids : null,
      promptTokens: Array.isArray(e.prompt_tokens) ? e.prompt_tokens.map(String) : null,
      promptScores: isPlainObject(e.prompt_scores) ? e.prompt_scores : null,
      traits,
      scores,
      layers,
      hookPoints: isPlainObject(e.hook_points) ? e.hook_points : {},
      perLayer,
      cosine: isPlainObject(e.cosine) ? e.cosine : null,
      logprobs: numArray(e.logprobs),
      topK,
      decisionPoints: dps,
      steering: Array.isArray(e.steering) ? e.steering.filter(isPlainObject) : [],
      correlations: isPlainObject(e.correlations) && Array.isArray(e.correlations.traits) &&
        Array.isArray(e.correlations.matrix) ? e.correlations : null,
      metadata,
      warnings,
      raw: e,
    };
  }

  /**
   * Parses a whole file's JSON value: one run, a list of runs, {runs:[...]}, or an object of
   * lists (layer_comparison.json: {"layer_16": [...], ...}). Returns {runs, errors}.
   */
  function parseRunFile(value, fileName) {
    const runs = [];
    const errors = [];
    const name = fileName || "file";
    function addList(list, label, groupLayer) {
      list.forEach((entry, i) => {
        try {
          if (groupLayer != null && isPlainObject(entry) && entry.layer == null &&
              !(isPlainObject(entry.metadata) && entry.metadata.layer != null)) {
            entry = Object.assign({ layer: groupLayer }, entry);
          }
          const r = normalizeRun(entry, label, i);
          runs.push(r);
          for (const w of r.warnings) errors.push(label + " entry " + i + ": " + w);
        } catch (err) {
          errors.push(label + " entry " + i + ": " + err.message);
        }
      });
    }
    if (Array.isArray(value)) {
      addList(value, name, null);
    } else if (isPlainObject(value)) {
      if (looksLikeRun(value)) addList([value], name, null);
      else if (Array.isArray(value.runs)) addList(value.runs, name, null);
      else {
        let found = false;
        for (const k of Object.keys(value)) {
          const v = value[k];
          if (Array.isArray(v) && (v.length === 0 || v.some(looksLikeRun))) {
            found = true;
            const m = /(\d+)$/.exec(k);
            addList(v, name + " / " + k, m ? Number(m[1]) : null);
          }
        }
        if (!found) errors.push(name + ": no run entries found (expected a run document, a list of entries with \"trait_scores\" or \"projections\", or an object of such lists)");
      }
    } else {
      errors.push(name + ": top-level JSON value is not an object or list");
    }
    if (runs.length === 0 && errors.length === 0) errors.push(name + ": the file holds no runs");
    return { runs, errors };
  }

  /** Trailing mean over the last `w` values (partial window at the start), NaN-skipping. */
  function trailingAverage(xs, w) {
    const n = xs.length;
    const out = new Array(n);
    if (!(w > 1)) { for (let i = 0; i < n; i++) out[i] = xs[i]; return out; }
    let sum = 0, cnt = 0;
    for (let i = 0; i < n; i++) {
      if (isNum(xs[i])) { sum += xs[i]; cnt++; }
      const j = i - w;
      if (j >= 0 && isNum(xs[j])) { sum -= xs[j]; cnt--; }
      out[i] = cnt > 0 ? sum / cnt : NaN;
    }
    return out;
  }

  /** mean / std (population) / min / max / argmin / argmax over finite values. */
  function stats(xs) {
    let n = 0, sum = 0, min = Infinity, max = -Infinity, amin = -1, amax = -1;
    for (let i = 0; i < xs.length; i++) {
      const v = xs[i];
      if (!isNum(v)) continue;
      n++; sum += v;
      if (v < min) { min = v; amin = i; }
      if (v > max) { max = v; amax = i; }
    }
    if (n === 0) return { n: 0, mean: NaN, std: NaN, min: NaN, max: NaN, argmin: -1, argmax: -1 };
    const mean = sum / n;
    let ss = 0;
    for (const v of xs) if (isNum(v)) ss += (v - mean) * (v - mean);
    return { n, mean, std: Math.sqrt(ss / n), min, max, argmin: amin, argmax: amax };
  }

  function pearson(a, b) {
    let n = 0, sa = 0, sb = 0;
    const m = Math.min(a.length, b.length);
    for (let i = 0; i < m; i++) if (isNum(a[i]) && isNum(b[i])) { n++; sa += a[i]; sb += b[i]; }
    if (n < 2) return NaN;
    const ma = sa / n, mb = sb / n;
    let cov = 0, va = 0, vb = 0;
    for (let i = 0; i < m; i++) {
      if (!(isNum(a[i]) && isNum(b[i]))) continue;
      const da = a[i] - ma, db = b[i] - mb;
      cov += da * db; va += da * da; vb += db * db;
    }
    if (va === 0 || vb === 0) return NaN;
    return cov / Math.sqrt(va * vb);
  }

  /** The run's own correlation matrix when present and complete, otherwise Pearson over tokens. */
  function correlations(run) {
    const c = run.correlations;
    if (c && c.traits.length === run.traits.length && run.traits.every((t) => c.traits.indexOf(t) >= 0) &&
        c.matrix.length === c.traits.length) {
      return { traits: c.traits.slice(), matrix: c.matrix, source: "run" };
    }
    const traits = run.traits.slice();
    const matrix = traits.map((a) => traits.map((b) => (a === b ? 1 : pearson(run.scores[a], run.scores[b]))));
    return { traits, matrix, source: "computed" };
  }

  /**
   * Decision points: the run's own when present, else the per-token project's rule
   * (first i >= 3 with x_i > mean(x[0:3]) + std(x[0:3]) -> "rise"), plus spikes: local
   * maxima with x > mean + std (the per-token rule, restricted to peaks so the list stays short).
   */
  function decisionPoints(run, trait) {
    const own = run.decisionPoints[trait];
    if (own && own.length) return own.map((d) => Object.assign({ trait }, d));
    const x = run.scores[trait] || [];
    const out = [];
    if (x.length > 3) {
      const s0 = stats(x.slice(0, 3));
      for (let i = 3; i < x.length; i++) {
        if (isNum(x[i]) && x[i] > s0.mean + s0.std) {
          out.push({ trait, index: i, kind: "rise", method: "pertoken-rule", score: s0.std > 0 ? (x[i] - s0.mean) / s0.std : 0 });
          break;
        }
      }
    }
    const s = stats(x);
    if (s.n > 2 && s.std > 0) {
      for (let i = 0; i < x.length; i++) {
        const v = x[i];
        if (!isNum(v) || v <= s.mean + s.std) continue;
        const prev = i > 0 && isNum(x[i - 1]) ? x[i - 1] : -Infinity;
        const next = i + 1 < x.length && isNum(x[i + 1]) ? x[i + 1] : -Infinity;
        if (v >= prev && v > next) out.push({ trait, index: i, kind: "spike", method: "pertoken-rule", score: (v - s.mean) / s.std });
      }
    }
    out.sort((a, b) => a.index - b.index);
    return out;
  }

  function csvCell(v) {
    const s = v == null ? "" : String(v);
    return /[",\n\r]/.test(s) ? '"' + s.replace(/"/g, '""') + '"' : s;
  }

  /** CSV: one row per response token with raw scores and (if window > 1) trailing averages. */
  function runToCSV(run, windowSize) {
    const head = ["index", "token", "token_id"];
    for (const t of run.traits) head.push(t);
    if (windowSize > 1) for (const t of run.traits) head.push(t + "_avg" + windowSize);
    if (run.logprobs) head.push("logprob");
    const avgs = {};
    if (windowSize > 1) for (const t of run.traits) avgs[t] = trailingAverage(run.scores[t], windowSize);
    const lines = [head.map(csvCell).join(",")];
    for (let i = 0; i < run.tokens.length; i++) {
      const row = [i, run.tokens[i], run.tokenIds ? run.tokenIds[i] : ""];
      for (const t of run.traits) row.push(run.scores[t][i]);
      if (windowSize > 1) for (const t of run.traits) row.push(avgs[t][i]);
      if (run.logprobs) row.push(run.logprobs[i]);
      lines.push(row.map(csvCell).join(","));
    }
    return lines.join("\n") + "\n";
  }

  /** A run document in our schema (the original object for our own runs). */
  function runToDocument(run) {
    if (run.schema && run.raw) return run.raw;
    const doc = {
      schema: "personascope.run/1",
      id: run.key,
      created: run.created || new Date().toISOString(),
      model: run.model,
      prompt: run.prompt,
      response: run.response,
      tokens: run.tokens,
      trait_scores: run.scores,
      projections: run.scores,
      layers: run.layers,
      metadata: run.metadata,
    };
    if (run.tokenIds) doc.token_ids = run.tokenIds;
    if (run.logprobs) doc.logprobs = run.logprobs;
    if (run.steering && run.steering.length) doc.steering = run.steering;
    if (Object.keys(run.perLayer).length) doc.per_layer = run.perLayer;
    return doc;
  }

  /** An entry in the per-token project's list format (what its dashboard reads). */
  function runToPertoken(run) {
    const layer = run.traits.length ? run.layers[run.traits[0]] : undefined;
    const e = {
      prompt: run.prompt, response: run.response, tokens: run.tokens, projections: run.scores,
      metadata: { num_tokens: run.tokens.length, layer: layer == null ? null : layer, personas: run.traits,
        max_new_tokens: run.metadata.max_new_tokens != null ? run.metadata.max_new_tokens : run.tokens.length },
    };
    for (const t of run.traits) for (const w of [5, 10]) e[t + "_running_avg_" + w] = trailingAverage(run.scores[t], w);
    return e;
  }

  /** Text search used for local runs; mirrors the server's filters (q, trait, min_score). */
  function matchesFilter(run, q, trait, minScore) {
    if (q) {
      const hay = (run.prompt + "\n" + run.response + "\n" + run.origin).toLowerCase();
      if (hay.indexOf(q.toLowerCase()) < 0) return false;
    }
    if (trait && run.traits.indexOf(trait) < 0) return false;
    if (isNum(minScore)) {
      const ts = trait ? [trait] : run.traits;
      if (!ts.some((t) => stats(run.scores[t]).max >= minScore)) return false;
    }
    return true;
  }

  function maxScores(run) {
    const o = {};
    for (const t of run.traits) o[t] = stats(run.scores[t]).max;
    return o;
  }

  /** Stable key for per-run browser storage (notes, thresholds). */
  function storageKey(run) {
    if (run.serverId) return "id:" + run.serverId;
    if (run.raw && run.raw.id != null) return "id:" + run.raw.id;
    let h = 2166136261;
    const s = run.prompt + "\u0000" + run.response;
    for (let i = 0; i < s.length; i++) { h ^= s.charCodeAt(i); h = Math.imul(h, 16777619); }
    return "h:" + (h >>> 0).toString(16) + ":" + run.tokens.length;
  }

  Object.assign(PS, {
    IMPORTED_CONVENTION, isNum, normalizeRun, tokenPieces, parseRunFile, looksLikeRun, trailingAverage, stats,
    pearson, correlations, decisionPoints, runToCSV, runToDocument, runToPertoken, matchesFilter,
    maxScores, storageKey, localId,
  });
})(typeof window !== "undefined" ? window : globalThis);
