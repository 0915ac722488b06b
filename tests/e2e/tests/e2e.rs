//! End to end: every credential type and configuration shape logs in to a real PostgreSQL
//! (TLS, password auth over TLS) with tokens from the local identity emulator.
//! Run with `make test` (tests/harness/with-harness.sh, loopback-only namespace, one thread).

use pgentra::{Connector, ErrorKind, Format, Options};
use pgentra_e2e::*;
use std::time::{Duration, Instant};

fn conn(vars: std::collections::HashMap<String, String>) -> Connector {
    Connector::with_env(Options::default(), &vars).expect("connector")
}

#[test]
fn system_assigned_managed_identity() {
    let c = conn(mi_env(&[("AZURE_POSTGRESQL_CONNECTIONSTRING", &libpq(""))]));
    assert_eq!(login(&c).unwrap(), "pgentra-app");
}

#[test]
fn user_assigned_managed_identity() {
    let c = conn(mi_env(&[("AZURE_POSTGRESQL_CONNECTIONSTRING", &libpq("")), ("AZURE_POSTGRESQL_CLIENTID", UAMI)]));
    assert_eq!(login(&c).unwrap(), "pgentra-uami");
}

#[test]
fn imds_managed_identity_via_loopback_stand_in() {
    // The VM metadata path, with the base address moved to the emulator (never 169.254.169.254).
    let c = conn(env(&[
        ("AZURE_POSTGRESQL_CONNECTIONSTRING", &libpq("")),
        ("PGENTRA_IMDS_ENDPOINT", &h("PGENTRA_EMULATOR_HTTP")),
        ("PGENTRA_CREDENTIAL", "managed-identity"),
    ]));
    let before = stat("imds_requests");
    assert_eq!(login(&c).unwrap(), "pgentra-app");
    assert_eq!(stat("imds_requests"), before + 1);
}

#[test]
fn azure_arc_challenge() {
    let emu_dir = format!("{}/emu", h("PGENTRA_TEST_DIR"));
    let base = h("PGENTRA_EMULATOR_HTTP");
    let vars = env(&[
        ("AZURE_POSTGRESQL_CONNECTIONSTRING", &libpq("")),
        ("IDENTITY_ENDPOINT", &format!("{base}/arc/token")),
        ("IMDS_ENDPOINT", &base),
    ]);
    std::env::set_var("PGENTRA_ARC_KEY_DIR", &emu_dir);
    let c = conn(vars.clone());
    assert!(c.credential_description().contains("Arc"), "{}", c.credential_description());
    assert_eq!(login(&c).unwrap(), "pgentra-app");
    // A challenge naming a file outside the agent's folder is refused (by a connector that has
    // no shared entry to read).
    clear_shared_cache();
    std::env::set_var("PGENTRA_ARC_KEY_DIR", "/var/opt/azcmagent/tokens");
    let e = conn(vars).token().unwrap_err();
    std::env::remove_var("PGENTRA_ARC_KEY_DIR");
    assert!(e.message().contains("refusing to read"), "{e}");
}

#[test]
fn service_principal_with_secret() {
    let c = conn(env(&[
        ("AZURE_POSTGRESQL_CONNECTIONSTRING", &libpq("user=aad_pgentra_sp")),
        ("AZURE_POSTGRESQL_CLIENTID", SP),
        ("AZURE_POSTGRESQL_TENANTID", TENANT),
        ("AZURE_POSTGRESQL_CLIENTSECRET", SP_SECRET),
        ("AZURE_AUTHORITY_HOST", &h("AZURE_AUTHORITY_HOST")),
    ]));
    assert_eq!(login(&c).unwrap(), "aad_pgentra_sp");
}

#[test]
fn service_principal_with_certificate() {
    let c = conn(env(&[
        ("AZURE_POSTGRESQL_CONNECTIONSTRING", &libpq("user=aad_pgentra_cert")),
        ("AZURE_CLIENT_ID", SP_CERT),
        ("AZURE_TENANT_ID", TENANT),
        ("AZURE_CLIENT_CERTIFICATE_PATH", &h("PGENTRA_TEST_CERT")),
        ("AZURE_AUTHORITY_HOST", &h("AZURE_AUTHORITY_HOST")),
    ]));
    assert_eq!(login(&c).unwrap(), "aad_pgentra_cert");
}

#[test]
fn aks_workload_identity() {
    let c = conn(env(&[
        ("AZURE_POSTGRESQL_CONNECTIONSTRING", &libpq("user=aad_pgentra_wi")),
        ("AZURE_CLIENT_ID", WI),
        ("AZURE_TENANT_ID", TENANT),
        ("AZURE_FEDERATED_TOKEN_FILE", &h("PGENTRA_TEST_FEDERATED")),
        ("AZURE_AUTHORITY_HOST", &h("AZURE_AUTHORITY_HOST")),
    ]));
    assert_eq!(login(&c).unwrap(), "aad_pgentra_wi");
}

#[test]
fn azure_cli_after_a_quick_managed_identity_probe() {
    // A developer machine: no managed identity (the probe is refused at once), `az` logged in.
    let c = conn(env(&[
        ("AZURE_POSTGRESQL_CONNECTIONSTRING", &libpq("")),
        ("PGENTRA_IMDS_ENDPOINT", "http://127.0.0.1:9"),
    ]));
    let t = Instant::now();
    assert_eq!(login(&c).unwrap(), "dev@contoso.com");
    assert!(t.elapsed() < Duration::from_secs(5), "chain took {:?}", t.elapsed());
    assert!(c.credential_description().contains("Azure CLI"));
    assert_eq!(c.token_info().unwrap().credential, pgentra::CredentialKind::AzureCli);
}

#[test]
fn azure_developer_cli() {
    let c = conn(env(&[("AZURE_POSTGRESQL_CONNECTIONSTRING", &libpq("")), ("PGENTRA_CREDENTIAL", "azd")]));
    assert_eq!(login(&c).unwrap(), "dev@contoso.com");
}

#[test]
fn secret_mode_uses_the_password_and_makes_no_identity_request() {
    reset();
    // A hostile password, written in ADO.NET quoting; the real server checks it.
    let ado = format!(
        "Server={};Port={};Database=postgres;User Id=app_static;Password=\"static pw;'\"\"\\@/?#%\";Ssl Mode=Require;",
        h("PGENTRA_PG_HOST"),
        h("PGENTRA_PG_PORT")
    );
    let c = conn(mi_env(&[("AZURE_POSTGRESQL_CONNECTIONSTRING", &ado)]));
    assert!(c.is_password_mode());
    assert_eq!(login(&c).unwrap(), "app_static");
    let s = stats();
    assert_eq!(s["msi_requests"], 0, "{s}");
    assert_eq!(s["entra_requests"], 0, "{s}");
}

#[test]
fn every_dialect_and_variable_shape_logs_in() {
    let (host, port) = (h("PGENTRA_PG_HOST"), h("PGENTRA_PG_PORT"));
    let shapes: Vec<Vec<(String, String)>> = vec![
        vec![("AZURE_POSTGRESQL_CONNECTIONSTRING".into(), format!("dbname=postgres host={host} port={port} sslmode=require user=pgentra-app"))],
        vec![("AZURE_POSTGRESQL_CONNECTIONSTRING".into(), format!("postgresql://pgentra-app@{host}:{port}/postgres?sslmode=require"))],
        vec![("AZURE_POSTGRESQL_CONNECTIONSTRING".into(), format!("Server={host};Database=postgres;Port={port};Ssl Mode=Require;User Id=pgentra-app;"))],
        vec![("AZURE_POSTGRESQL_CONNECTIONSTRING".into(), format!("jdbc:postgresql://{host}:{port}/postgres?sslmode=require&user=pgentra%2Dapp"))],
        // Node.js (pg): discrete variables, SSL=true.
        vec![
            ("AZURE_POSTGRESQL_HOST".into(), host.clone()),
            ("AZURE_POSTGRESQL_PORT".into(), port.clone()),
            ("AZURE_POSTGRESQL_DATABASE".into(), "postgres".into()),
            ("AZURE_POSTGRESQL_USER".into(), "pgentra-app".into()),
            ("AZURE_POSTGRESQL_SSL".into(), "true".into()),
        ],
        // Django: NAME, HOST, USER (port defaults to 5432, so it is given here as the test server's).
        vec![
            ("AZURE_POSTGRESQL_NAME".into(), "postgres".into()),
            ("AZURE_POSTGRESQL_HOST".into(), host.clone()),
            ("AZURE_POSTGRESQL_USER".into(), "pgentra-app".into()),
            ("AZURE_POSTGRESQL_PORT".into(), port.clone()),
        ],
        // The older spelling.
        vec![("Azure_POSTGRESQL_CONNECTIONSTRING".into(), format!("host={host} port={port} dbname=postgres sslmode=require"))],
    ];
    for shape in shapes {
        let pairs: Vec<(&str, &str)> = shape.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let c = conn(mi_env(&pairs));
        assert_eq!(login(&c).unwrap_or_else(|e| panic!("{shape:?}: {e}")), "pgentra-app", "{shape:?}");
    }
    // A custom prefix.
    let vars = mi_env(&[("MYAPP_CONNECTIONSTRING", &libpq(""))]);
    let c = Connector::with_env(Options { prefix: Some("MYAPP".into()), ..Default::default() }, &vars).unwrap();
    assert_eq!(login(&c).unwrap(), "pgentra-app");
}

#[test]
fn bad_input_is_a_clear_error_naming_the_variable() {
    let (host, port) = (h("PGENTRA_PG_HOST"), h("PGENTRA_PG_PORT"));
    let cases: Vec<(Vec<(&str, String)>, &str)> = vec![
        (vec![("AZURE_POSTGRESQL_CONNECTIONSTRING", format!("host={host} password='abc"))], "AZURE_POSTGRESQL_CONNECTIONSTRING"),
        (vec![("AZURE_POSTGRESQL_CONNECTIONSTRING", format!("host={host} sslmode=sometimes"))], "AZURE_POSTGRESQL_CONNECTIONSTRING"),
        (vec![("AZURE_POSTGRESQL_HOST", "".into())], "AZURE_POSTGRESQL_HOST"),
        (vec![("AZURE_POSTGRESQL_HOST", host.clone()), ("AZURE_POSTGRESQL_PORT", "70000".into())], "AZURE_POSTGRESQL_PORT"),
        (vec![("AZURE_POSTGRESQL_CONNECTIONSTRING", format!("host={host} port={port} dbname=x;User Id=u"))], "AZURE_POSTGRESQL_CONNECTIONSTRING"),
    ];
    for (pairs, var) in cases {
        let vars = env(&pairs.iter().map(|(k, v)| (*k, v.as_str())).collect::<Vec<_>>());
        let out = cli(&["dsn"], &vars);
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(3), "{pairs:?}: {err}");
        assert!(err.contains(var), "{pairs:?}: {err}");
        assert!(!err.contains("abc"), "the password leaked: {err}");
        assert!(!err.contains("panicked"), "{err}");
    }
}

#[test]
fn a_token_is_never_sent_without_tls() {
    reset();
    let vars = mi_env(&[("AZURE_POSTGRESQL_CONNECTIONSTRING", &format!("host={} port={} sslmode=disable", h("PGENTRA_PG_HOST"), h("PGENTRA_PG_PORT")))]);
    let out = cli(&["dsn"], &vars);
    assert_eq!(out.status.code(), Some(7), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("sslmode=disable"));
    assert!(out.stdout.is_empty());
    assert_eq!(stat("msi_requests"), 0, "no token should even be requested");
    let c = conn(vars);
    assert_eq!(c.connection_string(Format::Libpq).unwrap_err().kind(), ErrorKind::TlsPolicy);
}

#[test]
fn transient_failures_are_retried_500_then_429_then_200() {
    let _forget = ForgetFailures; // this test makes identity requests fail
    reset();
    control("POST", "/control/faults", r#"[{"status":500},{"status":429,"retry_after":1}]"#);
    let c = conn(mi_env(&[("AZURE_POSTGRESQL_CONNECTIONSTRING", &libpq(""))]));
    let t = Instant::now();
    assert_eq!(login(&c).unwrap(), "pgentra-app");
    assert!(t.elapsed() >= Duration::from_millis(900), "Retry-After honoured: {:?}", t.elapsed());
    assert_eq!(stat("msi_requests"), 3);
}

#[test]
fn dropped_connections_and_bad_json() {
    let _forget = ForgetFailures; // this test makes identity requests fail
    reset();
    control("POST", "/control/faults", r#"[{"drop":true}]"#);
    let c = conn(mi_env(&[("AZURE_POSTGRESQL_CONNECTIONSTRING", &libpq(""))]));
    assert_eq!(login(&c).unwrap(), "pgentra-app", "a dropped connection is retried");
    reset();
    for fault in [r#"[{"bad_json":true}]"#, r#"[{"empty_token":true}]"#] {
        clear_shared_cache();
        control("POST", "/control/faults", fault);
        let c = conn(mi_env(&[("AZURE_POSTGRESQL_CONNECTIONSTRING", &libpq(""))]));
        let e = c.token().unwrap_err();
        assert_eq!(e.kind(), ErrorKind::IdentityService, "{fault}: {e}");
        // The failure is the answer for a few seconds (one request per period during an
        // outage), never a cached token; invalidate() asks again at once, and succeeds.
        let requests = stat("msi_requests");
        assert_eq!(c.token().unwrap_err().kind(), ErrorKind::IdentityService);
        assert_eq!(stat("msi_requests"), requests, "{fault}: remembered, no new request");
        c.invalidate();
        assert!(c.token().is_ok());
    }
}

#[test]
fn the_deadline_bounds_retries() {
    let _forget = ForgetFailures; // this test makes identity requests fail
    reset();
    control("POST", "/control/faults", &format!("[{}]", vec![r#"{"status":503}"#; 40].join(",")));
    let vars = mi_env(&[("AZURE_POSTGRESQL_CONNECTIONSTRING", &libpq("")), ("PGENTRA_TIMEOUT", "2")]);
    let c = conn(vars);
    let t = Instant::now();
    let e = c.token().unwrap_err();
    assert!(t.elapsed() < Duration::from_secs(4), "{:?}", t.elapsed());
    assert!(e.message().contains("503"), "{e}");
    reset();
}

#[test]
fn a_wrong_client_secret_fails_at_once_with_the_aadsts_code_and_no_secret() {
    reset();
    let secret = "Wr0ng~Secret-Value.123";
    let vars = env(&[
        ("AZURE_POSTGRESQL_CONNECTIONSTRING", &libpq("user=aad_pgentra_sp")),
        ("AZURE_POSTGRESQL_CLIENTID", SP),
        ("AZURE_POSTGRESQL_TENANTID", TENANT),
        ("AZURE_POSTGRESQL_CLIENTSECRET", secret),
        ("AZURE_AUTHORITY_HOST", &h("AZURE_AUTHORITY_HOST")),
        ("PGENTRA_LOG", "trace"),
    ]);
    let t = Instant::now();
    let out = cli(&["token"], &vars);
    let (o, e) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(out.status.code(), Some(5), "{e}");
    assert!(t.elapsed() < Duration::from_secs(5));
    assert!(e.contains("AADSTS7000215"), "{e}");
    assert!(!o.contains(secret) && !e.contains(secret), "secret leaked");
    assert_eq!(stat("entra_requests"), 1, "a permanent failure is not retried");
    let c = conn(vars);
    let err = c.token().unwrap_err();
    assert_eq!(err.code(), Some("AADSTS7000215"));
    assert!(!format!("{err} {err:?} {c:?}").contains(secret));
}

#[test]
fn sixty_four_concurrent_callers_cause_one_identity_request() {
    reset();
    let c = conn(mi_env(&[("AZURE_POSTGRESQL_CONNECTIONSTRING", &libpq("")), ("AZURE_POSTGRESQL_CLIENTID", UAMI)]));
    let barrier = std::sync::Arc::new(std::sync::Barrier::new(64));
    let handles: Vec<_> = (0..64)
        .map(|_| {
            let (c, b) = (c.clone(), barrier.clone());
            std::thread::spawn(move || {
                b.wait();
                c.token().map(|t| t.expose().to_string())
            })
        })
        .collect();
    let tokens: std::collections::HashSet<String> = handles.into_iter().map(|h| h.join().unwrap().unwrap()).collect();
    assert_eq!(tokens.len(), 1);
    assert_eq!(stat("msi_requests"), 1);
    assert_eq!(c.token_requests(), 1);
}

#[test]
fn async_callers_share_the_cache_too() {
    reset();
    let c = conn(mi_env(&[("AZURE_POSTGRESQL_CONNECTIONSTRING", &libpq(""))]));
    let rt = pgentra::runtime::runtime().unwrap();
    let n = rt.block_on(async {
        let mut set = Vec::new();
        for _ in 0..32 {
            let c = c.clone();
            set.push(tokio_spawn(async move { c.token_async().await.map(|t| t.expose().len()) }));
        }
        let mut n = 0;
        for h in set {
            assert!(h.await.unwrap().unwrap() > 100);
            n += 1;
        }
        n
    });
    assert_eq!(n, 32);
    assert_eq!(stat("msi_requests"), 1);
}

fn tokio_spawn<F: std::future::Future + Send + 'static>(f: F) -> impl std::future::Future<Output = Result<F::Output, String>>
where
    F::Output: Send + 'static,
{
    let h = pgentra::runtime::runtime().unwrap().spawn(f);
    async move { h.await.map_err(|e| e.to_string()) }
}

#[test]
fn a_forked_child_gets_a_token() {
    let c = conn(mi_env(&[("AZURE_POSTGRESQL_CONNECTIONSTRING", &libpq(""))]));
    let parent_token = c.token().unwrap();
    reset();
    // gunicorn --preload: the parent made the connector (and its runtime threads), then forks.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0);
    if pid == 0 {
        // Child: a cached token is served, and a fresh acquisition works on a new runtime.
        let ok_cached = c.token().map(|t| t.expose() == parent_token.expose()).unwrap_or(false);
        c.invalidate();
        let ok_fresh = login(&c).map(|u| u == "pgentra-app").unwrap_or(false);
        unsafe { libc::_exit(if ok_cached && ok_fresh { 0 } else { 1 }) };
    }
    let mut status = 0;
    unsafe { libc::waitpid(pid, &mut status, 0) };
    assert!(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0, "child failed: status {status}");
    assert_eq!(stat("msi_requests"), 1, "the child made its own request");
    // The parent still works.
    assert_eq!(login(&c).unwrap(), "pgentra-app");
}

#[test]
fn rotation_gives_a_new_token_that_logs_in() {
    let c = conn(mi_env(&[("AZURE_POSTGRESQL_CONNECTIONSTRING", &libpq(""))]));
    let first = c.token().unwrap();
    control("POST", "/control/rotate", "");
    c.invalidate();
    let second = c.token().unwrap();
    assert_ne!(first.expose(), second.expose());
    assert_eq!(login(&c).unwrap(), "pgentra-app");
}

#[test]
fn identity_endpoint_without_header_is_a_configuration_error() {
    let vars = env(&[("AZURE_POSTGRESQL_CONNECTIONSTRING", &libpq("")), ("IDENTITY_ENDPOINT", &h("IDENTITY_ENDPOINT"))]);
    let e = Connector::with_env(Options::default(), &vars).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Config);
    assert!(e.message().contains("IDENTITY_HEADER"), "{e}");
}

#[test]
fn cli_token_dsn_env_exec_check_and_logs_never_show_the_token_where_they_should_not() {
    let vars = mi_env(&[("AZURE_POSTGRESQL_CONNECTIONSTRING", &libpq("")), ("PGENTRA_LOG", "trace")]);
    clear_shared_cache(); // the first command acquires the token itself
    let out = cli(&["token", "--json"], &vars);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let token = v["token"].as_str().unwrap().to_string();
    assert_eq!(v["credential"], "managed-identity");
    assert_eq!(v["claims"]["user"], "pgentra-app");
    assert!(!text(&out.stderr).contains(&token), "token in the debug log");
    assert!(text(&out.stderr).contains("token acquired"), "debug log is on: {}", text(&out.stderr));

    for f in ["libpq", "uri", "ado", "jdbc", "json"] {
        let out = cli(&["dsn", "--format", f], &vars);
        assert!(out.status.success(), "{f}: {}", text(&out.stderr));
        assert!(text(&out.stdout).contains("pgentra-app"), "{f}");
    }
    let out = cli(&["env"], &vars);
    assert!(text(&out.stdout).starts_with("export PGHOST='127.0.0.1'"));

    let out = cli(&["exec", "--", "psql", "-X", "-A", "-t", "-c", "select current_user"], &vars);
    assert_eq!(text(&out.stdout).trim(), "pgentra-app", "{}", text(&out.stderr));

    let out = cli(&["check", "--json"], &vars);
    assert!(out.status.success(), "{}", text(&out.stdout));
    let report = text(&out.stdout);
    assert!(!report.contains(&token));
    let v: serde_json::Value = serde_json::from_str(&report).unwrap();
    assert_eq!(v["connection"]["current_user"], "pgentra-app");
    assert_eq!(v["token"]["audience_ok"], true);
}

#[test]
fn check_diagnoses_wrong_audience_and_user_mismatch() {
    let vars = mi_env(&[("AZURE_POSTGRESQL_CONNECTIONSTRING", &libpq("")), ("PGENTRA_SCOPE", "https://management.azure.com/.default")]);
    let out = cli(&["check"], &vars);
    assert_eq!(out.status.code(), Some(5));
    assert!(text(&out.stdout).contains("audience"), "{}", text(&out.stdout));

    let vars = mi_env(&[("AZURE_POSTGRESQL_CONNECTIONSTRING", &libpq("user=aad_pgentra_sp"))]);
    let out = cli(&["check"], &vars);
    assert_eq!(out.status.code(), Some(8), "{}", text(&out.stdout));
    let s = text(&out.stdout);
    assert!(s.contains("differs from the token's identity 'pgentra-app'"), "{s}");
    assert!(s.contains("refused"), "{s}");
}

#[test]
fn grant_gives_a_role_the_existing_tables() {
    // The emulator created the role when it issued its first token.
    let c = conn(mi_env(&[("AZURE_POSTGRESQL_CONNECTIONSTRING", &libpq(""))]));
    login(&c).unwrap();
    let vars = env(&[
        ("PGHOST", &h("PGENTRA_PG_HOST")),
        ("PGPORT", &h("PGENTRA_PG_PORT")),
        ("PGDATABASE", "postgres"),
        ("PGUSER", "owner_user"),
        ("PGPASSWORD", "owner-pw"),
    ]);
    let out = cli(&["grant", "--role", "pgentra-app"], &vars);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("items"), "{}", text(&out.stdout));
    let p = c.params().unwrap();
    let n: i64 = pgentra::runtime::runtime()
        .unwrap()
        .block_on(async move {
            let client = pgentra::db::connect(&p).await?;
            let row = client.query_one("select count(*) from public.items", &[]).await.map_err(|e| pgentra::Error::new(ErrorKind::Database, e.to_string()))?;
            Ok::<i64, pgentra::Error>(row.get(0))
        })
        .unwrap();
    assert_eq!(n, 2);
}
