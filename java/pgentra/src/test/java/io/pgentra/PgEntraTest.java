package io.pgentra;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.google.gson.JsonArray;
import com.google.gson.JsonElement;
import com.google.gson.JsonObject;
import com.google.gson.JsonParser;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.time.Duration;
import java.util.Map;
import org.junit.jupiter.api.Test;

/** The API without an identity service: configuration, rendering, errors, the native boundary. */
class PgEntraTest {
    static final String SECRET_MODE = "host=db.example.com port=5432 dbname=app user=u password=hunter2-secret sslmode=require";

    @Test
    void nativeLibraryLoadsFromTheJar() {
        assertEquals("0.1.0", PgEntra.nativeVersion());
    }

    @Test
    void secretModeRendersEveryFormat() {
        try (PgEntra pg = PgEntra.builder().connectionString(SECRET_MODE).credential("password").build()) {
            assertEquals(SECRET_MODE, pg.connectionString(Format.LIBPQ));
            assertEquals("jdbc:postgresql://db.example.com:5432/app?sslmode=require&user=u&password=hunter2-secret", pg.connectionString(Format.JDBC));
            assertTrue(pg.jdbcUrl().startsWith("jdbc:postgresql://db.example.com:5432/app?sslmode=require&user=u&authenticationPluginClassName=io.pgentra.jdbc.PgEntraAuthenticationPlugin&pgentra.connector="), pg.jdbcUrl());
            assertFalse(pg.jdbcUrl().contains("hunter2"), pg.jdbcUrl());
            assertEquals("hunter2-secret", pg.jdbcProperties().getProperty("password"));
            assertEquals("u", pg.user());
            assertEquals(0, pg.tokenRequests());
            Map<String, String> p = pg.params();
            assertEquals("db.example.com", p.get("host"));
            assertEquals("5432", p.get("port"));
            assertEquals("require", p.get("sslmode"));
            assertEquals("host=db.example.com port=5432 dbname=other user=u password=hunter2-secret sslmode=require",
                    pg.connectionString(Format.LIBPQ, Map.of("dbname", "other")));
        }
    }

    /** tests/vectors/render.json: byte-identical renderings, as in every other binding. */
    @Test
    void conformanceVectors() throws Exception {
        Path file = Paths.get(System.getProperty("user.dir")).resolve("../../tests/vectors/render.json").normalize();
        JsonArray vectors = JsonParser.parseString(Files.readString(file)).getAsJsonArray();
        assertTrue(vectors.size() > 5);
        int compared = 0;
        for (JsonElement e : vectors) {
            JsonObject v = e.getAsJsonObject();
            JsonObject rendered = v.getAsJsonObject("rendered");
            try (PgEntra pg = PgEntra.builder().connectionString(rendered.get("libpq").getAsString()).credential("password").build()) {
                for (Format f : new Format[] {Format.LIBPQ, Format.URI, Format.ADO, Format.JDBC, Format.JSON}) {
                    assertEquals(rendered.get(f.wire).getAsString(), pg.connectionString(f), v.get("name") + " " + f);
                    compared++;
                }
                if (rendered.has("pdo") && !rendered.get("pdo").isJsonNull()) {
                    assertEquals(rendered.get("pdo").getAsString(), pg.connectionString(Format.PDO), v.get("name") + " pdo");
                }
            }
        }
        assertEquals(vectors.size() * 5, compared);
    }

    @Test
    void badOptionsNameTheKeyAndNeverTheValue() {
        PgEntraException e = assertThrows(PgEntraException.class, () -> PgEntra.builder().option("port", "99999").build());
        assertEquals(PgEntraException.Kind.CONFIG, e.kind());
        assertTrue(e.getMessage().contains("option 'port'"), e.getMessage());
        e = assertThrows(PgEntraException.class, () -> PgEntra.builder().option("clientId", "x").build());
        assertTrue(e.getMessage().contains("did you mean 'client_id'"), e.getMessage());
        e = assertThrows(PgEntraException.class, () -> PgEntra.builder().credential("hunter2-secret").build());
        assertFalse(e.getMessage().contains("hunter2"), e.getMessage());
        e = assertThrows(PgEntraException.class,
                () -> PgEntra.builder().connectionString("host=h dbname=d user=u password=hunter2-secret sslmode=bogus").build());
        assertEquals(PgEntraException.Kind.CONFIG, e.kind());
        assertFalse(e.getMessage().contains("hunter2"), e.getMessage());
        assertNull(e.serviceCode());
        e = assertThrows(PgEntraException.class, () -> PgEntra.builder().timeout(Duration.ofHours(2)).build());
        assertTrue(e.getMessage().contains("option 'timeout'"), e.getMessage());
    }

    @Test
    void aTokenNeverGoesWithoutTls() {
        try (PgEntra pg = PgEntra.builder()
                .connectionString("host=srv.postgres.database.azure.com dbname=app user=u sslmode=disable")
                .credential("managed-identity")
                .build()) {
            PgEntraException e = assertThrows(PgEntraException.class, () -> pg.connectionString(Format.JDBC));
            assertEquals(PgEntraException.Kind.TLS_POLICY, e.kind());
            assertEquals(0, pg.tokenRequests());
        }
    }

    @Test
    void closedConnectorsRefuseCalls() {
        PgEntra pg = PgEntra.builder().connectionString(SECRET_MODE).credential("password").build();
        pg.close();
        pg.close();
        assertThrows(IllegalStateException.class, pg::user);
    }

    @Test
    void aPanicBecomesAnInternalException() {
        // The suite runs with PGENTRA_SELFTEST=1 (java/test.sh); without it the call says so.
        PgEntraException e = assertThrows(PgEntraException.class, Native::selftestPanic);
        assertEquals(PgEntraException.Kind.INTERNAL, e.kind());
        if ("1".equals(System.getenv("PGENTRA_SELFTEST"))) {
            assertTrue(e.getMessage().contains("a Rust panic, caught"), e.getMessage());
        }
        // The JVM is intact: the next call works.
        assertEquals("0.1.0", PgEntra.nativeVersion());
    }

    /** Connectors nobody closed are released by the Cleaner once unreachable; closed ones too. */
    @Test
    void connectorsAreReleased() throws InterruptedException {
        long before = PgEntra.FREED.get();
        for (int i = 0; i < 2_000; i++) {
            PgEntra c = PgEntra.builder().connectionString(SECRET_MODE).credential("password").build();
            if (i % 2 == 0) {
                c.close();
            }
        }
        long deadline = System.nanoTime() + 20_000_000_000L;
        while (PgEntra.FREED.get() - before < 1_000 && System.nanoTime() < deadline) {
            System.gc();
            Thread.sleep(20);
        }
        assertTrue(PgEntra.FREED.get() - before >= 1_000, "released: " + (PgEntra.FREED.get() - before));
    }
}
