//! `pgentra pgpass` end to end: the service file that pairs each password-file line with the
//! TLS mode, symbolic links, and concurrent runs. Run under tests/harness/with-harness.sh.

use pgentra_e2e::*;
use std::collections::HashMap;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

static SEQ: AtomicUsize = AtomicUsize::new(0);

/// A fresh directory to serve as HOME.
fn home(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("pgentra-pgpass-{}-{}-{tag}", std::process::id(), SEQ.fetch_add(1, Ordering::SeqCst)));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Token-mode variables for `conninfo`, with HOME at `home`.
fn vars(home: &Path, conninfo: &str) -> HashMap<String, String> {
    let mut v = mi_env(&[("AZURE_POSTGRESQL_CONNECTIONSTRING", conninfo)]);
    v.insert("HOME".into(), home.display().to_string());
    v
}

fn pgpass(home: &Path, conninfo: &str, args: &[&str]) -> Output {
    let mut a = vec!["pgpass"];
    a.extend_from_slice(args);
    cli(&a, &vars(home, conninfo))
}

/// psql with HOME at `home` and nothing else but PATH and `extra`.
fn psql_home(home: &Path, conninfo: &str, sql: &str, extra: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new("psql");
    cmd.env_clear().env("PATH", std::env::var("PATH").unwrap()).env("HOME", home).env("PGCONNECT_TIMEOUT", "15");
    cmd.envs(extra.iter().copied());
    cmd.args(["-X", "-A", "-t", "-w", conninfo, "-c", sql]);
    cmd.output().unwrap()
}

const WHO_AND_TLS: &str = "select current_user || ' ' || ssl::text from pg_stat_ssl where pid = pg_backend_pid()";

#[test]
fn psql_service_logs_in_over_tls_with_the_mode_pgentra_decided() {
    let home = home("service");
    let ca = h("PGENTRA_PG_CA");
    let cs = libpq(&format!("sslrootcert={ca}")).replace("sslmode=require", "sslmode=verify-full");
    let out = pgpass(&home, &cs, &[]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("psql service=pgentra"), "{}", text(&out.stdout));
    let svc = std::fs::read_to_string(home.join(".pg_service.conf")).expect("the service file is written");
    for want in ["[pgentra]\n", "\nsslmode=verify-full\n", &format!("\nsslrootcert={ca}\n"), "\nuser=pgentra-app\n", "\ndbname=postgres\n"] {
        assert!(svc.contains(want), "missing {want:?} in:\n{svc}");
    }
    assert!(home.join(".pgpass").exists());
    let token = text(&cli(&["token"], &vars(&home, &cs)).stdout).trim().to_string();
    assert!(!svc.contains(&token), "the service file holds the token");

    // psql with nothing but HOME: the service supplies the server, the user, TLS and the
    // password file. Even PGSSLMODE=disable in the environment does not turn TLS off.
    for extra in [&[][..], &[("PGSSLMODE", "disable")][..]] {
        let out = psql_home(&home, "service=pgentra", WHO_AND_TLS, extra);
        assert_eq!(text(&out.stdout).trim(), "pgentra-app true", "{extra:?}: {}", text(&out.stderr));
    }
    let out = psql_home(&home, "", WHO_AND_TLS, &[("PGSERVICE", "pgentra")]);
    assert_eq!(text(&out.stdout).trim(), "pgentra-app true", "{}", text(&out.stderr));

    // A second run, and one for another service: ours is replaced, not duplicated; theirs stays.
    std::fs::write(home.join(".pg_service.conf"), format!("# mine\n[other]\nhost=elsewhere\n\n{svc}")).unwrap();
    for args in [&[][..], &["--service", "second"][..]] {
        let out = pgpass(&home, &cs, args);
        assert!(out.status.success(), "{}", text(&out.stderr));
    }
    let svc = std::fs::read_to_string(home.join(".pg_service.conf")).unwrap();
    assert!(svc.starts_with("# mine\n[other]\nhost=elsewhere\n"), "{svc}");
    assert_eq!(svc.matches("[pgentra]").count(), 1, "{svc}");
    assert_eq!(svc.matches("[second]").count(), 1, "{svc}");
    assert_eq!(svc.matches("sslmode=verify-full").count(), 2, "{svc}");
    let lines = std::fs::read_to_string(home.join(".pgpass")).unwrap();
    assert_eq!(lines.lines().count(), 1, "one password-file line for one server");
    let out = psql_home(&home, "service=second", WHO_AND_TLS, &[]);
    assert_eq!(text(&out.stdout).trim(), "pgentra-app true", "{}", text(&out.stderr));
    let _ = std::fs::remove_dir_all(&home);
}

#[test]
fn a_symlinked_pgpass_or_service_file_is_refused_and_its_target_untouched() {
    let home = home("symlink");
    let target = home.join("precious");
    std::fs::write(&target, "keep me\n").unwrap();
    std::os::unix::fs::symlink(&target, home.join(".pgpass")).unwrap();
    let out = pgpass(&home, &libpq(""), &[]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stderr));
    let err = text(&out.stderr);
    assert!(err.contains(".pgpass is a symbolic link") && err.contains("--file"), "{err}");
    assert_eq!(std::fs::read_to_string(&target).unwrap(), "keep me\n");
    assert!(std::fs::symlink_metadata(home.join(".pgpass")).unwrap().file_type().is_symlink());

    std::fs::remove_file(home.join(".pgpass")).unwrap();
    std::os::unix::fs::symlink(&target, home.join(".pg_service.conf")).unwrap();
    let out = pgpass(&home, &libpq(""), &[]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("--service-file"), "{}", text(&out.stderr));
    assert_eq!(std::fs::read_to_string(&target).unwrap(), "keep me\n");
    assert!(!home.join(".pgpass").exists(), "no token line without its TLS settings");
    let _ = std::fs::remove_dir_all(&home);
}

#[test]
fn concurrent_runs_keep_each_others_lines() {
    let home = home("concurrent");
    let n = 8;
    let children: Vec<_> = (0..n)
        .map(|i| {
            let cs = format!("host={} port={} dbname=db{i} sslmode=require", h("PGENTRA_PG_HOST"), h("PGENTRA_PG_PORT"));
            let mut cmd = Command::new(cli_path());
            cmd.env_clear().env("PATH", std::env::var("PATH").unwrap()).env("PGENTRA_IMDS_ENDPOINT", "http://127.0.0.1:9");
            cmd.envs(vars(&home, &cs)).args(["pgpass", "--service", &format!("svc{i}")]);
            cmd.stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap()
        })
        .collect();
    for c in children {
        let out = c.wait_with_output().unwrap();
        assert!(out.status.success(), "{}", text(&out.stderr));
    }
    let lines = std::fs::read_to_string(home.join(".pgpass")).unwrap();
    let svc = std::fs::read_to_string(home.join(".pg_service.conf")).unwrap();
    for i in 0..n {
        assert_eq!(lines.matches(&format!(":db{i}:pgentra-app:")).count(), 1, "line {i} lost:\n{}", lines.lines().map(|l| l.rsplit_once(':').unwrap().0).collect::<Vec<_>>().join("\n"));
        assert_eq!(svc.matches(&format!("[svc{i}]\n")).count(), 1, "section {i} lost:\n{svc}");
    }
    assert_eq!(std::fs::metadata(home.join(".pgpass")).unwrap().permissions().mode() & 0o777, 0o600);

    // The runs serialize on .pgpass.lock: while another holder has it, nothing is written.
    let lock = std::fs::OpenOptions::new().write(true).create(true).truncate(false).open(home.join(".pgpass.lock")).unwrap();
    assert_eq!(unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX) }, 0);
    let before = std::fs::read(home.join(".pgpass")).unwrap();
    let cs = format!("host={} port={} dbname=late sslmode=require", h("PGENTRA_PG_HOST"), h("PGENTRA_PG_PORT"));
    let mut cmd = Command::new(cli_path());
    cmd.env_clear().env("PATH", std::env::var("PATH").unwrap()).env("PGENTRA_IMDS_ENDPOINT", "http://127.0.0.1:9");
    let mut child = cmd.envs(vars(&home, &cs)).arg("pgpass").stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap();
    std::thread::sleep(Duration::from_secs(2));
    assert!(child.try_wait().unwrap().is_none(), "pgpass finished while the lock was held");
    assert_eq!(std::fs::read(home.join(".pgpass")).unwrap(), before);
    drop(lock);
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(std::fs::read_to_string(home.join(".pgpass")).unwrap().contains(":late:pgentra-app:"));
    let _ = std::fs::remove_dir_all(&home);
}

#[test]
fn a_mode_without_tls_is_refused_and_nothing_is_written() {
    // (The core already refuses to place a token where TLS is not guaranteed; this guards that
    // pgpass keeps refusing, with the way out named, and writes neither file.)
    let home = home("insecure");
    let cs = libpq("").replace("sslmode=require", "sslmode=prefer");
    let out = pgpass(&home, &cs, &[]);
    assert_eq!(out.status.code(), Some(7), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("PGENTRA_ALLOW_INSECURE"), "{}", text(&out.stderr));
    assert!(!home.join(".pgpass").exists() && !home.join(".pg_service.conf").exists());
    let _ = std::fs::remove_dir_all(&home);
}
