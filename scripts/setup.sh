#!/usr/bin/env bash
# Install the Debian 12 packages mailsec needs to build, run and test, if missing.
# Needs root (apt-get) only when something is missing.
set -euo pipefail

want=(tshark libwireshark-dev libwiretap-dev wireshark-dev cmake gcc make pkg-config
      python3 python3-pytest libcmocka-dev util-linux)
missing=()
for p in "${want[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
    echo "mailsec: missing packages: ${missing[*]} (run as root to install them)" >&2
    exit 1
fi
echo "mailsec: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
# tshark asks whether non-root users may capture; the answer does not matter here.
echo "wireshark-common wireshark-common/install-setuid boolean false" | debconf-set-selections
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
