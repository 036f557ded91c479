#!/usr/bin/env bash
# Install the Debian 12 packages mailsec needs to build, run and test, if any
# is missing. The list was found by running the README's commands in a pristine
# debootstrap --variant=minbase root (.ci/fresh-root.sh does that in CI), not
# from memory. Needs root (apt-get) only when something is missing.
#
#   setup.sh          what the main job needs (build the plugin, run tshark)
#   setup.sh --tests  that, and what the tests need
set -euo pipefail

# Build: Wireshark's headers and cmake config; packet-tls-utils.h includes
# wsutil/wsgcrypt.h, which needs gcrypt.h, and no Wireshark -dev package
# depends on libgcrypt20-dev. Run: tshark, setpriv (util-linux) to drop root;
# many captures (run.sh --db): GNU parallel, and SQLite (python3's module, the
# sqlite3 shell to read the database).
want=(tshark libwireshark-dev libwiretap-dev wireshark-dev libgcrypt20-dev libglib2.0-dev
      cmake gcc make pkg-config python3 util-linux parallel sqlite3)
if [ "${1:-}" = --tests ]; then
    # and the real GUI under Xvfb (tests/tshark/test_gui.py, scripts/gui.sh)
    want+=(python3-pytest python3-pytest-xdist libcmocka-dev
           wireshark-qt xvfb xauth imagemagick x11-utils xdotool)
fi

missing=()
for p in "${want[@]}"; do
    [ "$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null)" = installed ] || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
    echo "mailsec: missing Debian packages: ${missing[*]} (run as root, or: sudo apt-get install ${missing[*]})" >&2
    exit 1
fi
echo "mailsec: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
# tshark asks whether non-root users may capture; the answer does not matter here.
echo "wireshark-common wireshark-common/install-setuid boolean false" | debconf-set-selections
log=$(mktemp /tmp/mailsec-apt.XXXXXX)
if ! { apt-get update -qq && apt-get install -y -qq --no-install-recommends "${missing[@]}"; } >"$log" 2>&1; then
    tail -n 20 "$log" >&2
    echo "mailsec: apt-get could not install ${missing[*]} (full log: $log)" >&2
    exit 1
fi
rm -f "$log"
