//! Helpers for the end-to-end tests: harness variables, the emulator's control endpoint, the CLI.

pub mod proxy;

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, Output};

pub const TENANT: &str = "72f988bf-86f1-41af-91ab-2d7cd011db47";
pub const UAMI: &str = "11111111-1111-1111-1111-111111111111";
pub const SP: &str = "22222222-2222-2222-2222-222222222222";
pub const SP_CERT: &str = "33333333-3333-3333-3333-333333333333";
pub const WI: &str = "44444444-4444-4444-4444-444444444444";
pub const SP_SECRET: &str = "emulator-secret";

/// A harness variable; the tests must run under tests/harness/with-harness.sh.
pub fn h(key: &str) -> String {
    std::env::var(key).unwrap_or_else(|_| {
        panic!("{key} is not set: run these tests with tests/harness/with-harness.sh (make test)")
    })
}

pub fn libpq(extra: &str) -> String {
    format!("host={} port={} dbname=postgres sslmode=require {extra}", h("PGENTRA_PG_HOST"), h("PGENTRA_PG_PORT"))
}

/// Variables for a managed identity on App Service, plus `pairs`.
pub fn mi_env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    let mut m = HashMap::new();
    m.insert("IDENTITY_ENDPOINT".to_string(), h("IDENTITY_ENDPOINT"));
    m.insert("IDENTITY_HEADER".to_string(), h("IDENTITY_HEADER"));
    for (k, v) in pairs {
        m.insert(k.to_string(), v.to_string());
    }
    m
}

pub fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

/// One HTTP/1.1 request to the emulator's control endpoint; returns the body.
pub fn control(method: &str, path: &str, body: &str) -> String {
    let base = h("PGENTRA_EMULATOR_HTTP");
    let hostport = base.trim_start_matches("http://").trim_end_matches('/');
    let mut s = TcpStream::connect(hostport).expect("emulator reachable");
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {hostport}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    let (head, rest) = out.split_once("\r\n\r\n").unwrap_or((&out, ""));
    assert!(head.starts_with("HTTP/1.1 2"), "control {path}: {head}");
    if head.to_ascii_lowercase().contains("transfer-encoding: chunked") {
        // De-chunk.
        let mut body = String::new();
        let mut r = rest;
        loop {
            let (size, after) = r.split_once("\r\n").unwrap();
            let n = usize::from_str_radix(size.trim(), 16).unwrap();
            if n == 0 {
                break;
            }
            body.push_str(&after[..n]);
            r = &after[n + 2..];
        }
        return body;
    }
    rest.to_string()
}

pub fn stats() -> serde_json::Value {
    serde_json::from_str(&control("GET", "/control/stats", "")).unwrap()
}

pub fn stat(key: &str) -> u64 {
    stats()[key].as_u64().unwrap_or_else(|| panic!("no {key} in stats"))
}

/// Zero the emulator's counters, drop its queued faults, and empty the harness's shared token
/// cache folder: a test that counts identity requests starts from no shared entry.
pub fn reset() {
    control("POST", "/control/reset", "");
    clear_shared_cache();
}

/// Empties the harness's shared token cache folder when dropped (at the end of a test, even one
/// that panics). For tests that make identity requests fail: the shared cache remembers a
/// failure for every process of the user (3 s, or the service's Retry-After up to a minute), and
/// the tests that follow must not meet it.
pub struct ForgetFailures;

impl Drop for ForgetFailures {
    fn drop(&mut self) {
        clear_shared_cache();
    }
}

/// Remove the entries of the harness's shared token cache folder (`PGENTRA_CACHE_DIR`).
pub fn clear_shared_cache() {
    let Ok(dir) = std::env::var("PGENTRA_CACHE_DIR") else { return };
    let Ok(entries) = std::fs::read_dir(&dir) else { return };
    for e in entries.flatten() {
        let name = e.file_name();
        if name.to_string_lossy().ends_with(".tok") {
            let _ = std::fs::remove_file(e.path());
        }
    }
}

/// Log in with the connector's parameters and return `current_user`.
pub fn login(c: &pgentra::Connector) -> Result<String, pgentra::Error> {
    let p = c.params()?;
    pgentra::runtime::runtime()?.block_on(async move { pgentra::db::current_user(&p).await })
}

/// The CLI binary built by `make build` (or `PGENTRA_CLI_BIN`, for a build elsewhere).
pub fn cli_path() -> String {
    if let Ok(p) = std::env::var("PGENTRA_CLI_BIN") {
        if !p.is_empty() {
            return p;
        }
    }
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../../target/release/pgentra");
    std::fs::canonicalize(root).map(|p| p.display().to_string()).unwrap_or_else(|_| root.to_string())
}

/// Run the CLI with exactly these variables (plus PATH and SSL_CERT_FILE).
pub fn cli(args: &[&str], vars: &HashMap<String, String>) -> Output {
    let mut cmd = Command::new(cli_path());
    cmd.env_clear();
    // The harness's private token-cache folder: never the user's own, where an earlier run's
    // token could be served.
    for k in ["PATH", "SSL_CERT_FILE", "PGENTRA_EMULATOR_HTTP", "HOME", "PGENTRA_CACHE_DIR", "PGENTRA_SHARED_CACHE"] {
        if let Ok(v) = std::env::var(k) {
            cmd.env(k, v);
        }
    }
    // Never let a test probe the real metadata address (the namespace has no route to it either).
    cmd.env("PGENTRA_IMDS_ENDPOINT", "http://127.0.0.1:9");
    cmd.envs(vars).args(args);
    cmd.output().expect("run pgentra")
}

pub fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// A fake PostgreSQL server on 127.0.0.1 that records whether a client sent it a password.
/// With `tls` it accepts TLS with the harness's server certificate (which names localhost,
/// 127.0.0.1 and `PGENTRA_TEST_AZURE_HOST`, never `PGENTRA_TEST_WRONG_HOST`); without, it
/// declines TLS. Either way it then asks for a cleartext password, as Azure's servers do.
pub struct FakePg {
    pub port: u16,
    received: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl FakePg {
    pub fn start(tls: bool) -> FakePg {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().unwrap().port();
        let received = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let log = received.clone();
        let config = tls.then(|| std::sync::Arc::new(server_tls_config()));
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let log = log.clone();
                let config = config.clone();
                std::thread::spawn(move || {
                    let _ = stream.set_read_timeout(Some(std::time::Duration::from_secs(10)));
                    let _ = fake_session(stream, config, &log);
                });
            }
        });
        FakePg { port, received }
    }

    /// What the fake server saw: "connection", "tls", "startup", "password".
    pub fn events(&self) -> Vec<String> {
        self.received.lock().unwrap().clone()
    }

    pub fn got_password(&self) -> bool {
        self.events().iter().any(|e| e == "password")
    }
}

fn server_tls_config() -> rustls::ServerConfig {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let dir = format!("{}/pg", h("PGENTRA_TEST_DIR"));
    let certs: Vec<CertificateDer<'static>> =
        CertificateDer::pem_file_iter(format!("{dir}/server.crt")).unwrap().map(|c| c.unwrap()).collect();
    let key = PrivateKeyDer::from_pem_file(format!("{dir}/server.key")).unwrap();
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .unwrap()
}

fn read_msg(r: &mut dyn Read, tagged: bool) -> std::io::Result<(u8, Vec<u8>)> {
    let mut tag = [0u8; 1];
    if tagged {
        r.read_exact(&mut tag)?;
    }
    let mut len = [0u8; 4];
    r.read_exact(&mut len)?;
    let n = u32::from_be_bytes(len).saturating_sub(4).min(1 << 20) as usize;
    let mut body = vec![0u8; n];
    r.read_exact(&mut body)?;
    Ok((tag[0], body))
}

fn fake_session(
    mut tcp: TcpStream,
    tls: Option<std::sync::Arc<rustls::ServerConfig>>,
    log: &std::sync::Mutex<Vec<String>>,
) -> std::io::Result<()> {
    let note = |e: &str| log.lock().unwrap().push(e.to_string());
    note("connection");
    let (_, first) = read_msg(&mut tcp, false)?;
    let is_ssl_request = first.len() == 4 && u32::from_be_bytes([first[0], first[1], first[2], first[3]]) == 80877103;
    let mut stream: Box<dyn ReadWrite> = if is_ssl_request {
        match tls {
            Some(cfg) => {
                tcp.write_all(b"S")?;
                let conn = rustls::ServerConnection::new(cfg).map_err(std::io::Error::other)?;
                let mut s = rustls::StreamOwned::new(conn, tcp);
                while s.conn.is_handshaking() {
                    s.conn.complete_io(&mut s.sock)?;
                }
                note("tls");
                Box::new(s)
            }
            None => {
                tcp.write_all(b"N")?;
                Box::new(tcp)
            }
        }
    } else {
        Box::new(tcp)
    };
    if is_ssl_request {
        read_msg(&mut stream, false)?;
    }
    note("startup");
    // AuthenticationCleartextPassword.
    stream.write_all(&[b'R', 0, 0, 0, 8, 0, 0, 0, 3])?;
    stream.flush()?;
    let (tag, _) = read_msg(&mut stream, true)?;
    if tag == b'p' {
        note("password");
    }
    Ok(())
}

trait ReadWrite: Read + Write {}
impl<T: Read + Write> ReadWrite for T {}

/// Variables for a managed identity reaching `host:port` by an Azure-style name.
pub fn azure_mi_env(host: &str, port: &str, extra: &str) -> HashMap<String, String> {
    mi_env(&[("AZURE_POSTGRESQL_CONNECTIONSTRING", &format!("host={host} port={port} dbname=postgres sslmode=require {extra}"))])
}
