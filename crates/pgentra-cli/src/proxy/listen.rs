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
/// removing a stale socket that nothing listens on. The socket is made 0600.
pub(super) fn bind_unix(dir: &Path, port: u16) -> Result<(UnixListener, PathBuf), Error> {
    use std::os::unix::fs::{FileTypeExt, PermissionsExt};
    std::fs::create_dir_all(dir).map_err(|e| listen_error(&dir.display().to_string(), e))?;
    let path = dir.join(format!(".s.PGSQL.{port}"));
    if let Ok(meta) = std::fs::symlink_metadata(&path) {
        if !meta.file_type().is_socket() {
            return Err(Error::config(format!("{} exists and is not a socket", path.display())));
        }
        if std::os::unix::net::UnixStream::connect(&path).is_ok() {
            return Err(Error::new(ErrorKind::Network, format!("cannot listen on {}: another server is listening there", path.display())));
        }
        let _ = std::fs::remove_file(&path);
    }
    let l = UnixListener::bind(&path).map_err(|e| listen_error(&path.display().to_string(), e))?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).map_err(|e| listen_error(&path.display().to_string(), e))?;
    Ok((l, path))
}
