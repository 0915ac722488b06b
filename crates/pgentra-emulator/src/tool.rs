//! The emulator as a command-line tool: `--list`, `--background` and `--stop`.

use std::io::Read as _;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::identity::{Identity, Kind, IDENTITIES, TENANT_ID};

/// How a client signs in as an identity, in the variables pgentra (and the Azure SDKs) read.
fn sign_in(i: &Identity, secret: &str) -> String {
    let client_id = i.client_id;
    match i.kind {
        Kind::Managed if i.key == "system" => {
            "managed identity, system-assigned: IDENTITY_ENDPOINT and IDENTITY_HEADER from emulator.env".into()
        }
        Kind::Managed => format!(
            "managed identity, user-assigned: emulator.env's IDENTITY_ENDPOINT and IDENTITY_HEADER, plus AZURE_POSTGRESQL_CLIENTID={client_id}"
        ),
        Kind::Secret => format!(
            "service principal: AZURE_CLIENT_ID={client_id} AZURE_TENANT_ID={TENANT_ID} AZURE_CLIENT_SECRET={secret} (AZURE_AUTHORITY_HOST and SSL_CERT_FILE from emulator.env)"
        ),
        Kind::Certificate => format!(
            "service principal with a certificate: AZURE_CLIENT_ID={client_id} AZURE_TENANT_ID={TENANT_ID} AZURE_CLIENT_CERTIFICATE_PATH=any PEM certificate and key (the signature is not checked)"
        ),
        Kind::Federated => format!(
            "workload identity: AZURE_CLIENT_ID={client_id} AZURE_TENANT_ID={TENANT_ID} AZURE_FEDERATED_TOKEN_FILE=a file holding any JWT-shaped token"
        ),
        Kind::Developer => {
            "developer sign-in: `az`/`azd` stand-ins that ask $PGENTRA_EMULATOR_HTTP/control/mint?identity=dev (tests/harness/bin)".into()
        }
    }
}

/// The text `--list` prints: one block an identity, then the tenant.
pub fn list_text(secret: &str) -> String {
    let mut out = String::from("identity  client id                             PostgreSQL role\n");
    for i in IDENTITIES.iter() {
        out.push_str(&format!("{:<9} {:<37} {}\n", i.key, i.client_id, i.role));
        out.push_str(&format!("          {}\n", sign_in(i, secret)));
    }
    out.push_str(&format!(
        "tenant: {TENANT_ID}; client secret (sp): {secret}; every role is a member of azure_ad_user\n"
    ));
    out
}

/// The previous run's files, which a reader must never mistake for this run's.
fn clear_previous(dir: &Path) {
    for name in ["emulator.env", "emulator.json"] {
        let _ = std::fs::remove_file(dir.join(name));
    }
}

/// `--background`: runs this program again in the foreground mode, detached (its own
/// session, no terminal, output to DIR/emulator.log), and returns once it has written
/// emulator.env, that is once it listens. Prints the env file's path on stdout.
pub fn background(argv: &[String], state_dir: &Path) -> Result<(), String> {
    std::fs::create_dir_all(state_dir).map_err(|e| format!("creating {}: {e}", state_dir.display()))?;
    let dir: PathBuf = std::fs::canonicalize(state_dir).map_err(|e| format!("resolving {}: {e}", state_dir.display()))?;
    if let Some(pid) = running_pid(&dir) {
        return Err(format!(
            "an emulator (pid {pid}) already runs in {}; stop it with: pgentra-emulator --stop --state-dir {}",
            dir.display(),
            dir.display()
        ));
    }
    clear_previous(&dir);
    let log_path = dir.join("emulator.log");
    let log = std::fs::File::create(&log_path).map_err(|e| format!("creating {}: {e}", log_path.display()))?;
    let log2 = log.try_clone().map_err(|e| format!("{}: {e}", log_path.display()))?;
    let exe = std::env::current_exe().map_err(|e| format!("finding this program: {e}"))?;
    let args: Vec<&String> = argv.iter().filter(|a| a.as_str() != "--background").collect();
    let mut cmd = Command::new(exe);
    cmd.args(args).stdin(Stdio::null()).stdout(log).stderr(log2);
    // SAFETY: setsid is async-signal-safe and touches no memory of this process.
    unsafe {
        cmd.pre_exec(|| {
            if libc::setsid() < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = cmd.spawn().map_err(|e| format!("starting the emulator: {e}"))?;
    let env_path = dir.join("emulator.env");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if env_path.is_file() {
            break;
        }
        if let Ok(Some(status)) = child.try_wait() {
            let mut text = String::new();
            let _ = std::fs::File::open(&log_path).and_then(|mut f| f.read_to_string(&mut text));
            return Err(format!("the emulator exited ({status}) before listening:\n{}", text.trim_end()));
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            return Err(format!("the emulator did not listen within a minute; see {}", log_path.display()));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    println!("{}", env_path.display());
    eprintln!(
        "pgentra-emulator: running in the background, pid {}; variables in {} (set -a; . {}; set +a); log {}; stop with: pgentra-emulator --stop --state-dir {}",
        child.id(),
        env_path.display(),
        env_path.display(),
        log_path.display(),
        dir.display()
    );
    Ok(())
}

/// The pid in DIR/emulator.pid, if that process is alive and is a pgentra-emulator.
fn running_pid(dir: &Path) -> Option<i32> {
    let text = std::fs::read_to_string(dir.join("emulator.pid")).ok()?;
    let pid: i32 = text.trim().parse().ok().filter(|p| *p > 0)?;
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    let argv0 = cmdline.split(|b| *b == 0).next().unwrap_or_default();
    String::from_utf8_lossy(argv0).contains("pgentra-emulator").then_some(pid)
}

/// `--stop`: SIGTERM to the emulator of DIR, then waits until it has removed its pid file.
pub fn stop(state_dir: &Path) -> Result<(), String> {
    let pid_path = state_dir.join("emulator.pid");
    if !pid_path.exists() {
        return Err(format!("no emulator runs in {} (no emulator.pid)", state_dir.display()));
    }
    let Some(pid) = running_pid(state_dir) else {
        let _ = std::fs::remove_file(&pid_path);
        clear_previous(state_dir);
        return Err(format!(
            "the emulator of {} is not running (removed its stale emulator.pid)",
            state_dir.display()
        ));
    };
    // SAFETY: kill(2) with a pid read from our own pid file and checked to be an emulator.
    if unsafe { libc::kill(pid, libc::SIGTERM) } != 0 {
        return Err(format!("stopping pid {pid}: {}", std::io::Error::last_os_error()));
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while pid_path.exists() && running_pid(state_dir).is_some() {
        if Instant::now() > deadline {
            return Err(format!("pid {pid} did not stop within 10 seconds"));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    eprintln!("pgentra-emulator: stopped pid {pid}");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_list_names_every_identity_its_client_id_role_and_the_secret() {
        let t = list_text("s3cret");
        for i in IDENTITIES.iter() {
            assert!(t.contains(i.key) && t.contains(i.client_id) && t.contains(i.role), "{t}");
        }
        assert!(t.contains("AZURE_CLIENT_SECRET=s3cret") && t.contains(TENANT_ID), "{t}");
    }
}
