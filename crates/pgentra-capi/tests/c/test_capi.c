/*
 * C tests of libpgentra through include/pgentra.h only. Run by tests/c/run.sh.
 *
 * Without the harness (IDENTITY_ENDPOINT / IDENTITY_HEADER / PGENTRA_PG_HOST unset) the token
 * part is skipped and says so; everything else needs no network. Under
 * tests/harness/with-harness.sh the token part runs against the local identity emulator and,
 * when built with -DPGENTRA_TEST_LIBPQ, logs in to the private PostgreSQL with the token.
 *
 * The last line is "N passed, M failed"; the exit status is non-zero when M > 0.
 */
#define _POSIX_C_SOURCE 200809L

#include "pgentra.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static void sleep_1ms(void) {
    struct timespec ts = {0, 1000000L};
    nanosleep(&ts, NULL);
}

#ifdef PGENTRA_TEST_LIBPQ
#include <libpq-fe.h>
#endif

static int passed = 0;
static int failed = 0;

#define CHECK(cond, ...)                                                        \
    do {                                                                        \
        if (cond) {                                                             \
            passed++;                                                           \
        } else {                                                                \
            failed++;                                                           \
            fprintf(stderr, "FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond);     \
            fprintf(stderr, __VA_ARGS__);                                       \
            fprintf(stderr, " (last error: %s)\n", last_error());               \
        }                                                                       \
    } while (0)

/* Poison value for out-parameters: every error path must overwrite it with NULL. */
#define POISON ((void *)0x1)

static const char *last_error(void) {
    const char *m = pgentra_last_error_message();
    return m ? m : "(none)";
}

static int contains(const char *haystack, const char *needle) {
    return haystack != NULL && strstr(haystack, needle) != NULL;
}

static const char *SECRET_DSN = "host=h port=5432 dbname=d user=u password=p sslmode=require";
/* A prefix for which no variable exists, so the test environment cannot interfere. */
static const char *NO_VARS_PREFIX = "PGENTRA_CAPI_CTEST_NO_SUCH_PREFIX";

static pgentra_connector *secret_connector(void) {
    pgentra_options o;
    pgentra_options_init(&o);
    o.prefix = NO_VARS_PREFIX;
    o.connection_string = SECRET_DSN;
    pgentra_connector *c = POISON;
    int rc = pgentra_connector_new(&o, &c);
    CHECK(rc == PGENTRA_OK && c != NULL && c != POISON, "connector_new in secret mode: rc=%d", rc);
    return rc == PGENTRA_OK ? c : NULL;
}

/* The caller's own values through the final check: merged, never weakening sslmode; the
 * settings form carries no password; a bad overrides string is a configuration error that
 * quotes no value. */
static void test_overrides(void) {
    pgentra_connector *c = secret_connector();
    if (!c) return;
    char *s = POISON;
    int rc = pgentra_connection_string_with(c, PGENTRA_FORMAT_LIBPQ, "sslmode=prefer application_name=ctest", &s);
    CHECK(rc == PGENTRA_OK && contains(s, "sslmode=require") && contains(s, "application_name=ctest") && contains(s, "password=p"),
          "connection_string_with: '%s'", rc ? last_error() : s);
    if (rc == PGENTRA_OK) pgentra_string_free(s);
    s = POISON;
    rc = pgentra_connection_string_with(c, PGENTRA_FORMAT_LIBPQ, NULL, &s);
    CHECK(rc == PGENTRA_OK && strcmp(s, SECRET_DSN) == 0, "NULL overrides: '%s'", rc ? last_error() : s);
    if (rc == PGENTRA_OK) pgentra_string_free(s);
    s = POISON;
    rc = pgentra_settings_string(c, PGENTRA_FORMAT_LIBPQ, "host=other", &s);
    CHECK(rc == PGENTRA_OK && contains(s, "host=other") && !contains(s, "password"), "settings_string: '%s'", rc ? last_error() : s);
    if (rc == PGENTRA_OK) pgentra_string_free(s);
    s = POISON;
    rc = pgentra_connection_string_with(c, PGENTRA_FORMAT_LIBPQ, "password=Xy7 QpZw9secret", &s);
    CHECK(rc == PGENTRA_ERR_CONFIG && s == NULL && contains(last_error(), "overrides") && !contains(last_error(), "QpZw9"),
          "bad overrides: rc=%d '%s'", rc, last_error());
    pgentra_connector_free(c);
}

static void test_version(void) {
    const char *v = pgentra_version();
    CHECK(v != NULL && strlen(v) >= 5 && v[0] >= '0' && v[0] <= '9', "version '%s'", v ? v : "(null)");
    CHECK(v == pgentra_version(), "version is static storage");
    printf("pgentra %s\n", v ? v : "(null)");
}

static void test_from_env_config_error(void) {
    setenv("AZURE_POSTGRESQL_HOST", "", 1);
    pgentra_connector *c = POISON;
    int rc = pgentra_connector_from_env(NULL, &c);
    CHECK(rc == PGENTRA_ERR_CONFIG, "empty AZURE_POSTGRESQL_HOST: rc=%d", rc);
    CHECK(c == NULL, "*out is NULL on error");
    CHECK(contains(pgentra_last_error_message(), "AZURE_POSTGRESQL_HOST"), "message names the variable");
    CHECK(pgentra_last_error_code() == NULL, "no service code for a configuration error");
    unsetenv("AZURE_POSTGRESQL_HOST");

    /* A custom prefix, read from the environment. */
    setenv("PGENTRA_CAPI_CTEST_CONNECTIONSTRING", SECRET_DSN, 1);
    c = POISON;
    rc = pgentra_connector_from_env("PGENTRA_CAPI_CTEST", &c);
    CHECK(rc == PGENTRA_OK && c != NULL && c != POISON, "from_env with a custom prefix: rc=%d", rc);
    CHECK(pgentra_last_error_message() == NULL, "no message after success");
    if (rc == PGENTRA_OK) {
        char *s = POISON;
        rc = pgentra_connection_string(c, PGENTRA_FORMAT_LIBPQ, &s);
        CHECK(rc == PGENTRA_OK && s != NULL && strcmp(s, SECRET_DSN) == 0, "from_env dsn: '%s'", rc ? "(error)" : s);
        pgentra_string_free(rc == PGENTRA_OK ? s : NULL);
        pgentra_connector_free(c);
    }
    unsetenv("PGENTRA_CAPI_CTEST_CONNECTIONSTRING");

    /* An invalid prefix is a configuration error too. */
    c = POISON;
    rc = pgentra_connector_from_env("no spaces allowed", &c);
    CHECK(rc == PGENTRA_ERR_CONFIG && c == NULL, "invalid prefix: rc=%d", rc);
}

static void test_null_arguments(void) {
    pgentra_connector *c = POISON;
    char *s = POISON;
    pgentra_options o;
    pgentra_options_init(&o);

    CHECK(pgentra_connector_from_env(NULL, NULL) == PGENTRA_ERR_NULL_ARGUMENT, "from_env out NULL");
    CHECK(contains(pgentra_last_error_message(), "'out'"), "message names 'out'");
    CHECK(pgentra_connector_new(NULL, &c) == PGENTRA_ERR_NULL_ARGUMENT, "new opts NULL");
    CHECK(c == NULL, "*out is NULL on error");
    CHECK(contains(pgentra_last_error_message(), "'opts'"), "message names 'opts'");
    CHECK(pgentra_connector_new(&o, NULL) == PGENTRA_ERR_NULL_ARGUMENT, "new out NULL");

    CHECK(pgentra_token(NULL, &s) == PGENTRA_ERR_NULL_ARGUMENT && s == NULL, "token c NULL");
    CHECK(contains(pgentra_last_error_message(), "'c'"), "message names 'c'");
    s = POISON;
    CHECK(pgentra_connection_string(NULL, PGENTRA_FORMAT_LIBPQ, &s) == PGENTRA_ERR_NULL_ARGUMENT && s == NULL,
          "connection_string c NULL");
    s = POISON;
    CHECK(pgentra_user(NULL, &s) == PGENTRA_ERR_NULL_ARGUMENT && s == NULL, "user c NULL");

    c = secret_connector();
    if (c) {
        CHECK(pgentra_token(c, NULL) == PGENTRA_ERR_NULL_ARGUMENT, "token out NULL");
        CHECK(pgentra_connection_string(c, PGENTRA_FORMAT_URI, NULL) == PGENTRA_ERR_NULL_ARGUMENT,
              "connection_string out NULL");
        CHECK(pgentra_user(c, NULL) == PGENTRA_ERR_NULL_ARGUMENT, "user out NULL");
        pgentra_connector_free(c);
    }
}

static void test_invalid_utf8(void) {
    pgentra_connector *c = POISON;
    int rc = pgentra_connector_from_env("AZURE_\xff\xfePOSTGRESQL", &c);
    CHECK(rc == PGENTRA_ERR_INVALID_UTF8, "invalid UTF-8 prefix: rc=%d", rc);
    CHECK(c == NULL, "*out is NULL on error");
    CHECK(contains(pgentra_last_error_message(), "'prefix'"), "message names 'prefix'");

    pgentra_options o;
    pgentra_options_init(&o);
    o.prefix = NO_VARS_PREFIX;
    o.connection_string = "host=h user=\xc3\x28";
    c = POISON;
    rc = pgentra_connector_new(&o, &c);
    CHECK(rc == PGENTRA_ERR_INVALID_UTF8 && c == NULL, "invalid UTF-8 connection string: rc=%d", rc);
    CHECK(contains(pgentra_last_error_message(), "connection_string"), "message names connection_string");
}

static void test_options(void) {
    pgentra_options o;
    memset(&o, 0xab, sizeof o);
    pgentra_options_init(&o);
    CHECK(o.prefix == NULL && o.connection_string == NULL && o.client_id == NULL && o.tenant_id == NULL &&
              o.client_secret == NULL && o.scope == NULL,
          "options_init clears the strings");
    CHECK(o.credential == PGENTRA_CREDENTIAL_AUTO && o.allow_insecure == -1 && o.timeout_ms == 0 &&
              o.allow_unverified_tls == -1 && o.struct_size == sizeof o,
          "options_init defaults");
    pgentra_options_init(NULL);
    {
        /* Options from another version of the header (or never initialised) are refused. */
        pgentra_options bad;
        pgentra_options_init(&bad);
        bad.struct_size = (uint32_t)sizeof bad - 4;
        bad.connection_string = SECRET_DSN;
        pgentra_connector *c = POISON;
        int rc = pgentra_connector_new(&bad, &c);
        CHECK(rc == PGENTRA_ERR_INVALID_ARGUMENT && c == NULL && contains(last_error(), "struct_size"),
              "a wrong struct_size is refused: rc=%d '%s'", rc, last_error());
        bad.struct_size = (uint32_t)sizeof bad;
        bad.allow_unverified_tls = 7;
        rc = pgentra_connector_new(&bad, &c);
        CHECK(rc == PGENTRA_ERR_INVALID_ARGUMENT && contains(last_error(), "allow_unverified_tls"), "allow_unverified_tls 7: rc=%d", rc);
    }

    o.prefix = NO_VARS_PREFIX;
    o.connection_string = SECRET_DSN;
    pgentra_connector *c = POISON;
    o.credential = 8;
    CHECK(pgentra_connector_new(&o, &c) == PGENTRA_ERR_INVALID_ARGUMENT && c == NULL, "credential 8 rejected");
    CHECK(contains(pgentra_last_error_message(), "credential"), "message names credential");
    o.credential = PGENTRA_CREDENTIAL_AUTO;
    o.allow_insecure = 7;
    c = POISON;
    CHECK(pgentra_connector_new(&o, &c) == PGENTRA_ERR_INVALID_ARGUMENT && c == NULL, "allow_insecure 7 rejected");
    o.allow_insecure = -1;

    /* No options at all: the error names the prefix's connection string variable. */
    pgentra_options_init(&o);
    o.prefix = NO_VARS_PREFIX;
    c = POISON;
    CHECK(pgentra_connector_new(&o, &c) == PGENTRA_ERR_CONFIG && c == NULL, "no configuration");
    CHECK(contains(pgentra_last_error_message(), "PGENTRA_CAPI_CTEST_NO_SUCH_PREFIX_CONNECTIONSTRING"),
          "message names the variable");
}

static void test_secret_mode(void) {
    pgentra_connector *c = secret_connector();
    if (!c) return;
    static const char *expected[] = {
        "host=h port=5432 dbname=d user=u password=p sslmode=require",
        "postgresql://u:p@h:5432/d?sslmode=require",
        "Server=h;Port=5432;Database=d;User Id=u;Password=p;Ssl Mode=Require;",
        "jdbc:postgresql://h:5432/d?sslmode=require&user=u&password=p",
        "{\"host\":\"h\",\"port\":5432,\"dbname\":\"d\",\"user\":\"u\",\"password\":\"p\",\"sslmode\":\"require\"}",
        "export PGHOST='h' PGPORT='5432' PGDATABASE='d' PGUSER='u' PGPASSWORD='p' PGSSLMODE='require'",
    };
    uint32_t formats[] = {PGENTRA_FORMAT_LIBPQ, PGENTRA_FORMAT_URI, PGENTRA_FORMAT_ADO,
                          PGENTRA_FORMAT_JDBC, PGENTRA_FORMAT_JSON, PGENTRA_FORMAT_SHELL};
    for (size_t i = 0; i < sizeof formats / sizeof formats[0]; i++) {
        char *s = POISON;
        int rc = pgentra_connection_string(c, formats[i], &s);
        CHECK(rc == PGENTRA_OK && s != NULL && strcmp(s, expected[i]) == 0, "format %u: rc=%d '%s'",
              (unsigned)formats[i], rc, rc == PGENTRA_OK && s ? s : "(null)");
        pgentra_string_free(rc == PGENTRA_OK ? s : NULL);
    }

    uint32_t bad[] = {7, 100, 0xffffffffu};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char *s = POISON;
        int rc = pgentra_connection_string(c, bad[i], &s);
        CHECK(rc == PGENTRA_ERR_INVALID_ARGUMENT && s == NULL, "format %u rejected: rc=%d", (unsigned)bad[i], rc);
        CHECK(contains(pgentra_last_error_message(), "format"), "message names format");
    }

    char *s = POISON;
    int rc = pgentra_user(c, &s);
    CHECK(rc == PGENTRA_OK && s != NULL && strcmp(s, "u") == 0, "user in secret mode");
    pgentra_string_free(rc == PGENTRA_OK ? s : NULL);

    s = POISON;
    rc = pgentra_token(c, &s);
    CHECK(rc == PGENTRA_ERR_CONFIG && s == NULL, "no token in secret mode: rc=%d", rc);

    /* The pollable operation reports the same error, once, with the thread's message. */
    pgentra_token_op *op = POISON;
    rc = pgentra_token_begin(c, &op);
    CHECK(rc == PGENTRA_OK && op != NULL && op != POISON, "token_begin in secret mode: rc=%d", rc);
    if (rc == PGENTRA_OK) {
        s = POISON;
        do {
            rc = pgentra_token_poll(op, &s);
            if (rc == PGENTRA_PENDING) sleep_1ms();
        } while (rc == PGENTRA_PENDING);
        CHECK(rc == PGENTRA_ERR_CONFIG && s == NULL, "token_poll gives the secret-mode error: rc=%d", rc);
        CHECK(contains(pgentra_last_error_message(), "password"), "its message says why");
        CHECK(pgentra_token_poll(op, &s) == PGENTRA_ERR_INVALID_ARGUMENT, "a second poll after the outcome");
        pgentra_token_op_free(op);
    }
    op = POISON;
    CHECK(pgentra_token_begin(NULL, &op) == PGENTRA_ERR_NULL_ARGUMENT && op == NULL, "token_begin(NULL)");
    CHECK(pgentra_token_begin(c, NULL) == PGENTRA_ERR_NULL_ARGUMENT, "token_begin(out NULL)");
    s = POISON;
    CHECK(pgentra_token_poll(NULL, &s) == PGENTRA_ERR_NULL_ARGUMENT && s == NULL, "token_poll(NULL)");
    pgentra_token_op_free(NULL);
    pgentra_invalidate(c);
    pgentra_connector_free(c);
}

/* pgentra_connect_failed and pgentra_token_requests: NULL and bad arguments are errors that
 * name the argument and leave *retry_out / *out at 0; in secret mode nothing is ever retried. */
static void test_connect_failed_arguments(void) {
    pgentra_connector *c = secret_connector();
    if (!c) return;
    int retry = 7;
    CHECK(pgentra_connect_failed(c, "tok", "28P01", -1, &retry) == PGENTRA_OK && retry == 0, "secret mode: no retry");
    retry = 7;
    CHECK(pgentra_connect_failed(NULL, "tok", "28P01", -1, &retry) == PGENTRA_ERR_NULL_ARGUMENT && retry == 0, "c NULL");
    CHECK(contains(pgentra_last_error_message(), "'c'"), "message names 'c'");
    retry = 7;
    CHECK(pgentra_connect_failed(c, NULL, "28P01", -1, &retry) == PGENTRA_ERR_NULL_ARGUMENT && retry == 0, "token NULL");
    CHECK(contains(pgentra_last_error_message(), "'token'"), "message names 'token'");
    CHECK(pgentra_connect_failed(c, "tok", "28P01", -1, NULL) == PGENTRA_ERR_NULL_ARGUMENT, "retry_out NULL");
    CHECK(contains(pgentra_last_error_message(), "'retry_out'"), "message names 'retry_out'");
    retry = 7;
    CHECK(pgentra_connect_failed(c, "secret-\xff-tok", NULL, -1, &retry) == PGENTRA_ERR_INVALID_UTF8 && retry == 0,
          "token not UTF-8");
    CHECK(contains(pgentra_last_error_message(), "'token'") && !contains(pgentra_last_error_message(), "secret-"),
          "message names 'token' and does not quote it");
    CHECK(pgentra_connect_failed(c, "tok", "28\xc3\x28", -1, &retry) == PGENTRA_ERR_INVALID_UTF8, "sqlstate not UTF-8");
    CHECK(contains(pgentra_last_error_message(), "'sqlstate'"), "message names 'sqlstate'");
    int bad[] = {2, -2, 100};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        retry = 7;
        CHECK(pgentra_connect_failed(c, "tok", NULL, bad[i], &retry) == PGENTRA_ERR_INVALID_ARGUMENT && retry == 0,
              "used_password %d rejected", bad[i]);
        CHECK(contains(pgentra_last_error_message(), "'used_password'"), "message names 'used_password'");
    }
    uint64_t n = 99;
    CHECK(pgentra_token_requests(c, &n) == PGENTRA_OK && n == 0, "no token request in secret mode: %llu", (unsigned long long)n);
    CHECK(pgentra_last_error_message() == NULL, "no message after success");
    n = 99;
    CHECK(pgentra_token_requests(NULL, &n) == PGENTRA_ERR_NULL_ARGUMENT && n == 0, "token_requests c NULL");
    CHECK(contains(pgentra_last_error_message(), "'c'"), "message names 'c'");
    CHECK(pgentra_token_requests(c, NULL) == PGENTRA_ERR_NULL_ARGUMENT, "token_requests out NULL");
    CHECK(contains(pgentra_last_error_message(), "'out'"), "message names 'out'");
    pgentra_connector_free(c);
}

static void test_tls_policy(void) {
    /* Token mode with sslmode=disable: refused before any identity request is made. */
    pgentra_options o;
    pgentra_options_init(&o);
    o.prefix = NO_VARS_PREFIX;
    o.connection_string = "host=127.0.0.1 port=1 dbname=d user=u sslmode=disable";
    o.allow_insecure = 0;
    pgentra_connector *c = POISON;
    int rc = pgentra_connector_new(&o, &c);
    CHECK(rc == PGENTRA_OK && c != NULL && c != POISON, "token-mode connector: rc=%d", rc);
    if (rc != PGENTRA_OK) return;
    char *s = POISON;
    rc = pgentra_connection_string(c, PGENTRA_FORMAT_LIBPQ, &s);
    CHECK(rc == PGENTRA_ERR_TLS_POLICY && s == NULL, "sslmode=disable refused: rc=%d", rc);
    CHECK(contains(pgentra_last_error_message(), "sslmode=disable"), "message names sslmode");
    pgentra_connector_free(c);
}

/* ---- token part (harness only) ------------------------------------------------------------- */

/* GET or POST PATH (with BODY, or NULL) on the emulator's loopback control endpoint; the answer in buf. */
static int emulator_request(const char *method, const char *path, const char *body, char *buf, size_t len) {
    const char *base = getenv("PGENTRA_EMULATOR_HTTP"); /* http://127.0.0.1:PORT */
    if (!base || strncmp(base, "http://127.0.0.1:", 17) != 0) return -1;
    int port = atoi(base + 17);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) return -1;
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t)port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
        close(fd);
        return -1;
    }
    char req[8192];
    if (!body) body = "";
    int n = snprintf(req, sizeof req,
                     "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: %zu\r\nConnection: close\r\n\r\n%s",
                     method, path, strlen(body), body);
    if (n < 0 || (size_t)n >= sizeof req || write(fd, req, (size_t)n) != n) {
        close(fd);
        return -1;
    }
    size_t got = 0;
    ssize_t r;
    while (got + 1 < len && (r = read(fd, buf + got, len - 1 - got)) > 0) got += (size_t)r;
    buf[got] = '\0';
    close(fd);
    return strstr(buf, " 200 ") ? 0 : -1;
}

static long msi_requests(void) {
    char buf[4096];
    if (emulator_request("GET", "/control/stats", NULL, buf, sizeof buf) != 0) return -1;
    const char *p = strstr(buf, "\"msi_requests\":");
    return p ? atol(p + strlen("\"msi_requests\":")) : -1;
}

struct worker {
    pgentra_connector *c;
    int rc;
    char *token;
};

static void *token_worker(void *arg) {
    struct worker *w = arg;
    w->rc = pgentra_token(w->c, &w->token);
    return NULL;
}

static void test_token(void) {
    const char *endpoint = getenv("IDENTITY_ENDPOINT");
    const char *header = getenv("IDENTITY_HEADER");
    const char *pg_host = getenv("PGENTRA_PG_HOST");
    const char *pg_port = getenv("PGENTRA_PG_PORT");
    if (!endpoint || !*endpoint || !header || !*header || !pg_host || !pg_port) {
        printf("SKIP token part: IDENTITY_ENDPOINT, IDENTITY_HEADER, PGENTRA_PG_HOST and PGENTRA_PG_PORT are not all set "
               "(run under tests/harness/with-harness.sh)\n");
        return;
    }
    char dsn[256];
    snprintf(dsn, sizeof dsn, "host=%s port=%s dbname=postgres sslmode=require", pg_host, pg_port);
    pgentra_options o;
    pgentra_options_init(&o);
    o.prefix = NO_VARS_PREFIX;
    o.connection_string = dsn;
    o.timeout_ms = 60000; /* generous: valgrind is slow */
    pgentra_connector *c = POISON;
    int rc = pgentra_connector_new(&o, &c);
    CHECK(rc == PGENTRA_OK && c != NULL && c != POISON, "managed identity connector: rc=%d", rc);
    if (rc != PGENTRA_OK) return;

    char *token = POISON;
    rc = pgentra_token(c, &token);
    CHECK(rc == PGENTRA_OK && token != NULL && token != POISON, "token from the emulator: rc=%d", rc);
    if (rc != PGENTRA_OK) {
        pgentra_connector_free(c);
        return;
    }
    const char *dot1 = strchr(token, '.');
    CHECK(strlen(token) > 20 && dot1 && strchr(dot1 + 1, '.'), "token is JWT-shaped");
    CHECK(pgentra_last_error_message() == NULL, "no message after success");

    /* token_if_changed: a copy for serial 0, none while the caller's copy is current, a new
     * one (with a new serial) after the token changed. */
    uint64_t serial = 0;
    char *tc = POISON;
    rc = pgentra_token_if_changed(c, 0, &serial, &tc);
    CHECK(rc == PGENTRA_OK && tc && strcmp(tc, token) == 0 && serial >= 1, "if_changed(0) gives the token: rc=%d", rc);
    pgentra_string_free(rc == PGENTRA_OK ? tc : NULL);
    uint64_t serial2 = 0;
    tc = POISON;
    rc = pgentra_token_if_changed(c, serial, &serial2, &tc);
    CHECK(rc == PGENTRA_OK && tc == NULL && serial2 == serial, "if_changed(current) gives no copy");
    CHECK(pgentra_fresh_serial(c) == serial, "fresh_serial is the current serial");
    CHECK(pgentra_fresh_serial(NULL) == 0, "fresh_serial(NULL) is 0");
    /* Compare-and-invalidate: another token changes nothing; the cached one is dropped once. */
    CHECK(pgentra_invalidate_if(c, "not-the-token") == 0 && pgentra_fresh_serial(c) == serial, "invalidate_if(other) keeps it");
    CHECK(pgentra_invalidate_if(NULL, token) == 0 && pgentra_invalidate_if(c, NULL) == 0, "invalidate_if with NULL does nothing");
    CHECK(pgentra_invalidate_if(c, token) == 1, "invalidate_if(cached) drops it");
    CHECK(pgentra_invalidate_if(c, token) == 0, "a second invalidate_if(same) does nothing");
    {
        char *again = POISON;
        rc = pgentra_token(c, &again);
        CHECK(rc == PGENTRA_OK && again != NULL && pgentra_fresh_serial(c) > serial, "a new token after invalidate_if: rc=%d", rc);
        if (rc == PGENTRA_OK) pgentra_string_free(again);
        serial = pgentra_fresh_serial(c);
    }
    pgentra_invalidate(c);
    CHECK(pgentra_fresh_serial(c) == 0, "fresh_serial is 0 with nothing cached");
    tc = POISON;
    rc = pgentra_token_if_changed(c, serial, &serial2, &tc);
    CHECK(rc == PGENTRA_OK && tc != NULL && serial2 == serial + 1, "if_changed after invalidate: new serial %llu",
          (unsigned long long)serial2);
    pgentra_string_free(rc == PGENTRA_OK ? tc : NULL);
    CHECK(pgentra_token_if_changed(c, 0, NULL, &tc) == PGENTRA_ERR_NULL_ARGUMENT, "if_changed serial NULL");
    CHECK(contains(pgentra_last_error_message(), "'serial'"), "message names 'serial'");
    tc = POISON;
    CHECK(pgentra_token_if_changed(NULL, 0, &serial2, &tc) == PGENTRA_ERR_NULL_ARGUMENT && tc == NULL, "if_changed c NULL");

    char *user = POISON;
    rc = pgentra_user(c, &user);
    CHECK(rc == PGENTRA_OK && user && strcmp(user, "pgentra-app") == 0, "user from the token: '%s'",
          rc == PGENTRA_OK && user ? user : "(null)");
    pgentra_string_free(rc == PGENTRA_OK ? user : NULL);

    char *cs = POISON;
    rc = pgentra_connection_string(c, PGENTRA_FORMAT_LIBPQ, &cs);
    char want[8192];
    snprintf(want, sizeof want, "host=%s port=%s dbname=postgres user=pgentra-app password=%s sslmode=require",
             pg_host, pg_port, token);
    CHECK(rc == PGENTRA_OK && cs && strcmp(cs, want) == 0, "libpq string with the token");

#ifdef PGENTRA_TEST_LIBPQ
    if (rc == PGENTRA_OK) {
        PGconn *conn = PQconnectdb(cs);
        CHECK(PQstatus(conn) == CONNECTION_OK, "PostgreSQL accepts the token: %s", PQerrorMessage(conn));
        if (PQstatus(conn) == CONNECTION_OK) {
            PGresult *r = PQexec(conn, "select current_user");
            CHECK(PQresultStatus(r) == PGRES_TUPLES_OK && strcmp(PQgetvalue(r, 0, 0), "pgentra-app") == 0,
                  "current_user is pgentra-app");
            PQclear(r);
        }
        PQfinish(conn);
    }
#else
    printf("SKIP PostgreSQL login (built without libpq)\n");
#endif
    pgentra_string_free(rc == PGENTRA_OK ? cs : NULL);

    /* 16 threads on an emptied cache: one identity request (single flight), one token. */
    pgentra_invalidate(c);
    long before = msi_requests();
    enum { N = 16 };
    struct worker w[N];
    pthread_t th[N];
    int started = 0;
    for (int i = 0; i < N; i++) {
        w[i].c = c;
        w[i].rc = -1;
        w[i].token = POISON;
        if (pthread_create(&th[i], NULL, token_worker, &w[i]) == 0) started++;
    }
    CHECK(started == N, "started %d threads", started);
    for (int i = 0; i < started; i++) pthread_join(th[i], NULL);
    int same = 0;
    for (int i = 0; i < started; i++) {
        if (w[i].rc == PGENTRA_OK && w[i].token && strcmp(w[i].token, token) == 0) same++;
        pgentra_string_free(w[i].rc == PGENTRA_OK ? w[i].token : NULL);
    }
    CHECK(same == N, "%d of %d threads got the same token", same, N);
    long after = msi_requests();
    if (before >= 0 && after >= 0) {
        CHECK(after - before == 1, "one identity request for %d concurrent callers, saw %ld", N, after - before);
    } else {
        printf("SKIP request count: the emulator's /control/stats is not reachable\n");
    }

    /* Cached: no further request. */
    char *again = POISON;
    rc = pgentra_token(c, &again);
    CHECK(rc == PGENTRA_OK && again && strcmp(again, token) == 0, "cached token");
    pgentra_string_free(rc == PGENTRA_OK ? again : NULL);
    if (after >= 0) CHECK(msi_requests() == after, "cached read makes no request");

    /* The pollable operation: complete at once on a cached token; pending, then the token, on
     * an empty cache; released unread (the request still fills the cache). */
    {
        pgentra_token_op *op = NULL;
        char *t = POISON;
        rc = pgentra_token_begin(c, &op);
        CHECK(rc == PGENTRA_OK && op, "token_begin on a cached token: rc=%d", rc);
        rc = pgentra_token_poll(op, &t);
        CHECK(rc == PGENTRA_OK && t && strcmp(t, token) == 0, "token_poll gives the cached token at once: rc=%d", rc);
        pgentra_string_free(rc == PGENTRA_OK ? t : NULL);
        pgentra_token_op_free(op);

        pgentra_invalidate(c);
        long before_op = msi_requests();
        op = NULL;
        rc = pgentra_token_begin(c, &op);
        CHECK(rc == PGENTRA_OK && op, "token_begin on an empty cache: rc=%d", rc);
        int polls = 0;
        t = POISON;
        do {
            rc = pgentra_token_poll(op, &t);
            polls++;
            if (rc == PGENTRA_PENDING) {
                CHECK(t == NULL, "no token while pending");
                sleep_1ms();
            }
        } while (rc == PGENTRA_PENDING && polls < 60000);
        CHECK(rc == PGENTRA_OK && t && strcmp(t, token) == 0, "token_poll gives the token after %d polls: rc=%d", polls, rc);
        pgentra_string_free(rc == PGENTRA_OK ? t : NULL);
        pgentra_token_op_free(op);
        if (before_op >= 0) CHECK(msi_requests() - before_op == 1, "one request for the operation");

        pgentra_invalidate(c);
        op = NULL;
        rc = pgentra_token_begin(c, &op);
        CHECK(rc == PGENTRA_OK && op, "token_begin, then free before it ends: rc=%d", rc);
        pgentra_token_op_free(op);
        t = POISON;
        rc = pgentra_token(c, &t);
        CHECK(rc == PGENTRA_OK && t && strcmp(t, token) == 0, "the abandoned request's token: rc=%d", rc);
        pgentra_string_free(rc == PGENTRA_OK ? t : NULL);
    }

    pgentra_string_free(token);
    pgentra_connector_free(c);
}

static uint64_t requests_of(pgentra_connector *c) {
    uint64_t n = 0;
    int rc = pgentra_token_requests(c, &n);
    CHECK(rc == PGENTRA_OK, "token_requests: rc=%d", rc);
    return n;
}

/* A token connector for ROLE (NULL: the token's own) on the harness's PostgreSQL; its libpq
 * string in *cs when cs is not NULL. */
static pgentra_connector *harness_connector(const char *role) {
    char dsn[256];
    snprintf(dsn, sizeof dsn, "host=%s port=%s dbname=postgres sslmode=require%s%s", getenv("PGENTRA_PG_HOST"),
             getenv("PGENTRA_PG_PORT"), role ? " user=" : "", role ? role : "");
    pgentra_options o;
    pgentra_options_init(&o);
    o.prefix = NO_VARS_PREFIX;
    o.connection_string = dsn;
    o.timeout_ms = 60000;
    pgentra_connector *c = NULL;
    int rc = pgentra_connector_new(&o, &c);
    CHECK(rc == PGENTRA_OK && c, "harness connector: rc=%d", rc);
    return rc == PGENTRA_OK ? c : NULL;
}

/* Whether a login with the connector's current connection string succeeds; with libpq the
 * failed connection's PQconnectionUsedPassword in *used (else -1). Without libpq: -1 (unknown). */
static int try_login(pgentra_connector *c, int *used) {
    *used = -1;
#ifdef PGENTRA_TEST_LIBPQ
    char *cs = NULL;
    if (pgentra_connection_string(c, PGENTRA_FORMAT_LIBPQ, &cs) != PGENTRA_OK) return -1;
    PGconn *conn = PQconnectdb(cs);
    int ok = PQstatus(conn) == CONNECTION_OK;
    if (!ok) *used = PQconnectionUsedPassword(conn);
    PQfinish(conn);
    pgentra_string_free(cs);
    return ok;
#else
    (void)c;
    return -1;
#endif
}

/* Recovery through the core's rule: the server refuses the cached token (revoked) ->
 * connect_failed says retry, and the next token is another one, for exactly one more identity
 * request; a failure that is not a refusal drops nothing; a role the token can never log in
 * as costs at most two requests however many connects it refuses. */
static void test_connect_failed_harness(void) {
    if (!getenv("PGENTRA_PG_HOST") || !getenv("PGENTRA_PG_PORT") || !getenv("IDENTITY_ENDPOINT")) {
        printf("SKIP connect_failed part: not under tests/harness/with-harness.sh\n");
        return;
    }
    pgentra_connector *c = harness_connector(NULL);
    if (!c) return;
    char *t0 = NULL, *t1 = NULL;
    int rc = pgentra_token(c, &t0);
    CHECK(rc == PGENTRA_OK && t0, "first token: rc=%d", rc);
    if (rc != PGENTRA_OK) {
        pgentra_connector_free(c);
        return;
    }
    uint64_t r0 = requests_of(c);
    CHECK(r0 >= 1, "the first token took a request: %llu", (unsigned long long)r0);
    char buf[4096];
    CHECK(emulator_request("POST", "/control/revoke", t0, buf, sizeof buf) == 0, "revoke the cached token: %s", buf);
    int used = -1;
    int ok = try_login(c, &used);
    if (ok >= 0) CHECK(ok == 0 && used == 1, "the revoked token is refused after the password was sent: ok=%d used=%d", ok, used);
    int retry = -1;
    /* With libpq: the facts libpq gives (no SQLSTATE, used_password); without: SQLSTATE 28P01. */
    rc = ok >= 0 ? pgentra_connect_failed(c, t0, NULL, used, &retry) : pgentra_connect_failed(c, t0, "28P01", -1, &retry);
    CHECK(rc == PGENTRA_OK && retry == 1, "a refusal of the cached token: retry (rc=%d retry=%d)", rc, retry);
    CHECK(requests_of(c) == r0, "connect_failed itself makes no request");
    /* A second connection refused with the same token (concurrently): reconnect too, no drop. */
    retry = -1;
    CHECK(pgentra_connect_failed(c, t0, "28P01", -1, &retry) == PGENTRA_OK && retry == 1, "a late refusal of t0: retry");
    rc = pgentra_token(c, &t1);
    CHECK(rc == PGENTRA_OK && t1 && strcmp(t0, t1) != 0, "the next token is another one: rc=%d", rc);
    CHECK(requests_of(c) == r0 + 1, "exactly one more identity request: %llu", (unsigned long long)(requests_of(c) - r0));
    ok = try_login(c, &used);
    if (ok >= 0) CHECK(ok == 1, "the new token logs in");
    uint64_t serial = pgentra_fresh_serial(c);

    /* Not a refusal: another SQLSTATE, or no password sent. Nothing dropped, no retry. */
    const char *states[] = {"3D000", "08006", "28000", "53300"};
    for (size_t i = 0; i < sizeof states / sizeof states[0]; i++) {
        retry = -1;
        CHECK(pgentra_connect_failed(c, t1, states[i], 1, &retry) == PGENTRA_OK && retry == 0, "SQLSTATE %s: no retry", states[i]);
    }
    retry = -1;
    CHECK(pgentra_connect_failed(c, t1, NULL, 0, &retry) == PGENTRA_OK && retry == 0, "no password sent: no retry");
    retry = -1;
    CHECK(pgentra_connect_failed(c, t1, "", 0, &retry) == PGENTRA_OK && retry == 0, "empty SQLSTATE counts as none");
    CHECK(pgentra_fresh_serial(c) == serial, "the token is kept");
    CHECK(requests_of(c) == r0 + 1, "and no request was made");
    pgentra_string_free(t0);
    pgentra_string_free(t1);
    pgentra_connector_free(c);

    /* A role no token of this identity can log in as: every connect is refused. Ten connects,
     * each retried once when connect_failed says so: at most two identity requests. */
    c = harness_connector("pgentra_capi_no_such_role");
    if (!c) return;
    int retries = 0, logins = 0;
    for (int i = 0; i < 10; i++) {
        for (int attempt = 0; attempt < 2; attempt++) {
            char *t = NULL;
            if (pgentra_token(c, &t) != PGENTRA_OK) break;
            ok = try_login(c, &used);
            if (ok == 1) logins++;
            retry = 0;
            rc = ok >= 0 ? pgentra_connect_failed(c, t, NULL, used, &retry) : pgentra_connect_failed(c, t, "28P01", -1, &retry);
            pgentra_string_free(t);
            if (rc != PGENTRA_OK || !retry) break;
            retries++;
        }
    }
    uint64_t n = requests_of(c);
    CHECK(logins == 0, "the wrong role never logs in");
    CHECK(n >= 1 && n <= 2, "10 refusals of a wrong role: %llu identity requests (at most 2)", (unsigned long long)n);
    CHECK(retries == 1, "one reconnect in all: %d", retries);
    pgentra_connector_free(c);
}

static void test_free_null(void) {
    pgentra_string_free(NULL);
    pgentra_connector_free(NULL);
    pgentra_invalidate(NULL);
    passed++;
}

int main(void) {
    /* Variables that could steer the configuration away from what the tests set up. */
    unsetenv("PGENTRA_PREFIX");
    unsetenv("PGENTRA_CREDENTIAL");
    unsetenv("AZURE_POSTGRESQL_CONNECTIONSTRING");

    /* Environment changes first, while the process has a single thread. */
    test_from_env_config_error();
    test_version();
    test_null_arguments();
    test_invalid_utf8();
    test_options();
    test_secret_mode();
    test_tls_policy();
    test_overrides();
    test_connect_failed_arguments();
    test_token();
    test_connect_failed_harness();
    test_free_null();

    printf("%d passed, %d failed\n", passed, failed);
    return failed == 0 ? 0 : 1;
}
