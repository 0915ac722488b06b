package io.pgentra;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotSame;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import java.io.File;
import java.io.IOException;
import java.net.URL;
import java.net.URLClassLoader;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.Callable;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;

/** Loading the native library: two class loaders at once, and a noexec work folder. */
class LoaderTest {
    static URL classes() {
        return PgEntra.class.getProtectionDomain().getCodeSource().getLocation();
    }

    @Test
    void twoClassLoadersLoadTheJarAtOnce() throws Exception {
        CountDownLatch start = new CountDownLatch(1);
        ExecutorService pool = Executors.newFixedThreadPool(2);
        List<Future<Object[]>> results = new ArrayList<>();
        for (int i = 0; i < 2; i++) {
            results.add(pool.submit((Callable<Object[]>) () -> {
                URLClassLoader loader = new URLClassLoader(new URL[] {classes()}, ClassLoader.getPlatformClassLoader());
                start.await();
                Class<?> c = Class.forName("io.pgentra.PgEntra", true, loader);
                Object version = c.getMethod("nativeVersion").invoke(null);
                return new Object[] {c, version};
            }));
        }
        start.countDown();
        Object[] a = results.get(0).get(60, TimeUnit.SECONDS);
        Object[] b = results.get(1).get(60, TimeUnit.SECONDS);
        pool.shutdown();
        assertNotSame(a[0], b[0]);
        assertNotSame(a[0], PgEntra.class);
        assertEquals("0.1.0", a[1]);
        assertEquals("0.1.0", b[1]);
    }

    private static Process probe(String... props) throws IOException {
        String java = Paths.get(System.getProperty("java.home"), "bin", "java").toString();
        String cp = System.getProperty("java.class.path");
        List<String> cmd = new ArrayList<>();
        cmd.add(java);
        for (String p : props) {
            cmd.add(p);
        }
        cmd.add("-cp");
        cmd.add(cp);
        cmd.add("io.pgentra.LoaderProbe");
        return new ProcessBuilder(cmd).redirectErrorStream(true).start();
    }

    private static String run(Process p) throws Exception {
        String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
        assertTrue(p.waitFor(60, TimeUnit.SECONDS));
        return p.exitValue() + ": " + out.trim();
    }

    @Test
    void aNoexecWorkFolderIsExplainedAndTheOverrideWorks() throws Exception {
        String noexec = System.getenv("PGENTRA_TEST_NOEXEC_DIR");
        assumeTrue(noexec != null, "java/test.sh could not mount a noexec folder here");
        String out = run(probe("-Dpgentra.native.workdir=" + noexec));
        assertTrue(out.startsWith("1: "), out);
        assertTrue(out.contains("noexec") && out.contains("pgentra.native.workdir"), out);
        try (var files = Files.list(Path.of(noexec))) {
            assertEquals(0, files.count(), "the copy is removed after a failed load");
        }
        String exec = System.getenv("PGENTRA_TEST_EXEC_DIR");
        out = run(probe("-Dpgentra.native.workdir=" + exec));
        assertEquals("0: 0.1.0", out);
        // An explicit library path wins over the jar's copy.
        File lib = new File(new File(classes().toURI()), "META-INF/native/" + NativeLoader.platform() + "/" + NativeLoader.LIBRARY);
        out = run(probe("-Dpgentra.native.workdir=" + noexec, "-Dpgentra.native.path=" + lib));
        assertEquals("0: 0.1.0", out);
    }
}
