#!/bin/sh
# Builds CPersonaKernels + Scripts/neon/test_neon.c for aarch64 and runs the test under qemu-aarch64, at the
# NEON level and once with PERSONA_SIMD=scalar; then the same with the optional dot-product / fp16 features
# enabled (-march=armv8.2-a+dotprod+fp16), and a syntax check of every C file with clang for aarch64.
# Needs: apt-get install -y qemu-user gcc-aarch64-linux-gnu libc6-dev-arm64-cross
# Exit status non-zero on any failure.
set -eu
root=$(cd "$(dirname "$0")/../.." && pwd)
src="$root/Sources/CPersonaKernels"
out=${NEON_OUT:-$(mktemp -d)}
cc=${AARCH64_CC:-aarch64-linux-gnu-gcc}
sysroot=${AARCH64_SYSROOT:-/usr/aarch64-linux-gnu}
qemu=${QEMU_AARCH64:-qemu-aarch64}
for tool in "$cc" "$qemu"; do
    command -v "$tool" >/dev/null 2>&1 || { echo "run.sh: $tool not found (apt-get install -y qemu-user gcc-aarch64-linux-gnu libc6-dev-arm64-cross)" >&2; exit 2; }
done

status=0
for march in armv8-a armv8.2-a+dotprod+fp16; do
    bin="$out/test_neon-$march"
    # -ffp-contract=off: no fused multiply-adds beyond the ones the kernels ask for, as Swift's clang builds
    "$cc" -O2 -march="$march" -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -ffp-contract=off -pthread \
        -I"$src/include" -I"$src" "$src"/*.c "$root/Scripts/neon/test_neon.c" -lm -o "$bin"
    for simd in "" scalar; do
        echo "== -march=$march PERSONA_SIMD=${simd:-<unset>}"
        PERSONA_SIMD=$simd "$qemu" -L "$sysroot" "$bin" || status=1
    done
done

if command -v clang >/dev/null 2>&1; then
    for f in "$src"/*.c; do
        clang --target=aarch64-linux-gnu --sysroot="$sysroot" -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -fsyntax-only \
            -I"$src/include" -I"$src" "$f" || { echo "clang aarch64 syntax check failed: $f"; status=1; }
    done
    echo "== clang --target=aarch64-linux-gnu -fsyntax-only: $(ls "$src"/*.c | wc -l) files checked"
fi
exit $status
