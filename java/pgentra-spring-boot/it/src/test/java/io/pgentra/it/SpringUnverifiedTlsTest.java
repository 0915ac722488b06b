package io.pgentra.it;

import static io.pgentra.it.Apps.PLUGIN;
import static io.pgentra.it.Apps.currentUser;
import static io.pgentra.it.Apps.env;
import static io.pgentra.it.Apps.serviceConnectorUrl;
import static io.pgentra.it.Apps.start;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import org.junit.jupiter.api.Test;
import org.springframework.context.ConfigurableApplicationContext;

/** With PGENTRA_ALLOW_UNVERIFIED_TLS=1 in the process environment, sslmode=require stays. */
class SpringUnverifiedTlsTest {
    @Test
    void requireStays() {
        assumeTrue(Apps.harness() && System.getenv("PGENTRA_ALLOW_UNVERIFIED_TLS") != null, "java/test.sh runs this with PGENTRA_ALLOW_UNVERIFIED_TLS=1");
        try (ConfigurableApplicationContext c = start(env("SPRING_DATASOURCE_URL", serviceConnectorUrl(), "SPRING_DATASOURCE_USERNAME", "pgentra-app",
                "SPRING_DATASOURCE_AZURE_PASSWORDLESSENABLED", "true"))) {
            assertEquals(serviceConnectorUrl() + "&authenticationPluginClassName=" + PLUGIN, c.getEnvironment().getProperty("spring.datasource.url"));
            assertEquals("pgentra-app", currentUser(c));
        }
    }
}
