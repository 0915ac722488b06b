package io.pgentra.jdbc;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.zaxxer.hikari.HikariConfig;
import com.zaxxer.hikari.HikariDataSource;
import io.pgentra.Harness;
import io.pgentra.PgEntra;
import java.sql.Connection;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Statement;
import java.util.Properties;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

/**
 * A token the cache still holds is refused by the server (revoked through the emulator, as when
 * an identity is deleted and created again): PgEntraDataSource drops it and connects once more.
 */
class RecoveryTest {
    private static final String URL_EXTRA = "&pgentra.credential=managed-identity";

    @BeforeEach
    void harness() throws SQLException {
        Harness.require();
        // A token fetched right after a refusal is kept for a few seconds (a wrong role must not
        // cost a request per connect): each test starts from an empty cache instead.
        connectorFor("pgentra-app").invalidate();
        connectorFor("pgentra-no-such-role").invalidate();
    }

    private static PgEntra connectorFor(String user) throws SQLException {
        Properties info = new Properties();
        info.setProperty("PGHOST", Harness.host());
        info.setProperty("PGPORT", Harness.port());
        info.setProperty("PGDBNAME", "postgres");
        info.setProperty("user", user);
        info.setProperty("sslmode", "require");
        info.setProperty("authenticationPluginClassName", Harness.PLUGIN);
        info.setProperty("pgentra.credential", "managed-identity");
        return new PgEntraAuthenticationPlugin(info).connector();
    }

    private static String currentUser(Connection c) throws SQLException {
        try (Statement s = c.createStatement(); ResultSet r = s.executeQuery("select current_user")) {
            r.next();
            return r.getString(1);
        }
    }

    private static void revoke(PgEntra connector) {
        String answer = Harness.control("POST", "/control/revoke", new String(connector.token()));
        assertTrue(answer.contains("\"revoked\":true"), answer);
    }

    @Test
    void aRevokedCachedTokenCostsOneRequestAndOneReconnect() throws SQLException {
        PgEntraDataSource ds = new PgEntraDataSource(Harness.url("require", URL_EXTRA));
        ds.setUser("pgentra-app");
        try (Connection c = ds.getConnection()) {
            assertEquals("pgentra-app", currentUser(c));
        }
        PgEntra connector = connectorFor("pgentra-app");
        revoke(connector);
        // The plugin alone (DriverManager) keeps handing out the refused token.
        SQLException plain = assertThrows(SQLException.class, () -> Harness.currentUser(Harness.url("require", URL_EXTRA), Harness.user("pgentra-app")));
        assertEquals("28P01", plain.getSQLState(), plain.getMessage());

        long before = Harness.identityRequests();
        try (Connection c = ds.getConnection()) {
            assertEquals("pgentra-app", currentUser(c));
        }
        assertEquals(1, Harness.identityRequests() - before, "one new identity request");
        try (Connection c = ds.getConnection()) {
            assertEquals("pgentra-app", currentUser(c));
        }
        assertEquals(1, Harness.identityRequests() - before, "and none for the next connection");
    }

    @Test
    void aPoolRecoversAtItsNextConnection() throws SQLException {
        HikariConfig cfg = new HikariConfig();
        PgEntraDataSource ds = new PgEntraDataSource(Harness.url("require", URL_EXTRA));
        cfg.setDataSource(ds);
        cfg.setUsername("pgentra-app");
        cfg.setMaximumPoolSize(2);
        cfg.setMinimumIdle(0);
        cfg.setConnectionTimeout(5_000);
        try (HikariDataSource pool = new HikariDataSource(cfg)) {
            try (Connection c = pool.getConnection()) {
                assertEquals("pgentra-app", currentUser(c));
            }
            revoke(connectorFor("pgentra-app"));
            pool.getHikariPoolMXBean().softEvictConnections();
            long before = Harness.identityRequests();
            try (Connection c = pool.getConnection()) {
                assertEquals("pgentra-app", currentUser(c));
            }
            assertEquals(1, Harness.identityRequests() - before, "one new identity request");
        }
    }

    @Test
    void aRoleThatDoesNotExistCostsAtMostTwoRequests() {
        PgEntraDataSource ds = new PgEntraDataSource(Harness.url("require", URL_EXTRA));
        ds.setUser("pgentra-no-such-role");
        long before = Harness.identityRequests();
        for (int i = 0; i < 10; i++) {
            SQLException e = assertThrows(SQLException.class, ds::getConnection);
            assertEquals("28P01", e.getSQLState(), e.getMessage());
        }
        long made = Harness.identityRequests() - before;
        assertTrue(made >= 1 && made <= 2, "identity requests for 10 refused connects: " + made);
    }

    @Test
    void aPasswordIsRefusedByName() {
        PgEntraDataSource ds = new PgEntraDataSource(Harness.url("require", URL_EXTRA));
        SQLException e = assertThrows(SQLException.class, () -> ds.getConnection("pgentra-app", "hunter2"));
        assertTrue(e.getMessage().contains("got a password"), e.getMessage());
        assertTrue(!e.getMessage().contains("hunter2"), e.getMessage());
        assertThrows(IllegalArgumentException.class, () -> new PgEntraDataSource("jdbc:mysql://x/y"));
    }
}
