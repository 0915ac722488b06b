#!/usr/bin/env bash
# Java: pgentra's pgJDBC plugin against Microsoft's azure-identity-extensions plugin, on the same
# emulator endpoint (App Service managed identity) and PostgreSQL, each in fresh JVMs, runs
# alternating: time from JVM start to the first connection, classes loaded and heap after it,
# the plugin's cost per new connection with a cached token, and the dependency footprint.
#   bench/java/run.sh            (needs dist/java/pgentra-*.jar from java/build.sh; resolves the
#                                 incumbent with Maven, then re-runs itself inside the harness)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
runs=${PGENTRA_BENCH_RUNS:-5}
if [ "${1:-}" != --in-harness ]; then
  work=$(mktemp -d /tmp/pgentra-bench-java.XXXXXX)
  (cd "$here" && mvn -q -B -Dstyle.color=never dependency:build-classpath -Dmdep.outputFile="$work/ms.cp" >/dev/null)
  (cd "$here" && mvn -q -B -Dstyle.color=never dependency:build-classpath -Dmdep.outputFile="$work/pgjdbc.cp" -Dmdep.includeArtifactIds=postgresql >/dev/null)
  mkdir -p "$work/classes"
  javac -d "$work/classes" -cp "$(cat "$work/pgjdbc.cp")" "$here/Bench.java"
  PGENTRA_BENCH_WORK="$work" exec "$root/tests/harness/with-harness.sh" "$0" --in-harness
fi
work=$PGENTRA_BENCH_WORK
jar=$(ls "$root"/dist/java/pgentra-[0-9]*.jar | head -1)
pgjdbc=$(cat "$work/pgjdbc.cp")
ms=$(cat "$work/ms.cp")
url="jdbc:postgresql://$PGENTRA_PG_HOST:$PGENTRA_PG_PORT/postgres?sslmode=require"
export PGENTRA_IMDS_ENDPOINT=http://127.0.0.1:9
for i in $(seq 1 "$runs"); do
  java -cp "$work/classes:$jar:$pgjdbc" Bench pgentra io.pgentra.jdbc.PgEntraAuthenticationPlugin "$url" pgentra-app
  java -cp "$work/classes:$ms" Bench azure-identity-extensions com.azure.identity.extensions.jdbc.postgresql.AzurePostgresqlAuthenticationPlugin "$url" pgentra-app
done | tee "$work/runs.txt"
footprint() { # classpath minus pgJDBC: jars and MiB
  tr ':' '\n' <<<"$1" | grep -v '/postgresql-[0-9]' | grep '\.jar$' | { n=0; b=0; while read -r f; do n=$((n+1)); b=$((b+$(stat -c %s "$f"))); done; awk -v n=$n -v b=$b 'BEGIN{printf "%d jars, %.1f MiB\n", n, b/1048576}'; }
}
echo "footprint pgentra: $(footprint "$jar")"
echo "footprint azure-identity-extensions: $(footprint "$ms")"
python3 - "$work/runs.txt" <<'PY'
import re, statistics, sys
rows = {}
for line in open(sys.argv[1]):
    label, *kv = line.split()
    rows.setdefault(label, []).append({k: float(v) for k, v in (x.split("=") for x in kv)})
print("| median of %d runs | first connection (ms since JVM start) | classes loaded | heap after GC (KiB) | plugin per connection (ns) |" % len(next(iter(rows.values()))))
print("|---|---|---|---|---|")
for label, rs in rows.items():
    m = lambda k: statistics.median(r[k] for r in rs)
    print(f"| {label} | {m('first_connection_ms'):.0f} | {m('classes'):.0f} | {m('heap_kb'):.0f} | {m('plugin_ns_median'):.0f} |")
PY
