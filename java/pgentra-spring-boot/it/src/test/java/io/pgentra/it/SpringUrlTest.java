package io.pgentra.it;

import static io.pgentra.it.Apps.JAVA_FACTORY;
import static io.pgentra.it.Apps.MICROSOFT;
import static io.pgentra.it.Apps.PLUGIN;
import static io.pgentra.it.Apps.TENANT;
import static io.pgentra.it.Apps.UAMI;
import static io.pgentra.it.Apps.env;
import static io.pgentra.it.Apps.serviceConnectorUrl;
import static io.pgentra.it.Apps.url;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/**
 * What the post-processor makes of spring.datasource.url, in a real app start (no database
 * needed: no connection is opened). Runs in java/build.sh and in the harness.
 */
class SpringUrlTest {
    static final String SC = serviceConnectorUrl();
    static final String UPGRADED = SC.replace("sslmode=require", "sslmode=verify-full") + "&authenticationPluginClassName=" + PLUGIN;

    @BeforeAll
    static void policy() {
        assumeTrue(System.getenv("PGENTRA_ALLOW_UNVERIFIED_TLS") == null, "PGENTRA_ALLOW_UNVERIFIED_TLS changes the expected URLs");
    }

    @Test
    void passwordlessOffLeavesTheUrlAlone() {
        assertEquals(SC, url(env("SPRING_DATASOURCE_URL", SC, "SPRING_DATASOURCE_USERNAME", "pgentra-app")));
        assertEquals(SC, url(env("SPRING_DATASOURCE_URL", SC, "SPRING_DATASOURCE_USERNAME", "pgentra-app", "SPRING_DATASOURCE_AZURE_PASSWORDLESSENABLED", "false",
                "SPRING_CLOUD_AZURE_CREDENTIAL_CLIENTID", UAMI)));
    }

    @Test
    void aPasswordLeavesTheUrlAlone() {
        assertEquals(SC, url(env("SPRING_DATASOURCE_URL", SC, "SPRING_DATASOURCE_USERNAME", "pgentra-app", "SPRING_DATASOURCE_PASSWORD", "secret-mode",
                "SPRING_DATASOURCE_AZURE_PASSWORDLESSENABLED", "true")));
        String withPassword = SC + "&password=secret-mode";
        assertEquals(withPassword, url(env("SPRING_DATASOURCE_URL", withPassword, "SPRING_DATASOURCE_AZURE_PASSWORDLESSENABLED", "true")));
    }

    @Test
    void systemAssignedIdentity() {
        assertEquals(UPGRADED + "&sslfactory=" + JAVA_FACTORY,
                url(env("SPRING_DATASOURCE_URL", SC, "SPRING_DATASOURCE_USERNAME", "pgentra-app", "SPRING_DATASOURCE_AZURE_PASSWORDLESSENABLED", "true")));
    }

    @Test
    void userAssignedIdentityAndTenantFromTheEnvironment() {
        assertEquals(UPGRADED + "&azure.clientId=" + UAMI + "&azure.managedIdentityEnabled=true&azure.tenantId=" + TENANT + "&sslfactory=" + JAVA_FACTORY,
                url(env("SPRING_DATASOURCE_URL", SC, "SPRING_DATASOURCE_USERNAME", "pgentra-uami", "SPRING_DATASOURCE_AZURE_PASSWORDLESSENABLED", "true",
                        "SPRING_CLOUD_AZURE_CREDENTIAL_CLIENTID", UAMI, "SPRING_CLOUD_AZURE_CREDENTIAL_MANAGEDIDENTITYENABLED", "true",
                        "SPRING_CLOUD_AZURE_PROFILE_TENANTID", TENANT)));
    }

    @Test
    void propertiesAndTheDataSourcePrefixWins() {
        String u = url(env(), "--spring.datasource.url=" + SC, "--spring.datasource.username=pgentra-uami",
                "--spring.datasource.azure.passwordless-enabled=true", "--spring.cloud.azure.credential.client-id=99999999-9999-9999-9999-999999999999",
                "--spring.datasource.azure.credential.client-id=" + UAMI, "--spring.datasource.azure.credential.managed-identity-enabled=true");
        assertEquals(UPGRADED + "&azure.clientId=" + UAMI + "&azure.managedIdentityEnabled=true&sslfactory=" + JAVA_FACTORY, u);
    }

    @Test
    void theUrlsOwnValuesWin() {
        String mine = SC + "&azure.clientId=" + UAMI;
        String u = url(env("SPRING_DATASOURCE_URL", mine, "SPRING_DATASOURCE_AZURE_PASSWORDLESSENABLED", "true",
                "SPRING_CLOUD_AZURE_CREDENTIAL_CLIENTID", "99999999-9999-9999-9999-999999999999"));
        assertTrue(u.contains("azure.clientId=" + UAMI) && !u.contains("9999"), u);
    }

    @Test
    void microsoftsPluginIsReplaced() {
        // What --client-type java writes, put into spring.datasource.url with no other change.
        String ms = SC + "&user=pgentra-app&authenticationPluginClassName=" + MICROSOFT;
        assertEquals(SC.replace("sslmode=require", "sslmode=verify-full") + "&user=pgentra-app&authenticationPluginClassName=" + PLUGIN + "&sslfactory=" + JAVA_FACTORY,
                url(env("SPRING_DATASOURCE_URL", ms)));
    }

    @Test
    void anotherPluginOrDatabaseIsLeftAlone() {
        String other = SC + "&authenticationPluginClassName=com.example.MyPlugin";
        assertEquals(other, url(env("SPRING_DATASOURCE_URL", other, "SPRING_DATASOURCE_AZURE_PASSWORDLESSENABLED", "true")));
        String mysql = "jdbc:mysql://pgentra-test.mysql.database.azure.com:3306/db?sslMode=REQUIRED";
        // (Any driver class will do: the app starts without connecting.)
        assertEquals(mysql, url(env("SPRING_DATASOURCE_URL", mysql, "SPRING_DATASOURCE_AZURE_PASSWORDLESSENABLED", "true",
                "SPRING_DATASOURCE_DRIVERCLASSNAME", "org.postgresql.Driver")));
    }

    @Test
    void requireStaysWhereTheCoreAllowsIt() {
        String local = "jdbc:postgresql://127.0.0.1:" + Apps.port() + "/postgres?sslmode=require";
        assertEquals(local + "&authenticationPluginClassName=" + PLUGIN, url(env("SPRING_DATASOURCE_URL", local, "SPRING_DATASOURCE_AZURE_PASSWORDLESSENABLED", "true")));
        String unverified = SC + "&pgentra.allowUnverifiedTls=true";
        assertEquals(unverified + "&authenticationPluginClassName=" + PLUGIN,
                url(env("SPRING_DATASOURCE_URL", unverified, "SPRING_DATASOURCE_AZURE_PASSWORDLESSENABLED", "true")));
        // The user's own TLS settings are the plugin's to judge.
        String factory = SC + "&sslfactory=org.postgresql.ssl.NonValidatingFactory";
        assertEquals(factory + "&authenticationPluginClassName=" + PLUGIN, url(env("SPRING_DATASOURCE_URL", factory, "SPRING_DATASOURCE_AZURE_PASSWORDLESSENABLED", "true")));
        String rootcert = SC + "&sslrootcert=/etc/ssl/azure.pem";
        assertEquals(rootcert.replace("sslmode=require", "sslmode=verify-full") + "&authenticationPluginClassName=" + PLUGIN,
                url(env("SPRING_DATASOURCE_URL", rootcert, "SPRING_DATASOURCE_AZURE_PASSWORDLESSENABLED", "true")));
    }

    @Test
    void aClientSecretStaysOutOfTheUrl() {
        String u = url(env("SPRING_DATASOURCE_URL", SC, "SPRING_DATASOURCE_AZURE_PASSWORDLESSENABLED", "true",
                "SPRING_CLOUD_AZURE_CREDENTIAL_CLIENTID", "22222222-2222-2222-2222-222222222222", "SPRING_CLOUD_AZURE_CREDENTIAL_CLIENTSECRET", "emulator-secret",
                "SPRING_CLOUD_AZURE_PROFILE_TENANTID", TENANT));
        assertTrue(u.contains("&pgentra.connector=") && u.contains("azure.clientId=22222222-2222-2222-2222-222222222222"), u);
        assertTrue(!u.contains("emulator-secret"), u);
    }

    @Test
    void aCertificatePasswordIsRefusedByName() {
        Exception e = assertThrows(IllegalStateException.class, () -> url(env("SPRING_DATASOURCE_URL", SC, "SPRING_DATASOURCE_AZURE_PASSWORDLESSENABLED", "true",
                "SPRING_CLOUD_AZURE_CREDENTIAL_CLIENTID", "33333333-3333-3333-3333-333333333333", "SPRING_CLOUD_AZURE_CREDENTIAL_CLIENTCERTIFICATEPASSWORD", "hunter2-pw")));
        assertTrue(e.getMessage().contains("spring.cloud.azure.credential.client-certificate-password") && !e.getMessage().contains("hunter2"), e.getMessage());
    }
}
