package io.pgentra.jdbc;

import io.pgentra.PgEntra;
import java.io.PrintWriter;
import java.sql.Connection;
import java.sql.Driver;
import java.sql.SQLException;
import java.sql.SQLFeatureNotSupportedException;
import java.util.Arrays;
import java.util.Map;
import java.util.Properties;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.atomic.AtomicLong;
import java.util.logging.Logger;
import javax.sql.DataSource;

/**
 * A {@link DataSource} over pgJDBC and {@link PgEntraAuthenticationPlugin} that recovers from a
 * refused token: when the server refuses (SQLSTATE {@code 28P01}) the token this connection
 * attempt was given, the token is dropped from the cache (unless another connection already
 * replaced it; see {@link PgEntra#invalidateIf(char[])}) and the connection is opened once more.
 * pgJDBC's plugin interface never learns that a password was refused, so a pool that uses the
 * plugin alone keeps failing with such a token until its own refresh point.
 *
 * <p>HikariCP: {@code config.setDataSource(new PgEntraDataSource(url))}, or
 * {@code dataSourceClassName=io.pgentra.jdbc.PgEntraDataSource} with {@code dataSource.url=...}.
 * The URL is pgJDBC's ({@code jdbc:postgresql://...}); the plugin is added when it is missing.
 */
public final class PgEntraDataSource implements DataSource {
    /**
     * The property that names one getConnection call to the plugin. pgJDBC may run the login on
     * another thread (with a login timeout), so the attempt is found by this name, not by thread.
     */
    static final String ATTEMPT_PROPERTY = "pgentra.attempt";

    private static final Map<String, Handed> ATTEMPTS = new ConcurrentHashMap<>();
    private static final AtomicLong NEXT = new AtomicLong();

    private static final class Handed {
        PgEntra connector;
        char[] token;

        synchronized void set(PgEntra c, char[] t) {
            wipe();
            connector = c;
            token = t.clone(); // pgJDBC wipes the array it was given
        }

        synchronized boolean again(String sqlstate) {
            if (token == null) {
                return false;
            }
            boolean again = connector.connectFailed(token, sqlstate);
            wipe();
            return again;
        }

        synchronized void wipe() {
            if (token != null) {
                Arrays.fill(token, '\0');
                token = null;
            }
        }
    }

    /** The plugin's report: it gave {@code token} from {@code connector} to the named attempt. */
    static void handed(String attempt, PgEntra connector, char[] token) {
        Handed h = attempt == null ? null : ATTEMPTS.get(attempt);
        if (h != null) {
            h.set(connector, token);
        }
    }

    private volatile String url;
    private final Properties properties = new Properties();
    private volatile int loginTimeout;
    private volatile PrintWriter logWriter;

    public PgEntraDataSource() {}

    public PgEntraDataSource(String url) {
        setUrl(url);
    }

    /** pgJDBC's URL, e.g. {@code jdbc:postgresql://server.postgres.database.azure.com:5432/db?sslmode=require}. */
    public void setUrl(String url) {
        if (url == null || !url.startsWith("jdbc:postgresql:")) {
            throw new IllegalArgumentException("pgentra: PgEntraDataSource's url must be a pgJDBC URL (jdbc:postgresql://host:port/database?sslmode=require)");
        }
        this.url = url.contains("authenticationPluginClassName=") ? url
                : url + (url.contains("?") ? "&" : "?") + "authenticationPluginClassName=" + PgEntra.PLUGIN;
    }

    public String getUrl() {
        return url;
    }

    /** The database role (pgJDBC's {@code user}). */
    public void setUser(String user) {
        set("user", user);
    }

    /** Another pgJDBC or plugin property ({@code sslmode}, {@code pgentra.clientId}, ...). */
    public void setProperty(String name, String value) {
        set(name, value);
    }

    private void set(String name, String value) {
        synchronized (properties) {
            if (value == null) {
                properties.remove(name);
            } else {
                properties.setProperty(name, value);
            }
        }
    }

    @Override
    public Connection getConnection() throws SQLException {
        return connect(null);
    }

    /** Hikari passes its username here; a password is refused (the plugin supplies the token). */
    @Override
    public Connection getConnection(String username, String password) throws SQLException {
        if (password != null && !password.isEmpty()) {
            throw new SQLException("pgentra: PgEntraDataSource got a password; remove it (the token is the password)", "28000");
        }
        return connect(username);
    }

    private Connection connect(String username) throws SQLException {
        String u = url;
        if (u == null) {
            throw new SQLException("pgentra: PgEntraDataSource has no url; call setUrl(\"jdbc:postgresql://...\")", "08001");
        }
        Properties p = new Properties();
        synchronized (properties) {
            p.putAll(properties);
        }
        if (username != null) {
            p.setProperty("user", username);
        }
        if (loginTimeout > 0) {
            p.setProperty("loginTimeout", Integer.toString(loginTimeout));
        }
        Driver driver = new org.postgresql.Driver();
        String attempt = Long.toString(NEXT.incrementAndGet());
        p.setProperty(ATTEMPT_PROPERTY, attempt);
        Handed h = new Handed();
        ATTEMPTS.put(attempt, h);
        try {
            try {
                return driver.connect(u, p);
            } catch (SQLException e) {
                // The core decides (a refusal of a token the cache no longer hands out; a token
                // fetched right after a refusal is kept, so a wrong role costs at most one more
                // identity request and no reconnect).
                if (!h.again(e.getSQLState())) {
                    throw e;
                }
                return driver.connect(u, p); // once: a second refusal is the caller's
            }
        } finally {
            ATTEMPTS.remove(attempt);
            h.wipe();
        }
    }

    @Override
    public PrintWriter getLogWriter() {
        return logWriter;
    }

    @Override
    public void setLogWriter(PrintWriter out) {
        logWriter = out;
    }

    @Override
    public void setLoginTimeout(int seconds) {
        loginTimeout = seconds;
    }

    @Override
    public int getLoginTimeout() {
        return loginTimeout;
    }

    @Override
    public Logger getParentLogger() throws SQLFeatureNotSupportedException {
        throw new SQLFeatureNotSupportedException("pgentra: PgEntraDataSource has no java.util.logging logger");
    }

    @Override
    public <T> T unwrap(Class<T> iface) throws SQLException {
        if (iface.isInstance(this)) {
            return iface.cast(this);
        }
        throw new SQLException("pgentra: PgEntraDataSource does not wrap " + iface.getName());
    }

    @Override
    public boolean isWrapperFor(Class<?> iface) {
        return iface.isInstance(this);
    }
}
