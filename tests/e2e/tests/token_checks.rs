//! The harness's PostgreSQL checks tokens as Azure does (issue #17, item 1): every unexpired
//! token the emulator signed for the role's identity, with the database's audience, logs in;
//! expired, wrong-audience, tampered, revoked and other identities' tokens are refused with
//! SQLSTATE 28P01. (PostgreSQL's `ldap` method asks the emulator; see tests/harness/pg.sh.)
//! Run under tests/harness/with-harness.sh.

use pgentra::conninfo::{ConnParams, SslMode};
use pgentra::Secret;
use pgentra_e2e::*;
use std::process::Command;
use std::time::Duration;

const PG_RESOURCE: &str = "https%3A%2F%2Fossrdbms-aad.database.windows.net";

fn mint(identity: &str, resource: &str, extra: &str) -> String {
    let body = control("GET", &format!("/control/mint?identity={identity}&resource={resource}{extra}"), "");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    v["accessToken"].as_str().unwrap().to_string()
}

/// Logs in as `user` with `password` over TLS (tokio-postgres): `current_user`, or the SQLSTATE.
fn login_as(user: &str, password: &str) -> Result<String, String> {
    let p = ConnParams {
        host: Some(h("PGENTRA_PG_HOST")),
        port: Some(h("PGENTRA_PG_PORT").parse().unwrap()),
        dbname: Some("postgres".into()),
        user: Some(user.into()),
        password: Some(Secret::new(password)),
        sslmode: Some(SslMode::Require),
        ..Default::default()
    };
    pgentra::runtime::runtime()
        .unwrap()
        .block_on(async move { pgentra::db::current_user(&p).await })
        .map_err(|e| e.code().map(str::to_string).unwrap_or_else(|| format!("no SQLSTATE: {e}")))
}

/// The same through libpq (psql): `current_user`, or psql's error text.
fn psql_as(user: &str, password: &str) -> Result<String, String> {
    let conninfo = format!("{} user={user}", libpq(""));
    let out = Command::new("psql")
        .args(["-X", "-A", "-t", "-w", &conninfo, "-c", "select current_user"])
        .env("PGPASSWORD", password)
        .output()
        .unwrap();
    if out.status.success() {
        Ok(text(&out.stdout).trim().to_string())
    } else {
        Err(text(&out.stderr))
    }
}

#[test]
fn two_tokens_of_one_identity_both_log_in() {
    let a = mint("system", PG_RESOURCE, "");
    let b = mint("system", PG_RESOURCE, "");
    assert_ne!(a, b, "/control/mint returns a new token on every call");
    assert_eq!(login_as("pgentra-app", &a).as_deref(), Ok("pgentra-app"));
    assert_eq!(login_as("pgentra-app", &b).as_deref(), Ok("pgentra-app"));
    // The first still works after the second was issued, and through libpq too.
    assert_eq!(psql_as("pgentra-app", &a).as_deref(), Ok("pgentra-app"));
    // Every identity with its own role.
    for (identity, role) in [("uami", "pgentra-uami"), ("sp", "aad_pgentra_sp"), ("cert", "aad_pgentra_cert"), ("wi", "aad_pgentra_wi"), ("dev", "dev@contoso.com")] {
        assert_eq!(login_as(role, &mint(identity, PG_RESOURCE, "")).as_deref(), Ok(role), "{identity}");
    }
}

#[test]
fn an_expired_token_is_refused() {
    let t = mint("system", PG_RESOURCE, "&lifetime=1");
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(login_as("pgentra-app", &t), Err("28P01".into()));
}

#[test]
fn a_token_for_another_audience_is_refused() {
    let t = mint("system", "https%3A%2F%2Fgraph.microsoft.com", "");
    assert_eq!(login_as("pgentra-app", &t), Err("28P01".into()));
    let t = mint("system", "https%3A%2F%2Fossrdbms-aad.database.usgovcloudapi.net", "");
    assert_eq!(login_as("pgentra-app", &t), Err("28P01".into()));
}

#[test]
fn a_tampered_token_is_refused() {
    let t = mint("system", PG_RESOURCE, "");
    let parts: Vec<&str> = t.split('.').collect();
    // Another identity's claims under this token's signature.
    let other = mint("uami", PG_RESOURCE, "");
    let forged = format!("{}.{}.{}", parts[0], other.split('.').nth(1).unwrap(), parts[2]);
    assert_eq!(login_as("pgentra-uami", &forged), Err("28P01".into()));
    // One character of the signature changed.
    let mut sig = parts[2].to_string().into_bytes();
    sig[5] = if sig[5] == b'A' { b'B' } else { b'A' };
    let flipped = format!("{}.{}.{}", parts[0], parts[1], String::from_utf8(sig).unwrap());
    assert_eq!(login_as("pgentra-app", &flipped), Err("28P01".into()));
    assert_eq!(login_as("pgentra-app", "not a token"), Err("28P01".into()));
    // The untouched token still works.
    assert_eq!(login_as("pgentra-app", &t).as_deref(), Ok("pgentra-app"));
}

#[test]
fn a_revoked_token_is_refused_and_others_are_not() {
    let a = mint("system", PG_RESOURCE, "");
    let b = mint("system", PG_RESOURCE, "");
    assert_eq!(login_as("pgentra-app", &a).as_deref(), Ok("pgentra-app"));
    let answer = control("POST", "/control/revoke", &a);
    assert!(answer.contains("\"revoked\":true"), "{answer}");
    assert_eq!(login_as("pgentra-app", &a), Err("28P01".into()));
    assert_eq!(login_as("pgentra-app", &b).as_deref(), Ok("pgentra-app"));
    // What libpq clients (psql, psycopg2, ruby-pg, PHP) see: only the message, no SQLSTATE.
    let e = psql_as("pgentra-app", &a).unwrap_err();
    assert!(e.contains("authentication failed for user \"pgentra-app\""), "{e}");
}

#[test]
fn one_identitys_token_cannot_log_in_as_another_identitys_role() {
    let app = mint("system", PG_RESOURCE, "");
    let uami = mint("uami", PG_RESOURCE, "");
    assert_eq!(login_as("pgentra-uami", &app), Err("28P01".into()));
    assert_eq!(login_as("pgentra-app", &uami), Err("28P01".into()));
    assert_eq!(login_as("dev@contoso.com", &app), Err("28P01".into()));
    // Nor as a password role, nor as a role that does not exist.
    assert_eq!(login_as("app_static", &app), Err("28P01".into()));
    assert_eq!(login_as("no_such_role", &app), Err("28P01".into()));
    // The password role keeps its password.
    assert_eq!(login_as("app_static", "static pw;'\"\\@/?#%").as_deref(), Ok("app_static"));
}

#[test]
fn a_rotation_refuses_every_earlier_token() {
    let before = mint("system", PG_RESOURCE, "");
    let uami_before = mint("uami", PG_RESOURCE, "");
    control("POST", "/control/rotate", "");
    assert_eq!(login_as("pgentra-app", &before), Err("28P01".into()));
    assert_eq!(login_as("pgentra-uami", &uami_before), Err("28P01".into()));
    assert_eq!(login_as("pgentra-app", &mint("system", PG_RESOURCE, "")).as_deref(), Ok("pgentra-app"));
}
