/**
 * pgentra for Spring Boot 3.5 and 4.0: an {@code EnvironmentPostProcessor} (one class per Boot
 * line, both in {@code META-INF/spring.factories}) that makes the properties Service Connector
 * writes for {@code --client-type springboot} ({@code spring.datasource.url},
 * {@code spring.datasource.username}, {@code spring.datasource.azure.passwordless-enabled=true},
 * {@code spring.cloud.azure.credential.*}, ...) work with pgentra's pgJDBC authentication
 * plugin, {@code io.pgentra.jdbc.PgEntraAuthenticationPlugin}. It only rewrites
 * {@code spring.datasource.url}; see {@code ServiceConnectorDataSource} for the rules.
 */
package io.pgentra.spring;
