//! pgentra: reach Azure Database for PostgreSQL with Microsoft Entra ID tokens instead of
//! passwords.
//!
//! ```no_run
//! let c = pgentra::Connector::from_env(None)?;
//! let dsn = c.connection_string(pgentra::Format::Libpq)?;
//! # Ok::<(), pgentra::Error>(())
//! ```
//!
//! Configuration comes from Service Connector's `AZURE_POSTGRESQL_*` variables (any of the four
//! connection-string dialects or discrete variables), the Azure SDK variables, and values passed
//! by code. Tokens come from the credential chain and live in a refresh-ahead cache.

pub mod cache;
pub mod claims;
pub mod cloud;
pub mod config;
pub mod conninfo;
pub mod connector;
#[cfg(feature = "db")]
pub mod db;
pub mod error;
pub mod identity;
pub mod recovery;
pub mod runtime;
pub mod secret;
pub mod shared_cache;
pub mod tls;

pub use claims::Claims;
pub use cloud::Cloud;
pub use config::{Config, CredentialKind, Env, Options, DEFAULT_PREFIX};
pub use conninfo::{ConnParams, Dialect, Format, SslMode};
pub use connector::{Connector, TokenInfo};
pub use error::{Error, ErrorKind, Result};
pub use recovery::Failure;
pub use secret::Secret;
pub use tls::{TlsDecision, TlsPolicy, TlsRule};

/// Entry points for the fuzz targets in `fuzz/` (not part of the stable API).
#[doc(hidden)]
pub mod fuzzing {
    use crate::config::CredentialKind;

    /// Parses a 200 answer of an identity endpoint (MSI, IMDS, Arc or Entra).
    pub fn token_response(body: &[u8]) -> crate::Result<i64> {
        crate::identity::parse_token_response(body, "fuzz", CredentialKind::ManagedIdentity, "fuzz", None).map(|t| t.expires_on)
    }

    /// Turns an error answer of an identity endpoint into the error a caller sees.
    pub fn error_response(status: u16, body: &[u8]) -> crate::Error {
        crate::identity::service_error(status, body, "fuzz", "")
    }
}

/// Turn on `tracing` output when `PGENTRA_LOG` is set (e.g. `PGENTRA_LOG=debug`). Bindings and
/// the CLI call this; libraries embedding pgentra may install their own subscriber instead.
pub fn init_logging() {
    if let Ok(level) = std::env::var("PGENTRA_LOG") {
        if level.is_empty() {
            return;
        }
        // A level for pgentra's own targets (`debug`, `info`, ...); anything else means `debug`.
        // `Targets` rather than `EnvFilter`: the latter brings a regex engine into every binding.
        use tracing_subscriber::layer::SubscriberExt as _;
        use tracing_subscriber::util::SubscriberInitExt as _;
        let level = level.trim().parse().unwrap_or(tracing_subscriber::filter::LevelFilter::DEBUG);
        let filter = tracing_subscriber::filter::Targets::new().with_target("pgentra", level);
        let _ = tracing_subscriber::registry()
            .with(tracing_subscriber::fmt::layer().with_writer(std::io::stderr))
            .with(filter)
            .try_init();
    }
}
