//! `pgentra proxy` after the server refuses a token: the core's `connect_failed` decides (the
//! SQLSTATE only), so a revoked cached token costs exactly one identity request and the session
//! still logs in, and a role that does not exist does not make every session fetch a new token.
//! Run under tests/harness/with-harness.sh with one test thread (shared emulator counters).

use pgentra_e2e::proxy::*;
use pgentra_e2e::*;

const PG_RESOURCE: &str = "https%3A%2F%2Fossrdbms-aad.database.windows.net";

/// The token the emulator's endpoints hand out now for the system-assigned identity (the one
/// the proxy has cached after its first session).
fn handed_out() -> String {
    let answer = control("GET", &format!("/control/current?identity=system&resource={PG_RESOURCE}"), "");
    // (The answer holds a token: a failure message never quotes it.)
    let v: serde_json::Value = serde_json::from_str(&answer).unwrap_or_else(|e| panic!("/control/current: not JSON ({e})"));
    v["accessToken"].as_str().unwrap_or_else(|| panic!("/control/current: no accessToken")).to_string()
}

#[test]
fn a_revoked_cached_token_costs_exactly_one_request_and_the_session_logs_in() {
    let mut p = Proxy::start(&[]);
    assert_eq!(current_user_via(p.port, "127.0.0.1"), "pgentra-app");
    let cached = handed_out();
    let answer = control("POST", "/control/revoke", &cached);
    assert!(answer.contains("\"revoked\":true"), "{answer}");
    let before = stat("msi_requests");
    assert_eq!(current_user_via(p.port, "127.0.0.1"), "pgentra-app");
    assert_eq!(stat("msi_requests"), before + 1, "one identity request for the fresh token");
    assert_ne!(handed_out(), cached);
    for _ in 0..3 {
        assert_eq!(current_user_via(p.port, "127.0.0.1"), "pgentra-app");
    }
    assert_eq!(stat("msi_requests"), before + 1, "then the new token is cached");
    assert!(p.stop().success());
    let log = p.log();
    assert!(log.contains("token_retry=true"), "{log}");
    assert!(!log.contains(&cached), "the proxy's log contains the refused token");
}

#[test]
fn ten_sessions_as_a_role_that_does_not_exist_make_at_most_two_identity_requests() {
    let vars = mi_env(&[("AZURE_POSTGRESQL_CONNECTIONSTRING", &libpq("user=no_such_role"))]);
    let mut p = Proxy::start_with(&vars, &[], true);
    let before = stat("msi_requests");
    for i in 0..10 {
        let out = psql_via(p.port, "127.0.0.1", "select 1", &[]);
        assert!(!out.status.success(), "session {i} logged in as a role that does not exist");
        let err = text(&out.stderr);
        assert!(err.contains("no_such_role"), "session {i}: the server's refusal is relayed: {err}");
    }
    let made = stat("msi_requests") - before;
    assert!((1..=2).contains(&made), "{made} identity requests for 10 refused sessions");
    assert!(p.stop().success());
    // Once the core keeps the token (refused again right after a refusal), a session does not
    // log in a second time with the same token: at most one session retried.
    let retries = p.log().matches("token_retry=true").count();
    assert!(retries <= 1, "{retries} sessions retried the login: {}", p.log());
}
