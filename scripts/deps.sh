#!/usr/bin/env bash
# Install what the build and the tests need, only where it is missing. Safe to run again.
set -euo pipefail
need_apt=()
have() { command -v "$1" >/dev/null 2>&1; }
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need_apt+=(postgresql)
have psql || need_apt+=(postgresql-client)
have openssl || need_apt+=(openssl)
have curl || need_apt+=(curl)
have unshare || need_apt+=(util-linux)
have ip || need_apt+=(iproute2)
have runuser || need_apt+=(util-linux)
have valgrind || need_apt+=(valgrind)
# A writer of the shared token cache killed mid-write (gdb) and at its rename (strace):
# tests/servers.
have gdb || need_apt+=(gdb)
have strace || need_apt+=(strace)
have gcc || need_apt+=(gcc)
have g++ || need_apt+=(g++)
[ -f /usr/include/postgresql/libpq-fe.h ] || need_apt+=(libpq-dev)
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "deps: apt-get install ${need_apt[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
  # Debian starts a cluster on install; the tests start their own.
  if have pg_ctlcluster; then pg_lsclusters -h 2>/dev/null | awk '{print $1, $2}' | while read -r v n; do pg_ctlcluster "$v" "$n" stop 2>/dev/null || true; done; fi
fi
# PostgreSQL's server headers, for the harness's auth hook (tests/harness/pgentra_auth.c):
# unpacked into a cache folder, not installed (installing the -dev package would upgrade the
# server and libpq under running tests).
pg_major=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n1 | sed -E 's|.*/postgresql/([0-9]+)/bin|\1|')
pg_dev="${XDG_CACHE_HOME:-$HOME/.cache}/pgentra/postgresql-server-dev-$pg_major"
if [ -n "$pg_major" ] && { { [ ! -f "/usr/include/postgresql/$pg_major/server/postgres.h" ] && [ ! -f "$pg_dev/usr/include/postgresql/$pg_major/server/postgres.h" ]; } ||
                            { [ ! -f /usr/include/gssapi/gssapi.h ] && [ ! -f "$pg_dev/usr/include/mit-krb5/gssapi/gssapi.h" ]; }; }; then
  echo "deps: PostgreSQL $pg_major server headers into $pg_dev"
  dl=$(mktemp -d); chmod 755 "$dl"
  # (and MIT Kerberos's gssapi.h, which the server headers include)
  (cd "$dl" && apt-get download -q "postgresql-server-dev-$pg_major" krb5-multidev >/dev/null)
  mkdir -p "$pg_dev"
  for deb in "$dl"/*.deb; do dpkg -x "$deb" "$pg_dev"; done
  rm -rf "$dl"
fi
have cargo || { echo "deps: cargo (Rust) is required" >&2; exit 1; }
python3 -c 'import psycopg2' 2>/dev/null || python3 -m pip install -q psycopg2-binary
python3 -c 'import pytest, hypothesis' 2>/dev/null || python3 -m pip install -q pytest hypothesis
cargo fetch -q
# The fuzz targets (make test-reliability): cargo-fuzz and the fuzz workspace's crates.
command -v cargo-fuzz >/dev/null || cargo install -q --locked cargo-fuzz
(cd "$(dirname "$0")/../fuzz" && cargo fetch -q)
# pgJDBC's own URL parser is an oracle for pgentra's JDBC output (tests/oracle): from Maven Central.
pgjdbc="$HOME/.m2/repository/org/postgresql/postgresql/42.7.14/postgresql-42.7.14.jar"
if [ ! -f "$pgjdbc" ] && command -v mvn >/dev/null 2>&1; then
  mvn -q dependency:get -Dartifact=org.postgresql:postgresql:42.7.14 >/dev/null 2>&1 || echo "deps: could not fetch pgJDBC with Maven; the pgJDBC oracle tests will be skipped" >&2
fi
