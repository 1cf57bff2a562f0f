#!/usr/bin/env bash
# End-to-end check of `persona cluster slurm` on a real single-node Slurm cluster (start_local_cluster.sh):
# 2 traits x 2 shards of SmolLM2-135M-Instruct (small settings) as one job array plus the dependent merge job.
# While it runs, one shard is killed with scancel and requeued; it must resume its run folder. The merged
# vectors must equal a single-process `persona extract` of the same settings byte for byte, and merges of a
# missing or repeated shard must be refused. Prints PASS/FAIL lines. Usage: Scripts/slurm/cluster_test.sh [BINARY]
set -uo pipefail
cd "$(dirname "$0")/../.."
persona=$(realpath "${1:-.build/debug/persona}")
shared=${PERSONA_SHARED:-$(cd .. && pwd)/shared}
model=$shared/models/smollm2-135m-instruct/SmolLM2-135M-Instruct.Q4_1.gguf
settings=(--judge none --questions 6 --eval-count 2 --max-tokens 16)
work=$(mktemp -d /tmp/persona-slurm-XXXXXX)
chmod 755 "$work"
fail=0
check() { if eval "$2"; then echo "PASS slurm: $1"; else echo "FAIL slurm: $1"; fail=1; fi; }
state() { squeue -h -j "$1" -o %T 2>/dev/null | head -n 1; }
wait_gone() {   # until the job has left the queue (or $2 seconds)
  for _ in $(seq 1 "$2"); do [ -z "$(squeue -h -j "$1" 2>/dev/null)" ] && return 0; sleep 1; done; return 1
}

Scripts/slurm/start_local_cluster.sh || { echo "FAIL slurm: cluster did not start"; exit 1; }
sinfo

out=$work/cluster
submit=$("$persona" cluster slurm --model "$model" --traits evil,refusal --shards-per-trait 2 --out "$out" -- "${settings[@]}" 2>&1)
echo "$submit"
array=$(echo "$submit" | sed -n 's/^array job \([0-9]*\):.*/\1/p')
merge=$(echo "$submit" | sed -n 's/^merge job \([0-9]*\):.*/\1/p')
check "cluster slurm submitted an array job ($array) and a merge job ($merge)" '[ -n "$array" ] && [ -n "$merge" ]'
[ -n "$array" ] && [ -n "$merge" ] || exit 1
check "merge waits for the array" 'scontrol show job "$merge" | grep -q "Dependency=afterany:${array}"'

# Kill shard 1 of evil (task 1) once it has written some responses, then requeue it.
victim=$out/evil/shards/1-of-2
for _ in $(seq 1 240); do
  [ "$({ wc -l <"$victim/responses.jsonl"; } 2>/dev/null || echo 0)" -ge 3 ] && break; sleep 0.5
done
before=$({ wc -l <"$victim/responses.jsonl"; } 2>/dev/null || echo 0)
scancel "${array}_1"
for _ in $(seq 1 30); do case "$(state "${array}_1")" in RUNNING|COMPLETING) sleep 0.5 ;; *) break ;; esac; done
check "task 1 killed mid-run ($before responses written, no sums.json)" '[ "$before" -ge 3 ] && [ ! -f "$victim/sums.json" ]'
scontrol requeue "${array}_1"
check "task 1 requeued" '[ -n "$(squeue -h -j "${array}_1")" ]'

wait_gone "$array" 600
wait_gone "$merge" 300
log1=$(cat "$out"/slurm/logs/extract-"${array}"_1.out)
check "the requeued task resumed its folder" 'echo "$log1" | grep -q "restart 1" && echo "$log1" | grep -q "resuming: [1-9]"'
mlog=$(cat "$out"/slurm/logs/merge-"${merge}".out 2>/dev/null)
echo "$mlog" | tail -n 4
check "merge job wrote both traits" 'echo "$mlog" | grep -q "wrote $out/evil/vectors.safetensors" && echo "$mlog" | grep -q "wrote $out/refusal/vectors.safetensors"'

# The same settings in one process.
"$persona" extract --model "$model" --trait evil,refusal "${settings[@]}" --out "$work/single" >"$work/single.log" 2>&1
for t in evil refusal; do
  check "$t: merged vectors equal the single-process run byte for byte" 'cmp -s "$out/$t/vectors.safetensors" "$work/single/$t/vectors.safetensors"'
done
"$persona" monitor --model "$model" --vectors "$out" --prompt "Hi" --max-tokens 2 --out "$work/m.json" >/dev/null 2>&1
check "the cluster's output folder feeds monitor --vectors (both traits scored)" 'grep -q "\"evil\"" "$work/m.json" && grep -q "\"refusal\"" "$work/m.json"'

# Refusals: a missing shard, a repeated shard.
cp -r "$out/evil/shards" "$work/partial"; rm -rf "$work/partial/1-of-2"
msg=$("$persona" extract merge "$work/partial/0-of-2" --out "$work/m1" 2>&1)
check "merge refuses a missing shard ($msg)" 'echo "$msg" | grep -q "missing"'
msg=$("$persona" extract merge "$work/partial/0-of-2" "$work/partial/0-of-2" --out "$work/m2" 2>&1)
check "merge refuses a repeated shard" 'echo "$msg" | grep -q "repeats"'

[ $fail -eq 0 ] && rm -rf "$work"
exit $fail
