#!/usr/bin/env bash
# tests/platforms/check.sh: the cross-built artifacts of scripts/build-platforms.sh, checked
# with readelf (no network, nothing run): each one's machine; the shared libraries it needs
# (only the C library of its kind: glibc's, or musl's libc alone); its glibc floor (2.17, as
# manylinux2014 promises) or no glibc symbol at all (musl); the entry points its host looks up;
# and that the packages carry them. Every one must be there (make build). test-arm64 runs the
# arm64 ones, test-musl the static musl CLIs and the musl Node.js addons; the musl wheels are
# not run here (no musl Python on this machine).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
target=${CARGO_TARGET_DIR:-$repo/target}
dist="$repo/dist"
version=$(sed -n '/^\[workspace.package\]/,/^\[/s/^version *= *"\(.*\)"/\1/p' "$repo/Cargo.toml")
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
passed=0; failed=0
ok() { passed=$((passed + 1)); echo "ok    $1"; }
bad() { failed=$((failed + 1)); echo "FAIL  $1: $2"; }

machine() { readelf -h "$1" | sed -n 's/^ *Machine: *//p' | head -n1; }
needed() { readelf -d "$1" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p' | sort -u | paste -sd' ' -; }
# Highest GLIBC_x.y version any symbol needs ("" if none).
glibc_floor() { { readelf -V -W "$1" | grep -o 'GLIBC_[0-9][0-9.]*' || true; } | sed 's/GLIBC_//' | sort -V | tail -n1; }
# Does ELF file $1 define global symbol $2 (in .dynsym for shared objects)?
defines() { readelf -W --dyn-syms "$1" | awk -v s="$2" '$7 != "UND" && ($5 == "GLOBAL" || $5 == "WEAK") && $8 == s {f=1} END {exit !f}'; }

# check NAME FILE MACHINE LIBC SYMBOL...: LIBC is gnu or musl.
check() {
  local name=$1 f=$2 want_machine=$3 libc=$4; shift 4
  [ -f "$f" ] || { bad "$name" "missing ($f)"; return; }
  local m; m=$(machine "$f")
  [ "$m" = "$want_machine" ] || { bad "$name" "machine is '$m', not '$want_machine'"; return; }
  local lib allowed
  if [ "$libc" = gnu ]; then allowed=" libc.so.6 libm.so.6 libpthread.so.0 libdl.so.2 librt.so.1 libgcc_s.so.1 ld-linux-aarch64.so.1 ld-linux-x86-64.so.2 "
  else allowed=" libc.so "; fi
  local needs; needs=$(needed "$f")
  for lib in $needs; do
    case "$allowed" in *" $lib "*) ;; *) bad "$name" "needs $lib (only the $libc C library is allowed: $needs)"; return ;; esac
  done
  local floor; floor=$(glibc_floor "$f")
  if [ "$libc" = gnu ]; then
    [ -n "$floor" ] || { bad "$name" "no glibc symbol versions at all"; return; }
    [ "$(printf '%s\n2.17\n' "$floor" | sort -V | tail -n1)" = 2.17 ] || { bad "$name" "needs GLIBC_$floor (more than 2.17)"; return; }
  else
    [ -z "$floor" ] || { bad "$name" "a musl build needs GLIBC_$floor"; return; }
    case " $needs " in *" libc.so "*) ;; *) bad "$name" "does not link musl's libc.so (needs: $needs)"; return ;; esac
  fi
  local s
  for s in "$@"; do defines "$f" "$s" || { bad "$name" "does not export $s"; return; }; done
  ok "$name: $m, needs ${needs:-nothing}${floor:+, glibc floor $floor}${*:+, exports $*}"
}

# The extension module inside a wheel.
wheel_so() {
  local whl=$1 out="$tmp/$(basename "$1")"
  python3 - "$whl" "$out" <<'EOF'
import sys, zipfile
z = zipfile.ZipFile(sys.argv[1])
names = [n for n in z.namelist() if n.startswith("pgentra/_pgentra") and n.endswith(".so")]
assert len(names) == 1, names
open(sys.argv[2], "wb").write(z.read(names[0]))
EOF
  echo "$out"
}

check_wheel() { # PLATFORM_GLOB MACHINE LIBC
  local whl; whl=$(ls -1 "$dist"/python/pgentra-"$version"-cp39-abi3-*"$1"*.whl 2>/dev/null | head -n1 || true)
  if [ -z "$whl" ]; then bad "wheel *$1" "missing in dist/python (scripts/build-platforms.sh)"; return; fi
  check "wheel $(basename "$whl")" "$(wheel_so "$whl")" "$2" "$3" PyInit__pgentra
}

check_addon() { # NAPI_TRIPLE MACHINE LIBC
  local f="$repo/node/pgentra.$1.node"
  if [ ! -f "$f" ]; then bad "node addon $1" "missing ($f; scripts/build-platforms.sh)"; return; fi
  check "node addon $1" "$f" "$2" "$3" napi_register_module_v1
  # The npm package carries it, byte for byte.
  local tgz="$dist/node/pgentra-$version.tgz"
  if [ ! -f "$tgz" ]; then bad "npm package has $1" "$tgz is missing (node/build.sh)"; return; fi
  if tar -xzf "$tgz" -O "package/pgentra.$1.node" 2>/dev/null | cmp -s - "$f"; then ok "npm package carries pgentra.$1.node"
  else bad "npm package has $1" "package/pgentra.$1.node is missing from $tgz or differs from node/ (run node/build.sh)"; fi
}

# Linux x86_64, glibc (make build): the wheel and the Node.js addon need glibc 2.17 at most.
check_wheel manylinux2014_x86_64 "Advanced Micro Devices X86-64" gnu
check_addon linux-x64-gnu "Advanced Micro Devices X86-64" gnu

# Linux aarch64, glibc (make build).
check_wheel manylinux2014_aarch64 AArch64 gnu
check_addon linux-arm64-gnu AArch64 gnu
a64="$target/aarch64-unknown-linux-gnu/release"
check "CLI aarch64" "$a64/pgentra" AArch64 gnu
if [ -f "$a64/pgentra" ]; then
  interp=$(readelf -l "$a64/pgentra" | sed -n 's/.*Requesting program interpreter: \(.*\)\]/\1/p')
  [ "$interp" = /lib/ld-linux-aarch64.so.1 ] && ok "CLI aarch64: loader $interp" || bad "CLI aarch64" "program interpreter is '$interp'"
fi
# The C library: every function of the header, in the .so and in the .a.
funcs=$(grep -o 'pgentra_[a-z_]*(' "$repo/crates/pgentra-capi/include/pgentra.h" | tr -d '(' | sort -u)
[ -n "$funcs" ] || bad "C header" "no pgentra_* functions in crates/pgentra-capi/include/pgentra.h"
# shellcheck disable=SC2086
check "libpgentra.so aarch64" "$a64/libpgentra.so" AArch64 gnu $funcs
if [ -f "$a64/libpgentra.a" ]; then
  missing=""
  defined=$(readelf -W -s "$a64/libpgentra.a" 2>/dev/null | awk '$7 != "UND" && $5 == "GLOBAL" {print $8}' | sort -u)
  for f in $funcs; do grep -qx "$f" <<<"$defined" || missing="$missing $f"; done
  arches=$(readelf -h "$a64/libpgentra.a" 2>/dev/null | sed -n 's/^ *Machine: *//p' | sort -u | tr '\n' ' ')
  if [ -n "$missing" ]; then bad "libpgentra.a aarch64" "does not define:$missing"
  elif [ "$arches" != "AArch64 " ]; then bad "libpgentra.a aarch64" "members for: $arches"
  else ok "libpgentra.a aarch64: AArch64 members define all $(wc -w <<<"$funcs") header functions"; fi
else
  bad "libpgentra.a aarch64" "missing ($a64/libpgentra.a)"
fi

# The Ruby and PHP extensions for aarch64 (cross-built against the arm64 root's Ruby and PHP):
# the entry point each interpreter looks up; no libruby, no libphp (the interpreter provides them).
check "Ruby extension aarch64" "$dist/ruby/linux-aarch64/pgentra_ext.so" AArch64 gnu Init_pgentra_ext
check "PHP extension aarch64" "$dist/php/linux-aarch64/pgentra.so" AArch64 gnu get_module

# The Java binding's JNI library for aarch64, and the jar that carries it (java/build.sh).
jni="$repo/java/pgentra/native/META-INF/native/linux-aarch64/libpgentra_jni.so"
check "JNI library linux-aarch64" "$jni" AArch64 gnu Java_io_pgentra_Native_open
jar=$(ls -1 "$dist"/java/pgentra-"$version".jar 2>/dev/null || true)
if [ -z "$jar" ]; then bad "jar has linux-aarch64" "dist/java/pgentra-$version.jar is missing (java/build.sh)"
elif [ -f "$jni" ] && python3 -c 'import sys, zipfile; sys.stdout.buffer.write(zipfile.ZipFile(sys.argv[1]).read(sys.argv[2]))' \
     "$jar" META-INF/native/linux-aarch64/libpgentra_jni.so 2>/dev/null | cmp -s - "$jni"; then
  ok "jar $(basename "$jar") carries META-INF/native/linux-aarch64/libpgentra_jni.so"
else bad "jar has linux-aarch64" "META-INF/native/linux-aarch64/libpgentra_jni.so is missing from $jar or differs (run java/build.sh)"; fi

# The sdist: what maturin needs to build the wheel anywhere from source.
sdist="$dist/python/pgentra-$version.tar.gz"
if [ -f "$sdist" ]; then
  listing=$(tar -tzf "$sdist")
  missing=""
  for f in pyproject.toml Cargo.toml Cargo.lock crates/pgentra/src/lib.rs bindings/python/Cargo.toml bindings/python/src/lib.rs pgentra/__init__.py PKG-INFO; do
    grep -qx "pgentra-$version/\(.*/\)\?$f" <<<"$listing" || missing="$missing $f"
  done
  [ -z "$missing" ] && ok "sdist $(basename "$sdist"): $(wc -l <<<"$listing") files, with the workspace's sources and Cargo.lock" ||
    bad "sdist" "lacks:$missing"
else
  bad "sdist" "missing ($sdist)"
fi

# The static musl CLIs (make build): no loader, no shared library, no glibc symbol (they run
# here: make test-musl).
check_static() { # NAME FILE MACHINE
  [ -f "$2" ] || { bad "$1" "missing ($2)"; return; }
  local m; m=$(machine "$2")
  [ "$m" = "$3" ] || { bad "$1" "machine is '$m', not '$3'"; return; }
  ! readelf -l "$2" | grep -q 'Requesting program interpreter' || { bad "$1" "asks for a program interpreter"; return; }
  [ -z "$(needed "$2")" ] || { bad "$1" "needs $(needed "$2")"; return; }
  [ -z "$(glibc_floor "$2")" ] || { bad "$1" "needs GLIBC_$(glibc_floor "$2")"; return; }
  ok "$1: $m, static (no loader, no shared library, no glibc symbol)"
}
check_static "CLI x86_64 musl" "$target/x86_64-unknown-linux-musl/release/pgentra" "Advanced Micro Devices X86-64"
check_static "CLI aarch64 musl" "$target/aarch64-unknown-linux-musl/release/pgentra" AArch64

# musl (Alpine) wheels and Node.js addons (make build): the addons run in test-musl; the wheels
# are not run here.
check_wheel musllinux_1_2_x86_64 "Advanced Micro Devices X86-64" musl
check_wheel musllinux_1_2_aarch64 AArch64 musl
check_addon linux-x64-musl "Advanced Micro Devices X86-64" musl
check_addon linux-arm64-musl AArch64 musl

echo "platforms: $passed passed, $failed failed"
[ "$failed" = 0 ]
