package io.pgentra.it;

import static io.pgentra.it.Apps.currentUser;
import static io.pgentra.it.Apps.start;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import com.zaxxer.hikari.HikariDataSource;
import io.pgentra.jdbc.PgEntraDataSource;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.springframework.context.ConfigurableApplicationContext;

/**
 * Spring Boot's HikariCP pool, configured as Service Connector configures it, meets a refusal
 * of the token the cache still holds (revoked through the emulator, as when an identity is
 * recreated): its next new connection works after exactly one new identity request.
 */
class SpringRecoveryTest {
    private static final HttpClient HTTP = HttpClient.newBuilder().followRedirects(HttpClient.Redirect.NEVER).build();

    @BeforeAll
    static void harness() {
        assumeTrue(Apps.harness(), "needs tests/harness/with-harness.sh (PostgreSQL and the identity emulator)");
        assumeTrue(System.getenv("SPRING_DATASOURCE_URL") != null, "java/test.sh sets the Service Connector variables");
        assumeTrue(System.getenv("PGENTRA_ALLOW_UNVERIFIED_TLS") == null, "see SpringUnverifiedTlsTest");
    }

    private static String control(String method, String path, String body) throws Exception {
        HttpRequest.Builder b = HttpRequest.newBuilder(URI.create(System.getenv("PGENTRA_EMULATOR_HTTP") + path));
        b = body == null ? b.method(method, HttpRequest.BodyPublishers.noBody()) : b.method(method, HttpRequest.BodyPublishers.ofString(body));
        HttpResponse<String> r = HTTP.send(b.build(), HttpResponse.BodyHandlers.ofString());
        assertEquals(200, r.statusCode(), path + ": " + r.body());
        return r.body();
    }

    private static long count(String stats, String key) {
        Matcher m = Pattern.compile("\"" + key + "\"\\s*:\\s*(\\d+)").matcher(stats);
        assertTrue(m.find(), key + " in " + stats);
        return Long.parseLong(m.group(1));
    }

    private static long identityRequests() throws Exception {
        String s = control("GET", "/control/stats", null);
        return count(s, "msi_requests") + count(s, "imds_requests") + count(s, "entra_requests");
    }

    @Test
    void thePoolRecoversFromARefusedCachedToken() throws Exception {
        try (ConfigurableApplicationContext c = start(null)) {
            assertEquals("pgentra-app", currentUser(c));
            HikariDataSource pool = c.getBean(HikariDataSource.class);
            assertTrue(pool.getDataSource() instanceof PgEntraDataSource, String.valueOf(pool.getDataSource()));
            // The system-assigned identity's token, as the emulator keeps and hands it out.
            String current = control("GET", "/control/current?identity=system&resource=https://ossrdbms-aad.database.windows.net", null);
            Matcher m = Pattern.compile("\"accessToken\"\\s*:\\s*\"([^\"]+)\"").matcher(current);
            assertTrue(m.find(), "a token in /control/current's answer");
            assertTrue(control("POST", "/control/revoke", m.group(1)).contains("\"revoked\":true"));
            pool.getHikariPoolMXBean().softEvictConnections();
            long before = identityRequests();
            assertEquals("pgentra-app", currentUser(c));
            assertEquals(1, identityRequests() - before, "one new identity request");
        }
    }
}
