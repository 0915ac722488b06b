//! The boundary: errors on their way to C, the thread-local last error, panics caught before
//! they cross.

use super::*;

/// An error on its way to C.
#[derive(Debug)]
pub(crate) struct FfiError {
    pub(crate) status: pgentra_status,
    pub(crate) message: String,
    pub(crate) code: Option<String>,
}

impl FfiError {
    pub(crate) fn new(status: pgentra_status, message: impl Into<String>) -> Self {
        FfiError { status, message: message.into(), code: None }
    }
    pub(crate) fn null(function: &str, argument: &str) -> Self {
        Self::new(pgentra_status::PGENTRA_ERR_NULL_ARGUMENT, format!("{function}: argument '{argument}' is NULL"))
    }
    pub(crate) fn invalid(function: &str, message: impl std::fmt::Display) -> Self {
        Self::new(pgentra_status::PGENTRA_ERR_INVALID_ARGUMENT, format!("{function}: {message}"))
    }
}

pub(crate) fn status_of(kind: ErrorKind) -> pgentra_status {
    // Exhaustive on purpose: a new ErrorKind must get its own status number here.
    match kind {
        ErrorKind::Config => pgentra_status::PGENTRA_ERR_CONFIG,
        ErrorKind::Credential => pgentra_status::PGENTRA_ERR_CREDENTIAL,
        ErrorKind::IdentityService => pgentra_status::PGENTRA_ERR_IDENTITY_SERVICE,
        ErrorKind::Network => pgentra_status::PGENTRA_ERR_NETWORK,
        ErrorKind::TlsPolicy => pgentra_status::PGENTRA_ERR_TLS_POLICY,
        ErrorKind::Database => pgentra_status::PGENTRA_ERR_DATABASE,
        ErrorKind::Internal => pgentra_status::PGENTRA_ERR_INTERNAL,
    }
}

impl From<Error> for FfiError {
    fn from(e: Error) -> Self {
        FfiError { status: status_of(e.kind()), message: e.message().to_string(), code: e.code().map(str::to_string) }
    }
}

pub(crate) struct LastError {
    pub(crate) message: CString,
    pub(crate) code: Option<CString>,
}

thread_local! {
    pub(crate) static LAST_ERROR: RefCell<Option<LastError>> = const { RefCell::new(None) };
}

/// A C string from arbitrary text: interior NULs (which our messages never contain) become '?'.
pub(crate) fn lossy_cstring(s: &str) -> CString {
    let bytes: Vec<u8> = s.bytes().map(|b| if b == 0 { b'?' } else { b }).collect();
    CString::new(bytes).unwrap_or_default()
}

pub(crate) fn set_last_error(e: &FfiError) {
    let last = LastError { message: lossy_cstring(&e.message), code: e.code.as_deref().map(lossy_cstring) };
    // try_with: during thread teardown the slot may be gone; then there is nobody to tell.
    let _ = LAST_ERROR.try_with(|l| {
        if let Ok(mut slot) = l.try_borrow_mut() {
            *slot = Some(last);
        }
    });
}

pub(crate) fn clear_last_error() {
    let _ = LAST_ERROR.try_with(|l| {
        if let Ok(mut slot) = l.try_borrow_mut() {
            *slot = None;
        }
    });
}

pub(crate) fn panic_error(payload: Box<dyn std::any::Any + Send>) -> FfiError {
    FfiError::new(pgentra_status::PGENTRA_ERR_PANIC, Error::from_panic(payload).message().to_string())
}

/// The one entry into Rust for every status-returning function: clears the thread's last error,
/// runs `f` with panics caught, records the error if any, and returns the status number.
pub(crate) fn ffi_boundary<F>(f: F) -> c_int
where
    F: FnOnce() -> Result<(), FfiError>,
{
    clear_last_error();
    let status = match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(())) => pgentra_status::PGENTRA_OK,
        Ok(Err(e)) => {
            set_last_error(&e);
            e.status
        }
        Err(payload) => {
            let e = panic_error(payload);
            set_last_error(&e);
            e.status
        }
    };
    status as c_int
}

/// The boundary for functions that return nothing: a caught panic is recorded as the last error.
pub(crate) fn ffi_void<F: FnOnce()>(f: F) {
    if let Err(payload) = catch_unwind(AssertUnwindSafe(f)) {
        set_last_error(&panic_error(payload));
    }
}

/// The boundary for functions that return a value: `default` after a caught panic.
pub(crate) fn ffi_value<T, F: FnOnce() -> T>(default: T, f: F) -> T {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(v) => v,
        Err(payload) => {
            set_last_error(&panic_error(payload));
            default
        }
    }
}
