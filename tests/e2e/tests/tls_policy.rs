//! Secure by default (issue #13): identity requests never follow redirects; a token for an
//! Azure server name travels only over TLS that checks the server (chain and name); the policy
//! holds on the final parameters, whatever the caller merges in. Azure-style names resolve to
//! 127.0.0.1 inside the test namespace (tests/harness/netns.sh), and the harness's test CA
//! stands in for Azure's roots (SSL_CERT_FILE).

use pgentra::{Connector, ErrorKind, Format, Options, SslMode, TlsRule};
use pgentra_e2e::*;
use std::collections::HashMap;
use std::io::Read;
use std::net::TcpListener;
use std::process::Command;
use std::time::{Duration, Instant};

fn conn(vars: HashMap<String, String>) -> Connector {
    Connector::with_env(Options::default(), &vars).expect("connector")
}

/// A listener that records every byte anyone sends it (a redirect's target).
struct Capture {
    url: String,
    got: std::sync::Arc<std::sync::Mutex<Vec<u8>>>,
}

impl Capture {
    fn start() -> Capture {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://127.0.0.1:{}/stolen?x=1", l.local_addr().unwrap().port());
        let got = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let sink = got.clone();
        std::thread::spawn(move || {
            for mut s in l.incoming().flatten() {
                let _ = s.set_read_timeout(Some(Duration::from_millis(500)));
                let mut buf = [0u8; 4096];
                sink.lock().unwrap().extend_from_slice(b"<connection>");
                while let Ok(n) = s.read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                    sink.lock().unwrap().extend_from_slice(&buf[..n]);
                }
            }
        });
        Capture { url, got }
    }
    fn received(&self) -> String {
        std::thread::sleep(Duration::from_millis(200));
        String::from_utf8_lossy(&self.got.lock().unwrap()).into_owned()
    }
}

fn assert_redirect_refused(vars: HashMap<String, String>, status: u16, counter: &str) {
    reset();
    let cap = Capture::start();
    control("POST", "/control/faults", &format!(r#"[{{"status":{status},"redirect":"{}"}}]"#, cap.url));
    let before = stat(counter);
    let c = conn(vars);
    let e = c.token().unwrap_err();
    assert_eq!(e.kind(), ErrorKind::IdentityService, "{e}");
    assert!(e.message().contains(&format!("HTTP {status}")) && e.message().contains("host 127.0.0.1"), "{e}");
    assert!(!e.message().contains("stolen"), "the target's path is not echoed: {e}");
    assert_eq!(stat(counter), before + 1, "exactly one request, to the configured endpoint");
    assert_eq!(cap.received(), "", "nothing may reach the redirect's target");
    // The same connector recovers once the endpoint answers normally (at once after
    // invalidate(); a failure is otherwise the answer for a few seconds).
    c.invalidate();
    assert!(c.token().is_ok());
}

#[test]
fn app_service_redirects_are_not_followed() {
    let _forget = ForgetFailures; // this test makes identity requests fail
    for status in [307, 302, 308, 301] {
        assert_redirect_refused(mi_env(&[("AZURE_POSTGRESQL_CONNECTIONSTRING", &libpq(""))]), status, "msi_requests");
    }
}

#[test]
fn imds_redirects_are_not_followed() {
    let _forget = ForgetFailures; // this test makes identity requests fail
    let vars = env(&[
        ("AZURE_POSTGRESQL_CONNECTIONSTRING", &libpq("")),
        ("PGENTRA_IMDS_ENDPOINT", &h("PGENTRA_EMULATOR_HTTP")),
        ("PGENTRA_CREDENTIAL", "managed-identity"),
    ]);
    assert_redirect_refused(vars, 307, "imds_requests");
}

#[test]
fn entra_redirects_carry_no_secret_assertion_or_federated_token() {
    let _forget = ForgetFailures; // this test makes identity requests fail
    let authority = h("AZURE_AUTHORITY_HOST");
    let base = [("AZURE_POSTGRESQL_CONNECTIONSTRING", libpq("user=pgentra-sp")), ("AZURE_AUTHORITY_HOST", authority), ("AZURE_TENANT_ID", TENANT.to_string())];
    let with = |extra: &[(&str, &str)]| {
        let mut m: HashMap<String, String> = base.iter().map(|(k, v)| (k.to_string(), v.clone())).collect();
        for (k, v) in extra {
            m.insert(k.to_string(), v.to_string());
        }
        m
    };
    assert_redirect_refused(with(&[("AZURE_CLIENT_ID", SP), ("AZURE_CLIENT_SECRET", SP_SECRET)]), 307, "entra_requests");
    let cert = h("PGENTRA_TEST_CERT");
    assert_redirect_refused(with(&[("AZURE_CLIENT_ID", SP_CERT), ("AZURE_CLIENT_CERTIFICATE_PATH", &cert)]), 307, "entra_requests");
    let fed = h("PGENTRA_TEST_FEDERATED");
    assert_redirect_refused(with(&[("AZURE_CLIENT_ID", WI), ("AZURE_FEDERATED_TOKEN_FILE", &fed)]), 308, "entra_requests");
}

#[test]
fn an_azure_name_is_verified_and_logs_in() {
    let host = h("PGENTRA_TEST_AZURE_HOST");
    let vars = azure_mi_env(&host, &h("PGENTRA_PG_PORT"), "");
    let c = conn(vars.clone());
    let d = c.tls_decision().unwrap();
    assert_eq!((d.rule, d.sslmode, d.raised_from), (TlsRule::AzureVerified, SslMode::VerifyFull, Some(SslMode::Require)));
    assert_eq!(d.rootcert.as_deref(), Some(h("SSL_CERT_FILE").as_str()), "SSL_CERT_FILE first");
    // Our own connection (tokio-postgres over rustls) verifies the chain and the name.
    assert_eq!(login(&c).unwrap(), "pgentra-app");
    // Every output carries the raised mode.
    let libpq = c.connection_string(Format::Libpq).unwrap();
    assert!(libpq.contains("sslmode=verify-full") && libpq.contains(&format!("sslrootcert={}", h("SSL_CERT_FILE"))), "{libpq}");
    let uri = c.connection_string(Format::Uri).unwrap();
    assert!(uri.contains("sslmode=verify-full&sslrootcert="), "{uri}");
    let jdbc = c.connection_string(Format::Jdbc).unwrap();
    assert!(jdbc.contains("sslmode=verify-full&sslfactory=org.postgresql.ssl.DefaultJavaSSLFactory"), "{jdbc}");
    let ado = c.connection_string(Format::Ado).unwrap();
    assert!(ado.contains("Ssl Mode=VerifyFull;") && !ado.contains("Root Certificate"), "{ado}");
    let shell = c.connection_string(Format::Shell).unwrap();
    assert!(shell.contains("PGSSLMODE='verify-full'") && shell.contains("PGSSLROOTCERT="), "{shell}");
    let pdo = c.connection_string(Format::Pdo).unwrap();
    assert!(pdo.contains("sslmode=verify-full;sslrootcert="), "{pdo}");
    // libpq itself (psql through `pgentra exec`) logs in verified.
    let out = cli(&["exec", "--", "psql", "-Atc", "select current_user"], &vars);
    assert_eq!(text(&out.stdout).trim(), "pgentra-app", "{}", text(&out.stderr));
    // `check` says which rule applied and why.
    let out = cli(&["check"], &vars);
    let report = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{report}{}", text(&out.stderr));
    assert!(report.contains("rule azure-verified") && report.contains("raised to verify-full"), "{report}");
}

#[test]
fn the_explicit_opt_out_keeps_require() {
    let mut vars = azure_mi_env(&h("PGENTRA_TEST_AZURE_HOST"), &h("PGENTRA_PG_PORT"), "");
    vars.insert("PGENTRA_ALLOW_UNVERIFIED_TLS".into(), "1".into());
    let c = conn(vars.clone());
    let dsn = c.connection_string(Format::Libpq).unwrap();
    assert!(dsn.contains("sslmode=require") && !dsn.contains("sslrootcert"), "{dsn}");
    assert_eq!(login(&c).unwrap(), "pgentra-app");
    let out = cli(&["check"], &vars);
    assert!(text(&out.stdout).contains("rule azure-unverified-allowed"), "{}", text(&out.stdout));
    // Not an Azure name: libpq's meaning of the configured mode, as before.
    let c = conn(mi_env(&[("AZURE_POSTGRESQL_CONNECTIONSTRING", &libpq(""))]));
    assert!(c.connection_string(Format::Libpq).unwrap().contains("sslmode=require"));
    assert_eq!(c.tls_decision().unwrap().rule, TlsRule::NotAzure);
}

#[test]
fn a_server_whose_certificate_does_not_match_the_name_receives_no_token() {
    let fake = FakePg::start(true);
    let wrong = h("PGENTRA_TEST_WRONG_HOST");
    let vars = azure_mi_env(&wrong, &fake.port.to_string(), "");
    // pgentra's own connection.
    let c = conn(vars.clone());
    let e = login(&c).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::TlsPolicy, "{e}");
    // libpq, through `pgentra exec` and through the rendered connection string.
    let out = cli(&["exec", "--", "psql", "-Atc", "select 1"], &vars);
    assert_ne!(out.status.code(), Some(0));
    let dsn = c.connection_string(Format::Libpq).unwrap();
    let out = Command::new("psql").args([dsn.as_str(), "-Atc", "select 1"]).env_remove("PGSSLMODE").output().unwrap();
    assert_ne!(out.status.code(), Some(0));
    assert!(text(&out.stderr).contains(&wrong) || text(&out.stderr).contains("certificate"), "{}", text(&out.stderr));
    let ev = fake.events();
    assert!(ev.iter().filter(|e| *e == "connection").count() >= 3, "{ev:?}");
    assert!(!fake.got_password(), "no token may reach a server with the wrong name: {ev:?}");
    // The same fake under the name its certificate carries would get it: the check is the name.
    let right = FakePg::start(true);
    let c = conn(azure_mi_env(&h("PGENTRA_TEST_AZURE_HOST"), &right.port.to_string(), ""));
    let _ = login(&c);
    assert!(right.got_password(), "control: a matching certificate is accepted ({:?})", right.events());
}

#[test]
fn a_lower_sslmode_never_replaces_a_higher_one_on_any_path() {
    // A fake server that declines TLS and asks for a cleartext password.
    let fake = FakePg::start(false);
    let port = fake.port.to_string();
    let base = mi_env(&[("AZURE_POSTGRESQL_CONNECTIONSTRING", &format!("host=127.0.0.1 port={port} dbname=postgres sslmode=require"))]);
    let c = conn(base.clone());
    // The caller's own values go through the core's final check.
    for over in [
        vec![("sslmode".to_string(), Some("prefer".to_string()))],
        vec![("sslmode".to_string(), Some("disable".to_string()))],
        vec![("sslmode".to_string(), None)],
    ] {
        let p = c.params_with(&over).unwrap();
        assert_eq!(p.sslmode, Some(SslMode::Require), "{over:?}");
        let e = pgentra::runtime::runtime().unwrap().block_on(async move { pgentra::db::current_user(&p).await }).unwrap_err();
        assert!(matches!(e.kind(), ErrorKind::TlsPolicy | ErrorKind::Network), "{e}");
    }
    // An sslmode passed by code is never lowered by the environment: SSL=true is `require`.
    let mut vars = base.clone();
    vars.insert("AZURE_POSTGRESQL_SSL".into(), "true".into());
    let o = Options { sslmode: Some(SslMode::VerifyFull), ..Default::default() };
    let c2 = Connector::with_env(o, &vars).unwrap();
    assert_eq!(c2.config().params.sslmode, Some(SslMode::VerifyFull));
    // A connection string passed by code beats the environment's discrete variables.
    let mut vars = base.clone();
    vars.insert("AZURE_POSTGRESQL_HOST".into(), "env-host.example".into());
    let o = Options { connection_string: Some(format!("host=code-host.example port={port} sslmode=verify-full")), ..Default::default() };
    let c3 = Connector::with_env(o, &vars).unwrap();
    assert_eq!(c3.config().params.host.as_deref(), Some("code-host.example"));
    assert_eq!(c3.config().params.sslmode, Some(SslMode::VerifyFull));
    assert!(!fake.got_password(), "{:?}", fake.events());
}

#[test]
fn a_redirect_error_and_a_tls_refusal_contain_no_secret() {
    let _forget = ForgetFailures; // this test makes identity requests fail
    // The CLI with logs on: the redirect's error names the host only.
    reset();
    let cap = Capture::start();
    control("POST", "/control/faults", &format!(r#"[{{"status":307,"redirect":"{}"}}]"#, cap.url));
    let mut vars = mi_env(&[("AZURE_POSTGRESQL_CONNECTIONSTRING", &libpq(""))]);
    vars.insert("PGENTRA_LOG".into(), "trace".into());
    let start = Instant::now();
    let out = cli(&["token"], &vars);
    assert_eq!(out.status.code(), Some(5), "{}", text(&out.stderr));
    assert!(start.elapsed() < Duration::from_secs(10));
    let all = format!("{}{}", text(&out.stdout), text(&out.stderr));
    assert!(!all.contains(&h("IDENTITY_HEADER")), "the identity header leaked: {all}");
    assert_eq!(cap.received(), "");
}
