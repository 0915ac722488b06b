package io.pgentra.it;

import java.util.LinkedHashMap;
import java.util.Map;
import org.springframework.boot.SpringApplication;
import org.springframework.context.ConfigurableApplicationContext;
import org.springframework.core.env.StandardEnvironment;
import org.springframework.core.env.SystemEnvironmentPropertySource;
import org.springframework.jdbc.core.JdbcTemplate;

/**
 * Starts {@link App} as Service Connector configures it: with these environment variables in
 * place of the process's (Spring Boot reads them through the same system-environment property
 * source and relaxed names, e.g. SPRING_DATASOURCE_AZURE_PASSWORDLESSENABLED), or with the
 * process's own environment when {@code env} is null, plus command-line arguments.
 */
final class Apps {
    static final String PLUGIN = "io.pgentra.jdbc.PgEntraAuthenticationPlugin";
    static final String MICROSOFT = "com.azure.identity.extensions.jdbc.postgresql.AzurePostgresqlAuthenticationPlugin";
    static final String JAVA_FACTORY = "org.postgresql.ssl.DefaultJavaSSLFactory";
    static final String UAMI = "11111111-1111-1111-1111-111111111111";
    static final String TENANT = "72f988bf-86f1-41af-91ab-2d7cd011db47";

    private Apps() {}

    static boolean harness() {
        return System.getenv("PGENTRA_PG_HOST") != null && System.getenv("PGENTRA_EMULATOR_HTTP") != null;
    }

    /** The harness's Azure-style server name (mapped to 127.0.0.1 there), else a made-up one. */
    static String azureHost() {
        String h = System.getenv("PGENTRA_TEST_AZURE_HOST");
        return h != null ? h : "pgentra-test.postgres.database.azure.com";
    }

    static String port() {
        String p = System.getenv("PGENTRA_PG_PORT");
        return p != null ? p : "5432";
    }

    /** What Service Connector writes as spring.datasource.url, for the Azure-style host. */
    static String serviceConnectorUrl() {
        return "jdbc:postgresql://" + azureHost() + ":" + port() + "/postgres?sslmode=require";
    }

    static Map<String, String> env(String... kv) {
        Map<String, String> m = new LinkedHashMap<>();
        for (int i = 0; i + 1 < kv.length; i += 2) {
            m.put(kv[i], kv[i + 1]);
        }
        return m;
    }

    static ConfigurableApplicationContext start(Map<String, String> env, String... args) {
        SpringApplication app = new SpringApplication(App.class);
        if (env != null) {
            StandardEnvironment e = new StandardEnvironment();
            e.getPropertySources().replace(StandardEnvironment.SYSTEM_ENVIRONMENT_PROPERTY_SOURCE_NAME,
                    new SystemEnvironmentPropertySource(StandardEnvironment.SYSTEM_ENVIRONMENT_PROPERTY_SOURCE_NAME, new LinkedHashMap<>(env)));
            app.setEnvironment(e);
        }
        return app.run(args);
    }

    /** spring.datasource.url as the app sees it after start. */
    static String url(Map<String, String> env, String... args) {
        try (ConfigurableApplicationContext c = start(env, args)) {
            return c.getEnvironment().getProperty("spring.datasource.url");
        }
    }

    static String currentUser(ConfigurableApplicationContext c) {
        return c.getBean(JdbcTemplate.class).queryForObject("select current_user", String.class);
    }
}
