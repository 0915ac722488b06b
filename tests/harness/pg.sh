#!/usr/bin/env bash
# A private PostgreSQL 15 for tests, as Azure runs it: TLS on, cleartext passwords over TLS
# only, no TLS refused (hostnossl ... reject). Token roles (members of azure_ad_user, as on
# Azure) are checked the way Azure checks them: with PGENTRA_LDAP_PORT set, pg_hba.conf sends
# their logins to the identity emulator's LDAP port (PostgreSQL's `ldap` method, simple bind:
# the role in the DN, the token as the password), which accepts every unexpired token it signed
# for that role's identity with the database's audience, unless rotated out or revoked. Other
# roles (app_static, owner_user) have ordinary passwords (hostssl ... password). A refused token
# is reported as on Azure, 28P01 "password authentication failed" (pgentra_auth.c, compiled here
# against PostgreSQL's server headers: scripts/deps.sh fetches them if need be). Admin access
# is over a unix socket in the data directory (trust); the emulator creates the token roles
# through it.
#   PGENTRA_LDAP_PORT=N pg.sh start DIR   -> prints PGENTRA_PG_* lines to DIR/pg.env
#   pg.sh stop DIR
set -euo pipefail
cmd=${1:?start|stop}; dir=${2:?data dir}
PGBIN=${PGBIN:-$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n1)}
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }

case "$cmd" in
start)
  mkdir -p "$dir"; dir=$(cd "$dir" && pwd)
  [ "$(id -u)" = 0 ] && chown postgres: "$dir"
  chmod 700 "$dir"
  as_pg "$PGBIN/initdb" -D "$dir/data" -U postgres --auth-local=trust --auth-host=reject -E UTF8 >"$dir/initdb.log" 2>&1
  # A test CA and a server certificate for 127.0.0.1, localhost and an Azure-style name.
  ( cd "$dir"
    openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=pgentra test CA" \
      -keyout ca.key -out ca.pem >/dev/null 2>&1
    openssl req -newkey rsa:2048 -nodes -subj "/CN=localhost" -keyout server.key -out server.csr >/dev/null 2>&1
    # The Azure-style name the TLS policy tests use (netns.sh maps it to 127.0.0.1).
    printf 'subjectAltName=DNS:localhost,DNS:pgentra-test.postgres.database.azure.com,IP:127.0.0.1\n' > san.ext
    openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 \
      -extfile san.ext -out server.crt >/dev/null 2>&1
    cp server.crt server.key data/ ; chmod 600 data/server.key
    [ "$(id -u)" = 0 ] && chown postgres: data/server.crt data/server.key ca.pem
  )
  port=$(free_port)
  # The hook that reports a refused token as 28P01 (see pgentra_auth.c).
  major=$("$PGBIN/postgres" --version | sed -E 's/.* ([0-9]+)\..*/\1/')
  inc=""
  for d in "${PGENTRA_PG_SERVER_INCLUDE:-}" "/usr/include/postgresql/$major/server" \
           "${XDG_CACHE_HOME:-$HOME/.cache}/pgentra/postgresql-server-dev-$major/usr/include/postgresql/$major/server"; do
    [ -n "$d" ] && [ -f "$d/postgres.h" ] && { inc=$d; break; }
  done
  [ -n "$inc" ] || { echo "pg.sh: PostgreSQL $major's server headers are missing; run scripts/deps.sh (outside the harness)" >&2; exit 1; }
  # libpq-be.h includes gssapi/gssapi.h (Debian's server is built with GSSAPI): MIT Kerberos's.
  gss=""
  for d in /usr/include "$inc/../../../mit-krb5"; do [ -f "$d/gssapi/gssapi.h" ] && { gss=$d; break; }; done
  [ -n "$gss" ] || { echo "pg.sh: gssapi/gssapi.h is missing; run scripts/deps.sh (outside the harness)" >&2; exit 1; }
  gcc -shared -fPIC -O2 -Wall -Werror -I"$inc" -I"$gss" -o "$dir/pgentra_auth.so" "$(dirname "$0")/pgentra_auth.c"
  chmod 644 "$dir/pgentra_auth.so"
  cat >> "$dir/data/postgresql.conf" <<CONF
listen_addresses = '127.0.0.1'
port = $port
unix_socket_directories = '$dir'
ssl = on
ssl_cert_file = 'server.crt'
ssl_key_file = 'server.key'
password_encryption = 'scram-sha-256'
fsync = off
synchronous_commit = off
full_page_writes = off
max_connections = 200
shared_preload_libraries = '$dir/pgentra_auth.so'
CONF
  # The method and options must match what the emulator prints as PGENTRA_EMULATOR_HBA.
  ldap_line=""
  if [ -n "${PGENTRA_LDAP_PORT:-}" ]; then
    ldap_line="hostssl   all +azure_ad_user 127.0.0.1/32 ldap ldapserver=127.0.0.1 ldapport=$PGENTRA_LDAP_PORT ldapscheme=ldap ldaptls=0 ldapprefix=\"cn=\" ldapsuffix=\",dc=pgentra,dc=emulator\""
  fi
  cat > "$dir/data/pg_hba.conf" <<HBA
local     all all                 trust
$ldap_line
hostssl   all all 127.0.0.1/32    password
hostnossl all all 127.0.0.1/32    reject
HBA
  as_pg "$PGBIN/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 30 start >/dev/null
  # A role with a static password (secret mode) and a table owned by postgres (grant tests).
  as_pg "$PGBIN/psql" -h "$dir" -p "$port" -U postgres -d postgres -v ON_ERROR_STOP=1 -q <<'SQL'
CREATE ROLE azure_ad_user NOLOGIN;
CREATE ROLE app_static LOGIN PASSWORD 'static pw;''"\@/?#%';
CREATE ROLE owner_user LOGIN PASSWORD 'owner-pw' SUPERUSER;
CREATE TABLE public.items (id serial primary key, name text);
INSERT INTO public.items (name) VALUES ('one'), ('two');
SQL
  cat > "$dir/pg.env" <<ENV
PGENTRA_PG_HOST=127.0.0.1
PGENTRA_PG_PORT=$port
PGENTRA_PG_SOCKET=$dir
PGENTRA_PG_CA=$dir/ca.pem
PGENTRA_PG_ADMIN='host=$dir port=$port user=postgres dbname=postgres'
ENV
  ;;
stop)
  [ -d "$dir/data" ] && as_pg "$PGBIN/pg_ctl" -D "$dir/data" -m immediate stop >/dev/null 2>&1 || true
  ;;
*) echo "usage: pg.sh start|stop DIR" >&2; exit 2;;
esac
