#!/usr/bin/env bash
# Builds dist/persona-linux-<arch>: one file to copy to any x86_64/aarch64 Linux with glibc and libstdc++
# (every Debian/Ubuntu/Fedora install has both), nothing else. The Swift runtime, Foundation, SQLite and zlib
# are linked in; HTTP is SwiftNIO + BoringSSL (no libcurl); the trait definitions, the dashboard and the example
# runs ride along as a ustar archive appended to the binary, unpacked on first use into ~/.cache/persona.
# Needs (build machine only): the Swift toolchain and Debian's libsqlite3-dev and zlib1g-dev (static archives).
# Usage: Scripts/build_release.sh [OUT_DIR]     (default dist/)
set -euo pipefail
cd "$(dirname "$0")/.."
out_dir=${1:-dist}
arch=$(uname -m)
libdir=$(dirname "$(gcc -print-file-name=libc.so.6 2>/dev/null || echo /usr/lib/x86_64-linux-gnu/libc.so.6)")
for lib in sqlite3 z; do
  for d in "$libdir" /usr/lib/"$arch"-linux-gnu /usr/lib; do
    [ -f "$d/lib$lib.a" ] && { a="$d/lib$lib.a"; break; }
  done
  [ -n "${a:-}" ] || { echo "lib$lib.a not found: install libsqlite3-dev and zlib1g-dev" >&2; exit 1; }
  mkdir -p .build/static-libs && ln -sf "$a" ".build/static-libs/lib$lib.a"; unset a
done

# A folder holding only the static archives, searched before the system's: -lsqlite3 and -lz pick the .a files.
swift build -c release --product persona --static-swift-stdlib -Xlinker -L"$PWD/.build/static-libs"
bin=$(swift build -c release --product persona --show-bin-path)

mkdir -p "$out_dir"
target="$out_dir/persona-linux-$arch"
strip -o "$target.tmp" "$bin/persona"
tarball=$(mktemp)
trap 'rm -f "$tarball" "$target.tmp"' EXIT
(cd "$bin" && tar --format=ustar --owner=0 --group=0 --numeric-owner -cf "$tarball" PersonaScope_*.resources)
cat "$tarball" >>"$target.tmp"
python3 - "$target.tmp" "$(stat -c %s "$tarball")" <<'PY'
import struct, sys
with open(sys.argv[1], "ab") as f:
    f.write(struct.pack("<Q", int(sys.argv[2])) + b"PERSONA\0")
PY
chmod +x "$target.tmp"
mv "$target.tmp" "$target"
echo "$target ($(du -h "$target" | cut -f1)); needs at run time:"
ldd "$target" | awk '{print "  " $1}'
