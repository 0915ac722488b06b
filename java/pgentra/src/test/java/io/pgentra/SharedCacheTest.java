package io.pgentra;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStreamReader;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.nio.file.attribute.PosixFilePermissions;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.TimeUnit;
import java.util.stream.Stream;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestInfo;

/**
 * The shared token cache (issue #16) through the JNI binding, with sharing ON as in
 * production: worker JVMs share one identity request. The harness keeps sharing off for the
 * rest of this suite (PGENTRA_SHARED_CACHE=0); these tests turn it on for their own processes
 * only (SharedCacheWorker), with a fresh private cache folder under $PGENTRA_TEST_DIR, and
 * count requests at the emulator.
 */
class SharedCacheTest {
    private static final int WORKERS = 8;
    private Path folder;

    /** What a worker printed. */
    private record Report(String pid, String token, long requests, String user, String kind, String code, String message) {
        static Report parse(String line) {
            String[] f = line.split("\t", -1);
            assertEquals(7, f.length, "a worker's report has 7 fields");
            return new Report(f[0], f[1], Long.parseLong(f[2]), f[3], f[4], f[5], f[6]);
        }
    }

    /** A worker JVM and its pipes. */
    private record Worker(Process process, BufferedReader out, PrintStream in) {
        Report report() throws Exception {
            String line = out.readLine();
            in.close();
            assertTrue(process.waitFor(120, TimeUnit.SECONDS), "a worker did not end");
            assertEquals(0, process.exitValue(), "a worker failed: " + line);
            return Report.parse(line);
        }
    }

    @BeforeEach
    void setUp(TestInfo info) throws IOException {
        Harness.require();
        folder = Paths.get(System.getenv("PGENTRA_TEST_DIR"), "java-shared-" + info.getTestMethod().orElseThrow().getName());
        delete(folder);
        Files.createDirectory(folder, PosixFilePermissions.asFileAttribute(PosixFilePermissions.fromString("rwx------")));
        Harness.resetFaults();
    }

    @AfterEach
    void tearDown() throws IOException {
        if (folder != null) {
            Harness.resetFaults();
            delete(folder);
        }
    }

    private static void delete(Path p) throws IOException {
        if (Files.exists(p)) {
            try (Stream<Path> s = Files.walk(p)) {
                for (Path f : s.sorted(Comparator.reverseOrder()).toList()) {
                    Files.delete(f);
                }
            }
        }
    }

    private static String libpq() {
        return "host=" + Harness.host() + " port=" + Harness.port() + " dbname=postgres sslmode=require";
    }

    private Worker start(String sharing, boolean gate, boolean login) throws IOException {
        return start(sharing, gate, login, "close");
    }

    private Worker start(String sharing, boolean gate, boolean login, String end) throws IOException {
        List<String> cmd = new ArrayList<>();
        cmd.add(Paths.get(System.getProperty("java.home"), "bin", "java").toString());
        for (String k : new String[] {"javax.net.ssl.trustStore", "javax.net.ssl.trustStorePassword", "javax.net.ssl.trustStoreType"}) {
            if (System.getProperty(k) != null) {
                cmd.add("-D" + k + "=" + System.getProperty(k));
            }
        }
        cmd.add("-cp");
        cmd.add(System.getProperty("java.class.path"));
        cmd.add(SharedCacheWorker.class.getName());
        ProcessBuilder b = new ProcessBuilder(cmd).redirectError(ProcessBuilder.Redirect.INHERIT);
        Map<String, String> env = b.environment();
        env.put("PGENTRA_SHARED_CACHE", sharing);
        env.put("PGENTRA_CACHE_DIR", folder.toString());
        env.put("SHARED_TEST_LIBPQ", libpq());
        env.put("SHARED_TEST_GATE", gate ? "1" : "0");
        env.put("SHARED_TEST_LOGIN", login ? "1" : "0");
        env.put("SHARED_TEST_END", end);
        Process p = b.start();
        return new Worker(p, new BufferedReader(new InputStreamReader(p.getInputStream(), StandardCharsets.UTF_8)),
                new PrintStream(p.getOutputStream(), true, StandardCharsets.UTF_8));
    }

    private Report fresh(String sharing) throws Exception {
        return start(sharing, false, false).report();
    }

    private static long requests() {
        return Harness.identityRequests();
    }

    @Test
    void coldWorkersMakeOneRequestAndLaterOnesNone() throws Exception {
        Harness.faults("[{\"delay_ms\": 300}]"); // the first request is slow: the others ask while it runs
        List<Worker> ws = new ArrayList<>();
        for (int i = 0; i < WORKERS; i++) {
            ws.add(start("1", true, i == 0));
        }
        for (Worker w : ws) {
            assertEquals("ready", w.out().readLine());
        }
        for (Worker w : ws) {
            w.in().println("go"); // every worker is ready: all ask now
        }
        List<Report> got = new ArrayList<>();
        for (Worker w : ws) {
            got.add(w.report());
        }
        Set<String> tokens = new HashSet<>();
        Set<String> pids = new HashSet<>();
        long sum = 0;
        for (Report r : got) {
            assertEquals("", r.kind(), r.message());
            tokens.add(r.token());
            pids.add(r.pid());
            sum += r.requests();
        }
        assertEquals(1, requests(), WORKERS + " cold worker JVMs made " + requests() + " identity requests");
        assertEquals(1, tokens.size(), "every worker got the same token");
        assertEquals(WORKERS, pids.size());
        assertEquals(1, sum);
        assertEquals("pgentra-app", got.get(0).user(), "a worker logged in with the shared token");
        // A warm cache costs nothing: a later worker, and 8 more at once.
        Report later = fresh("1");
        assertEquals(got.get(0).token(), later.token());
        assertEquals(0, later.requests());
        ws.clear();
        for (int i = 0; i < WORKERS; i++) {
            ws.add(start("1", false, false));
        }
        for (Worker w : ws) {
            Report r = w.report();
            assertEquals(got.get(0).token(), r.token());
            assertEquals(0, r.requests());
        }
        assertEquals(1, requests());
    }

    @Test
    void aConnectorClosedOrCollectedLeavesTheSharedEntryToTheOthers() throws Exception {
        // close() (try-with-resources, a pool or an app context shutting down) and the Cleaner
        // of a collected PgEntra forget this JVM's token, never the entry the others read.
        Report first = fresh("1");
        assertEquals(1, first.requests());
        Report afterClose = start("1", false, false, "gc").report();
        assertEquals(0, afterClose.requests(), "the entry survived the first worker's close()");
        Report afterGc = fresh("1");
        assertEquals(0, afterGc.requests(), "the entry survived the second worker's collected connector");
        assertEquals(first.token(), afterGc.token());
        assertEquals(1, requests());
    }

    @Test
    void switchingOffIsHonouredPerProcess() throws Exception {
        Report warm = fresh("1");
        assertEquals(1, warm.requests());
        for (String spelling : new String[] {"0", "false", "no", "OFF"}) {
            assertEquals(1, fresh(spelling).requests(), "PGENTRA_SHARED_CACHE=" + spelling);
        }
        assertEquals(5, requests(), "each switched-off process asked for itself");
        Report on = fresh("1");
        assertEquals(warm.token(), on.token());
        assertEquals(0, on.requests());
        assertEquals(5, requests());
    }

    @Test
    void aFailureIsTheNextProcessAnswerWithTheSameKind() throws Exception {
        // Throttled, Retry-After 30 s (beyond the 10 s timeout: the process gives up at once).
        Harness.faults("[{\"status\": 429, \"retry_after\": 30}]");
        Report first = fresh("1");
        assertEquals(PgEntraException.Kind.IDENTITY_SERVICE.name(), first.kind(), first.message());
        assertEquals(1, requests());
        Report second = fresh("1");
        assertEquals(1, requests(), "the second process answered from the shared failure");
        assertEquals(first.kind(), second.kind());
        assertEquals(first.code(), second.code());
        assertTrue(second.message().contains("another process's request"), second.message());
        assertEquals(1, fresh("0").requests(), "switched off, a process asks for itself");
        assertEquals(2, requests());
    }
}
