#!/usr/bin/env bash
# Build the Debian 12 package of mailsec: the plugin in Wireshark's global
# plugin folder, the "Mail Forensics" profile in its global profiles folder,
# bound to the Wireshark ABI it was built against (libwireshark16, 4.0.x).
#
#   usage: bash packaging/build-deb.sh [OUTDIR]     (default: dist/)
#
# Built with Debian's own build flags (dpkg-buildflags), dependencies from
# dpkg-shlibdeps, documentation and md5sums as policy asks, and packed with
# dpkg-deb as root:root. Needs what scripts/setup.sh installs, plus dpkg-dev.
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
out=$(mkdir -p "${1:-$here/dist}" && cd "${1:-$here/dist}" && pwd)

need=()
for p in dpkg-dev file; do
    [ "$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null)" = installed ] || need+=("$p")
done
if [ ${#need[@]} -gt 0 ]; then
    [ "$(id -u)" -eq 0 ] || { echo "build-deb: missing ${need[*]} (apt-get install ${need[*]})" >&2; exit 1; }
    echo "build-deb: installing ${need[*]}" >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
bash "$here/scripts/setup.sh"

name=mailsec
upstream=$(sed -n 's/^project(mailsec VERSION \([0-9.]*\).*/\1/p' "$here/CMakeLists.txt")
[ -n "$upstream" ] || { echo "build-deb: no version in CMakeLists.txt" >&2; exit 1; }
version="$upstream-1"
arch=$(dpkg --print-architecture)
ws_version=$(dpkg-query -W -f='${Version}' libwireshark16 2>/dev/null || true)
[ -n "$ws_version" ] || { echo "build-deb: libwireshark16 (Wireshark 4.0) is not installed" >&2; exit 1; }

work=$(mktemp -d /tmp/mailsec-deb.XXXXXX)
trap 'rm -rf "$work"' EXIT
root=$work/root

echo "build-deb: building $name $version for $arch (Wireshark $ws_version)" >&2
eval "$(dpkg-buildflags --export=sh)"
export CFLAGS CPPFLAGS LDFLAGS
log=$work/build.log
if ! { cmake -S "$here" -B "$work/build" -DMAILSEC_BUILD_TESTS=OFF -DCMAKE_BUILD_TYPE=None &&
       cmake --build "$work/build" --target mailsec -j2 &&
       DESTDIR=$root cmake --install "$work/build"; } >"$log" 2>&1; then
    tail -n 25 "$log" >&2
    echo "build-deb: the build failed" >&2
    exit 1
fi

so=$(find "$root" -name mailsec.so)
[ -n "$so" ] || { echo "build-deb: the install put no mailsec.so" >&2; exit 1; }
strip --strip-unneeded --remove-section=.comment --remove-section=.note "$so"
chmod 0644 "$so"

doc=$root/usr/share/doc/$name
mkdir -p "$doc"
cat >"$doc/copyright" <<EOF
Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: mailsec
Source: https://example.org/mailsec

Files: *
Copyright: $(date -u +%Y) mailsec maintainers
License: GPL-2+

License: GPL-2+
 This program is free software; you can redistribute it and/or modify it
 under the terms of the GNU General Public License as published by the Free
 Software Foundation; either version 2 of the License, or (at your option)
 any later version.
 .
 This program is distributed in the hope that it will be useful, but WITHOUT
 ANY WARRANTY; without even the implied warranty of MERCHANTABILITY or FITNESS
 FOR A PARTICULAR PURPOSE. See the GNU General Public License for more
 details.
 .
 On Debian systems, the complete text of the GNU General Public License
 version 2 can be found in /usr/share/common-licenses/GPL-2.
EOF
when=$(git -C "$here" log -1 --format=%aD 2>/dev/null || date -R)
printf '%s (%s) unstable; urgency=medium\n\n  * Package of mailsec %s for Wireshark %s.\n\n -- mailsec maintainers <maintainers@mailsec.invalid>  %s\n' \
    "$name" "$version" "$upstream" "$ws_version" "$when" | gzip -9n >"$doc/changelog.Debian.gz"
find "$root" -type d -exec chmod 0755 {} +
find "$root/usr/share" -type f -exec chmod 0644 {} +

# Dependencies: what the plugin links (dpkg-shlibdeps), and the Wireshark ABI
# it was built for: plugins are tied to a major.minor release.
mkdir -p "$work/debian"
printf 'Source: %s\n\nPackage: %s\nArchitecture: any\n' "$name" "$name" >"$work/debian/control"
shlibs=$(cd "$work" && dpkg-shlibdeps -O -e"$so" 2>/dev/null | sed -n 's/^shlibs:Depends=//p')
ws_major_minor=$(echo "$ws_version" | cut -d. -f1,2)
ws_next="${ws_major_minor%.*}.$(( ${ws_major_minor#*.} + 1 ))"
depends="libwireshark16 (>= $ws_major_minor.0), libwireshark16 (<< $ws_next)"
IFS=',' read -ra parts <<<"$shlibs"
for d in "${parts[@]}"; do
    d=$(echo "$d" | sed 's/^ *//; s/ *$//')
    case $d in libwireshark16*|"") ;; *) depends="$depends, $d" ;; esac
done

mkdir -p "$root/DEBIAN"
size=$(du -sk --exclude=DEBIAN "$root" | cut -f1)
cat >"$root/DEBIAN/control" <<EOF
Package: $name
Version: $version
Architecture: $arch
Maintainer: mailsec maintainers <maintainers@mailsec.invalid>
Installed-Size: $size
Depends: $depends
Recommends: tshark | wireshark
Section: net
Priority: optional
Description: mail forensics for Wireshark: SMTP, POP3 and IMAP
 A Wireshark dissector plugin that adds mail forensics to SMTP, POP3 and
 IMAP captures: where each session switched to TLS and what was said in
 clear before it, every login decoded with its mechanism, verdict and a
 crackable hash, probes, messages and SMTP smuggling, with expert-info
 alerts, a statistics tree (Statistics > Mail Forensics) and every message
 exportable (File > Export Objects > MAILSEC).
 .
 Also installs the "Mail Forensics" configuration profile (columns,
 coloring rules and filter buttons).
EOF
(cd "$root" && find . -path ./DEBIAN -prune -o -type f -printf '%P\0' | sort -z | xargs -0 md5sum) \
    >"$root/DEBIAN/md5sums"
chmod 0644 "$root/DEBIAN/control" "$root/DEBIAN/md5sums"

deb=$out/${name}_${version}_${arch}.deb
dpkg-deb --root-owner-group -Zxz --build "$root" "$deb" >/dev/null
echo "$deb"
