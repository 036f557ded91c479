#!/usr/bin/env bash
# mailsec tests: install what is missing, build the plugin and the unit tests,
# run the unit tests (cmocka, through ctest) and the tshark-level tests (pytest,
# real tshark as an unprivileged user) over the bundled real-server captures and
# the real-world corpus in ../shared/realworld. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")"
bash scripts/setup.sh --tests

echo "mailsec: building the plugin (plain and sanitized) and the unit tests" >&2
log=$(mktemp /tmp/mailsec-build.XXXXXX)
# build-asan: the plugin with AddressSanitizer and UBSan, for tests/tshark/test_hostile.py
if ! { cmake -S . -B build -DMAILSEC_BUILD_TESTS=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo &&
       cmake --build build -j2 &&
       cmake -S . -B build-asan -DMAILSEC_BUILD_TESTS=OFF -DMAILSEC_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug &&
       cmake --build build-asan -j2; } >"$log" 2>&1; then
    tail -n 25 "$log" >&2
    echo "test.sh: the build failed (full log: $log)" >&2
    exit 3
fi
rm -f "$log"

(cd build && ctest --output-on-failure)
# -p no:cacheprovider: the clone may not be writable for pytest's cache
# -n auto: one pytest-xdist worker per core (conftest.py keeps the tests of one
# capture on one worker); -n N or -p no:xdist among the arguments overrides it.
# Debian's python3, where python3-pytest is installed (a pyenv python may come first in PATH)
jobs=(-n auto)
for a in "$@"; do
    case $a in -n|-n?*|--numprocesses|--numprocesses=*|*no:xdist) jobs=() ;; esac
done
/usr/bin/python3 -m pytest -p no:cacheprovider -q "${jobs[@]}" tests/tshark "$@"
