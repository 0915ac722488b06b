package io.pgentra.spring;

import org.springframework.context.ApplicationContextInitializer;
import org.springframework.context.ConfigurableApplicationContext;
import org.springframework.util.ClassUtils;

/**
 * Registered in {@code META-INF/spring.factories} (Spring Boot 3 and 4): when the application
 * has HikariCP, every {@code HikariDataSource} bean whose URL names pgentra's plugin opens its
 * connections through {@link io.pgentra.jdbc.PgEntraDataSource}, which recovers from a refused
 * cached token (see {@link PgEntraHikari}). No bean is created, so no bean ordering is involved.
 */
public final class PgEntraContextInitializer implements ApplicationContextInitializer<ConfigurableApplicationContext> {
    @Override
    public void initialize(ConfigurableApplicationContext context) {
        if (ClassUtils.isPresent("com.zaxxer.hikari.HikariDataSource", context.getClassLoader())) {
            context.getBeanFactory().addBeanPostProcessor(new PgEntraHikari());
        }
    }
}
