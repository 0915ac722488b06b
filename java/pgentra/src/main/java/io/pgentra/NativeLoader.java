package io.pgentra;

import java.io.IOException;
import java.io.InputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.nio.file.StandardCopyOption;
import java.util.Locale;

/**
 * Loads libpgentra_jni once per class loader. From {@code -Dpgentra.native.path} when given;
 * otherwise the jar's copy for this platform ({@code META-INF/native/<os>-<arch>/}) is
 * written to a new, uniquely named, owner-only file in the work folder
 * ({@code -Dpgentra.native.workdir}, else {@code PGENTRA_NATIVE_WORKDIR}, else
 * {@code java.io.tmpdir}), loaded, and removed. A unique file per load lets two class loaders
 * (two web apps in one server) each load their own copy, which the JVM requires.
 */
final class NativeLoader {
    static final String LIBRARY = "libpgentra_jni.so";

    private static boolean loaded;
    private static String failure;

    private NativeLoader() {}

    /** Loads the library, or throws a CONFIG {@link PgEntraException} saying what to do. */
    static synchronized void ensure() {
        if (loaded) {
            return;
        }
        if (failure == null) {
            try {
                loadNow();
                loaded = true;
                return;
            } catch (IOException | UnsatisfiedLinkError | SecurityException e) {
                failure = e.getMessage();
            } catch (PgEntraException e) {
                failure = e.getMessage();
            }
        }
        throw new PgEntraException(PgEntraException.Kind.CONFIG, failure);
    }

    /** For Native's static initializer: load, throwing the same error. */
    static void load() {
        ensure();
    }

    static String platform() {
        String os = System.getProperty("os.name", "").toLowerCase(Locale.ROOT);
        String arch = System.getProperty("os.arch", "").toLowerCase(Locale.ROOT);
        String o = os.startsWith("linux") ? "linux" : os.replace(' ', '_');
        String a;
        switch (arch) {
            case "amd64":
            case "x86_64":
                a = "x86_64";
                break;
            case "aarch64":
            case "arm64":
                a = "aarch64";
                break;
            default:
                a = arch;
        }
        return o + "-" + a;
    }

    static Path workdir() {
        String dir = System.getProperty("pgentra.native.workdir");
        if (dir == null || dir.isEmpty()) {
            dir = System.getenv("PGENTRA_NATIVE_WORKDIR");
        }
        if (dir == null || dir.isEmpty()) {
            dir = System.getProperty("java.io.tmpdir");
        }
        return Paths.get(dir);
    }

    private static void loadNow() throws IOException {
        String explicit = System.getProperty("pgentra.native.path");
        if (explicit != null && !explicit.isEmpty()) {
            try {
                System.load(Paths.get(explicit).toAbsolutePath().toString());
            } catch (UnsatisfiedLinkError e) {
                throw new UnsatisfiedLinkError("pgentra: cannot load the library named by -Dpgentra.native.path (" + explicit + "): "
                        + e.getMessage() + "; point it at libpgentra_jni.so built for " + platform());
            }
            return;
        }
        String resource = "/META-INF/native/" + platform() + "/" + LIBRARY;
        Path dir = workdir();
        try (InputStream in = NativeLoader.class.getResourceAsStream(resource)) {
            if (in == null) {
                throw new PgEntraException(PgEntraException.Kind.CONFIG, "pgentra: this jar has no native library for " + platform()
                        + " (" + resource + "); use a jar built for this platform, or set -Dpgentra.native.path to a libpgentra_jni.so built from bindings/java");
            }
            Path file;
            try {
                file = Files.createTempFile(dir, "pgentra-jni-", ".so");
            } catch (IOException e) {
                throw new IOException("pgentra: cannot write the native library to " + dir + " (" + e + "); set -Dpgentra.native.workdir or PGENTRA_NATIVE_WORKDIR to a writable folder", e);
            }
            try {
                Files.copy(in, file, StandardCopyOption.REPLACE_EXISTING);
                System.load(file.toAbsolutePath().toString());
            } catch (UnsatisfiedLinkError e) {
                throw new UnsatisfiedLinkError("pgentra: cannot load the native library from " + dir + " (" + e.getMessage()
                        + "); if that folder is mounted noexec, set -Dpgentra.native.workdir or PGENTRA_NATIVE_WORKDIR to a folder that allows executing, or -Dpgentra.native.path to the library");
            } finally {
                // Loaded libraries stay mapped: the file is not needed once loaded (or on failure).
                try {
                    Files.deleteIfExists(file);
                } catch (IOException ignored) {
                    // Left in the work folder; harmless.
                }
            }
        }
    }
}
