#!/usr/bin/env bash
# Run every cargo-fuzz target for a fixed time (PGENTRA_FUZZ_SECS, default 10 s each), seeded
# with the conformance vectors. Used by `make test-reliability`; a longer run:
#   PGENTRA_FUZZ_SECS=120 fuzz/run.sh
# cargo-fuzz builds with the stable toolchain here: without a sanitizer (-s none) it needs no
# nightly flag but `--cfg fuzzing` and SanitizerCoverage, which stable rustc has;
# RUSTC_BOOTSTRAP=1 lets cargo-fuzz's own unstable flags through.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
cd "$here"
secs=${PGENTRA_FUZZ_SECS:-10}
export RUSTC_BOOTSTRAP=1
if ! command -v cargo-fuzz >/dev/null; then
  echo "fuzz/run.sh: cargo-fuzz is missing; run scripts/deps.sh (cargo install --locked cargo-fuzz)" >&2
  exit 2
fi
targets=$(cargo fuzz list)
cargo fuzz build -s none -O >/dev/null 2>build.log || { cat build.log >&2; exit 1; }
python3 - "$here" <<'PY'
import json, pathlib, sys, hashlib
here = pathlib.Path(sys.argv[1]); vec = here.parent / "tests" / "vectors"
seeds = {"conninfo_libpq": [], "conninfo_uri": [], "conninfo_ado": [], "conninfo_jdbc": []}
for case in json.loads((vec / "render.json").read_text()):
    for fmt, t in (("libpq", "conninfo_libpq"), ("uri", "conninfo_uri"), ("ado", "conninfo_ado"), ("jdbc", "conninfo_jdbc")):
        seeds[t].append(case["rendered"][fmt])
for case in json.loads((vec / "parse.json").read_text()):
    for t in seeds:
        seeds[t].append(case["input"])
seeds["identity_response"] = [b'\x00\xc8{"access_token":"a.b.c","expires_on":"1700000000","refresh_in":60}'.decode("latin-1")]
for t, items in seeds.items():
    d = here / "corpus" / t; d.mkdir(parents=True, exist_ok=True)
    for s in items:
        b = s.encode("latin-1") if t == "identity_response" else s.encode()
        (d / hashlib.sha1(b).hexdigest()).write_bytes(b)
PY
status=0
printf '| target | runs | execs/s | coverage | corpus | result |\n|---|---|---|---|---|---|\n' > results.md
for t in $targets; do
  mkdir -p "corpus/$t"
  log="logs/$t.log"; mkdir -p logs
  if cargo fuzz run -s none -O "$t" "corpus/$t" -- -max_total_time="$secs" -max_len=4096 -print_final_stats=1 >"$log" 2>&1; then r=ok; else r=FAILED; status=1; fi
  runs=$(grep -oE 'stat::number_of_executed_units: *[0-9]+' "$log" | grep -oE '[0-9]+$' || echo ?)
  eps=$(grep -oE 'stat::average_exec_per_sec: *[0-9]+' "$log" | grep -oE '[0-9]+$' || echo ?)
  cov=$(grep -oE 'cov: [0-9]+' "$log" | tail -1 | grep -oE '[0-9]+' || echo ?)
  corp=$(ls "corpus/$t" | wc -l)
  printf '| %s | %s | %s | %s | %s | %s |\n' "$t" "$runs" "$eps" "$cov" "$corp" "$r" | tee -a results.md
  if [ $r = FAILED ]; then grep -A20 -E 'panicked|ERROR' "$log" | head -40 >&2; fi
done
exit $status
