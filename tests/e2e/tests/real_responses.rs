//! What Azure's identity services really send, as the Azure SDKs' own test suites record it,
//! replayed by the emulator (issue #14, items 1 and 2).
//! - IMDS on a VM without the identity: `400 {"error":"invalid_request","error_description":
//!   "Identity not found"}`; Docker Desktop: `403` for the metadata address (azure-sdk-for-python
//!   azure/identity/_credentials/imds.py and its tests treat both as "unavailable").
//! - App Service's 2017-09-01 API: `expires_on` as a date, `"06/20/2019 02:57:58 +00:00"`
//!   (azure-sdk-for-js sdk/identity/identity/test/internal/node/managedIdentityCredential.spec.ts)
//!   or on Windows `"1/16/2020 5:24:12 AM +00:00"` (azure-sdk-for-python
//!   azure/identity/_credentials/app_service.py, `_parse_app_service_expires_on`).
//! - IMDS: every number as a string (`"expires_in": "86399"`, `"expires_on": "1567456848"`).

use pgentra::{Connector, CredentialKind, ErrorKind, Options};
use pgentra_e2e::*;
use std::time::{Duration, Instant};

fn conn(vars: std::collections::HashMap<String, String>) -> Connector {
    Connector::with_env(Options::default(), &vars).expect("connector")
}

fn fault_body(status: u16, body: &str) -> String {
    serde_json::json!([{ "status": status, "body": body }]).to_string()
}

#[test]
fn imds_saying_no_identity_here_lets_the_chain_reach_az() {
    let _forget = ForgetFailures; // this test makes identity requests fail
    let imds_400 = r#"{"error":"invalid_request","error_description":"Identity not found"}"#;
    let docker_403 = r#"{"error":"unreachable","error_description":"connecting to 169.254.169.254:80: connecting to 169.254.169.254:80: dial tcp 169.254.169.254:80: connectex: A socket operation was attempted to an unreachable network."}"#;
    for (status, body) in [(400, imds_400), (403, docker_403), (200, "<html>not a token</html>"), (200, r#"{"token_type":"Bearer"}"#)] {
        reset();
        control("POST", "/control/faults", &fault_body(status, body));
        let c = conn(env(&[("AZURE_POSTGRESQL_CONNECTIONSTRING", &libpq("")), ("PGENTRA_IMDS_ENDPOINT", &h("PGENTRA_EMULATOR_HTTP"))]));
        let t = Instant::now();
        assert_eq!(login(&c).unwrap_or_else(|e| panic!("{status} {body}: {e}")), "dev@contoso.com", "{status}");
        assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
        assert_eq!(c.token_info().unwrap().credential, CredentialKind::AzureCli);
        assert_eq!(stat("imds_requests"), 1, "one probe, not retried");
    }
    // With a managed identity chosen explicitly, the service's answer stays the error.
    reset();
    control("POST", "/control/faults", &fault_body(400, imds_400));
    let c = conn(env(&[
        ("AZURE_POSTGRESQL_CONNECTIONSTRING", &libpq("")),
        ("PGENTRA_IMDS_ENDPOINT", &h("PGENTRA_EMULATOR_HTTP")),
        ("PGENTRA_CREDENTIAL", "managed-identity"),
    ]));
    let e = c.token().unwrap_err();
    assert_eq!(e.kind(), ErrorKind::IdentityService, "{e}");
    assert!(e.message().contains("Identity not found"), "{e}");
}

#[test]
fn every_expires_on_form_the_services_send() {
    let _forget = ForgetFailures; // this test makes identity requests fail
    let now = pgentra::identity::now_unix();
    // App Service's older date forms (a date in the past is an expired token: the date must be
    // read as a date, and then refused as expired, not as "missing").
    for date in ["06/20/2019 02:57:58 +00:00", "1/16/2020 5:24:12 AM +00:00"] {
        reset();
        let body = serde_json::json!({"access_token": "a.b.c", "expires_on": date, "resource": "https://ossrdbms-aad.database.windows.net", "token_type": "Bearer"}).to_string();
        control("POST", "/control/faults", &fault_body(200, &body));
        let e = conn(mi_env(&[("AZURE_POSTGRESQL_CONNECTIONSTRING", &libpq(""))])).token().unwrap_err();
        assert!(e.message().contains("already expired"), "{date}: {e}");
    }
    // A future date in the same form is a usable token.
    let tok = control("GET", "/control/mint?identity=system&resource=https%3A%2F%2Fossrdbms-aad.database.windows.net", "");
    let access: serde_json::Value = serde_json::from_str(&tok).unwrap();
    let access = access["accessToken"].as_str().unwrap().to_string();
    for expires_on in ["12/31/2099 11:59:59 PM +00:00", "12/31/2099 23:59:59 +00:00"] {
        reset();
        let body = serde_json::json!({"access_token": access, "expires_on": expires_on, "token_type": "Bearer"}).to_string();
        control("POST", "/control/faults", &fault_body(200, &body));
        let c = conn(mi_env(&[("AZURE_POSTGRESQL_CONNECTIONSTRING", &libpq(""))]));
        let info = c.token_info().unwrap_or_else(|e| panic!("{expires_on}: {e}"));
        // Placed on this host's clock from the service's Date (one-second resolution).
        assert!((info.expires_on - 4_102_444_799).abs() <= 2, "{expires_on}: {}", info.expires_on);
    }
    // IMDS: numbers as strings; expires_in wins (relative: a wrong clock does not matter).
    reset();
    let body = serde_json::json!({"access_token": access, "expires_in": "86399", "expires_on": "1567456848", "ext_expires_in": "86399", "not_before": "1567370148", "resource": "https://ossrdbms-aad.database.windows.net/", "token_type": "Bearer"}).to_string();
    control("POST", "/control/faults", &fault_body(200, &body));
    let info = conn(mi_env(&[("AZURE_POSTGRESQL_CONNECTIONSTRING", &libpq(""))])).token_info().unwrap();
    assert!((info.expires_on - (now + 86399)).abs() < 30, "{}", info.expires_on);
    // Unparseable: named as such, with the field and the endpoint; never "missing".
    for (field, value) in [("expires_on", "soon"), ("expires_in", "an hour"), ("expires_on", "13/45/2020 99:00:00 +00:00")] {
        reset();
        let body = serde_json::json!({"access_token": "a.b.c", field: value}).to_string();
        control("POST", "/control/faults", &fault_body(200, &body));
        let e = conn(mi_env(&[("AZURE_POSTGRESQL_CONNECTIONSTRING", &libpq(""))])).token().unwrap_err();
        assert!(e.message().contains(field) && e.message().contains("cannot be parsed") && e.message().contains("App Service"), "{e}");
        assert!(!e.message().contains("without expires_on"), "{e}");
    }
    // Hostile numbers saturate instead of wrapping (a debug build would panic on overflow).
    for v in ["1e19", "-1e19", "9223372036854775807"] {
        reset();
        let body = format!(r#"{{"access_token":"a.b.c","expires_in":"{v}"}}"#);
        control("POST", "/control/faults", &fault_body(200, &body));
        let _ = conn(mi_env(&[("AZURE_POSTGRESQL_CONNECTIONSTRING", &libpq(""))])).token();
    }
}

/// A host clock ten minutes off the service's: the lifetime comes from the service's own clock
/// (`expires_in`, or `expires_on` against its `Date` header), never from ours (issue #14, item 3).
#[test]
fn a_host_clock_ten_minutes_off_changes_nothing() {
    let _forget = ForgetFailures; // this test makes identity requests fail
    let tok = control("GET", "/control/mint?identity=system&resource=https%3A%2F%2Fossrdbms-aad.database.windows.net", "");
    let access = serde_json::from_str::<serde_json::Value>(&tok).unwrap()["accessToken"].as_str().unwrap().to_string();
    let now = pgentra::identity::now_unix();
    for skew in [600i64, -600] {
        reset();
        // The service's clock is `skew` ahead of ours; its token lives 5 minutes by its clock.
        let service_now = now + skew;
        let body = serde_json::json!({"access_token": access, "expires_on": (service_now + 300).to_string(), "token_type": "Bearer"}).to_string();
        let fault = serde_json::json!([{ "status": 200, "body": body, "headers": {"Date": httpdate(service_now)} }]).to_string();
        control("POST", "/control/faults", &fault);
        let info = conn(mi_env(&[("AZURE_POSTGRESQL_CONNECTIONSTRING", &libpq(""))])).token_info().unwrap();
        let lifetime = info.expires_on - info.acquired_at;
        assert!((295..=302).contains(&lifetime), "skew {skew}: lifetime {lifetime} s, not the service's 300 s");
        assert!(info.refresh_at - info.acquired_at <= 151, "skew {skew}: refresh in {} s", info.refresh_at - info.acquired_at);
    }
}

#[test]
fn retry_after_as_an_http_date_is_honoured() {
    let _forget = ForgetFailures; // this test makes identity requests fail
    reset();
    let c = conn(mi_env(&[("AZURE_POSTGRESQL_CONNECTIONSTRING", &libpq("")), ("PGENTRA_TIMEOUT", "10")]));
    // A date two seconds ahead (HTTP dates have one-second resolution).
    let at = pgentra::identity::now_unix() + 2;
    let date = httpdate(at);
    control("POST", "/control/faults", &serde_json::json!([{ "status": 429, "retry_after_date": date }]).to_string());
    let t = Instant::now();
    c.token().unwrap();
    assert!(t.elapsed() >= Duration::from_millis(900), "waited {:?}", t.elapsed());
}

fn httpdate(unix: i64) -> String {
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
    let days = unix.div_euclid(86_400);
    let secs = unix.rem_euclid(86_400);
    // Civil from days (Howard Hinnant).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{}, {:02} {} {} {:02}:{:02}:{:02} GMT", DAYS[days.rem_euclid(7) as usize], d, MONTHS[(m - 1) as usize], y, secs / 3600, secs % 3600 / 60, secs % 60)
}

/// An `az` that hangs is killed when the deadline passes (issue #14, item 6), not left running.
#[test]
fn a_hanging_az_is_killed_at_the_deadline() {
    let _forget = ForgetFailures; // this test makes identity requests fail
    let pidfile = format!("{}/az.pid", h("PGENTRA_TEST_DIR"));
    let _ = std::fs::remove_file(&pidfile);
    std::env::set_var("PGENTRA_FAKE_AZ_SLEEP", "60");
    std::env::set_var("PGENTRA_FAKE_AZ_PIDFILE", &pidfile);
    let c = conn(env(&[("AZURE_POSTGRESQL_CONNECTIONSTRING", &libpq("")), ("PGENTRA_CREDENTIAL", "azure-cli"), ("PGENTRA_TIMEOUT", "1")]));
    let t = Instant::now();
    let e = c.token().unwrap_err();
    std::env::remove_var("PGENTRA_FAKE_AZ_SLEEP");
    std::env::remove_var("PGENTRA_FAKE_AZ_PIDFILE");
    assert!(t.elapsed() < Duration::from_secs(3), "{:?}: {e}", t.elapsed());
    let pid: i32 = std::fs::read_to_string(&pidfile).expect("the fake az ran").trim().parse().unwrap();
    let deadline = Instant::now() + Duration::from_secs(3);
    // SAFETY: signal 0 only checks whether the process exists.
    while unsafe { libc::kill(pid, 0) } == 0 {
        // A zombie (killed, not yet reaped) counts as gone.
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        if stat.is_empty() || stat.split_whitespace().nth(2) == Some("Z") {
            break;
        }
        assert!(Instant::now() < deadline, "az (pid {pid}) still runs after the deadline");
        std::thread::sleep(Duration::from_millis(50));
    }
}
