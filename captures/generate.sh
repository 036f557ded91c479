#!/bin/bash
# Regenerate the real-server captures: run a throwaway Postfix + Dovecot on
# 127.0.0.1 (and a few listeners of theirs on 127.0.0.3), and captures/peer.py,
# a scripted peer for the SASL mechanisms they lack (127.0.0.2) and for the
# STARTTLS / TLS behaviours they never show (127.0.0.4 - 127.0.0.8); let
# captures/driver.py drive Python's mail clients against them under dumpcap,
# then stop all three and remove every trace.
#
#   usage (as root): bash captures/generate.sh OUTDIR [SCENARIO ...]
#   (default: every scenario; names as in driver.py's SCENARIOS)
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
CONFIG=$HERE/config
PORTS=(25 587 465 110 995 143 993 2525 1143)
# Listeners of the real servers besides 127.0.0.1 (the same port numbers):
# Postfix with a TLS certificate it cannot load, Dovecot IMAPS down to TLS 1.0.
EXTRA_LISTENERS=(127.0.0.3:25 127.0.0.3:993)
# The scripted peer: same port numbers as the real servers, other loopback
# addresses; peer.py --listeners lists them.
PEER_HOST=127.0.0.2
# tshark brings dumpcap; iproute2 brings ss.
PACKAGES=(postfix dovecot-core dovecot-imapd dovecot-pop3d python3 openssl tshark iproute2)
# The distribution's interpreter, not whatever shim comes first in PATH.
PYTHON=/usr/bin/python3

die() { echo "generate.sh: $*" >&2; exit 1; }

[ $# -ge 1 ] || die "usage: $0 OUTDIR [SCENARIO ...]"
[ "$(id -u)" -eq 0 ] || die "must run as root (servers bind privileged ports, dumpcap captures lo)"
mkdir -p "$1"
OUTDIR=$(cd "$1" && pwd)
shift
SCENARIOS=("$@")

install_packages() {
    local missing=() p
    for p in "${PACKAGES[@]}"; do
        [ "$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null)" = installed ] || missing+=("$p")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    echo "generate.sh: installing ${missing[*]}" >&2
    debconf-set-selections <<'EOF'
postfix postfix/main_mailer_type select No configuration
wireshark-common wireshark-common/install-setuid boolean false
EOF
    # The packaged system daemons would grab the very ports we need: keep apt
    # from starting them, unless the machine already has a policy of its own.
    local policy=/usr/sbin/policy-rc.d ours=
    if [ ! -e "$policy" ]; then
        printf '#!/bin/sh\nexit 101\n' >"$policy"
        chmod 755 "$policy"
        ours=1
    fi
    local rc=0
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" || rc=$?
    [ -n "$ours" ] && rm -f "$policy"
    [ "$rc" -eq 0 ] || die "apt-get failed ($rc)"
}

# Prints the lab ports that something is listening on (any local address).
busy_ports() {
    local listening p
    listening=$(ss -Hltn | awk '{print $4}')
    for p in "${PORTS[@]}"; do
        grep -Eq ":$p\$" <<<"$listening" && echo "$p"
    done
    return 0
}

# How many of the given ADDRESS:PORT pairs have a listener.
listening_on() {
    local listening a n=0
    listening=$(ss -Hltn | awk '{print $4}')
    for a in "$@"; do
        grep -Fxq "$a" <<<"$listening" && n=$((n + 1))
    done
    echo "$n"
}

# Stop a daemon by the PID in its pid file and wait until it is gone.
stop_by_pidfile() {
    local file=$1 name=$2 pid
    [ -s "$file" ] || return 0
    pid=$(tr -dc '0-9' <"$file")
    [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 0
    kill -TERM "$pid"
    for _ in $(seq 100); do
        kill -0 "$pid" 2>/dev/null || return 0
        sleep 0.1
    done
    echo "generate.sh: $name (pid $pid) ignored SIGTERM, killing it" >&2
    kill -KILL "$pid" 2>/dev/null || true
}

RUNDIR=
cleanup() {
    local rc=$?
    trap - EXIT
    set +e
    if [ -n "$RUNDIR" ] && [ -d "$RUNDIR" ]; then
        [ -s "$RUNDIR/peer.pid" ] && stop_by_pidfile "$RUNDIR/peer.pid" peer.py
        stop_by_pidfile "$RUNDIR/postfix-queue/pid/master.pid" postfix
        stop_by_pidfile "$RUNDIR/dovecot-run/master.pid" dovecot
        # Children close their listening sockets a moment after the masters exit.
        for _ in $(seq 100); do
            [ -z "$(busy_ports)" ] && break
            sleep 0.1
        done
        [ -z "$(busy_ports)" ] || echo "generate.sh: ports still busy after stop: $(busy_ports | tr '\n' ' ')" >&2
        if [ "$rc" -ne 0 ]; then
            echo "generate.sh: failed ($rc); server logs follow" >&2
            tail -n 40 "$RUNDIR/postfix.log" "$RUNDIR/dovecot.log" "$RUNDIR/peer.log" >&2 2>/dev/null
        fi
        rm -rf -- "$RUNDIR"
    fi
    exit "$rc"
}

install_packages

busy=$(busy_ports | tr '\n' ' ')
[ -z "$busy" ] || die "port(s) already in use: $busy- stop whatever listens there first"

RUNDIR=$(mktemp -d /tmp/mailsec-capture.XXXXXX)
trap cleanup EXIT
trap 'exit 130' INT TERM
# postfix, dovecot and mail (uid 8) must all reach into it.
chmod 755 "$RUNDIR"

mkdir -p "$RUNDIR"/{postfix,dovecot,tls,mail,postfix-queue,postfix-data}
render() { sed "s|@RUNDIR@|$RUNDIR|g" "$CONFIG/$1" >"$2"; }
render main.cf "$RUNDIR/postfix/main.cf"
render master.cf "$RUNDIR/postfix/master.cf"
render vmailbox "$RUNDIR/postfix/vmailbox"
render virtual "$RUNDIR/postfix/virtual"
render dovecot.conf "$RUNDIR/dovecot/dovecot.conf"
render users "$RUNDIR/dovecot/users"
chmod 644 "$RUNDIR/dovecot/users"   # read by Dovecot's auth process (user dovecot)
chown postfix: "$RUNDIR/postfix-data"
chown mail:mail "$RUNDIR/mail"

openssl req -x509 -newkey rsa:2048 -nodes -days 7 -subj /CN=mx.mail.test \
    -addext subjectAltName=DNS:mx.mail.test \
    -keyout "$RUNDIR/tls/key.pem" -out "$RUNDIR/tls/cert.pem" 2>/dev/null
chmod 600 "$RUNDIR/tls/key.pem"

# Dovecot first: Postfix's SASL socket lives in Dovecot's base_dir.
dovecot -c "$RUNDIR/dovecot/dovecot.conf"
postfix -c "$RUNDIR/postfix" start >/dev/null 2>&1 || die "postfix failed to start: $(postfix -c "$RUNDIR/postfix" check 2>&1)"

for _ in $(seq 200); do
    [ "$(busy_ports | wc -l)" -eq ${#PORTS[@]} ] \
        && [ "$(listening_on "${EXTRA_LISTENERS[@]}")" -eq ${#EXTRA_LISTENERS[@]} ] && break
    sleep 0.1
done
[ "$(busy_ports | wc -l)" -eq ${#PORTS[@]} ] \
    || die "servers not listening on all ports (have: $(busy_ports | tr '\n' ' '))"
[ "$(listening_on "${EXTRA_LISTENERS[@]}")" -eq ${#EXTRA_LISTENERS[@]} ] \
    || die "servers not listening on all of ${EXTRA_LISTENERS[*]}"

# The scripted peer (NTLM, XOAUTH2, OAUTHBEARER, GSSAPI, EXPN on 127.0.0.2; the
# STARTTLS / TLS behaviours on 127.0.0.4 - 127.0.0.8, with the lab's
# certificate), which is loopback too (all of 127.0.0.0/8 is), beside the real
# servers on 127.0.0.1.
mapfile -t PEER_LISTENERS < <("$PYTHON" "$HERE/peer.py" --host "$PEER_HOST" --listeners)
"$PYTHON" "$HERE/peer.py" --host "$PEER_HOST" --tls-cert "$RUNDIR/tls/cert.pem" \
    --tls-key "$RUNDIR/tls/key.pem" >"$RUNDIR/peer.log" 2>&1 &
echo $! >"$RUNDIR/peer.pid"
for _ in $(seq 100); do
    [ "$(listening_on "${PEER_LISTENERS[@]}")" -eq ${#PEER_LISTENERS[@]} ] && break
    kill -0 "$(cat "$RUNDIR/peer.pid")" 2>/dev/null || die "peer.py exited: $(cat "$RUNDIR/peer.log")"
    sleep 0.1
done
[ "$(listening_on "${PEER_LISTENERS[@]}")" -eq ${#PEER_LISTENERS[@]} ] \
    || die "peer.py not listening on all of ${PEER_LISTENERS[*]}"

# The driver reads the maildirs for the retrieval scenarios' ground truth.
MAILSEC_POSTFIX_CONFIG=$RUNDIR/postfix MAILSEC_MAILDIR_BASE=$RUNDIR/mail \
    "$PYTHON" "$HERE/driver.py" "$OUTDIR" "${SCENARIOS[@]}"
