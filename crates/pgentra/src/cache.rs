//! The token cache: lock-free fresh reads, refresh ahead of expiry, single flight, stale on
//! error, fork-safe; shared with the user's other processes through
//! [`shared_cache`](crate::shared_cache) when it can be.

use crate::claims::Claims;
use crate::config::CredentialKind;
use crate::error::Result;
use crate::identity::{mono_secs, now_unix, Token, TokenSource};
use crate::runtime::fork_generation;
use crate::secret::Secret;
use crate::shared_cache::{Entry, Lock, Shared};
use arc_swap::{ArcSwap, ArcSwapOption};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Never refresh later than this before expiry.
pub const MIN_REFRESH_MARGIN: i64 = 300;
/// A token is served (stale) only while it has at least this long to live.
const STALE_SERVE_MARGIN: i64 = 30;
/// After a failed background refresh, wait this long before the next try.
const STALE_RETRY: i64 = 10;
/// While another process refreshes the shared entry, look at it again this often.
const SHARED_RECHECK: i64 = 1;
/// A failed request on an empty cache is the answer for this long (or the service's
/// Retry-After, up to a minute): a burst of callers during an outage makes one request per
/// period, not one each.
pub const FAILURE_MEMORY: Duration = Duration::from_secs(3);
/// How often a process waiting for another process's request looks at the shared entry.
const SHARED_POLL: Duration = Duration::from_millis(20);

/// A cached token and what pgentra knows about it. `expires_on`, `refresh_at` and
/// `acquired_at` are Unix seconds by this host's clock, for display; the cache itself keeps
/// time on `mono_secs()` (`mono_refresh`, `mono_expires`), derived from the token's relative
/// lifetime, so a wrong or jumping wall clock changes nothing.
#[derive(Debug)]
pub struct Cached {
    pub token: Secret,
    pub expires_on: i64,
    pub refresh_at: i64,
    pub acquired_at: i64,
    mono_refresh: i64,
    mono_expires: i64,
    pub credential: CredentialKind,
    pub detail: String,
    pub claims: Option<Claims>,
    /// Numbers the tokens this cache acquired (1, 2, ...): a new serial is a new token.
    pub serial: u64,
    next_try: AtomicI64,
}

impl Cached {
    /// The expiry on `mono_secs()`'s clock.
    pub(crate) fn mono_expires(&self) -> i64 {
        self.mono_expires
    }
    /// The refresh point on `mono_secs()`'s clock.
    pub(crate) fn mono_refresh(&self) -> i64 {
        self.mono_refresh
    }
    /// When it was fetched, on `mono_secs()`'s clock (its lifetime back from its expiry).
    pub(crate) fn mono_acquired(&self) -> i64 {
        self.mono_expires.saturating_sub(self.expires_on.saturating_sub(self.acquired_at))
    }

    #[cfg(test)]
    pub(crate) fn for_test(token: Secret, credential: CredentialKind, lifetime: i64, refresh_in: i64) -> Cached {
        let (now, mono) = (now_unix(), mono_secs());
        Cached {
            claims: Claims::decode(token.expose()).ok(),
            token,
            expires_on: now + lifetime,
            refresh_at: now + refresh_in,
            acquired_at: now,
            mono_refresh: mono + refresh_in,
            mono_expires: mono + lifetime,
            credential,
            detail: "test".into(),
            serial: 1,
            next_try: AtomicI64::new(0),
        }
    }
}

/// When to refresh: `refresh_in` when given; half-life for tokens living over 2 hours; and
/// always at least 5 minutes before expiry.
/// Saturating throughout: a hostile lifetime (`"expires_in": "1e19"`) never wraps.
pub fn refresh_at(now: i64, expires_on: i64, refresh_in: Option<i64>) -> i64 {
    let lifetime = expires_on.saturating_sub(now).max(0);
    let latest = expires_on.saturating_sub(MIN_REFRESH_MARGIN);
    let mut at = match refresh_in {
        Some(r) => now.saturating_add(r),
        None if lifetime > 2 * 3600 => now.saturating_add(lifetime / 2),
        None => latest,
    };
    at = at.min(latest);
    // A token shorter-lived than the margin: use it for half its life rather than never.
    if at <= now {
        at = now.saturating_add(lifetime / 2);
    }
    at
}

struct Flight {
    generation: u64,
    lock: Arc<tokio::sync::Mutex<()>>,
}

/// The outcome of the last request, for the callers that waited for it.
struct Outcome {
    /// The number of requests finished when this one did.
    seq: u64,
    error: Option<crate::error::Error>,
    /// When it finished, and how long a failure stays the answer for callers on an empty cache.
    at: Instant,
    hold: Duration,
}

/// How long past its own deadline a caller may wait for another caller's request.
const WAIT_MARGIN: Duration = Duration::from_millis(500);

pub struct TokenCache {
    source: Box<dyn TokenSource>,
    scope: String,
    deadline: Duration,
    current: ArcSwapOption<Cached>,
    flight: ArcSwap<Flight>,
    requests: AtomicU64,
    serials: AtomicU64,
    /// Requests finished (successfully or not), and the last one's outcome: a caller that
    /// waited while a request was in flight takes its result, token or error, instead of
    /// starting a request of its own.
    finished: AtomicU64,
    last: ArcSwapOption<Outcome>,
    /// The entry shared with this user's other processes, when sharing is on.
    shared: Option<Shared>,
    failure_memory: Duration,
    /// When `invalidate_if` last dropped a refused token (`mono_secs()`, 0: never).
    refused_at: AtomicI64,
}

/// A token fetched after a refusal, and refused again within this many seconds, is kept: see
/// `TokenCache::invalidate_if`.
pub const REFUSAL_HOLD: i64 = 10;

impl TokenCache {
    pub fn new(source: Box<dyn TokenSource>, scope: String, deadline: Duration) -> Self {
        TokenCache {
            source,
            scope,
            deadline,
            current: ArcSwapOption::empty(),
            flight: ArcSwap::from_pointee(Flight { generation: fork_generation(), lock: Arc::new(tokio::sync::Mutex::new(())) }),
            requests: AtomicU64::new(0),
            serials: AtomicU64::new(0),
            finished: AtomicU64::new(0),
            last: ArcSwapOption::empty(),
            shared: None,
            failure_memory: FAILURE_MEMORY,
            refused_at: AtomicI64::new(0),
        }
    }

    /// Share tokens with this user's other processes through `shared`.
    pub fn with_shared(mut self, shared: Option<Shared>) -> Self {
        self.shared = shared;
        self
    }

    /// How long a failed request stays the answer on an empty cache (default
    /// [`FAILURE_MEMORY`]; the service's Retry-After wins when it gives one).
    pub fn with_failure_memory(mut self, d: Duration) -> Self {
        self.failure_memory = d;
        self
    }

    /// The shared cache in use, if any (for `pgentra check`).
    pub fn shared(&self) -> Option<&Shared> {
        self.shared.as_ref()
    }

    pub fn source(&self) -> &dyn TokenSource {
        self.source.as_ref()
    }

    /// How many times the source was asked (for diagnostics and tests).
    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    /// The fast path: a fresh token, or `None`. No lock, no allocation beyond the clone of an
    /// `Arc`.
    #[inline]
    pub fn fresh(&self) -> Option<Arc<Cached>> {
        let guard = self.current.load();
        match &*guard {
            Some(c) if mono_secs() < c.mono_refresh => Some(Arc::clone(c)),
            _ => None,
        }
    }

    /// The fast path for a token alone: one atomic load, one clock read (vDSO), one reference
    /// count increment.
    #[inline]
    pub fn fresh_token(&self) -> Option<Secret> {
        let guard = self.current.load();
        match &*guard {
            Some(c) if mono_secs() < c.mono_refresh => Some(c.token.clone()),
            _ => None,
        }
    }

    /// The serial of the cached token when it is fresh: no clone, no lock, never waits.
    #[inline]
    pub fn fresh_serial(&self) -> Option<u64> {
        let guard = self.current.load();
        match &*guard {
            Some(c) if mono_secs() < c.mono_refresh => Some(c.serial),
            _ => None,
        }
    }

    /// The refresh point of a cached token as Unix seconds by this host's clock now.
    pub fn refresh_at_wall(c: &Cached) -> i64 {
        now_unix().saturating_add(c.mono_refresh.saturating_sub(mono_secs()))
    }

    pub fn peek(&self) -> Option<Arc<Cached>> {
        self.current.load_full()
    }

    /// Drop the cached token (e.g. after the server refused it), and the shared entry if it
    /// holds the same token. A remembered failure is forgotten, by the other processes too.
    pub fn invalidate(&self) {
        let prev = self.current.swap(None);
        self.last.store(None);
        // The application starts over: the next token is not held back by REFUSAL_HOLD.
        self.refused_at.store(0, Ordering::Relaxed);
        if let Some(sh) = &self.shared {
            match prev {
                Some(p) => drop(sh.remove_if(p.token.expose())),
                None => drop(sh.forget_failure()),
            }
        }
    }

    /// Drop this process's copy of the token and the last outcome, nothing else: the shared
    /// entry and a failure remembered for the user's other processes stay (they are not done
    /// with them). For a binding's `close()`.
    pub fn forget(&self) {
        self.current.store(None);
        self.last.store(None);
    }

    /// Drop the cached token only if it is `rejected` (compare-and-swap); the shared entry
    /// too, only if it still holds `rejected` (so refusals in many processes cause one new
    /// request).
    pub fn invalidate_if(&self, rejected: &str) -> bool {
        let current = self.current.load_full();
        if let Some(c) = &current {
            // This token replaced one that a refusal dropped a moment ago, and is refused too:
            // the server refuses something else (a user name that is not the identity's, a role
            // that does not exist), which no new token mends. Keep it rather than make an
            // identity request per failed connection; a refusal after REFUSAL_HOLD drops it.
            let last = self.refused_at.load(Ordering::Relaxed);
            let acquired = c.mono_acquired();
            if c.token.expose() == rejected && last > 0 && acquired >= last && mono_secs().saturating_sub(acquired) < REFUSAL_HOLD {
                tracing::debug!("a token fetched after a refusal is refused too: kept (the refusal is not about the token)");
                return false;
            }
        }
        if let Some(sh) = &self.shared {
            sh.remove_if(rejected);
        }
        match &current {
            Some(c) if c.token.expose() == rejected => {
                let prev = self.current.compare_and_swap(&current, None);
                let dropped = match (&*prev, &current) {
                    (Some(p), Some(c)) => Arc::ptr_eq(p, c),
                    _ => false,
                };
                if dropped {
                    self.refused_at.store(mono_secs(), Ordering::Relaxed);
                }
                dropped
            }
            _ => false,
        }
    }

    fn flight(&self) -> Arc<Flight> {
        let f = self.flight.load_full();
        if f.generation == fork_generation() {
            return f;
        }
        // After fork: the parent's lock may be held by a task that does not exist here.
        let fresh = Arc::new(Flight { generation: fork_generation(), lock: Arc::new(tokio::sync::Mutex::new(())) });
        self.flight.store(Arc::clone(&fresh));
        fresh
    }

    pub async fn get(self: &Arc<Self>) -> Result<Arc<Cached>> {
        if let Some(c) = self.fresh() {
            return Ok(c);
        }
        let now = mono_secs();
        let old = self.current.load_full();
        let usable_old = old.as_ref().filter(|c| now < c.mono_expires.saturating_sub(STALE_SERVE_MARGIN)).cloned();
        let flight = self.flight();
        if let Some(old) = usable_old {
            // Refresh ahead, in the background: every caller, the one that starts the refresh
            // included, keeps the still-valid token and waits for nothing.
            if now < old.next_try.load(Ordering::Relaxed) {
                return Ok(old);
            }
            let Ok(guard) = Arc::clone(&flight.lock).try_lock_owned() else {
                return Ok(old);
            };
            if let Some(c) = self.fresh() {
                return Ok(c);
            }
            let this = Arc::clone(self);
            let stale = Arc::clone(&old);
            let refresh = async move {
                let _guard = guard;
                if let Err(e) = this.refresh_ahead(&stale).await {
                    tracing::warn!(error = %e, "token refresh failed; serving the still-valid token and retrying later");
                    stale.next_try.store(mono_secs() + STALE_RETRY, Ordering::Relaxed);
                }
            };
            match crate::runtime::runtime() {
                Ok(rt) => drop(rt.spawn(refresh)),
                // No runtime to refresh on: refresh in line rather than never.
                Err(_) => refresh.await,
            }
            return Ok(old);
        }
        // Empty or expired: everyone waits for one request, and shares its outcome.
        let seen = self.finished.load(Ordering::Acquire);
        let _guard = match tokio::time::timeout(self.deadline + WAIT_MARGIN, flight.lock.lock()).await {
            Ok(g) => g,
            Err(_) => {
                return Err(crate::error::Error::new(
                    crate::error::ErrorKind::Network,
                    format!("no token within the deadline of {:?}: another caller's request to {} is still running", self.deadline, self.source.describe()),
                ))
            }
        };
        if let Some(c) = self.fresh() {
            return Ok(c);
        }
        if let Some(o) = self.last.load_full() {
            if let Some(e) = &o.error {
                // The request this caller waited for failed, or a request failed moments ago:
                // its error is the answer (one request per period during an outage).
                let waited_for_it = self.finished.load(Ordering::Acquire) != seen && o.seq > seen;
                if waited_for_it || o.at.elapsed() < o.hold {
                    return Err(e.clone());
                }
            }
        }
        let result = self.acquire().await;
        let seq = self.finished.load(Ordering::Relaxed) + 1;
        let error = result.as_ref().err().cloned();
        let hold = error.as_ref().map_or(Duration::ZERO, |e| self.hold_for(e));
        self.last.store(Some(Arc::new(Outcome { seq, error, at: Instant::now(), hold })));
        self.finished.store(seq, Ordering::Release);
        result
    }

    /// How long a failure stays the answer: the service's Retry-After (at most a minute), else
    /// the failure memory.
    fn hold_for(&self, e: &crate::error::Error) -> Duration {
        e.retry_after().map(|ra| ra.min(Duration::from_secs(60))).unwrap_or(self.failure_memory)
    }

    /// A request for the shared entry, by the process holding the key's lock: a token is
    /// written for all, a failure is remembered for all (so that during an outage the
    /// processes of one user make one request per period, not one each).
    async fn fetch_for_all(&self, sh: &Shared, deadline: Duration) -> Result<Arc<Cached>> {
        match self.fetch_within(deadline).await {
            Ok(c) => {
                sh.write(&c);
                Ok(c)
            }
            Err(e) => {
                sh.write_failure(&e, self.hold_for(&e));
                Err(e)
            }
        }
    }

    /// An empty cache: the shared entry if there is a valid one, or the failure another
    /// process remembered; else the key's lock and one request for every process (the others
    /// wait for its outcome, bounded by the deadline, then ask themselves). Called with this
    /// process's flight lock held.
    async fn acquire(&self) -> Result<Arc<Cached>> {
        let Some(sh) = &self.shared else { return self.fetch().await };
        if let Some(e) = sh.read() {
            if e.refresh_in > 0 {
                return Ok(self.install(e));
            }
            return Ok(self.refresh_due(sh, e).await);
        }
        if let Some(e) = sh.failure() {
            return Err(e);
        }
        if sh.unshared() {
            // This key's tokens are not shared (the automatic chain chose the Azure CLI, say):
            // no waiting for other processes.
            return self.fetch().await;
        }
        let started = Instant::now();
        let give_up = started + self.deadline / 2;
        loop {
            match sh.try_lock() {
                Lock::Held(_lock) => {
                    // The holder before us may have written its outcome just now.
                    if let Some(e) = sh.read() {
                        return Ok(self.install(e));
                    }
                    if let Some(e) = sh.failure() {
                        return Err(e);
                    }
                    return self.fetch_for_all(sh, self.deadline).await;
                }
                Lock::Busy if Instant::now() < give_up => {
                    tokio::time::sleep(SHARED_POLL).await;
                    if let Some(e) = sh.read() {
                        return Ok(self.install(e));
                    }
                    if let Some(e) = sh.failure() {
                        return Err(e);
                    }
                    if sh.unshared() {
                        return self.fetch_within(self.deadline.saturating_sub(started.elapsed())).await;
                    }
                }
                Lock::Busy => {
                    tracing::warn!(
                        waited_ms = started.elapsed().as_millis() as u64,
                        "another process has held the shared token cache's lock too long; requesting a token for this process"
                    );
                    // What is left of the deadline (at least half of it): waiting callers in
                    // this process give up after one deadline.
                    return self.fetch_for_all(sh, self.deadline.saturating_sub(started.elapsed())).await;
                }
                Lock::Unavailable => return self.fetch_for_all(sh, self.deadline).await,
            }
        }
    }

    /// An empty cache and a valid entry past its refresh point: the first process here
    /// refreshes it for all, in line (a process with nothing in memory may be about to exit,
    /// which would cut a background refresh short and waste its request); the others take the
    /// valid entry at once. A failed refresh serves the valid entry.
    async fn refresh_due(&self, sh: &Shared, due: Entry) -> Arc<Cached> {
        let Lock::Held(_lock) = sh.try_lock() else { return self.install(due) };
        if let Some(e) = sh.read().filter(|e| e.refresh_in > 0) {
            return self.install(e);
        }
        match self.fetch().await {
            Ok(c) => {
                sh.write(&c);
                c
            }
            Err(e) => {
                tracing::warn!(error = %e, "token refresh failed; serving the still-valid shared token and retrying later");
                let c = self.install(due);
                c.next_try.store(mono_secs() + STALE_RETRY, Ordering::Relaxed);
                c
            }
        }
    }

    /// Past the refresh point (in the background, with this process's flight lock): take the
    /// entry another process refreshed; else, holding the key's lock, refresh it for all. When
    /// another process holds the lock it is refreshing: look again shortly, and keep serving.
    async fn refresh_ahead(&self, stale: &Cached) -> Result<()> {
        let Some(sh) = &self.shared else { return self.fetch().await.map(|_| ()) };
        if sh.unshared() {
            return self.fetch().await.map(|_| ());
        }
        if let Some(e) = sh.read().filter(|e| e.refresh_in > 0) {
            self.install(e);
            return Ok(());
        }
        match sh.try_lock() {
            Lock::Held(_lock) => {
                if let Some(e) = sh.read().filter(|e| e.refresh_in > 0) {
                    self.install(e);
                    return Ok(());
                }
                let c = self.fetch().await?;
                sh.write(&c);
                Ok(())
            }
            Lock::Busy => {
                stale.next_try.store(mono_secs() + SHARED_RECHECK, Ordering::Relaxed);
                Ok(())
            }
            Lock::Unavailable => {
                let c = self.fetch().await?;
                sh.write(&c);
                Ok(())
            }
        }
    }

    /// Put a shared entry in memory, its refresh point moved by a little jitter so that the
    /// processes that read it do not all come back at the same moment.
    fn install(&self, e: Entry) -> Arc<Cached> {
        let now = now_unix();
        let mono = mono_secs();
        let refresh_in = if e.refresh_in > 0 { e.refresh_in.saturating_add(Shared::jitter(&e)) } else { e.refresh_in };
        let current = self.current.load_full();
        let serial = match &current {
            Some(c) if c.token.expose() == e.token.expose() => c.serial,
            _ => self.serials.fetch_add(1, Ordering::Relaxed) + 1,
        };
        let cached = Arc::new(Cached {
            token: e.token,
            expires_on: now.saturating_add(e.expires_in),
            refresh_at: now.saturating_add(refresh_in),
            acquired_at: e.fetched_at,
            mono_refresh: mono.saturating_add(refresh_in),
            mono_expires: mono.saturating_add(e.expires_in),
            credential: e.credential,
            detail: format!("{} (shared cache)", e.detail),
            claims: e.claims,
            serial,
            next_try: AtomicI64::new(0),
        });
        tracing::debug!(expires_in = e.expires_in, refresh_in, "token from the shared cache");
        self.current.store(Some(Arc::clone(&cached)));
        cached
    }

    async fn fetch(&self) -> Result<Arc<Cached>> {
        self.fetch_within(self.deadline).await
    }

    /// One request to the source, within `deadline`.
    async fn fetch_within(&self, deadline: Duration) -> Result<Arc<Cached>> {
        self.requests.fetch_add(1, Ordering::Relaxed);
        let t: Token = self.source.fetch(&self.scope, deadline).await?;
        let now = now_unix();
        let mono = mono_secs();
        let lifetime = t.lifetime.unwrap_or_else(|| t.expires_on.saturating_sub(now));
        if lifetime <= 0 {
            return Err(crate::error::Error::new(
                crate::error::ErrorKind::IdentityService,
                format!("{} returned a token that has already expired; check the machine's clock", t.detail),
            ));
        }
        let claims = Claims::decode(t.secret.expose()).ok();
        // The schedule in lifetime terms (from 0), then placed on both clocks.
        let refresh_in = refresh_at(0, lifetime, t.refresh_in);
        let cached = Arc::new(Cached {
            refresh_at: now.saturating_add(refresh_in),
            token: t.secret,
            expires_on: now.saturating_add(lifetime),
            acquired_at: now,
            mono_refresh: mono.saturating_add(refresh_in),
            mono_expires: mono.saturating_add(lifetime),
            credential: t.credential,
            detail: t.detail,
            claims,
            serial: self.serials.fetch_add(1, Ordering::Relaxed) + 1,
            next_try: AtomicI64::new(0),
        });
        tracing::debug!(credential = cached.credential.as_str(), expires_in = lifetime, refresh_in, "token acquired");
        self.current.store(Some(Arc::clone(&cached)));
        Ok(cached)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::error::{Error, ErrorKind};
    use std::sync::atomic::AtomicUsize;

    #[test]
    fn refresh_schedule() {
        let now = 1_000_000;
        // One hour: 5 minutes before expiry.
        assert_eq!(refresh_at(now, now + 3600, None), now + 3300);
        // 24 hours: half-life.
        assert_eq!(refresh_at(now, now + 86400, None), now + 43200);
        // refresh_in honoured...
        assert_eq!(refresh_at(now, now + 3600, Some(1800)), now + 1800);
        // ...but never later than 5 minutes before expiry.
        assert_eq!(refresh_at(now, now + 3600, Some(3500)), now + 3300);
        // Very short tokens: half their life.
        assert_eq!(refresh_at(now, now + 60, None), now + 30);
        // Hostile values saturate, in debug builds too.
        assert_eq!(refresh_at(now, i64::MAX, Some(i64::MAX)), i64::MAX - MIN_REFRESH_MARGIN);
        assert_eq!(refresh_at(now, i64::MAX, None), now + (i64::MAX - now) / 2);
        assert!(refresh_at(now, now + 3600, Some(i64::MIN)) <= now + 1800);
    }

    /// Hands out "a.b0.c", "a.b1.c", ... after 50 ms, counting requests (also used by
    /// `recovery`'s tests). With a gate, each answer also waits for one of its permits.
    pub(crate) struct Counting {
        pub(crate) calls: Arc<AtomicUsize>,
        pub(crate) fail: Arc<std::sync::atomic::AtomicBool>,
        pub(crate) lifetime: i64,
        pub(crate) gate: Option<Arc<tokio::sync::Semaphore>>,
    }

    #[async_trait::async_trait]
    impl TokenSource for Counting {
        async fn fetch(&self, _scope: &str, _d: Duration) -> Result<Token> {
            let n = self.calls.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(50)).await;
            if let Some(g) = &self.gate {
                g.acquire().await.expect("the test's gate stays open").forget();
            }
            if self.fail.load(Ordering::SeqCst) {
                return Err(Error::new(ErrorKind::Network, "down"));
            }
            Ok(Token {
                secret: Secret::new(format!("a.b{n}.c")),
                expires_on: now_unix() + self.lifetime,
                lifetime: None,
                refresh_in: None,
                credential: CredentialKind::ManagedIdentity,
                detail: "test".into(),
            })
        }
        fn kind(&self) -> CredentialKind {
            CredentialKind::ManagedIdentity
        }
        fn describe(&self) -> String {
            "test".into()
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn single_flight_and_stale_on_error() {
        let calls = Arc::new(AtomicUsize::new(0));
        let fail = Arc::new(std::sync::atomic::AtomicBool::new(false));
        // One answer may pass (the first fetch); the background refresh below waits for the test.
        let gate = Arc::new(tokio::sync::Semaphore::new(1));
        let cache = Arc::new(TokenCache::new(
            Box::new(Counting { calls: calls.clone(), fail: fail.clone(), lifetime: 3600, gate: Some(gate.clone()) }),
            "s".into(),
            Duration::from_secs(5),
        ));
        let mut tasks = Vec::new();
        for _ in 0..64 {
            let c = cache.clone();
            tasks.push(tokio::spawn(async move { c.get().await.map(|t| t.token.expose().to_string()) }));
        }
        let mut seen = std::collections::HashSet::new();
        for t in tasks {
            seen.insert(t.await.unwrap().unwrap());
        }
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        assert_eq!(seen.len(), 1);

        // Make the token due for refresh, then fail the refresh: the old one is served.
        let old = cache.peek().unwrap();
        let due = Arc::new(Cached {
            token: old.token.clone(),
            expires_on: old.expires_on,
            refresh_at: now_unix() - 1,
            mono_refresh: mono_secs() - 1,
            mono_expires: old.mono_expires,
            acquired_at: old.acquired_at,
            credential: old.credential,
            detail: old.detail.clone(),
            claims: None,
            serial: old.serial,
            next_try: AtomicI64::new(0),
        });
        cache.current.store(Some(due));
        fail.store(true, Ordering::SeqCst);
        // The refresh cannot answer until the gate opens, so a caller that waited for it would
        // hang (the timeout only turns such a hang into a failure; it measures nothing).
        let got = tokio::time::timeout(Duration::from_secs(30), cache.get())
            .await
            .expect("the refresh runs in the background: the caller gets the old token at once")
            .unwrap();
        assert_eq!(got.token.expose(), old.token.expose());
        // The background refresh fails once let through: the old token stays.
        gate.add_permits(1);
        for _ in 0..200 {
            if gate.available_permits() == 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        gate.add_permits(1_000); // no more waiting from here on
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(calls.load(Ordering::SeqCst), 2);
        assert_eq!(cache.get().await.unwrap().token.expose(), old.token.expose());
        // Within the retry pause no new request is made.
        cache.get().await.unwrap();
        assert_eq!(calls.load(Ordering::SeqCst), 2);
        // Compare-and-invalidate: a token that is not the cached one changes nothing.
        assert!(!cache.invalidate_if("not-the-token"));
        assert!(cache.peek().is_some());
        let cur = cache.peek().unwrap().token.expose().to_string();
        assert!(cache.invalidate_if(&cur));
        assert!(cache.peek().is_none());
        // An empty cache with a failing source is an error, not a hang.
        cache.invalidate();
        assert!(cache.get().await.is_err());
    }

    /// A token fetched because a refusal dropped the last one, and refused too (a wrong user
    /// name, a role that does not exist), is kept: ten failed connections cost two requests,
    /// not eleven (issue #17, item 3). A token from before the last refusal is dropped as ever.
    #[tokio::test]
    async fn a_token_refused_again_right_after_a_refusal_is_kept() {
        let calls = Arc::new(AtomicUsize::new(0));
        let src = Counting { calls: calls.clone(), fail: Arc::new(std::sync::atomic::AtomicBool::new(false)), lifetime: 3600, gate: None };
        let cache = Arc::new(TokenCache::new(Box::new(src), "s".into(), Duration::from_secs(5)));
        let first = cache.get().await.unwrap().token.expose().to_string();
        assert!(cache.invalidate_if(&first), "the first refusal drops the token");
        for _ in 0..10 {
            let t = cache.get().await.unwrap().token.expose().to_string();
            assert_ne!(t, first);
            assert!(!cache.invalidate_if(&t), "refused again at once: kept");
        }
        assert_eq!(calls.load(Ordering::SeqCst), 2);
        // A token acquired before the last refusal is not protected.
        let current = cache.peek().unwrap();
        cache.refused_at.store(current.mono_acquired() + 1, Ordering::Relaxed);
        assert!(cache.invalidate_if(current.token.expose()));
        assert!(cache.peek().is_none());
        // An explicit invalidate() starts over: the next token can be dropped by a refusal.
        let t = cache.get().await.unwrap().token.expose().to_string();
        assert!(!cache.invalidate_if(&t), "fetched right after a refusal: kept");
        cache.invalidate();
        let t = cache.get().await.unwrap().token.expose().to_string();
        assert!(cache.invalidate_if(&t), "after invalidate() a refusal drops it again");
    }

    /// 20 threads and 1,000 tasks on an empty cache whose source fails after 300 ms: one
    /// request, every caller gets its error, and none waits much longer than one request
    /// (issue #14, item 4). Before, each waiter started its own request in turn.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn waiters_share_a_failed_request() {
        struct Slow(Arc<AtomicUsize>);
        #[async_trait::async_trait]
        impl TokenSource for Slow {
            async fn fetch(&self, _scope: &str, _d: Duration) -> Result<Token> {
                self.0.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(300)).await;
                Err(Error::new(ErrorKind::Network, "down"))
            }
            fn kind(&self) -> CredentialKind {
                CredentialKind::ManagedIdentity
            }
            fn describe(&self) -> String {
                "slow".into()
            }
        }
        for callers in [20usize, 1000] {
            let calls = Arc::new(AtomicUsize::new(0));
            let cache = Arc::new(
                TokenCache::new(Box::new(Slow(calls.clone())), "s".into(), Duration::from_secs(2))
                    .with_failure_memory(Duration::from_millis(600)),
            );
            let start = std::time::Instant::now();
            let mut tasks = Vec::new();
            for _ in 0..callers {
                let c = cache.clone();
                tasks.push(tokio::spawn(async move { c.get().await.map(|_| ()) }));
            }
            for t in tasks {
                let e = t.await.unwrap().unwrap_err();
                assert_eq!(e.message(), "down");
            }
            assert_eq!(calls.load(Ordering::SeqCst), 1, "{callers} callers");
            // Waiting in turn, 20 callers would take 6 s; sharing, about 0.3 s. The bound is
            // generous so that a loaded machine does not fail it.
            assert!(start.elapsed() < Duration::from_secs(5), "{callers} callers took {:?}", start.elapsed());
            // Callers just after the failure get it too, without a request (issue #14, item 4)...
            for _ in 0..50 {
                assert_eq!(cache.get().await.unwrap_err().message(), "down");
            }
            assert_eq!(calls.load(Ordering::SeqCst), 1);
            // ...and after the period, one caller asks again.
            tokio::time::sleep(Duration::from_millis(700)).await;
            assert!(cache.get().await.is_err());
            assert_eq!(calls.load(Ordering::SeqCst), 2);
            // invalidate() forgets the failure.
            cache.invalidate();
            assert!(cache.get().await.is_err());
            assert_eq!(calls.load(Ordering::SeqCst), 3);
        }
    }

    /// A failure that carries the service's Retry-After is remembered that long instead.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_failure_is_remembered_for_its_retry_after() {
        struct Throttled(Arc<AtomicUsize>);
        #[async_trait::async_trait]
        impl TokenSource for Throttled {
            async fn fetch(&self, _scope: &str, _d: Duration) -> Result<Token> {
                self.0.fetch_add(1, Ordering::SeqCst);
                Err(Error::new(ErrorKind::IdentityService, "throttled").with_retry_after(Duration::from_millis(800)))
            }
            fn kind(&self) -> CredentialKind {
                CredentialKind::ManagedIdentity
            }
            fn describe(&self) -> String {
                "throttled".into()
            }
        }
        let calls = Arc::new(AtomicUsize::new(0));
        let cache = Arc::new(
            TokenCache::new(Box::new(Throttled(calls.clone())), "s".into(), Duration::from_secs(2))
                .with_failure_memory(Duration::from_millis(100)),
        );
        assert!(cache.get().await.is_err());
        tokio::time::sleep(Duration::from_millis(300)).await;
        let e = cache.get().await.unwrap_err();
        assert_eq!(e.retry_after(), Some(Duration::from_millis(800)));
        assert_eq!(calls.load(Ordering::SeqCst), 1, "within the service's Retry-After");
        tokio::time::sleep(Duration::from_millis(600)).await;
        assert!(cache.get().await.is_err());
        assert_eq!(calls.load(Ordering::SeqCst), 2);
    }
}
