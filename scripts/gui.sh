#!/usr/bin/env bash
# The real Wireshark GUI (Debian's wireshark-qt) with mailsec and the "Mail
# Forensics" profile, under Xvfb, on the bundled captures: screenshots for the
# README, and a check that the GUI starts and loads the plugin.
#
#   usage (as root): bash scripts/gui.sh [--plugin SO] OUTDIR [SHOT ...]
#
# SHOT: packets (packet list with the profile's columns, the mailsec subtree
# expanded), expert (Expert Information), stats (Statistics > Mail Forensics),
# export (File > Export Objects > MAILSEC); all four by default. Each writes OUTDIR/SHOT.png and a line
#   SHOT ok title=TITLE windows=N alive=1 png=OUTDIR/SHOT.png
# on stdout, or SHOT FAIL reason, and the script exits 1 when any failed.
# With MAILSEC_GUI_SAVE_ALL=DIR (a folder nobody may write), the export shot
# also presses Save All and saves every object into DIR.
# Wireshark runs as the unprivileged user nobody (as root it ignores plugin
# folders), with its own HOME, XDG_RUNTIME_DIR and WIRESHARK_PLUGIN_DIR.
set -uo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
plugin=${MAILSEC_PLUGIN:-$here/build/mailsec.so}
if [ "${1:-}" = --plugin ]; then plugin=$2; shift 2; fi
[ $# -ge 1 ] || { sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }
out=$1; shift
shots=("$@")
[ ${#shots[@]} -gt 0 ] || shots=(packets expert stats export)
[ "$(id -u)" -eq 0 ] || { echo "gui.sh: run as root (it installs packages and drops to nobody)" >&2; exit 2; }
[ -f "$plugin" ] || { echo "gui.sh: no plugin at $plugin (build it first: ./run.sh or cmake --build build)" >&2; exit 2; }
mkdir -p "$out" && out=$(cd "$out" && pwd)

want=(wireshark-qt xvfb xauth imagemagick x11-utils xdotool)
missing=()
for p in "${want[@]}"; do
    [ "$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null)" = installed ] || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "gui.sh: installing ${missing[*]}" >&2
    echo "wireshark-common wireshark-common/install-setuid boolean false" | debconf-set-selections
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null 2>&1 ||
        { echo "gui.sh: apt-get could not install ${missing[*]}" >&2; exit 3; }
fi

tmp=$(mktemp -d /tmp/mailsec-gui.XXXXXX)
chmod 0755 "$tmp"
home=$tmp/home xdg=$tmp/xdg plugins=$tmp/plugins
mkdir -p "$home/.config/wireshark/profiles" "$xdg" "$plugins/4.0/epan"
cp "$plugin" "$plugins/4.0/epan/mailsec.so"
cp -r "$here/packaging/profiles/Mail Forensics" "$home/.config/wireshark/profiles/"
chown -R 65534:65534 "$home" "$xdg"
chmod 0700 "$xdg"
chmod -R a+rX "$plugins"

display=:99
n=99
while [ -e "/tmp/.X11-unix/X$n" ] || [ -e "/tmp/.X$n-lock" ]; do n=$((n + 1)); done
display=:$n
Xvfb "$display" -screen 0 1600x1000x24 -nolisten tcp >"$tmp/xvfb.log" 2>&1 &
xvfb=$!
ws=""
cleanup() {
    [ -n "$ws" ] && kill "$ws" 2>/dev/null
    kill "$xvfb" 2>/dev/null
    wait 2>/dev/null
    rm -rf "$tmp"
}
trap cleanup EXIT
for _ in $(seq 50); do xdpyinfo -display "$display" >/dev/null 2>&1 && break; sleep 0.2; done
xdpyinfo -display "$display" >/dev/null 2>&1 || { echo "gui.sh: Xvfb did not start" >&2; exit 3; }
export DISPLAY=$display

# The visible named top-level windows, one "ID NAME" per line.
windows() {
    local id
    for id in $(xdotool search --onlyvisible --name '.' 2>/dev/null); do
        echo "$id $(xdotool getwindowname "$id" 2>/dev/null)"
    done
}

stop_wireshark() {
    kill "$ws" 2>/dev/null
    wait "$ws" 2>/dev/null
    ws=""
}

# give_up NAME REASON: the shot failed; Wireshark goes.
give_up() {
    echo "$1 FAIL $2"
    stop_wireshark
}

# await VAR SECONDS PATTERN: the first visible window whose name matches,
# into VAR; false (VAR empty) if none came in time.
await() {
    local -n _win=$1
    _win=$(timeout "$2" xdotool search --sync --onlyvisible --name "$3" 2>/dev/null | head -n 1)
    [ -n "$_win" ]
}

# The visible windows' names, for a failure message.
window_names() {
    windows | cut -d' ' -f2- | paste -sd'|'
}

# shot NAME CAPTURE FILTER FRAME DIALOG KEYS [wireshark options ...]
# DIALOG: the title of the window KEYS (xdotool key names, e.g. a menu path) or
# the options open, or - for the main window alone.
shot() {
    local name=$1 capture=$2 filter=$3 frame=$4 dialog=$5 keys=$6
    shift 6
    local cap=$tmp/$(basename "$capture") title main dlg png=$out/$name.png
    cp "$capture" "$cap"
    chmod 0644 "$cap"
    title=$(basename "$cap")
    setpriv --reuid=65534 --regid=65534 --clear-groups env -i PATH=/usr/bin:/bin HOME="$home" \
        XDG_RUNTIME_DIR="$xdg" DISPLAY="$display" QT_QPA_PLATFORM=xcb WIRESHARK_PLUGIN_DIR="$plugins" \
        LC_ALL=C.UTF-8 wireshark -C "Mail Forensics" -r "$cap" -Y "$filter" -g "$frame" \
        -o gui.layout_content_3:NONE "$@" >"$tmp/$name.log" 2>&1 &
    ws=$!
    if ! await main 60 "^$title\$"; then
        give_up "$name" "no window titled $title in 60 s: $(window_names)"
        return 1
    fi
    xdotool windowmove "$main" 0 0 windowsize "$main" 1600 1000
    sleep 3
    if [ "$keys" != - ]; then
        local k
        xdotool windowfocus --sync "$main" 2>/dev/null
        for k in $keys; do xdotool key "$k"; sleep 0.5; done
    fi
    if [ "$dialog" != - ]; then
        if ! await dlg 30 "$dialog"; then
            give_up "$name" "no $dialog window: $(window_names)"
            return 1
        fi
        xdotool windowmove "$dlg" 120 90 windowsize "$dlg" 1360 820
        sleep 3
    else
        # View > Expand All (Ctrl+Right) on the selected frame's details, then
        # the details pane's end, where mailsec's subtree is (a postdissector)
        xdotool windowfocus --sync "$main" key ctrl+Right 2>/dev/null
        sleep 1
        xdotool mousemove 600 800 click 1 key End 2>/dev/null
        sleep 2
    fi
    import -display "$display" -window root "$png" 2>/dev/null
    if [ "$name" = export ] && [ -n "${MAILSEC_GUI_SAVE_ALL:-}" ]; then
        # Save All (the dialog's button, placed where windowmove put the
        # dialog), then the folder typed into the folder chooser
        xdotool mousemove 1169 886 click 1
        local chooser
        if ! await chooser 20 "Save All Objects"; then
            give_up "$name" "Save All opened no folder chooser"
            return 1
        fi
        xdotool windowfocus --sync "$chooser" type --delay 20 "$MAILSEC_GUI_SAVE_ALL"
        xdotool key Return
        sleep 2
    fi
    # Any other window is a dialog nobody asked for: an error (a plugin that
    # did not load, a filter Wireshark rejected) or a warning.
    local others alive=0
    others=$(windows | awk -v m="$main" -v d="${dlg:-}" '$1 != m && $1 != d' | cut -d' ' -f2- | paste -sd'|')
    kill -0 "$ws" 2>/dev/null && alive=1
    stop_wireshark
    if [ -n "$others" ]; then
        echo "$name FAIL unexpected windows: $others"
        return 1
    fi
    [ -s "$png" ] || { echo "$name FAIL no screenshot"; return 1; }
    echo "$name ok title=$title windows=$([ -n "${dlg:-}" ] && echo 2 || echo 1) alive=$alive png=$png"
    [ $alive = 1 ]
}

cap=$here/captures/real/smtp-auth-bruteforce.pcapng
rc=0
for s in "${shots[@]}"; do
    case $s in
        packets) shot packets "$cap" mailsec 62 - - || rc=1 ;;
        expert) shot expert "$cap" mailsec 62 "Expert Information" - -z expert || rc=1 ;;
        # Statistics > Mail Forensics, the menu's last entry (the GUI has no -z for stats trees)
        stats) shot stats "$cap" mailsec 62 "Mail Forensics" "alt+s Up Return" || rc=1 ;;
        # File > Export Objects > MAILSEC… (the fifth of the submenu)
        export) shot export "$here/captures/real/smtp-attachments.pcapng" mailsec 1 "MAILSEC" \
                     "alt+f Up Up Up Right Down Down Down Down Return" || rc=1 ;;
        *) echo "gui.sh: unknown shot $s (packets, expert, stats, export)" >&2; rc=2 ;;
    esac
done
exit $rc
