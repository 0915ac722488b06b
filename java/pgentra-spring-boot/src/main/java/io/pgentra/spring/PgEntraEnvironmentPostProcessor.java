package io.pgentra.spring;

import org.apache.commons.logging.Log;
import org.springframework.boot.EnvironmentPostProcessor;
import org.springframework.boot.SpringApplication;
import org.springframework.boot.logging.DeferredLogFactory;
import org.springframework.core.Ordered;
import org.springframework.core.env.ConfigurableEnvironment;

/**
 * Spring Boot 4: Service Connector's passwordless {@code spring.datasource.*} properties with
 * pgentra's pgJDBC authentication plugin (see the package documentation). Registered in
 * {@code META-INF/spring.factories} under {@code org.springframework.boot.EnvironmentPostProcessor},
 * a key that Boot 3 never reads; Boot 3 runs {@link PgEntraBoot3EnvironmentPostProcessor}.
 * It runs last, after the configuration files and every other source are in place.
 */
public class PgEntraEnvironmentPostProcessor implements EnvironmentPostProcessor, Ordered {
    private final Log log;

    public PgEntraEnvironmentPostProcessor(DeferredLogFactory logs) {
        this.log = logs.getLog(PgEntraEnvironmentPostProcessor.class);
    }

    @Override
    public void postProcessEnvironment(ConfigurableEnvironment environment, SpringApplication application) {
        ServiceConnectorDataSource.apply(environment, log);
    }

    @Override
    public int getOrder() {
        return Ordered.LOWEST_PRECEDENCE;
    }
}
