#!/usr/bin/env bash
# node/build.sh: build the native addon (release) and pack the npm package into dist/node/.
#   dist/node/pgentra-<version>.tgz holds the prebuilt linux-x64-gnu addon; a user needs only
#   `npm install ./dist/node/pgentra-<version>.tgz`.
# The addon is a plain `cargo build --release -p pgentra-node` in the workspace's target/ (the
# same target directory and flags as every other crate, so nothing is built twice), copied to
# node/pgentra.linux-x64-gnu.node. Fails when the committed index.d.ts is stale.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
cd "$here"

# JavaScript tooling: @napi-rs/cli renders index.d.ts (dev dependencies, never shipped).
if ! node -e "require.resolve('@napi-rs/cli')" >/dev/null 2>&1; then
  npm ci --no-audit --no-fund
fi

(cd "$root" && cargo build --release --locked -p pgentra-node)
# Replace, never overwrite in place: a running process may have the old file mapped.
install -m 0755 "$root/target/release/libpgentra_node.so" "$here/.pgentra.node.tmp"
mv -f "$here/.pgentra.node.tmp" "$here/pgentra.linux-x64-gnu.node"

node "$here/scripts/dts.js" --check

# The package's version follows the workspace's.
version=$(node -p "require('./package.json').version")
workspace_version=$(sed -n '/^\[workspace.package\]/,/^\[/s/^version *= *"\(.*\)"/\1/p' "$root/Cargo.toml")
if [ "$version" != "$workspace_version" ]; then
  echo "node/build.sh: node/package.json has version $version but the workspace has $workspace_version" >&2
  exit 1
fi

mkdir -p "$root/dist/node"
rm -f "$root/dist/node"/pgentra-*.tgz
npm pack --silent --pack-destination "$root/dist/node" >/dev/null
tgz="$root/dist/node/pgentra-$version.tgz"
[ -f "$tgz" ] || { echo "node/build.sh: npm pack did not produce $tgz" >&2; exit 1; }
echo "node/build.sh: $tgz ($(du -h "$tgz" | cut -f1))"
