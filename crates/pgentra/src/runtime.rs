//! Process-wide state: one tokio runtime and one HTTP client per process, renewed in a child
//! after `fork()` (the parent's threads do not exist there).

use crate::error::{Error, ErrorKind, Result};
use std::cell::UnsafeCell;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Once;

static FORK_GENERATION: AtomicU64 = AtomicU64::new(0);
/// The name of the runtime's threads.
const RUNTIME_THREAD: &str = "pgentra-rt";
static ATFORK: Once = Once::new();

// The lock around the process-wide state is taken by fork() itself (the `prepare` handler) and
// released on both sides, so a child is never born while another thread holds it, half-way
// through building the runtime: the child would wait for that thread for ever. Handlers are
// async-signal-safe: atomics only.
extern "C" fn before_fork() {
    lock_shared();
}

extern "C" fn after_fork_in_parent() {
    unlock_shared();
}

extern "C" fn after_fork_in_child() {
    FORK_GENERATION.fetch_add(1, Ordering::SeqCst);
    unlock_shared();
}

/// Register the fork handlers once. Called by every constructor.
pub fn install_fork_handler() {
    ATFORK.call_once(|| unsafe {
        libc::pthread_atfork(Some(before_fork), Some(after_fork_in_parent), Some(after_fork_in_child));
    });
}

/// Bumped in every child after fork.
#[inline]
pub fn fork_generation() -> u64 {
    FORK_GENERATION.load(Ordering::Relaxed)
}

struct Shared {
    generation: u64,
    runtime: &'static tokio::runtime::Runtime,
    http: reqwest::Client,
}

/// The state, guarded by `LOCKED` (a spin lock: it is held for a runtime build at most, and
/// fork's handlers must take and release it without a guard object).
struct SharedCell(UnsafeCell<Option<Shared>>);
// SAFETY: every access goes through `with_shared`, which holds `LOCKED`.
unsafe impl Sync for SharedCell {}
static SHARED: SharedCell = SharedCell(UnsafeCell::new(None));
static LOCKED: AtomicBool = AtomicBool::new(false);

fn lock_shared() {
    while LOCKED.compare_exchange_weak(false, true, Ordering::Acquire, Ordering::Relaxed).is_err() {
        std::hint::spin_loop();
        std::thread::yield_now();
    }
}

fn unlock_shared() {
    LOCKED.store(false, Ordering::Release);
}

struct Unlock;
impl Drop for Unlock {
    fn drop(&mut self) {
        unlock_shared();
    }
}

fn build() -> Result<Shared> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name(RUNTIME_THREAD)
        .enable_all()
        .build()
        .map_err(|e| Error::new(ErrorKind::Internal, format!("cannot start the pgentra runtime: {e}")))?;
    let http = reqwest::Client::builder()
        .connect_timeout(std::time::Duration::from_secs(5))
        .timeout(std::time::Duration::from_secs(20))
        .no_proxy()
        // Identity requests never follow a redirect: the identity header, a client secret or
        // assertion and a federated token go to the endpoint configured, nowhere else.
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("pgentra/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| Error::new(ErrorKind::Internal, format!("cannot build the HTTP client: {e}")))?;
    // Leaked on purpose: a runtime inherited through fork() must never be dropped (its
    // threads are gone), and the process keeps one for its lifetime.
    let runtime: &'static tokio::runtime::Runtime = Box::leak(Box::new(runtime));
    Ok(Shared { generation: fork_generation(), runtime, http })
}

fn with_shared<T>(f: impl FnOnce(&Shared) -> T) -> Result<T> {
    install_fork_handler();
    lock_shared();
    let _unlock = Unlock;
    // SAFETY: `LOCKED` is held until `_unlock` drops: no other reference to the state exists.
    let slot = unsafe { &mut *SHARED.0.get() };
    let stale = slot.as_ref().map(|s| s.generation != fork_generation()).unwrap_or(true);
    if stale {
        if let Some(old) = slot.take() {
            // Inherited through fork: its threads and connections are the parent's.
            std::mem::forget(old.http);
        }
        *slot = Some(build()?);
    }
    match slot.as_ref() {
        Some(s) => Ok(f(s)),
        None => Err(Error::new(ErrorKind::Internal, "the pgentra runtime is missing")),
    }
}

pub fn runtime() -> Result<&'static tokio::runtime::Runtime> {
    with_shared(|s| s.runtime)
}

pub fn http_client() -> Result<reqwest::Client> {
    with_shared(|s| s.http.clone())
}

/// Run a future to completion on the pgentra runtime from blocking code, whether or not the
/// caller is itself inside a tokio runtime.
pub fn block_on<F, T>(fut: F) -> Result<T>
where
    F: std::future::Future<Output = Result<T>> + Send + 'static,
    T: Send + 'static,
{
    // On one of pgentra's own runtime threads (a completion callback, a task of ours), waiting
    // here could wait for work that needs this very thread: refuse instead of deadlocking.
    if std::thread::current().name() == Some(RUNTIME_THREAD) {
        return Err(Error::new(
            ErrorKind::Internal,
            "a blocking pgentra call was made on one of pgentra's own runtime threads (for instance inside a completion callback); use the async form there, or call from another thread",
        ));
    }
    let rt = runtime()?;
    if tokio::runtime::Handle::try_current().is_err() {
        return rt.block_on(fut);
    }
    let (tx, rx) = std::sync::mpsc::sync_channel(1);
    rt.spawn(async move {
        let _ = tx.send(fut.await);
    });
    rx.recv().map_err(|_| Error::new(ErrorKind::Internal, "the pgentra runtime stopped"))?
}

/// Run a future on the pgentra runtime and await it from any executor.
pub async fn spawn<F, T>(fut: F) -> Result<T>
where
    F: std::future::Future<Output = Result<T>> + Send + 'static,
    T: Send + 'static,
{
    let rt = runtime()?;
    rt.spawn(fut)
        .await
        .map_err(|e| Error::new(ErrorKind::Internal, format!("token task failed: {e}")))?
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `block_on` from a pgentra runtime thread is an error, not a deadlock (issue #14, item 6).
    #[test]
    fn block_on_from_a_runtime_thread_is_an_error() {
        let rt = runtime().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        rt.spawn(async move {
            let r = block_on(async { Ok::<u32, Error>(1) });
            let _ = tx.send(r.map_err(|e| e.kind()));
        });
        let got = rx.recv_timeout(std::time::Duration::from_secs(5)).expect("no deadlock");
        assert_eq!(got, Err(ErrorKind::Internal));
        // From any other thread it works, inside another runtime too.
        assert_eq!(block_on(async { Ok::<u32, Error>(2) }).unwrap(), 2);
        let other = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        assert_eq!(other.block_on(async { block_on(async { Ok::<u32, Error>(3) }) }).unwrap(), 3);
    }

    /// A fork while another thread builds the runtime for the first time (here: in a child,
    /// where the inherited runtime is stale and gets rebuilt) never hangs the new child
    /// (issue #14, item 6).
    #[test]
    fn fork_while_the_runtime_is_built_never_hangs_the_child() {
        install_fork_handler();
        for _ in 0..20 {
            // SAFETY: fork/waitpid/_exit/alarm from libc; each child only runs pgentra code and
            // exits with _exit.
            unsafe {
                let pid = libc::fork();
                assert!(pid >= 0);
                if pid == 0 {
                    let builder = std::thread::spawn(|| runtime().is_ok());
                    let grandchild = libc::fork();
                    if grandchild == 0 {
                        libc::alarm(5);
                        libc::_exit(if runtime().is_ok() { 0 } else { 1 });
                    }
                    let built = builder.join().unwrap_or(false);
                    let mut st = 0;
                    libc::waitpid(grandchild, &mut st, 0);
                    let ok = built && libc::WIFEXITED(st) && libc::WEXITSTATUS(st) == 0;
                    libc::_exit(if ok { 0 } else { 2 });
                }
                let mut st = 0;
                libc::waitpid(pid, &mut st, 0);
                assert!(libc::WIFEXITED(st) && libc::WEXITSTATUS(st) == 0, "a child hung or failed (status {st:#x})");
            }
        }
    }
}
