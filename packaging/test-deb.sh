#!/usr/bin/env bash
# The Debian package, end to end, as root on a machine that may be thrown away
# (CI runs it in the pristine Debian 12 root of .ci/fresh-root.sh): build it,
# let lintian judge it, install it with dpkg -i, check that the system's own
# tshark lists the plugin, dissects a bundled capture with it (the logins the
# generator's ground truth says) and finds the profile, then purge it and check
# that nothing of it is left.
set -euo pipefail
cd "$(dirname "$0")/.."

fail() { echo "test-deb: FAIL: $*" >&2; exit 1; }
[ "$(id -u)" -eq 0 ] || fail "must run as root (dpkg -i)"

if dpkg-query -W -f='${db:Status-Status}' mailsec 2>/dev/null | grep -qx installed; then
    fail "a mailsec package is installed already; this test installs and purges its own"
fi
for p in lintian dpkg-dev; do
    if [ "$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null)" != installed ]; then
        echo "test-deb: installing $p" >&2
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$p" >/dev/null
    fi
done

out=$(mktemp -d /tmp/mailsec-dist.XXXXXX)
home=$(mktemp -d /tmp/mailsec-home.XXXXXX)
chmod 0755 "$home"
chown 65534:65534 "$home"   # tshark -C copies a global profile into the user's own folder
cleanup() { dpkg --purge mailsec >/dev/null 2>&1 || true; rm -rf "$out" "$home"; }
trap cleanup EXIT

deb=$(bash packaging/build-deb.sh "$out" | tail -n 1)
[ -f "$deb" ] || fail "no package built"
echo "test-deb: built $(basename "$deb")" >&2
dpkg-deb -I "$deb" | sed -n 's/^ \(Package\|Version\|Depends\):/  \1:/p' >&2

# lintian: no error; its warnings are printed
lintian --fail-on error --tag-display-limit 0 "$deb" >&2 || fail "lintian reported errors"
echo "test-deb: lintian accepts it" >&2

dpkg -i "$deb" >/dev/null || fail "dpkg -i failed"
plugin=$(dpkg -L mailsec | grep '/plugins/4\.0/epan/mailsec\.so$') || fail "no plugin in the package's file list"
profile=$(dpkg -L mailsec | grep '/share/wireshark/profiles/Mail Forensics$') || fail "no profile in the package"

# The system's tshark, as an unprivileged user with nothing of its own.
as_user() { setpriv --reuid=65534 --regid=65534 --clear-groups env -i PATH=/usr/bin:/bin HOME="$home" LC_ALL=C.UTF-8 "$@"; }
as_user tshark -G plugins | grep -q "^mailsec\.so" || fail "tshark -G plugins does not list mailsec"
cap=$home/cap.pcapng
cp captures/real/smtp-auth-bruteforce.pcapng "$cap"
chmod 0644 "$cap"
got=$(as_user tshark -n -r "$cap" -Y 'mailsec.auth.result' -T fields -e mailsec.auth.result | paste -sd' ')
want=$(python3 -c 'import json,sys; print(" ".join(a["result"] for s in json.load(open(sys.argv[1]))["sessions"] for a in s["auth"]))' \
    captures/real/smtp-auth-bruteforce.json)
[ "$got" = "$want" ] || fail "the installed plugin saw logins '$got', the ground truth says '$want'"
echo "test-deb: the installed plugin dissects: $got" >&2
as_user tshark -C "Mail Forensics" -n -r "$cap" -c 1 >/dev/null || fail "tshark -C 'Mail Forensics' does not find the profile"
echo "test-deb: tshark -C 'Mail Forensics' works" >&2

dpkg --purge mailsec >/dev/null || fail "dpkg --purge failed"
[ ! -e "$plugin" ] || fail "$plugin left behind"
[ ! -e "$profile" ] || fail "$profile left behind"
[ ! -e /usr/share/doc/mailsec ] || fail "/usr/share/doc/mailsec left behind"
if as_user tshark -G plugins | grep -q "^mailsec\.so"; then fail "tshark still lists mailsec after the purge"; fi
echo "test-deb: purged cleanly" >&2
echo "test-deb: ok"
