//! Process-wide state: one tokio runtime and one HTTP client per process, renewed in a child
//! after `fork()` (the parent's threads do not exist there).

use crate::error::{Error, ErrorKind, Result};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, Once};

static FORK_GENERATION: AtomicU64 = AtomicU64::new(0);
/// The name of the runtime's threads.
const RUNTIME_THREAD: &str = "pgentra-rt";
static ATFORK: Once = Once::new();

extern "C" fn after_fork_in_child() {
    // Async-signal-safe: a single atomic increment.
    FORK_GENERATION.fetch_add(1, Ordering::SeqCst);
}

/// Register the fork handler once. Called by every constructor.
pub fn install_fork_handler() {
    ATFORK.call_once(|| unsafe {
        libc::pthread_atfork(None, None, Some(after_fork_in_child));
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

static SHARED: Mutex<Option<Shared>> = Mutex::new(None);

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
    // A child may inherit this mutex locked by a thread that no longer exists; the lock is
    // only held for a few instructions, and never across fork in practice. Poison is ignored.
    let mut guard = SHARED.lock().unwrap_or_else(|p| p.into_inner());
    let stale = guard.as_ref().map(|s| s.generation != fork_generation()).unwrap_or(true);
    if stale {
        if let Some(old) = guard.take() {
            std::mem::forget(old.http);
        }
        *guard = Some(build()?);
    }
    Ok(f(guard.as_ref().expect("set above")))
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
}
