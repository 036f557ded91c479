#!/usr/bin/env bash
# Run commands in a pristine Debian 12 root, as a new user would: debootstrap
# a minimal bookworm (git, ca-certificates and python3 on top, nothing else),
# clone the commit under test into it with shared/ beside the clone, bind
# /proc, /sys and /dev, and run each command from the clone's folder as root.
# The mirror and its keys come from this machine's own apt sources.
#
#   usage (as root): bash .ci/fresh-root.sh 'CMD' ['CMD' ...]
#
# Every command must pass; the root is unmounted and removed on exit, also on
# failure or interruption. Set MAILSEC_KEEP_ROOT=1 to keep it for a look.
set -euo pipefail

die() { echo "fresh-root: $*" >&2; exit 1; }

[ $# -ge 1 ] || die "usage: $0 'CMD' ['CMD' ...]"
[ "$(id -u)" -eq 0 ] || die "must run as root (debootstrap, chroot, mount)"

project=$(cd "$(dirname "$0")/.." && pwd)
shared=$(cd "$project/../shared" 2>/dev/null && pwd) || die "no ../shared beside $project"
commit=$(git -C "$project" rev-parse HEAD) || die "$project is not a git clone"

# The first mirror the machine itself uses, deb822 sources first.
mirror=""
for f in /etc/apt/sources.list.d/*.sources; do
    [ -f "$f" ] || continue
    mirror=$(awk '/^URIs:/ { print $2; exit }' "$f")
    [ -n "$mirror" ] && break
done
if [ -z "$mirror" ] && [ -f /etc/apt/sources.list ]; then
    mirror=$(awk '$1 == "deb" { for (i = 2; i <= NF; i++) if ($i ~ /^[a-z]+:\/\//) { print $i; exit } }' /etc/apt/sources.list)
fi
[ -n "$mirror" ] || die "no Debian mirror found in /etc/apt/sources.list{,.d}"

if ! command -v debootstrap >/dev/null; then
    echo "fresh-root: installing debootstrap" >&2
    apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null \
        || die "cannot install debootstrap"
fi

base=$(mktemp -d /var/tmp/mailsec-fresh.XXXXXX)
root=$base/root

# Unmount everything below the root before anything is removed: a bind
# mount of /dev that is still there would make rm -rf delete the host's.
cleanup() {
    local rc=$? m
    for _ in 1 2 3; do
        findmnt -rn -o TARGET | grep -E "^$root(/|$)" | sort -r | while read -r m; do
            umount -l "$m" 2>/dev/null || true
        done
        findmnt -rn -o TARGET | grep -Eq "^$root(/|$)" || break
        sleep 1
    done
    if findmnt -rn -o TARGET | grep -Eq "^$root(/|$)"; then
        echo "fresh-root: mounts remain under $root; not removing it" >&2
    elif [ "${MAILSEC_KEEP_ROOT:-}" = 1 ]; then
        echo "fresh-root: kept $root" >&2
    else
        rm -rf "$base"
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

echo "fresh-root: debootstrap bookworm (minbase) from $mirror" >&2
start=$(date +%s)
if ! debootstrap --variant=minbase --include=git,ca-certificates,python3 bookworm "$root" "$mirror" \
        >"$base/debootstrap.log" 2>&1; then
    tail -n 20 "$base/debootstrap.log" >&2
    die "debootstrap failed: the mirror $mirror cannot be reached or refused the request"
fi
echo "fresh-root: root ready in $(( $(date +%s) - start )) s" >&2

# The same apt sources (and keys) as this machine, so the root reaches the same mirror.
rm -f "$root/etc/apt/sources.list"
for f in /etc/apt/sources.list.d/*.sources /etc/apt/sources.list.d/*.list /etc/apt/sources.list; do
    [ -f "$f" ] || continue
    case "$f" in
        /etc/apt/sources.list) cp "$f" "$root/etc/apt/sources.list" ;;
        *) cp "$f" "$root/etc/apt/sources.list.d/" ;;
    esac
done
cp -L /etc/resolv.conf "$root/etc/resolv.conf" 2>/dev/null || true

# The project as CI sees it: a clone of the commit under test, shared/ beside it.
mkdir -p "$root/work"
git clone -q --no-local "$project" "$root/work/main"
git -C "$root/work/main" checkout -q "$commit"
cp -a "$shared" "$root/work/shared"

mount -t proc proc "$root/proc"
mount --rbind /sys "$root/sys"
mount --make-rslave "$root/sys"
mount --rbind /dev "$root/dev"
mount --make-rslave "$root/dev"

for cmd in "$@"; do
    echo "fresh-root: # $cmd" >&2
    start=$(date +%s)
    chroot "$root" /usr/bin/env -i HOME=/root TERM=dumb LANG=C.UTF-8 \
        PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
        bash -c "cd /work/main && $cmd" </dev/null
    echo "fresh-root: '$cmd' passed in $(( $(date +%s) - start )) s" >&2
done
