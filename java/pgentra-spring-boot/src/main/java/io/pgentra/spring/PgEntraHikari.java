package io.pgentra.spring;

import com.zaxxer.hikari.HikariDataSource;
import io.pgentra.PgEntra;
import io.pgentra.jdbc.PgEntraDataSource;
import org.apache.commons.logging.Log;
import org.apache.commons.logging.LogFactory;
import org.springframework.beans.factory.config.BeanPostProcessor;

/**
 * A {@code HikariDataSource} bean (Spring Boot's, or one the application builds) whose
 * {@code jdbcUrl} names pgentra's pgJDBC plugin gets a {@link PgEntraDataSource} over the same
 * URL, properties and user: when the server refuses a token the cache still holds (e.g. after
 * the identity was recreated), the token is dropped and the connection opened once more. pgJDBC
 * never tells the plugin about a refusal, so a pool without it would fail until the token's own
 * refresh point. A pool already started (built with {@code new HikariDataSource(config)}) cannot
 * be changed: one warning says what to write instead.
 */
final class PgEntraHikari implements BeanPostProcessor {
    private static final Log LOG = LogFactory.getLog(PgEntraHikari.class);

    @Override
    public Object postProcessAfterInitialization(Object bean, String beanName) {
        if (!(bean instanceof HikariDataSource)) {
            return bean;
        }
        HikariDataSource h = (HikariDataSource) bean;
        String url = h.getJdbcUrl();
        if (h.getDataSource() != null || h.getDataSourceClassName() != null || !JdbcUrl.isPostgresql(url)
                || !PgEntra.PLUGIN.equals(JdbcUrl.parse(url).get(ServiceConnectorDataSource.PLUGIN_KEY))) {
            return bean;
        }
        if (h.getHikariPoolMXBean() != null) {
            LOG.warn("pgentra: the HikariDataSource bean '" + beanName + "' was started before Spring could configure it, so it does not recover from"
                    + " a refused token until the token's refresh point; build it with config.setDataSource(new io.pgentra.jdbc.PgEntraDataSource(url))"
                    + " or leave it unstarted (new HikariDataSource() plus setters)");
            return bean;
        }
        PgEntraDataSource d = new PgEntraDataSource(url);
        h.getDataSourceProperties().forEach((k, v) -> d.setProperty(String.valueOf(k), String.valueOf(v)));
        h.setDataSource(d);
        return bean;
    }
}
