//! The shared cache's folder: where it is, the checks on its open descriptor, and `clear`.

use super::{DIR_VAR, SWITCH_VAR};
use std::ffi::{CStr, CString};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};

/// A folder that passed the checks, held open.
#[derive(Debug)]
pub struct Dir {
    pub(super) fd: OwnedFd,
    pub(super) path: PathBuf,
}

impl Dir {
    pub fn path(&self) -> &Path {
        &self.path
    }
}

pub(super) fn euid() -> u32 {
    // SAFETY: geteuid cannot fail.
    unsafe { libc::geteuid() }
}

pub(super) fn switched_off() -> bool {
    std::env::var(SWITCH_VAR).is_ok_and(|v| matches!(v.trim().to_ascii_lowercase().as_str(), "0" | "false" | "no" | "off"))
}

/// Where the shared cache lives: `PGENTRA_CACHE_DIR`, else `$XDG_RUNTIME_DIR/pgentra`, else a
/// per-user folder under the system's temporary folder.
pub fn dir_path() -> PathBuf {
    if let Some(d) = std::env::var_os(DIR_VAR).filter(|v| !v.is_empty()) {
        return PathBuf::from(d);
    }
    if let Some(d) = std::env::var_os("XDG_RUNTIME_DIR").filter(|v| !v.is_empty()) {
        return PathBuf::from(d).join("pgentra");
    }
    std::env::temp_dir().join(format!("pgentra-{}", euid()))
}

fn cpath(p: &Path) -> Result<CString, String> {
    use std::os::unix::ffi::OsStrExt;
    CString::new(p.as_os_str().as_bytes()).map_err(|_| format!("{} contains a NUL byte", p.display()))
}

pub(super) fn cname(name: &str) -> io::Result<CString> {
    CString::new(name).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))
}

pub(super) fn fstat(fd: RawFd) -> io::Result<libc::stat> {
    // SAFETY: fstat writes into the zeroed struct we own.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    if unsafe { libc::fstat(fd, &mut st) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(st)
}

pub(super) fn openat(dir: RawFd, name: &CStr, flags: libc::c_int, mode: libc::mode_t) -> io::Result<OwnedFd> {
    // SAFETY: `name` is NUL-terminated; the returned descriptor is owned by the OwnedFd.
    let fd = unsafe { libc::openat(dir, name.as_ptr(), flags | libc::O_CLOEXEC | libc::O_NOFOLLOW, libc::c_uint::from(mode)) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// File systems that may carry a file to another machine (or to a user-space server).
#[cfg(target_os = "linux")]
fn network_fs(fd: RawFd) -> Option<&'static str> {
    // SAFETY: fstatfs writes into the zeroed struct we own.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::fstatfs(fd, &mut st) } != 0 {
        return Some("a file system whose type cannot be read");
    }
    // f_type's C type differs between targets: compare its low 32 bits.
    let t = (st.f_type as u64 & 0xFFFF_FFFF) as u32;
    Some(match t {
        0x6969 => "NFS",
        0x517B => "SMB",
        0xFF53_4D42 => "CIFS",
        0xFE53_4D42 => "SMB2",
        0x6573_5546 => "FUSE",
        0x0102_1997 => "9P",
        0x00C3_6400 => "Ceph",
        0x5346_414F | 0x6B41_4653 => "AFS",
        0x7375_7245 => "Coda",
        0x564C => "NCP",
        0x0BD0_0BD0 => "Lustre",
        0x0116_1970 => "GFS2",
        0x7461_636F => "OCFS2",
        _ => return None,
    })
}

#[cfg(not(target_os = "linux"))]
fn network_fs(_fd: RawFd) -> Option<&'static str> {
    Some("a system where pgentra cannot tell a network file system (sharing is Linux-only)")
}

/// Open `path` as the shared cache's folder and check it on the descriptor. `create`: make
/// it (mode 0700) when missing. The error is the reason sharing is off.
pub fn open_dir(path: &Path, create: bool) -> Result<Dir, String> {
    use std::os::unix::fs::DirBuilderExt;
    if create {
        // Never through a symlink: a symlink here makes the open below fail (ELOOP).
        let _ = std::fs::DirBuilder::new().recursive(true).mode(0o700).create(path);
    }
    let c = cpath(path)?;
    // SAFETY: `c` is NUL-terminated; the descriptor is owned below.
    let fd = unsafe { libc::open(c.as_ptr(), libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC) };
    if fd < 0 {
        let e = io::Error::last_os_error();
        let link = std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink());
        return Err(match e.raw_os_error() {
            _ if link => format!("{} is a symbolic link", path.display()),
            Some(libc::ENOTDIR) => format!("{} is not a folder", path.display()),
            _ => format!("cannot open {}: {e}", path.display()),
        });
    }
    // SAFETY: fd is a descriptor we just opened and own.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    let st = fstat(fd.as_raw_fd()).map_err(|e| format!("cannot examine {}: {e}", path.display()))?;
    if st.st_mode & libc::S_IFMT != libc::S_IFDIR {
        return Err(format!("{} is not a folder", path.display()));
    }
    if st.st_uid != euid() {
        return Err(format!("{} belongs to uid {}, not to this user (uid {})", path.display(), st.st_uid, euid()));
    }
    if st.st_mode & 0o077 != 0 {
        return Err(format!("{} is open to group or others (mode {:04o}; it must be 0700)", path.display(), st.st_mode & 0o7777));
    }
    if let Some(fs) = network_fs(fd.as_raw_fd()) {
        return Err(format!("{} is on {fs}, and a token must not leave this machine", path.display()));
    }
    Ok(Dir { fd, path: path.to_path_buf() })
}

pub(super) fn is_entry_name(name: &str) -> bool {
    let hex = |s: &str| s.len() == 32 && s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    if let Some(stem) = name.strip_suffix(".tok") {
        return hex(stem);
    }
    // A temporary file left by a writer that was killed: `.<key>.<pid>.<n>.tmp`.
    if let Some(rest) = name.strip_prefix('.').and_then(|r| r.strip_suffix(".tmp")) {
        return rest.split('.').next().is_some_and(hex);
    }
    false
}

/// Remove this user's entries (and temporary files left by killed writers) from the shared
/// cache's folder. Returns the folder and how many files were removed. Lock files stay (they
/// are empty, and a process may hold one).
pub fn clear() -> Result<(PathBuf, usize), String> {
    let path = dir_path();
    if !path.exists() {
        return Ok((path, 0));
    }
    let dir = open_dir(&path, false)?;
    let rd = std::fs::read_dir(&path).map_err(|e| format!("cannot list {}: {e}", path.display()))?;
    let mut removed = 0;
    for ent in rd.flatten() {
        let name = ent.file_name();
        let Some(name) = name.to_str() else { continue };
        if !is_entry_name(name) {
            continue;
        }
        let Ok(c) = cname(name) else { continue };
        // SAFETY: `c` is NUL-terminated; unlinkat acts inside the checked folder only.
        if unsafe { libc::unlinkat(dir.fd.as_raw_fd(), c.as_ptr(), 0) } == 0 {
            removed += 1;
        }
    }
    Ok((path, removed))
}
