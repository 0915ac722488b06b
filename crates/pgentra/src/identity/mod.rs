//! Token sources: the credential chain.
//!
//! The HTTP protocols (App Service / Container Apps / Functions managed identity, IMDS, Arc, and
//! the Entra v2 token endpoint for client secret, certificate and federated credentials) are
//! spoken here directly, because the product needs what `azure_identity` 1.0 does not give:
//! `refresh_in`, strict response checks (no empty token, no missing lifetime), the service's
//! `AADSTS` code, a total deadline instead of an ~82 s retry policy, no second cache under ours,
//! a federated token file read on every request, and no silent fall-through to the metadata
//! address. The developer-tool credentials (Azure CLI, Azure Developer CLI) wrap
//! `azure_identity`, which runs and parses those tools well.

mod chain;
mod devtool;
mod entra;
mod http;
mod managed;
mod response;

pub use chain::{source_for, Chain};
pub use devtool::DevTool;
pub use entra::Entra;
pub use managed::{ManagedIdentity, MiHost};
pub(crate) use response::{date_header, parse_token_response, service_error};

use crate::config::CredentialKind;
use crate::error::Result;
use crate::secret::Secret;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A token as a source returns it.
#[derive(Debug, Clone)]
pub struct Token {
    pub secret: Secret,
    /// Unix seconds, by this host's clock (for display; the cache keeps time by `lifetime`).
    pub expires_on: i64,
    /// How long the token lives from when it was received, in seconds, when that is known
    /// without this host's wall clock: `expires_in`, or `expires_on` against the service's own
    /// `Date`. `None`: `expires_on` minus this host's clock.
    pub lifetime: Option<i64>,
    /// Seconds after issue when a client should refresh, if the service said.
    pub refresh_in: Option<i64>,
    pub credential: CredentialKind,
    /// e.g. "managed identity (App Service endpoint, user-assigned client id from AZURE_POSTGRESQL_CLIENTID)"
    pub detail: String,
}

/// Wall-clock Unix seconds. On Linux the coarse clock (a vDSO read without `rdtsc`, a few
/// milliseconds of resolution) keeps the cache's fast path cheap; token lifetimes are in seconds.
#[inline]
pub fn now_unix() -> i64 {
    #[cfg(target_os = "linux")]
    {
        let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
        // SAFETY: clock_gettime writes into the timespec we own; CLOCK_REALTIME_COARSE exists
        // on every Linux since 2.6.32.
        if unsafe { libc::clock_gettime(libc::CLOCK_REALTIME_COARSE, &mut ts) } == 0 {
            return ts.tv_sec;
        }
    }
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
}

/// Seconds on a clock that never jumps with the wall clock and keeps counting during suspend
/// (`CLOCK_BOOTTIME`): the cache's refresh points and expiry live on it, so a wrong or jumping
/// host clock neither serves an expired token nor refreshes in a loop.
#[inline]
pub fn mono_secs() -> i64 {
    #[cfg(target_os = "linux")]
    {
        let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
        // SAFETY: clock_gettime writes into the timespec we own; CLOCK_BOOTTIME exists on
        // every Linux since 2.6.39.
        if unsafe { libc::clock_gettime(libc::CLOCK_BOOTTIME, &mut ts) } == 0 {
            return ts.tv_sec;
        }
    }
    static START: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
    START.get_or_init(std::time::Instant::now).elapsed().as_secs() as i64
}

/// A source of tokens for one scope.
#[async_trait::async_trait]
pub trait TokenSource: Send + Sync {
    async fn fetch(&self, scope: &str, deadline: Duration) -> Result<Token>;
    fn kind(&self) -> CredentialKind;
    fn describe(&self) -> String;
}

