#!/usr/bin/env python3
"""Renders docs/traits-smollm2.md from examples/vectors/smollm2/ (written by Scripts/make_smollm2_vectors.sh):
per trait the held-out separation by row (AUROC, Cohen's d), the recommended rows and sample answers unsteered /
steered. Standard library only; run from anywhere."""
import json
import os

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
V = os.path.join(REPO, "examples", "vectors", "smollm2")
OUT = os.path.join(REPO, "docs", "traits-smollm2.md")
TRAITS = ["evil", "sycophantic", "refusal", "uncertainty", "verbosity", "overconfidence", "corrigibility", "hallucinating"]
STEER_ROW = 15  # TraitVector.defaultSteeringRow for a 30-block model: (30 + 1) / 2


def load(path):
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def clip(text, n=260):
    text = " ".join(text.split())
    return text if len(text) <= n else text[: n - 1] + "…"


def main():
    lines = [
        "# The shipped SmolLM2-135M-Instruct trait vectors",
        "",
        "`examples/vectors/smollm2/` holds the 8 traits extracted from the real SmolLM2-135M-Instruct (Q4_1 GGUF in",
        "`../shared/models/smollm2-135m-instruct/`) with `persona extract`, one file per trait holding the three",
        "persona_vectors averages (`response_avg` is the default; `trait@prompt_avg` selects another). Made by",
        "`Scripts/make_smollm2_vectors.sh` (recipe, seeds and options are at its top and in `reports/<trait>.run.json`);",
        "this page is rendered from those files by `Scripts/smollm2_traits_doc.py`.",
        "",
        "Rows are Hugging Face hidden-state rows (row l = output of block l-1; row 30 = after the final norm).",
        "*Separation* is measured on the held-out eval questions (20 questions x 5 instruction pairs, answers generated",
        "under the positive and the negative system prompt): AUROC of the mean response projection, positive vs",
        "negative answers, and Cohen's d of the same projections. The *monitoring row* (stored as `recommended_row`) is",
        f"the row with the best held-out AUROC; steering defaults to the middle row ({STEER_ROW}) because adding a vector",
        "at the last rows only reaches the unembedding (see `TraitVector.defaultSteeringRow`); `persona evaluate",
        "steering` (a later issue) will measure the steering row and coefficient instead.",
        "",
        "## What these numbers can and cannot say",
        "",
        "- **No judge was reachable** when these were made (no OpenAI-compatible model beyond SmolLM2 itself), so",
        "  extraction ran with `--judge none`: every pair with non-empty answers was kept. persona_vectors keeps only",
        "  pairs whose positive answer a judge scores as showing the trait (>= 50) and whose negative answer does not.",
        "  Here, a pair where the 135M model ignored its system prompt still counts, so the vectors are the difference",
        "  between *asked-to-be-evil* and *asked-to-be-helpful* answers, not between judged-evil and judged-good ones.",
        "- For the same reason the separation below is between the two *prompt conditions* on held-out questions, not",
        "  between judged trait levels. High AUROC at late rows partly reflects the system prompt itself, which every",
        "  answer token attends to.",
        "- SmolLM2-135M follows persona instructions weakly; some traits (corrigibility, overconfidence) are barely",
        "  expressed in its text at all. Sample answers are one greedy answer each, not a measured effect size.",
        "",
        "## Summary",
        "",
        "| trait | pairs (pos/neg) | monitoring row | AUROC | Cohen's d | AUROC at row %d | d at row %d |" % (STEER_ROW, STEER_ROW),
        "|---|---|---|---|---|---|---|",
    ]
    details = []
    for t in TRAITS:
        rp = os.path.join(V, "reports", t + ".layer_report.json")
        if not os.path.exists(rp):
            continue
        reports = load(rp)
        rep = next(r for r in reports if r["method"] == "response_avg")
        rows = {r["row"]: r for r in rep["rows"]}
        best = rows[rep["recommendedRow"]]
        mid = rows[STEER_ROW]
        lines.append("| %s | %d/%d | %d | %.3f | %.2f | %.3f | %.2f |" % (
            t, rep["evalPositive"], rep["evalNegative"], rep["recommendedRow"], best["auroc"], best["cohensD"],
            mid["auroc"], mid["cohensD"]))
        details += ["", "## %s" % t, ""]
        run = load(os.path.join(V, "reports", t + ".run.json"))
        pos = run.get("traitDefinition", {}).get("positive") or run.get("traitDefinition", {}).get("positive_meaning")
        if pos:
            details += ["Positive direction: %s" % pos, ""]
        details += ["| row | AUROC | Cohen's d | ||v|| |", "|---|---|---|---|"]
        for r in sorted(rows):
            if r % 5 == 0 or r in (rep["recommendedRow"], 1, STEER_ROW):
                x = rows[r]
                mark = " (monitoring)" if r == rep["recommendedRow"] else (" (steering default)" if r == STEER_ROW else "")
                details.append("| %d%s | %.3f | %.2f | %.2f |" % (r, mark, x["auroc"], x["cohensD"], x["norm"]))
        sp = os.path.join(V, "samples", t + ".json")
        if os.path.exists(sp):
            s = load(sp)
            c = s["coef"]
            details += ["", "Held-out question: *%s* (greedy, 48 tokens, steering at row %d, score = mean projection at the"
                        " monitoring row)" % (s["question"], STEER_ROW), ""]
            details += ["| steering | mean score | answer |", "|---|---|---|"]
            for k, label in (("-%g" % c, "%s:-%g" % (t, c)), ("0", "none"), ("%g" % c, "%s:+%g" % (t, c))):
                a = s["answers"].get(k)
                if a is None:
                    continue
                details.append("| %s | %+.2f | %s |" % (label, a["mean_score"], clip(a["text"]).replace("|", "\\|")))
    with open(OUT, "w", encoding="utf-8") as f:
        f.write("\n".join(lines + details) + "\n")
    print("wrote", os.path.relpath(OUT, REPO))


if __name__ == "__main__":
    main()
