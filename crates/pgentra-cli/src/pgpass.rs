//! `pgentra pgpass`: write or refresh `host:port:dbname:user:token` in a libpq password file,
//! paired with a section of the connection service file (`~/.pg_service.conf`) that carries
//! host, port, dbname, user, sslmode (and sslrootcert), so that `psql service=NAME` uses the TLS
//! mode pgentra decided: a password-file line alone carries no sslmode, and libpq's default
//! (`prefer`) would send the token in cleartext to a server that declines TLS.
//!
//! Both files are opened without following symbolic links, and replaced atomically (temporary
//! file in the same directory, fsync, rename) under an advisory lock (flock on `.NAME.lock`
//! next to each), so concurrent runs do not lose each other's lines.

use crate::{usage, Failure};
use pgentra::{Connector, Error, ErrorKind, Options, SslMode};
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// One line: the four key fields (unescaped) and the password.
struct Entry {
    key: [String; 4],
    password: String,
}

impl Drop for Entry {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.password);
    }
}

/// libpq's escaping in a password file: `\` and `:` are preceded by a backslash.
pub fn escape(field: &str) -> String {
    let mut out = String::with_capacity(field.len());
    for c in field.chars() {
        if c == '\\' || c == ':' {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

impl Entry {
    fn line(&self) -> Vec<u8> {
        let mut s = String::new();
        for k in &self.key {
            s.push_str(&escape(k));
            s.push(':');
        }
        s.push_str(&escape(&self.password));
        let out = s.as_bytes().to_vec();
        zeroize::Zeroize::zeroize(&mut s);
        out
    }
}

/// The first four fields of a password-file line, unescaped as libpq reads them; `None` for
/// comments, blank lines and lines with fewer than five fields.
fn key_fields(line: &[u8]) -> Option<[Vec<u8>; 4]> {
    if line.first() == Some(&b'#') {
        return None;
    }
    let mut fields: Vec<Vec<u8>> = Vec::with_capacity(4);
    let mut cur = Vec::new();
    let mut i = 0;
    while i < line.len() && fields.len() < 4 {
        match line[i] {
            b'\\' if i + 1 < line.len() => {
                cur.push(line[i + 1]);
                i += 2;
                continue;
            }
            b':' => fields.push(std::mem::take(&mut cur)),
            c => cur.push(c),
        }
        i += 1;
    }
    if fields.len() < 4 {
        return None;
    }
    let mut it = fields.into_iter();
    Some([it.next()?, it.next()?, it.next()?, it.next()?])
}

/// Whether a line's key is exactly this entry's (it will be replaced).
fn same_key(fields: &[Vec<u8>; 4], e: &Entry) -> bool {
    fields.iter().zip(&e.key).all(|(f, k)| f.as_slice() == k.as_bytes())
}

/// Whether libpq would take this line (wildcards included) for the entry's connection.
fn matches(fields: &[Vec<u8>; 4], e: &Entry) -> bool {
    fields.iter().zip(&e.key).all(|(f, k)| f.as_slice() == b"*" || f.as_slice() == k.as_bytes())
}

/// The new file contents: the entries replace lines with the same key, at the position of the
/// first line libpq would otherwise pick for them (so that an earlier wildcard line cannot
/// shadow the token), else at the end. Other lines and comments are kept as they are.
fn merge(existing: &[u8], entries: &[Entry]) -> (Vec<u8>, usize) {
    let mut out = Vec::with_capacity(existing.len() + 4096);
    let mut inserted = false;
    let mut replaced = 0;
    let insert = |out: &mut Vec<u8>| {
        for e in entries {
            out.extend_from_slice(&e.line());
            out.push(b'\n');
        }
    };
    let body = existing.strip_suffix(b"\n").unwrap_or(existing);
    if !existing.is_empty() {
        for line in body.split(|&c| c == b'\n') {
            let fields = key_fields(line.strip_suffix(b"\r").unwrap_or(line));
            if let Some(f) = &fields {
                if entries.iter().any(|e| same_key(f, e)) {
                    replaced += 1;
                    if !inserted {
                        insert(&mut out);
                        inserted = true;
                    }
                    continue;
                }
                if !inserted && entries.iter().any(|e| matches(f, e)) {
                    insert(&mut out);
                    inserted = true;
                }
            }
            out.extend_from_slice(line);
            out.push(b'\n');
        }
    }
    if !inserted {
        insert(&mut out);
    }
    (out, replaced)
}

fn io_error(path: &Path, what: &str, e: std::io::Error) -> Error {
    Error::config(format!("cannot {what} {}: {e}", path.display()))
}

/// Which file, for messages: the flag and the variable that name it.
#[derive(Clone, Copy)]
struct Which {
    flag: &'static str,
    var: &'static str,
}

const PGPASS: Which = Which { flag: "--file", var: "PGPASSFILE" };
const SERVICE: Which = Which { flag: "--service-file", var: "PGSERVICEFILE" };

fn symlink_refused(path: &Path, which: Which) -> Error {
    Error::config(format!(
        "{} is a symbolic link; pgentra pgpass does not follow links (one could send the token into another file): replace it with a regular file, or name the real file with {} (or {})",
        path.display(),
        which.flag,
        which.var
    ))
}

/// The file's contents and mode (`None` if it does not exist), opened with O_NOFOLLOW: a
/// symbolic link is refused, never followed.
fn read_nofollow(path: &Path, which: Which) -> Result<Option<(Vec<u8>, u32)>, Error> {
    // O_NONBLOCK: a FIFO planted at the path must not hang the open.
    let f = OpenOptions::new().read(true).custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC).open(path);
    let mut f = match f {
        Ok(f) => f,
        Err(e) if e.raw_os_error() == Some(libc::ELOOP) => return Err(symlink_refused(path, which)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io_error(path, "read", e)),
    };
    let meta = f.metadata().map_err(|e| io_error(path, "read", e))?;
    if !meta.is_file() {
        return Err(Error::config(format!("{} is not a regular file: remove it, or name another file with {}", path.display(), which.flag)));
    }
    let mut buf = Vec::with_capacity(meta.len() as usize);
    f.read_to_end(&mut buf).map_err(|e| io_error(path, "read", e))?;
    Ok(Some((buf, meta.permissions().mode() & 0o7777)))
}

fn parent_dir(path: &Path) -> PathBuf {
    match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// Write `contents` to `path` atomically with `mode`: a temporary file in the same directory
/// (O_EXCL, so never through a link), fsync, rename over the target, fsync the directory. A
/// symbolic link at `path` is replaced by the rename, never followed (and `read_nofollow`
/// refused it before).
fn write_atomically(path: &Path, contents: &[u8], mode: u32) -> Result<(), Error> {
    let dir = parent_dir(path);
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "pgpass".into());
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or(0);
    let tmp = dir.join(format!(".{}.pgentra-{}-{nanos}.tmp", name.trim_start_matches('.'), std::process::id()));
    let result = (|| {
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(&tmp)
            .map_err(|e| io_error(&tmp, "create", e))?;
        // Exactly `mode` whatever the umask.
        f.set_permissions(std::fs::Permissions::from_mode(mode)).map_err(|e| io_error(&tmp, "chmod", e))?;
        f.write_all(contents).map_err(|e| io_error(&tmp, "write", e))?;
        f.sync_all().map_err(|e| io_error(&tmp, "sync", e))?;
        drop(f);
        std::fs::rename(&tmp, path).map_err(|e| io_error(path, "replace", e))?;
        if let Ok(d) = File::open(&dir) {
            let _ = d.sync_all();
        }
        Ok(())
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// An exclusive flock on `.NAME.lock` next to a file, released when dropped. The lock file is
/// left in place (removing it would let two runs lock different files).
struct Lock {
    _file: File,
}

const LOCK_WAIT: Duration = Duration::from_secs(30);

fn lock_path(path: &Path) -> PathBuf {
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "pgpass".into());
    parent_dir(path).join(format!(".{}.lock", name.trim_start_matches('.')))
}

fn lock(path: &Path) -> Result<Lock, Error> {
    let lp = lock_path(path);
    let f = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(&lp)
        .map_err(|e| {
            if e.raw_os_error() == Some(libc::ELOOP) {
                Error::config(format!("the lock file {} is a symbolic link: remove it", lp.display()))
            } else {
                Error::config(format!("cannot open the lock file {}: {e} (pgentra pgpass needs write access to {})", lp.display(), parent_dir(path).display()))
            }
        })?;
    let deadline = Instant::now() + LOCK_WAIT;
    loop {
        // SAFETY: a valid open descriptor; flock has no other preconditions.
        if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0 {
            return Ok(Lock { _file: f });
        }
        let e = std::io::Error::last_os_error();
        match e.raw_os_error() {
            Some(libc::EWOULDBLOCK) | Some(libc::EINTR) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
            Some(libc::EWOULDBLOCK) => {
                return Err(Error::config(format!(
                    "{} is still locked after {} s by another pgentra pgpass; try again (if none is running, the lock is held by a stuck process)",
                    lp.display(),
                    LOCK_WAIT.as_secs()
                )))
            }
            _ => return Err(Error::config(format!("cannot lock {}: {e}", lp.display()))),
        }
    }
}

fn default_path() -> Result<PathBuf, Error> {
    if let Some(p) = std::env::var_os("PGPASSFILE").filter(|p| !p.is_empty()) {
        return Ok(PathBuf::from(p));
    }
    match std::env::var_os("HOME").filter(|h| !h.is_empty()) {
        Some(h) => Ok(PathBuf::from(h).join(".pgpass")),
        None => Err(Error::config("HOME is not set: pass --file PATH (or set PGPASSFILE)")),
    }
}

fn default_service_path() -> Result<PathBuf, Error> {
    if let Some(p) = std::env::var_os("PGSERVICEFILE").filter(|p| !p.is_empty()) {
        return Ok(PathBuf::from(p));
    }
    match std::env::var_os("HOME").filter(|h| !h.is_empty()) {
        Some(h) => Ok(PathBuf::from(h).join(".pg_service.conf")),
        None => Err(Error::config("HOME is not set: pass --service-file PATH (or set PGSERVICEFILE)")),
    }
}

const DEFAULT_SERVICE: &str = "pgentra";

fn valid_service_name(name: &str) -> bool {
    !name.is_empty() && name.len() <= 64 && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
}

/// `[name]` and its `key=value` lines, as libpq's service file reads them.
fn service_section(name: &str, pairs: &[(&str, String)], pgpass: &Path) -> String {
    let mut s = format!("[{name}]\n");
    s.push_str(&format!(
        "# Written by `pgentra pgpass` (the token is in {}); rewritten on every run. Connect with: psql service={name}\n",
        pgpass.display()
    ));
    for (k, v) in pairs {
        s.push_str(&format!("{k}={v}\n"));
    }
    s
}

/// The service file with `section` in place of every `[name]` section (at the first one's
/// position, else appended); other sections, comments and blank lines are kept.
fn merge_service(existing: &[u8], name: &str, section: &str) -> Vec<u8> {
    let mut out: Vec<u8> = Vec::with_capacity(existing.len() + section.len() + 1);
    let mut in_ours = false;
    let mut inserted = false;
    let body = existing.strip_suffix(b"\n").unwrap_or(existing);
    if !existing.is_empty() {
        for line in body.split(|&c| c == b'\n') {
            let t = line.trim_ascii();
            if t.first() == Some(&b'[') {
                // libpq: the name runs from after '[' to the first ']'.
                let header = &t[1..];
                let end = header.iter().position(|&c| c == b']').unwrap_or(header.len());
                in_ours = &header[..end] == name.as_bytes();
                if in_ours {
                    if !inserted {
                        out.extend_from_slice(section.as_bytes());
                        inserted = true;
                    }
                    continue;
                }
            }
            // Our old lines go; blank lines stay (they separate sections).
            if in_ours && !t.is_empty() {
                continue;
            }
            out.extend_from_slice(line);
            out.push(b'\n');
        }
    }
    if !inserted {
        if !out.is_empty() && !out.ends_with(b"\n\n") {
            out.push(b'\n');
        }
        out.extend_from_slice(section.as_bytes());
    }
    out
}

/// Under the locks: write the service section, then the password-file lines (so a token line
/// never exists without its TLS settings). Returns (lines replaced, old pgpass mode).
fn update_files(pgpass: &Path, entries: &[Entry], service_file: &Path, service: &str, section: &str) -> Result<(usize, Option<u32>), Error> {
    // Both locks, always in path order, so that two runs naming the files the other way
    // round cannot deadlock.
    let (a, b) = (lock_path(pgpass), lock_path(service_file));
    let (first, second) = if a <= b { (pgpass, service_file) } else { (service_file, pgpass) };
    let _first = lock(first)?;
    let _second = if a != b { Some(lock(second)?) } else { None };

    let old_service = read_nofollow(service_file, SERVICE)?;
    let mut old_pgpass = read_nofollow(pgpass, PGPASS)?;

    let (svc_bytes, svc_mode) = match &old_service {
        Some((b, m)) => (b.as_slice(), m & 0o666),
        None => (&[][..], 0o600),
    };
    write_atomically(service_file, &merge_service(svc_bytes, service, section), svc_mode)?;

    let old_mode = old_pgpass.as_ref().map(|(_, m)| *m);
    let (mut contents, replaced) = merge(old_pgpass.as_ref().map(|(b, _)| b.as_slice()).unwrap_or(&[]), entries);
    if let Some((b, _)) = &mut old_pgpass {
        zeroize::Zeroize::zeroize(b);
    }
    let written = write_atomically(pgpass, &contents, 0o600);
    zeroize::Zeroize::zeroize(&mut contents);
    written?;
    Ok((replaced, old_mode))
}

fn truthy(v: &str) -> bool {
    matches!(v.trim().to_ascii_lowercase().as_str(), "1" | "true" | "yes" | "on")
}

fn absolute(p: &Path) -> PathBuf {
    if p.is_absolute() {
        return p.to_path_buf();
    }
    std::env::current_dir().map(|d| d.join(p)).unwrap_or_else(|_| p.to_path_buf())
}

pub fn cmd(options: Options, rest: &[String]) -> Result<u8, Failure> {
    let mut file: Option<PathBuf> = None;
    let mut service_file: Option<PathBuf> = None;
    let mut service: Option<String> = None;
    let mut i = 0;
    while i < rest.len() {
        let (flag, inline) = match rest[i].split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f.to_string(), Some(v.to_string())),
            _ => (rest[i].clone(), None),
        };
        if !matches!(flag.as_str(), "--file" | "-f" | "--service" | "--service-file") {
            return usage(format!("unexpected argument '{}'", rest[i]));
        }
        let value = match inline {
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
        };
        if value.is_empty() {
            return usage(format!("{flag} needs a non-empty value"));
        }
        match flag.as_str() {
            "--file" | "-f" => file = Some(PathBuf::from(value)),
            "--service-file" => service_file = Some(PathBuf::from(value)),
            _ => {
                if !valid_service_name(&value) {
                    return usage(format!("--service '{value}' is not a usable service name: use 1 to 64 letters, digits, '_', '-' or '.'"));
                }
                service = Some(value);
            }
        }
    }
    let path = match file {
        Some(p) => p,
        None => default_path()?,
    };
    let service_file = match service_file {
        Some(p) => p,
        None => default_service_path()?,
    };
    let service = service.unwrap_or_else(|| DEFAULT_SERVICE.to_string());
    let allow_insecure = options.allow_insecure.unwrap_or_else(|| std::env::var("PGENTRA_ALLOW_INSECURE").map(|v| truthy(&v)).unwrap_or(false));
    let c = Connector::new(options)?;
    let p = c.params()?;
    let host = p.host.clone().ok_or_else(|| Error::config("no host configured (AZURE_POSTGRESQL_HOST or host in the connection string)"))?;
    let port = p.port.unwrap_or(5432).to_string();
    // Without a configured database libpq would use the user name; `*` matches whatever it is.
    let dbname = p.dbname.clone().unwrap_or_else(|| "*".to_string());
    let user = p.user.clone().ok_or_else(|| Error::config("no database user"))?;
    let password = p.password.clone().ok_or_else(|| Error::config("no token or password"))?;
    // The TLS mode pgentra decided, for the service section.
    let sslmode = p.sslmode.unwrap_or(SslMode::Require);
    if !sslmode.guarantees_tls() && !allow_insecure {
        return Err(Error::new(
            ErrorKind::TlsPolicy,
            format!(
                "sslmode={} does not guarantee TLS, so a client using the password file could send the token in cleartext; configure sslmode=require, verify-ca or verify-full (Azure requires TLS), or set PGENTRA_ALLOW_INSECURE=1 for a local test server",
                sslmode.as_str()
            ),
        )
        .into());
    }
    let mut pairs: Vec<(&str, String)> = vec![("host", host.clone()), ("port", port.clone())];
    if let Some(d) = &p.dbname {
        pairs.push(("dbname", d.clone()));
    }
    pairs.push(("user", user.clone()));
    pairs.push(("sslmode", sslmode.as_str().to_string()));
    if let Some((_, v)) = p.extra.iter().find(|(k, _)| k == "sslrootcert") {
        pairs.push(("sslrootcert", v.clone()));
    }
    let passfile = absolute(&path);
    pairs.push(("passfile", passfile.display().to_string()));
    drop(p);
    // A service-file value runs to the end of its line (surrounding blanks are trimmed).
    if let Some((k, _)) = pairs.iter().find(|(_, v)| v.contains(['\n', '\r']) || v.trim() != v.as_str() || v.is_empty()) {
        return Err(Error::config(format!("the {k} value cannot be written to a service file (empty, a line break, or leading/trailing blanks)")).into());
    }
    let section = service_section(&service, &pairs, &passfile);

    let mut entries = Vec::new();
    for h in host.split(',').map(str::trim).filter(|h| !h.is_empty()) {
        let e = Entry { key: [h.to_string(), port.clone(), dbname.clone(), user.clone()], password: password.expose().to_string() };
        if e.key.iter().chain(std::iter::once(&e.password)).any(|f| f.contains(['\n', '\r'])) {
            return Err(Error::config("a value contains a line break, which a password file cannot hold").into());
        }
        entries.push(e);
    }

    let (replaced, old_mode) = update_files(&path, &entries, &service_file, &service, &section)?;

    let keys: Vec<String> = entries.iter().map(|e| e.key.iter().map(|k| escape(k)).collect::<Vec<_>>().join(":")).collect();
    let mut msg = format!(
        "pgentra pgpass: {} {} in {} (mode 0600",
        if replaced > 0 { "refreshed" } else { "added" },
        keys.join(", "),
        path.display()
    );
    if let Some(m) = old_mode.filter(|m| *m != 0o600) {
        msg.push_str(&format!(", was {m:04o}"));
    }
    msg.push_str(&format!("), with service [{service}] in {} (sslmode={})", service_file.display(), sslmode.as_str()));
    if !c.is_password_mode() {
        if let Ok(info) = c.token_info() {
            let left = info.expires_on - pgentra::identity::now_unix();
            msg.push_str(&format!("; the token expires in {} min: run this again before then", left.max(0) / 60));
        }
    }
    println!("{msg}");
    println!("Connect with: psql service={service}   (or PGSERVICE={service}; the service carries sslmode, so the token only travels over TLS)");
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(host: &str, db: &str, user: &str, pw: &str) -> Entry {
        Entry { key: [host.into(), "5432".into(), db.into(), user.into()], password: pw.into() }
    }

    #[test]
    fn escaping() {
        assert_eq!(escape(r"a:b\c"), r"a\:b\\c");
        let e = entry("h:1", "d", r"u\x", "p:w");
        let line = e.line();
        assert_eq!(line, br"h\:1:5432:d:u\\x:p\:w".to_vec());
        let f = key_fields(&line).unwrap();
        assert_eq!(f[0], b"h:1");
        assert_eq!(f[3], br"u\x");
    }

    #[test]
    fn replaces_in_place_and_keeps_other_lines() {
        let e = [entry("srv", "postgres", "app", "NEW")];
        let old = b"# comment\nother:5432:*:bob:pw\nsrv:5432:postgres:app:OLD\nlast:1:2:3:4\n";
        let (out, n) = merge(old, &e);
        assert_eq!(n, 1);
        assert_eq!(out, b"# comment\nother:5432:*:bob:pw\nsrv:5432:postgres:app:NEW\nlast:1:2:3:4\n".to_vec());
        let (again, n) = merge(&out, &e);
        assert_eq!(n, 1);
        assert_eq!(again, out);
    }

    #[test]
    fn goes_before_a_shadowing_wildcard_and_appends_otherwise() {
        let e = [entry("srv", "postgres", "app", "NEW")];
        let (out, _) = merge(b"*:*:*:*:catchall\nsrv:5432:postgres:app:OLD", &e);
        assert_eq!(out, b"srv:5432:postgres:app:NEW\n*:*:*:*:catchall\n".to_vec());
        let (out, n) = merge(b"x:1:2:3:4", &e);
        assert_eq!(n, 0);
        assert_eq!(out, b"x:1:2:3:4\nsrv:5432:postgres:app:NEW\n".to_vec());
        let (out, _) = merge(b"", &e);
        assert_eq!(out, b"srv:5432:postgres:app:NEW\n".to_vec());
    }

    fn scratch(tag: &str) -> PathBuf {
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
        let d = std::env::temp_dir().join(format!("pgentra-pgpass-unit-{}-{nanos}-{tag}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    fn section(name: &str, mode: &str) -> String {
        service_section(name, &[("host", "srv".into()), ("port", "5432".into()), ("sslmode", mode.into())], Path::new("/p"))
    }

    #[test]
    fn service_section_is_replaced_not_duplicated_and_others_are_kept() {
        let new = section("pgentra", "verify-full");
        let old = "# top\n[other]\nhost=a\n\n[pgentra]\nhost=old\nsslmode=prefer\n\n[last]\nhost=z\n";
        let out = String::from_utf8(merge_service(old.as_bytes(), "pgentra", &new)).unwrap();
        assert_eq!(out, format!("# top\n[other]\nhost=a\n\n{new}\n[last]\nhost=z\n"));
        assert_eq!(out.matches("[pgentra]").count(), 1);
        assert!(!out.contains("sslmode=prefer") && out.contains("sslmode=verify-full"));
        // Idempotent.
        assert_eq!(String::from_utf8(merge_service(out.as_bytes(), "pgentra", &new)).unwrap(), out);
        // Appended to a file without it, after a blank line; a new file is the section alone.
        let out = String::from_utf8(merge_service(b"[other]\nhost=a", "pgentra", &new)).unwrap();
        assert_eq!(out, format!("[other]\nhost=a\n\n{new}"));
        assert_eq!(String::from_utf8(merge_service(b"", "pgentra", &new)).unwrap(), new);
        // Duplicates of ours collapse into one, at the first one's place; a prefix is not ours.
        let out = String::from_utf8(merge_service(b"[pgentra]\nx=1\n[pgentra2]\ny=2\n[pgentra]\nz=3\n", "pgentra", &new)).unwrap();
        assert_eq!(out, format!("{new}[pgentra2]\ny=2\n"));
    }

    #[test]
    fn update_writes_both_files_with_sslmode() {
        let d = scratch("both");
        let (pp, sf) = (d.join(".pgpass"), d.join(".pg_service.conf"));
        std::fs::write(&sf, "[mine]\nhost=x\n").unwrap();
        let (n, _) = update_files(&pp, &[entry("srv", "postgres", "app", "T1")], &sf, "pgentra", &section("pgentra", "require")).unwrap();
        assert_eq!(n, 0);
        assert_eq!(std::fs::read_to_string(&pp).unwrap(), "srv:5432:postgres:app:T1\n");
        assert_eq!(std::fs::metadata(&pp).unwrap().permissions().mode() & 0o777, 0o600);
        let svc = std::fs::read_to_string(&sf).unwrap();
        assert!(svc.starts_with("[mine]\nhost=x\n\n[pgentra]\n") && svc.contains("\nsslmode=require\n"), "{svc}");
        let (n, _) = update_files(&pp, &[entry("srv", "postgres", "app", "T2")], &sf, "pgentra", &section("pgentra", "verify-full")).unwrap();
        assert_eq!(n, 1);
        assert_eq!(std::fs::read_to_string(&pp).unwrap(), "srv:5432:postgres:app:T2\n");
        let svc = std::fs::read_to_string(&sf).unwrap();
        assert_eq!(svc.matches("[pgentra]").count(), 1, "{svc}");
        assert!(svc.contains("\nsslmode=verify-full\n") && !svc.contains("sslmode=require"), "{svc}");
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn symlinks_are_refused_and_their_targets_untouched() {
        let d = scratch("link");
        let target = d.join("target");
        std::fs::write(&target, "precious\n").unwrap();
        let (pp, sf) = (d.join(".pgpass"), d.join(".pg_service.conf"));
        std::os::unix::fs::symlink(&target, &pp).unwrap();
        let e = update_files(&pp, &[entry("srv", "postgres", "app", "T")], &sf, "pgentra", &section("pgentra", "require")).unwrap_err();
        assert!(e.message().contains("symbolic link") && e.message().contains("--file"), "{}", e.message());
        assert!(!e.message().contains("T\n"));
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "precious\n");
        assert!(std::fs::symlink_metadata(&pp).unwrap().file_type().is_symlink());
        // The service file likewise (nothing is written: the pgpass line needs its section).
        std::fs::remove_file(&pp).unwrap();
        std::os::unix::fs::symlink(&target, &sf).unwrap();
        let e = update_files(&pp, &[entry("srv", "postgres", "app", "T")], &sf, "pgentra", &section("pgentra", "require")).unwrap_err();
        assert!(e.message().contains("symbolic link") && e.message().contains("--service-file"), "{}", e.message());
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "precious\n");
        assert!(!pp.exists());
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn concurrent_updates_keep_every_line() {
        let d = scratch("race");
        let (pp, sf) = (d.join(".pgpass"), d.join(".pg_service.conf"));
        let threads: Vec<_> = (0..16)
            .map(|i| {
                let (pp, sf) = (pp.clone(), sf.clone());
                std::thread::spawn(move || {
                    for round in 0..5 {
                        let e = [entry("srv", &format!("db{i}"), "app", &format!("T{round}"))];
                        update_files(&pp, &e, &sf, &format!("svc{i}"), &section(&format!("svc{i}"), "require")).unwrap();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let lines = std::fs::read_to_string(&pp).unwrap();
        let svc = std::fs::read_to_string(&sf).unwrap();
        for i in 0..16 {
            assert_eq!(lines.matches(&format!("srv:5432:db{i}:app:T4\n")).count(), 1, "{lines}");
            assert_eq!(svc.matches(&format!("[svc{i}]\n")).count(), 1, "{svc}");
        }
        assert_eq!(lines.lines().count(), 16);
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn a_held_lock_makes_the_writer_wait() {
        let d = scratch("lock");
        let (pp, sf) = (d.join(".pgpass"), d.join(".pg_service.conf"));
        let held = lock(&pp).unwrap();
        assert!(d.join(".pgpass.lock").exists());
        let t = {
            let (pp, sf) = (pp.clone(), sf.clone());
            std::thread::spawn(move || update_files(&pp, &[entry("srv", "postgres", "app", "T")], &sf, "pgentra", &section("pgentra", "require")).map(|_| ()))
        };
        std::thread::sleep(Duration::from_millis(300));
        assert!(!pp.exists() && !sf.exists(), "written while another run held the lock");
        drop(held);
        t.join().unwrap().unwrap();
        assert!(pp.exists() && sf.exists());
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn service_names() {
        assert!(valid_service_name("pgentra") && valid_service_name("my-db.prod_1"));
        for bad in ["", "a]b", "a b", "a\nb", "a=b", "[x"] {
            assert!(!valid_service_name(bad), "{bad:?}");
        }
    }
}
