#!/usr/bin/env bash
# scripts/debian-mirror.sh: print the Debian mirror this machine's apt uses (the first one that
# serves Debian itself, not its security archive), without a trailing slash. Used by
# scripts/arm64-root.sh (debootstrap) and scripts/musl-root.sh (one package from trixie).
set -euo pipefail
mirror=$(
  { cat /etc/apt/sources.list.d/*.sources 2>/dev/null | awk '/^URIs:/ {print $2}' || true
    cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null | awk '$1 == "deb" {for (i = 2; i <= NF; i++) if ($i ~ /^[a-z]+:\/\//) {print $i; break}}' || true
  } | grep -v -- '-security' | grep '/debian/*$' | head -n1 || true)
[ -n "$mirror" ] || { echo "debian-mirror: no Debian mirror found in /etc/apt/sources.list*" >&2; exit 1; }
echo "${mirror%/}"
