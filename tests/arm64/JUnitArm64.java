import static org.junit.platform.engine.discovery.DiscoverySelectors.selectClass;
import static org.junit.platform.engine.discovery.DiscoverySelectors.selectMethod;

import java.io.PrintWriter;
import java.lang.reflect.Method;
import java.nio.file.Files;
import java.nio.file.Paths;
import java.util.ArrayList;
import java.util.List;
import java.util.stream.Collectors;
import org.junit.platform.engine.DiscoverySelector;
import org.junit.platform.engine.TestExecutionResult;
import org.junit.platform.launcher.Launcher;
import org.junit.platform.launcher.LauncherDiscoveryRequest;
import org.junit.platform.launcher.TestExecutionListener;
import org.junit.platform.launcher.TestIdentifier;
import org.junit.platform.launcher.core.LauncherDiscoveryRequestBuilder;
import org.junit.platform.launcher.core.LauncherFactory;
import org.junit.platform.launcher.listeners.SummaryGeneratingListener;
import org.junit.platform.launcher.listeners.TestExecutionSummary;

/**
 * tests/arm64/run.sh's Java runner: the JUnit tests named on the command line (a class, or
 * class#method), run by the JUnit Platform in the arm64 root's JVM without Maven. Exits non-zero
 * when the JVM is not aarch64, when a test fails or is skipped, when none ran, or when pgentra's
 * JNI library was not loaded from the jar's linux-aarch64 entry.
 */
public final class JUnitArm64 {
    private JUnitArm64() {}

    public static void main(String[] args) throws Exception {
        String arch = System.getProperty("os.arch");
        System.out.println("java: os.arch=" + arch + ", " + System.getProperty("java.vm.name") + " " + System.getProperty("java.version"));
        if (!"aarch64".equals(arch)) {
            fail("the JVM is " + arch + ", not aarch64");
        }
        if (System.getProperty("pgentra.native.path") != null) {
            fail("-Dpgentra.native.path is set: the library must come from the jar");
        }
        List<DiscoverySelector> selectors = new ArrayList<>();
        for (String a : args) {
            selectors.add(a.contains("#") ? selectMethod(a) : selectClass(a));
        }
        LauncherDiscoveryRequest request = LauncherDiscoveryRequestBuilder.request().selectors(selectors).build();
        Launcher launcher = LauncherFactory.create();
        SummaryGeneratingListener summary = new SummaryGeneratingListener();
        TestExecutionListener each = new TestExecutionListener() {
            @Override
            public void executionFinished(TestIdentifier id, TestExecutionResult result) {
                if (id.isTest()) {
                    System.out.println("  " + result.getStatus() + " " + id.getUniqueId().replaceAll("\\[[a-z-]+:", "").replace("]", ""));
                }
            }

            @Override
            public void executionSkipped(TestIdentifier id, String reason) {
                System.out.println("  SKIPPED " + id.getDisplayName() + ": " + reason);
            }
        };
        launcher.execute(request, summary, each);
        TestExecutionSummary s = summary.getSummary();
        s.printTo(new PrintWriter(System.out));
        s.printFailuresTo(new PrintWriter(System.out), 40);

        // Where pgentra's library came from: the loader's platform, the jar holding the class, and
        // the copy the loader wrote and mapped (pgentra-jni-*.so, removed after loading).
        Class<?> loader = Class.forName("io.pgentra.NativeLoader");
        Method platform = loader.getDeclaredMethod("platform");
        platform.setAccessible(true);
        String p = (String) platform.invoke(null);
        String jar = Class.forName("io.pgentra.PgEntra").getProtectionDomain().getCodeSource().getLocation().getPath();
        List<String> mapped = Files.readAllLines(Paths.get("/proc/self/maps")).stream()
                .filter(l -> l.contains("/pgentra-jni-"))
                .map(l -> l.substring(l.indexOf('/')))
                .distinct()
                .collect(Collectors.toList());
        System.out.println("java: pgentra's native library: platform " + p + ", from " + jar + ", mapped " + mapped);
        if (!"linux-aarch64".equals(p)) {
            fail("the loader chose " + p + ", not linux-aarch64");
        }
        if (!jar.endsWith(".jar")) {
            fail("io.pgentra.PgEntra came from " + jar + ", not a jar");
        }
        if (mapped.isEmpty()) {
            fail("no pgentra-jni-*.so (the jar's library, copied by the loader) is mapped in this JVM");
        }
        if (s.getTestsFoundCount() == 0 || s.getTestsSucceededCount() == 0) {
            fail("no test ran");
        }
        if (s.getTotalFailureCount() > 0 || s.getTestsSkippedCount() > 0 || s.getTestsAbortedCount() > 0
                || s.getContainersFailedCount() > 0) {
            fail(s.getTotalFailureCount() + " failed, " + s.getTestsSkippedCount() + " skipped, " + s.getTestsAbortedCount() + " aborted");
        }
        System.out.println("java: " + s.getTestsSucceededCount() + " tests passed in the aarch64 JVM");
    }

    private static void fail(String why) {
        System.out.println("arm64 java: " + why);
        System.exit(1);
    }
}
