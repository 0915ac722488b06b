#!/usr/bin/env bash
# scripts/platforms-deps.sh: what the cross builds (scripts/build-platforms.sh) and the arm64
# suite (tests/arm64/run.sh) need, installed where missing: Rust's standard libraries for the
# targets, zig (PyPI ziglang) as the cross compiler and linker, maturin, the arm64
# Debian root with qemu (scripts/arm64-root.sh) and the minimal musl systems
# (scripts/musl-root.sh). Needs the network: run it outside the test namespace. `--no-root`
# skips the roots.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
targets=(aarch64-unknown-linux-gnu x86_64-unknown-linux-musl aarch64-unknown-linux-musl)
installed=$(rustup target list --installed)
missing=()
for t in "${targets[@]}"; do grep -qx "$t" <<<"$installed" || missing+=("$t"); done
if [ ${#missing[@]} -gt 0 ]; then
  echo "platforms deps: rustup target add ${missing[*]}"
  rustup target add "${missing[@]}"
fi
pip_missing=()
python3 -c 'import maturin' 2>/dev/null || pip_missing+=("maturin>=1.16,<2")
python3 -c 'import ziglang' 2>/dev/null || pip_missing+=(ziglang)
if [ ${#pip_missing[@]} -gt 0 ]; then
  echo "platforms deps: pip install ${pip_missing[*]}"
  PIP_ROOT_USER_ACTION=ignore python3 -m pip install -q --disable-pip-version-check --retries 1 "${pip_missing[@]}"
fi
apt_missing=()
command -v readelf >/dev/null 2>&1 || apt_missing+=(binutils)
command -v curl >/dev/null 2>&1 || apt_missing+=(curl)
command -v xz >/dev/null 2>&1 || apt_missing+=(xz-utils)
if [ ${#apt_missing[@]} -gt 0 ]; then
  apt-get update -qq && apt-get install -y -qq --no-install-recommends "${apt_missing[@]}" >/dev/null
fi
if [ "${1:-}" != --no-root ]; then
  "$here/arm64-root.sh" >/dev/null
  # The minimal musl systems the musl Node.js addons run in (tests/platforms/musl-node.sh).
  "$here/musl-root.sh" x86_64 >/dev/null
  "$here/musl-root.sh" aarch64 >/dev/null
fi
