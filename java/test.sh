#!/usr/bin/env bash
# Java's suites, inside the harness (tests/harness/with-harness.sh java/test.sh): the JUnit
# tests of java/pgentra (API, pgJDBC plugin, HikariCP 7 and 6, class loaders, native loading)
# and of pgentra-spring-boot (Spring Boot 3.5 and 4.0 apps, pgentra-spring-boot/it/*),
# offline (java/build.sh resolved everything). Needs `make build` (java/build.sh) first.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
[ -n "${PGENTRA_PG_HOST:-}" ] || { echo "java: run inside tests/harness/with-harness.sh" >&2; exit 2; }
[ -f "$here/pgentra/native/META-INF/native/linux-x86_64/libpgentra_jni.so" ] || { echo "java: run java/build.sh first" >&2; exit 2; }
work=$(mktemp -d /tmp/pgentra-java.XXXXXX)
trap 'umount "$work/noexec" 2>/dev/null || true; rm -rf "$work"' EXIT
# The JVM's trust store: the harness's database CA, standing in for Azure's roots.
keytool -importcert -noprompt -alias pgentra-test-pg -file "$PGENTRA_PG_CA" -keystore "$work/trust.p12" \
  -storetype PKCS12 -storepass changeit >/dev/null 2>&1
# What Service Connector writes for `--client-type java` (system-assigned identity), and the
# same for a user-assigned identity under another prefix.
export AZURE_POSTGRESQL_CONNECTIONSTRING="jdbc:postgresql://$PGENTRA_PG_HOST:$PGENTRA_PG_PORT/postgres?sslmode=require&user=pgentra-app&authenticationPluginClassName=com.azure.identity.extensions.jdbc.postgresql.AzurePostgresqlAuthenticationPlugin"
export SCUAMI_CONNECTIONSTRING="jdbc:postgresql://$PGENTRA_PG_HOST:$PGENTRA_PG_PORT/postgres?sslmode=require&user=pgentra-uami&authenticationPluginClassName=com.azure.identity.extensions.jdbc.postgresql.AzurePostgresqlAuthenticationPlugin"
export SCUAMI_CLIENTID=11111111-1111-1111-1111-111111111111
export PGENTRA_SELFTEST=1 PGENTRA_IMDS_ENDPOINT=http://127.0.0.1:9
# A noexec folder for the native loader's test (a private mount namespace allows it).
mkdir -p "$work/noexec" "$work/exec"
if mount -t tmpfs -o noexec,size=64m tmpfs "$work/noexec" 2>/dev/null; then
  export PGENTRA_TEST_NOEXEC_DIR="$work/noexec"
fi
export PGENTRA_TEST_EXEC_DIR="$work/exec"
argline="-Djavax.net.ssl.trustStore=$work/trust.p12 -Djavax.net.ssl.trustStorePassword=changeit -Djavax.net.ssl.trustStoreType=PKCS12"
cd "$here"
mvn -o -q -B -Dstyle.color=never test -pl pgentra "-Dpgentra.test.argLine=$argline"
echo "java: HikariCP 6.3.3"
mvn -o -q -B -Dstyle.color=never test -pl pgentra "-Dpgentra.test.argLine=$argline" -Dhikari.version=6.3.3 -Dtest=HikariTest -Dpgentra.test.hikariSeconds=60
# Spring Boot 3.5 and 4.0 apps (pgentra-spring-boot/it), configured only as Service Connector
# configures one for `--client-type springboot` (system-assigned identity; the other cases
# are set up inside the suite): App Service passes these as environment variables.
its=pgentra-spring-boot/it/boot35,pgentra-spring-boot/it/boot40
(
  unset AZURE_POSTGRESQL_CONNECTIONSTRING SCUAMI_CONNECTIONSTRING SCUAMI_CLIENTID
  export SPRING_DATASOURCE_URL="jdbc:postgresql://$PGENTRA_TEST_AZURE_HOST:$PGENTRA_PG_PORT/postgres?sslmode=require"
  export SPRING_DATASOURCE_USERNAME=pgentra-app SPRING_DATASOURCE_AZURE_PASSWORDLESSENABLED=true
  echo "java: Spring Boot 3.5 and 4.0"
  mvn -o -q -B -Dstyle.color=never test -pl "$its" -am -Dtest='Spring*Test' -Dsurefire.failIfNoSpecifiedTests=false "-Dpgentra.test.argLine=$argline"
  echo "java: Spring Boot 3.5 and 4.0 with PGENTRA_ALLOW_UNVERIFIED_TLS=1"
  PGENTRA_ALLOW_UNVERIFIED_TLS=1 mvn -o -q -B -Dstyle.color=never test -pl "$its" -am -Dtest=SpringUnverifiedTlsTest \
    -Dsurefire.failIfNoSpecifiedTests=false "-Dpgentra.test.argLine=$argline"
)
for r in pgentra/target/surefire-reports/*.txt pgentra-spring-boot/it/boot*/target/surefire-reports/*Test.txt; do
  echo "$r" | sed -n 's:.*/\(boot[0-9]*\)/.*:\1\::p' | tr -d '\n'; grep -h 'Tests run' "$r"
done
