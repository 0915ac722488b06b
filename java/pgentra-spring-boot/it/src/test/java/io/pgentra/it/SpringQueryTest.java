package io.pgentra.it;

import static io.pgentra.it.Apps.MICROSOFT;
import static io.pgentra.it.Apps.TENANT;
import static io.pgentra.it.Apps.UAMI;
import static io.pgentra.it.Apps.currentUser;
import static io.pgentra.it.Apps.env;
import static io.pgentra.it.Apps.serviceConnectorUrl;
import static io.pgentra.it.Apps.start;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.springframework.context.ConfigurableApplicationContext;

/**
 * The app runs a JdbcTemplate query against the harness's PostgreSQL (TLS, verify-full through
 * the JVM's trust store) with tokens from the identity emulator, configured only as Service
 * Connector configures it (tests/harness/with-harness.sh java/test.sh).
 */
class SpringQueryTest {
    @BeforeAll
    static void harness() {
        assumeTrue(Apps.harness(), "needs tests/harness/with-harness.sh (PostgreSQL and the identity emulator)");
        assumeTrue(System.getenv("PGENTRA_ALLOW_UNVERIFIED_TLS") == null, "see SpringUnverifiedTlsTest");
    }

    @Test
    void systemAssignedIdentityFromTheProcessEnvironment() {
        // java/test.sh exports SPRING_DATASOURCE_URL (sslmode=require), _USERNAME=pgentra-app
        // and SPRING_DATASOURCE_AZURE_PASSWORDLESSENABLED=true, as App Service would.
        assumeTrue(System.getenv("SPRING_DATASOURCE_URL") != null, "java/test.sh sets the Service Connector variables");
        try (ConfigurableApplicationContext c = start(null)) {
            assertEquals("pgentra-app", currentUser(c));
            assertTrue(c.getEnvironment().getProperty("spring.datasource.url").contains("sslmode=verify-full"));
        }
    }

    @Test
    void userAssignedIdentity() {
        try (ConfigurableApplicationContext c = start(env("SPRING_DATASOURCE_URL", serviceConnectorUrl(), "SPRING_DATASOURCE_USERNAME", "pgentra-uami",
                "SPRING_DATASOURCE_AZURE_PASSWORDLESSENABLED", "true", "SPRING_CLOUD_AZURE_CREDENTIAL_CLIENTID", UAMI,
                "SPRING_CLOUD_AZURE_CREDENTIAL_MANAGEDIDENTITYENABLED", "true"))) {
            assertEquals("pgentra-uami", currentUser(c));
            assertEquals("pgentra-uami", currentUser(c));
        }
    }

    @Test
    void userAssignedIdentityFromProperties() {
        try (ConfigurableApplicationContext c = start(env(), "--spring.datasource.url=" + serviceConnectorUrl(), "--spring.datasource.username=pgentra-uami",
                "--spring.datasource.azure.passwordless-enabled=true", "--spring.datasource.azure.credential.client-id=" + UAMI,
                "--spring.datasource.azure.credential.managed-identity-enabled=true")) {
            assertEquals("pgentra-uami", currentUser(c));
        }
    }

    /** A service principal with a secret, as Service Connector configures one. */
    @Test
    void servicePrincipalWithASecret() {
        try (ConfigurableApplicationContext c = start(env("SPRING_DATASOURCE_URL", serviceConnectorUrl(), "SPRING_DATASOURCE_USERNAME", "aad_pgentra_sp",
                "SPRING_DATASOURCE_AZURE_PASSWORDLESSENABLED", "true", "SPRING_CLOUD_AZURE_CREDENTIAL_CLIENTID", "22222222-2222-2222-2222-222222222222",
                "SPRING_CLOUD_AZURE_CREDENTIAL_CLIENTSECRET", "emulator-secret", "SPRING_CLOUD_AZURE_PROFILE_TENANTID", TENANT))) {
            assertEquals("aad_pgentra_sp", currentUser(c));
            assertTrue(!c.getEnvironment().getProperty("spring.datasource.url").contains("emulator-secret"));
        }
    }

    @Test
    void microsoftsPluginInTheUrl() {
        try (ConfigurableApplicationContext c = start(env("SPRING_DATASOURCE_URL", serviceConnectorUrl() + "&authenticationPluginClassName=" + MICROSOFT,
                "SPRING_DATASOURCE_USERNAME", "pgentra-app"))) {
            assertEquals("pgentra-app", currentUser(c));
        }
    }
}
