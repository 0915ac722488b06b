#!/usr/bin/env bash
# make bench: the Rust core's criterion benchmarks, then the Python comparison against the
# incumbents on the loopback emulator. Results are recorded by hand in bench/results.md.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -c 'import azure.identity, azure_postgresql_auth' 2>/dev/null || python3 -m pip install -q azure-identity azure-postgresql-auth
cargo bench --offline -p pgentra --bench core -- --noplot 2>&1 | grep -E "^[a-z_]+ |time:" 
tests/harness/with-harness.sh python3 bench/python_bench.py
