package io.pgentra.jdbc;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.pgentra.Harness;
import io.pgentra.PgEntra;
import java.sql.Connection;
import java.sql.DriverManager;
import java.sql.SQLException;
import java.util.Properties;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.postgresql.util.PSQLException;

/** pgJDBC's DriverManager with the plugin, against the harness's PostgreSQL and emulator. */
class PluginTest {
    @BeforeEach
    void harness() {
        Harness.require();
    }

    /** Service Connector's JDBC connection string, with only the plugin's class name changed. */
    @Test
    void serviceConnectorsJdbcStringWorksAfterChangingTheClassName() throws SQLException {
        String sc = System.getenv("AZURE_POSTGRESQL_CONNECTIONSTRING");
        assertTrue(sc.contains("com.azure.identity.extensions.jdbc.postgresql.AzurePostgresqlAuthenticationPlugin"), sc);
        String url = sc.replace("com.azure.identity.extensions.jdbc.postgresql.AzurePostgresqlAuthenticationPlugin", Harness.PLUGIN);
        assertEquals("pgentra-app", Harness.currentUser(url, new Properties()));
    }

    /** No user configured: jdbcUrl() carries the identity's role, from the token's claims. */
    @Test
    void jdbcUrlWithoutAConfiguredUserLogsInAsTheIdentitysRole() throws SQLException {
        try (PgEntra pg = PgEntra.builder().connectionString("host=" + Harness.host() + " port=" + Harness.port() + " dbname=postgres sslmode=require")
                .credential("managed-identity").build()) {
            String url = pg.jdbcUrl();
            assertTrue(url.contains("user=pgentra-app"), url);
            assertEquals("pgentra-app", Harness.currentUser(url, new Properties()));
            assertEquals("pgentra-app", pg.jdbcProperties().getProperty("user"));
        }
    }

    @Test
    void everyCredentialLogsInAsItsRole() throws SQLException {
        String cert = System.getenv("PGENTRA_TEST_CERT");
        String federated = System.getenv("PGENTRA_TEST_FEDERATED");
        String[][] cases = {
            {"pgentra-uami", "&azure.clientId=" + Harness.UAMI},
            {"pgentra-uami", "&azure.clientId=" + Harness.UAMI + "&azure.managedIdentityEnabled=true"},
            {"aad_pgentra_sp", "&azure.clientId=" + Harness.SP + "&azure.tenantId=" + Harness.TENANT + "&azure.clientSecret=" + Harness.SP_SECRET},
            {"aad_pgentra_cert", "&azure.clientId=" + Harness.CERT + "&azure.tenantId=" + Harness.TENANT + "&azure.clientCertificatePath=" + cert},
            {"aad_pgentra_wi", "&pgentra.clientId=" + Harness.WI + "&pgentra.tenantId=" + Harness.TENANT + "&pgentra.federatedTokenFile=" + federated},
            {"dev@contoso.com", "&pgentra.credential=azure-cli"},
            // Service Connector's variables under another prefix (user-assigned identity).
            {"pgentra-uami", "&pgentra.prefix=SCUAMI"},
        };
        for (String[] c : cases) {
            assertEquals(c[0], Harness.currentUser(Harness.url("require", c[1]), Harness.user(c[0])), c[1]);
        }
    }

    @Test
    void connectionsWithoutGuaranteedTlsGetNoTokenAndMakeNoRequest() {
        for (String mode : new String[] {"prefer", "allow", "disable", null}) {
            long before = Harness.identityRequests();
            String url = "jdbc:postgresql://" + Harness.host() + ":" + Harness.port() + "/postgres?authenticationPluginClassName=" + Harness.PLUGIN
                    + (mode == null ? "" : "&sslmode=" + mode);
            SQLException e = assertThrows(SQLException.class, () -> Harness.currentUser(url, Harness.user("pgentra-app")), String.valueOf(mode));
            if (!"disable".equals(mode) && !"allow".equals(mode)) {
                // disable, allow: the server itself refuses the connection without TLS that pgJDBC
                // tries first, before any password is asked for.
                assertTrue(e.getMessage().contains("add sslmode=verify-full"), mode + ": " + e.getMessage());
                assertTrue(e.getMessage().contains("pgJDBC's default is prefer"), e.getMessage());
            }
            assertEquals(before, Harness.identityRequests(), "identity requests for sslmode=" + mode);
        }
    }

    @Test
    void azureNamesNeedVerifiedTls() throws SQLException {
        long before = Harness.identityRequests();
        String plugin = "&authenticationPluginClassName=" + Harness.PLUGIN;
        // verify-ca with a root certificate (without one pgJDBC fails before asking for a password).
        String ca = "&sslrootcert=" + System.getenv("PGENTRA_PG_CA");
        for (String q : new String[] {"sslmode=require", "sslmode=verify-ca" + ca, "sslmode=verify-full&sslfactory=org.postgresql.ssl.NonValidatingFactory"}) {
            SQLException e = assertThrows(SQLException.class, () -> Harness.currentUser(Harness.azureUrl(q + plugin), Harness.user("pgentra-app")), q);
            assertTrue(e.getMessage().contains("sslmode=verify-full&sslfactory=org.postgresql.ssl.DefaultJavaSSLFactory"), q + ": " + e.getMessage());
        }
        assertEquals(before, Harness.identityRequests());
        // What the message says to add works: the JVM's trust store checks the server.
        assertEquals("pgentra-app", Harness.currentUser(
                Harness.azureUrl("sslmode=verify-full&sslfactory=org.postgresql.ssl.DefaultJavaSSLFactory" + plugin), Harness.user("pgentra-app")));
        // ssl=true alone means verify-full to pgJDBC (its own SslMode.of decides).
        assertEquals("pgentra-app", Harness.currentUser(
                Harness.azureUrl("ssl=true&sslfactory=org.postgresql.ssl.DefaultJavaSSLFactory" + plugin), Harness.user("pgentra-app")));
        // A name the certificate does not carry fails in pgJDBC's own check, before any token.
        String wrong = "jdbc:postgresql://" + System.getenv("PGENTRA_TEST_WRONG_HOST") + ":" + Harness.port()
                + "/postgres?sslmode=verify-full&sslfactory=org.postgresql.ssl.DefaultJavaSSLFactory" + plugin;
        assertThrows(SQLException.class, () -> Harness.currentUser(wrong, Harness.user("pgentra-app")));
    }

    /** PgEntra's own URL (through the plugin), properties and JDBC string for an Azure name. */
    @Test
    void jdbcUrlAndPropertiesForAnAzureName() throws SQLException {
        String cs = "host=" + System.getenv("PGENTRA_TEST_AZURE_HOST") + " port=" + Harness.port() + " dbname=postgres user=pgentra-app sslmode=require";
        String url;
        try (PgEntra pg = PgEntra.builder().connectionString(cs).credential("managed-identity").build()) {
            url = pg.jdbcUrl();
            assertTrue(url.contains("sslmode=verify-full&sslfactory=org.postgresql.ssl.DefaultJavaSSLFactory"), url);
            assertTrue(url.contains("authenticationPluginClassName=" + Harness.PLUGIN + "&pgentra.connector="), url);
            assertFalse(url.contains("password"), url);
            for (int i = 0; i < 3; i++) {
                assertEquals("pgentra-app", Harness.currentUser(url, new Properties()));
            }
            assertEquals(1, pg.tokenRequests());
            // One connection with user and password as properties.
            String plain = Harness.azureUrl("sslmode=verify-full&sslfactory=org.postgresql.ssl.DefaultJavaSSLFactory");
            assertEquals("pgentra-app", Harness.currentUser(plain, pg.jdbcProperties()));
            // The token in the URL itself.
            try (Connection c = DriverManager.getConnection(pg.connectionString(io.pgentra.Format.JDBC))) {
                assertTrue(c.isValid(5));
            }
            assertEquals(1, pg.tokenRequests());
        }
        // A closed connector's URL says what happened.
        SQLException e = assertThrows(SQLException.class, () -> Harness.currentUser(url, new Properties()));
        assertTrue(e.getMessage().contains("names no open PgEntra"), e.getMessage());
    }

    @Test
    void badConfigurationNamesThePropertyAndNoSecret() {
        SQLException e = assertThrows(SQLException.class,
                () -> Harness.currentUser(Harness.url("require", "&azure.clientCertificatePassword=hunter2-pw"), Harness.user("pgentra-app")));
        assertTrue(e.getMessage().contains("azure.clientCertificatePassword"), e.getMessage());
        assertFalse(e.getMessage().contains("hunter2"), e.getMessage());
        e = assertThrows(SQLException.class, () -> Harness.currentUser(Harness.url("require", "&pgentra.timeout=soon"), Harness.user("pgentra-app")));
        assertTrue(e.getMessage().contains("option 'timeout'"), e.getMessage());
        e = assertThrows(SQLException.class, () -> Harness.currentUser(Harness.url("require", "&azure.scopes=a,b"), Harness.user("pgentra-app")));
        assertTrue(e.getMessage().contains("azure.scopes"), e.getMessage());
        e = assertThrows(SQLException.class,
                () -> Harness.currentUser(Harness.url("require", "&azure.clientId=" + Harness.SP + "&azure.tenantId=" + Harness.TENANT + "&azure.clientSecret=wrong-hunter2"),
                        Harness.user("aad_pgentra_sp")));
        assertFalse(e.getMessage().contains("hunter2"), e.getMessage());
        assertTrue(e.getCause() instanceof io.pgentra.PgEntraException, String.valueOf(e.getCause()));
        io.pgentra.PgEntraException cause = (io.pgentra.PgEntraException) e.getCause();
        assertEquals(io.pgentra.PgEntraException.Kind.IDENTITY_SERVICE, cause.kind());
        assertTrue(cause.serviceCode() != null && cause.serviceCode().startsWith("AADSTS"), String.valueOf(cause.serviceCode()));
    }

    @Test
    void aThousandPluginObjectsShareOneConnector() throws PSQLException {
        Properties info = new Properties();
        info.setProperty("PGHOST", Harness.host());
        info.setProperty("PGPORT", Harness.port());
        info.setProperty("PGDBNAME", "postgres");
        info.setProperty("user", "pgentra-uami");
        info.setProperty("sslmode", "require");
        info.setProperty("azure.clientId", Harness.UAMI);
        PgEntra first = new PgEntraAuthenticationPlugin(info).connector();
        int count = PgEntraAuthenticationPlugin.connectorCount();
        for (int i = 0; i < 1000; i++) {
            assertSame(first, new PgEntraAuthenticationPlugin((Properties) info.clone()).connector());
        }
        assertEquals(count, PgEntraAuthenticationPlugin.connectorCount());
        long before = first.tokenRequests();
        for (int i = 0; i < 1000; i++) {
            char[] t = new PgEntraAuthenticationPlugin(info).getPassword(org.postgresql.plugin.AuthenticationRequestType.CLEARTEXT_PASSWORD);
            assertTrue(t.length > 100);
        }
        assertTrue(first.tokenRequests() - before <= 1, "token requests: " + (first.tokenRequests() - before));
    }
}
