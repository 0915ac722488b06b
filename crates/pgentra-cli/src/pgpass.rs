//! `pgentra pgpass`: write or refresh `host:port:dbname:user:token` in a libpq password file,
//! atomically (temporary file in the same directory, fsync, rename), mode 0600.

use crate::{usage, Failure};
use pgentra::{Connector, Error, Options};
use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

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

/// Write `contents` to `path` atomically with mode 0600: a temporary file in the same
/// directory, fsync, rename over the target, fsync the directory. A symlink is followed (the
/// file it points to is replaced).
fn write_atomically(path: &Path, contents: &[u8]) -> Result<(), Error> {
    let target = match std::fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_symlink() => std::fs::canonicalize(path).map_err(|e| io_error(path, "resolve", e))?,
        _ => path.to_path_buf(),
    };
    let dir = match target.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = target.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "pgpass".into());
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or(0);
    let tmp = dir.join(format!(".{name}.pgentra-{}-{nanos}.tmp", std::process::id()));
    let result = (|| {
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(|e| io_error(&tmp, "create", e))?;
        // Exactly 0600 whatever the umask.
        f.set_permissions(std::fs::Permissions::from_mode(0o600)).map_err(|e| io_error(&tmp, "chmod", e))?;
        f.write_all(contents).map_err(|e| io_error(&tmp, "write", e))?;
        f.sync_all().map_err(|e| io_error(&tmp, "sync", e))?;
        drop(f);
        std::fs::rename(&tmp, &target).map_err(|e| io_error(&target, "replace", e))?;
        if let Ok(d) = std::fs::File::open(&dir) {
            let _ = d.sync_all();
        }
        Ok(())
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
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

pub fn cmd(options: Options, rest: &[String]) -> Result<u8, Failure> {
    let mut file: Option<PathBuf> = None;
    let mut i = 0;
    while i < rest.len() {
        match rest[i].as_str() {
            "--file" | "-f" => {
                let Some(v) = rest.get(i + 1) else {
                    return usage("--file needs a path");
                };
                file = Some(PathBuf::from(v));
                i += 2;
            }
            s if s.starts_with("--file=") => {
                file = Some(PathBuf::from(&s["--file=".len()..]));
                i += 1;
            }
            a => return usage(format!("unexpected argument '{a}'")),
        }
    }
    let path = match file {
        Some(p) => p,
        None => default_path()?,
    };
    let c = Connector::new(options)?;
    let p = c.params()?;
    let host = p.host.clone().ok_or_else(|| Error::config("no host configured (AZURE_POSTGRESQL_HOST or host in the connection string)"))?;
    let port = p.port.unwrap_or(5432).to_string();
    // Without a configured database libpq would use the user name; `*` matches whatever it is.
    let dbname = p.dbname.clone().unwrap_or_else(|| "*".to_string());
    let user = p.user.clone().ok_or_else(|| Error::config("no database user"))?;
    let password = p.password.clone().ok_or_else(|| Error::config("no token or password"))?;
    drop(p);
    let mut entries = Vec::new();
    for h in host.split(',').map(str::trim).filter(|h| !h.is_empty()) {
        let e = Entry { key: [h.to_string(), port.clone(), dbname.clone(), user.clone()], password: password.expose().to_string() };
        if e.key.iter().chain(std::iter::once(&e.password)).any(|f| f.contains(['\n', '\r'])) {
            return Err(Error::config("a value contains a line break, which a password file cannot hold").into());
        }
        entries.push(e);
    }

    let mut existing = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(io_error(&path, "read", e).into()),
    };
    let old_mode = std::fs::metadata(&path).ok().map(|m| m.permissions().mode() & 0o7777);
    let (mut contents, replaced) = merge(&existing, &entries);
    zeroize::Zeroize::zeroize(&mut existing);
    let written = write_atomically(&path, &contents);
    zeroize::Zeroize::zeroize(&mut contents);
    written?;

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
    msg.push(')');
    if !c.is_password_mode() {
        if let Ok(info) = c.token_info() {
            let left = info.expires_on - pgentra::identity::now_unix();
            msg.push_str(&format!("; the token expires in {} min: run this again before then", left.max(0) / 60));
        }
    }
    println!("{msg}");
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
}
