#!/usr/bin/env bash
# mailsec main job: install what is missing, build the plugin, load it into the
# real tshark and print the forensic findings for the bundled captures or for
# the capture (and optional TLS key log) given as arguments.
set -euo pipefail
cd "$(dirname "$0")"
bash scripts/setup.sh
cmake -S . -B build -DMAILSEC_BUILD_TESTS=OFF -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j2 >/dev/null
abs=()
for a in "$@"; do abs+=("$(realpath "$a")"); done
exec /usr/bin/python3 scripts/report.py --plugin build/mailsec.so "${abs[@]}"
