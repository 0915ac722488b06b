package io.pgentra;

/** A fresh JVM for LoaderTest: prints the native version, or the loader's error (exit 1). */
public final class LoaderProbe {
    private LoaderProbe() {}

    public static void main(String[] args) {
        try {
            System.out.println(PgEntra.nativeVersion());
        } catch (PgEntraException e) {
            System.out.println(e.getMessage());
            System.exit(1);
        }
    }
}
