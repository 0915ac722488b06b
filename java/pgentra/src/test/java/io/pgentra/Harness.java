package io.pgentra;

import static org.junit.jupiter.api.Assumptions.assumeTrue;

import com.google.gson.JsonObject;
import com.google.gson.JsonParser;
import java.io.IOException;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.sql.Connection;
import java.sql.DriverManager;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Statement;
import java.util.Properties;

/**
 * The harness (tests/harness/with-harness.sh java/test.sh): a private PostgreSQL with TLS and
 * the identity emulator on loopback. Tests that need it are skipped without it.
 */
public final class Harness {
    public static final String TENANT = "72f988bf-86f1-41af-91ab-2d7cd011db47";
    public static final String UAMI = "11111111-1111-1111-1111-111111111111";
    public static final String SP = "22222222-2222-2222-2222-222222222222";
    public static final String CERT = "33333333-3333-3333-3333-333333333333";
    public static final String WI = "44444444-4444-4444-4444-444444444444";
    public static final String SP_SECRET = "emulator-secret";
    public static final String PLUGIN = "io.pgentra.jdbc.PgEntraAuthenticationPlugin";

    private Harness() {}

    public static void require() {
        assumeTrue(System.getenv("PGENTRA_PG_HOST") != null && System.getenv("PGENTRA_EMULATOR_HTTP") != null,
                "needs tests/harness/with-harness.sh (PostgreSQL and the identity emulator)");
    }

    public static String host() {
        return System.getenv("PGENTRA_PG_HOST");
    }

    public static String port() {
        return System.getenv("PGENTRA_PG_PORT");
    }

    /** A pgJDBC URL to the harness's server through the plugin; {@code extra} starts with '&'. */
    public static String url(String sslmode, String extra) {
        return "jdbc:postgresql://" + host() + ":" + port() + "/postgres?sslmode=" + sslmode
                + "&authenticationPluginClassName=" + PLUGIN + extra;
    }

    /** The same with an Azure-style host name (the harness maps it to 127.0.0.1). */
    public static String azureUrl(String query) {
        return "jdbc:postgresql://" + System.getenv("PGENTRA_TEST_AZURE_HOST") + ":" + port() + "/postgres?" + query;
    }

    public static String currentUser(String url, Properties props) throws SQLException {
        try (Connection c = DriverManager.getConnection(url, props);
                Statement s = c.createStatement();
                ResultSet r = s.executeQuery("select current_user")) {
            r.next();
            return r.getString(1);
        }
    }

    public static Properties user(String user) {
        Properties p = new Properties();
        p.setProperty("user", user);
        return p;
    }

    private static final HttpClient HTTP = HttpClient.newBuilder().followRedirects(HttpClient.Redirect.NEVER).build();

    public static String control(String method, String path, String body) {
        try {
            HttpRequest.Builder b = HttpRequest.newBuilder(URI.create(System.getenv("PGENTRA_EMULATOR_HTTP") + path))
                    .header("Content-Type", "application/json");
            b = body == null ? b.method(method, HttpRequest.BodyPublishers.noBody()) : b.method(method, HttpRequest.BodyPublishers.ofString(body));
            HttpResponse<String> r = HTTP.send(b.build(), HttpResponse.BodyHandlers.ofString());
            if (r.statusCode() / 100 != 2) {
                throw new IllegalStateException("control " + method + " " + path + ": " + r.statusCode() + " " + r.body());
            }
            return r.body();
        } catch (IOException e) {
            throw new IllegalStateException(e);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IllegalStateException(e);
        }
    }

    /** Every identity request the emulator has answered (managed identity, IMDS, Entra). */
    public static long identityRequests() {
        JsonObject s = JsonParser.parseString(control("GET", "/control/stats", null)).getAsJsonObject();
        return s.get("msi_requests").getAsLong() + s.get("imds_requests").getAsLong() + s.get("entra_requests").getAsLong();
    }

    public static void faults(String json) {
        control("POST", "/control/faults", json);
    }

    public static void resetFaults() {
        control("POST", "/control/reset", null);
    }
}
