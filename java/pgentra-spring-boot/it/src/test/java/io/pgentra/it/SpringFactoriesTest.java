package io.pgentra.it;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import io.pgentra.spring.PgEntraBoot3EnvironmentPostProcessor;
import java.util.Map;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.springframework.boot.SpringBootVersion;
import org.springframework.boot.logging.DeferredLogFactory;
import org.springframework.core.env.MapPropertySource;
import org.springframework.core.env.StandardEnvironment;

/**
 * Boot 4 reads both spring.factories keys; the Boot 3 class must then step aside (the Boot 4
 * one does the work), and on Boot 3 it must act.
 */
class SpringFactoriesTest {
    @BeforeAll
    static void policy() {
        assumeTrue(System.getenv("PGENTRA_ALLOW_UNVERIFIED_TLS") == null, "PGENTRA_ALLOW_UNVERIFIED_TLS changes the expected URLs");
    }

    @Test
    void theBoot3ClassActsOnlyOnBoot3() {
        StandardEnvironment env = new StandardEnvironment();
        String url = "jdbc:postgresql://127.0.0.1:5432/postgres?sslmode=require";
        env.getPropertySources().addFirst(new MapPropertySource("test",
                Map.of("spring.datasource.url", url, "spring.datasource.azure.passwordless-enabled", "true")));
        DeferredLogFactory logs = destination -> destination.get();
        new PgEntraBoot3EnvironmentPostProcessor(logs).postProcessEnvironment(env, null);
        boolean boot3 = SpringBootVersion.getVersion().startsWith("3.");
        assertEquals(boot3 ? url + "&authenticationPluginClassName=" + Apps.PLUGIN : url, env.getProperty("spring.datasource.url"));
    }
}
