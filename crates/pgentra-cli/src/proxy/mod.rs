//! `pgentra proxy`: a local PostgreSQL endpoint that needs no password. Clients connect on
//! loopback (or a Unix socket); for each session the proxy opens a TLS connection to the
//! configured server, logs in with the connector's user and a current token (the token cache is
//! shared by every session), then relays the session's bytes unchanged.
//!
//! Protocol notes (PostgreSQL frontend/backend protocol 3):
//! - SSLRequest and GSSENCRequest from a client are declined ('N'): the client continues in
//!   plaintext on loopback. Upstream, the proxy speaks TLS with libpq's sslmode semantics.
//! - BackendKeyData is relayed unchanged, so a client's CancelRequest carries the upstream's
//!   (pid, secret); the proxy keeps a map from that key to the session's upstream address and
//!   forwards the cancel over a fresh TLS connection.
//! - Authentication upstream: cleartext password (what Azure asks for Entra tokens), MD5 (secret
//!   mode only) and SCRAM-SHA-256 (without channel binding).

use crate::{usage, Failure};
use pgentra::{Connector, Error, ErrorKind, Options, Secret, SslMode};
use std::collections::HashMap;
use std::io;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream, UnixListener};
use tokio::sync::{mpsc, watch, OwnedSemaphorePermit, Semaphore};
use tokio::time::timeout;
use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::ServerName;
use zeroize::Zeroize;

/// A line on stderr. Unlike `eprintln!`, never panics when stderr is gone.
macro_rules! log {
    ($($t:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr().lock(), $($t)*);
    }};
}

mod auth;
mod cancel;
mod listen;
mod scram;
mod session;
mod upstream;
mod wire;

use auth::*;
use cancel::*;
use listen::*;
use session::*;
use upstream::*;
use wire::*;

const SSL_REQUEST: u32 = 80877103;
const GSSENC_REQUEST: u32 = 80877104;
const CANCEL_REQUEST: u32 = 80877102;
/// PostgreSQL's MAX_STARTUP_PACKET_LENGTH.
const MAX_STARTUP_PACKET: usize = 10_000;
/// Any one message during upstream authentication.
const MAX_AUTH_MESSAGE: usize = 64 * 1024;
/// Any one message between AuthenticationOk and ReadyForQuery.
const MAX_LOGIN_MESSAGE: usize = 1 << 20;
/// The client must finish its startup (and local password) within this time, like
/// PostgreSQL's authentication_timeout.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(60);
/// Upstream login (connect, TLS, authentication, startup replies) must finish within this time.
const LOGIN_TIMEOUT: Duration = Duration::from_secs(60);
const DEFAULT_LISTEN: &str = "127.0.0.1:6432";
const DEFAULT_PORT: u16 = 6432;
/// Per direction and session.
const RELAY_BUFFER: usize = 16 * 1024;
/// Concurrent sessions unless --max-sessions says otherwise.
const DEFAULT_MAX_SESSIONS: usize = 200;
const MAX_SESSIONS_LIMIT: usize = 1_000_000;
/// A connection over --max-sessions may still send a cancel request (so that Ctrl-C works when
/// the proxy is full), within this time; anything else is refused with 53300.
const OVER_LIMIT_STARTUP_TIMEOUT: Duration = Duration::from_secs(5);

struct Args {
    listen: Vec<String>,
    unix_socket: Option<PathBuf>,
    port: Option<u16>,
    allow_remote: bool,
    local_password_file: Option<PathBuf>,
    drain_timeout: Duration,
    connect_timeout: Option<Duration>,
    threads: Option<usize>,
    /// Unix-socket peers allowed (empty: the proxy's effective uid).
    allow_uid: Vec<u32>,
    max_sessions: usize,
}

fn parse_args(rest: &[String]) -> Result<Args, Failure> {
    let mut a = Args {
        listen: Vec::new(),
        unix_socket: None,
        port: None,
        allow_remote: false,
        local_password_file: None,
        drain_timeout: Duration::from_secs(30),
        connect_timeout: None,
        threads: None,
        allow_uid: Vec::new(),
        max_sessions: DEFAULT_MAX_SESSIONS,
    };
    let mut i = 0;
    while i < rest.len() {
        let (flag, inline) = match rest[i].split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f.to_string(), Some(v.to_string())),
            _ => (rest[i].clone(), None),
        };
        let takes_value = !matches!(flag.as_str(), "--allow-remote");
        let value = if takes_value {
            match inline {
                Some(v) => {
                    i += 1;
                    v
                }
                None => {
                    let Some(v) = rest.get(i + 1).cloned() else {
                        return usage(format!("{flag} needs a value"));
                    };
                    i += 2;
                    v
                }
            }
        } else {
            if inline.is_some() {
                return usage(format!("{flag} takes no value"));
            }
            i += 1;
            String::new()
        };
        let secs = |v: &str| -> Result<Duration, Failure> {
            match v.parse::<u64>() {
                Ok(s) => Ok(Duration::from_secs(s)),
                Err(_) => usage(format!("{flag} needs a number of seconds, not '{v}'")),
            }
        };
        match flag.as_str() {
            "--listen" | "-l" => a.listen.push(value),
            "--unix-socket" => a.unix_socket = Some(PathBuf::from(value)),
            "--port" | "-p" => match value.parse::<u16>() {
                Ok(p) if p > 0 => a.port = Some(p),
                _ => return usage(format!("--port needs a port number, not '{value}'")),
            },
            "--allow-remote" => a.allow_remote = true,
            "--threads" => match value.parse::<usize>() {
                Ok(n) if (1..=1024).contains(&n) => a.threads = Some(n),
                _ => return usage(format!("--threads needs a number from 1 to 1024, not '{value}'")),
            },
            "--allow-uid" => match value.parse::<u32>() {
                Ok(uid) => a.allow_uid.push(uid),
                Err(_) => return usage(format!("--allow-uid needs a numeric user id (see `id -u NAME`), not '{value}'")),
            },
            "--max-sessions" => match value.parse::<usize>() {
                Ok(n) if (1..=MAX_SESSIONS_LIMIT).contains(&n) => a.max_sessions = n,
                _ => return usage(format!("--max-sessions needs a number from 1 to {MAX_SESSIONS_LIMIT}, not '{value}'")),
            },
            "--local-password-file" => a.local_password_file = Some(PathBuf::from(value)),
            "--drain-timeout" => a.drain_timeout = secs(&value)?,
            "--connect-timeout" => a.connect_timeout = Some(secs(&value)?.max(Duration::from_secs(1))),
            other => return usage(format!("unexpected argument '{other}'")),
        }
    }
    if !a.allow_uid.is_empty() && a.unix_socket.is_none() {
        return usage("--allow-uid checks Unix-socket clients only: add --unix-socket DIR (TCP peers have no credentials to check)");
    }
    if a.listen.is_empty() && a.unix_socket.is_none() {
        a.listen.push(DEFAULT_LISTEN.to_string());
    }
    Ok(a)
}

fn read_local_password(path: &Path) -> Result<Secret, Error> {
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::metadata(path).map_err(|e| Error::config(format!("--local-password-file {}: {e}", path.display())))?;
    if meta.permissions().mode() & 0o077 != 0 {
        log!(
            "pgentra proxy: warning: {} is readable by group or others (mode {:04o}); chmod 600 it",
            path.display(),
            meta.permissions().mode() & 0o7777
        );
    }
    let mut raw = std::fs::read(path).map_err(|e| Error::config(format!("--local-password-file {}: {e}", path.display())))?;
    let text = match String::from_utf8(raw.clone()) {
        Ok(t) => t,
        Err(_) => {
            raw.zeroize();
            return Err(Error::config(format!("--local-password-file {}: not UTF-8 text", path.display())));
        }
    };
    raw.zeroize();
    let pw = text.lines().next().unwrap_or("").to_string();
    let mut text = text;
    text.zeroize();
    if pw.is_empty() {
        return Err(Error::config(format!("--local-password-file {}: the first line (the password) is empty", path.display())));
    }
    Ok(Secret::new(pw))
}

struct Shared {
    connector: Connector,
    password_mode: bool,
    upstream: Upstream,
    local_password: Option<Secret>,
    cancel: Mutex<HashMap<CancelKey, CancelTarget>>,
    active: AtomicUsize,
    hard_stop: watch::Receiver<bool>,
    /// Uids whose processes may use the Unix socket (SO_PEERCRED).
    allow_uid: Vec<u32>,
    /// One permit per session (--max-sessions).
    sessions: Arc<Semaphore>,
    max_sessions: usize,
}

pub fn cmd(options: Options, rest: &[String]) -> Result<u8, Failure> {
    let args = parse_args(rest)?;
    let addrs = resolve_listen(&args.listen, args.allow_remote)?;
    if args.allow_remote && args.local_password_file.is_none() {
        log!("pgentra proxy: warning: --allow-remote without --local-password-file: every client that can reach the listen address logs in as this identity, with no password");
    }
    let local_password = match &args.local_password_file {
        Some(p) => Some(read_local_password(p)?),
        None => None,
    };
    // Fail fast (configuration, credential, identity service): the first token is acquired now.
    let connector = Connector::new(options)?;
    let params = connector.params()?;
    let host = params
        .host
        .clone()
        .ok_or_else(|| Error::config("the proxy needs the server's host (AZURE_POSTGRESQL_HOST or host in the connection string)"))?;
    let hosts: Vec<String> = host.split(',').map(|h| h.trim().to_string()).filter(|h| !h.is_empty()).collect();
    if hosts.iter().any(|h| h.starts_with('/') || h.starts_with('@')) {
        return Err(Error::config(format!("host '{host}' is a Unix socket directory; the proxy connects to servers over TCP")).into());
    }
    let user = params.user.clone().ok_or_else(|| Error::config("no database user"))?;
    let sslmode = params.sslmode.unwrap_or(SslMode::Require);
    let connect_timeout = args.connect_timeout.unwrap_or_else(|| {
        params
            .extra
            .iter()
            .find(|(k, _)| k == "connect_timeout")
            .and_then(|(_, v)| v.trim().parse::<u64>().ok())
            .filter(|s| *s > 0)
            .map(|s| Duration::from_secs(s.max(2)))
            .unwrap_or(Duration::from_secs(15))
    });
    let tls = Arc::new(pgentra::db::tls_config(&params)?);
    let upstream = Upstream { hosts, port: params.port.unwrap_or(5432), sslmode, dbname: params.dbname.clone(), connect_timeout, tls };
    drop(params);

    let mut builder = tokio::runtime::Builder::new_multi_thread();
    if let Some(n) = args.threads {
        builder.worker_threads(n);
    }
    let rt = builder
        .enable_all()
        .thread_name("pgentra-proxy")
        .build()
        .map_err(|e| Error::new(ErrorKind::Internal, format!("cannot start the runtime: {e}")))?;
    let description = format!(
        "upstream {}:{} (sslmode={}) as {} ({})",
        upstream.hosts.join(","),
        upstream.port,
        sslmode.as_str(),
        user,
        connector.credential_description()
    );
    let allow_uid = if args.allow_uid.is_empty() {
        // SAFETY: geteuid has no preconditions and cannot fail.
        vec![unsafe { libc::geteuid() }]
    } else {
        args.allow_uid.clone()
    };
    let (hard_tx, hard_rx) = watch::channel(false);
    let shared = Arc::new(Shared {
        password_mode: connector.is_password_mode(),
        connector,
        upstream,
        local_password,
        cancel: Mutex::new(HashMap::new()),
        active: AtomicUsize::new(0),
        hard_stop: hard_rx,
        allow_uid,
        sessions: Arc::new(Semaphore::new(args.max_sessions)),
        max_sessions: args.max_sessions,
    });
    let code = rt.block_on(serve(shared, addrs, args.unix_socket, args.port, args.drain_timeout, hard_tx, description))?;
    rt.shutdown_timeout(Duration::from_millis(200));
    Ok(code)
}

async fn serve(
    shared: Arc<Shared>,
    addrs: Vec<SocketAddr>,
    unix_dir: Option<PathBuf>,
    port: Option<u16>,
    drain: Duration,
    hard_tx: watch::Sender<bool>,
    description: String,
) -> Result<u8, Error> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut sigterm = signal(SignalKind::terminate()).map_err(|e| Error::new(ErrorKind::Internal, format!("signal handler: {e}")))?;
    let mut sigint = signal(SignalKind::interrupt()).map_err(|e| Error::new(ErrorKind::Internal, format!("signal handler: {e}")))?;

    let mut tcp = Vec::new();
    let mut names = Vec::new();
    for a in &addrs {
        let l = TcpListener::bind(a).await.map_err(|e| listen_error(&a.to_string(), e))?;
        names.push(l.local_addr().map(|a| a.to_string()).unwrap_or_else(|_| a.to_string()));
        tcp.push(l);
    }
    let mut unix = None;
    if let Some(dir) = &unix_dir {
        let p = port.or_else(|| tcp.first().and_then(|l| l.local_addr().ok()).map(|a| a.port())).unwrap_or(DEFAULT_PORT);
        let (l, path) = bind_unix(dir, p)?;
        names.push(path.display().to_string());
        unix = Some((l, path));
    }
    log!("pgentra proxy: listening on {}; {description}", names.join(" and "));

    let (stop_tx, stop_rx) = watch::channel(false);
    let (alive_tx, mut alive_rx) = mpsc::channel::<()>(1);
    let mut acceptors = Vec::new();
    for l in tcp {
        let (shared, alive, mut stop) = (shared.clone(), alive_tx.clone(), stop_rx.clone());
        acceptors.push(tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = stop.changed() => break,
                    r = l.accept() => match r {
                        Ok((s, peer)) => {
                            let _ = s.set_nodelay(true);
                            let admission = admit(&shared);
                            spawn_session(shared.clone(), s, peer.to_string(), admission, alive.clone());
                        }
                        Err(e) => accept_error(e).await,
                    }
                }
            }
        }));
    }
    let socket_path = unix.as_ref().map(|(_, p)| p.clone());
    if let Some((l, path)) = unix {
        let (shared, alive, mut stop) = (shared.clone(), alive_tx.clone(), stop_rx.clone());
        acceptors.push(tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = stop.changed() => break,
                    r = l.accept() => match r {
                        Ok((s, _)) => {
                            let (peer, admission) = match s.peer_cred() {
                                Ok(c) => {
                                    let peer = format!("unix:{}(pid={},uid={})", path.display(), c.pid().unwrap_or(0), c.uid());
                                    (peer, check_peer_uid(&shared.allow_uid, c.uid()).unwrap_or_else(|| admit(&shared)))
                                }
                                // Fail closed: a peer whose uid is unknown is not served.
                                Err(e) => (
                                    format!("unix:{}", path.display()),
                                    Admission::Refused {
                                        sqlstate: "28000",
                                        message: "pgentra proxy: cannot identify the connecting user (peer credentials)".into(),
                                        detail: format!("peer credentials unavailable: {e}"),
                                    },
                                ),
                            };
                            spawn_session(shared.clone(), s, peer, admission, alive.clone());
                        }
                        Err(e) => accept_error(e).await,
                    }
                }
            }
        }));
    }

    let signame = tokio::select! {
        _ = sigterm.recv() => "SIGTERM",
        _ = sigint.recv() => "SIGINT",
    };
    let _ = stop_tx.send(true);
    for a in acceptors {
        let _ = a.await;
    }
    if let Some(p) = &socket_path {
        let _ = std::fs::remove_file(p);
    }
    drop(alive_tx);
    let n = shared.active.load(Ordering::SeqCst);
    log!("pgentra proxy: {signame}: no longer accepting; waiting up to {} s for {n} session(s) to finish", drain.as_secs());
    let drained = tokio::select! {
        _ = alive_rx.recv() => true,
        _ = tokio::time::sleep(drain) => false,
        _ = sigterm.recv() => false,
        _ = sigint.recv() => false,
    };
    if !drained {
        let n = shared.active.load(Ordering::SeqCst);
        log!("pgentra proxy: closing {n} remaining session(s)");
        let _ = hard_tx.send(true);
        let _ = timeout(Duration::from_secs(2), alive_rx.recv()).await;
    }
    log!("pgentra proxy: stopped");
    Ok(0)
}

async fn accept_error(e: io::Error) {
    // EMFILE and friends: back off instead of spinning.
    log!("pgentra proxy: accept failed: {e}");
    tokio::time::sleep(Duration::from_millis(100)).await;
}

/// A session slot if one of --max-sessions is free (released when the session ends).
fn admit(shared: &Shared) -> Admission {
    match shared.sessions.clone().try_acquire_owned() {
        Ok(permit) => Admission::Admitted { _slot: permit },
        Err(_) => Admission::OverLimit(shared.max_sessions),
    }
}

/// `None` when `uid` may use the Unix socket, else the refusal (28000, as PostgreSQL answers
/// a peer that pg_hba.conf rejects). The check happens before anything is read from the peer.
fn check_peer_uid(allowed: &[u32], uid: u32) -> Option<Admission> {
    if allowed.contains(&uid) {
        return None;
    }
    Some(Admission::Refused {
        sqlstate: "28000",
        message: format!("pgentra proxy: user id {uid} may not use this socket (the proxy serves --allow-uid only)"),
        detail: format!("uid {uid} is not in --allow-uid"),
    })
}

fn spawn_session<S>(shared: Arc<Shared>, stream: S, peer: String, admission: Admission, alive: mpsc::Sender<()>)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    shared.active.fetch_add(1, Ordering::SeqCst);
    tokio::spawn(async move {
        session(&shared, stream, peer, admission).await;
        shared.active.fetch_sub(1, Ordering::SeqCst);
        drop(alive);
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scram_rfc7677_vector() {
        let (mut c, first) = scram::Client::with_nonce("pencil", "user", "rOprNGfwEbeRWgbNEkqO");
        assert_eq!(first, "n,,n=user,r=rOprNGfwEbeRWgbNEkqO");
        let fin = c
            .client_final(b"r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096")
            .unwrap();
        assert_eq!(fin, "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=");
        c.verify_server_final(b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=").unwrap();
        assert!(c.verify_server_final(b"v=AAAATRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=").is_err());
    }

    #[test]
    fn md5_matches_postgres() {
        // SELECT 'md5' || md5(md5('secret' || 'alice') || E'\\x01020304'::bytea::text) is not
        // expressible directly; this is the value libpq's pg_md5_encrypt gives.
        let inner = {
            use md5::{Digest, Md5};
            hex(&Md5::digest(b"secretalice"))
        };
        assert_eq!(inner.len(), 32);
        let salt = [1u8, 2, 3, 4];
        let got = md5_password("secret", "alice", &salt);
        let want = {
            use md5::{Digest, Md5};
            let mut v = inner.into_bytes();
            v.extend_from_slice(&salt);
            format!("md5{}", hex(&Md5::digest(&v)))
        };
        assert_eq!(got, want);
        // RFC 1321 vector for the primitive itself.
        use md5::{Digest, Md5};
        assert_eq!(hex(&Md5::digest(b"abc")), "900150983cd24fb0d6963f7d28e17f72");
    }

    #[test]
    fn startup_params_layout() {
        let ok = b"user\0u\0database\0d\0\0";
        let p = match parse_startup_params(ok) {
            Ok(p) => p,
            Err(_) => panic!("valid"),
        };
        assert_eq!(p, vec![("user".into(), "u".into()), ("database".into(), "d".into())]);
        assert!(parse_startup_params(b"user\0u\0").is_err());
        assert!(parse_startup_params(b"user\0u").is_err());
        assert!(parse_startup_params(b"user\0u\0\0x").is_err());
        let m = startup_message(196608, "me", Some("db"), &[("application_name".into(), "psql".into())]);
        assert_eq!(u32::from_be_bytes([m[0], m[1], m[2], m[3]]) as usize, m.len());
        assert_eq!(&m[8..], b"user\0me\0database\0db\0application_name\0psql\0\0");
    }

    #[test]
    fn error_response_round_trip() {
        let e = error_response("08P01", "bad\0thing");
        assert_eq!(e[0], b'E');
        assert_eq!(error_fields(&e[5..]), ("08P01".to_string(), "badthing".to_string()));
    }

    #[test]
    fn log_fields() {
        assert_eq!(field("pgentra-app"), "pgentra-app");
        assert_eq!(field("a b"), "\"a b\"");
        assert_eq!(field(""), "\"\"");
    }

    #[test]
    fn listen_addresses() {
        assert!(resolve_listen(&["127.0.0.1:6432".into()], false).is_ok());
        assert!(resolve_listen(&["[::1]:6432".into()], false).is_ok());
        assert!(resolve_listen(&["0.0.0.0:6432".into()], false).is_err());
        assert!(resolve_listen(&["10.1.2.3:6432".into()], false).is_err());
        assert!(resolve_listen(&["0.0.0.0:6432".into()], true).is_ok());
    }

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn allow_uid_and_max_sessions_flags() {
        let a = parse_args(&[]).unwrap_or_else(|_| panic!("no flags"));
        assert!(a.allow_uid.is_empty());
        assert_eq!(a.max_sessions, DEFAULT_MAX_SESSIONS);
        let a = parse_args(&strings(&["--unix-socket", "/run/x", "--allow-uid", "1000", "--allow-uid=65534", "--max-sessions", "2"])).unwrap_or_else(|_| panic!("valid"));
        assert_eq!(a.allow_uid, vec![1000, 65534]);
        assert_eq!(a.max_sessions, 2);
        for bad in [&["--allow-uid", "bob"][..], &["--allow-uid", "-1"], &["--allow-uid"], &["--allow-uid", "1000"], &["--max-sessions", "0"], &["--max-sessions", "x"]] {
            match parse_args(&strings(bad)) {
                Err(Failure::Usage(u)) => assert!(u.0.contains(bad[0]), "{bad:?}: {}", u.0),
                _ => panic!("{bad:?} accepted"),
            }
        }
    }

    #[test]
    fn peer_uid_check() {
        assert!(check_peer_uid(&[1000, 0], 0).is_none());
        match check_peer_uid(&[1000], 65534) {
            Some(Admission::Refused { sqlstate, message, detail }) => {
                assert_eq!(sqlstate, "28000");
                assert!(message.contains("65534") && detail.contains("--allow-uid"));
            }
            _ => panic!("uid 65534 must be refused"),
        }
    }

    #[test]
    fn the_unix_socket_is_bound_0600_without_leftovers() {
        use std::os::unix::fs::PermissionsExt;
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
        let dir = std::env::temp_dir().join(format!("pgentra-bind-{}-{nanos}", std::process::id()));
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let _guard = rt.enter();
        let (l, path) = bind_unix(&dir, 5999).unwrap_or_else(|e| panic!("{}", e.message()));
        assert_eq!(std::fs::symlink_metadata(&path).unwrap().permissions().mode() & 0o7777, 0o600);
        let names: Vec<String> = std::fs::read_dir(&dir).unwrap().flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect();
        assert_eq!(names, vec![".s.PGSQL.5999".to_string()]);
        // A live socket is not taken over; a stale one is replaced.
        assert!(bind_unix(&dir, 5999).is_err());
        drop(l);
        let (_l, _) = bind_unix(&dir, 5999).unwrap_or_else(|e| panic!("stale socket: {}", e.message()));
        // Something that is not a socket is left alone.
        std::fs::write(dir.join(".s.PGSQL.6000"), "x").unwrap();
        let e = bind_unix(&dir, 6000).err().expect("not a socket");
        assert!(e.message().contains("not a socket"));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
