//! The emulator as a tool (issue 19, item 4): `--list`, `--background` / `--stop`, an
//! `emulator.env` that is all a client needs, and a TLS trust failure toward an identity endpoint
//! reported as a network error that names the CA to trust. Run under tests/harness/with-harness.sh.

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::{Command, Output};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use pgentra_e2e::*;

fn under_harness() -> bool {
    let ok = std::env::var("IDENTITY_ENDPOINT").is_ok();
    if !ok {
        eprintln!("SKIP: needs tests/harness/with-harness.sh");
    }
    ok
}

fn emulator_path() -> String {
    if let Ok(p) = std::env::var("PGENTRA_EMULATOR_BIN") {
        if !p.is_empty() {
            return p;
        }
    }
    concat!(env!("CARGO_MANIFEST_DIR"), "/../../target/release/pgentra-emulator").to_string()
}

fn emulator(args: &[&str]) -> Output {
    Command::new(emulator_path()).args(args).output().expect("run pgentra-emulator")
}

fn readme() -> String {
    std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md")).unwrap()
}

/// `KEY=value` lines (values possibly single-quoted) as a map.
fn read_env(path: &str) -> HashMap<String, String> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    text.lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.trim_matches('\'').to_string()))
        .collect()
}

/// A service principal's variables, taken from an emulator's env file.
fn sp_vars(e: &HashMap<String, String>) -> HashMap<String, String> {
    let mut v = env(&[("AZURE_POSTGRESQL_CONNECTIONSTRING", &libpq(""))]);
    for (to, from) in [
        ("AZURE_CLIENT_ID", "PGENTRA_EMULATOR_SP_CLIENT_ID"),
        ("AZURE_CLIENT_SECRET", "PGENTRA_EMULATOR_SP_CLIENT_SECRET"),
        ("AZURE_TENANT_ID", "PGENTRA_EMULATOR_TENANT_ID"),
        ("AZURE_AUTHORITY_HOST", "AZURE_AUTHORITY_HOST"),
    ] {
        v.insert(to.into(), e.get(from).unwrap_or_else(|| panic!("emulator.env has no {from}")).clone());
    }
    v
}

#[test]
fn list_names_every_identity_client_id_secret_and_role_and_so_does_the_readme() {
    let out = emulator(&["--list"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let list = text(&out.stdout);
    let readme = readme();
    for (key, id, role) in [
        ("system", "a0000000-0000-0000-0000-000000000001", "pgentra-app"),
        ("uami", UAMI, "pgentra-uami"),
        ("sp", SP, "aad_pgentra_sp"),
        ("cert", SP_CERT, "aad_pgentra_cert"),
        ("wi", WI, "aad_pgentra_wi"),
        ("dev", "04b07795-8ddb-461a-bbee-02f9e1bf7b46", "dev@contoso.com"),
    ] {
        let line = list.lines().find(|l| l.starts_with(&format!("{key} "))).unwrap_or_else(|| panic!("no {key}:\n{list}"));
        assert!(line.contains(id) && line.contains(role), "{line}");
        assert!(readme.contains(&format!("| `{key}` | `{id}` |")) && readme.contains(&format!("`{role}`")), "README lacks {key}");
    }
    assert!(list.contains(&format!("AZURE_CLIENT_SECRET={SP_SECRET}")) && list.contains(TENANT), "{list}");
    assert!(readme.contains(SP_SECRET) && readme.contains(TENANT));
    // The secret follows --secret.
    let out = emulator(&["--list", "--secret", "other-secret"]);
    assert!(text(&out.stdout).contains("AZURE_CLIENT_SECRET=other-secret"));
}

struct StopOnDrop(String);
impl Drop for StopOnDrop {
    fn drop(&mut self) {
        let _ = emulator(&["--stop", "--state-dir", &self.0]);
    }
}

#[test]
fn background_returns_once_listening_its_env_file_is_enough_and_stop_ends_it() {
    if !under_harness() {
        return;
    }
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().subsec_nanos();
    let dir = PathBuf::from(h("PGENTRA_TEST_DIR")).join(format!("bg-emu-{nanos}"));
    let d = dir.display().to_string();
    let start = Instant::now();
    let out = emulator(&["--background", "--state-dir", &d]);
    // Stops it even when an assertion below fails.
    let _guard = StopOnDrop(d.clone());
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(start.elapsed() < Duration::from_secs(30));
    let env_path = text(&out.stdout).trim().to_string();
    assert_eq!(env_path, format!("{d}/emulator.env"));
    assert!(text(&out.stderr).contains("--stop --state-dir"), "{}", text(&out.stderr));
    let pid: i32 = std::fs::read_to_string(dir.join("emulator.pid")).unwrap().trim().parse().unwrap();
    // A second one in the same folder is refused.
    let again = emulator(&["--background", "--state-dir", &d]);
    assert_eq!(again.status.code(), Some(1));
    assert!(text(&again.stderr).contains("already runs"), "{}", text(&again.stderr));

    // The env file names its CA as SSL_CERT_FILE; with it, its service principal gets a token.
    let e = read_env(&env_path);
    assert_eq!(e["SSL_CERT_FILE"], format!("{d}/ca.pem"));
    assert_eq!(e["PGENTRA_EMULATOR_CA"], e["SSL_CERT_FILE"]);
    let mut vars = sp_vars(&e);
    vars.insert("SSL_CERT_FILE".into(), e["SSL_CERT_FILE"].clone());
    // The shared token cache is keyed by identity, not by emulator: empty it before each call,
    // so that every token here comes from this emulator.
    clear_shared_cache();
    let out = cli(&["token", "--json"], &vars);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let claims: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(claims["claims"]["appid"], SP, "{claims}");
    // Its managed identity too, from the same file.
    let mut mi = env(&[("AZURE_POSTGRESQL_CONNECTIONSTRING", &libpq(""))]);
    mi.insert("IDENTITY_ENDPOINT".into(), e["IDENTITY_ENDPOINT"].clone());
    mi.insert("IDENTITY_HEADER".into(), e["IDENTITY_HEADER"].clone());
    clear_shared_cache();
    let out = cli(&["token", "--json"], &mi);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let claims: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(claims["claims"]["user"], "pgentra-app", "{claims}");

    // Without its CA (the harness's bundle does not hold this run's): a network error (exit 6)
    // that names the CA to trust, never retried, and without the secret.
    let mut untrusted = sp_vars(&e);
    untrusted.insert("PGENTRA_EMULATOR_CA".into(), e["PGENTRA_EMULATOR_CA"].clone());
    clear_shared_cache();
    let out = cli(&["token"], &untrusted);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(6), "{err}");
    assert!(err.contains("not trusted") && err.contains(&format!("{d}/ca.pem")) && err.contains("SSL_CERT_FILE"), "{err}");
    assert!(!err.contains("TLS policy") && !err.contains(&e["PGENTRA_EMULATOR_SP_CLIENT_SECRET"]), "{err}");

    let out = emulator(&["--stop", "--state-dir", &d]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(!dir.join("emulator.pid").exists() && !dir.join("emulator.env").exists());
    // SAFETY: signal 0 only checks whether the pid exists.
    let alive = unsafe { libc::kill(pid, 0) } == 0 && std::fs::read(format!("/proc/{pid}/cmdline")).map(|c| !c.is_empty()).unwrap_or(false);
    assert!(!alive, "pid {pid} still runs");
    let out = emulator(&["--stop", "--state-dir", &d]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("no emulator runs"), "{}", text(&out.stderr));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn an_untrusted_entra_endpoint_is_a_network_error_naming_the_root_to_trust() {
    if !under_harness() {
        return;
    }
    // SSL_CERT_FILE holds only the database's CA: the harness emulator's Entra endpoint is not
    // trusted. Without PGENTRA_EMULATOR_CA the advice names Azure's roots.
    let (host, roots) = (h("AZURE_AUTHORITY_HOST"), h("PGENTRA_PG_CA"));
    let cs = libpq("");
    let vars = env(&[
        ("AZURE_POSTGRESQL_CONNECTIONSTRING", &cs),
        ("AZURE_CLIENT_ID", SP),
        ("AZURE_CLIENT_SECRET", SP_SECRET),
        ("AZURE_TENANT_ID", TENANT),
        ("AZURE_AUTHORITY_HOST", &host),
        ("SSL_CERT_FILE", &roots),
    ]);
    reset();
    let start = Instant::now();
    let out = cli(&["token"], &vars);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(6), "{err}");
    assert!(start.elapsed() < Duration::from_secs(10), "not retried: {:?}", start.elapsed());
    assert!(err.contains("127.0.0.1") && err.contains("not trusted") && err.contains("DigiCert Global Root G2"), "{err}");
    assert!(err.contains(&h("PGENTRA_PG_CA")), "names the bundle in use: {err}");
    assert!(!err.contains(SP_SECRET), "{err}");
}
