#!/usr/bin/env python3
"""Real-browser test of the PersonaScope dashboard (headless Chromium via chromedriver).

Talks W3C WebDriver to Debian's `chromium-driver` with the standard library only (no Selenium,
no pip packages), so it runs anywhere `apt-get install chromium chromium-driver` works.

    python3 Scripts/browser_test.py --base-url http://127.0.0.1:8000/ --out artifacts/screens \
        [--generate] [--prompt "Once upon a time"] [--pertoken ../shared/reference/trait-interp/pertoken_results/pilot_results.json]

Checks (each one prints PASS/FAIL; exit status 1 if any failed):
  * the page loads without JavaScript errors and the server badge settles;
  * with --generate: a live generation streams tokens into the token view and curves appear,
    and the finished run is listed in the run picker;
  * the trailing average equals the per-token project's precomputed `<trait>_running_avg_N` fields;
  * a per-token-project result file dropped on the page (a real `drop` event carrying a File)
    loads client-side: file runs listed, tokens and curves shown;
  * the token slider / arrow keys move the cursor: the "k / N" label, the curve cursor and
    the current-token highlight follow, and the snapshot bars change;
  * a decision point is listed, and clicking it moves the cursor to its token;
  * the file input accepts layer_comparison.json's object-of-lists format;
  * a run whose characters are split over byte tokens (<0xNN>) shows the characters in the response view;
  * with --steer-trait T --steer-coef C (needs --generate and a server with trait vectors): the Steering panel
    lists every trait of GET /api/traits, moving T's slider to C and generating again sends the steering (the saved
    run records it), changes the generated text and T's curve, and shifts T's mean score in the sign of C.
Screenshots go to --out (one PNG per step).
Written against Chromium/chromedriver 13x (Debian bookworm); any W3C chromedriver should work.
"""
import argparse
import base64
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_PERTOKEN = os.path.join(REPO, "..", "shared", "reference", "trait-interp", "pertoken_results", "pilot_results.json")
DEFAULT_LAYERS = os.path.join(REPO, "..", "shared", "reference", "trait-interp", "pertoken_results", "layer_comparison.json")


class WebDriverError(RuntimeError):
    pass


class Driver:
    """Minimal W3C WebDriver client over HTTP (what chromedriver speaks)."""

    def __init__(self, chromedriver, chromium, width, height):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.profile = tempfile.mkdtemp(prefix="ps-browser-")
        self.proc = subprocess.Popen([chromedriver, "--port=%d" % self.port],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.base = "http://127.0.0.1:%d" % self.port
        for _ in range(100):
            try:
                self._call("GET", "/status")
                break
            except Exception:
                time.sleep(0.1)
        caps = {"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:loggingPrefs": {"browser": "ALL"},
            "goog:chromeOptions": {
                "binary": chromium,
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                         "--window-size=%d,%d" % (width, height), "--user-data-dir=" + self.profile],
            },
        }}}
        self.sid = self._call("POST", "/session", caps)["sessionId"]

    def _call(self, method, path, body=None):
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.base + path, data=data, method=method,
                                     headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=120) as r:
                out = json.loads(r.read() or b"{}")
        except urllib.error.HTTPError as e:
            try:
                v = json.loads(e.read()).get("value", {})
                raise WebDriverError("%s %s: %s: %s" % (method, path, v.get("error"), v.get("message", "")[:400]))
            except (ValueError, AttributeError):
                raise WebDriverError("%s %s: HTTP %d" % (method, path, e.code))
        if isinstance(out, dict) and "sessionId" in out and "value" not in out:
            return out
        v = out.get("value")
        if isinstance(v, dict) and "sessionId" in v:
            return v
        return v

    def s(self, method, path, body=None):
        return self._call(method, "/session/%s%s" % (self.sid, path), body)

    def get(self, url):
        self.s("POST", "/url", {"url": url})

    def js(self, script, *args):
        return self.s("POST", "/execute/sync", {"script": script, "args": list(args)})

    def js_async(self, script, *args):
        return self.s("POST", "/execute/async", {"script": script, "args": list(args)})

    def find(self, css):
        v = self.s("POST", "/element", {"using": "css selector", "value": css})
        return list(v.values())[0]

    def click(self, css):
        self.s("POST", "/element/%s/click" % self.find(css), {})

    def send_keys(self, css, text):
        self.s("POST", "/element/%s/value" % self.find(css), {"text": text})

    def screenshot(self, path):
        with open(path, "wb") as f:
            f.write(base64.b64decode(self.s("GET", "/screenshot")))

    def browser_log(self):
        try:
            return self.s("POST", "/se/log", {"type": "browser"}) or []
        except WebDriverError:
            return []

    def wait(self, script, timeout, *args):
        """Polls `script` (a JS expression body returning a value) until truthy."""
        end = time.time() + timeout
        last = None
        while time.time() < end:
            last = self.js(script, *args)
            if last:
                return last
            time.sleep(0.1)
        return last

    def close(self):
        try:
            self._call("DELETE", "/session/%s" % self.sid)
        except Exception:
            pass
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        shutil.rmtree(self.profile, ignore_errors=True)


ARROW_RIGHT = "\ue014"
END = "\ue010"
HOME = "\ue011"

DROP_JS = """
const [name, text] = arguments;
const dt = new DataTransfer();
dt.items.add(new File([text], name, {type: 'application/json'}));
for (const type of ['dragenter', 'dragover', 'drop']) {
  const ev = new DragEvent(type, {bubbles: true, cancelable: true, dataTransfer: dt});
  document.getElementById('main').dispatchEvent(ev);
}
return true;
"""

STATE_JS = """
const q = (s) => document.querySelector(s);
const bars = Array.from(document.querySelectorAll('[data-testid=snapshot-bar]')).map(b => [b.dataset.trait, b.dataset.value]);
const cur = q('#token-view .tok.current');
return {
  position: q('#token-position') ? q('#token-position').textContent : null,
  slider: q('#token-slider') ? Number(q('#token-slider').value) : null,
  cursor: q('#curve-cursor') ? q('#curve-cursor').getAttribute('data-index') : null,
  current: cur ? Number(cur.dataset.index) : null,
  bars: bars,
  tokens: document.querySelectorAll('#token-view [data-testid=token]').length,
  curves: document.querySelectorAll('#curve-chart path.curve').length,
  decisions: document.querySelectorAll('[data-testid=decision-point]').length,
  fileRuns: document.querySelectorAll('[data-testid=run-item][data-source=file]').length,
  serverRuns: document.querySelectorAll('[data-testid=run-item][data-source=server]').length,
  server: q('#server-status').dataset.state,
  liveStatus: q('#live-status').textContent,
  toast: q('#toast').hidden ? '' : q('#toast').textContent,
};
"""


class Checks:
    def __init__(self):
        self.failed = []

    def check(self, name, ok, detail=""):
        print(("PASS " if ok else "FAIL ") + name + ("" if ok else "  -- " + str(detail)), flush=True)
        if not ok:
            self.failed.append(name)
        return ok


LIVE_JS = """
const toks = Array.from(document.querySelectorAll('#token-view [data-testid=token]')).map(t => t.textContent).join('');
const curves = {};
for (const p of document.querySelectorAll('#curve-chart path.curve')) curves[p.dataset.series] = p.getAttribute('d');
return {text: toks, curves: curves};
"""


def api(base, path):
    with urllib.request.urlopen(base.rstrip("/") + "/" + path, timeout=30) as r:
        return json.loads(r.read())


def latest_run(base):
    """The newest saved run on the server, in full."""
    items = api(base, "api/runs?limit=1")
    items = items.get("runs", items.get("items", items)) if isinstance(items, dict) else items
    return api(base, "api/runs/" + items[0]["id"])


def steer_check(d, c, a, shot):
    """Steering from the dashboard: the panel lists the server's traits; a moved slider steers the next generation."""
    traits = api(a.base_url, "api/traits")["traits"]
    rows = d.wait("const n = document.querySelectorAll('#steer-list [data-testid=steer-row]').length; return n ? n : null;", 10)
    c.check("steering panel lists every server trait (%d)" % len(traits), rows == len(traits), (rows, [t["name"] for t in traits]))
    base = d.js(LIVE_JS)
    base_run = latest_run(a.base_url)
    found = d.js("const r = document.querySelector('#steer-list [data-trait=\"' + arguments[0] + '\"] input.coef');"
                 "if (!r) return false; r.value = arguments[1];"
                 "r.dispatchEvent(new Event('input', {bubbles: true})); r.dispatchEvent(new Event('change', {bubbles: true})); return true;",
                 a.steer_trait, a.steer_coef)
    c.check("steering slider for %s found" % a.steer_trait, bool(found))
    shot("02b-slider-moved")
    d.click("#generate-btn")
    done = d.wait("const t = document.getElementById('live-status').textContent; return /^(Done|Error|Stopped|The stream)/.test(t) && "
                  "document.querySelectorAll('#token-view [data-testid=token]').length > 0 ? t : null;", a.timeout)
    c.check("steered generation finishes", bool(done) and str(done).startswith("Done"), done)
    time.sleep(0.5)
    steered = d.js(LIVE_JS)
    shot("02c-steered")
    c.check("steering changes the generated text", steered["text"] != base["text"], (base["text"][:80], steered["text"][:80]))
    c.check("steering changes the %s curve" % a.steer_trait,
            steered["curves"].get(a.steer_trait) not in (None, base["curves"].get(a.steer_trait)), list(steered["curves"]))
    run = latest_run(a.base_url)
    rec = [s for s in (run.get("steering") or []) if s.get("trait") == a.steer_trait]
    c.check("the saved run records the slider's steering", bool(rec) and abs(rec[0].get("coef", 0) - a.steer_coef) < 1e-6, run.get("steering"))
    mean = lambda r: sum(r["trait_scores"][a.steer_trait]) / max(1, len(r["trait_scores"][a.steer_trait]))
    shift = mean(run) - mean(base_run)
    c.check("the %s score moves in the sign of the coefficient (%+.2f)" % (a.steer_trait, shift), shift * a.steer_coef > 0,
            (mean(base_run), mean(run)))
    # back to unsteered for the rest of the test
    d.js("const r = document.querySelector('#steer-list [data-trait=\"' + arguments[0] + '\"] input.coef'); r.value = 0;"
         "r.dispatchEvent(new Event('input', {bubbles: true}));", a.steer_trait)


def system_check(d, c, a, shot):
    """A system prompt from the Generate tab reaches the model through the chat template."""
    d.js("document.getElementById('live-system').value = arguments[0];", a.system)
    d.click("#generate-btn")
    done = d.wait("const t = document.getElementById('live-status').textContent; return /^(Done|Error|Stopped|The stream)/.test(t) ? t : null;", a.timeout)
    c.check("generation with a system prompt finishes", bool(done) and str(done).startswith("Done"), done)
    run = latest_run(a.base_url)
    c.check("the saved run's prompt holds the system prompt", a.system in (run.get("prompt_text") or ""), (run.get("prompt_text") or "")[:200])
    c.check("the saved run's prompt is the user turn", run.get("prompt") == a.prompt, run.get("prompt"))
    shot("02d-system")
    d.js("document.getElementById('live-system').value = '';")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--base-url", required=True, help="dashboard URL, e.g. http://127.0.0.1:8000/")
    ap.add_argument("--out", required=True, help="folder for screenshots")
    ap.add_argument("--generate", action="store_true", help="also run a live generation (needs a server with a model)")
    ap.add_argument("--prompt", default="Once upon a time")
    ap.add_argument("--max-tokens", type=int, default=24)
    ap.add_argument("--pertoken", default=DEFAULT_PERTOKEN, help="per-token project result list to drop")
    ap.add_argument("--layers-file", default=DEFAULT_LAYERS, help="layer_comparison.json to load with the file input ('' to skip)")
    ap.add_argument("--chromium", default=shutil.which("chromium") or "/usr/bin/chromium")
    ap.add_argument("--chromedriver", default=shutil.which("chromedriver") or "/usr/bin/chromedriver")
    ap.add_argument("--timeout", type=float, default=120, help="seconds to wait for a live generation")
    ap.add_argument("--steer-trait", help="with --generate: move this trait's steering slider and generate again")
    ap.add_argument("--steer-coef", type=float, default=2.0, help="the slider value for --steer-trait")
    ap.add_argument("--system", help="with --generate: generate once more with this system prompt")
    ap.add_argument("--sweep", help="a sweep.json of persona evaluate steering to open with the file input")
    ap.add_argument("--monitor-eval", help="a monitor-eval.json of persona evaluate monitor to open with the file input")
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    c = Checks()
    d = Driver(a.chromedriver, a.chromium, 1400, 900)
    shot = lambda name: d.screenshot(os.path.join(a.out, name + ".png"))
    try:
        d.get(a.base_url)
        c.check("page loads", d.wait("return !!(window.PersonaScope && document.getElementById('run-list'))", 15), "window.PersonaScope missing")
        server = d.wait("const s = document.getElementById('server-status').dataset.state; return s !== 'checking' ? s : null;", 15)
        c.check("server badge settles", server in ("online", "nomodel", "offline"), server)
        time.sleep(0.5)
        shot("01-loaded")

        if a.generate:
            d.click("#tab-live")
            d.js("document.getElementById('live-prompt').value = arguments[0];"
                 "document.getElementById('live-max-tokens').value = arguments[1];", a.prompt, a.max_tokens)
            before = d.js(STATE_JS)["serverRuns"]
            d.click("#generate-btn")
            streamed = d.wait("return document.querySelectorAll('#token-view [data-testid=token]').length > 0 && "
                              "document.querySelectorAll('#curve-chart path.curve').length > 0", a.timeout)
            c.check("live generation streams tokens and curves", bool(streamed), d.js(STATE_JS))
            done = d.wait("const t = document.getElementById('live-status').textContent; return /^(Done|Error|Stopped|The stream)/.test(t) ? t : null;", a.timeout)
            c.check("live generation finishes", bool(done) and str(done).startswith("Done"), done)
            st = d.js(STATE_JS)
            c.check("generated run has tokens and curves", st["tokens"] > 0 and st["curves"] > 0, st)
            listed = d.wait("return document.querySelectorAll('[data-testid=run-item][data-source=server]').length > arguments[0] || "
                            "document.querySelectorAll('[data-testid=run-item][data-source=file]').length > 0", 15, before)
            c.check("generated run appears in the run list", bool(listed), d.js(STATE_JS))
            shot("02-generated")
            if a.steer_trait:
                steer_check(d, c, a, shot)
            if a.system:
                system_check(d, c, a, shot)
            d.click("#tab-runs")

        with open(a.pertoken, encoding="utf-8") as f:
            text = f.read()
        n_entries = len(json.loads(text))
        before = d.js(STATE_JS)["fileRuns"]  # an unsaved live run is listed as a local run too
        d.js(DROP_JS, os.path.basename(a.pertoken), text)
        loaded = d.wait("const n = document.querySelectorAll('[data-testid=run-item][data-source=file]').length; return n > arguments[0] ? n : null;", 10, before)
        c.check("dropped per-token file loads all entries", loaded == before + n_entries, "%s listed, expected %d" % (loaded, before + n_entries))
        st = d.wait("const n = document.querySelectorAll('#token-view [data-testid=token]').length; return n ? n : null;", 10)
        c.check("dropped run shows tokens", bool(st), st)
        st0 = d.js(STATE_JS)
        c.check("curves drawn for every trait", st0["curves"] == len(st0["bars"]) and st0["curves"] > 0, st0)
        c.check("slider starts at token 1", st0["position"] is not None and st0["position"].startswith("1 /"), st0["position"])
        shot("03-dropped")

        # The trailing average must match the per-token project's own precomputed running averages.
        entries = json.loads(text)
        worst = 0.0
        checked = 0
        for e in entries:
            scores = e.get("projections") or e.get("trait_scores") or {}
            for t, xs in scores.items():
                for w in (5, 10):
                    ref = e.get("%s_running_avg_%d" % (t, w))
                    if not isinstance(ref, list):
                        continue
                    got = d.js("return PS.trailingAverage(arguments[0], arguments[1]);", xs, w)
                    worst = max([worst] + [abs(g - r) for g, r in zip(got, ref)])
                    checked += 1
        if checked:
            c.check("trailing average matches the per-token project's running averages (%d series)" % checked, worst < 1e-9, worst)

        # Move by keyboard on the token view, then by the slider.
        d.send_keys("#token-view", ARROW_RIGHT * 5)
        st1 = d.js(STATE_JS)
        c.check("arrow keys move the cursor", st1["slider"] == 5 and st1["position"].startswith("6 /"), st1)
        c.check("curve cursor follows", st1["cursor"] == "5", st1["cursor"])
        c.check("current token highlighted", st1["current"] == 5, st1["current"])
        c.check("snapshot changes with the cursor", st1["bars"] != st0["bars"], (st0["bars"], st1["bars"]))
        d.js("const s = document.getElementById('token-slider'); s.value = 42; s.dispatchEvent(new Event('input', {bubbles: true}));")
        st2 = d.js(STATE_JS)
        c.check("slider moves the cursor", st2["position"].startswith("43 /") and st2["cursor"] == "42" and st2["current"] == 42, st2)
        c.check("snapshot changes with the slider", st2["bars"] != st1["bars"], (st1["bars"], st2["bars"]))
        d.send_keys("#token-view", END)
        st3 = d.js(STATE_JS)
        c.check("End jumps to the last token", st3["position"] is not None and st3["position"].split(" / ")[0] == st3["position"].split(" / ")[1], st3["position"])
        shot("04-scrubbed")

        c.check("a decision point is listed", st3["decisions"] > 0, st3["decisions"])
        if st3["decisions"]:
            idx = d.js("const b = document.querySelectorAll('[data-testid=decision-point]'); const x = b[b.length > 1 ? 1 : 0]; x.click(); return Number(x.dataset.index);")
            st4 = d.js(STATE_JS)
            c.check("clicking a decision point moves the cursor", st4["slider"] == idx and st4["cursor"] == str(idx), (idx, st4))

        # Compare two file runs: overlay chart appears with a shared cursor.
        d.js("document.querySelectorAll('[data-testid=run-compare][data-run-key]')[1].click();")
        cmp_ok = d.wait("return document.querySelectorAll('#compare-chart path.curve').length > 0 && !!document.getElementById('compare-cursor')", 5)
        c.check("comparison chart shows runs A and B", bool(cmp_ok))
        d.js("document.getElementById('compare-card').scrollIntoView();")
        shot("05-compare")

        if a.layers_file:
            d.send_keys("#file-input", os.path.abspath(a.layers_file))
            more = d.wait("return document.querySelectorAll('[data-testid=run-item][data-source=file]').length > arguments[0]", 10, before + n_entries)
            c.check("file input loads layer_comparison.json", bool(more), d.js(STATE_JS))

        # A run whose answer has characters split over byte tokens (<0xNN> in its tokens): the response view
        # shows the characters, each on the token that completes it, and the tokens before it as partial.
        split_run = {"schema": "personascope.run/1", "id": "split-chars", "prompt": "Say hello in Thai",
                     "response": "Thai: \u0e01\u0e25!", "trait_scores": {"evil": [0, 1, 2, 3, 4, 5, 6, 7, 8]},
                     "tokens": ["Th", "ai", ":", " ", "<0xE0><0xB8>", "<0x81>", "<0xE0><0xB8>", "<0xA5>", "!"]}
        d.js(DROP_JS, "split-chars.json", json.dumps(split_run))
        shown = d.wait("var t = document.querySelectorAll('#token-view [data-testid=token]');"
                       "return t.length == 9 ? Array.from(t).map(function (e) { return [e.textContent, e.classList.contains('partial')]; }) : null;", 10)
        ok = bool(shown) and "".join(x[0] for x in shown) == split_run["response"] and [x[1] for x in shown] == [False] * 4 + [True, False, True, False, False]
        c.check("characters split over byte tokens read as text", ok, shown)
        shot("05b-split-characters")

        if a.sweep:
            with open(a.sweep) as f:
                sw = json.load(f)
            d.send_keys("#file-input", os.path.abspath(a.sweep))
            n = d.wait("return document.querySelectorAll('[data-testid=sweep-cell]').length", 10)
            c.check("sweep view draws both heatmaps (%d settings)" % len(sw["cells"]), n == 2 * len(sw["cells"]), n)
            last = d.js("var cs = document.querySelectorAll('[data-testid=sweep-cell]'); var g = cs[cs.length - 1];"
                        "g.dispatchEvent(new MouseEvent('click', {bubbles: true})); return [Number(g.dataset.row), Number(g.dataset.coef)];")
            mine = [x for x in sw["answers"] if x["row"] == last[0] and abs(x["coef"] - last[1]) < 1e-6]
            shown = d.wait("var a = document.querySelectorAll('[data-testid=sweep-answer] .steered');"
                           "return a.length == arguments[0] ? Array.from(a).map(function (e) { return e.textContent; }) : null;", 5, len(mine))
            ok = bool(shown) and all(m["answer"].strip()[:40] in t for m, t in zip(mine, shown))
            c.check("clicking a sweep cell shows that setting's answers (%d)" % len(mine), ok, (last, shown))
            shot("07-sweep")
        if a.monitor_eval:
            with open(a.monitor_eval) as f:
                me = json.load(f)
            d.send_keys("#file-input", os.path.abspath(a.monitor_eval))
            n = d.wait("return document.querySelectorAll('[data-testid=scatter-point]').length", 10)
            c.check("monitor validation scatter shows every point (%d)" % len(me["points"]), n == len(me["points"]), n)
            rows = d.js("return document.querySelectorAll('[data-testid=monitor-eval-table] tbody tr').length")
            c.check("monitor validation table lists the rows", rows == len(me["rows"]) - 1, rows)
            shot("08-monitor-eval")

        # HTTP error statuses (e.g. 503 from /api/model without a model) are logged as "network"; only script errors count.
        errors = [e for e in d.browser_log() if e.get("level") == "SEVERE" and e.get("source") != "network"]
        c.check("no JavaScript errors", not errors, errors[:5])
        d.js("window.scrollTo(0, 0)")
        shot("06-final")
    except Exception as e:  # report, keep the screenshots taken so far
        c.check("test ran to completion", False, repr(e))
        try:
            shot("99-error")
        except Exception:
            pass
    finally:
        d.close()
    print("%d check(s) failed" % len(c.failed) if c.failed else "all checks passed")
    return 1 if c.failed else 0


if __name__ == "__main__":
    sys.exit(main())
