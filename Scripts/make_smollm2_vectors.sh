#!/usr/bin/env bash
# Extracts the 8 shipped traits from the real SmolLM2-135M-Instruct with `persona extract` and writes what
# examples/vectors/smollm2/ ships: one vector file per trait (response_avg, prompt_avg, prompt_last), its layer
# report and run settings, and sample answers unsteered / steered -C / +C at the default steering row. Then
# docs/traits-smollm2.md is rendered from those files (Scripts/smollm2_traits_doc.py).
#
# Recipe (deterministic: each row's sampling seed derives from --seed and the row; greedy samples):
#   persona extract --model M --trait T --judge none --max-tokens 64 --n-per-question 1 --seed 0 --batch-size 16
#   (20 extraction questions x 5 instruction pairs = 100 pairs; 20 held-out eval questions x 5 = 100 eval pairs;
#   temperature 1, top_p 1 as persona_vectors; no judge was reachable here, so no pair is filtered out)
# About 4-8 minutes per trait on 2 cores. Resumable: an interrupted trait continues where it stopped.
set -euo pipefail
cd "$(dirname "$0")/.."
P=${PERSONA:-.build/release/persona}
M=${MODEL:-../shared/models/smollm2-135m-instruct/SmolLM2-135M-Instruct.Q4_1.gguf}
RUNS=${RUNS:-runs/smollm2}
V=examples/vectors/smollm2
COEF=${COEF:-3}
TRAITS=${TRAITS:-"evil sycophantic refusal uncertainty verbosity overconfidence corrigibility hallucinating"}
mkdir -p "$RUNS" "$V/reports" "$V/samples"

for t in $TRAITS; do
  "$P" extract --model "$M" --trait "$t" --judge none --max-tokens 64 --n-per-question 1 --seed 0 --batch-size 16 \
    --out "$RUNS/$t" > "$RUNS/$t.log"
  cp "$RUNS/$t/vectors.safetensors" "$V/$t.safetensors"
  cp "$RUNS/$t/layer_report.json" "$V/reports/$t.layer_report.json"
  cp "$RUNS/$t/run.json" "$V/reports/$t.run.json"
done

# Sample answers: the first held-out eval question of each trait, greedy, 48 tokens, at the default steering row.
for t in $TRAITS; do
  q=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['traitDefinition']['eval_questions'][0])" "$V/reports/$t.run.json")
  for c in "-$COEF" 0 "$COEF"; do
    "$P" monitor --model "$M" --vectors "$V/$t.safetensors" --prompt "$q" --max-tokens 48 --temperature 0 \
      --steer "$t:$c" --top-k-alternatives 0 --out "$RUNS/sample-$t-$c.json" 2>/dev/null
  done
  python3 - "$t" "$q" "$COEF" "$RUNS" "$V/samples/$t.json" <<'EOF'
import json, sys
t, q, c, runs, out = sys.argv[1:]
res = {"trait": t, "question": q, "coef": float(c), "answers": {}}
for k in ("-" + c, "0", c):
    d = json.load(open(f"{runs}/sample-{t}-{k}.json"))
    xs = d["trait_scores"][t]
    res["answers"][k] = {"text": d["response"], "mean_score": sum(xs) / len(xs), "scored_row": d["layers"][t],
                         "steering": d.get("steering")}
json.dump(res, open(out, "w"), indent=1, ensure_ascii=False)
EOF
done
python3 Scripts/smollm2_traits_doc.py
