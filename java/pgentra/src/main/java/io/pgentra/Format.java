package io.pgentra;

/** The connection-string dialects pgentra renders. */
public enum Format {
    /** libpq key=value ({@code host=... dbname=...}). */
    LIBPQ("libpq"),
    /** {@code postgresql://} URI. */
    URI("uri"),
    /** ADO.NET / Npgsql ({@code Host=...;Database=...}). */
    ADO("ado"),
    /** pgJDBC URL ({@code jdbc:postgresql://...}). */
    JDBC("jdbc"),
    /** A JSON object. */
    JSON("json"),
    /** {@code export PGHOST=...} lines for a POSIX shell. */
    SHELL("shell"),
    /** A PHP PDO DSN ({@code pgsql:host=...}). */
    PDO("pdo");

    final String wire;

    Format(String wire) {
        this.wire = wire;
    }
}
