#!/bin/sh
# Builds CPersonaKernels + Scripts/neon/test_neon.c for aarch64 and runs the test under qemu-aarch64, at the
# NEON level and once with PERSONA_SIMD=scalar, in three builds:
#   gcc   -O2 -march=armv8-a                  (baseline ARMv8-A: no dot-product / fp16 instructions)
#   clang -O3 -fno-math-errno -ffp-contract=off -march=armv8-a  (Package.swift's C flags, the compiler Swift uses)
#   clang -O3 -fno-math-errno -ffp-contract=off -mcpu=apple-m1  (what arm64 macOS builds target: dotprod, fp16, ...)
# then a clang --target=aarch64-linux-gnu -fsyntax-only check of every C file of the target.
# Needs: apt-get install -y qemu-user gcc-aarch64-linux-gnu libc6-dev-arm64-cross  (clang: Swift's, if on PATH)
# Exit status non-zero on any failure.
set -eu
root=$(cd "$(dirname "$0")/../.." && pwd)
src="$root/Sources/CPersonaKernels"
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
sysroot=/usr/aarch64-linux-gnu
for tool in aarch64-linux-gnu-gcc qemu-aarch64; do
    command -v "$tool" >/dev/null 2>&1 || { echo "run.sh: $tool not found (apt-get install -y qemu-user gcc-aarch64-linux-gnu libc6-dev-arm64-cross)" >&2; exit 2; }
done
have_clang=0
command -v clang >/dev/null 2>&1 && have_clang=1

status=0
build_and_run() {   # name, compiler and flags...
    name=$1; shift
    echo "== $name"
    if ! "$@" -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -pthread -I"$src/include" -I"$src" \
            "$src"/*.c "$root/Scripts/neon/test_neon.c" -lm -o "$out/t"; then
        echo "FAIL build: $name"; status=1; return
    fi
    for simd in "" scalar; do
        echo "-- PERSONA_SIMD=${simd:-<unset>}"
        PERSONA_SIMD=$simd qemu-aarch64 -L "$sysroot" "$out/t" || status=1
    done
}

build_and_run "gcc -O2 -march=armv8-a" aarch64-linux-gnu-gcc -O2 -march=armv8-a
if [ $have_clang = 1 ]; then
    build_and_run "clang -O3 -fno-math-errno -ffp-contract=off -march=armv8-a" clang --target=aarch64-linux-gnu -fuse-ld=lld -O3 -fno-math-errno -ffp-contract=off -march=armv8-a
    build_and_run "clang -O3 -fno-math-errno -ffp-contract=off -mcpu=apple-m1" clang --target=aarch64-linux-gnu -fuse-ld=lld -O3 -fno-math-errno -ffp-contract=off -mcpu=apple-m1
    n=0
    for f in "$src"/*.c; do
        n=$((n + 1))
        clang --target=aarch64-linux-gnu -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -fsyntax-only -I"$src/include" -I"$src" "$f" \
            || { echo "FAIL clang aarch64 syntax check: $f"; status=1; }
    done
    echo "== clang --target=aarch64-linux-gnu -fsyntax-only: $n files"
else
    echo "(no clang on PATH: clang builds and syntax check skipped)"
fi
[ $status = 0 ] && echo "neon run.sh: all passed" || echo "neon run.sh: FAILED"
exit $status
