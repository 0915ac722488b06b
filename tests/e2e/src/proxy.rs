//! `pgentra proxy` under test: the release CLI started as a child on a free loopback port, and
//! psql through it. Shared by tests/proxy.rs and tests/proxy_recovery.rs.

use crate::*;
use pgentra::{ConnParams, SslMode};
use std::collections::HashMap;
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

pub static SEQ: AtomicUsize = AtomicUsize::new(0);

pub fn scratch_dir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("pgentra-proxy-{}-{}-{tag}", std::process::id(), SEQ.fetch_add(1, Ordering::SeqCst)));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

pub fn token_mode_vars() -> HashMap<String, String> {
    mi_env(&[("AZURE_POSTGRESQL_CONNECTIONSTRING", &libpq(""))])
}

/// The current token for the system-assigned identity (to check that no log shows it).
pub fn current_token() -> String {
    let out = cli(&["token"], &token_mode_vars());
    assert!(out.status.success(), "pgentra token failed: {}", text(&out.stderr));
    text(&out.stdout).trim().to_string()
}

pub struct Proxy {
    pub child: Child,
    pub port: u16,
    pub dir: PathBuf,
    pub log: PathBuf,
}

impl Proxy {
    pub fn start(extra: &[&str]) -> Proxy {
        Self::start_with(&token_mode_vars(), extra, true)
    }

    /// Start `pgentra proxy --listen 127.0.0.1:PORT EXTRA...` (no --listen when `tcp` is false)
    /// and wait until it accepts connections.
    pub fn start_with(vars: &HashMap<String, String>, extra: &[&str], tcp: bool) -> Proxy {
        let port = free_port();
        let dir = scratch_dir("proxy");
        let log = dir.join("proxy.log");
        let mut cmd = Command::new(cli_path());
        cmd.env_clear();
        for k in ["PATH", "SSL_CERT_FILE", "HOME"] {
            if let Ok(v) = std::env::var(k) {
                cmd.env(k, v);
            }
        }
        cmd.env("PGENTRA_IMDS_ENDPOINT", "http://127.0.0.1:9");
        cmd.envs(vars);
        cmd.arg("proxy");
        let listen = format!("127.0.0.1:{port}");
        if tcp {
            cmd.args(["--listen", &listen]);
        } else {
            cmd.args(["--port", &port.to_string()]);
        }
        cmd.args(extra);
        cmd.stdin(Stdio::null()).stdout(Stdio::null()).stderr(std::fs::File::create(&log).unwrap());
        let child = cmd.spawn().expect("start pgentra proxy");
        let mut p = Proxy { child, port, dir, log };
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(Some(st)) = p.child.try_wait() {
                panic!("the proxy exited ({st}) before listening: {}", p.log());
            }
            if p.log().contains("pgentra proxy: listening on") {
                break;
            }
            assert!(Instant::now() < deadline, "the proxy did not start: {}", p.log());
            std::thread::sleep(Duration::from_millis(50));
        }
        p
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn signal(&self, sig: i32) {
        unsafe { libc::kill(self.child.id() as i32, sig) };
    }

    /// Wait for the process to exit (at most `secs`).
    pub fn wait(&mut self, secs: u64) -> Option<ExitStatus> {
        let deadline = Instant::now() + Duration::from_secs(secs);
        while Instant::now() < deadline {
            if let Ok(Some(st)) = self.child.try_wait() {
                return Some(st);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }

    pub fn stop(&mut self) -> ExitStatus {
        self.signal(libc::SIGTERM);
        self.wait(40).expect("the proxy stops on SIGTERM")
    }

    pub fn assert_running(&mut self) {
        assert!(self.child.try_wait().unwrap().is_none(), "the proxy died: {}", self.log());
    }

    /// Parameters for tokio-postgres through the proxy: plaintext on loopback, no password.
    pub fn params(&self) -> ConnParams {
        ConnParams {
            host: Some("127.0.0.1".into()),
            port: Some(self.port),
            dbname: Some("postgres".into()),
            user: Some("whoever".into()),
            password: None,
            sslmode: Some(SslMode::Disable),
            extra: vec![],
            system_roots: false,
        }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

pub fn assert_log_has_no_secret(log: &str, secret: &str) {
    assert!(!secret.is_empty());
    assert!(!log.contains(secret), "the proxy's log contains a token or password");
}

/// psql with only the given libpq variables (no password file, no PGPASSWORD unless given).
pub fn psql(args: &[&str], vars: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new("psql");
    cmd.env_clear();
    cmd.env("PATH", std::env::var("PATH").unwrap());
    cmd.env("PGPASSFILE", "/dev/null");
    cmd.env("PGCONNECT_TIMEOUT", "15");
    cmd.envs(vars.iter().copied());
    cmd.args(["-X", "-A", "-t"]).args(args);
    cmd.output().expect("run psql")
}

pub fn psql_via(port: u16, host: &str, sql: &str, vars: &[(&str, &str)]) -> Output {
    let port = port.to_string();
    let mut v = vec![("PGSSLMODE", "prefer")];
    v.extend_from_slice(vars);
    psql(&["-h", host, "-p", &port, "-d", "postgres", "-c", sql], &v)
}

pub fn current_user_via(port: u16, host: &str) -> String {
    let out = psql_via(port, host, "select current_user", &[]);
    assert!(out.status.success(), "psql through the proxy failed: {}", text(&out.stderr));
    text(&out.stdout).trim().to_string()
}
