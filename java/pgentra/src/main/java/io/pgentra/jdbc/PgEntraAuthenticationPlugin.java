package io.pgentra.jdbc;

import io.pgentra.PgEntra;
import io.pgentra.PgEntraException;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Properties;
import java.util.TreeMap;
import java.util.concurrent.ConcurrentHashMap;
import org.postgresql.jdbc.SslMode;
import org.postgresql.plugin.AuthenticationPlugin;
import org.postgresql.plugin.AuthenticationRequestType;
import org.postgresql.util.PSQLException;
import org.postgresql.util.PSQLState;

/**
 * pgJDBC's password for Azure Database for PostgreSQL: a current Entra ID token from pgentra's
 * cache. {@code authenticationPluginClassName=io.pgentra.jdbc.PgEntraAuthenticationPlugin}
 * (pgJDBC 42.3.2 or newer).
 *
 * <p>Host, port, database, user and sslmode are pgJDBC's own. The identity comes from Service
 * Connector's variables ({@code AZURE_POSTGRESQL_CLIENTID}, ...) and from the properties that
 * Microsoft's plugin reads ({@code azure.clientId}, {@code azure.tenantId},
 * {@code azure.clientSecret}, {@code azure.clientCertificatePath},
 * {@code azure.managedIdentityEnabled}, {@code azure.authorityHost}, {@code azure.scopes},
 * {@code azure.accessTokenTimeoutInSeconds}), so a URL written for that plugin works after
 * changing only the class name; other {@code azure.*} properties are refused by name.
 * pgentra's own options can be given as {@code pgentra.<option>} (e.g.
 * {@code pgentra.credential=managed-identity}). A URL from {@code PgEntra.jdbcUrl()} names its
 * connector instead ({@code pgentra.connector}), which then supplies the whole configuration.
 *
 * <p>The token is handed over only on a connection whose TLS checks the server as pgentra's
 * policy requires: pgJDBC's default sslmode is {@code prefer}, which is refused, with a
 * message saying what to add. pgJDBC makes a new plugin object per connection; the connectors
 * (and their token caches) live in a static map keyed by configuration, and the constructor
 * does no I/O.
 */
public final class PgEntraAuthenticationPlugin implements AuthenticationPlugin {
    private static final Map<List<String>, PgEntra> CONNECTORS = new ConcurrentHashMap<>();

    /** Microsoft's azure-identity-extensions properties and pgentra's option for each. */
    private static final Map<String, String> AZURE_KEYS = new TreeMap<>();

    static {
        AZURE_KEYS.put("azure.clientId", "client_id");
        AZURE_KEYS.put("azure.tenantId", "tenant_id");
        AZURE_KEYS.put("azure.clientSecret", "client_secret");
        AZURE_KEYS.put("azure.clientCertificatePath", "certificate_path");
        AZURE_KEYS.put("azure.managedIdentityEnabled", "credential");
        AZURE_KEYS.put("azure.authorityHost", "authority_host");
        AZURE_KEYS.put("azure.scopes", "scope");
        AZURE_KEYS.put("azure.accessTokenTimeoutInSeconds", "timeout");
    }

    private final Properties info;
    private final List<String> options;
    private final String refused;

    /** pgJDBC's constructor: {@code info} holds the URL's parameters and the given properties. */
    public PgEntraAuthenticationPlugin(Properties info) {
        this.info = info == null ? new Properties() : info;
        List<String> o = new ArrayList<>();
        String problem = null;
        try {
            o = options(this.info);
        } catch (IllegalArgumentException e) {
            problem = e.getMessage();
        }
        this.options = Collections.unmodifiableList(o);
        this.refused = problem;
    }

    public PgEntraAuthenticationPlugin() {
        this(new Properties());
    }

    /** pgentra's options for these pgJDBC properties (a sorted key, value list). */
    static List<String> options(Properties info) {
        TreeMap<String, String> o = new TreeMap<>();
        String hosts = info.getProperty("PGHOST");
        if (hosts != null && !hosts.isEmpty()) {
            o.put("host", hosts.split(",", -1)[0]);
        }
        String ports = info.getProperty("PGPORT");
        if (ports != null && !ports.isEmpty()) {
            o.put("port", ports.split(",", -1)[0]);
        }
        put(o, "dbname", info.getProperty("PGDBNAME"));
        put(o, "user", info.getProperty("user"));
        for (String name : info.stringPropertyNames()) {
            String value = info.getProperty(name);
            if (name.startsWith("azure.")) {
                String key = AZURE_KEYS.get(name);
                if (key == null) {
                    throw new IllegalArgumentException("pgentra: the JDBC property " + name
                            + " is not supported by PgEntraAuthenticationPlugin; remove it (supported: " + String.join(", ", AZURE_KEYS.keySet())
                            + ", and pgentra.<option>)");
                }
                if (key.equals("credential")) {
                    if (Boolean.parseBoolean(value.trim())) {
                        o.put(key, "managed-identity");
                    }
                } else if (key.equals("scope")) {
                    // Microsoft's plugin takes a comma-separated list; Entra takes one scope.
                    String[] scopes = value.split(",");
                    if (scopes.length != 1) {
                        throw new IllegalArgumentException("pgentra: the JDBC property azure.scopes names " + scopes.length
                                + " scopes; give one (e.g. https://ossrdbms-aad.database.windows.net/.default)");
                    }
                    o.put(key, scopes[0].trim());
                } else {
                    o.put(key, value);
                }
            } else if (name.equals(PgEntra.CONNECTOR_PROPERTY)) {
                continue; // a live connector of this JVM: see connector()
            } else if (name.equals(PgEntraDataSource.ATTEMPT_PROPERTY)) {
                continue; // one PgEntraDataSource.getConnection call: see getPassword()
            } else if (name.startsWith("pgentra.")) {
                o.put(snake(name.substring("pgentra.".length())), value);
            }
        }
        List<String> out = new ArrayList<>();
        for (Map.Entry<String, String> e : o.entrySet()) {
            out.add(e.getKey());
            out.add(e.getValue());
        }
        return out;
    }

    private static void put(Map<String, String> o, String key, String value) {
        if (value != null && !value.isEmpty()) {
            o.put(key, value);
        }
    }

    /** {@code allowUnverifiedTls} and {@code allow-unverified-tls} become {@code allow_unverified_tls}. */
    static String snake(String name) {
        StringBuilder b = new StringBuilder();
        for (char c : name.toCharArray()) {
            if (Character.isUpperCase(c)) {
                b.append('_').append(Character.toLowerCase(c));
            } else if (c == '-') {
                b.append('_');
            } else {
                b.append(c);
            }
        }
        return b.toString().toLowerCase(Locale.ROOT);
    }

    /** The connector for this configuration, shared by every plugin object that has it. */
    static PgEntra connector(List<String> options) {
        PgEntra c = CONNECTORS.get(options);
        if (c != null) {
            return c;
        }
        return CONNECTORS.computeIfAbsent(options, k -> {
            PgEntra.Builder b = PgEntra.builder();
            for (int i = 0; i + 1 < k.size(); i += 2) {
                b.option(k.get(i), k.get(i + 1));
            }
            return b.build();
        });
    }

    /** How many connectors the plugin holds (for tests and diagnostics). */
    static int connectorCount() {
        return CONNECTORS.size();
    }

    /** The connector this plugin object uses (for invalidation after a refused token). */
    public PgEntra connector() throws PSQLException {
        String named = info.getProperty(PgEntra.CONNECTOR_PROPERTY);
        if (named != null) {
            PgEntra live = PgEntra.live(named);
            if (live == null) {
                throw new PSQLException("pgentra: the JDBC property " + PgEntra.CONNECTOR_PROPERTY
                        + " names no open PgEntra in this JVM (the URL came from PgEntra.jdbcUrl() of an object that was closed or collected); keep that PgEntra open while its URL is in use",
                        PSQLState.INVALID_AUTHORIZATION_SPECIFICATION);
            }
            return live;
        }
        if (refused != null) {
            throw new PSQLException(refused, PSQLState.INVALID_AUTHORIZATION_SPECIFICATION);
        }
        try {
            return connector(options);
        } catch (PgEntraException e) {
            throw psql(e);
        }
    }

    @Override
    public char[] getPassword(AuthenticationRequestType type) throws PSQLException {
        PgEntra c = connector();
        // pgJDBC's own reading of the mode (ssl=true means verify-full; the default is prefer).
        String mode = SslMode.of(info).value;
        try {
            c.checkPgjdbcConnection(info.getProperty("PGHOST"), mode, info.getProperty("sslfactory"));
            char[] token = c.token();
            PgEntraDataSource.handed(info.getProperty(PgEntraDataSource.ATTEMPT_PROPERTY), c, token);
            return token;
        } catch (PgEntraException e) {
            throw psql(e);
        }
    }

    private static PSQLException psql(PgEntraException e) {
        PSQLState state;
        switch (e.kind()) {
            case NETWORK:
                state = PSQLState.CONNECTION_UNABLE_TO_CONNECT;
                break;
            case INTERNAL:
                state = PSQLState.UNEXPECTED_ERROR;
                break;
            default:
                state = PSQLState.INVALID_AUTHORIZATION_SPECIFICATION;
        }
        return new PSQLException("pgentra (" + e.kind().name().toLowerCase(Locale.ROOT) + "): " + e.getMessage(), state, e);
    }
}
