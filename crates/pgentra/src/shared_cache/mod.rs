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
//! `O_CLOEXEC` for each attempt and released explicitly (`LOCK_UN`) before it is closed; see
//! [`lock`] for what a child after `fork` does with its parent's locks.

mod dir;
mod lock;

pub use dir::{clear, dir_path, open_dir, Dir};
pub use lock::{Lock, LockGuard};

use crate::cache::Cached;
use crate::claims::Claims;
use crate::cloud::resource_of;
use crate::config::{Config, CredentialKind};
use crate::identity::{mono_secs, now_unix};
use crate::secret::Secret;
use dir::{cname, euid, fstat, openat, switched_off};
use std::ffi::CString;
use std::io;
use std::os::fd::AsRawFd;
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
/// How long a "not shared" marker holds (see [`Shared::unshared`]).
const MARKER_SECS: i64 = 600;
/// The longest a failure marker holds (a Retry-After is capped there too).
const MAX_FAILURE_SECS: i64 = 60;
/// The longest message a failure marker keeps, in characters.
const MAX_FAILURE_MESSAGE: usize = 2048;

/// Whether the shared cache is used, where, and why not (for `pgentra check`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    pub enabled: bool,
    pub dir: Option<PathBuf>,
    /// Why sharing is off, when it is.
    pub reason: Option<String>,
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
    /// A marker, without a token: this key's tokens cannot be shared (the automatic chain chose
    /// the Azure CLI, say), so processes fetch their own instead of waiting for each other.
    #[serde(default)]
    unshared: bool,
    /// A marker, without a token: the last request for this key failed, and for `lifetime`
    /// seconds that failure is every process's answer (one request per period during an
    /// outage, across processes). Errors never hold a secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    failed: Option<FileFailure>,
}

/// A failure as stored in a failure marker.
#[derive(serde::Serialize, serde::Deserialize)]
struct FileFailure {
    kind: String,
    message: String,
    #[serde(default)]
    code: Option<String>,
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
        let Some(buf) = self.load()? else { return Ok(None) };
        let odd = |what: &str| Err(io::Error::new(io::ErrorKind::InvalidData, what.to_string()));
        let parsed = parse_entry(&buf, &self.id, now_unix(), mono_secs(), boot_id());
        let Some(e) = parsed else { return odd("malformed, expired, a marker or for another key") };
        if !self.token_matches(e.credential, e.claims.as_ref()) {
            return odd("its token's kind, audience or identity does not match the configuration");
        }
        Ok(Some(e))
    }

    /// Whether the entry is a valid "not shared" marker: a process that finds one fetches its
    /// own token at once instead of waiting for the key's lock.
    pub fn unshared(&self) -> bool {
        match self.load() {
            Ok(Some(buf)) => parse_marker(&buf, &self.id, now_unix(), mono_secs(), boot_id()),
            _ => false,
        }
    }

    /// The entry's bytes, after the checks on the open file.
    fn load(&self) -> io::Result<Option<zeroize::Zeroizing<Vec<u8>>>> {
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
        Ok(Some(buf))
    }

    /// Store a token just fetched (or refreshed). Failure is only logged: a read-only or full
    /// folder leaves each process with its own cache.
    pub fn write(&self, c: &Cached) {
        let mono = mono_secs();
        if !plausible_token(c.token.expose()) || !self.token_matches(c.credential, c.claims.as_ref()) {
            tracing::debug!(credential = c.credential.as_str(), "token not shared: its kind, audience or identity does not match the configuration");
            // Tell the other processes not to wait for this key, unless a valid entry (of
            // another process, whose token did match) is there.
            if self.read().is_some() {
                return;
            }
            let marker = FileEntry {
                v: FORMAT,
                id: self.id.clone(),
                token: String::new(),
                credential: c.credential.as_str().to_string(),
                detail: String::new(),
                fetched_at: now_unix(),
                fetched_boottime: mono,
                boot_id: boot_id().to_string(),
                lifetime: MARKER_SECS,
                refresh_in: 0,
                unshared: true,
                failed: None,
            };
            if let Ok(json) = serde_json::to_vec(&marker) {
                let _ = self.write_bytes(&json);
            }
            return;
        }
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
            unshared: false,
            failed: None,
        };
        let Ok(json) = serde_json::to_vec(&content).map(zeroize::Zeroizing::new) else { return };
        if let Err(e) = self.write_bytes(&json) {
            tracing::debug!(error = %e, "shared token cache entry not written; this process keeps its own");
        }
    }

    /// Remember a failed request for `hold` (whole seconds, 1 to 60) for this user's other
    /// processes: they answer with this error instead of asking again. Written only when no
    /// valid entry is there (a failure never hides a token). Only logged if it cannot be written.
    pub fn write_failure(&self, e: &crate::error::Error, hold: std::time::Duration) {
        if self.read().is_some() || self.unshared() {
            return;
        }
        let marker = FileEntry {
            v: FORMAT,
            id: self.id.clone(),
            token: String::new(),
            credential: String::new(),
            detail: String::new(),
            fetched_at: now_unix(),
            fetched_boottime: mono_secs(),
            boot_id: boot_id().to_string(),
            lifetime: (hold.as_secs() as i64).clamp(1, MAX_FAILURE_SECS),
            refresh_in: 0,
            unshared: false,
            failed: Some(FileFailure {
                kind: e.kind().as_str().to_string(),
                message: e.message().chars().take(MAX_FAILURE_MESSAGE).collect(),
                code: e.code().map(str::to_string),
            }),
        };
        match serde_json::to_vec(&marker) {
            Ok(json) => {
                if let Err(err) = self.write_bytes(&json) {
                    tracing::debug!(error = %err, "failure not shared with other processes");
                }
            }
            Err(err) => tracing::debug!(error = %err, "failure not shared with other processes"),
        }
    }

    /// The failure another process remembered for this key, while it holds.
    pub fn failure(&self) -> Option<crate::error::Error> {
        let buf = self.load().ok().flatten()?;
        parse_failure(&buf, &self.id, now_unix(), mono_secs(), boot_id())
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

    /// Remove a failure marker (the application starts over), never a token; under the key's
    /// lock only. Returns whether one was removed.
    pub fn forget_failure(&self) -> bool {
        let Lock::Held(_guard) = self.try_lock() else { return false };
        let is_failure = self.load().ok().flatten().is_some_and(|b| {
            serde_json::from_slice::<FileEntry>(&b).is_ok_and(|f| f.id == self.id && f.token.is_empty() && f.failed.is_some())
        });
        // SAFETY: unlinkat with a NUL-terminated name inside the checked folder.
        is_failure && unsafe { libc::unlinkat(self.dir.fd.as_raw_fd(), self.entry.as_ptr(), 0) } == 0
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
        lock::try_lock(self.dir.fd.as_raw_fd(), &self.lock)
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
    if f.v != FORMAT || f.id != id || f.unshared || !plausible_token(&f.token) || f.detail.len() > 4096 {
        return None;
    }
    let credential = CredentialKind::parse(&f.credential).ok()?;
    if f.lifetime <= 0 || f.refresh_in > f.lifetime || f.fetched_at <= 0 {
        return None;
    }
    let age = age(&f, now, boot, boot_id)?;
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

/// Whether the bytes are a "not shared" marker for the key `id` that still holds.
fn parse_marker(bytes: &[u8], id: &str, now: i64, boot: i64, boot_id: &str) -> bool {
    let Ok(f) = serde_json::from_slice::<FileEntry>(bytes) else { return false };
    if f.v != FORMAT || f.id != id || !f.unshared || !f.token.is_empty() || !(1..=MARKER_SECS).contains(&f.lifetime) {
        return false;
    }
    age(&f, now, boot, boot_id).is_some_and(|a| a < f.lifetime)
}

/// The error in a failure marker for the key `id` that still holds, said to come from another
/// process's request.
fn parse_failure(bytes: &[u8], id: &str, now: i64, boot: i64, boot_id: &str) -> Option<crate::error::Error> {
    let f: FileEntry = serde_json::from_slice(bytes).ok()?;
    let failed = f.failed.as_ref()?;
    if f.v != FORMAT || f.id != id || f.unshared || !f.token.is_empty() || !(1..=MAX_FAILURE_SECS).contains(&f.lifetime) {
        return None;
    }
    if failed.message.chars().count() > MAX_FAILURE_MESSAGE || failed.code.as_ref().is_some_and(|c| c.len() > 64) {
        return None;
    }
    let kind = crate::error::ErrorKind::parse(&failed.kind)?;
    let age = age(&f, now, boot, boot_id)?;
    if age >= f.lifetime {
        return None;
    }
    let mut e = crate::error::Error::new(
        kind,
        format!("{} (another process's request {age} s ago; pgentra asks again {} s after it)", failed.message, f.lifetime),
    );
    if let Some(code) = &failed.code {
        e = e.with_code(code.clone());
    }
    Some(e)
}

/// How old an entry is: by the wall clock, and by CLOCK_BOOTTIME too when it was written in
/// this boot. The larger wins, and clocks that disagree beyond the slack in the impossible
/// direction make `None` (a miss).
fn age(f: &FileEntry, now: i64, boot: i64, boot_id: &str) -> Option<i64> {
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
    Some(age)
}

#[cfg(test)]
mod tests;
