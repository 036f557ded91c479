#!/usr/bin/env bash
# fuzz/build.sh — build the libFuzzer targets (fuzz/fuzz_*.c) into fuzz/build/.
#
#   fuzz/build.sh            every target
#   fuzz/build.sh seq msg    only these (fuzz_seq, fuzz_msg)
#
# Each target is linked with the pure core (plugin/core/*.c), compiled here
# from its sources with the same sanitizers: no CMake, no epan, no glib.
# CC overrides the compiler (it must be clang: libFuzzer ships with it).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/.." && pwd)"
core="$root/plugin/core"
out="$here/build"
CC="${CC:-clang}"

if ! command -v "$CC" >/dev/null 2>&1; then
    echo "fuzz/build.sh: $CC not found: install clang (apt-get install clang)" >&2
    exit 2
fi
if ! "$CC" --version 2>/dev/null | grep -qi clang; then
    echo "fuzz/build.sh: $CC is not clang: libFuzzer needs clang (apt-get install clang)" >&2
    exit 2
fi

SAN=(-fsanitize=address,undefined -fno-sanitize-recover=undefined)
CFLAGS=(-g -O1 -std=c11 -Wall -Wextra -fno-omit-frame-pointer -I"$core" -I"$here")

# Does this clang have libFuzzer? (Debian ships it inside the clang package.)
probe="$(mktemp -d)"
trap 'rm -rf "$probe"' EXIT
printf '#include <stdint.h>\n#include <stddef.h>\nint LLVMFuzzerTestOneInput(const uint8_t *d, size_t n) { (void)d; (void)n; return 0; }\n' \
    >"$probe/p.c"
if ! "$CC" -fsanitize=fuzzer "$probe/p.c" -o "$probe/p" 2>"$probe/err"; then
    echo "fuzz/build.sh: $CC cannot link -fsanitize=fuzzer (libFuzzer missing): install clang (apt-get install clang)" >&2
    sed 's/^/  /' "$probe/err" >&2
    exit 2
fi

. "$here/targets.sh"

mkdir -p "$out/core"
# The core, once: coverage for the fuzzer and the same sanitizers as the targets.
for src in "$core"/*.c; do
    obj="$out/core/$(basename "$src" .c).o"
    if [ ! -e "$obj" ] || [ "$src" -nt "$obj" ] || [ -n "$(find "$core" -name '*.h' -newer "$obj" -print -quit)" ]; then
        echo "  CC   core/$(basename "$src")"
        "$CC" "${CFLAGS[@]}" -fsanitize=fuzzer-no-link "${SAN[@]}" -c "$src" -o "$obj"
    fi
done

for t in "${targets[@]}"; do
    t="${t#fuzz_}"
    src="$here/fuzz_$t.c"
    if [ ! -f "$src" ]; then
        echo "fuzz/build.sh: no target $t (fuzz/fuzz_$t.c)" >&2
        exit 2
    fi
    echo "  LINK fuzz_$t"
    "$CC" "${CFLAGS[@]}" -fsanitize=fuzzer "${SAN[@]}" "$src" "$out"/core/*.o -o "$out/fuzz_$t"
done
echo "fuzz/build.sh: built ${#targets[@]} target(s) into fuzz/build/"
