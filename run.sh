#!/usr/bin/env bash
# mailsec main job: install what is missing, build the plugin, load it into the
# real tshark and print the forensic findings for the bundled captures or for
# the captures (and TLS key logs) given as arguments. Paths are taken as the
# caller typed them (relative to the caller's folder). Arguments are checked
# before the slow install and build whenever /usr/bin/python3 is there.
#
# Environment: MAILSEC_BUILD_DIR, the build folder (default: build/ here).
set -uo pipefail

usage() {
    cat <<'EOF'
usage: run.sh [--keylog FILE] [--export DIR] [--json] [CAPTURE|DIR ...]
       run.sh --db FILE [--jobs N] [--sshlogin LOGIN ...] [CAPTURE|DIR ...]
       run.sh CAPTURE KEYLOG

Install what is missing (Debian 12, as root), build the mailsec Wireshark plugin,
load it into the real tshark and print what it found: one line per mail session
(endpoints, protocol, transport, how it was recognised, STARTTLS, each login and
what crossed in clear), and under it mailsec's alerts for that session.

  CAPTURE        a pcap or pcapng file (gzip-compressed too); several may be given
  KEYLOG         a TLS key log (NSS format, SSLKEYLOGFILE) for the capture before it
  DIR            every *.pcap and *.pcapng below it, sorted, each with NAME.keys or
                 NAME.keylog beside it when there is one
  --keylog FILE  a TLS key log for every capture
  --export DIR   also write every message (SMTP, POP3, IMAP; as meant: dot-stuffing
                 undone, chunks joined) as .eml into DIR/CAPTURE-NAME/, with an
                 index.csv (stream, endpoints, protocol, transport, user, direction,
                 carried by, size, SHA-256, complete, envelope)
  --json         JSON lines instead of the text report: one object per session
                 and one per capture (schema in the README)
  --db FILE      analyse the captures in parallel (GNU parallel, one tshark each)
                 and load what they hold into the SQLite database FILE (tables
                 captures, sessions, logins, probes, messages, alerts); a capture
                 analysed again replaces its rows
  --jobs N       with --db: captures at once (default: the number of cores)
  --sshlogin L   with --db: GNU parallel's --sshlogin, to spread the captures
                 over machines (repeatable; ":" is this machine)
  -h, --help     this help

Without a capture: the bundled captures in captures/real, each with its key log.
Progress goes to stderr ("mailsec: ..."), the report to stdout.

Exit status:
  0  every capture was analysed
  1  some capture could not be analysed (missing, unreadable, empty, not a capture)
  2  usage error: unknown option, key log missing or not a key log, nothing to analyse
  3  set-up or build failed
EOF
}

# Help first: it must not install or build anything.
skip=false
for a in "$@"; do
    if $skip; then skip=false; continue; fi
    case $a in
        --) break ;;
        -h|--help) usage; exit 0 ;;
        --keylog|--export|--db|--jobs|--sshlogin) skip=true ;;
    esac
done

here=$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")
report=$here/scripts/report.py
build=${MAILSEC_BUILD_DIR:-$here/build}
py=/usr/bin/python3

# A typo fails now, not after the install and the build.
checked=false
if [ -x "$py" ]; then
    "$py" "$report" --prog run.sh --check -- "$@" || exit $?
    checked=true
fi

if ! bash "$here/scripts/setup.sh"; then
    echo "run.sh: set-up failed (scripts/setup.sh could not install what mailsec needs)" >&2
    exit 3
fi
if ! $checked; then
    "$py" "$report" --prog run.sh --check -- "$@" || exit $?
fi

echo "mailsec: building the plugin" >&2
log=$(mktemp -t mailsec-build.XXXXXX) || exit 3
configure=()
# An existing build folder keeps its settings (test.sh builds the unit tests in it too).
[ -f "$build/CMakeCache.txt" ] || configure=(-DMAILSEC_BUILD_TESTS=OFF -DCMAKE_BUILD_TYPE=RelWithDebInfo)
if ! { cmake -S "$here" -B "$build" "${configure[@]}" && cmake --build "$build" --target mailsec -j2; } >"$log" 2>&1; then
    tail -n 25 "$log" >&2
    echo "run.sh: the plugin did not build (full log: $log)" >&2
    exit 3
fi
rm -f "$log"

exec "$py" "$report" --prog run.sh --plugin "$build/mailsec.so" -- "$@"
