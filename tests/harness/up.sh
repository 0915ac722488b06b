#!/usr/bin/env bash
# Start the private PostgreSQL and the identity emulator in DIR; write DIR/harness.env.
# Meant to run inside a loopback-only network namespace (see netns.sh).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
dir=${1:?dir}; mkdir -p "$dir"; dir=$(cd "$dir" && pwd)
emulator=${PGENTRA_EMULATOR_BIN:-$here/../../target/release/pgentra-emulator}
# PostgreSQL checks tokens by asking the emulator over LDAP on this port (see pg.sh).
ldap_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()')
PGENTRA_LDAP_PORT=$ldap_port "$here/pg.sh" start "$dir/pg"
(umask 077; mkdir -p "$dir/token-cache")
set -a; . "$dir/pg/pg.env"; set +a
mkdir -p "$dir/emu"
"$emulator" --state-dir "$dir/emu" --pg-admin "$PGENTRA_PG_ADMIN" --ldap-port "$ldap_port" ${PGENTRA_EMULATOR_ARGS:-} >"$dir/emulator.log" 2>&1 &
for _ in $(seq 1 100); do [ -f "$dir/emu/emulator.env" ] && break; sleep 0.1; done
[ -f "$dir/emu/emulator.env" ] || { echo "emulator did not start:" >&2; cat "$dir/emulator.log" >&2; exit 1; }
# A certificate for the service-principal-with-certificate case, and a federated token file.
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=pgentra-sp-cert" \
  -keyout "$dir/sp.key" -out "$dir/sp.crt" >/dev/null 2>&1
cat "$dir/sp.crt" "$dir/sp.key" > "$dir/sp.pem"
echo "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJzeXN0ZW06c2VydmljZWFjY291bnQ6ZGVmYXVsdDphcHAifQ.c2ln" > "$dir/federated-token"
{
  cat "$dir/pg/pg.env"
  cat "$dir/emu/emulator.env"
  echo "PGENTRA_TEST_DIR=$dir"
  # The shared token cache: a fresh private folder per run, never the user's own (a token of
  # an earlier run's emulator must not be served here).
  echo "PGENTRA_CACHE_DIR=$dir/token-cache"
  # Sharing is off by default here: most suites were written for per-process caches (they
  # count identity requests per connector and queue faults for the next request). The Makefile
  # turns it on for the Rust suites (their reset() empties this folder), and the shared cache's
  # own tests turn it on for their processes. PGENTRA_HARNESS_SHARED_CACHE=1 turns it on for
  # everything under the harness.
  echo "PGENTRA_SHARED_CACHE=${PGENTRA_HARNESS_SHARED_CACHE:-0}"
  echo "PGENTRA_TEST_CERT=$dir/sp.pem"
  echo "PGENTRA_TEST_FEDERATED=$dir/federated-token"
  # The test roots, standing in for Azure's: the emulator's CA (its Entra endpoint) and the
  # database's CA. pgentra names this bundle as sslrootcert for Azure-style hosts.
  cat "$(grep '^PGENTRA_EMULATOR_CA=' "$dir/emu/emulator.env" | cut -d= -f2- | tr -d "'")" "$PGENTRA_PG_CA" > "$dir/test-roots.pem"
  chmod 644 "$dir/test-roots.pem"
  echo "SSL_CERT_FILE=$dir/test-roots.pem"
  echo "PGENTRA_TEST_AZURE_HOST=pgentra-test.postgres.database.azure.com"
  echo "PGENTRA_TEST_WRONG_HOST=pgentra-wrongname.postgres.database.azure.com"
  echo "PATH=$here/bin:$PATH"
} > "$dir/harness.env"
