#!/usr/bin/env bash
# Build the pgentra wheel into dist/python/: pgentra-<version>-cp39-abi3-<platform>.whl.
# Portable manylinux2014 through zig (glibc 2.17); if zig fails, a plain build tagged with this machine's
# glibc (the script says so).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
out="$root/dist/python"
"$here/deps.sh"
mkdir -p "$out"
# This machine's wheels only: scripts/build-platforms.sh puts the other platforms' beside them.
mine="pgentra-*-manylinux*_$(uname -m).whl"
rm -f "$out"/$mine
cd "$here"
target_dir=${CARGO_TARGET_DIR:-$root/target}
# shellcheck source=scripts/zig-env.sh
. "$root/scripts/zig-env.sh"
triple=$(uname -m)-unknown-linux-gnu
# zig's wrappers at fixed paths (scripts/zig-env.sh), glibc 2.17 as the floor: node/build.sh
# builds the Node.js addon for the same target with the same wrappers, so the two share every
# compiled crate.
if zig_available && use_zig "$triple" "$(uname -m)-linux-gnu.2.17" &&
   python3 -m maturin build --release --locked --target "$triple" --compatibility manylinux2014 -o "$out"; then
  echo "python: built a manylinux2014 wheel with zig"
else
  echo "python: the zig build failed; falling back to a plain build (tagged for this machine's glibc, not portable)" >&2
  rm -f "$out"/$mine
  python3 -m maturin build --release --locked -o "$out"
fi
ls -1 "$out"/$mine
