#!/usr/bin/env bash
# The passwordless flow, step by step, against the private PostgreSQL and the local identity
# emulator (started by tests/harness/with-harness.sh). Nothing leaves this machine.
set -euo pipefail
bin=${PGENTRA_BIN:-target/release/pgentra}
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
step "1. Service Connector injected a connection string without a password (Python/Go/PHP/Ruby shape)"
export AZURE_POSTGRESQL_CONNECTIONSTRING="dbname=postgres host=$PGENTRA_PG_HOST port=$PGENTRA_PG_PORT sslmode=require"
echo "AZURE_POSTGRESQL_CONNECTIONSTRING=$AZURE_POSTGRESQL_CONNECTIONSTRING"
step "2. The app runs with a user-assigned managed identity (App Service endpoint, emulated on loopback)"
export AZURE_POSTGRESQL_CLIENTID=11111111-1111-1111-1111-111111111111
echo "IDENTITY_ENDPOINT=$IDENTITY_ENDPOINT"
echo "AZURE_POSTGRESQL_CLIENTID=$AZURE_POSTGRESQL_CLIENTID"
step "3. pgentra check: configuration, credential, token claims (never the token), real connection"
"$bin" check
step "4. pgentra dsn --format uri (token shortened here for the screen)"
"$bin" dsn --format uri | sed -E 's/:([A-Za-z0-9_-]{12})[A-Za-z0-9._-]+@/:\1…@/'
step "5. pgentra exec -- psql: psql runs with PGPASSWORD set to a current token"
"$bin" exec -- psql -X -A -t -c "select 'connected as ' || current_user || ', TLS ' || ssl from pg_stat_ssl where pid = pg_backend_pid()"
step "6. sslmode=disable with a token is refused"
AZURE_POSTGRESQL_CONNECTIONSTRING="host=$PGENTRA_PG_HOST port=$PGENTRA_PG_PORT sslmode=disable" "$bin" dsn || echo "(exit $? as documented: TLS policy)"
step "done: no password was stored anywhere"
