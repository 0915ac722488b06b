package io.pgentra.spring;

import org.apache.commons.logging.Log;
import org.springframework.boot.SpringApplication;
import org.springframework.boot.logging.DeferredLogFactory;
import org.springframework.core.Ordered;
import org.springframework.core.env.ConfigurableEnvironment;
import org.springframework.util.ClassUtils;

/**
 * Spring Boot 3: the same as {@link PgEntraEnvironmentPostProcessor}, through the interface
 * Boot 3 reads from {@code META-INF/spring.factories}
 * ({@code org.springframework.boot.env.EnvironmentPostProcessor}). Boot 4 still reads that key
 * (the interface is deprecated for removal there) besides its own, so on Boot 4 this one steps
 * aside and {@link PgEntraEnvironmentPostProcessor} does the work, once.
 */
@SuppressWarnings("removal")
public class PgEntraBoot3EnvironmentPostProcessor implements org.springframework.boot.env.EnvironmentPostProcessor, Ordered {
    private static final String BOOT4_INTERFACE = "org.springframework.boot.EnvironmentPostProcessor";
    private final Log log;

    public PgEntraBoot3EnvironmentPostProcessor(DeferredLogFactory logs) {
        this.log = logs.getLog(PgEntraBoot3EnvironmentPostProcessor.class);
    }

    @Override
    public void postProcessEnvironment(ConfigurableEnvironment environment, SpringApplication application) {
        if (ClassUtils.isPresent(BOOT4_INTERFACE, PgEntraBoot3EnvironmentPostProcessor.class.getClassLoader())) {
            return;
        }
        ServiceConnectorDataSource.apply(environment, log);
    }

    @Override
    public int getOrder() {
        return Ordered.LOWEST_PRECEDENCE;
    }
}
