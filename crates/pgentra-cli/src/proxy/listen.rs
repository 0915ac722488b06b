//! Listening: resolving and vetting `--listen` addresses, and binding the Unix socket.

use super::*;

/// Resolve the listen addresses (numeric or a name from /etc/hosts such as `localhost`) and
/// refuse non-loopback ones unless remote clients were explicitly allowed.
pub(super) fn resolve_listen(specs: &[String], allow_remote: bool) -> Result<Vec<SocketAddr>, Failure> {
    let mut out = Vec::new();
    for spec in specs {
        let addrs: Vec<SocketAddr> = match spec.to_socket_addrs() {
            Ok(a) => a.collect(),
            Err(e) => {
                return Err(Error::config(format!(
                    "--listen '{spec}' is not an address: {e} (use HOST:PORT, e.g. 127.0.0.1:6432 or [::1]:6432)"
                ))
                .into())
            }
        };
        // A name may resolve to several addresses; bind the first of each family.
        let mut seen_v4 = false;
        let mut seen_v6 = false;
        for addr in addrs {
            if !addr.ip().is_loopback() && !allow_remote {
                return Err(Error::config(format!(
                    "--listen {spec} ({}) is not a loopback address: anyone who can reach it would log in as this identity; use 127.0.0.1 or ::1, or pass --allow-remote (with --local-password-file) if that is really intended",
                    addr.ip()
                ))
                .into());
            }
            let first = if addr.is_ipv4() { !std::mem::replace(&mut seen_v4, true) } else { !std::mem::replace(&mut seen_v6, true) };
            if first {
                out.push(addr);
            }
        }
    }
    Ok(out)
}

pub(super) fn listen_error(what: &str, e: io::Error) -> Error {
    Error::new(ErrorKind::Network, format!("cannot listen on {what}: {e}"))
}

/// Bind `DIR/.s.PGSQL.PORT` (as PostgreSQL names it, so `psql -h DIR -p PORT` finds it),
/// replacing a stale socket that nothing listens on. The socket has mode 0600 from the moment
/// its name exists.
///
/// `bind(2)` creates the socket file with mode 0777 & ~umask, and a chmod afterwards leaves a
/// window in which anyone may connect. Setting the umask around `bind` would change it for
/// every thread of the process (the runtime's workers, the token cache), so instead the socket
/// is bound inside a fresh private directory (mkdir with mode 0700: it fails if the name
/// exists, so nobody else can have a way in), chmod-ed to 0600 and checked there, and only
/// then renamed to its final name. rename(2) is atomic: the final path never names a socket
/// with a broader mode.
pub(super) fn bind_unix(dir: &Path, port: u16) -> Result<(UnixListener, PathBuf), Error> {
    use std::os::unix::fs::{DirBuilderExt, FileTypeExt, PermissionsExt};
    std::fs::create_dir_all(dir).map_err(|e| listen_error(&dir.display().to_string(), e))?;
    let path = dir.join(format!(".s.PGSQL.{port}"));
    if let Ok(meta) = std::fs::symlink_metadata(&path) {
        if !meta.file_type().is_socket() {
            return Err(Error::config(format!("{} exists and is not a socket: remove it or choose another --unix-socket or --port", path.display())));
        }
        if std::os::unix::net::UnixStream::connect(&path).is_ok() {
            return Err(Error::new(ErrorKind::Network, format!("cannot listen on {}: another server is listening there", path.display())));
        }
        // A stale socket: the rename below replaces it.
    }
    // Short names: a socket path may have at most 107 bytes.
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or(0);
    let private = dir.join(format!(".pgentra.{:x}.{:x}", std::process::id(), nanos & 0xffff));
    std::fs::DirBuilder::new()
        .mode(0o700)
        .create(&private)
        .map_err(|e| listen_error(&format!("{} (a private directory for binding the socket)", private.display()), e))?;
    let tmp = private.join("s");
    let bound = (|| {
        let what = |e: io::Error| listen_error(&path.display().to_string(), e);
        let l = UnixListener::bind(&tmp).map_err(what)?;
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o600)).map_err(what)?;
        let mode = std::fs::symlink_metadata(&tmp).map_err(what)?.permissions().mode() & 0o7777;
        if mode != 0o600 {
            return Err(Error::new(ErrorKind::Internal, format!("cannot listen on {}: the socket has mode {mode:04o}, not 0600", path.display())));
        }
        std::fs::rename(&tmp, &path).map_err(what)?;
        Ok(l)
    })();
    let _ = std::fs::remove_file(&tmp);
    let _ = std::fs::remove_dir(&private);
    let l = bound?;
    // The name now exists; make sure it is what we bound, with mode 0600.
    match std::fs::symlink_metadata(&path) {
        Ok(m) if m.file_type().is_socket() && m.permissions().mode() & 0o7777 == 0o600 => Ok((l, path)),
        Ok(m) => {
            let _ = std::fs::remove_file(&path);
            Err(Error::new(ErrorKind::Internal, format!("cannot listen on {}: the socket has mode {:04o}, not 0600", path.display(), m.permissions().mode() & 0o7777)))
        }
        Err(e) => Err(listen_error(&path.display().to_string(), e)),
    }
}
