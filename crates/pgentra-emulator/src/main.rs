//! `pgentra-emulator`: a local stand-in for Azure's identity endpoints (App Service
//! managed identity, IMDS, Entra ID v2 client credentials), for tests and demos.
//!
//! It binds only 127.0.0.1 and never talks to Azure. See `--help`.

mod args;
mod identity;
mod ldap;
mod pg;
mod server;
mod tls;
mod tool;

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

use crate::server::{Config, Emulator};

fn main() {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let args = match args::parse(argv.clone()) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("pgentra-emulator: {e}");
            std::process::exit(2);
        }
    };
    let done = match args.mode {
        args::Mode::Run => None,
        args::Mode::List => {
            print!("{}", tool::list_text(&args.secret));
            Some(Ok(()))
        }
        args::Mode::Background => Some(tool::background(&argv, &args.state_dir)),
        args::Mode::Stop => Some(tool::stop(&args.state_dir)),
    };
    if let Some(result) = done {
        if let Err(e) = result {
            eprintln!("pgentra-emulator: {e}");
            std::process::exit(1);
        }
        std::process::exit(0);
    }
    // Read the local UTC offset while the process is still single-threaded (the `time`
    // crate refuses to do so later on Unix). Used only for `az`-style `expiresOn`.
    let local_offset = time::UtcOffset::current_local_offset().unwrap_or(time::UtcOffset::UTC);
    let _ = rustls::crypto::ring::default_provider().install_default();

    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("pgentra-emulator: cannot start the runtime: {e}");
            std::process::exit(1);
        }
    };
    let code = runtime.block_on(async move {
        match run(args, local_offset).await {
            Ok(()) => 0,
            Err(e) => {
                eprintln!("pgentra-emulator: {e}");
                1
            }
        }
    });
    runtime.shutdown_timeout(Duration::from_secs(1));
    std::process::exit(code);
}

/// Writes `contents` to `path` via a temporary file in the same directory and a rename,
/// so that readers never see a partial file.
fn write_atomic(path: &Path, contents: &[u8]) -> Result<(), String> {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("file");
    let tmp = path.with_file_name(format!(".{name}.tmp.{}", std::process::id()));
    let write = || -> std::io::Result<()> {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(contents)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    };
    write().map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        format!("writing {}: {e}", path.display())
    })
}

/// Single-quotes a value for a POSIX shell when it has characters that need it.
fn shell_value(v: &str) -> String {
    let plain = v
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "_-./:@%+,=".contains(c));
    if plain && !v.is_empty() {
        v.to_string()
    } else {
        format!("'{}'", v.replace('\'', "'\\''"))
    }
}

async fn run(args: args::Args, local_offset: time::UtcOffset) -> Result<(), String> {
    std::fs::create_dir_all(&args.state_dir)
        .map_err(|e| format!("creating {}: {e}", args.state_dir.display()))?;
    let dir: PathBuf = std::fs::canonicalize(&args.state_dir)
        .map_err(|e| format!("resolving {}: {e}", args.state_dir.display()))?;
    let env_path = dir.join("emulator.env");
    let json_path = dir.join("emulator.json");
    let pid_path = dir.join("emulator.pid");
    let ca_path = dir.join("ca.pem");
    // Readers wait for emulator.env: never let them see a previous run's file.
    let _ = std::fs::remove_file(&env_path);
    let _ = std::fs::remove_file(&json_path);

    let http = TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| format!("binding http: {e}"))?;
    let https = TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| format!("binding https: {e}"))?;
    let http_port = http.local_addr().map_err(|e| e.to_string())?.port();
    let https_port = https.local_addr().map_err(|e| e.to_string())?.port();
    // PostgreSQL's `ldap` authentication method asks here whether a token logs in (ldap.rs).
    let ldap = TcpListener::bind(("127.0.0.1", args.ldap_port.unwrap_or(0)))
        .await
        .map_err(|e| format!("binding ldap: {e}"))?;
    let ldap_port = ldap.local_addr().map_err(|e| e.to_string())?.port();
    let tls = tls::generate()?;

    let identity_header = identity::random_hex(16);
    let http_base = format!("http://127.0.0.1:{http_port}");
    let https_base = format!("https://127.0.0.1:{https_port}");
    let id_of = |key: &str| identity::by_key(key).map(|i| i.client_id.to_string()).unwrap_or_default();
    let vars: Vec<(&str, String)> = vec![
        ("IDENTITY_ENDPOINT", format!("{http_base}/msi/token")),
        ("IDENTITY_HEADER", identity_header.clone()),
        ("PGENTRA_EMULATOR_HTTP", http_base.clone()),
        ("AZURE_AUTHORITY_HOST", https_base.clone()),
        (
            "PGENTRA_EMULATOR_CA",
            ca_path.to_string_lossy().into_owned(),
        ),
        ("PGENTRA_EMULATOR_LDAP_PORT", ldap_port.to_string()),
        ("PGENTRA_EMULATOR_HBA", hba_method(ldap_port)),
        // The Entra endpoint is https with this run's CA: clients must trust it.
        ("SSL_CERT_FILE", ca_path.to_string_lossy().into_owned()),
        // Where IMDS would be (for PGENTRA_IMDS_ENDPOINT), and the identities' names
        // (`pgentra-emulator --list`), under names no client reads on its own.
        ("PGENTRA_EMULATOR_IMDS_ENDPOINT", http_base.clone()),
        ("PGENTRA_EMULATOR_TENANT_ID", identity::TENANT_ID.to_string()),
        ("PGENTRA_EMULATOR_UAMI_CLIENT_ID", id_of("uami")),
        ("PGENTRA_EMULATOR_SP_CLIENT_ID", id_of("sp")),
        ("PGENTRA_EMULATOR_SP_CLIENT_SECRET", args.secret.clone()),
        ("PGENTRA_EMULATOR_CERT_CLIENT_ID", id_of("cert")),
        ("PGENTRA_EMULATOR_WI_CLIENT_ID", id_of("wi")),
    ];

    let arc_key = crate::identity::random_guid().replace('-', "");
    let arc_key_path = dir.join("arc.key");
    std::fs::write(&arc_key_path, &arc_key).map_err(|e| format!("writing {}: {e}", arc_key_path.display()))?;
    let emu = Arc::new(Emulator::new(
        Config {
            identity_header,
            secret: args.secret.clone(),
            lifetime: args.lifetime,
            refresh_in: args.refresh_in,
            https_base: https_base.clone(),
            local_offset,
            arc_key_path: arc_key_path.to_string_lossy().into_owned(),
            arc_key,
        },
        args.pg_admin.clone(),
        args.faults.clone(),
    )?);

    emu.prepare_roles().await.map_err(|e| format!("creating the PostgreSQL roles: {e}"))?;
    tokio::spawn(accept_loop(http, emu.clone(), None));
    tokio::spawn(ldap_loop(ldap, emu.clone()));
    tokio::spawn(accept_loop(
        https,
        emu.clone(),
        Some(TlsAcceptor::from(tls.config.clone())),
    ));

    write_atomic(&pid_path, format!("{}\n", std::process::id()).as_bytes())?;
    write_atomic(&ca_path, tls.ca_pem.as_bytes())?;
    let json: serde_json::Map<String, serde_json::Value> = vars
        .iter()
        .map(|(k, v)| (k.to_string(), serde_json::Value::from(v.as_str())))
        .collect();
    let mut json_text = serde_json::to_string_pretty(&json).map_err(|e| e.to_string())?;
    json_text.push('\n');
    write_atomic(&json_path, json_text.as_bytes())?;
    let env_text: String = vars
        .iter()
        .map(|(k, v)| format!("{k}={}\n", shell_value(v)))
        .collect();
    write_atomic(&env_path, env_text.as_bytes())?;

    eprintln!(
        "pgentra-emulator: pid {} http {http_base} https {https_base} state {}{}",
        std::process::id(),
        dir.display(),
        if args.pg_admin.is_some() {
            " (PostgreSQL roles created)"
        } else {
            ""
        }
    );
    eprintln!("pgentra-emulator: token logins: pg_hba.conf method `{}`", hba_method(ldap_port));

    wait_for_signal().await?;
    eprintln!("pgentra-emulator: shutting down");
    let _ = std::fs::remove_file(&env_path);
    let _ = std::fs::remove_file(&json_path);
    let _ = std::fs::remove_file(&pid_path);
    Ok(())
}

async fn wait_for_signal() -> Result<(), String> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).map_err(|e| format!("SIGTERM handler: {e}"))?;
    let mut int = signal(SignalKind::interrupt()).map_err(|e| format!("SIGINT handler: {e}"))?;
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
    Ok(())
}

/// The pg_hba.conf method (and options) that makes PostgreSQL check tokens with the emulator.
fn hba_method(ldap_port: u16) -> String {
    format!(
        "ldap ldapserver=127.0.0.1 ldapport={ldap_port} ldapscheme=ldap ldaptls=0 ldapprefix=\"{}\" ldapsuffix=\"{}\"",
        server::LDAP_DN_PREFIX,
        server::LDAP_DN_SUFFIX
    )
}

struct LoginCheck(Arc<Emulator>);

impl ldap::Checker for LoginCheck {
    fn check(&self, dn: &[u8], password: &[u8]) -> Result<String, String> {
        self.0.check_login(dn, password)
    }
}

async fn ldap_loop(listener: TcpListener, emu: Arc<Emulator>) {
    let checker: Arc<dyn ldap::Checker> = Arc::new(LoginCheck(emu));
    loop {
        let stream = next_connection(&listener).await;
        tokio::spawn(ldap::serve(stream, checker.clone()));
    }
}

/// The next accepted connection (accept errors are logged and retried), with TCP_NODELAY.
async fn next_connection(listener: &TcpListener) -> tokio::net::TcpStream {
    loop {
        match listener.accept().await {
            Ok((stream, _peer)) => {
                let _ = stream.set_nodelay(true);
                return stream;
            }
            Err(e) => {
                eprintln!("pgentra-emulator: accept: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

async fn accept_loop(listener: TcpListener, emu: Arc<Emulator>, tls: Option<TlsAcceptor>) {
    loop {
        let stream = next_connection(&listener).await;
        let emu = emu.clone();
        let tls = tls.clone();
        tokio::spawn(async move {
            match tls {
                None => serve_connection(stream, emu, false).await,
                Some(acceptor) => {
                    match tokio::time::timeout(Duration::from_secs(10), acceptor.accept(stream))
                        .await
                    {
                        Ok(Ok(s)) => serve_connection(s, emu, true).await,
                        Ok(Err(e)) => eprintln!("pgentra-emulator: TLS handshake failed: {e}"),
                        Err(_) => eprintln!("pgentra-emulator: TLS handshake timed out"),
                    }
                }
            }
        });
    }
}

async fn serve_connection<S>(stream: S, emu: Arc<Emulator>, tls: bool)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service = service_fn(move |req| {
        let emu = emu.clone();
        async move { emu.serve(req, tls).await }
    });
    // Errors here are client disconnects or injected `drop` faults: nothing to report.
    let _ = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .keep_alive(true)
        .serve_connection(TokioIo::new(stream), service)
        .await;
}
