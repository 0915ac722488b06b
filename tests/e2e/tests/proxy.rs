//! `pgentra proxy` and `pgentra pgpass` end to end, against the private PostgreSQL (TLS,
//! `password` auth) and the identity emulator. Run under tests/harness/with-harness.sh with one
//! test thread (the tests read the emulator's shared counters). The proxy is the release CLI
//! (`cargo build --release -p pgentra-cli`), started as a child on a free loopback port.

use pgentra_e2e::proxy::*;
use pgentra_e2e::*;
use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

/// pgentra's runtime (tokio is not a direct dependency of this crate).
macro_rules! rt {
    () => {
        pgentra::runtime::runtime().unwrap()
    };
}

#[test]
fn psql_through_the_proxy_logs_in_as_the_identity_without_a_password() {
    let token = current_token();
    let mut p = Proxy::start(&[]);
    assert_eq!(current_user_via(p.port, "127.0.0.1"), "pgentra-app");
    // Plaintext without an SSLRequest works too; startup parameters pass through.
    let out = psql_via(p.port, "127.0.0.1", "select current_user || ' ' || current_setting('application_name')", &[("PGSSLMODE", "disable"), ("PGAPPNAME", "proxy-e2e")]);
    assert_eq!(text(&out.stdout).trim(), "pgentra-app proxy-e2e", "{}", text(&out.stderr));
    // sslmode=require cannot be met by the proxy (it declines TLS on loopback): a clear failure.
    let out = psql_via(p.port, "127.0.0.1", "select 1", &[("PGSSLMODE", "require")]);
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("SSL"), "{}", text(&out.stderr));
    p.assert_running();
    let st = p.stop();
    assert!(st.success(), "{st}");
    let log = p.log();
    assert!(log.contains("user=pgentra-app"), "{log}");
    assert!(log.contains("database=postgres"), "{log}");
    assert!(log.contains("application_name=proxy-e2e"), "{log}");
    assert!(log.contains("outcome=ok"), "{log}");
    assert!(log.contains("bytes_from_client="), "{log}");
    assert!(log.contains("pgentra proxy: stopped"), "{log}");
    assert_log_has_no_secret(&log, &token);
}

#[test]
fn unix_socket_mode_works_like_postgresql() {
    let sock = scratch_dir("sock");
    let dir = sock.display().to_string();
    let mut p = Proxy::start(&["--unix-socket", &dir]);
    let path = sock.join(format!(".s.PGSQL.{}", p.port));
    let mode = std::fs::metadata(&path).expect("socket file").permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    assert_eq!(current_user_via(p.port, &dir), "pgentra-app");
    assert_eq!(current_user_via(p.port, "127.0.0.1"), "pgentra-app");
    assert!(p.stop().success());
    assert!(!path.exists(), "the socket is removed at shutdown");
    assert!(p.log().contains("client=\"unix:") || p.log().contains("client=unix:"), "{}", p.log());

    // Socket only, with --port.
    let mut p = Proxy::start_with(&token_mode_vars(), &["--unix-socket", &dir], false);
    assert_eq!(current_user_via(p.port, &dir), "pgentra-app");
    assert!(TcpStream::connect(("127.0.0.1", p.port)).is_err(), "no TCP listener in socket-only mode");
    assert!(p.stop().success());
    let _ = std::fs::remove_dir_all(&sock);
}

#[test]
fn a_hundred_concurrent_sessions_all_succeed() {
    let p = Proxy::start(&[]);
    // Warm up, then count identity requests: the sessions share the proxy's cached token.
    assert_eq!(current_user_via(p.port, "127.0.0.1"), "pgentra-app");
    let before = stat("msi_requests");
    let started = Instant::now();
    let handles: Vec<_> = (0..100)
        .map(|i| {
            let params = p.params();
            rt!().spawn(async move {
                let client = pgentra::db::connect(&params).await.map_err(|e| format!("session {i}: {e}"))?;
                let row = client
                    .query_one("select current_user::text, pg_sleep(0.5)::text, $1::int4", &[&(i as i32)])
                    .await
                    .map_err(|e| format!("session {i}: {e}"))?;
                let (user, n): (String, i32) = (row.get(0), row.get(2));
                if user != "pgentra-app" || n != i as i32 {
                    return Err(format!("session {i}: got {user} {n}"));
                }
                Ok::<(), String>(())
            })
        })
        .collect();
    let results: Vec<Result<(), String>> = rt!().block_on(async move {
        let mut out = Vec::new();
        for h in handles {
            out.push(h.await.unwrap_or_else(|e| Err(e.to_string())));
        }
        out
    });
    let failures: Vec<&String> = results.iter().filter_map(|r| r.as_ref().err()).collect();
    assert!(failures.is_empty(), "{} of 100 failed: {:?}", failures.len(), &failures[..failures.len().min(5)]);
    let elapsed = started.elapsed();
    assert!(elapsed < Duration::from_secs(60), "100 sessions took {elapsed:?}");
    assert_eq!(stat("msi_requests"), before, "the sessions used the cached token");
    eprintln!("100 concurrent sessions through the proxy: {elapsed:?}");
}

#[test]
fn a_cancel_request_stops_a_long_query() {
    let mut p = Proxy::start(&[]);
    let params = p.params();
    let client = rt!().block_on(pgentra::db::connect(&params)).unwrap();
    let cancel = client.cancel_token();
    let started = Instant::now();
    let query = rt!().spawn(async move { client.simple_query("select pg_sleep(30)").await.map(|_| ()) });
    std::thread::sleep(Duration::from_millis(1000));
    rt!().block_on(cancel.cancel_query(tokio_postgres::NoTls)).expect("cancel request sent");
    let result = rt!().block_on(query).unwrap();
    let elapsed = started.elapsed();
    let err = result.expect_err("the query was cancelled");
    assert_eq!(err.code(), Some(&tokio_postgres::error::SqlState::QUERY_CANCELED), "{err}");
    assert!(elapsed < Duration::from_secs(10), "cancel took {elapsed:?}");
    p.assert_running();
    assert!(p.stop().success());
    let log = p.log();
    assert!(log.contains("kind=cancel"), "{log}");
    assert!(log.contains("outcome=cancel-forwarded"), "{log}");
}

#[test]
fn sessions_after_a_forced_rotation_work() {
    let mut p = Proxy::start(&[]);
    assert_eq!(current_user_via(p.port, "127.0.0.1"), "pgentra-app");
    // Rotate: the proxy's cached token is refused, dropped and replaced once.
    control("POST", "/control/rotate", "");
    let before = stat("msi_requests");
    assert_eq!(current_user_via(p.port, "127.0.0.1"), "pgentra-app");
    assert_eq!(stat("msi_requests"), before + 1, "one identity request for the fresh token");
    assert_eq!(current_user_via(p.port, "127.0.0.1"), "pgentra-app");
    assert_eq!(stat("msi_requests"), before + 1, "then the new token is cached");
    assert!(p.stop().success());
    let log = p.log();
    assert!(log.contains("token_retry=true"), "{log}");
    assert_log_has_no_secret(&log, &current_token());
}

/// Send raw bytes as a client would, half-close, and return what the proxy answered.
fn raw_exchange(port: u16, bytes: &[u8]) -> Vec<u8> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let _ = s.write_all(bytes);
    let _ = s.shutdown(Shutdown::Write);
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    out
}

fn is_refusal(answer: &[u8]) -> bool {
    answer.is_empty() || answer[0] == b'E'
}

#[test]
fn garbage_and_truncated_startup_packets_are_refused_without_harming_other_sessions() {
    let mut p = Proxy::start(&[]);
    let params = p.params();
    let survivor = rt!().block_on(pgentra::db::connect(&params)).unwrap();

    // Pseudo-random bytes (a fixed LCG: reproducible).
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let garbage: Vec<u8> = (0..512)
        .map(|_| {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            (x >> 56) as u8
        })
        .collect();
    let a = raw_exchange(p.port, &garbage);
    assert!(is_refusal(&a), "garbage: {a:?}");
    // A length of 8 and nothing more, then close.
    let a = raw_exchange(p.port, &8u32.to_be_bytes());
    assert!(is_refusal(&a), "truncated: {a:?}");
    // Half a length word.
    let a = raw_exchange(p.port, &[0, 0]);
    assert!(is_refusal(&a), "half a length: {a:?}");
    // Oversized: an ErrorResponse with SQLSTATE 08P01.
    let a = raw_exchange(p.port, &100_000u32.to_be_bytes());
    assert_eq!(a.first(), Some(&b'E'), "oversized: {a:?}");
    assert!(String::from_utf8_lossy(&a).contains("08P01"));
    // An unknown protocol version.
    let mut v = 8u32.to_be_bytes().to_vec();
    v.extend_from_slice(&(1234u32 << 16 | 5678).to_be_bytes());
    let a = raw_exchange(p.port, &v);
    assert_eq!(a.first(), Some(&b'E'), "bad version: {a:?}");
    // A startup packet without its terminator.
    let mut v = Vec::new();
    let body = b"\x00\x03\x00\x00user\x00x\x00";
    v.extend_from_slice(&((body.len() + 4) as u32).to_be_bytes());
    v.extend_from_slice(body);
    let a = raw_exchange(p.port, &v);
    assert_eq!(a.first(), Some(&b'E'), "bad layout: {a:?}");
    // A cancel request for a key nobody has: ignored, the connection closed.
    let mut v = 16u32.to_be_bytes().to_vec();
    v.extend_from_slice(&80877102u32.to_be_bytes());
    v.extend_from_slice(&[0, 0, 0, 1, 1, 2, 3, 4]);
    assert!(raw_exchange(p.port, &v).is_empty());
    // Two SSLRequests in a row are refused after the first 'N'.
    let mut v = Vec::new();
    for _ in 0..2 {
        v.extend_from_slice(&8u32.to_be_bytes());
        v.extend_from_slice(&80877103u32.to_be_bytes());
    }
    let a = raw_exchange(p.port, &v);
    assert_eq!(a.first(), Some(&b'N'));
    assert_eq!(a.get(1), Some(&b'E'), "{a:?}");

    p.assert_running();
    let n: i32 = rt!()
        .block_on(async { survivor.query_one("select 41 + 1", &[]).await })
        .expect("the earlier session still works")
        .get(0);
    assert_eq!(n, 42);
    assert_eq!(current_user_via(p.port, "127.0.0.1"), "pgentra-app");
    drop(survivor);
    assert!(p.stop().success());
    let log = p.log();
    assert!(log.contains("outcome=refused"), "{log}");
    assert!(log.contains("outcome=cancel-ignored"), "{log}");
}

#[test]
fn a_local_password_file_is_required_when_given() {
    let dir = scratch_dir("pw");
    let f = dir.join("local-pw");
    std::fs::write(&f, "local secret 1\n").unwrap();
    std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o600)).unwrap();
    let mut p = Proxy::start(&["--local-password-file", &f.display().to_string()]);
    let out = psql_via(p.port, "127.0.0.1", "select current_user", &[("PGPASSWORD", "local secret 1")]);
    assert_eq!(text(&out.stdout).trim(), "pgentra-app", "{}", text(&out.stderr));
    let out = psql_via(p.port, "127.0.0.1", "select current_user", &[("PGPASSWORD", "wrong")]);
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("password authentication failed"), "{}", text(&out.stderr));
    let out = psql(&["-w", "-h", "127.0.0.1", "-p", &p.port.to_string(), "-d", "postgres", "-c", "select 1"], &[("PGSSLMODE", "prefer")]);
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("no password supplied"), "{}", text(&out.stderr));
    assert!(p.stop().success());
    let log = p.log();
    assert!(log.contains("wrong local password"), "{log}");
    assert_log_has_no_secret(&log, "local secret 1");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn secret_mode_through_the_proxy() {
    reset();
    let ado = format!(
        "Server={};Port={};Database=postgres;User Id=app_static;Password=\"static pw;'\"\"\\@/?#%\";Ssl Mode=Require;",
        h("PGENTRA_PG_HOST"),
        h("PGENTRA_PG_PORT")
    );
    let vars = mi_env(&[("AZURE_POSTGRESQL_CONNECTIONSTRING", &ado)]);
    let mut p = Proxy::start_with(&vars, &[], true);
    assert_eq!(current_user_via(p.port, "127.0.0.1"), "app_static");
    assert_eq!(stat("msi_requests"), 0);
    assert!(p.stop().success());
    assert_log_has_no_secret(&p.log(), "static pw;'\"\\@/?#%");
}

#[test]
fn non_loopback_listen_addresses_are_refused() {
    for addr in ["0.0.0.0:6999", "192.0.2.1:6999", "[::]:6999"] {
        let out = cli(&["proxy", "--listen", addr], &token_mode_vars());
        assert_eq!(out.status.code(), Some(3), "{addr}: {}", text(&out.stderr));
        assert!(text(&out.stderr).contains("--allow-remote"), "{}", text(&out.stderr));
    }
    let out = cli(&["proxy", "--bogus"], &token_mode_vars());
    assert_eq!(out.status.code(), Some(2));
    let out = cli(&["proxy", "--help"], &HashMap::new());
    assert!(text(&out.stdout).contains("--unix-socket"));
    let out = cli(&["help", "pgpass"], &HashMap::new());
    assert!(text(&out.stdout).contains("OnUnitActiveSec"));
}

#[test]
fn sigterm_drains_sessions_then_stops() {
    let mut p = Proxy::start(&["--drain-timeout", "20"]);
    let params = p.params();
    let client = rt!().block_on(pgentra::db::connect(&params)).unwrap();
    p.signal(libc::SIGTERM);
    // New connections are refused soon.
    let deadline = Instant::now() + Duration::from_secs(5);
    while TcpStream::connect(("127.0.0.1", p.port)).is_ok() {
        assert!(Instant::now() < deadline, "still accepting after SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    }
    // The open session keeps working until it ends.
    let n: i32 = rt!().block_on(async { client.query_one("select 7", &[]).await }).unwrap().get(0);
    assert_eq!(n, 7);
    assert!(p.child.try_wait().unwrap().is_none(), "exited while a session was open");
    drop(client);
    let st = p.wait(10).expect("stops once the session ends");
    assert!(st.success(), "{st}");
    let log = p.log();
    assert!(log.contains("SIGTERM: no longer accepting"), "{log}");
    assert!(log.contains("outcome=ok"), "{log}");

    // With a short drain timeout a lingering session is closed.
    let mut p = Proxy::start(&["--drain-timeout", "1"]);
    let params = p.params();
    let client = rt!().block_on(pgentra::db::connect(&params)).unwrap();
    let started = Instant::now();
    p.signal(libc::SIGTERM);
    let st = p.wait(10).expect("stops after the drain timeout");
    assert!(st.success(), "{st}");
    assert!(started.elapsed() < Duration::from_secs(6));
    assert!(rt!().block_on(async { client.simple_query("select 1").await }).is_err());
    assert!(p.log().contains("outcome=terminated"), "{}", p.log());
}

fn pgpass_lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path).unwrap().lines().map(str::to_string).collect()
}

#[test]
fn pgpass_writes_a_0600_line_that_psql_uses_and_replaces_it() {
    let dir = scratch_dir("pgpass");
    let file = dir.join("pgpass");
    std::fs::write(&file, "# kept\nother.example:5432:*:bob:pw\n").unwrap();
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let path = file.display().to_string();
    let mut vars = token_mode_vars();
    // The service file it also writes goes to the scratch directory, not to HOME.
    vars.insert("PGSERVICEFILE".into(), dir.join("pg_service.conf").display().to_string());
    let out = cli(&["pgpass", "--file", &path], &vars);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let token = current_token();
    assert!(!text(&out.stdout).contains(&token) && !text(&out.stderr).contains(&token), "pgpass printed the token");
    assert_eq!(std::fs::metadata(&file).unwrap().permissions().mode() & 0o777, 0o600);
    let lines = pgpass_lines(&file);
    let prefix = format!("{}:{}:postgres:pgentra-app:", h("PGENTRA_PG_HOST"), h("PGENTRA_PG_PORT"));
    assert_eq!(lines.len(), 3);
    assert_eq!(lines[0], "# kept");
    assert_eq!(lines[1], "other.example:5432:*:bob:pw");
    assert!(lines[2].starts_with(&prefix), "unexpected line layout");

    let conninfo = format!("host={} port={} dbname=postgres user=pgentra-app sslmode=require", h("PGENTRA_PG_HOST"), h("PGENTRA_PG_PORT"));
    let login = || {
        let mut cmd = Command::new("psql");
        cmd.env_clear().env("PATH", std::env::var("PATH").unwrap()).env("PGPASSFILE", &path);
        cmd.args(["-X", "-A", "-t", "-w", &conninfo, "-c", "select current_user"]);
        cmd.output().unwrap()
    };
    let out = login();
    assert_eq!(text(&out.stdout).trim(), "pgentra-app", "{}", text(&out.stderr));

    // A second run after a rotation replaces the line (no append), and the new token works.
    control("POST", "/control/rotate", "");
    // The shared entry still holds the old, unexpired token: a new process would serve it
    // until a refusal invalidates it. This test is about the file's rewrite, so start empty.
    clear_shared_cache();
    let out = cli(&["pgpass", "--file", &path], &vars);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("refreshed"), "{}", text(&out.stdout));
    let again = pgpass_lines(&file);
    assert_eq!(again.len(), 3);
    assert_eq!(&again[..2], &lines[..2]);
    assert!(again[2].starts_with(&prefix));
    assert_ne!(again[2], lines[2], "the token was refreshed");
    let out = login();
    assert_eq!(text(&out.stdout).trim(), "pgentra-app", "{}", text(&out.stderr));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn upstream_tls_is_verified_under_verify_full_and_failures_reach_the_client() {
    // verify-full against the test CA: works.
    let cs = libpq(&format!("sslmode=verify-full sslrootcert={}", h("PGENTRA_PG_CA")));
    let cs = cs.replace("sslmode=require ", "");
    let mut p = Proxy::start_with(&mi_env(&[("AZURE_POSTGRESQL_CONNECTIONSTRING", &cs)]), &[], true);
    assert_eq!(current_user_via(p.port, "127.0.0.1"), "pgentra-app");
    assert!(p.stop().success());

    // verify-full against the system roots (here SSL_CERT_FILE names only the emulator's CA,
    // which does not vouch for the database): the client gets the proxy's TLS diagnosis, and
    // the proxy keeps running.
    let cs = libpq("").replace("sslmode=require", "sslmode=verify-full sslrootcert=system");
    let vars = mi_env(&[("AZURE_POSTGRESQL_CONNECTIONSTRING", &cs), ("SSL_CERT_FILE", &h("PGENTRA_EMULATOR_CA"))]);
    let mut p = Proxy::start_with(&vars, &[], true);
    let out = psql_via(p.port, "127.0.0.1", "select 1", &[]);
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(err.contains("pgentra proxy: TLS with 127.0.0.1"), "{err}");
    assert!(err.to_lowercase().contains("certificate"), "{err}");
    p.assert_running();
    assert!(p.stop().success());

    // An upstream that is not there: a FATAL 08001 from the proxy.
    let dead = free_port();
    let cs = format!("host=127.0.0.1 port={dead} dbname=postgres sslmode=require user=pgentra-app");
    let mut p = Proxy::start_with(&mi_env(&[("AZURE_POSTGRESQL_CONNECTIONSTRING", &cs)]), &[], true);
    let out = psql_via(p.port, "127.0.0.1", "select 1", &[]);
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains(&format!("cannot connect to 127.0.0.1:{dead}")), "{}", text(&out.stderr));
    assert!(p.stop().success());
    assert!(p.log().contains("outcome=upstream-error"), "{}", p.log());
}

/// A second, private PostgreSQL whose pg_hba asks for SCRAM-SHA-256 and MD5 (the harness's
/// server asks for `password`, as Azure does): secret mode logs in with both.
struct ScramServer {
    dir: PathBuf,
    port: u16,
}

const SCRAM_SERVER_SCRIPT: &str = r#"
set -eu
cmd=$1; d=$2; port=${3:-}
PGBIN=${PGBIN:-$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n1)}
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
if [ "$cmd" = stop ]; then as_pg "$PGBIN/pg_ctl" -D "$d/data" -m immediate stop >/dev/null 2>&1 || true; exit 0; fi
[ "$(id -u)" = 0 ] && chown postgres: "$d"
chmod 700 "$d"
as_pg "$PGBIN/initdb" -D "$d/data" -U postgres --auth-local=trust --auth-host=reject >"$d/initdb.log" 2>&1
( cd "$d/data"
  openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=localhost -keyout server.key -out server.crt >/dev/null 2>&1
  chmod 600 server.key; [ "$(id -u)" = 0 ] && chown postgres: server.key server.crt )
cat >> "$d/data/postgresql.conf" <<CONF
listen_addresses = '127.0.0.1'
port = $port
unix_socket_directories = '$d'
ssl = on
fsync = off
password_encryption = 'scram-sha-256'
CONF
cat > "$d/data/pg_hba.conf" <<HBA
local   all all                     trust
hostssl all scram_user 127.0.0.1/32 scram-sha-256
hostssl all md5_user   127.0.0.1/32 md5
HBA
as_pg "$PGBIN/pg_ctl" -D "$d/data" -l "$d/server.log" -w -t 30 start >/dev/null
as_pg "$PGBIN/psql" -q -h "$d" -p "$port" -U postgres -d postgres -v ON_ERROR_STOP=1 \
  -c "CREATE ROLE scram_user LOGIN PASSWORD 'scram:pw\\x'" \
  -c "SET password_encryption = 'md5'" -c "CREATE ROLE md5_user LOGIN PASSWORD 'md5 pw'"
"#;

impl ScramServer {
    fn start() -> ScramServer {
        let dir = scratch_dir("scram-pg");
        let port = free_port();
        let out = Command::new("bash")
            .args(["-c", SCRAM_SERVER_SCRIPT, "scram", "start", &dir.display().to_string(), &port.to_string()])
            .output()
            .unwrap();
        assert!(out.status.success(), "could not start the SCRAM server: {}{}", text(&out.stdout), text(&out.stderr));
        ScramServer { dir, port }
    }
}

impl Drop for ScramServer {
    fn drop(&mut self) {
        let _ = Command::new("bash").args(["-c", SCRAM_SERVER_SCRIPT, "scram", "stop", &self.dir.display().to_string()]).output();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[test]
fn secret_mode_logs_in_with_scram_sha_256_and_md5() {
    let server = ScramServer::start();
    for (user, password, method) in [("scram_user", "scram:pw\\x", "SCRAM"), ("md5_user", "md5 pw", "MD5")] {
        let port = server.port.to_string();
        let vars = env(&[
            ("AZURE_POSTGRESQL_HOST", "127.0.0.1"),
            ("AZURE_POSTGRESQL_PORT", &port),
            ("AZURE_POSTGRESQL_DATABASE", "postgres"),
            ("AZURE_POSTGRESQL_USER", user),
            ("AZURE_POSTGRESQL_PASSWORD", password),
        ]);
        let mut p = Proxy::start_with(&vars, &[], true);
        assert_eq!(current_user_via(p.port, "127.0.0.1"), user, "{method}");
        assert!(p.stop().success());
        assert_log_has_no_secret(&p.log(), password);
        // A wrong password: the server's own refusal reaches the client.
        let vars = env(&[
            ("AZURE_POSTGRESQL_HOST", "127.0.0.1"),
            ("AZURE_POSTGRESQL_PORT", &port),
            ("AZURE_POSTGRESQL_DATABASE", "postgres"),
            ("AZURE_POSTGRESQL_USER", user),
            ("AZURE_POSTGRESQL_PASSWORD", "wrong"),
        ]);
        let mut p = Proxy::start_with(&vars, &[], true);
        let out = psql_via(p.port, "127.0.0.1", "select 1", &[]);
        assert!(!out.status.success(), "{method}");
        assert!(text(&out.stderr).contains("password authentication failed"), "{method}: {}", text(&out.stderr));
        assert!(p.stop().success());
        assert!(p.log().contains("token_retry=false"), "no retry in secret mode: {}", p.log());
    }
}

// ---------------------------------------------------------------------------------------------
// Who may connect: the Unix socket's mode, peer uids, the session limit.

/// Directory events seen by inotify: (mask, name).
fn inotify_events(fd: i32) -> Vec<(u32, String)> {
    let mut out = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
        if n <= 0 {
            return out;
        }
        let mut off = 0usize;
        while off + 16 <= n as usize {
            let mask = u32::from_ne_bytes(buf[off + 4..off + 8].try_into().unwrap());
            let len = u32::from_ne_bytes(buf[off + 12..off + 16].try_into().unwrap()) as usize;
            let raw = &buf[off + 16..off + 16 + len];
            let name = String::from_utf8_lossy(&raw[..raw.iter().position(|&c| c == 0).unwrap_or(len)]).into_owned();
            out.push((mask, name));
            off += 16 + len;
        }
    }
}

#[test]
fn the_unix_socket_is_0600_from_the_moment_its_name_exists() {
    let sock = scratch_dir("sockmode");
    let dir = sock.display().to_string();
    // Every change in the directory, from before the proxy starts.
    let fd = unsafe { libc::inotify_init1(libc::IN_NONBLOCK | libc::IN_CLOEXEC) };
    assert!(fd >= 0);
    let cdir = std::ffi::CString::new(dir.clone()).unwrap();
    let wd = unsafe { libc::inotify_add_watch(fd, cdir.as_ptr(), libc::IN_CREATE | libc::IN_ATTRIB | libc::IN_MOVED_TO) };
    assert!(wd >= 0);
    // And a poller that records every mode the socket's path shows.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let poller = {
        let (sock, stop) = (sock.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut modes = std::collections::BTreeSet::new();
            while !stop.load(Ordering::SeqCst) {
                if let Ok(rd) = std::fs::read_dir(&sock) {
                    for e in rd.flatten() {
                        if e.file_name().to_string_lossy().starts_with(".s.PGSQL.") {
                            if let Ok(m) = std::fs::symlink_metadata(e.path()) {
                                modes.insert(m.permissions().mode() & 0o7777);
                            }
                        }
                    }
                }
            }
            modes
        })
    };
    let mut p = Proxy::start(&["--unix-socket", &dir]);
    let name = format!(".s.PGSQL.{}", p.port);
    let path = sock.join(&name);
    let mode = std::fs::symlink_metadata(&path).expect("socket file").permissions().mode() & 0o7777;
    assert_eq!(mode, 0o600, "right after `listening`");
    stop.store(true, Ordering::SeqCst);
    let modes = poller.join().unwrap();
    assert!(modes.iter().all(|m| *m == 0o600), "the socket's path was seen with modes {:?}", modes.iter().map(|m| format!("{m:04o}")).collect::<Vec<_>>());
    let events = inotify_events(fd);
    unsafe { libc::close(fd) };
    let ours: Vec<&(u32, String)> = events.iter().filter(|(_, n)| *n == name).collect();
    assert!(!ours.is_empty(), "no event for {name}: {events:?}");
    // A chmod after the name appeared means it was reachable with another mode before.
    assert!(
        !ours.iter().any(|(m, _)| m & libc::IN_ATTRIB != 0),
        "the socket's mode was changed after its name existed (bind, then chmod): {events:?}"
    );
    // Nothing private is left behind.
    let left: Vec<String> = std::fs::read_dir(&sock).unwrap().flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect();
    assert_eq!(left, vec![name.clone()], "{left:?}");
    assert_eq!(current_user_via(p.port, &dir), "pgentra-app");
    assert!(p.stop().success());
    let _ = std::fs::remove_dir_all(&sock);
}

fn nobody() -> (u32, u32) {
    let out = Command::new("id").args(["-u", "nobody"]).output().unwrap();
    let uid: u32 = text(&out.stdout).trim().parse().unwrap();
    let out = Command::new("id").args(["-g", "nobody"]).output().unwrap();
    let gid: u32 = text(&out.stdout).trim().parse().unwrap();
    (uid, gid)
}

/// As `uid`/`gid` (a forked child that drops privileges and then makes only raw system calls,
/// all async-signal-safe), connect to the Unix socket `path`, send `packet` and return what
/// the proxy answers; `Err(errno)` if the connect fails.
fn unix_exchange_as(uid: u32, gid: u32, path: &Path, packet: &[u8]) -> Result<Vec<u8>, i32> {
    use std::os::unix::ffi::OsStrExt;
    let mut addr: libc::sockaddr_un = unsafe { std::mem::zeroed() };
    addr.sun_family = libc::AF_UNIX as libc::sa_family_t;
    let bytes = path.as_os_str().as_bytes();
    assert!(bytes.len() < addr.sun_path.len());
    for (d, s) in addr.sun_path.iter_mut().zip(bytes) {
        *d = *s as libc::c_char;
    }
    let mut fds = [0i32; 2];
    assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
    let tv = libc::timeval { tv_sec: 10, tv_usec: 0 };
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0);
    if pid == 0 {
        unsafe {
            libc::close(fds[0]);
            if libc::setgroups(0, std::ptr::null()) != 0 || libc::setgid(gid) != 0 || libc::setuid(uid) != 0 {
                libc::_exit(3);
            }
            let s = libc::socket(libc::AF_UNIX, libc::SOCK_STREAM, 0);
            if s < 0 {
                libc::_exit(3);
            }
            libc::setsockopt(s, libc::SOL_SOCKET, libc::SO_RCVTIMEO, (&tv as *const libc::timeval).cast(), std::mem::size_of::<libc::timeval>() as u32);
            if libc::connect(s, (&addr as *const libc::sockaddr_un).cast(), std::mem::size_of::<libc::sockaddr_un>() as u32) != 0 {
                let e = *libc::__errno_location();
                libc::write(fds[1], (&e as *const i32).cast(), 4);
                libc::_exit(2);
            }
            libc::write(s, packet.as_ptr().cast(), packet.len());
            let mut buf = [0u8; 4096];
            loop {
                let n = libc::read(s, buf.as_mut_ptr().cast(), buf.len());
                if n <= 0 {
                    break;
                }
                libc::write(fds[1], buf.as_ptr().cast(), n as usize);
            }
            libc::_exit(0);
        }
    }
    unsafe { libc::close(fds[1]) };
    let mut f = unsafe { <std::fs::File as std::os::unix::io::FromRawFd>::from_raw_fd(fds[0]) };
    let mut out = Vec::new();
    let _ = f.read_to_end(&mut out);
    let mut status = 0;
    unsafe { libc::waitpid(pid, &mut status, 0) };
    assert!(libc::WIFEXITED(status), "child status {status}");
    match libc::WEXITSTATUS(status) {
        0 => Ok(out),
        2 => Err(i32::from_ne_bytes(out[..4].try_into().unwrap())),
        c => panic!("the child could not become uid {uid} (exit {c})"),
    }
}

fn startup_packet(user: &str, database: &str) -> Vec<u8> {
    let mut body = 196608u32.to_be_bytes().to_vec();
    for (k, v) in [("user", user), ("database", database)] {
        body.extend_from_slice(k.as_bytes());
        body.push(0);
        body.extend_from_slice(v.as_bytes());
        body.push(0);
    }
    body.push(0);
    let mut m = ((body.len() + 4) as u32).to_be_bytes().to_vec();
    m.extend_from_slice(&body);
    m
}

/// The SQLSTATE of the first message if it is an ErrorResponse.
fn sqlstate(answer: &[u8]) -> Option<String> {
    if answer.first() != Some(&b'E') || answer.len() < 5 {
        return None;
    }
    let mut body = &answer[5..];
    while let Some((&t, rest)) = body.split_first() {
        if t == 0 {
            break;
        }
        let end = rest.iter().position(|&c| c == 0)?;
        if t == b'C' {
            return Some(String::from_utf8_lossy(&rest[..end]).into_owned());
        }
        body = &rest[end + 1..];
    }
    None
}

/// psql as `nobody` through the Unix socket in `dir`.
fn psql_as_nobody(dir: &str, port: u16) -> Output {
    Command::new("runuser")
        .args(["-u", "nobody", "--", "env", "-i"])
        .arg(format!("PATH={}", std::env::var("PATH").unwrap()))
        .args(["PGPASSFILE=/dev/null", "PGCONNECT_TIMEOUT=15", "psql", "-X", "-A", "-t", "-h", dir, "-p", &port.to_string(), "-d", "postgres", "-c", "select current_user"])
        .output()
        .expect("runuser")
}

#[test]
fn unix_socket_peers_with_another_uid_are_refused_unless_allowed() {
    let token = current_token();
    let (uid, gid) = nobody();
    let sock = scratch_dir("peers");
    let dir = sock.display().to_string();
    let mut p = Proxy::start(&["--unix-socket", &dir]);
    let path = sock.join(format!(".s.PGSQL.{}", p.port));
    // The 0600 mode keeps other users out; loosen it (as an operator might, or a shared
    // directory would) to show that the peer check stands on its own.
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o666)).unwrap();
    let answer = unix_exchange_as(uid, gid, &path, &startup_packet("nobody", "postgres")).expect("connect as nobody");
    assert_eq!(sqlstate(&answer).as_deref(), Some("28000"), "answer: {:?}", text(&answer));
    assert!(!text(&answer).contains(&token), "a refused peer got the token");
    assert!(!answer.windows(9).any(|w| w == [b'R', 0, 0, 0, 8, 0, 0, 0, 0]), "a refused peer got AuthenticationOk");
    let out = psql_as_nobody(&dir, p.port);
    assert!(!out.status.success(), "nobody logged in: {}", text(&out.stdout));
    assert!(text(&out.stderr).contains(&format!("user id {uid} may not use this socket")), "{}", text(&out.stderr));
    // The proxy's own uid is still served.
    assert_eq!(current_user_via(p.port, &dir), "pgentra-app");
    assert!(p.stop().success());
    let log = p.log();
    let refused: Vec<&str> = log.lines().filter(|l| l.contains(&format!("uid={uid})"))).collect();
    assert_eq!(refused.len(), 2, "{log}");
    for l in &refused {
        assert!(l.contains("outcome=refused") && l.contains("--allow-uid"), "{l}");
        // Never logged in upstream.
        assert!(!l.contains(" user="), "{l}");
    }
    assert_log_has_no_secret(&log, &token);

    // --allow-uid lets that uid in (and replaces the default: the proxy's own uid is now out).
    let mut p = Proxy::start(&["--unix-socket", &dir, "--allow-uid", &uid.to_string()]);
    let path = sock.join(format!(".s.PGSQL.{}", p.port));
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o666)).unwrap();
    let out = psql_as_nobody(&dir, p.port);
    assert_eq!(text(&out.stdout).trim(), "pgentra-app", "{}", text(&out.stderr));
    let out = psql_via(p.port, &dir, "select 1", &[]);
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("user id 0 may not use this socket"), "{}", text(&out.stderr));
    // TCP on loopback is not subject to --allow-uid.
    assert_eq!(current_user_via(p.port, "127.0.0.1"), "pgentra-app");
    assert!(p.stop().success());
    let _ = std::fs::remove_dir_all(&sock);
}

#[test]
fn max_sessions_refuses_the_extra_session_with_53300_until_one_ends() {
    let mut p = Proxy::start(&["--max-sessions", "2"]);
    let params = p.params();
    let first = rt!().block_on(pgentra::db::connect(&params)).expect("session 1");
    let second = std::sync::Arc::new(rt!().block_on(pgentra::db::connect(&params)).expect("session 2"));
    // The third is refused with too_many_connections.
    let answer = raw_exchange(p.port, &startup_packet("whoever", "postgres"));
    assert_eq!(sqlstate(&answer).as_deref(), Some("53300"), "answer: {:?}", text(&answer));
    let err = rt!().block_on(pgentra::db::connect(&params)).map(|_| ()).unwrap_err();
    assert!(err.message().contains("too many clients") || err.message().contains("53300"), "{}", err.message());
    // The two sessions still work, and at the limit a cancel request still gets through.
    for c in [&first, &*second] {
        let row = rt!().block_on(c.query_one("select current_user::text", &[])).unwrap();
        assert_eq!(row.get::<_, String>(0), "pgentra-app");
    }
    let cancel = second.cancel_token();
    let query = {
        let second = second.clone();
        rt!().spawn(async move { second.simple_query("select pg_sleep(30)").await.map(|_| ()) })
    };
    std::thread::sleep(Duration::from_millis(500));
    rt!().block_on(cancel.cancel_query(tokio_postgres::NoTls)).expect("cancel request sent");
    let err = rt!().block_on(query).unwrap().expect_err("the query was cancelled");
    assert_eq!(err.code(), Some(&tokio_postgres::error::SqlState::QUERY_CANCELED), "{err}");
    // When one ends, its slot is free again.
    drop(first);
    let deadline = Instant::now() + Duration::from_secs(10);
    let third = loop {
        match rt!().block_on(pgentra::db::connect(&params)) {
            Ok(c) => break c,
            Err(e) => {
                assert!(Instant::now() < deadline, "no slot after a session ended: {}", e.message());
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    };
    let row = rt!().block_on(third.query_one("select current_user::text", &[])).unwrap();
    assert_eq!(row.get::<_, String>(0), "pgentra-app");
    drop((second, third));
    assert!(p.stop().success());
    let log = p.log();
    assert!(log.contains("--max-sessions 2 reached"), "{log}");
    assert!(log.contains("kind=cancel") && log.contains("outcome=cancel-forwarded"), "{log}");
}
