#!/usr/bin/env bash
# Build pgentra for Java: the JNI library (bindings/java) in release, packed into the jar at
# META-INF/native/linux-x86_64/, then the Maven artifacts into dist/java/:
#   dist/java/pgentra-<version>.jar (and pgentra-spring-boot-<version>.jar when it exists).
# Maven resolves everything the tests need here, online (the tests run offline in the harness).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
out="$root/dist/java"
"$here/deps.sh"
cd "$root"
cargo build --release --locked -p pgentra-java
target_dir=${CARGO_TARGET_DIR:-$root/target}
so="$target_dir/release/libpgentra_jni.so"
[ -f "$so" ] || { echo "java: $so was not built" >&2; exit 1; }
nm -D --defined-only "$so" | grep ' Java_io_pgentra_Native_open$' >/dev/null || { echo "java: $so does not export the JNI entry points" >&2; exit 1; }
native="$here/pgentra/native/META-INF/native/linux-x86_64"
mkdir -p "$native"
objcopy --strip-all "$so" "$native/libpgentra_jni.so.tmp"  # .dynsym (the JNI exports) stays
mv -f "$native/libpgentra_jni.so.tmp" "$native/libpgentra_jni.so"
cd "$here"
# The unit suite and a small Spring test run here (no harness needed), which also makes Maven
# fetch everything the offline run in the harness needs: the test providers, both Spring Boot
# lines' dependencies (the test apps pgentra-spring-boot/it/boot35 and boot40 are modules),
# HikariCP's other line.
mvn -q -B -Dstyle.color=never package -Dtest='PgEntraTest,SpringFactoriesTest' -Dsurefire.failIfNoSpecifiedTests=false
mvn -q -B -Dstyle.color=never dependency:get -Dartifact=com.zaxxer:HikariCP:6.3.3 >/dev/null
# The test classpath as Maven resolved it (JUnit with its Platform Launcher, pgJDBC, HikariCP,
# Gson: jars in ~/.m2), for the arm64 suite (tests/arm64/run.sh), which runs the tests in the
# arm64 root's JVM without Maven.
mvn -q -B -Dstyle.color=never -pl pgentra dependency:build-classpath -Dmdep.includeScope=test \
  -Dmdep.outputFile="$here/pgentra/target/test-classpath.txt" >/dev/null
mkdir -p "$out"
rm -f "$out"/pgentra-*.jar
version=$(sed -n 's:^  <version>\(.*\)</version>:\1:p' pom.xml | head -1)
cp pgentra/target/pgentra-"$version".jar "$out/"
for m in pgentra-spring-boot; do
  if [ -f "$m/target/$m-$version.jar" ]; then cp "$m/target/$m-$version.jar" "$out/"; fi
done
ls -1 "$out"/*.jar
