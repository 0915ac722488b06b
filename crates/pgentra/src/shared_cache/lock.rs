//! The per-key `flock` that gives single flight across processes, and what a child after
//! `fork` does with the locks its parent held.
//!
//! A `flock` belongs to an open file description. A child inherits its parent's descriptors
//! through `fork`, and with them any lock its parent holds at that moment. pgentra keeps a lock
//! only for one request and releases it explicitly (`LOCK_UN`), so the parent's release frees
//! it for everyone. The child, though, must neither believe it holds that lock nor keep it
//! alive: a `fork` handler closes the child's copies (closing a copy does not release the
//! parent's lock; it only means that the parent's death frees it), and a guard from before the
//! fork never touches its descriptor in the child (the number may be reused by then).

use super::dir::{euid, fstat, openat};
use std::ffi::CStr;
use std::io;
use std::os::fd::{AsRawFd, IntoRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicI32, AtomicU64, Ordering};
use std::sync::Once;

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

/// Descriptors of the locks this process holds now, for the `fork` handler. A process holds
/// one per key being fetched: a handful at most; past the table's size a lock is still taken,
/// only not closed in a child.
const SLOTS: usize = 64;
static HELD: [AtomicI32; SLOTS] = [const { AtomicI32::new(-1) }; SLOTS];
/// Bumped in every child (a guard from another generation leaves its descriptor alone).
static GENERATION: AtomicU64 = AtomicU64::new(0);
static ATFORK: Once = Once::new();

/// In the child: close the copies of the parent's lock descriptors. Async-signal-safe:
/// atomics and close(2) only.
extern "C" fn after_fork_in_child() {
    GENERATION.fetch_add(1, Ordering::SeqCst);
    for slot in HELD.iter() {
        let fd = slot.swap(-1, Ordering::SeqCst);
        if fd >= 0 {
            // SAFETY: close on a descriptor number the parent held open at fork time.
            unsafe { libc::close(fd) };
        }
    }
}

fn install_fork_handler() {
    ATFORK.call_once(|| unsafe {
        libc::pthread_atfork(None, None, Some(after_fork_in_child));
    });
}

/// A held `flock`, released explicitly: a descriptor a child inherited refers to the same open
/// file description, so closing ours alone would not free it.
pub struct LockGuard {
    pub(super) fd: Option<OwnedFd>,
    slot: Option<usize>,
    generation: u64,
}

impl LockGuard {
    fn new(fd: OwnedFd) -> LockGuard {
        let raw = fd.as_raw_fd();
        let slot = HELD.iter().position(|s| s.compare_exchange(-1, raw, Ordering::SeqCst, Ordering::SeqCst).is_ok());
        LockGuard { fd: Some(fd), slot, generation: GENERATION.load(Ordering::SeqCst) }
    }
}

impl Drop for LockGuard {
    fn drop(&mut self) {
        let Some(fd) = self.fd.take() else { return };
        if self.generation != GENERATION.load(Ordering::SeqCst) {
            // Made before a fork, dropped in the child: the handler closed this number already
            // and it may name another file now. Touch nothing.
            let _ = fd.into_raw_fd();
            return;
        }
        if let Some(i) = self.slot {
            HELD[i].store(-1, Ordering::SeqCst);
        }
        // SAFETY: flock on a descriptor we own; then it closes as `fd` drops.
        unsafe { libc::flock(fd.as_raw_fd(), libc::LOCK_UN) };
    }
}

/// Try for the lock file `name` in the folder `dir` without waiting.
pub(super) fn try_lock(dir: RawFd, name: &CStr) -> Lock {
    install_fork_handler();
    let fd = match openat(dir, name, libc::O_RDWR | libc::O_CREAT, 0o600) {
        Ok(fd) => fd,
        // A read-only folder may still hold a lock file: flock needs no write access.
        Err(_) => match openat(dir, name, libc::O_RDONLY | libc::O_NONBLOCK, 0) {
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
        return Lock::Held(LockGuard::new(fd));
    }
    match io::Error::last_os_error().raw_os_error() {
        Some(libc::EWOULDBLOCK) => Lock::Busy,
        _ => Lock::Unavailable,
    }
}
