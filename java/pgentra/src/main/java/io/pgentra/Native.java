package io.pgentra;

/**
 * The JNI entry points of libpgentra_jni (bindings/java). Every method may throw
 * {@link PgEntraException}; none lets a Rust panic through. Handles are owned by
 * {@link PgEntra}.
 */
final class Native {
    private Native() {}

    static {
        NativeLoader.load();
    }

    /** Forces the class (and so the library) to load; throws if it cannot. */
    static void ensureLoaded() {}

    static native long open(String[] options);

    static native void free(long handle);

    static native char[] token(long handle);

    static native void forget(long handle);

    static native boolean invalidateIf(long handle, char[] rejected);

    static native boolean connectFailed(long handle, char[] token, String sqlstate);

    static native String render(long handle, boolean withToken, String format, String[] overrides);

    static native String[] params(long handle, boolean withToken, String[] overrides);

    static native String user(long handle);

    static native long tokenRequests(long handle);

    static native String checkPgjdbc(long handle, String hosts, String sslmode, String sslfactory);

    static native String version();

    static native void selftestPanic();
}
