package io.pgentra.spring;

import io.pgentra.PgEntra;
import io.pgentra.PgEntraException;
import java.util.Map;
import org.apache.commons.logging.Log;
import org.springframework.boot.context.properties.bind.Binder;
import org.springframework.core.env.ConfigurableEnvironment;
import org.springframework.core.env.MapPropertySource;

/**
 * What both post-processors do: Service Connector's passwordless {@code spring.datasource.*}
 * (for {@code --client-type springboot}) becomes a {@code spring.datasource.url} that names
 * pgentra's pgJDBC authentication plugin. Only the URL property changes, in a property source
 * of its own ahead of the others; Spring Boot builds the DataSource as usual, so no bean has to
 * be created before another.
 *
 * <ul>
 *   <li>A PostgreSQL URL naming Microsoft's {@code AzurePostgresqlAuthenticationPlugin} gets
 *       pgentra's plugin instead (one warning), which reads the same {@code azure.*} keys.
 *   <li>With {@code spring.datasource.azure.passwordless-enabled=true}, no
 *       {@code spring.datasource.password} and no plugin in the URL, pgentra's plugin is added.
 *   <li>Otherwise (passwordless off, a password, another plugin, not PostgreSQL) nothing changes.
 * </ul>
 *
 * With pgentra's plugin in the URL, Spring Cloud Azure's credential properties
 * ({@code spring.datasource.azure.*}, else {@code spring.cloud.azure.*}:
 * {@code credential.client-id}, {@code credential.managed-identity-enabled},
 * {@code credential.client-certificate-path}, {@code profile.tenant-id}) become the plugin's
 * {@code azure.*} URL properties unless the URL has them. Secrets are never put in a URL: a
 * {@code credential.client-secret} goes into a connector kept in memory for the process, which the
 * URL names ({@code pgentra.connector}); a certificate password or a user password stops the start
 * with a message saying where pgentra reads it from instead.
 *
 * <p>TLS: Service Connector always writes {@code sslmode=require}, which pgentra's plugin
 * refuses for an Azure server (the host name would not be checked). When the core's policy
 * refuses {@code require} for the URL's hosts, the URL gets {@code sslmode=verify-full} and,
 * unless it names an {@code sslrootcert}, {@code sslfactory=org.postgresql.ssl.DefaultJavaSSLFactory}
 * (the JVM's trust store, which holds Azure's roots); one line is logged.
 * {@code PGENTRA_ALLOW_UNVERIFIED_TLS=1} (or {@code pgentra.allowUnverifiedTls=true} in the
 * URL) keeps {@code require}. Any other sslmode or an explicit {@code sslfactory} is left for
 * the plugin to accept or refuse.
 */
final class ServiceConnectorDataSource {
    static final String URL = "spring.datasource.url";
    static final String PROPERTY_SOURCE = "pgentra";
    static final String PLUGIN_KEY = "authenticationPluginClassName";
    static final String MICROSOFT_PLUGIN = "com.azure.identity.extensions.jdbc.postgresql.AzurePostgresqlAuthenticationPlugin";
    static final String JAVA_TRUST_STORE_FACTORY = "org.postgresql.ssl.DefaultJavaSSLFactory";

    /** Spring Cloud Azure property (under each prefix) and the plugin's URL property for it. */
    private static final String[][] CREDENTIALS = {
        {"credential.client-id", "azure.clientId"},
        {"credential.managed-identity-enabled", "azure.managedIdentityEnabled"},
        {"credential.client-certificate-path", "azure.clientCertificatePath"},
        {"profile.tenant-id", "azure.tenantId"},
    };
    /** Spring Cloud Azure secrets that pgentra cannot take (it never puts a secret into a JDBC URL). */
    private static final String[] SECRETS = {"credential.client-certificate-password", "credential.password"};
    private static final String CLIENT_SECRET = "credential.client-secret";
    /** Connectors made for a client secret: alive for the process, as the URL names them. */
    private static final java.util.List<PgEntra> KEPT = new java.util.concurrent.CopyOnWriteArrayList<>();
    private static final String[] PREFIXES = {"spring.datasource.azure.", "spring.cloud.azure."};

    private ServiceConnectorDataSource() {}

    static void apply(ConfigurableEnvironment environment, Log log) {
        Binder binder = Binder.get(environment);
        String url = binder.bind(URL, String.class).orElse(null);
        if (!JdbcUrl.isPostgresql(url)) {
            return;
        }
        JdbcUrl u = JdbcUrl.parse(url);
        String plugin = u.get(PLUGIN_KEY);
        if (MICROSOFT_PLUGIN.equals(plugin)) {
            log.warn("pgentra: spring.datasource.url names Microsoft's " + MICROSOFT_PLUGIN + "; using " + PgEntra.PLUGIN
                    + " instead, which reads the same azure.* properties (put it in the URL to silence this warning)");
            u.set(PLUGIN_KEY, PgEntra.PLUGIN);
        } else if (plugin == null) {
            boolean passwordless = binder.bind("spring.datasource.azure.passwordless-enabled", Boolean.class).orElse(false);
            String password = binder.bind("spring.datasource.password", String.class).orElse("");
            if (!passwordless || !password.isEmpty() || u.get("password") != null) {
                return;
            }
            u.set(PLUGIN_KEY, PgEntra.PLUGIN);
        } else if (!plugin.equals(PgEntra.PLUGIN)) {
            return; // someone else's plugin
        }

        for (String secret : SECRETS) {
            for (String prefix : PREFIXES) {
                if (!binder.bind(prefix + secret, String.class).orElse("").isEmpty()) {
                    throw new IllegalStateException("pgentra: " + prefix + secret
                            + " is set, but pgentra does not put secrets into the JDBC URL; remove it and give the service principal's secret to pgentra in the environment instead"
                            + " (AZURE_CLIENT_SECRET or AZURE_POSTGRESQL_CLIENTSECRET; a certificate: AZURE_CLIENT_CERTIFICATE_PATH and AZURE_CLIENT_CERTIFICATE_PASSWORD)");
                }
            }
        }
        // A service principal's secret (what Service Connector writes for one): it stays in this
        // process's memory, in a connector that the URL names (pgentra.connector), never in the URL.
        String secret = null;
        String secretProperty = null;
        for (String prefix : PREFIXES) {
            String v = binder.bind(prefix + CLIENT_SECRET, String.class).orElse("");
            if (!v.isEmpty()) {
                secret = v;
                secretProperty = prefix + CLIENT_SECRET;
                break;
            }
        }
        for (String[] c : CREDENTIALS) {
            if (u.get(c[1]) != null) {
                continue; // the URL's own value wins
            }
            for (String prefix : PREFIXES) {
                String v = binder.bind(prefix + c[0], String.class).orElse("").trim();
                if (!v.isEmpty()) {
                    u.set(c[1], c[1].equals("azure.managedIdentityEnabled") ? Boolean.toString(Boolean.parseBoolean(v)) : v);
                    break;
                }
            }
        }

        String sslmode = u.get("sslmode");
        if (sslmode != null && sslmode.trim().equalsIgnoreCase("require") && u.get("sslfactory") == null && requireRefused(u)) {
            u.set("sslmode", "verify-full");
            String added = "sslmode=verify-full";
            if (u.get("sslrootcert") == null) {
                u.set("sslfactory", JAVA_TRUST_STORE_FACTORY);
                added += " with sslfactory=" + JAVA_TRUST_STORE_FACTORY + " (the JVM's trust store)";
            }
            log.info("pgentra: spring.datasource.url has sslmode=require for an Azure Database for PostgreSQL server (" + u.hosts()
                    + "), which does not check the server's name, so pgentra's plugin would refuse it; using " + added
                    + " (PGENTRA_ALLOW_UNVERIFIED_TLS=1 keeps require)");
        }

        if (secret != null && u.get(PgEntra.CONNECTOR_PROPERTY) == null) {
            PgEntra.Builder b = PgEntra.builder().connectionString(u.toString()).clientSecret(secret);
            String clientId = u.get("azure.clientId");
            String tenantId = u.get("azure.tenantId");
            if (clientId != null) {
                b.clientId(clientId);
            }
            if (tenantId != null) {
                b.tenantId(tenantId);
            }
            PgEntra connector;
            try {
                connector = b.credential("client-secret").build();
            } catch (PgEntraException e) {
                throw new IllegalStateException("pgentra: cannot use " + secretProperty + ": " + e.getMessage(), e);
            }
            KEPT.add(connector);
            u.set(PgEntra.CONNECTOR_PROPERTY, connector.id());
            log.info("pgentra: the service principal's secret (" + secretProperty + ") stays in memory; spring.datasource.url names its connector");
        }

        String edited = u.toString();
        if (edited.equals(url)) {
            return;
        }
        environment.getPropertySources().remove(PROPERTY_SOURCE);
        environment.getPropertySources().addFirst(new MapPropertySource(PROPERTY_SOURCE, Map.of(URL, edited)));
        if (log.isDebugEnabled()) {
            log.debug("pgentra: spring.datasource.url now names " + PgEntra.PLUGIN);
        }
    }

    /**
     * Whether the core's TLS policy refuses {@code sslmode=require} for the URL's hosts (an Azure
     * name, without PGENTRA_ALLOW_UNVERIFIED_TLS or {@code pgentra.allowUnverifiedTls}). The rule
     * and the Azure host names live in the core ({@code tls::check_pgjdbc}, which the plugin runs
     * before every token); this asks it through a connector in password mode, which builds no
     * credential and makes no request (its placeholder password is never sent anywhere).
     */
    static boolean requireRefused(JdbcUrl u) {
        PgEntra.Builder b = PgEntra.builder().connectionString("host=localhost").credential("password").option("password", "unused");
        for (String flag : new String[] {"allow_unverified_tls", "allow_insecure"}) {
            b.option(flag, pgentraOption(u, flag));
        }
        try (PgEntra check = b.build()) {
            check.checkPgjdbcConnection(u.hosts(), "require", null);
            return false;
        } catch (PgEntraException e) {
            // Anything but the TLS rule (a configuration error in the environment, say) is
            // left for the plugin to report at the first connection.
            return e.kind() == PgEntraException.Kind.TLS_POLICY;
        }
    }

    /** A {@code pgentra.<option>} URL property in any spelling the plugin reads ({@code allowUnverifiedTls}, ...). */
    private static String pgentraOption(JdbcUrl u, String option) {
        StringBuilder camel = new StringBuilder();
        boolean up = false;
        for (char c : option.toCharArray()) {
            if (c == '_') {
                up = true;
            } else {
                camel.append(up ? Character.toUpperCase(c) : c);
                up = false;
            }
        }
        String value = null;
        for (String spelling : new String[] {option, camel.toString(), option.replace('_', '-')}) {
            String v = u.get("pgentra." + spelling);
            if (v != null) {
                value = v;
            }
        }
        return value;
    }
}
