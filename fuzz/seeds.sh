#!/usr/bin/env bash
# fuzz/seeds.sh — build the seed corpora, one per target, in fuzz/corpus-work/<target>/.
#
#   fuzz/seeds.sh            add seeds (what the fuzzers added before stays)
#   fuzz/seeds.sh --clean    start the corpora afresh
#
# Seeds come from the bundled captures (captures/real/*.pcapng, with the TLS
# key logs next to them for the decrypted side), the real-world captures in
# ../shared/realworld (MANIFEST.tsv) and the hostile ones in ../shared/hostile;
# tshark reads the TCP payloads of each stream and direction, fuzz/seeds.py
# writes them in each target's input format (the session and imap targets get
# whole sessions as DATA_AT / DECRYPTED operations). A few hand-made seeds per
# target are always written, so the fuzzers have a start without tshark.
# Seeds are capped in number and size (fuzz/seeds.py: MAX_SEEDS, MAX_LEN).
# MAILSEC_SHARED overrides where ../shared lies.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/.." && pwd)"
shared="${MAILSEC_SHARED:-$root/../shared}"
out="$here/corpus-work"

if [ "${1:-}" = "--clean" ]; then
    rm -rf "$out"
    shift
fi
mkdir -p "$out"

if ! command -v python3 >/dev/null 2>&1; then
    echo "fuzz/seeds.sh: python3 not found (apt-get install python3)" >&2
    exit 2
fi

caps=()
if command -v tshark >/dev/null 2>&1; then
    for f in "$root"/captures/real/*.pcapng; do
        [ -e "$f" ] && caps+=("$f")
    done
    if [ -f "$shared/realworld/MANIFEST.tsv" ]; then
        while IFS=$'\t' read -r path _; do
            [ "$path" = "path" ] && continue
            [ -f "$shared/realworld/$path" ] && caps+=("$shared/realworld/$path")
        done <"$shared/realworld/MANIFEST.tsv"
    else
        echo "fuzz/seeds.sh: no $shared/realworld/MANIFEST.tsv: real-world seeds skipped" >&2
    fi
    if [ -d "$shared/hostile" ]; then
        for f in "$shared"/hostile/*.pcap "$shared"/hostile/*.pcapng; do
            [ -e "$f" ] && caps+=("$f")
        done
    else
        echo "fuzz/seeds.sh: no $shared/hostile: hostile seeds skipped" >&2
    fi
else
    echo "fuzz/seeds.sh: tshark not found (apt-get install tshark): only the hand-made seeds" >&2
fi

echo "fuzz/seeds.sh: ${#caps[@]} capture(s) -> fuzz/corpus-work/"
python3 "$here/seeds.py" "$out" "${caps[@]}"
