#!/usr/bin/env bash
# scripts/build-platforms.sh [SET...]: cross builds beside the x86_64 glibc ones, compiled and
# linked by zig (PyPI ziglang) through maturin's zig driver (`maturin zig cc`, the one
# `maturin --zig` uses). SETs:
#   arm64  (default; `make build-platforms`) Linux aarch64 with glibc 2.17 or newer:
#            dist/python/pgentra-<v>-cp39-abi3-manylinux_2_17_aarch64.manylinux2014_aarch64.whl,
#            the CLI, libpgentra.so and libpgentra.a at cargo's own paths
#            (target/aarch64-unknown-linux-gnu/release/), node/pgentra.linux-arm64-gnu.node,
#            the Java jar's linux-aarch64 JNI library, the Ruby and PHP extensions
#            (dist/ruby/linux-aarch64/pgentra_ext.so, dist/php/linux-aarch64/pgentra.so); and the
#            sdist dist/python/pgentra-<v>.tar.gz.
#   musl-cli (`make build-platforms`) the CLI for musl libc, x86_64 and aarch64, linked
#            statically: target/{x86_64,aarch64}-unknown-linux-musl/release/pgentra.
#   musl   (`make build-platforms`) musl libc (Alpine), x86_64 and aarch64:
#            dist/python/pgentra-<v>-cp39-abi3-musllinux_1_2_{x86_64,aarch64}.whl,
#            node/pgentra.linux-{x64,arm64}-musl.node.
# Every target has its own folder under cargo's target folder, so each build is incremental; and
# maturin (the wheel) and cargo (CLI, C library, addon) see the very same linker and C compiler
# for a target (wrappers at fixed paths, written below), so they share that target's compiled
# crates. (`maturin --zig` and cargo-zigbuild each name their wrappers after their own
# executable: with them, every crate was compiled twice.)
# The Node addons are packed into dist/node/pgentra-<v>.tgz by node/build.sh, the JNI library into
# dist/java/pgentra-<v>.jar by java/build.sh (both run after this in `make build`).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
target_dir=${CARGO_TARGET_DIR:-$root/target}
dist="$root/dist/python"
sets=("$@"); [ ${#sets[@]} -gt 0 ] || sets=(arm64)
"$here/platforms-deps.sh" --no-root
mkdir -p "$dist"
cd "$root"

took() { echo "build-platforms: $1 took $(( SECONDS - $2 )) s"; }

# shellcheck source=scripts/zig-env.sh
. "$here/zig-env.sh"
[ -x "$maturin_bin" ] || { echo "build-platforms: maturin's executable is not at $maturin_bin" >&2; exit 1; }

# wheel TRIPLE COMPATIBILITY: one abi3 wheel into dist/python (replacing the same platform's).
wheel() {
  local t=$SECONDS arch=${1%%-*}
  find "$dist" -maxdepth 1 -name "pgentra-*-*${2%%_*}*_$arch.whl" -delete
  # No --zig: zig comes from use_zig's wrappers. maturin still checks the promised platform
  # tag (symbol versions, libraries needed).
  (cd python && "$maturin_bin" build --release --locked --target "$1" --compatibility "$2" -o "$dist")
  took "wheel $1 ($2)" "$t"
}

# addon TRIPLE NAPI_TRIPLE: the napi-rs addon for one platform into
# node/pgentra.NAPI_TRIPLE.node. A shared library on musl needs a dynamically linked C runtime:
# -crt-static in RUSTFLAGS, as maturin sets it for the musllinux wheel (the same flags, so the
# two share that target's crates).
addon() {
  local t=$SECONDS
  local rustflags=${RUSTFLAGS:-}
  case "$1" in *-musl) rustflags="-C target-feature=-crt-static" ;; esac
  RUSTFLAGS=$rustflags cargo build --release --locked --target "$1" -p pgentra-node
  install -m 0755 "$target_dir/$1/release/libpgentra_node.so" "$root/node/.pgentra.node.tmp"
  mv -f "$root/node/.pgentra.node.tmp" "$root/node/pgentra.$2.node"
  took "Node.js addon $2" "$t"
}

# static_cli TRIPLE: the CLI for a musl target, linked statically as Rust does by default there
# (musl's libc inside, no loader): it runs on any Linux of its architecture, glibc or not, and
# so here too (tests/platforms/musl-cli.sh). Its own compiled crates (crt-static differs from the
# wheel's and the addon's flags).
static_cli() {
  local t=$SECONDS
  cargo build --release --locked --target "$1" -p pgentra-cli
  took "static CLI $1" "$t"
}

# jni TRIPLE JAVA_PLATFORM: the Java binding's JNI library into the jar's resources
# (java/pgentra/native/META-INF/native/JAVA_PLATFORM/, packed by java/build.sh, run after this),
# as built (no debug info; its symbol table stays: this machine's objcopy reads x86 only, and
# zig's cannot strip a shared object).
jni() {
  local t=$SECONDS dir="$root/java/pgentra/native/META-INF/native/$2"
  cargo build --release --locked --target "$1" -p pgentra-java
  mkdir -p "$dir"
  install -m 0755 "$target_dir/$1/release/libpgentra_jni.so" "$dir/libpgentra_jni.so.tmp"
  mv -f "$dir/libpgentra_jni.so.tmp" "$dir/libpgentra_jni.so"
  took "Java JNI library $2" "$t"
}

# The Ruby and PHP extensions for aarch64, cross-compiled here against the arm64 Debian root's
# Ruby and PHP (scripts/arm64-root.sh installs ruby-dev and php8.2-dev there: headers and build
# configuration). rb-sys reads RbConfig by running $RUBY: this machine's Ruby (the same 3.1.2 as
# the root's) loading the root's arm64 rbconfig.rb, which places the headers under the root.
# ext-php-rs runs `$PHP -i` (the root's arm64 php, under qemu) and `$PHP_CONFIG --includes` (the
# root's php-config with its prefix moved under the root). bindgen parses the headers as aarch64
# with the root as sysroot; zig compiles ext-php-rs's C wrapper and links, as for the others.
# Outputs (loaded by the root's ruby and php in tests/arm64/run.sh):
#   dist/ruby/linux-aarch64/pgentra_ext.so, dist/php/linux-aarch64/pgentra.so.
cross_env_root() {
  arm_root=$("$here/arm64-root.sh" | tail -n1)
  local rbconfig php_config
  rbconfig=$(ls -d "$arm_root"/usr/lib/aarch64-linux-gnu/ruby/3.*/rbconfig.rb 2>/dev/null | head -n1 || true)
  [ -n "$rbconfig" ] || { echo "build-platforms: no arm64 rbconfig.rb in $arm_root (ruby-dev; scripts/arm64-root.sh)" >&2; exit 1; }
  php_config=$(ls "$arm_root"/usr/bin/php-config8.* 2>/dev/null | head -n1 || true)
  [ -n "$php_config" ] || { echo "build-platforms: no arm64 php-config in $arm_root (php8.2-dev; scripts/arm64-root.sh)" >&2; exit 1; }
  printf '#!/bin/sh\nexec ruby -I "%s" "$@"\n' "$(dirname "$rbconfig")" > "$zig_dir/ruby-aarch64"
  # The root's php8.x itself (/usr/bin/php is an absolute link, which would lead to this machine's).
  printf '#!/bin/sh\nQEMU_LD_PREFIX="%s" exec "%s/usr/bin/php%s" "$@"\n' "$arm_root" "$arm_root" "${php_config##*/php-config}" > "$zig_dir/php-aarch64"
  sed "s|^prefix=.*|prefix=\"$arm_root/usr\"|" "$php_config" > "$zig_dir/php-config-aarch64"
  chmod 0755 "$zig_dir"/ruby-aarch64 "$zig_dir"/php-aarch64 "$zig_dir"/php-config-aarch64
  [ "$("$zig_dir/ruby-aarch64" --disable-gems -rrbconfig -e 'print RbConfig::CONFIG["arch"]')" = aarch64-linux-gnu ] ||
    { echo "build-platforms: $rbconfig is not the aarch64 Ruby's configuration" >&2; exit 1; }
  [ "$("$zig_dir/php-aarch64" -r 'echo php_uname("m");')" = aarch64 ] ||
    { echo "build-platforms: $zig_dir/php-aarch64 does not run the root's aarch64 PHP" >&2; exit 1; }
}

# ext_so PACKAGE LIB DEST [ENV...]: one extension's cdylib for aarch64 into DEST.
ext_so() {
  local t=$SECONDS pkg=$1 lib=$2 dest=$3; shift 3
  env "$@" BINDGEN_EXTRA_CLANG_ARGS_aarch64_unknown_linux_gnu="--sysroot=$arm_root" \
    cargo build --release --locked --target aarch64-unknown-linux-gnu -p "$pkg"
  mkdir -p "$(dirname "$dest")"
  install -m 0755 "$target_dir/aarch64-unknown-linux-gnu/release/$lib" "$dest.tmp"
  mv -f "$dest.tmp" "$dest"
  took "$pkg aarch64" "$t"
}

for set in "${sets[@]}"; do
  case "$set" in
    arm64)
      use_zig aarch64-unknown-linux-gnu aarch64-linux-gnu.2.17
      wheel aarch64-unknown-linux-gnu manylinux2014
      addon aarch64-unknown-linux-gnu linux-arm64-gnu
      jni aarch64-unknown-linux-gnu linux-aarch64
      t=$SECONDS
      # The CLI needs the core's database feature; the C library is built beside it, as on x86_64.
      cargo build --release --locked --target aarch64-unknown-linux-gnu -p pgentra-cli -p pgentra-capi
      took "CLI and C library aarch64-unknown-linux-gnu" "$t"
      ls -l "$target_dir"/aarch64-unknown-linux-gnu/release/{pgentra,libpgentra.so,libpgentra.a}
      cross_env_root
      ext_so pgentra-ruby libpgentra_ext.so "$root/dist/ruby/linux-aarch64/pgentra_ext.so" RUBY="$zig_dir/ruby-aarch64"
      ext_so pgentra-php libpgentra_php.so "$root/dist/php/linux-aarch64/pgentra.so" \
        PHP="$zig_dir/php-aarch64" PHP_CONFIG="$zig_dir/php-config-aarch64"
      t=$SECONDS
      rm -f "$dist"/pgentra-*.tar.gz
      (cd python && "$maturin_bin" sdist -o "$dist")
      took "sdist" "$t"
      ;;
    musl)
      use_zig x86_64-unknown-linux-musl x86_64-linux-musl
      wheel x86_64-unknown-linux-musl musllinux_1_2
      addon x86_64-unknown-linux-musl linux-x64-musl
      use_zig aarch64-unknown-linux-musl aarch64-linux-musl
      wheel aarch64-unknown-linux-musl musllinux_1_2
      addon aarch64-unknown-linux-musl linux-arm64-musl
      ;;
    musl-cli)
      use_zig x86_64-unknown-linux-musl x86_64-linux-musl
      static_cli x86_64-unknown-linux-musl
      use_zig aarch64-unknown-linux-musl aarch64-linux-musl
      static_cli aarch64-unknown-linux-musl
      ;;
    *) echo "build-platforms: unknown set '$set' (arm64, musl-cli, musl)" >&2; exit 2 ;;
  esac
done
ls -1 "$dist"
