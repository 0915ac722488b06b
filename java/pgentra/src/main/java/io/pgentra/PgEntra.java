package io.pgentra;

import java.lang.ref.Cleaner;
import java.lang.ref.Reference;
import java.lang.ref.WeakReference;
import java.security.SecureRandom;
import java.time.Duration;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.concurrent.ConcurrentHashMap;

/**
 * One Azure Database for PostgreSQL configuration with its token cache: Service Connector's
 * {@code AZURE_POSTGRESQL_*} variables (any dialect), the Azure SDK variables, and values given
 * to the {@link Builder}, which win. Thread-safe; keep one per process (tokens are cached and
 * refreshed ahead of expiry). For pgJDBC pools, prefer the authentication plugin
 * {@code io.pgentra.jdbc.PgEntraAuthenticationPlugin}, which asks for a current token on every
 * new connection.
 *
 * <pre>{@code
 * PgEntra pg = PgEntra.fromEnv();                               // keep one per process
 * Connection c = DriverManager.getConnection(pg.jdbcUrl());      // a current token per connection
 * }</pre>
 */
public final class PgEntra implements AutoCloseable {
    private static final Cleaner CLEANER = Cleaner.create();
    /** Live connectors by id, for the plugin URLs that {@link #jdbcUrl()} hands out. */
    private static final Map<String, WeakReference<PgEntra>> LIVE = new ConcurrentHashMap<>();
    private static final SecureRandom RANDOM = new SecureRandom();
    /** Native handles released by the Cleaner (for the test that shows they are). */
    static final java.util.concurrent.atomic.AtomicLong FREED = new java.util.concurrent.atomic.AtomicLong();
    /** The pgJDBC property that names a live connector of this JVM. */
    public static final String CONNECTOR_PROPERTY = "pgentra.connector";
    /** pgentra's pgJDBC authentication plugin. */
    public static final String PLUGIN = "io.pgentra.jdbc.PgEntraAuthenticationPlugin";

    private final long handle;
    private final String id;
    private final Cleaner.Cleanable cleanable;
    private volatile boolean closed;

    /** The native handle is released once this object is unreachable (never while in use). */
    private static final class Release implements Runnable {
        private final long handle;
        private final String id;

        Release(long handle, String id) {
            this.handle = handle;
            this.id = id;
        }

        @Override
        public void run() {
            LIVE.remove(id);
            Native.free(handle);
            FREED.incrementAndGet();
        }
    }

    private PgEntra(String[] options) {
        NativeLoader.ensure();
        this.handle = Native.open(options);
        byte[] b = new byte[12];
        RANDOM.nextBytes(b);
        StringBuilder hex = new StringBuilder();
        for (byte x : b) {
            hex.append(String.format("%02x", x));
        }
        this.id = hex.toString();
        LIVE.put(id, new WeakReference<>(this));
        this.cleanable = CLEANER.register(this, new Release(handle, id));
    }

    /**
     * The open connector that a {@code pgentra.connector} property names (from a URL made by
     * {@link #jdbcUrl()}), or null. Used by the authentication plugin.
     */
    public static PgEntra live(String id) {
        WeakReference<PgEntra> r = id == null ? null : LIVE.get(id);
        PgEntra c = r == null ? null : r.get();
        return c == null || c.closed ? null : c;
    }

    /** From the environment ({@code AZURE_POSTGRESQL_*}). */
    public static PgEntra fromEnv() {
        return new PgEntra(new String[0]);
    }

    /** From the environment, with another variable prefix (e.g. {@code AZURE_POSTGRESQL_ORDERS}). */
    public static PgEntra fromEnv(String prefix) {
        return builder().prefix(prefix).build();
    }

    /** Options given by code, which win over the environment. */
    public static Builder builder() {
        return new Builder();
    }

    /** The version of the native library. */
    public static String nativeVersion() {
        NativeLoader.ensure();
        return Native.version();
    }

    private long handle() {
        if (closed) {
            throw new IllegalStateException("this PgEntra is closed");
        }
        return handle;
    }

    /**
     * The access token, from the cache or acquired now, as a new array the caller may wipe
     * ({@code Arrays.fill(t, '\0')}); no {@code String} holds it.
     */
    public char[] token() {
        try {
            return Native.token(handle());
        } finally {
            Reference.reachabilityFence(this);
        }
    }

    /** The connection string in {@code format}, with a current token as its password. */
    public String connectionString(Format format) {
        return render(true, format, null);
    }

    /** The connection string with these libpq parameters changed first (null removes one). */
    public String connectionString(Format format, Map<String, String> overrides) {
        return render(true, format, overrides);
    }

    /**
     * This connector's name in the URLs {@link #jdbcUrl()} hands out (the value of
     * {@code pgentra.connector}), for code that writes such a URL itself.
     */
    public String id() {
        return id;
    }

    /**
     * A pgJDBC URL for this connector, with no password in it: host, port, database, user, the
     * TLS settings (for an Azure server {@code sslmode=verify-full} with the JVM's trust
     * store), and pgentra's authentication plugin naming this connector, so that every new
     * connection, pooled or not, gets a current token from this object's cache:
     * {@code DriverManager.getConnection(pg.jdbcUrl())}, or HikariCP's {@code setJdbcUrl}.
     * Keep this object open while the URL is in use.
     */
    public String jdbcUrl() {
        String url = render(false, Format.JDBC, null);
        return url + (url.indexOf('?') < 0 ? '?' : '&') + "authenticationPluginClassName=" + PLUGIN + "&" + CONNECTOR_PROPERTY + "=" + id;
    }

    /**
     * {@code user} and {@code password} (a current token) for one connection made now with
     * the URL of {@code connectionString(Format.JDBC)} minus its password; prefer
     * {@link #jdbcUrl()}, which gives every later connection a current token.
     */
    public Properties jdbcProperties() {
        Properties p = new Properties();
        Map<String, String> m = params(true);
        String user = m.get("user");
        if (user == null) {
            user = user();
        }
        p.setProperty("user", user);
        String password = m.get("password");
        if (password != null) {
            p.setProperty("password", password);
        }
        return p;
    }

    /**
     * The final libpq parameters (host, port, dbname, user, password, sslmode, sslrootcert,
     * ...), with a current token as the password.
     */
    public Map<String, String> params() {
        return params(true);
    }

    private Map<String, String> params(boolean withToken) {
        try {
            String[] kv = Native.params(handle(), withToken, null);
            Map<String, String> m = new LinkedHashMap<>();
            for (int i = 0; i + 1 < kv.length; i += 2) {
                m.put(kv[i], kv[i + 1]);
            }
            return m;
        } finally {
            Reference.reachabilityFence(this);
        }
    }

    private String render(boolean withToken, Format format, Map<String, String> overrides) {
        String[] o = null;
        if (overrides != null) {
            o = new String[overrides.size() * 2];
            int i = 0;
            for (Map.Entry<String, String> e : overrides.entrySet()) {
                o[i++] = e.getKey();
                o[i++] = e.getValue();
            }
        }
        try {
            return Native.render(handle(), withToken, format.wire, o);
        } finally {
            Reference.reachabilityFence(this);
        }
    }

    /** The database user: configured, else from the token's claims. */
    public String user() {
        try {
            return Native.user(handle());
        } finally {
            Reference.reachabilityFence(this);
        }
    }

    /**
     * Drop the cached token if it is still {@code rejected} (the server refused it), so that
     * concurrent refusals cause one new request. Returns whether a token was dropped.
     */
    public boolean invalidateIf(char[] rejected) {
        if (rejected == null) {
            throw new NullPointerException("rejected");
        }
        try {
            return Native.invalidateIf(handle(), rejected);
        } finally {
            Reference.reachabilityFence(this);
        }
    }

    /**
     * A connection that was given {@code token} failed with SQLSTATE {@code sqlstate}: whether to
     * connect once more. Yes for a refusal ({@code 28P01}) of a token the cache no longer hands
     * out: this call drops it (unless another connection already did), so concurrent refusals
     * cause one identity request. No when the cache keeps it (a token fetched right after
     * another refusal and refused again within seconds: the role is at fault, not the token).
     */
    public boolean connectFailed(char[] token, String sqlstate) {
        if (token == null) {
            throw new NullPointerException("token");
        }
        try {
            return Native.connectFailed(handle(), token, sqlstate);
        } finally {
            Reference.reachabilityFence(this);
        }
    }

    /**
     * Drops the cached token (if any), and the shared entry when it holds the same token, so
     * that the next call acquires a new one (after the server refused the token).
     */
    public void invalidate() {
        try {
            Native.invalidateIf(handle(), null);
        } finally {
            Reference.reachabilityFence(this);
        }
    }

    /** How many token requests this connector has made. */
    public long tokenRequests() {
        try {
            return Native.tokenRequests(handle());
        } finally {
            Reference.reachabilityFence(this);
        }
    }

    /**
     * Whether a token may travel over a connection pgJDBC configured itself ({@code hosts} as
     * in pgJDBC's {@code PGHOST}, the {@code sslmode} pgJDBC resolved, its {@code sslfactory}):
     * throws a TLS_POLICY exception naming what to add to the URL; returns the rule's
     * explanation. The authentication plugin calls this before every token.
     */
    public String checkPgjdbcConnection(String hosts, String sslmode, String sslfactory) {
        try {
            return Native.checkPgjdbc(handle(), hosts, sslmode, sslfactory);
        } finally {
            Reference.reachabilityFence(this);
        }
    }

    /**
     * Forgets this object's cached token; later calls throw {@link IllegalStateException}.
     * Idempotent. The token shared with the user's other processes stays (see {@link #invalidate()}
     * to drop that too).
     */
    @Override
    public void close() {
        if (closed) {
            return;
        }
        closed = true;
        LIVE.remove(id);
        try {
            Native.forget(handle);
        } finally {
            Reference.reachabilityFence(this);
        }
    }

    /** Values given by code; each wins over the environment. Names follow pgentra's options. */
    public static final class Builder {
        private final List<String> options = new ArrayList<>();

        Builder() {}

        /** Any pgentra option by its name ({@code client_id}, {@code sslmode}, ...). */
        public Builder option(String key, String value) {
            if (key == null) {
                throw new NullPointerException("key");
            }
            if (value != null) {
                options.add(key);
                options.add(value);
            }
            return this;
        }

        public Builder prefix(String prefix) {
            return option("prefix", prefix);
        }

        /** A connection string in any dialect (libpq, URI, ADO.NET, JDBC). */
        public Builder connectionString(String connectionString) {
            return option("connection_string", connectionString);
        }

        public Builder host(String host) {
            return option("host", host);
        }

        public Builder port(int port) {
            return option("port", Integer.toString(port));
        }

        public Builder database(String database) {
            return option("dbname", database);
        }

        public Builder user(String user) {
            return option("user", user);
        }

        public Builder sslmode(String sslmode) {
            return option("sslmode", sslmode);
        }

        /** auto, managed-identity, client-secret, client-certificate, workload-identity, azure-cli, azd. */
        public Builder credential(String credential) {
            return option("credential", credential);
        }

        public Builder clientId(String clientId) {
            return option("client_id", clientId);
        }

        public Builder tenantId(String tenantId) {
            return option("tenant_id", tenantId);
        }

        public Builder clientSecret(String clientSecret) {
            return option("client_secret", clientSecret);
        }

        public Builder certificatePath(String path) {
            return option("certificate_path", path);
        }

        public Builder scope(String scope) {
            return option("scope", scope);
        }

        public Builder authorityHost(String authorityHost) {
            return option("authority_host", authorityHost);
        }

        /** Let a token travel where TLS is not guaranteed (a local test server only). */
        public Builder allowInsecure(boolean allow) {
            return option("allow_insecure", Boolean.toString(allow));
        }

        /** Keep sslmode=require for Azure servers instead of verify-full. */
        public Builder allowUnverifiedTls(boolean allow) {
            return option("allow_unverified_tls", Boolean.toString(allow));
        }

        /** The total deadline for one token acquisition, retries included (default 30 s). */
        public Builder timeout(Duration timeout) {
            if (timeout == null) {
                return this;
            }
            return option("timeout", Double.toString(timeout.toNanos() / 1e9));
        }

        public PgEntra build() {
            return new PgEntra(options.toArray(new String[0]));
        }
    }
}
