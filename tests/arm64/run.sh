#!/usr/bin/env bash
# tests/arm64/run.sh: the arm64 suite (make test-arm64). In the arm64 Debian root
# (scripts/arm64-root.sh), every program running as aarch64 under qemu, against the harness's
# PostgreSQL and identity emulator:
#   - Python: the manylinux2014_aarch64 wheel, installed by the root's pip, with Debian arm64's
#     psycopg2: the binding's offline suite (python/tests/test_core.py: every conformance vector
#     byte for byte) and its token suite (python/tests/test_tokens.py: tokens, a passwordless
#     login as the app's role with psycopg2, pools, threads, fork, rotation).
#   - CLI: the aarch64 `pgentra` runs in the root for the end-to-end CLI tests (PGENTRA_CLI_BIN):
#     tests/e2e/tests/vectors_cli.rs (render and parse vectors byte for byte) and the token /
#     dsn / exec psql / check test of tests/e2e/tests/e2e.rs (a token, a login as pgentra-app).
#   - Ruby: the aarch64 extension (dist/ruby/linux-aarch64) with Debian arm64's Ruby and ruby-pg:
#     ruby/test's core, pg and tls tests (vectors byte for byte, a login as pgentra-app).
#   - PHP: the aarch64 extension (dist/php/linux-aarch64) with Debian arm64's PHP, pgsql and
#     PDO: php/tests (PHPUnit; VectorsTest byte for byte, ConnectTest's login as pgentra-app).
#   - Node.js: the linux-arm64-gnu addon with Debian arm64's Node.js and node-postgres
#     (pure JavaScript, from node/node_modules): node/test/unit.test.js and node/test/pg.test.js.
#   - Java: dist/java/pgentra-<version>.jar in Debian arm64's JVM (its loader picks the jar's
#     linux-aarch64 library), with java/pgentra's JUnit tests run by the JUnit Platform
#     (tests/arm64/JUnitArm64.java, compiled here; the jars Maven resolved in java/build.sh):
#     PgEntraTest (vectors byte for byte), VocabularyTest (a token), PluginTest and RecoveryTest
#     (logins as pgentra-app with pgJDBC through the plugin), LoaderTest's two class loaders.
# Run it under the harness: tests/harness/with-harness.sh tests/arm64/run.sh (make test does).
# Its mounts live in the harness's private mount namespace and vanish with it.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
target=${CARGO_TARGET_DIR:-$repo/target}
triple=aarch64-unknown-linux-gnu
arm_root=${PGENTRA_ARM64_ROOT:-${XDG_CACHE_HOME:-$HOME/.cache}/pgentra/arm64-root}

fail() { echo "arm64: $*" >&2; exit 1; }
[ "${PGENTRA_IN_NETNS:-}" = 1 ] && [ -n "${PGENTRA_TEST_DIR:-}" ] ||
  fail "run under the harness: tests/harness/with-harness.sh tests/arm64/run.sh"
[ -f "$arm_root/.pgentra-root" ] ||
  fail "no arm64 root in $arm_root: run scripts/arm64-root.sh outside the harness (make build does)"
grep -qx enabled /proc/sys/fs/binfmt_misc/qemu-aarch64 2>/dev/null ||
  fail "qemu-aarch64 is not registered with binfmt_misc: run scripts/arm64-root.sh (make build does)"
wheel=$(ls -1t "$repo"/dist/python/pgentra-*-*manylinux2014_aarch64*.whl 2>/dev/null | head -n1 || true)
[ -n "$wheel" ] || fail "no manylinux2014_aarch64 wheel in dist/python: run scripts/build-platforms.sh (make build does)"
cli="$target/$triple/release/pgentra"
[ -x "$cli" ] || fail "no aarch64 CLI at $cli: run scripts/build-platforms.sh (make build does)"

# The root sees /proc, /dev, a fresh /tmp, the repository and the harness's folder at the same
# paths, and this namespace's /etc/hosts (tests/platforms/chroot.sh).
# shellcheck source=tests/platforms/chroot.sh
. "$repo/tests/platforms/chroot.sh"
root_mounts "$arm_root"

# Run a command in the root: its own PATH, the harness's variables.
in_root() { chroot "$arm_root" /usr/bin/env PATH=/usr/local/bin:/usr/bin:/bin HOME=/root LANG=C.UTF-8 \
  PYTHONDONTWRITEBYTECODE=1 "$@"; }
[ "$(in_root uname -m)" = aarch64 ] || fail "programs in $arm_root do not run as aarch64"
[ "$(in_root python3 -c 'import platform; print(platform.machine())')" = aarch64 ] || fail "the root's Python is not aarch64"
file_arch() { readelf -h "$1" | sed -n 's/^ *Machine: *//p'; }
[ "$(file_arch "$cli")" = AArch64 ] || fail "$cli is not an AArch64 program"

echo "== arm64: Python wheel $(basename "$wheel") with Debian arm64's psycopg2"
site=/tmp/pgentra-python
in_root python3 -m pip install -q --disable-pip-version-check --no-index --no-deps --target "$site" "$wheel"
so=$(ls "$arm_root$site"/pgentra/_pgentra*.so)
[ "$(file_arch "$so")" = AArch64 ] || fail "$so is not AArch64"
in_root sh -c "cd '$repo' && PYTHONPATH='$site' exec python3 -m pytest -q -p no:cacheprovider python/tests/test_core.py python/tests/test_tokens.py"

echo "== arm64: the aarch64 CLI in the root (tests/e2e: vectors_cli, e2e's CLI test)"
install -m 0755 "$cli" "$arm_root/tmp/pgentra"
"$repo/tests/platforms/cli-e2e.sh" "arm64: the aarch64 CLI" \
  chroot "$arm_root" /usr/bin/env PATH=/usr/local/bin:/usr/bin:/bin HOME=/root /tmp/pgentra
cd "$repo"

# The extensions cross-built by scripts/build-platforms.sh, loaded by the root's own Ruby and PHP.
ruby_ext="$repo/dist/ruby/linux-aarch64/pgentra_ext.so"
[ -f "$ruby_ext" ] || fail "no $ruby_ext: run scripts/build-platforms.sh (make build does)"
echo "== arm64: Ruby extension with Debian arm64's $(in_root ruby --version | cut -d' ' -f1-2) and ruby-pg"
[ "$(file_arch "$ruby_ext")" = AArch64 ] || fail "$ruby_ext is not AArch64"
# A copy of the repository's ruby/ and tests/vectors/ (the tests find ../lib and the vectors
# relative to themselves), with the aarch64 extension in place of this machine's.
rb=/tmp/pgentra-rb
rm -rf "$arm_root$rb"
mkdir -p "$arm_root$rb/ruby" "$arm_root$rb/tests"
cp -r "$repo/ruby/lib" "$repo/ruby/test" "$arm_root$rb/ruby/"
cp -r "$repo/tests/vectors" "$arm_root$rb/tests/"
install -m 0755 "$ruby_ext" "$arm_root$rb/ruby/lib/pgentra/pgentra_ext.so"
# core_test.rb: the conformance vectors byte for byte, errors, secrets; pg_test.rb: tokens, a
# passwordless login as pgentra-app with ruby-pg, threads, interrupts, fork, rotation;
# tls_test.rb: verify-full for Azure names. (active_record_test.rb and recovery_test.rb need
# ActiveRecord, which the root does not have; the x86_64 suite runs them.)
cat > "$arm_root$rb/run.rb" <<EOF
abort "arm64: Ruby is #{RbConfig::CONFIG["arch"]}" unless RbConfig::CONFIG["arch"] == "aarch64-linux-gnu"
%w[core_test pg_test tls_test].each { |t| require "$rb/ruby/test/#{t}" }
ext = \$LOADED_FEATURES.grep(/pgentra_ext/)
abort "arm64: loaded #{ext}, not the aarch64 extension" unless ext == ["$rb/ruby/lib/pgentra/pgentra_ext.so"]
EOF
in_root sh -c "cd '$rb' && exec ruby -I'$rb/ruby/lib' -I'$rb/ruby/test' '$rb/run.rb'"

php_ext="$repo/dist/php/linux-aarch64/pgentra.so"
[ -f "$php_ext" ] || fail "no $php_ext: run scripts/build-platforms.sh (make build does)"
echo "== arm64: PHP extension with Debian arm64's PHP $(in_root php -r 'echo PHP_VERSION;') and pgsql"
[ "$(file_arch "$php_ext")" = AArch64 ] || fail "$php_ext is not AArch64"
install -m 0755 "$php_ext" "$arm_root/tmp/pgentra-php.so"
# php/tests (PHPUnit): the conformance vectors byte for byte (VectorsTest), tokens and a
# passwordless login as pgentra-app with pgsql and PDO, recovery, TLS policy, fork. LaravelTest
# skips itself: the root has no Laravel.
in_root sh -c "cd '$repo' && PGENTRA_PHP_EXTENSION=/tmp/pgentra-php.so exec php -d extension=/tmp/pgentra-php.so \
  -r 'foreach ([\"pgentra\", \"pgsql\", \"pdo_pgsql\"] as \$e) if (!extension_loaded(\$e)) { fwrite(STDERR, \"no \$e\\n\"); exit(1); }'"
in_root sh -c "cd '$repo' && PGENTRA_PHP_EXTENSION=/tmp/pgentra-php.so exec php -d extension=/tmp/pgentra-php.so \
  /usr/bin/phpunit --configuration php/phpunit.xml"

addon="$repo/node/pgentra.linux-arm64-gnu.node"
if [ -f "$addon" ]; then
  echo "== arm64: Node.js addon linux-arm64-gnu with Debian arm64's Node.js $(in_root node --version)"
  [ "$(file_arch "$addon")" = AArch64 ] || fail "$addon is not AArch64"
  in_root sh -c "cd '$repo/node' && exec node --test test/unit.test.js test/pg.test.js"
else
  fail "no $addon: run scripts/build-platforms.sh (make build does)"
fi

# Java: the jar as shipped, in the root's JVM, with the test classes and the jars java/build.sh
# resolved (copied into the root: ~/.m2 is not there), and the runner compiled here.
jar=$(ls -1t "$repo"/dist/java/pgentra-[0-9]*.jar 2>/dev/null | head -n1 || true)
[ -n "$jar" ] || fail "no dist/java/pgentra-<version>.jar: run java/build.sh (make build does)"
tests_cp="$repo/java/pgentra/target/test-classpath.txt"
[ -f "$tests_cp" ] && [ -d "$repo/java/pgentra/target/test-classes/io/pgentra" ] ||
  fail "no java/pgentra/target/test-classes or test-classpath.txt: run java/build.sh (make build does)"
t=$SECONDS
echo "== arm64: Java $(basename "$jar") with Debian arm64's $(in_root java -version 2>&1 | head -n1)"
jv=/tmp/pgentra-java
mkdir -p "$arm_root$jv/lib" "$arm_root$jv/runner"
mapfile -t deps < <(tr : "\n" < "$tests_cp")
cp "${deps[@]}" "$arm_root$jv/lib/"
javac --release 17 -nowarn -d "$arm_root$jv/runner" -cp "$(cat "$tests_cp")" "$here/JUnitArm64.java"
# The JVM's trust store: the harness's database CA (as java/test.sh).
keytool -importcert -noprompt -alias pgentra-test-pg -file "$PGENTRA_PG_CA" -keystore "$arm_root$jv/trust.p12" \
  -storetype PKCS12 -storepass changeit >/dev/null 2>&1
cp="$jar:$repo/java/pgentra/target/test-classes:$jv/runner:$(ls "$arm_root$jv"/lib/*.jar | sed "s|^$arm_root||" | paste -sd:)"
# As java/test.sh: Service Connector's JDBC strings for a system-assigned identity and, under
# another prefix, a user-assigned one; the harness's stand-in `az` on PATH (it runs the root's curl).
sc="jdbc:postgresql://$PGENTRA_PG_HOST:$PGENTRA_PG_PORT/postgres?sslmode=require&authenticationPluginClassName=com.azure.identity.extensions.jdbc.postgresql.AzurePostgresqlAuthenticationPlugin"
in_root sh -c "cd '$repo/java/pgentra' && PATH='$repo/tests/harness/bin':\$PATH AZURE_POSTGRESQL_CONNECTIONSTRING='$sc&user=pgentra-app' \
  SCUAMI_CONNECTIONSTRING='$sc&user=pgentra-uami' SCUAMI_CLIENTID=11111111-1111-1111-1111-111111111111 PGENTRA_SELFTEST=1 PGENTRA_IMDS_ENDPOINT=http://127.0.0.1:9 exec java -Xss1m \
  -Djavax.net.ssl.trustStore=$jv/trust.p12 -Djavax.net.ssl.trustStorePassword=changeit -Djavax.net.ssl.trustStoreType=PKCS12 \
  -cp '$cp' JUnitArm64 io.pgentra.PgEntraTest io.pgentra.VocabularyTest io.pgentra.jdbc.PluginTest io.pgentra.jdbc.RecoveryTest \
  'io.pgentra.LoaderTest#twoClassLoadersLoadTheJarAtOnce'"
echo "arm64: Java in $((SECONDS - t)) s"
echo "arm64: all passed in $SECONDS s"
