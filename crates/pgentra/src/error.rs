//! One error type for the whole library, with kinds that every binding maps to its own
//! exception classes in one place.

use std::fmt;

/// What went wrong, coarsely. Numbered: bindings expose these numbers and never reuse one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum ErrorKind {
    /// A variable, key or argument is missing, malformed or contradictory.
    Config = 1,
    /// No credential applies, or a credential could not be built or run (e.g. `az` not logged in).
    Credential = 2,
    /// The identity service answered with an error (Entra `AADSTS…`, managed identity 4xx/5xx).
    IdentityService = 3,
    /// The identity service or database could not be reached in time, or an identity
    /// endpoint's TLS certificate is not trusted (the message says which CA to trust).
    Network = 4,
    /// A token would travel without TLS, or TLS to the database failed.
    TlsPolicy = 5,
    /// The database refused the connection or a query failed.
    Database = 6,
    /// A bug in pgentra (for instance a panic caught at an FFI boundary).
    Internal = 7,
}

impl ErrorKind {
    /// Every kind, in number order: bindings build their exception classes from this list.
    pub const ALL: [ErrorKind; 7] = [
        ErrorKind::Config,
        ErrorKind::Credential,
        ErrorKind::IdentityService,
        ErrorKind::Network,
        ErrorKind::TlsPolicy,
        ErrorKind::Database,
        ErrorKind::Internal,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::Config => "configuration",
            ErrorKind::Credential => "credential",
            ErrorKind::IdentityService => "identity service",
            ErrorKind::Network => "network",
            ErrorKind::TlsPolicy => "TLS policy",
            ErrorKind::Database => "database",
            ErrorKind::Internal => "internal",
        }
    }

    /// The kind named by [`as_str`](Self::as_str), if any.
    pub fn parse(s: &str) -> Option<ErrorKind> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

/// A pgentra error. Its message names the variable or key at fault and says what to do; it
/// never contains a token, client secret or password.
#[derive(Clone, PartialEq, Eq)]
pub struct Error {
    kind: ErrorKind,
    message: String,
    /// The identity service's own error code, e.g. `AADSTS7000215`, when there is one.
    code: Option<String>,
    /// How long the service asked callers to wait (Retry-After), when it did.
    retry_after: Option<std::time::Duration>,
}

impl Error {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Error { kind, message: message.into(), code: None, retry_after: None }
    }
    pub fn config(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Config, message)
    }
    pub fn credential(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Credential, message)
    }
    pub fn with_code(mut self, code: impl Into<String>) -> Self {
        self.code = Some(code.into());
        self
    }
    pub fn with_retry_after(mut self, d: std::time::Duration) -> Self {
        self.retry_after = Some(d);
        self
    }
    /// The service's Retry-After, when the failure carried one.
    pub fn retry_after(&self) -> Option<std::time::Duration> {
        self.retry_after
    }
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }
    pub fn message(&self) -> &str {
        &self.message
    }
    pub fn code(&self) -> Option<&str> {
        self.code.as_deref()
    }
    /// Prefix the message with context (e.g. the variable the value came from).
    pub fn context(mut self, ctx: impl fmt::Display) -> Self {
        self.message = format!("{ctx}: {}", self.message);
        self
    }
}

impl Error {
    /// The error every binding reports for a panic caught at its boundary (a bug in pgentra):
    /// kind `Internal`, the panic's text. The payload is forgotten, not dropped (a payload's
    /// `Drop` could itself panic).
    pub fn from_panic(payload: Box<dyn std::any::Any + Send>) -> Error {
        let what = payload
            .downcast_ref::<&str>()
            .map(|s| (*s).to_string())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "non-string panic payload".to_string());
        std::mem::forget(payload);
        Error::new(ErrorKind::Internal, format!("a bug in pgentra (a Rust panic, caught): {what}; please report it"))
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "pgentra {} error: {}", self.kind.as_str(), self.message)
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Error")
            .field("kind", &self.kind)
            .field("code", &self.code)
            .field("message", &self.message)
            .finish()
    }
}

impl std::error::Error for Error {}

pub type Result<T, E = Error> = std::result::Result<T, E>;
