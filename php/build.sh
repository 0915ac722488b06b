#!/usr/bin/env bash
# Build the PHP extension in release and copy it to dist/php/pgentra.so.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
"$here/deps.sh"
cd "$root"
cargo build --release --locked -p pgentra-php
mkdir -p dist/php
# Copy to a temporary name, then rename: a PHP process loading the old file never sees half a file.
cp "${CARGO_TARGET_DIR:-target}/release/libpgentra_php.so" dist/php/.pgentra.so.tmp
mv -f dist/php/.pgentra.so.tmp dist/php/pgentra.so
php -n -d extension="$root/dist/php/pgentra.so" -r 'exit(extension_loaded("pgentra") ? 0 : 1);' \
  || { echo "php: dist/php/pgentra.so does not load" >&2; exit 1; }
echo "php: built dist/php/pgentra.so ($(du -h dist/php/pgentra.so | cut -f1))"
