package io.pgentra;

/**
 * A pgentra error. Its message names the variable, key or property at fault and says what to
 * do; it never contains a token, client secret or password.
 */
public class PgEntraException extends RuntimeException {
    private static final long serialVersionUID = 1L;

    /** What went wrong, coarsely: the same kinds, with the same numbers, in every language. */
    public enum Kind {
        /** A variable, key or argument is missing, malformed or contradictory. */
        CONFIG(1),
        /** No credential applies, or one could not be built or run. */
        CREDENTIAL(2),
        /** The identity service answered with an error (Entra AADSTS..., managed identity 4xx/5xx). */
        IDENTITY_SERVICE(3),
        /** The identity service or the database could not be reached in time. */
        NETWORK(4),
        /** A token would travel without TLS, or without the server's certificate checked. */
        TLS_POLICY(5),
        /** The database refused the connection or a query failed. */
        DATABASE(6),
        /** A bug in pgentra (for instance a Rust panic, caught at the boundary). */
        INTERNAL(7);

        private final int id;

        Kind(int id) {
            this.id = id;
        }

        /** The kind's number, as in every other binding (1 = CONFIG ... 7 = INTERNAL). */
        public int id() {
            return id;
        }

        static Kind of(int id) {
            for (Kind k : values()) {
                if (k.id == id) {
                    return k;
                }
            }
            return INTERNAL;
        }
    }

    private final Kind kind;
    private final String serviceCode;

    /** Called by the native library (the one place where core errors become exceptions). */
    PgEntraException(int kind, String message, String serviceCode) {
        super(message);
        this.kind = Kind.of(kind);
        this.serviceCode = serviceCode;
    }

    PgEntraException(Kind kind, String message) {
        super(message);
        this.kind = kind;
        this.serviceCode = null;
    }

    /** The kind of error. */
    public Kind kind() {
        return kind;
    }

    /** The identity service's own error code (e.g. {@code AADSTS7000215}), or null. */
    public String serviceCode() {
        return serviceCode;
    }
}
