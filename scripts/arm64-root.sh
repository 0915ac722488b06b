#!/usr/bin/env bash
# scripts/arm64-root.sh: make sure an arm64 Debian root exists for the arm64 suite (tests/arm64),
# and that this machine runs arm64 programs through qemu. Needs the network (apt, debootstrap):
# run it outside the test namespace (scripts/platforms-deps.sh does, from `make build`).
#
# The root lives outside the repository, in ${PGENTRA_ARM64_ROOT:-~/.cache/pgentra/arm64-root},
# and is reused while it is complete (a stamp file names the packages it was made with); it is
# made anew when missing or incomplete. Prints its path on the last line.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=${PGENTRA_ARM64_ROOT:-${XDG_CACHE_HOME:-$HOME/.cache}/pgentra/arm64-root}
# What the suite runs inside: Python with psycopg2, SQLAlchemy and pytest (the wheel), pip (installs the
# wheel, checking its platform tag), psql (the CLI's `exec -- psql`), Node.js (the addon),
# Ruby with ruby-pg and minitest, PHP with pgsql/pdo_pgsql and PHPUnit (the extensions),
# a headless Java 17 runtime (the jar's JNI library; the tests' classes and their dependencies
# come from the host's Maven build), curl (the harness's stand-in `az`, for the Java tests'
# Azure CLI credential), ca-certificates.
packages=(python3 python3-psycopg2 python3-sqlalchemy python3-pytest python3-pip postgresql-client nodejs ca-certificates
  ruby ruby-pg ruby-minitest php8.2-cli php8.2-pgsql phpunit openjdk-17-jre-headless curl)
# What the Ruby and PHP extensions are cross-compiled against on the host
# (scripts/build-platforms.sh): Ruby's and PHP's headers and php-config (rbconfig.rb comes with
# ruby), and the C library's headers for bindgen (the root is its sysroot). Only unpacked
# (dpkg-deb -x: no dependencies, no maintainer scripts): installed, ruby-dev and php8.2-dev pull
# in gcc, autoconf, libtool and perl, minutes more under qemu.
headers=(ruby3.1-dev php8.2-dev libc6-dev linux-libc-dev)
suite=bookworm
stamp="$root/.pgentra-root"
want="suite=$suite packages=${packages[*]} headers=${headers[*]}"
unpack_headers() { # ROOT: the packages of headers, from the root's apt, unpacked into it
  local d=/var/cache/pgentra-headers deb
  rm -rf "${1:?}$d"; mkdir -p "$1$d"
  chroot "$1" chown _apt "$d" 2>/dev/null || true   # apt downloads as _apt
  chroot "$1" sh -c "cd $d && apt-get download -qq ${headers[*]}" >&2
  for deb in "$1$d"/*.deb; do dpkg-deb -x "$deb" "$1"; done
  rm -rf "${1:?}$d"
}
mounted_under() { grep -qs " $1/" /proc/mounts; }
# apt_in ROOT ARGS...: apt-get in the root, with /proc mounted in a private mount namespace that
# vanishes with the command (maintainer scripts such as the JRE's need it; the root itself is
# never left mounted).
apt_in() {
  local r=$1; shift
  unshare --mount --propagation private sh -c 'mount -t proc proc "$1/proc" && r=$1 && shift && exec chroot "$r" apt-get "$@"' \
    sh "$r" "$@"
}

export DEBIAN_FRONTEND=noninteractive
have() { command -v "$1" >/dev/null 2>&1; }
need_apt=()
have qemu-aarch64-static || need_apt+=(qemu-user-static)
have update-binfmts || need_apt+=(binfmt-support)
have debootstrap || need_apt+=(debootstrap)
[ -f /usr/share/keyrings/debian-archive-keyring.gpg ] || need_apt+=(debian-archive-keyring)
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "arm64-root: apt-get install ${need_apt[*]}" >&2
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
fi

# binfmt: the kernel hands arm64 programs to qemu. Debian registers qemu-aarch64 with the F flag
# (the interpreter is opened now), so programs run inside a chroot that has no qemu of its own.
if [ ! -e /proc/sys/fs/binfmt_misc/register ]; then
  mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
fi
if ! grep -qx enabled /proc/sys/fs/binfmt_misc/qemu-aarch64 2>/dev/null; then
  update-binfmts --enable qemu-aarch64 >&2 || update-binfmts --import qemu-aarch64 >&2
fi
grep -qx enabled /proc/sys/fs/binfmt_misc/qemu-aarch64 || {
  echo "arm64-root: binfmt for qemu-aarch64 is not enabled (/proc/sys/fs/binfmt_misc/qemu-aarch64)" >&2; exit 1; }
grep -q '^flags: .*F' /proc/sys/fs/binfmt_misc/qemu-aarch64 || {
  echo "arm64-root: qemu-aarch64 is registered without the F flag: programs in a chroot cannot reach it" >&2; exit 1; }

if [ -f "$stamp" ] && [ -x "$root/usr/bin/python3" ]; then
  [ "$(cat "$stamp")" = "$want" ] && { echo "$root"; exit 0; }
  # A complete root made with fewer packages: add the missing ones (apt inside the root).
  if grep -q "^suite=$suite " "$stamp" && ! mounted_under "$root"; then
    echo "arm64-root: apt-get install ${packages[*]} in $root" >&2
    if apt_in "$root" update -qq >&2 &&
       apt_in "$root" install -y -qq --no-install-recommends "${packages[@]}" >/dev/null &&
       unpack_headers "$root"; then
      chroot "$root" apt-get clean
      echo "$want" > "$stamp"
      echo "$root"; exit 0
    fi
    echo "arm64-root: adding packages failed; making the root anew" >&2
  fi
fi

# The Debian mirror this machine's apt uses (the first one that serves the suite).
mirror=$("$here/debian-mirror.sh")

# A partial or older root: make it anew (never mounted anywhere: the suite's mounts live in the
# test namespace only).
if [ -e "$root" ]; then
  if mounted_under "$root"; then
    echo "arm64-root: something is mounted under $root; not removing it" >&2; exit 1
  fi
  rm -rf "$root"
fi
mkdir -p "$(dirname "$root")"
tmp="$root.partial"
rm -rf "$tmp"
echo "arm64-root: debootstrap --arch=arm64 $suite into $root (a few minutes, once)" >&2
include=$(IFS=,; echo "${packages[*]}")
if ! debootstrap --arch=arm64 --variant=minbase --include="$include" "$suite" "$tmp" "$mirror" >"$tmp.log" 2>&1; then
  echo "arm64-root: debootstrap failed; the end of its log ($tmp.log):" >&2
  tail -n 30 "$tmp.log" >&2
  exit 1
fi
rm -f "$tmp.log"
# Keep the root small: no downloaded packages.
rm -rf "$tmp"/var/cache/apt/archives/*.deb
chroot "$tmp" apt-get update -qq >&2
unpack_headers "$tmp"
[ "$(chroot "$tmp" uname -m)" = aarch64 ] || { echo "arm64-root: programs in $tmp do not run as aarch64" >&2; exit 1; }
echo "$want" > "$tmp/.pgentra-root"
mv "$tmp" "$root"
echo "$root"
