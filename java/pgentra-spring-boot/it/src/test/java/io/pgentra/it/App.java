package io.pgentra.it;

import org.springframework.boot.autoconfigure.SpringBootApplication;

/** A Spring Boot app with spring-boot-starter-jdbc and pgentra-spring-boot, nothing else. */
@SpringBootApplication
public class App {}
