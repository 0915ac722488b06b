#!/usr/bin/env bash
# .NET (Mono) tests of the PgEntra wrapper: compile PgEntra.dll and tests/*.cs with mcs, run
# them with mono against target/release/libpgentra.so. The token tests need the harness:
#   tests/harness/with-harness.sh dotnet/test.sh   (from the checkout root)
# (set PGENTRA_REQUIRE_HARNESS=0 to let them skip outside it). dotnet/deps.sh installs Mono.
# PgEntra.Npgsql/ is not compiled: Npgsql is not available here (no NuGet, and Debian packages no
# Npgsql); it is only checked for syntax (mcs --parse).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
libdir=${CARGO_TARGET_DIR:-$root/target}/release
if [ ! -f "$libdir/libpgentra.so" ]; then
  echo "dotnet/test.sh: $libdir/libpgentra.so is missing; build it with: cargo build --release -p pgentra-capi" >&2
  exit 2
fi
for tool in mcs mono; do
  command -v "$tool" >/dev/null || { echo "dotnet/test.sh: $tool is missing; run dotnet/deps.sh" >&2; exit 2; }
done
out=$(mktemp -d /tmp/pgentra-dotnet.XXXXXX)
trap 'rm -rf "$out"' EXIT

echo "== mcs --parse PgEntra.Npgsql (syntax only: no Npgsql here)"
mcs --parse "$here"/PgEntra.Npgsql/*.cs
echo "== mcs PgEntra.dll"
mcs -nologo -target:library -warnaserror+ -out:"$out/PgEntra.dll" -doc:"$out/PgEntra.xml" "$here"/PgEntra/*.cs
echo "== mcs Tests.exe"
mcs -nologo -target:exe -warnaserror+ -out:"$out/Tests.exe" -r:"$out/PgEntra.dll" -r:System.Data.dll "$here"/tests/*.cs

# DllImport("pgentra") -> this libpgentra.so: a dllmap next to the assembly, and the library
# directory on LD_LIBRARY_PATH as well.
cat > "$out/PgEntra.dll.config" <<XML
<configuration>
  <dllmap dll="pgentra" target="$libdir/libpgentra.so" />
</configuration>
XML
export LD_LIBRARY_PATH="$libdir${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
export PGENTRA_REQUIRE_HARNESS=${PGENTRA_REQUIRE_HARNESS:-1}
echo "== mono Tests.exe"
mono --debug "$out/Tests.exe" "$root/tests/vectors/render.json"
