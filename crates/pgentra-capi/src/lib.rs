//! The C ABI of pgentra: `libpgentra.so`, `libpgentra.a` and `include/pgentra.h`.
//!
//! Every exported function runs its body inside [`ffi_boundary`] (or one of its siblings), which
//! catches panics, records the error for `pgentra_last_error_message`, and turns the outcome
//! into a `pgentra_status` number. Pointers from C are null-checked and strings are checked for
//! UTF-8 before use; integers standing for enums are validated, never transmuted.
//!
//! The header is generated from this file by cbindgen (see build.rs): the `///` comments on the
//! exported items are the C documentation.

#![allow(non_camel_case_types)]

use pgentra_core::{Connector, CredentialKind, Error, ErrorKind, Format, Options};
use std::cell::RefCell;
use std::ffi::{c_char, c_int, c_void, CStr, CString};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::ptr;
use std::time::Duration;
use zeroize::{Zeroize, Zeroizing};

/// Return codes of the functions that return `int`. The numbers are part of the ABI: they are
/// never reused or renumbered. Codes 1 to 7 are the kinds of pgentra's own errors; 100 and up
/// are errors of the C boundary itself.
/// cbindgen:prefix-with-name=false
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum pgentra_status {
    /// Success.
    PGENTRA_OK = 0,
    /// A variable, key or argument is missing, malformed or contradictory (the message names it).
    PGENTRA_ERR_CONFIG = 1,
    /// No credential applies, or a credential could not be built or run.
    PGENTRA_ERR_CREDENTIAL = 2,
    /// The identity service answered with an error; see pgentra_last_error_code() for its code
    /// (e.g. AADSTS7000215).
    PGENTRA_ERR_IDENTITY_SERVICE = 3,
    /// The identity service or the database could not be reached in time.
    PGENTRA_ERR_NETWORK = 4,
    /// A token would travel without TLS (sslmode disable/allow/prefer), or TLS failed.
    PGENTRA_ERR_TLS_POLICY = 5,
    /// The database refused the connection or a query failed.
    PGENTRA_ERR_DATABASE = 6,
    /// A bug in pgentra.
    PGENTRA_ERR_INTERNAL = 7,
    /// A required pointer argument was NULL (the message names it).
    PGENTRA_ERR_NULL_ARGUMENT = 100,
    /// A string argument was not valid UTF-8 (the message names it).
    PGENTRA_ERR_INVALID_UTF8 = 101,
    /// pgentra panicked; the panic was caught at the boundary and the process is intact.
    PGENTRA_ERR_PANIC = 102,
    /// A numeric argument was out of range, e.g. an unknown pgentra_format (the message names it).
    PGENTRA_ERR_INVALID_ARGUMENT = 103,
    /// Not an error: a token operation (pgentra_token_begin) has not finished yet; poll again.
    PGENTRA_PENDING = 200,
}

/// Output formats of pgentra_connection_string(). Pass the value as a uint32_t; any other
/// number is rejected with PGENTRA_ERR_INVALID_ARGUMENT.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum pgentra_format {
    /// libpq keyword/value: `host=... port=... dbname=... user=... password=... sslmode=...`
    Libpq = 0,
    /// `postgresql://user:password@host:port/dbname?sslmode=...`
    Uri = 1,
    /// ADO.NET / Npgsql: `Server=...;Port=...;Database=...;User Id=...;Password=...;Ssl Mode=...;`
    Ado = 2,
    /// `jdbc:postgresql://host:port/dbname?sslmode=...&user=...&password=...`
    Jdbc = 3,
    /// A JSON object with host, port, dbname, user, password, sslmode.
    Json = 4,
    /// `export PGHOST='...' PGPORT='...' ...`, every value single-quoted for POSIX shells.
    Shell = 5,
    /// PHP PDO's `pgsql:` DSN with user and password; a value holding `;` cannot be carried and
    /// gives `PGENTRA_ERR_CONFIG`.
    Pdo = 6,
}

/// Credentials for pgentra_options.credential (mirrors the Rust `CredentialKind`). AUTO (0)
/// forces nothing: PGENTRA_CREDENTIAL from the environment if set, else the credential chain.
/// Any other number outside this list is rejected with PGENTRA_ERR_INVALID_ARGUMENT.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum pgentra_credential {
    /// Not forced: PGENTRA_CREDENTIAL if set, else the first credential of the chain that applies.
    Auto = 0,
    /// A password from the configuration (secret mode): no identity request at all.
    Password = 1,
    /// Service principal with a client secret.
    ClientSecret = 2,
    /// Service principal with a certificate (AZURE_CLIENT_CERTIFICATE_PATH, PEM).
    ClientCertificate = 3,
    /// Workload identity (AZURE_FEDERATED_TOKEN_FILE).
    WorkloadIdentity = 4,
    /// Managed identity (App Service / Functions / Container Apps endpoint, Azure Arc, IMDS).
    ManagedIdentity = 5,
    /// The Azure CLI (`az account get-access-token`).
    AzureCli = 6,
    /// The Azure Developer CLI (`azd auth token`).
    AzureDeveloperCli = 7,
}

/// Values passed by code to pgentra_connector_new(). Every field that is set wins over the
/// environment. Initialise with pgentra_options_init() and then set the fields you need.
/// The strings are only read during the call: the caller keeps ownership of them.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct pgentra_options {
    /// The size of this structure as the caller knows it: set by pgentra_options_init(). It
    /// lets later versions add fields without breaking programs built against this header.
    pub struct_size: u32,
    /// Variable prefix; NULL means PGENTRA_PREFIX from the environment, else AZURE_POSTGRESQL.
    pub prefix: *const c_char,
    /// A connection string in libpq, URI, ADO.NET or JDBC form (detected); NULL: from the
    /// environment (<prefix>_CONNECTIONSTRING).
    pub connection_string: *const c_char,
    /// Client id of a user-assigned managed identity or a service principal; NULL: unset.
    pub client_id: *const c_char,
    /// Tenant id of a service principal; NULL: unset.
    pub tenant_id: *const c_char,
    /// Client secret of a service principal; NULL: unset.
    pub client_secret: *const c_char,
    /// Token scope, ending in /.default; NULL: from the host's cloud (or PGENTRA_SCOPE).
    pub scope: *const c_char,
    /// A pgentra_credential value; PGENTRA_CREDENTIAL_AUTO (0) forces nothing.
    pub credential: u32,
    /// -1: unset (PGENTRA_ALLOW_INSECURE decides), 0: false, 1: true (let a token travel with
    /// an sslmode that does not guarantee TLS; for local test servers only).
    pub allow_insecure: i32,
    /// Total deadline in milliseconds for one token acquisition, retries included;
    /// 0: PGENTRA_TIMEOUT or 30 seconds.
    pub timeout_ms: u32,
    /// -1: unset (PGENTRA_ALLOW_UNVERIFIED_TLS decides), 0: false, 1: true (keep
    /// sslmode=require for Azure servers instead of verify-full).
    pub allow_unverified_tls: i32,
}

/// A connector to one Azure Database for PostgreSQL server: its configuration and its token
/// cache. Opaque. Create with pgentra_connector_from_env() or pgentra_connector_new(), release
/// with pgentra_connector_free(). Thread-safe: share one per process among any number of threads.
pub struct pgentra_connector {
    inner: Connector,
}

mod args;
mod boundary;
use args::*;
use boundary::*;

// ---------------------------------------------------------------------------------------------
// The API.
// ---------------------------------------------------------------------------------------------

/// The library version, e.g. "0.1.0". Static storage: never free it.
#[no_mangle]
pub extern "C" fn pgentra_version() -> *const c_char {
    ffi_value(ptr::null(), || concat!(env!("CARGO_PKG_VERSION"), "\0").as_ptr().cast::<c_char>())
}

/// Set every field of `*o` to its default: struct_size to this header's size, all strings NULL,
/// credential PGENTRA_CREDENTIAL_AUTO, allow_insecure and allow_unverified_tls -1 (unset),
/// timeout_ms 0 (default). Does nothing when `o` is NULL.
#[no_mangle]
pub extern "C" fn pgentra_options_init(o: *mut pgentra_options) {
    ffi_void(|| {
        if o.is_null() {
            return;
        }
        let defaults = pgentra_options {
            struct_size: std::mem::size_of::<pgentra_options>() as u32,
            prefix: ptr::null(),
            connection_string: ptr::null(),
            client_id: ptr::null(),
            tenant_id: ptr::null(),
            client_secret: ptr::null(),
            scope: ptr::null(),
            credential: pgentra_credential::Auto as u32,
            allow_insecure: -1,
            timeout_ms: 0,
            allow_unverified_tls: -1,
        };
        // SAFETY: non-null; the caller promises it points to writable pgentra_options. `write`
        // because the memory may be uninitialised.
        unsafe { o.write(defaults) };
    })
}

/// Create a connector from the process environment (Service Connector's <prefix>_* variables
/// and the Azure SDK variables). `prefix` NULL means PGENTRA_PREFIX, else AZURE_POSTGRESQL.
/// No network request is made here.
///
/// On success returns PGENTRA_OK and stores a new connector in `*out`, owned by the caller:
/// release it with pgentra_connector_free(). On error `*out` is set to NULL.
#[no_mangle]
pub extern "C" fn pgentra_connector_from_env(prefix: *const c_char, out: *mut *mut pgentra_connector) -> c_int {
    const F: &str = "pgentra_connector_from_env";
    ffi_boundary(|| {
        let slot = out_param(F, "out", out)?;
        let prefix = opt_str(F, "prefix", prefix)?;
        init_logging_once();
        hand_out(slot, Connector::from_env(prefix)?);
        Ok(())
    })
}

/// Create a connector from `*opts` (see pgentra_options; set fields win over the environment).
/// `opts` must not be NULL: use pgentra_options_init() for defaults. The strings in `*opts` are
/// copied; the caller keeps them. No network request is made here.
///
/// On success returns PGENTRA_OK and stores a new connector in `*out`, owned by the caller:
/// release it with pgentra_connector_free(). On error `*out` is set to NULL.
#[no_mangle]
pub extern "C" fn pgentra_connector_new(opts: *const pgentra_options, out: *mut *mut pgentra_connector) -> c_int {
    const F: &str = "pgentra_connector_new";
    ffi_boundary(|| {
        let slot = out_param(F, "out", out)?;
        if opts.is_null() {
            return Err(FfiError::null(F, "opts"));
        }
        // SAFETY: non-null; the caller promises a readable pgentra_options.
        let o = unsafe { &*opts };
        let options = options_of(F, o)?;
        init_logging_once();
        hand_out(slot, Connector::new(options)?);
        Ok(())
    })
}

/// The current access token (blocking: acquired, or refreshed ahead of expiry, when needed;
/// a fresh cached token takes no lock). Fails with PGENTRA_ERR_CONFIG in secret mode (a
/// password is configured, so no token is ever acquired).
///
/// On success `*out` is a new string owned by the caller: release it with pgentra_string_free(),
/// which also wipes it. On error `*out` is set to NULL.
#[no_mangle]
pub extern "C" fn pgentra_token(c: *mut pgentra_connector, out: *mut *mut c_char) -> c_int {
    const F: &str = "pgentra_token";
    ffi_boundary(|| {
        let slot = out_param(F, "out", out)?;
        let connector = connector_ref(F, c)?;
        let token = connector.token()?;
        *slot = to_c_string(F, token.expose())?;
        Ok(())
    })
}

/// The current access token, only when it is not the one the caller already holds: pass the
/// serial this function last returned in `*serial` (0 the first time). When the current
/// token's serial equals `known_serial`, `*out` is set to NULL (keep your copy); otherwise
/// `*out` is a new string as from pgentra_token(). Either way `*serial` is set to the current
/// token's serial. Acquires or refreshes like pgentra_token(); fails the same way.
///
/// On success a non-NULL `*out` is owned by the caller: release it with pgentra_string_free().
/// On error `*out` is set to NULL and `*serial` is left unchanged.
#[no_mangle]
pub extern "C" fn pgentra_token_if_changed(c: *mut pgentra_connector, known_serial: u64, serial: *mut u64, out: *mut *mut c_char) -> c_int {
    const F: &str = "pgentra_token_if_changed";
    ffi_boundary(|| {
        let slot = out_param(F, "out", out)?;
        if serial.is_null() {
            return Err(FfiError::null(F, "serial"));
        }
        let connector = connector_ref(F, c)?;
        let (current, token) = connector.token_if_changed(known_serial)?;
        if let Some(t) = token {
            *slot = to_c_string(F, t.expose())?;
        }
        // SAFETY: checked non-null above; the caller provides a writable uint64_t.
        unsafe { *serial = current };
        Ok(())
    })
}

/// The serial number of the cached token when it is fresh (the serial that
/// pgentra_token_if_changed() reports), else 0; 0 for a NULL `c` too. Never waits, never
/// acquires a token, records no error. A caller holding the token of that serial may use its
/// copy without asking for another.
#[no_mangle]
pub extern "C" fn pgentra_fresh_serial(c: *const pgentra_connector) -> u64 {
    ffi_value(0, || match connector_ref("pgentra_fresh_serial", c) {
        Ok(connector) => connector.fresh_serial().unwrap_or(0),
        Err(_) => 0,
    })
}

/// The connection string in `format` (a pgentra_format value) with the configured password or
/// a current token. In secret mode no network request is made. An unknown format number fails
/// with PGENTRA_ERR_INVALID_ARGUMENT.
///
/// On success `*out` is a new string owned by the caller: release it with pgentra_string_free(),
/// which also wipes it (it contains the password or token). On error `*out` is set to NULL.
#[no_mangle]
pub extern "C" fn pgentra_connection_string(c: *mut pgentra_connector, format: u32, out: *mut *mut c_char) -> c_int {
    const F: &str = "pgentra_connection_string";
    ffi_boundary(|| {
        let slot = out_param(F, "out", out)?;
        let connector = connector_ref(F, c)?;
        let format = format_of(F, format)?;
        let s = Zeroizing::new(connector.connection_string(format)?);
        *slot = to_c_string(F, &s)?;
        Ok(())
    })
}

fn overrides_of(function: &str, overrides: *const c_char) -> Result<Vec<(String, Option<String>)>, FfiError> {
    match opt_str(function, "overrides", overrides)? {
        None => Ok(Vec::new()),
        Some(s) if s.trim().is_empty() => Ok(Vec::new()),
        Some(s) => Ok(pgentra_core::conninfo::parse_libpq(s).map_err(|e| e.context("overrides"))?.as_overrides()),
    }
}

/// The connection string in `format` after `overrides`: the caller's own values as a libpq
/// keyword/value string (for instance those of a driver's own configuration; NULL or "" for
/// none). pgentra merges them and checks the result as it will leave: a weaker sslmode never
/// replaces a stricter one, and an Azure server name gets `sslmode=verify-full` with a CA
/// bundle. A `password` among the overrides is the caller's: then no token is attached.
///
/// On success `*out` is a new string owned by the caller: release it with pgentra_string_free(),
/// which also wipes it (it contains the password or token). On error `*out` is set to NULL.
#[no_mangle]
pub extern "C" fn pgentra_connection_string_with(c: *mut pgentra_connector, format: u32, overrides: *const c_char, out: *mut *mut c_char) -> c_int {
    const F: &str = "pgentra_connection_string_with";
    ffi_boundary(|| {
        let slot = out_param(F, "out", out)?;
        let connector = connector_ref(F, c)?;
        let format = format_of(F, format)?;
        let overrides = overrides_of(F, overrides)?;
        let s = Zeroizing::new(connector.connection_string_with(format, &overrides)?);
        *slot = to_c_string(F, &s)?;
        Ok(())
    })
}

/// As pgentra_connection_string_with(), but with no password or token and without waiting for
/// one: the parameters a driver's configuration keeps, when each connection gets its password
/// separately (the TLS policy is applied the same way).
///
/// On success `*out` is a new string owned by the caller: release it with pgentra_string_free().
/// On error `*out` is set to NULL.
#[no_mangle]
pub extern "C" fn pgentra_settings_string(c: *mut pgentra_connector, format: u32, overrides: *const c_char, out: *mut *mut c_char) -> c_int {
    const F: &str = "pgentra_settings_string";
    ffi_boundary(|| {
        let slot = out_param(F, "out", out)?;
        let connector = connector_ref(F, c)?;
        let format = format_of(F, format)?;
        let overrides = overrides_of(F, overrides)?;
        let s = Zeroizing::new(connector.settings_string_with(format, &overrides)?);
        *slot = to_c_string(F, &s)?;
        Ok(())
    })
}

/// The database user: explicit, else configured, else derived from the token's claims (which
/// may acquire a token).
///
/// On success `*out` is a new string owned by the caller: release it with pgentra_string_free().
/// On error `*out` is set to NULL.
#[no_mangle]
pub extern "C" fn pgentra_user(c: *mut pgentra_connector, out: *mut *mut c_char) -> c_int {
    const F: &str = "pgentra_user";
    ffi_boundary(|| {
        let slot = out_param(F, "out", out)?;
        let connector = connector_ref(F, c)?;
        let user = connector.user()?;
        *slot = to_c_string(F, &user)?;
        Ok(())
    })
}

/// Drop the cached token so that the next call acquires a new one (for instance after the
/// server rejected a token). Does nothing when `c` is NULL.
#[no_mangle]
pub extern "C" fn pgentra_invalidate(c: *mut pgentra_connector) {
    ffi_void(|| {
        if let Ok(connector) = connector_ref("pgentra_invalidate", c) {
            connector.invalidate();
        }
    })
}

/// Called exactly once when a request started by pgentra_token_start() ends. `status` is
/// PGENTRA_OK with `serial` and `token` (valid only during the call: copy it; pgentra wipes it
/// afterwards), or an error status with `message` and, from the identity service, `service_code`
/// (NULL otherwise); the other pointers are NULL then. It runs on the thread that called
/// pgentra_token_start() when a fresh token was cached, otherwise on one of pgentra's runtime
/// threads: it must return promptly, and must not call a blocking pgentra function there
/// (such a call fails with PGENTRA_ERR_INTERNAL).
pub type pgentra_token_callback = Option<
    unsafe extern "C" fn(
        user_data: *mut c_void,
        status: c_int,
        serial: u64,
        token: *const c_char,
        message: *const c_char,
        service_code: *const c_char,
    ),
>;

struct SendPtr(*mut c_void);
// SAFETY: the pointer is only handed back to the caller's callback, which owns what it means.
unsafe impl Send for SendPtr {}

fn deliver(callback: unsafe extern "C" fn(*mut c_void, c_int, u64, *const c_char, *const c_char, *const c_char), user_data: SendPtr, r: pgentra_core::Result<(u64, pgentra_core::Secret)>) {
    match r {
        Ok((serial, token)) => {
            let t = Zeroizing::new(lossy_cstring(token.expose()).into_bytes_with_nul());
            // SAFETY: the callback is the caller's; the strings live until it returns.
            unsafe { callback(user_data.0, pgentra_status::PGENTRA_OK as c_int, serial, t.as_ptr().cast(), ptr::null(), ptr::null()) };
        }
        Err(e) => {
            let e = FfiError::from(e);
            let message = lossy_cstring(&e.message);
            let code = e.code.as_deref().map(lossy_cstring);
            let code_ptr = code.as_ref().map_or(ptr::null(), |c| c.as_ptr());
            // SAFETY: as above.
            unsafe { callback(user_data.0, e.status as c_int, 0, ptr::null(), message.as_ptr(), code_ptr) };
        }
    }
}

/// Start acquiring the access token without blocking: `callback(user_data, ...)` is called
/// exactly once with the outcome (see pgentra_token_callback), and no thread waits meanwhile. A
/// fresh cached token is delivered at once, before this function returns. Lets a language
/// runtime wait its own way (a Go channel, a .NET Task, an event loop) and stop waiting when
/// its caller gives up; the request itself goes on and fills the cache.
///
/// Returns PGENTRA_OK when the callback has been or will be called; an error status (NULL
/// `c` or `callback`) when it will not be.
#[no_mangle]
pub extern "C" fn pgentra_token_start(c: *mut pgentra_connector, callback: pgentra_token_callback, user_data: *mut c_void) -> c_int {
    const F: &str = "pgentra_token_start";
    ffi_boundary(|| {
        let connector = connector_ref(F, c)?.clone();
        let callback = callback.ok_or_else(|| FfiError::null(F, "callback"))?;
        let user_data = SendPtr(user_data);
        if let Some((serial, token, _)) = connector.try_token_serial() {
            deliver(callback, user_data, Ok((serial, token)));
            return Ok(());
        }
        let rt = pgentra_core::runtime::runtime()?;
        rt.spawn(async move {
            let r = connector.token_with_serial_async().await;
            deliver(callback, user_data, r);
        });
        Ok(())
    })
}

/// A token request started by pgentra_token_begin(): poll it with pgentra_token_poll(), release
/// it with pgentra_token_op_free(). No thread waits for it; the request runs on pgentra's own
/// runtime and fills the cache whether or not anyone polls.
pub struct pgentra_token_op {
    state: std::sync::Arc<std::sync::Mutex<OpState>>,
}

enum OpState {
    Pending,
    Done(pgentra_core::Result<pgentra_core::Secret>),
    Taken,
}

/// Start acquiring the access token without blocking and without calling back into the caller:
/// `*out` is a new operation to poll with pgentra_token_poll() (a fresh cached token makes it
/// complete at once). For runtimes that cannot take callbacks from foreign threads (Mono
/// attaches such threads for good). Release it with pgentra_token_op_free(), finished or not.
#[no_mangle]
pub extern "C" fn pgentra_token_begin(c: *mut pgentra_connector, out: *mut *mut pgentra_token_op) -> c_int {
    const F: &str = "pgentra_token_begin";
    ffi_boundary(|| {
        let slot = out_param(F, "out", out)?;
        let connector = connector_ref(F, c)?.clone();
        let state = std::sync::Arc::new(std::sync::Mutex::new(OpState::Pending));
        if let Some(token) = connector.try_token() {
            *state.lock().unwrap_or_else(|p| p.into_inner()) = OpState::Done(Ok(token));
        } else {
            let rt = pgentra_core::runtime::runtime()?;
            let shared = std::sync::Arc::clone(&state);
            rt.spawn(async move {
                let r = connector.token_async().await;
                *shared.lock().unwrap_or_else(|p| p.into_inner()) = OpState::Done(r);
            });
        }
        *slot = Box::into_raw(Box::new(pgentra_token_op { state }));
        Ok(())
    })
}

/// The outcome of a token operation, without waiting: PGENTRA_PENDING while it runs (`*out` is
/// NULL); then once PGENTRA_OK with `*out` the token (release it with pgentra_string_free()), or
/// the request's error status with the thread's last error set as by pgentra_token(). Polling
/// again after that outcome is PGENTRA_ERR_INVALID_ARGUMENT.
#[no_mangle]
pub extern "C" fn pgentra_token_poll(op: *mut pgentra_token_op, out: *mut *mut c_char) -> c_int {
    const F: &str = "pgentra_token_poll";
    let mut pending = false;
    let status = ffi_boundary(|| {
        let slot = out_param(F, "out", out)?;
        if op.is_null() {
            return Err(FfiError::null(F, "op"));
        }
        // SAFETY: a non-NULL `op` came from pgentra_token_begin and was not freed (the caller's
        // promise).
        let op = unsafe { &*op };
        let mut state = op.state.lock().unwrap_or_else(|p| p.into_inner());
        match std::mem::replace(&mut *state, OpState::Taken) {
            OpState::Pending => {
                *state = OpState::Pending;
                pending = true;
                Ok(())
            }
            OpState::Done(Ok(token)) => {
                *slot = to_c_string(F, token.expose())?;
                Ok(())
            }
            OpState::Done(Err(e)) => Err(FfiError::from(e)),
            OpState::Taken => Err(FfiError::new(
                pgentra_status::PGENTRA_ERR_INVALID_ARGUMENT,
                format!("{F}: the operation's outcome was already returned; free it with pgentra_token_op_free()"),
            )),
        }
    });
    if pending && status == pgentra_status::PGENTRA_OK as c_int {
        return pgentra_status::PGENTRA_PENDING as c_int;
    }
    status
}

/// Release a token operation, finished or not (the request itself goes on and fills the cache;
/// an unread token is wiped). Accepts NULL.
#[no_mangle]
pub extern "C" fn pgentra_token_op_free(op: *mut pgentra_token_op) {
    ffi_void(|| {
        if !op.is_null() {
            // SAFETY: the caller promises `op` came from pgentra_token_begin and was not freed.
            drop(unsafe { Box::from_raw(op) });
        }
    })
}

/// The server refused `rejected` (SQLSTATE 28P01): drop it from the cache unless another caller
/// already replaced it, so that many connections refused together cause one new identity
/// request. Returns 1 when the cached token was `rejected` and was dropped, else 0 (also when
/// `c` or `rejected` is NULL or not UTF-8).
#[no_mangle]
pub extern "C" fn pgentra_invalidate_if(c: *mut pgentra_connector, rejected: *const c_char) -> c_int {
    ffi_value(0, || {
        let Ok(connector) = connector_ref("pgentra_invalidate_if", c) else { return 0 };
        match opt_str("pgentra_invalidate_if", "rejected", rejected) {
            Ok(Some(r)) => c_int::from(connector.invalidate_if(r)),
            _ => 0,
        }
    })
}

/// A connect with `token` (the password pgentra handed out) failed; tell pgentra what the driver
/// knows, and it decides whether to connect again, once, with a new token (the rule every
/// pgentra binding shares): `sqlstate` is the server's SQLSTATE (NULL or "" when the driver
/// reports none); `used_password` is libpq's PQconnectionUsedPassword() of the failed
/// connection, -1 when unknown, 0 or 1. A SQLSTATE other than 28P01, or no SQLSTATE and
/// used_password 0, is not a refusal of the token: nothing is dropped and `*retry_out` is 0.
/// Otherwise the token is dropped unless another caller already replaced it, and `*retry_out`
/// is 1 when the next pgentra_token() will hand out another token (connect once more with it),
/// 0 when the cache keeps it (a token fetched right after a refusal and refused again: the
/// refusal is about the role, not the token). Always 0 in secret mode. Makes no network request.
///
/// Returns PGENTRA_OK, or an error status (NULL `c`, `token` or `retry_out`; `token` or
/// `sqlstate` not UTF-8; `used_password` not -1, 0 or 1) with `*retry_out` set to 0 when
/// `retry_out` is not NULL.
#[no_mangle]
pub extern "C" fn pgentra_connect_failed(c: *mut pgentra_connector, token: *const c_char, sqlstate: *const c_char, used_password: c_int, retry_out: *mut c_int) -> c_int {
    const F: &str = "pgentra_connect_failed";
    ffi_boundary(|| {
        let retry_out = value_out(F, "retry_out", retry_out)?;
        let connector = connector_ref(F, c)?;
        let token = opt_str(F, "token", token)?.ok_or_else(|| FfiError::null(F, "token"))?;
        let sqlstate = opt_str(F, "sqlstate", sqlstate)?;
        let used = match used_password {
            -1 => None,
            0 => Some(false),
            1 => Some(true),
            n => return Err(FfiError::invalid(F, format!("argument 'used_password' is {n}; use -1 (unknown), 0 or 1"))),
        };
        let retry = connector.connect_failed(token, pgentra_core::Failure::from_facts(sqlstate, used));
        *retry_out = c_int::from(retry);
        Ok(())
    })
}

/// The number of token requests this connector has made to the identity service (0 in secret
/// mode). Returns PGENTRA_OK with the count in `*out`, or PGENTRA_ERR_NULL_ARGUMENT for a NULL
/// `c` or `out` (`*out` is then 0 when `out` is not NULL).
#[no_mangle]
pub extern "C" fn pgentra_token_requests(c: *const pgentra_connector, out: *mut u64) -> c_int {
    const F: &str = "pgentra_token_requests";
    ffi_boundary(|| {
        let out = value_out(F, "out", out)?;
        *out = connector_ref(F, c)?.token_requests();
        Ok(())
    })
}

/// Wipe and release a string returned by pgentra (token, connection string, user). The bytes
/// are overwritten with zeros before the memory is freed. Accepts NULL. The string must not
/// have been shortened (no NUL written into it) and must not be used afterwards.
#[no_mangle]
pub extern "C" fn pgentra_string_free(s: *mut c_char) {
    ffi_void(|| {
        if s.is_null() {
            return;
        }
        // SAFETY: the caller promises `s` came from CString::into_raw in this library and was
        // not freed before.
        let c = unsafe { CString::from_raw(s) };
        let mut bytes = c.into_bytes_with_nul();
        bytes.zeroize();
    })
}

/// Release a connector (and its token cache, wiping the token). Accepts NULL. No other thread
/// may still be using it.
#[no_mangle]
pub extern "C" fn pgentra_connector_free(c: *mut pgentra_connector) {
    ffi_void(|| {
        if c.is_null() {
            return;
        }
        // SAFETY: the caller promises `c` came from pgentra_connector_* and was not freed before.
        drop(unsafe { Box::from_raw(c) });
    })
}

/// The message of the last failed call on this thread, naming the variable, key or argument at
/// fault (never a secret). NULL when the last status-returning call on this thread succeeded
/// (or none was made). Owned by the library: valid until the next pgentra call on this thread;
/// copy it to keep it. Never free it.
#[no_mangle]
pub extern "C" fn pgentra_last_error_message() -> *const c_char {
    ffi_value(ptr::null(), || {
        LAST_ERROR
            .try_with(|l| l.try_borrow().ok().and_then(|e| e.as_ref().map(|e| e.message.as_ptr())))
            .ok()
            .flatten()
            .unwrap_or(ptr::null())
    })
}

/// The identity service's own error code of the last failed call on this thread (e.g.
/// "AADSTS7000215"), or NULL when there is none. Same lifetime as pgentra_last_error_message().
/// Never free it.
#[no_mangle]
pub extern "C" fn pgentra_last_error_code() -> *const c_char {
    ffi_value(ptr::null(), || {
        LAST_ERROR
            .try_with(|l| {
                l.try_borrow().ok().and_then(|e| e.as_ref().and_then(|e| e.code.as_ref().map(|c| c.as_ptr())))
            })
            .ok()
            .flatten()
            .unwrap_or(ptr::null())
    })
}

#[cfg(test)]
mod tests;
