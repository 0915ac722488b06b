# scripts/zig-env.sh: sourced by scripts/build-platforms.sh, python/build.sh and node/build.sh.
# use_zig TRIPLE ZIG_TARGET: cargo's linker and cc-rs's C compiler, archiver and ranlib for
# TRIPLE are zig's (through maturin's zig driver, `maturin zig cc`, the one `maturin --zig`
# uses), for ZIG_TARGET (e.g. x86_64-linux-gnu.2.17: glibc 2.17 as the floor). The wrappers
# live at fixed paths (TARGET_DIR/zig), so that maturin (the wheels) and cargo (CLI, C library,
# Node.js addon, JNI library) see the very same linker and C compiler for a target and share
# that target's compiled crates. (`maturin --zig` and cargo-zigbuild each name their wrappers
# after their own executable: with them, every crate was compiled twice.)
# zig_available: whether maturin and zig (PyPI ziglang, scripts/platforms-deps.sh) are here.
# Needs: target_dir.
maturin_bin="$(python3 -c 'import sysconfig; print(sysconfig.get_path("scripts"))')/maturin"
zig_dir="$target_dir/zig"

zig_available() {
  [ -x "$maturin_bin" ] && python3 -c 'import ziglang' >/dev/null 2>&1
}

use_zig() {
  local triple=$1 zt=$2 up low tool
  [ -x "$maturin_bin" ] || { echo "zig-env: maturin's executable is not at $maturin_bin (scripts/platforms-deps.sh)" >&2; return 1; }
  up=$(tr 'a-z-' 'A-Z_' <<<"$triple"); low=${triple//-/_}
  mkdir -p "$zig_dir"
  for tool in cc c++; do
    printf '#!/bin/sh\nexec "%s" zig %s -- -g -fno-sanitize=all -target %s "$@"\n' "$maturin_bin" "$tool" "$zt" > "$zig_dir/$tool-$triple"
  done
  for tool in ar ranlib; do
    printf '#!/bin/sh\nexec "%s" zig %s -- "$@"\n' "$maturin_bin" "$tool" > "$zig_dir/$tool"
  done
  chmod 0755 "$zig_dir"/cc-* "$zig_dir"/c++-* "$zig_dir"/ar "$zig_dir"/ranlib
  export "CARGO_TARGET_${up}_LINKER=$zig_dir/cc-$triple" "CC_$low=$zig_dir/cc-$triple" \
    "CXX_$low=$zig_dir/c++-$triple" "AR_$low=$zig_dir/ar" "RANLIB_$low=$zig_dir/ranlib"
}
