//! A token cache shared by the processes of one user on one machine (issue #16).
//!
//! Web servers run many worker processes, each with its own [`TokenCache`](crate::cache::TokenCache):
//! without sharing, every worker start and every refresh is an identity request, and the VM
//! metadata service throttles at 20 per second per VM. Here the processes of one user share one
//! file per key (credential kind, endpoint or authority, tenant, client or identity id, scope).
//!
//! The boundary is the effective user id:
//! - The folder (`PGENTRA_CACHE_DIR`, else `$XDG_RUNTIME_DIR/pgentra`, else
//!   `<temp>/pgentra-<euid>`) is opened with `O_DIRECTORY|O_NOFOLLOW` and checked on the open
//!   descriptor: owned by the effective uid, no group or other access, not a network or FUSE
//!   file system. Otherwise sharing is off for the process (one log line) and the in-process
//!   cache works as before. The folder is never chmod-ed.
//! - Every file is reached relative to that descriptor (`openat`), opened `O_NOFOLLOW`; entries
//!   are written `0600` to a temporary file (`O_EXCL`) and renamed over the entry.
//! - An entry holds the token, its lifetime and refresh point and when it was fetched, never a
//!   secret. It is validated on every read: owner, mode, one link, size, format, the key's id,
//!   the remaining lifetime, the audience claim against the scope and the identity claims
//!   against the configuration. Anything odd is a miss, never an error.
//!
//! Times: an entry records the fetch time on the wall clock and on `CLOCK_BOOTTIME` (with the
//! boot id), and lifetimes as durations. A reader takes the larger of the two ages, so neither
//! a wall clock set back nor a reader in another boot serves a token longer than it lives.
//!
//! Single flight across processes: a `flock` on a separate lock file per key, opened
//! `O_CLOEXEC` for each attempt and released explicitly (`LOCK_UN`) before it is closed. A
//! lock belongs to an open file description, which a child inherits through `fork`: pgentra
//! never keeps a lock descriptor beyond one request, so a child never believes it holds its
//! parent's lock (its own attempts open a new description and wait like any other process).

use crate::cache::Cached;
use crate::claims::Claims;
use crate::cloud::resource_of;
use crate::config::{Config, CredentialKind};
use crate::identity::{mono_secs, now_unix};
use crate::secret::Secret;
use std::ffi::{CStr, CString};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use zeroize::Zeroize;

/// `PGENTRA_SHARED_CACHE=0` (or `false`, `no`, `off`) turns sharing off.
pub const SWITCH_VAR: &str = "PGENTRA_SHARED_CACHE";
/// The folder, when set.
pub const DIR_VAR: &str = "PGENTRA_CACHE_DIR";
/// The entry format's version.
const FORMAT: u32 = 1;
/// The largest entry read (a token is a few KiB).
const MAX_ENTRY: usize = 64 * 1024;
/// An entry is used only while it has at least this long to live.
const MIN_LEFT: i64 = 60;
/// The largest refresh jitter added to an entry read from the folder.
const MAX_JITTER: i64 = 30;
/// Tolerance for clocks read by two processes a moment apart.
const CLOCK_SLACK: i64 = 5;

/// Whether the shared cache is used, where, and why not (for `pgentra check`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    pub enabled: bool,
    pub dir: Option<PathBuf>,
    /// Why sharing is off, when it is.
    pub reason: Option<String>,
}

/// A folder that passed the checks, held open.
#[derive(Debug)]
pub struct Dir {
    fd: OwnedFd,
    path: PathBuf,
}

impl Dir {
    pub fn path(&self) -> &Path {
        &self.path
    }
}

fn euid() -> u32 {
    // SAFETY: geteuid cannot fail.
    unsafe { libc::geteuid() }
}

fn switched_off() -> bool {
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

fn cname(name: &str) -> io::Result<CString> {
    CString::new(name).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))
}

fn fstat(fd: RawFd) -> io::Result<libc::stat> {
    // SAFETY: fstat writes into the zeroed struct we own.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    if unsafe { libc::fstat(fd, &mut st) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(st)
}

fn openat(dir: RawFd, name: &CStr, flags: libc::c_int, mode: libc::mode_t) -> io::Result<OwnedFd> {
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

/// Whether sharing is on for this process, where, and why not. Creates the folder when it is
/// missing, as a connector would.
pub fn status() -> Status {
    if switched_off() {
        return Status { enabled: false, dir: None, reason: Some(format!("{SWITCH_VAR} turns it off")) };
    }
    let path = dir_path();
    match open_dir(&path, true) {
        Ok(_) => Status { enabled: true, dir: Some(path), reason: None },
        Err(reason) => Status { enabled: false, dir: Some(path), reason: Some(reason) },
    }
}

/// Why a connector with this configuration does not share its tokens.
pub fn why_not(c: &Config) -> String {
    let st = status();
    if let Some(reason) = st.reason {
        return reason;
    }
    match key_parts(c) {
        Err(why) => why.to_string(),
        Ok(_) => "the token source is the caller's own".to_string(),
    }
}

fn is_entry_name(name: &str) -> bool {
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

static WARNED: AtomicBool = AtomicBool::new(false);

/// One log line per process when sharing is off for a reason other than the switch.
fn warn_once(reason: &str) {
    if !WARNED.swap(true, Ordering::Relaxed) {
        tracing::warn!(reason, "the shared token cache is off for this process; each process keeps its own cache");
    }
}

/// What a key is made of, and what an entry must show to be used.
#[derive(Debug, Clone)]
struct KeyParts {
    kind: &'static str,
    endpoint: String,
    tenant: String,
    client: String,
    scope: String,
    /// Credential kinds whose tokens may be stored under this key.
    accepts: &'static [CredentialKind],
}

/// The key for a configuration, or why it has none. Mirrors `identity::source_for`.
fn key_parts(c: &Config) -> Result<KeyParts, &'static str> {
    use CredentialKind as K;
    let entra = |kind: K| {
        let (name, accepts): (&'static str, &'static [K]) = match kind {
            K::ClientSecret => ("client-secret", &[K::ClientSecret]),
            K::ClientCertificate => ("client-certificate", &[K::ClientCertificate]),
            _ => ("workload-identity", &[K::WorkloadIdentity]),
        };
        KeyParts {
            kind: name,
            endpoint: c.authority_host.clone(),
            tenant: c.tenant_id.clone().unwrap_or_default(),
            client: c.client_id.clone().unwrap_or_default(),
            scope: c.scope.clone(),
            accepts,
        }
    };
    let managed = |kind: &'static str| KeyParts {
        kind,
        endpoint: match (&c.identity_endpoint, &c.imds_endpoint) {
            (Some(ep), Some(imds)) => format!("arc {ep} {imds}"),
            (Some(ep), None) => format!("app-service {ep}"),
            (None, _) => format!("imds {}", c.imds_base),
        },
        tenant: String::new(),
        client: c.client_id.clone().unwrap_or_default(),
        scope: c.scope.clone(),
        accepts: &[K::ManagedIdentity],
    };
    match c.credential {
        K::Password => Err("a password is configured"),
        K::AzureCli | K::AzureDeveloperCli => Err("the Azure CLI and azd keep their own token cache"),
        K::ClientSecret | K::ClientCertificate | K::WorkloadIdentity => Ok(entra(c.credential)),
        K::ManagedIdentity => Ok(managed("managed-identity")),
        K::Auto => {
            if c.params.password.is_some() {
                Err("a password is configured")
            } else if c.client_secret.is_some() {
                Ok(entra(K::ClientSecret))
            } else if c.certificate_path.is_some() {
                Ok(entra(K::ClientCertificate))
            } else if c.federated_token_file.is_some() {
                Ok(entra(K::WorkloadIdentity))
            } else if c.identity_endpoint.is_some() {
                Ok(managed("managed-identity"))
            } else {
                // The chain: only a managed identity's token is shared; az and azd have their
                // own cache, and their signed-in account can change under us.
                Ok(managed("auto"))
            }
        }
    }
}

impl KeyParts {
    /// The SHA-256 of the parts, hex.
    fn id(&self) -> String {
        let mut material = Vec::new();
        for part in ["pgentra-shared-cache-v1", self.kind, &self.endpoint, &self.tenant, &self.client, &self.scope] {
            material.extend_from_slice(part.as_bytes());
            material.push(0);
        }
        let digest = ring::digest::digest(&ring::digest::SHA256, &material);
        digest.as_ref().iter().map(|b| format!("{b:02x}")).collect()
    }
}

/// The shared cache for one connector's key.
#[derive(Debug)]
pub struct Shared {
    dir: Dir,
    id: String,
    entry: CString,
    lock: CString,
    audience: String,
    client_id: Option<String>,
    tenant_id: Option<String>,
    accepts: &'static [CredentialKind],
}

/// A token read from an entry, its times made relative to now.
#[derive(Debug, Clone)]
pub struct Entry {
    pub token: Secret,
    pub credential: CredentialKind,
    pub detail: String,
    /// Seconds the token still lives, and until its refresh point (may be negative: due).
    pub expires_in: i64,
    pub refresh_in: i64,
    /// Wall-clock Unix seconds of the fetch (for display).
    pub fetched_at: i64,
    pub claims: Option<Claims>,
}

/// The entry file's content.
#[derive(serde::Serialize, serde::Deserialize)]
struct FileEntry {
    v: u32,
    id: String,
    token: String,
    credential: String,
    detail: String,
    /// Wall-clock Unix seconds, `CLOCK_BOOTTIME` seconds and the boot id at the fetch.
    fetched_at: i64,
    fetched_boottime: i64,
    boot_id: String,
    /// Seconds from the fetch to expiry and to the refresh point.
    lifetime: i64,
    refresh_in: i64,
}

impl Drop for FileEntry {
    fn drop(&mut self) {
        self.token.zeroize();
    }
}

fn boot_id() -> &'static str {
    static ID: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    ID.get_or_init(|| std::fs::read_to_string("/proc/sys/kernel/random/boot_id").map(|s| s.trim().to_string()).unwrap_or_default())
}

/// The outcome of a try for the key's lock.
pub enum Lock {
    /// Held until the guard drops.
    Held(LockGuard),
    /// Another process holds it (it is fetching).
    Busy,
    /// The lock file cannot be opened (read-only folder, ...): no single flight across
    /// processes.
    Unavailable,
}

/// A held `flock`, released explicitly (any descriptor a child inherited through `fork`
/// refers to the same open file description, so closing ours alone would not free it).
pub struct LockGuard(OwnedFd);

impl Drop for LockGuard {
    fn drop(&mut self) {
        // SAFETY: flock on a descriptor we own.
        unsafe { libc::flock(self.0.as_raw_fd(), libc::LOCK_UN) };
    }
}

/// Whether a token's characters can be stored and read back as they are.
fn plausible_token(t: &str) -> bool {
    !t.is_empty() && t.len() <= MAX_ENTRY / 2 && t.bytes().all(|b| b.is_ascii_graphic())
}

impl Shared {
    /// The shared cache for this configuration, or `None` (with one log line when sharing is
    /// off for a reason the user may want to fix).
    pub fn for_config(c: &Config) -> Option<Shared> {
        if switched_off() {
            return None;
        }
        let parts = match key_parts(c) {
            Ok(p) => p,
            Err(why) => {
                tracing::debug!(why, "no shared token cache for this credential");
                return None;
            }
        };
        let dir = match open_dir(&dir_path(), true) {
            Ok(d) => d,
            Err(reason) => {
                warn_once(&reason);
                return None;
            }
        };
        Some(Self::new(dir, &parts, c.client_id.clone(), c.tenant_id.clone()))
    }

    fn new(dir: Dir, parts: &KeyParts, client_id: Option<String>, tenant_id: Option<String>) -> Shared {
        let id = parts.id();
        let short = &id[..32];
        Shared {
            dir,
            entry: CString::new(format!("{short}.tok")).unwrap_or_default(),
            lock: CString::new(format!("{short}.lock")).unwrap_or_default(),
            id,
            audience: resource_of(&parts.scope).trim_end_matches('/').to_ascii_lowercase(),
            client_id: client_id.filter(|s| !s.is_empty()),
            tenant_id: tenant_id.filter(|s| !s.is_empty()),
            accepts: parts.accepts,
        }
    }

    /// The entry's path (for `pgentra check` and tests).
    pub fn entry_path(&self) -> PathBuf {
        self.dir.path.join(self.entry.to_string_lossy().as_ref())
    }

    pub fn dir(&self) -> &Path {
        &self.dir.path
    }

    /// Whether this token may be shared under this key: its kind, its audience and its
    /// identity claims match the configuration.
    fn token_matches(&self, kind: CredentialKind, claims: Option<&Claims>) -> bool {
        if !self.accepts.contains(&kind) {
            return false;
        }
        let Some(cl) = claims else { return false };
        let aud_ok = cl.aud.as_deref().is_some_and(|a| a.trim_end_matches('/').eq_ignore_ascii_case(&self.audience));
        let client_ok = match (&self.client_id, &cl.appid) {
            (Some(want), Some(got)) => want.eq_ignore_ascii_case(got),
            (Some(_), None) => false,
            (None, _) => true,
        };
        let tenant_ok = match (&self.tenant_id, &cl.tid) {
            (Some(want), Some(got)) => want.eq_ignore_ascii_case(got),
            _ => true,
        };
        aud_ok && client_ok && tenant_ok
    }

    /// The entry, if there is a valid one with at least a minute to live. Never an error.
    pub fn read(&self) -> Option<Entry> {
        match self.read_inner() {
            Ok(e) => e,
            Err(e) => {
                tracing::debug!(error = %e, "shared token cache entry not usable");
                None
            }
        }
    }

    fn read_inner(&self) -> io::Result<Option<Entry>> {
        use std::io::Read;
        let fd = match openat(self.dir.fd.as_raw_fd(), &self.entry, libc::O_RDONLY | libc::O_NONBLOCK, 0) {
            Ok(fd) => fd,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        let st = fstat(fd.as_raw_fd())?;
        let odd = |what: &str| Err(io::Error::new(io::ErrorKind::InvalidData, what.to_string()));
        if st.st_mode & libc::S_IFMT != libc::S_IFREG {
            return odd("not a regular file");
        }
        if st.st_uid != euid() {
            return odd("owned by another user");
        }
        if st.st_mode & 0o077 != 0 {
            return odd("open to group or others");
        }
        if st.st_nlink != 1 {
            return odd("has more than one link");
        }
        if st.st_size < 0 || st.st_size as u64 > MAX_ENTRY as u64 {
            return odd("too large");
        }
        let mut buf = zeroize::Zeroizing::new(Vec::with_capacity(st.st_size as usize + 1));
        std::fs::File::from(fd).take(MAX_ENTRY as u64 + 1).read_to_end(&mut buf)?;
        let parsed = parse_entry(&buf, &self.id, now_unix(), mono_secs(), boot_id());
        let Some(e) = parsed else { return odd("malformed, expired or for another key") };
        if !self.token_matches(e.credential, e.claims.as_ref()) {
            return odd("its token's kind, audience or identity does not match the configuration");
        }
        Ok(Some(e))
    }

    /// Store a token just fetched (or refreshed). Failure is only logged: a read-only or full
    /// folder leaves each process with its own cache.
    pub fn write(&self, c: &Cached) {
        if !plausible_token(c.token.expose()) || !self.token_matches(c.credential, c.claims.as_ref()) {
            tracing::debug!("token not shared: its kind, audience or identity does not match the configuration");
            return;
        }
        let mono = mono_secs();
        let content = FileEntry {
            v: FORMAT,
            id: self.id.clone(),
            token: c.token.expose().to_string(),
            credential: c.credential.as_str().to_string(),
            detail: c.detail.clone(),
            fetched_at: now_unix(),
            fetched_boottime: mono,
            boot_id: boot_id().to_string(),
            lifetime: c.mono_expires().saturating_sub(mono),
            refresh_in: c.mono_refresh().saturating_sub(mono),
        };
        let Ok(json) = serde_json::to_vec(&content).map(zeroize::Zeroizing::new) else { return };
        if let Err(e) = self.write_bytes(&json) {
            tracing::debug!(error = %e, "shared token cache entry not written; this process keeps its own");
        }
    }

    fn write_bytes(&self, bytes: &[u8]) -> io::Result<()> {
        use std::io::Write;
        static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let short = &self.id[..32];
        let tmp = cname(&format!(".{short}.{}.{}.tmp", std::process::id(), N.fetch_add(1, Ordering::Relaxed)))?;
        let dirfd = self.dir.fd.as_raw_fd();
        let fd = openat(dirfd, &tmp, libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL, 0o600)?;
        let mut f = std::fs::File::from(fd);
        // SAFETY: unlinkat/renameat with NUL-terminated names inside the checked folder.
        let unlink_tmp = || unsafe { libc::unlinkat(dirfd, tmp.as_ptr(), 0) };
        if let Err(e) = f.write_all(bytes) {
            unlink_tmp();
            return Err(e);
        }
        drop(f);
        if unsafe { libc::renameat(dirfd, tmp.as_ptr(), dirfd, self.entry.as_ptr()) } != 0 {
            let e = io::Error::last_os_error();
            unlink_tmp();
            return Err(e);
        }
        Ok(())
    }

    /// Remove the entry if it still holds `token` (compare-and-invalidate across processes).
    /// Only under the key's lock: if another process holds it, a new token is on its way and
    /// the entry is left alone. Returns whether the entry was removed.
    pub fn remove_if(&self, token: &str) -> bool {
        let Lock::Held(_guard) = self.try_lock() else { return false };
        let holds = self.read_inner().ok().flatten().is_some_and(|e| e.token.expose() == token)
            || self.raw_token_is(token);
        // SAFETY: unlinkat with a NUL-terminated name inside the checked folder.
        holds && unsafe { libc::unlinkat(self.dir.fd.as_raw_fd(), self.entry.as_ptr(), 0) } == 0
    }

    /// Whether the entry holds `token` even if it is no longer valid enough to serve.
    fn raw_token_is(&self, token: &str) -> bool {
        use std::io::Read;
        let Ok(fd) = openat(self.dir.fd.as_raw_fd(), &self.entry, libc::O_RDONLY | libc::O_NONBLOCK, 0) else { return false };
        let mut buf = zeroize::Zeroizing::new(Vec::new());
        if std::fs::File::from(fd).take(MAX_ENTRY as u64 + 1).read_to_end(&mut buf).is_err() {
            return false;
        }
        serde_json::from_slice::<FileEntry>(&buf).is_ok_and(|f| f.id == self.id && f.token == token)
    }

    /// Try for the key's lock without waiting.
    pub fn try_lock(&self) -> Lock {
        let dirfd = self.dir.fd.as_raw_fd();
        let fd = match openat(dirfd, &self.lock, libc::O_RDWR | libc::O_CREAT, 0o600) {
            Ok(fd) => fd,
            // A read-only folder may still hold a lock file: a shared lock needs no write.
            Err(_) => match openat(dirfd, &self.lock, libc::O_RDONLY | libc::O_NONBLOCK, 0) {
                Ok(fd) => fd,
                Err(_) => return Lock::Unavailable,
            },
        };
        match fstat(fd.as_raw_fd()) {
            Ok(st) if st.st_mode & libc::S_IFMT == libc::S_IFREG && st.st_uid == euid() => {}
            _ => return Lock::Unavailable,
        }
        // SAFETY: flock on a descriptor we own.
        if unsafe { libc::flock(fd.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0 {
            return Lock::Held(LockGuard(fd));
        }
        match io::Error::last_os_error().raw_os_error() {
            Some(libc::EWOULDBLOCK) => Lock::Busy,
            _ => Lock::Unavailable,
        }
    }

    /// Pick a refresh jitter for an entry read from the folder: up to 30 s and never more than
    /// a quarter of the time between the refresh point and expiry.
    pub fn jitter(e: &Entry) -> i64 {
        use rand::Rng;
        let room = (e.expires_in.saturating_sub(e.refresh_in) / 4).clamp(0, MAX_JITTER);
        if room == 0 {
            0
        } else {
            rand::thread_rng().gen_range(0..=room)
        }
    }
}

/// Parse and check an entry's bytes against the key `id`, at `now` (wall) and `boot` seconds
/// (`CLOCK_BOOTTIME`) in boot `boot_id`. `None` for anything odd.
fn parse_entry(bytes: &[u8], id: &str, now: i64, boot: i64, boot_id: &str) -> Option<Entry> {
    let f: FileEntry = serde_json::from_slice(bytes).ok()?;
    if f.v != FORMAT || f.id != id || !plausible_token(&f.token) || f.detail.len() > 4096 {
        return None;
    }
    let credential = CredentialKind::parse(&f.credential).ok()?;
    if f.lifetime <= 0 || f.refresh_in > f.lifetime || f.fetched_at <= 0 {
        return None;
    }
    // The age by the wall clock; by CLOCK_BOOTTIME too when written in this boot. The larger
    // wins, and clocks that disagree beyond the slack in the impossible direction make a miss.
    let wall_age = now.checked_sub(f.fetched_at)?;
    let same_boot = !boot_id.is_empty() && f.boot_id == boot_id;
    let age = if same_boot {
        let boot_age = boot.checked_sub(f.fetched_boottime)?;
        if boot_age < -CLOCK_SLACK {
            return None;
        }
        if wall_age < -CLOCK_SLACK {
            // The wall clock was set back since the fetch: trust the boot clock alone.
            boot_age.max(0)
        } else {
            wall_age.max(boot_age).max(0)
        }
    } else {
        if wall_age < -CLOCK_SLACK {
            return None;
        }
        wall_age.max(0)
    };
    let expires_in = f.lifetime.checked_sub(age)?;
    if expires_in < MIN_LEFT {
        return None;
    }
    let claims = Claims::decode(&f.token).ok();
    Some(Entry {
        token: Secret::new(f.token.clone()),
        credential,
        detail: f.detail.clone(),
        expires_in,
        refresh_in: f.refresh_in.saturating_sub(age),
        fetched_at: f.fetched_at,
        claims,
    })
}

#[cfg(test)]
mod tests {
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
        wrong.write(&cached(&jwt("https://management.azure.com", "c3")));
        assert!(!wrong.entry_path().exists());
        wrong.write(&cached(&jwt("https://ossrdbms-aad.database.windows.net", "c1")));
        assert!(!wrong.entry_path().exists());
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
}
