#!/usr/bin/env bash
# make bench: the Rust core's criterion benchmarks, then Python, Node.js and Go against the
# incumbents on the loopback emulator. Results are recorded by hand in bench/results.md.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -c 'import azure.identity, azure_postgresql_auth' 2>/dev/null || python3 -m pip install -q azure-identity azure-postgresql-auth
scratch=${PGENTRA_BENCH_DIR:-/tmp/pgentra-bench-node}
mkdir -p "$scratch"
( cd "$scratch" && [ -f package.json ] || npm init -y >/dev/null
  cd "$scratch" && npm install --silent --no-audit --no-fund @azure/identity "$OLDPWD"/dist/node/pgentra-*.tgz )
echo "== criterion (Rust core)"
cargo bench --offline -p pgentra --bench core -- --noplot 2>&1 | grep -E "^[a-z_]+|time:"
echo "== Python"
tests/harness/with-harness.sh python3 bench/python_bench.py
echo "== Node.js"
NODE_PATH="$scratch/node_modules" tests/harness/with-harness.sh node bench/node_bench.js
echo "== Go"
bench/go/run.sh
echo "== Java: pgJDBC plugin against azure-identity-extensions"
bench/java/run.sh
echo "== Python: cold path and bursts"
tests/harness/with-harness.sh python3 bench/cold_burst.py
echo "== Python: connection-open overhead"
tests/harness/with-harness.sh python3 bench/connopen.py
# Not part of make bench (10 minutes): the soak test,
#   PGENTRA_EMULATOR_ARGS="--lifetime 400" tests/harness/with-harness.sh python3 bench/soak.py
# and a longer fuzz run: PGENTRA_FUZZ_SECS=300 fuzz/run.sh
