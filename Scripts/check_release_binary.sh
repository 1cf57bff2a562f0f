#!/usr/bin/env bash
# Runs a release binary (Scripts/build_release.sh) in a chroot that holds nothing but the binary, the shared
# libraries `ldd` names (glibc, libstdc++, libgcc_s) and a model: no Swift, no source tree, no bundle folders.
# It must list the built-in traits, generate the same text as the development build, and serve the dashboard and
# the bundled example runs. Needs root (chroot, mount). Usage: Scripts/check_release_binary.sh BINARY [REFERENCE_BINARY]
set -uo pipefail
bin=$1
ref=${2:-$(cd "$(dirname "$0")/.." && pwd)/.build/debug/persona}
shared=${PERSONA_SHARED:-$(cd "$(dirname "$0")/../.." && pwd)/shared}
model=$shared/models/stories260K/stories260K.gguf
root=$(mktemp -d)
fail=0
check() { if eval "$2"; then echo "PASS release binary: $1"; else echo "FAIL release binary: $1"; fail=1; fi; }
cleanup() { kill "${serve_pid:-}" 2>/dev/null; umount "$root/proc" 2>/dev/null; rm -rf "$root"; }
trap cleanup EXIT

mkdir -p "$root/tmp" "$root/proc" "$root/home/user" "$root/m"
cp "$bin" "$root/persona"
for lib in $(ldd "$bin" | grep -oE "/[^ ]+"); do mkdir -p "$root$(dirname "$lib")"; cp -L "$lib" "$root$lib"; done
cp "$model" "$root/m/"
echo "chroot holds: $(cd "$root" && find . -type f | sort | tr '\n' ' ')"
mount -t proc proc "$root/proc" || echo "note: /proc not mounted in the chroot"
chroot=$(command -v chroot)
run() { env -i HOME=/home/user "$chroot" "$root" /persona "$@"; }

traits=$(run traits list 2>&1 | awk '{print $1}' | tr '\n' ' ')
check "built-in traits from the appended archive ($traits)" '[ "$(echo $traits | wc -w)" -eq 8 ]'
check "resources unpacked into the cache" '[ -d "$root/home/user/.cache/persona/resources" ]'
args=(generate --model /m/stories260K.gguf --prompt "Once upon a time" --max-tokens 40 --temperature 0)
got=$(run "${args[@]}" 2>&1)
want=$("$ref" generate --model "$model" --prompt "Once upon a time" --max-tokens 40 --temperature 0 2>&1)
check "greedy generation equals the development build's" '[ -n "$got" ] && [ "$got" = "$want" ]'

port=18799
env -i HOME=/home/user "$chroot" "$root" /persona serve --port $port --runs /tmp/runs >"$root/tmp/serve.log" 2>&1 &
serve_pid=$!
for _ in $(seq 1 30); do curl -sf "http://127.0.0.1:$port/api/health" >/dev/null && break; sleep 1; done
page=$(curl -sf "http://127.0.0.1:$port/" || true)
check "dashboard page served" 'echo "$page" | grep -q "<script"'
runs=$(curl -sf "http://127.0.0.1:$port/api/runs" || true)
check "bundled example runs imported ($(echo "$runs" | grep -o '"id"' | wc -l) ids)" '[ "$(echo "$runs" | grep -o "\"id\"" | wc -l)" -ge 8 ]'
[ $fail -eq 0 ] || cat "$root/tmp/serve.log"
exit $fail
