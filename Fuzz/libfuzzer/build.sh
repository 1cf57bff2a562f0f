#!/bin/bash
# Builds libFuzzer targets (coverage-guided, with AddressSanitizer) for the GGUF, safetensors and tokenizer.json
# parsers, outside SwiftPM: each module is compiled with swiftc -sanitize=fuzzer,address into one build folder.
# Usage: Fuzz/libfuzzer/build.sh [BUILD_DIR]   (Linux; default BUILD_DIR /tmp/persona-libfuzzer)
# Then:  BUILD_DIR/fuzz-gguf Fuzz/corpus/gguf -max_total_time=600    (see docs/security.md)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
B=${1:-/tmp/persona-libfuzzer}
mkdir -p "$B"
S="$ROOT/Sources"
SAN="-sanitize=fuzzer,address"
cat > "$B/module.modulemap" <<MAP
module CPersonaKernels { header "$S/CPersonaKernels/include/kernels.h" export * }
MAP
# C kernels: plain optimised objects (not the code under test).
for c in "$S"/CPersonaKernels/*.c; do
  clang -O2 -fno-math-errno -I "$S/CPersonaKernels/include" -c "$c" -o "$B/$(basename "$c" .c).o"
done
mod() {  # name, sources...
  local name=$1; shift
  swiftc -parse-as-library -swift-version 5 -O -g $SAN -enable-testing -module-name "$name" -I "$B" \
    -emit-module -emit-module-path "$B/$name.swiftmodule" -wmo -c "$@" -o "$B/$name.o"
}
mod PersonaTensor "$S"/PersonaTensor/*.swift
mod PersonaFormats "$S"/PersonaFormats/*.swift
mod PersonaTokenizers $(find "$S/PersonaTokenizers" -name '*.swift')
for t in gguf safetensors tokenizer_json; do
  swiftc -parse-as-library -swift-version 5 -O -g $SAN -I "$B" -module-name "Fuzz_$t" "$ROOT/Fuzz/libfuzzer/$t.swift" \
    "$B"/PersonaTensor.o "$B"/PersonaFormats.o "$B"/PersonaTokenizers.o "$B"/kernels.o "$B"/kernels_x86.o "$B"/pool.o "$B"/finite.o \
    -lpthread -o "$B/fuzz-$t"
done
echo "built: $B/fuzz-gguf $B/fuzz-safetensors $B/fuzz-tokenizer_json"
