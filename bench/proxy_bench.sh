#!/usr/bin/env bash
# pgbench through `pgentra proxy` against pgbench straight to the server (TLS, token as the
# password), on the harness's private PostgreSQL. Prints TPS per scenario; never the token.
#   tests/harness/with-harness.sh bench/proxy_bench.sh [SECONDS] [CLIENTS]
# Scenarios: -S (select-only) on persistent connections, and -C (a new connection per
# transaction: TLS + login each time; through the proxy, loopback plaintext to the proxy plus
# the proxy's TLS + login upstream).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
secs=${1:-10}
clients=${2:-8}
: "${PGENTRA_PG_PORT:?run under tests/harness/with-harness.sh}"
pgentra=$root/target/release/pgentra
[ -x "$pgentra" ] || { echo "build first: cargo build --release -p pgentra-cli" >&2; exit 1; }
export AZURE_POSTGRESQL_CONNECTIONSTRING="host=$PGENTRA_PG_HOST port=$PGENTRA_PG_PORT dbname=postgres sslmode=require"
export PGENTRA_IMDS_ENDPOINT=http://127.0.0.1:9

# The identity's role exists once a token was issued; the pgbench tables belong to postgres.
user=$("$pgentra" token --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["claims"]["user"])')
pgbench -i -q -s 10 "$PGENTRA_PG_ADMIN" >/dev/null 2>&1
psql -X -q "$PGENTRA_PG_ADMIN" -c "GRANT ALL ON pgbench_accounts, pgbench_branches, pgbench_tellers, pgbench_history TO \"$user\""

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()')
log=$(mktemp /tmp/pgentra-proxy-bench.XXXXXX)
"$pgentra" proxy --listen "127.0.0.1:$port" ${PROXY_ARGS:-} 2>"$log" &
proxy=$!
trap 'kill "$proxy" 2>/dev/null; wait "$proxy" 2>/dev/null; rm -f "$log"' EXIT
for _ in $(seq 1 100); do grep -q "listening on" "$log" && break; sleep 0.1; done

direct="host=$PGENTRA_PG_HOST port=$PGENTRA_PG_PORT dbname=postgres user=$user sslmode=require"
via="host=127.0.0.1 port=$port dbname=postgres user=$user sslmode=disable"
run() { # name conninfo pgbench-args...
  local name=$1 conn=$2; shift 2
  local out
  out=$(PGPASSWORD=$("$pgentra" token) pgbench -n -j 2 -c "$clients" -T "$secs" "$@" "$conn" 2>&1) || { echo "$name: pgbench failed" >&2; echo "$out" | grep -v -i password >&2; exit 1; }
  printf '%-34s %s\n' "$name" "$(echo "$out" | grep -E '^tps' | head -1)  ($(echo "$out" | grep -E '^latency average' | head -1))"
}
echo "pgbench $(pgbench --version | awk '{print $3}'), $clients clients, 2 threads, ${secs}s each, scale 10, $(nproc) CPUs"
run "direct   -S (persistent, TLS)"     "$direct" -S
run "proxy    -S (persistent)"          "$via"    -S
run "direct   -S -C (connect per tx)"   "$direct" -S -C
run "proxy    -S -C (connect per tx)"   "$via"    -S -C
run "direct   TPC-B (persistent, TLS)"  "$direct"
run "proxy    TPC-B (persistent)"       "$via"
echo "proxy sessions logged: $(grep -c 'outcome=ok' "$log")"
