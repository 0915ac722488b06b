#!/usr/bin/env bash
# Install what the .NET wrapper's tests need, when missing: Debian's Mono 6.8 C# compiler
# (mcs), runtime (mono) and System.Data (for DbConnectionStringBuilder). NuGet is not used.
# Run it outside the harness, which has no network.
set -euo pipefail
pkgs=()
command -v mcs >/dev/null || pkgs+=(mono-mcs)
command -v mono >/dev/null || pkgs+=(mono-runtime)
[ -f /usr/lib/mono/4.5/System.Data.dll ] || pkgs+=(libmono-system-data4.0-cil)
if [ ${#pkgs[@]} -gt 0 ]; then
  sudo=(); [ "$(id -u)" = 0 ] || sudo=(sudo)
  "${sudo[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${pkgs[@]}"
fi
mcs --version
mono --version | head -n1
