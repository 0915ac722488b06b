#!/usr/bin/env bash
# Build the Ruby gem: the native extension in release (cargo, magnus), copied to
# ruby/lib/pgentra/pgentra_ext.so, then a precompiled platform gem
#   dist/ruby/pgentra-<version>-x86_64-linux.gem
# and a check that it installs offline into an empty GEM_HOME and loads.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
out="$root/dist/ruby"
"$here/deps.sh"
cd "$root"
cargo build --release --locked -p pgentra-ruby
target_dir=${CARGO_TARGET_DIR:-$root/target}
so="$target_dir/release/libpgentra_ext.so"
[ -f "$so" ] || { echo "ruby: $so was not built" >&2; exit 1; }
# #[magnus::init(name = "pgentra_ext")] exports Init_pgentra_ext: the file must be pgentra_ext.so.
nm -D --defined-only "$so" | grep ' Init_pgentra_ext$' >/dev/null || { echo "ruby: $so does not export Init_pgentra_ext" >&2; exit 1; }
objcopy --strip-debug "$so" "$here/lib/pgentra/pgentra_ext.so.tmp"
chmod 0755 "$here/lib/pgentra/pgentra_ext.so.tmp"
mv -f "$here/lib/pgentra/pgentra_ext.so.tmp" "$here/lib/pgentra/pgentra_ext.so"

version=$(ruby -I"$here/lib" -e 'require "pgentra/version"; print PgEntra::VERSION')
platform=$(ruby -e 'print Gem::Platform.local')
gem_file="$out/pgentra-$version-$platform.gem"
mkdir -p "$out"
rm -f "$out"/pgentra-*.gem
( cd "$here" && gem build --silent pgentra.gemspec --output "$gem_file" )

# The gem alone, offline, into an empty GEM_HOME, loaded from outside the checkout.
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
GEM_HOME="$tmp/gems" GEM_PATH="$tmp/gems" gem install --silent --local --no-document "$gem_file"
( cd "$tmp" && env -u RUBYLIB GEM_HOME="$tmp/gems" GEM_PATH="$tmp/gems" ruby -e '
  require "pgentra"
  spec = Gem.loaded_specs.fetch("pgentra")
  abort "ruby: loaded pgentra from #{spec.full_gem_path}, not the installed gem" unless spec.full_gem_path.start_with?(ENV["GEM_HOME"])
  c = PgEntra::Connector.new(connection_string: "host=h dbname=d user=u password=p", credential: "password")
  abort "ruby: the installed gem does not work" unless c.conninfo[:password] == "p" && PgEntra::NATIVE_VERSION == PgEntra::VERSION
' )
echo "ruby: built $gem_file ($(du -h "$gem_file" | cut -f1)); it installs offline and loads"
