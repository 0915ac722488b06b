//! Unit tests of the shared cache: entry parsing and validation, files on disk, folders, locks.

use super::dir::is_entry_name;
use super::*;
use base64::Engine;

fn jwt(aud: &str, appid: &str) -> String {
    let b = |v: serde_json::Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
    format!("{}.{}.sig", b(serde_json::json!({"alg": "none"})), b(serde_json::json!({"aud": aud, "appid": appid, "tid": "t1"})))
}

fn file(id: &str, token: &str, fetched_at: i64, boot: i64, boot_id: &str, lifetime: i64, refresh_in: i64) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "v": 1, "id": id, "token": token, "credential": "managed-identity", "detail": "d",
        "fetched_at": fetched_at, "fetched_boottime": boot, "boot_id": boot_id,
        "lifetime": lifetime, "refresh_in": refresh_in,
    }))
    .unwrap()
}

#[test]
fn entries_parse_and_age_by_the_larger_clock() {
    let t = jwt("https://ossrdbms-aad.database.windows.net", "c1");
    let now = 1_700_000_000;
    // Written 100 s ago by both clocks.
    let e = parse_entry(&file("k", &t, now - 100, 900, "b", 3600, 3300), "k", now, 1000, "b").unwrap();
    assert_eq!(e.expires_in, 3500);
    assert_eq!(e.refresh_in, 3200);
    assert_eq!(e.token.expose(), t);
    // The wall clock says 10 s, the boot clock 1,000 s: the larger age wins.
    let e = parse_entry(&file("k", &t, now - 10, 0, "b", 3600, 3300), "k", now, 1000, "b").unwrap();
    assert_eq!(e.expires_in, 2600);
    // The wall clock was set back an hour since the fetch: the boot clock decides.
    let e = parse_entry(&file("k", &t, now + 3600, 900, "b", 3600, 3300), "k", now, 1000, "b").unwrap();
    assert_eq!(e.expires_in, 3500);
    // Another boot, and a fetch "in the future" by the wall clock: a miss.
    assert!(parse_entry(&file("k", &t, now + 3600, 900, "other", 3600, 3300), "k", now, 1000, "b").is_none());
    // A boot clock that went backwards (another time namespace): a miss.
    assert!(parse_entry(&file("k", &t, now - 100, 5000, "b", 3600, 3300), "k", now, 1000, "b").is_none());
    // Another boot: the wall clock alone.
    let e = parse_entry(&file("k", &t, now - 100, 99_999, "other", 3600, 3300), "k", now, 1000, "b").unwrap();
    assert_eq!(e.expires_in, 3500);
    // Due for refresh but valid: served, with a negative refresh_in.
    let e = parse_entry(&file("k", &t, now - 3400, 0, "x", 3600, 3300), "k", now, 1000, "b").unwrap();
    assert_eq!((e.expires_in, e.refresh_in), (200, -100));
}

#[test]
fn odd_entries_are_misses() {
    let t = jwt("https://ossrdbms-aad.database.windows.net", "c1");
    let now = 1_700_000_000;
    let ok = file("k", &t, now - 100, 900, "b", 3600, 3300);
    assert!(parse_entry(&ok, "k", now, 1000, "b").is_some());
    // Another key's entry.
    assert!(parse_entry(&ok, "other", now, 1000, "b").is_none());
    // Truncated at every length.
    for n in 0..ok.len() {
        assert!(parse_entry(&ok[..n], "k", now, 1000, "b").is_none(), "truncated at {n}");
    }
    // Expired, or under a minute left.
    assert!(parse_entry(&file("k", &t, now - 3600, 0, "x", 3600, 3300), "k", now, 1000, "b").is_none());
    assert!(parse_entry(&file("k", &t, now - 3550, 0, "x", 3600, 3300), "k", now, 1000, "b").is_none());
    // Nonsense times and tokens.
    assert!(parse_entry(&file("k", &t, now, 1000, "b", 0, 0), "k", now, 1000, "b").is_none());
    assert!(parse_entry(&file("k", &t, now, 1000, "b", 100, 200), "k", now, 1000, "b").is_none());
    assert!(parse_entry(&file("k", &t, i64::MIN, 1000, "b", i64::MAX, 0), "k", now, 1000, "b").is_none());
    assert!(parse_entry(&file("k", &t, now, i64::MIN, "b", 3600, 0), "k", now, 1000, "b").is_none());
    assert!(parse_entry(&file("k", "", now, 1000, "b", 3600, 0), "k", now, 1000, "b").is_none());
    assert!(parse_entry(&file("k", "a b", now, 1000, "b", 3600, 0), "k", now, 1000, "b").is_none());
    let mut v: serde_json::Value = serde_json::from_slice(&ok).unwrap();
    v["v"] = 2.into();
    assert!(parse_entry(&serde_json::to_vec(&v).unwrap(), "k", now, 1000, "b").is_none());
    v["v"] = 1.into();
    v["credential"] = "nonsense".into();
    assert!(parse_entry(&serde_json::to_vec(&v).unwrap(), "k", now, 1000, "b").is_none());
    assert!(parse_entry(b"\xff\xfe", "k", now, 1000, "b").is_none());
}

fn shared_in(dir: &Path, client: Option<&str>) -> Shared {
    let parts = KeyParts {
        kind: "managed-identity",
        endpoint: "imds http://127.0.0.1:9".into(),
        tenant: String::new(),
        client: client.unwrap_or_default().into(),
        scope: "https://ossrdbms-aad.database.windows.net/.default".into(),
        accepts: &[CredentialKind::ManagedIdentity],
    };
    Shared::new(open_dir(dir, true).unwrap(), &parts, client.map(str::to_string), None)
}

fn tempdir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("pgentra-sc-test-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

fn cached(token: &str) -> Cached {
    Cached::for_test(Secret::new(token), CredentialKind::ManagedIdentity, 3600, 3300)
}

#[test]
fn write_read_and_validation_on_disk() {
    use std::os::unix::fs::PermissionsExt;
    let d = tempdir("rw");
    let s = shared_in(&d, Some("c1"));
    assert!(s.read().is_none());
    let t = jwt("https://ossrdbms-aad.database.windows.net/", "c1");
    s.write(&cached(&t));
    let meta = std::fs::metadata(s.entry_path()).unwrap();
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    let e = s.read().expect("entry");
    assert_eq!(e.token.expose(), t);
    assert!(e.expires_in > 3500 && e.refresh_in > 3200);
    // Another identity's view of the same folder: another file, so a miss.
    assert!(shared_in(&d, Some("c2")).read().is_none());
    // A token for another audience or identity is neither written nor read.
    let wrong = shared_in(&d, Some("c3"));
    // (Only a marker without a token is left, so that other processes do not wait.)
    for token in [jwt("https://management.azure.com", "c3"), jwt("https://ossrdbms-aad.database.windows.net", "c1")] {
        wrong.write(&cached(&token));
        assert!(wrong.read().is_none());
        assert!(wrong.unshared());
        assert!(!std::fs::read_to_string(wrong.entry_path()).unwrap().contains(&token));
    }
    // 0644: refused.
    std::fs::set_permissions(s.entry_path(), std::fs::Permissions::from_mode(0o644)).unwrap();
    assert!(s.read().is_none());
    std::fs::set_permissions(s.entry_path(), std::fs::Permissions::from_mode(0o600)).unwrap();
    assert!(s.read().is_some());
    // A symlink to a valid entry: refused; a write replaces the link, not its target.
    let real = d.join("real");
    std::fs::rename(s.entry_path(), &real).unwrap();
    std::os::unix::fs::symlink(&real, s.entry_path()).unwrap();
    assert!(s.read().is_none());
    s.write(&cached(&t));
    assert!(!std::fs::symlink_metadata(s.entry_path()).unwrap().file_type().is_symlink());
    assert!(s.read().is_some());
    // A hard link: refused.
    std::fs::hard_link(s.entry_path(), d.join("second")).unwrap();
    assert!(s.read().is_none());
    std::fs::remove_file(d.join("second")).unwrap();
    assert!(s.read().is_some());
    // Garbage: a miss.
    std::fs::write(s.entry_path(), b"{\"v\":1,").unwrap();
    std::fs::set_permissions(s.entry_path(), std::fs::Permissions::from_mode(0o600)).unwrap();
    assert!(s.read().is_none());
    // Compare-and-invalidate: only the rejected token is removed.
    s.write(&cached(&t));
    assert!(!s.remove_if("a.b.c"));
    assert!(s.read().is_some());
    assert!(s.remove_if(&t));
    assert!(s.read().is_none());
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn the_lock_is_exclusive_across_descriptions() {
    let d = tempdir("lock");
    let a = shared_in(&d, None);
    let b = shared_in(&d, None);
    let held = match a.try_lock() {
        Lock::Held(g) => g,
        _ => panic!("first lock"),
    };
    assert!(matches!(b.try_lock(), Lock::Busy));
    assert!(matches!(a.try_lock(), Lock::Busy), "a second description in the same process waits too");
    // While held, compare-and-invalidate leaves the entry alone.
    assert!(!b.remove_if("x.y.z"));
    drop(held);
    assert!(matches!(b.try_lock(), Lock::Held(_)));
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn folders_that_are_refused() {
    use std::os::unix::fs::PermissionsExt;
    let d = tempdir("dirs");
    assert!(open_dir(&d, true).is_ok());
    assert_eq!(std::fs::metadata(&d).unwrap().permissions().mode() & 0o777, 0o700);
    for mode in [0o770, 0o707, 0o750, 0o701] {
        std::fs::set_permissions(&d, std::fs::Permissions::from_mode(mode)).unwrap();
        let e = open_dir(&d, true).unwrap_err();
        assert!(e.contains("group or others"), "{e}");
    }
    std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o700)).unwrap();
    let link = tempdir("dirs-link");
    std::os::unix::fs::symlink(&d, &link).unwrap();
    assert!(open_dir(&link, true).unwrap_err().contains("symbolic link"));
    // Never chmod-ed through the link either.
    assert_eq!(std::fs::metadata(&d).unwrap().permissions().mode() & 0o777, 0o700);
    let f = d.join("file");
    std::fs::write(&f, b"").unwrap();
    assert!(open_dir(&f, false).is_err());
    std::fs::remove_file(&link).unwrap();
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn entry_names_for_clear() {
    let h = "0123456789abcdef0123456789abcdef";
    assert!(is_entry_name(&format!("{h}.tok")));
    assert!(is_entry_name(&format!(".{h}.123.0.tmp")));
    assert!(!is_entry_name(&format!("{h}.lock")));
    assert!(!is_entry_name("azure-postgresql-roots.pem"));
    assert!(!is_entry_name(&format!("{}.tok", &h[1..])));
}

/// A child after fork does not hold its parent's lock (it waits like any other process), and
/// the copy it inherited is closed, so the parent's release or death frees the lock.
#[test]
fn a_child_after_fork_never_holds_the_parents_lock() {
    let d = tempdir("fork");
    let s = shared_in(&d, None);
    let held = match s.try_lock() {
        Lock::Held(g) => g,
        _ => panic!("lock"),
    };
    let inherited = held.fd.as_ref().map(|f| f.as_raw_fd()).unwrap();
    // SAFETY: fork/_exit/waitpid; the child only tries the lock, checks the inherited number
    // and exits with _exit.
    unsafe {
        let pid = libc::fork();
        assert!(pid >= 0);
        if pid == 0 {
            let busy = matches!(s.try_lock(), Lock::Busy);
            // The parent's descriptor number is closed here (or names another file).
            let closed = libc::fcntl(inherited, libc::F_GETFD) == -1;
            drop(held); // a guard from before the fork touches nothing in the child
            let still_busy = matches!(s.try_lock(), Lock::Busy);
            libc::_exit(if busy && closed && still_busy { 0 } else { 1 });
        }
        let mut st = 0;
        libc::waitpid(pid, &mut st, 0);
        assert!(libc::WIFEXITED(st) && libc::WEXITSTATUS(st) == 0, "child status {st:#x}");
    }
    // The child's exit did not release the parent's lock; the parent's release does.
    let other = shared_in(&d, None);
    assert!(matches!(other.try_lock(), Lock::Busy));
    drop(held);
    assert!(matches!(other.try_lock(), Lock::Held(_)));
    std::fs::remove_dir_all(&d).unwrap();
}

/// A token this key may not share (another kind, as when the automatic chain chose the Azure
/// CLI) leaves a marker without a token, so other processes fetch their own at once; a valid
/// entry is never replaced by a marker.
#[test]
fn tokens_that_cannot_be_shared_leave_a_marker() {
    let d = tempdir("marker");
    let s = shared_in(&d, None);
    let t = jwt("https://ossrdbms-aad.database.windows.net", "c1");
    let az = Cached::for_test(Secret::new(t.clone()), CredentialKind::AzureCli, 3600, 3300);
    s.write(&az);
    assert!(s.read().is_none());
    assert!(s.unshared());
    let on_disk = std::fs::read_to_string(s.entry_path()).unwrap();
    assert!(!on_disk.contains(&t), "a marker holds no token");
    // A shareable token replaces the marker...
    s.write(&cached(&t));
    assert!(s.read().is_some());
    assert!(!s.unshared());
    // ...and a marker never replaces a valid entry.
    s.write(&az);
    assert!(s.read().is_some());
    assert!(!s.unshared());
    // Markers expire, and are never read as tokens.
    let now = 1_700_000_000;
    let marker = |fetched_at: i64, lifetime: i64| {
        serde_json::to_vec(&serde_json::json!({
            "v": 1, "id": "k", "token": "", "credential": "azure-cli", "detail": "",
            "fetched_at": fetched_at, "fetched_boottime": 0, "boot_id": "x",
            "lifetime": lifetime, "refresh_in": 0, "unshared": true,
        }))
        .unwrap()
    };
    assert!(parse_marker(&marker(now - 10, 600), "k", now, 1000, "b"));
    assert!(!parse_marker(&marker(now - 601, 600), "k", now, 1000, "b"));
    assert!(!parse_marker(&marker(now - 10, 600), "other", now, 1000, "b"));
    assert!(!parse_marker(&marker(now - 10, 1_000_000), "k", now, 1000, "b"));
    assert!(parse_entry(&marker(now - 10, 600), "k", now, 1000, "b").is_none());
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn a_failure_is_remembered_for_the_other_processes_while_it_holds() {
    use crate::error::{Error, ErrorKind};
    use std::time::Duration;
    let d = tempdir("failure");
    let s = shared_in(&d, Some("c1"));
    assert!(s.failure().is_none());
    let e = Error::new(ErrorKind::IdentityService, "the identity endpoint answered 400").with_code("AADSTS700016");
    s.write_failure(&e, Duration::from_secs(30));
    let got = s.failure().expect("a remembered failure");
    assert_eq!(got.kind(), ErrorKind::IdentityService);
    assert_eq!(got.code(), Some("AADSTS700016"));
    assert!(got.message().starts_with("the identity endpoint answered 400 (another process's request 0 s ago"), "{}", got.message());
    // It is neither a token nor a "not shared" marker, and another key does not see it.
    assert!(s.read().is_none());
    assert!(!s.unshared());
    assert!(shared_in(&d, Some("c2")).failure().is_none());
    // A token written later replaces it.
    let t = jwt("https://ossrdbms-aad.database.windows.net/", "c1");
    s.write(&cached(&t));
    assert!(s.failure().is_none());
    // ...and a failure never replaces a valid token.
    s.write_failure(&e, Duration::from_secs(30));
    assert_eq!(s.read().expect("the token stays").token.expose(), t);
    assert!(s.failure().is_none());
    // forget_failure removes a failure marker, never a token.
    assert!(!s.forget_failure());
    assert!(s.read().is_some());
    assert!(s.remove_if(&t));
    s.write_failure(&e, Duration::from_secs(30));
    assert!(s.forget_failure());
    assert!(s.failure().is_none());
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn failure_markers_expire_and_odd_ones_are_ignored() {
    let now = 1_700_000_000;
    let marker = |lifetime: i64, fetched_at: i64, kind: &str, message: &str| {
        serde_json::to_vec(&serde_json::json!({
            "v": 1, "id": "k", "token": "", "credential": "", "detail": "",
            "fetched_at": fetched_at, "fetched_boottime": 1000, "boot_id": "b",
            "lifetime": lifetime, "refresh_in": 0,
            "failed": {"kind": kind, "message": message, "code": null},
        }))
        .unwrap()
    };
    let ok = marker(3, now - 1, "network", "down");
    let e = parse_failure(&ok, "k", now, 1001, "b").expect("holds");
    assert_eq!(e.kind(), crate::error::ErrorKind::Network);
    assert!(parse_failure(&ok, "other", now, 1001, "b").is_none(), "another key");
    assert!(parse_failure(&marker(3, now - 3, "network", "down"), "k", now, 1003, "b").is_none(), "expired");
    assert!(parse_failure(&marker(0, now, "network", "down"), "k", now, 1000, "b").is_none());
    assert!(parse_failure(&marker(61, now, "network", "down"), "k", now, 1000, "b").is_none(), "over a minute");
    assert!(parse_failure(&marker(3, now, "nonsense", "down"), "k", now, 1000, "b").is_none(), "unknown kind");
    assert!(parse_failure(&marker(3, now, "network", &"x".repeat(3000)), "k", now, 1000, "b").is_none(), "too long");
    for n in 0..ok.len() {
        assert!(parse_failure(&ok[..n], "k", now, 1001, "b").is_none(), "truncated at {n}");
    }
    // A token entry is not a failure.
    let t = jwt("https://ossrdbms-aad.database.windows.net", "c1");
    assert!(parse_failure(&file("k", &t, now - 100, 900, "b", 3600, 3300), "k", now, 1000, "b").is_none());
}
