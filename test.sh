#!/usr/bin/env bash
# mailsec tests: install what is missing, build the plugin and the unit tests,
# run the unit tests (cmocka, through ctest) and the tshark-level tests (pytest,
# real tshark as an unprivileged user) over the bundled real-server captures and
# the real-world corpus in ../shared/realworld.
set -euo pipefail
cd "$(dirname "$0")"
bash scripts/setup.sh
cmake -S . -B build -DMAILSEC_BUILD_TESTS=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j2 >/dev/null
(cd build && ctest --output-on-failure)
# -p no:cacheprovider: the clone may not be writable for pytest's cache
# Debian's python3, where python3-pytest is installed (a pyenv python may come first in PATH)
/usr/bin/python3 -m pytest -p no:cacheprovider -q tests/tshark "$@"
