#!/usr/bin/env bash
# Rebuilds the bundled example data from the real stories260K model with our own tool:
# trait vectors from contrastive story texts (examples/stories/*.txt), then monitored (and steered) runs
# that `persona serve` shows on a fresh machine. Deterministic (greedy).
set -euo pipefail
cd "$(dirname "$0")/.."
P=${PERSONA:-.build/debug/persona}
S=${STORIES:-../shared/models/stories260K/stories260K.gguf}
V=examples/vectors/stories260K
E=Sources/persona/Examples
mkdir -p "$V" "$E"
"$P" contrast --model "$S" --positive examples/stories/happy.txt --negative examples/stories/sad.txt --trait happy \
  --meaning "cheerful, joyful story (+) vs sad, upsetting story (-)" --out "$V/happy.safetensors" --report "$V/happy.report.json"
"$P" contrast --model "$S" --positive examples/stories/calm.txt --negative examples/stories/scary.txt --trait calm \
  --meaning "calm, quiet story (+) vs scary, frightening story (-)" --out "$V/calm.safetensors" --report "$V/calm.report.json"
run() { "$P" monitor --model "$S" --vectors "$V" --max-tokens 96 --layers all "$@"; }
run --prompt "Once upon a time" --out "$E/01-once-upon-a-time.json"
run --prompt "Once upon a time" --steer happy:-6 --out "$E/02-once-upon-a-time-steered-sad.json"
run --prompt "Once upon a time" --steer happy:6 --out "$E/03-once-upon-a-time-steered-happy.json"
run --prompt "Tom was scared of the dark" --out "$E/04-tom-scared.json"
run --prompt "Lily and her mom went to the park" --out "$E/05-lily-park.json"
run --prompt "The big storm came" --include-prompt --out "$E/06-storm.json"
run --prompt "Once upon a time" --steer happy:4 --steer-when "happy<0" --out "$E/07-closed-loop-happy.json"
