//! `pgentra.so`: the PHP extension of the pgentra core (ext-php-rs). Thin on purpose: it
//! converts types, maps the core's `ErrorKind` to exception classes (in `throwable`, the one
//! place), and runs every exported body under `guard`, which catches panics so that a bug
//! becomes a `PgEntra\InternalException`, never a crashed PHP worker. Configuration, parsing,
//! rendering, caching, user discovery, TLS policy and fork safety all stay in the core.
//!
//! PHP has no event loop: token acquisition blocks the request, which is what PHP code expects
//! of a database connect. Fresh tokens come from the cache with no I/O.

#![cfg_attr(windows, feature(abi_vectorcall))]

use ext_php_rs::builders::{ClassBuilder, ClassProperty};
use ext_php_rs::convert::IntoZval;
use ext_php_rs::flags::{ConstantFlags, PropertyFlags};
use ext_php_rs::prelude::*;
use ext_php_rs::types::{ZendHashTable, ZendObject, Zval};
use ext_php_rs::zend::{ce, ClassEntry, ModuleEntry};
use ext_php_rs::{boxed::ZBox, info_table_end, info_table_row, info_table_start};
use pgentra::{ConnParams, CredentialKind, ErrorKind, Format, Options, Secret, SslMode};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::PathBuf;
use std::sync::atomic::{AtomicPtr, Ordering};
use std::sync::Mutex;
use std::time::Duration;

mod connect;

// ---------------------------------------------------------------------------------------------
// Exceptions: plain PHP classes (no Rust state), registered at module startup.
//   PgEntra\Exception extends \Exception
//   PgEntra\{Config,Credential,IdentityService,Network,TlsPolicy,Database,Internal}Exception
//     extends PgEntra\Exception, each with constants KIND and KIND_ID.
// ---------------------------------------------------------------------------------------------

/// Index 0 is the base class; index `kind as usize` the class of that kind (kinds are 1..=7).
static CLASSES: [AtomicPtr<ClassEntry>; 8] = [const { AtomicPtr::new(std::ptr::null_mut()) }; 8];

fn class_name(slot: usize) -> &'static str {
    match slot {
        1 => "PgEntra\\ConfigException",
        2 => "PgEntra\\CredentialException",
        3 => "PgEntra\\IdentityServiceException",
        4 => "PgEntra\\NetworkException",
        5 => "PgEntra\\TlsPolicyException",
        6 => "PgEntra\\DatabaseException",
        7 => "PgEntra\\InternalException",
        _ => "PgEntra\\Exception",
    }
}

fn class_entry(slot: usize) -> Option<&'static ClassEntry> {
    let p = CLASSES[slot].load(Ordering::Acquire);
    // SAFETY: only ever set from the engine's registration callback, to a class entry that the
    // engine keeps for the life of the process (reset on a module restart).
    unsafe { p.as_ref() }
}

fn base_exception_ce() -> &'static ClassEntry {
    class_entry(0).unwrap_or_else(ce::exception)
}

fn remember<const SLOT: usize>(ce: &'static mut ClassEntry, _methods: ext_php_rs::args::ArgInfoTables) {
    CLASSES[SLOT].store(ce, Ordering::Release);
}

fn register_exceptions() -> Result<(), String> {
    let e = |err: ext_php_rs::error::Error| err.to_string();
    let service_code = || ClassProperty {
        name: "serviceCode".into(),
        flags: PropertyFlags::Public,
        default: Some(Box::new(|| Ok(Zval::null()))),
        docs: &["The identity service's own error code (e.g. 'AADSTS7000215'), or null."],
        ty: None,
        nullable: true,
        readonly: false,
        default_stub: Some("null".into()),
    };
    ClassBuilder::new(class_name(0))
        .extends((ce::exception, "\\Exception"))
        .property(service_code())
        .registration(remember::<0>)
        .register()
        .map_err(e)?;
    macro_rules! sub {
        ($slot:literal) => {{
            let kind = ErrorKind::ALL[$slot - 1];
            ClassBuilder::new(class_name($slot))
                .extends((base_exception_ce, "\\PgEntra\\Exception"))
                .constant("KIND", kind.as_str(), &[], ConstantFlags::Public)
                .map_err(e)?
                .constant("KIND_ID", kind as u8 as i64, &[], ConstantFlags::Public)
                .map_err(e)?
                .registration(remember::<$slot>)
                .register()
                .map_err(e)?;
        }};
    }
    sub!(1);
    sub!(2);
    sub!(3);
    sub!(4);
    sub!(5);
    sub!(6);
    sub!(7);
    Ok(())
}

/// `getCode()`: the number of an `AADSTS<n>` service code, else 0.
fn numeric_code(code: Option<&str>) -> i32 {
    code.and_then(|c| c.strip_prefix("AADSTS"))
        .and_then(|n| n.parse::<i32>().ok())
        .unwrap_or(0)
}

/// The one place where a core error becomes a PHP exception: the class from the kind, the
/// core's message, `getCode()` from an AADSTS code, the service's code as `$serviceCode`.
fn throwable(e: &pgentra::Error) -> PhpException {
    let message = e.message().to_string();
    let code = numeric_code(e.code());
    let Some(ce) = class_entry(e.kind() as usize) else {
        return PhpException::new(message, code, ce::exception());
    };
    let built = catch_unwind(AssertUnwindSafe(|| -> Option<Zval> {
        let mut obj: ZBox<ZendObject> = ZendObject::new(ce);
        let code_long = i64::from(code);
        obj.try_call_method("__construct", vec![&message, &code_long]).ok()?;
        if let Some(c) = e.code() {
            obj.set_property("serviceCode", c).ok()?;
        }
        obj.into_zval(false).ok()
    }));
    let ex = PhpException::new(message, code, ce);
    match built {
        Ok(Some(zv)) => ex.with_object(zv),
        _ => ex,
    }
}

/// Every exported body runs here: a core error becomes its exception class, a panic becomes a
/// `PgEntra\InternalException` (ext-php-rs is not relied upon to catch it).
fn guard<T>(body: impl FnOnce() -> pgentra::Result<T>) -> PhpResult<T> {
    let err = match catch_unwind(AssertUnwindSafe(body)) {
        Ok(Ok(v)) => return Ok(v),
        Ok(Err(e)) => e,
        Err(payload) => pgentra::Error::from_panic(payload),
    };
    match catch_unwind(AssertUnwindSafe(|| throwable(&err))) {
        Ok(ex) => Err(ex),
        Err(_) => Err(PhpException::new(err.message().to_string(), 0, ce::exception())),
    }
}

fn config_err(message: String) -> pgentra::Error {
    pgentra::Error::config(message)
}

// ---------------------------------------------------------------------------------------------
// Conversions
// ---------------------------------------------------------------------------------------------

fn parse_format(format: &str) -> pgentra::Result<Format> {
    Format::parse(format).map_err(|e| e.context("format argument"))
}

/// Render; `Format::Pdo` goes through the core's check for values PDO cannot carry.
fn render(c: &pgentra::Connector, format: Format) -> pgentra::Result<String> {
    c.connection_string(format)
}

/// `host`, `port` (int), `dbname`, `user`, `password`, `sslmode`, then any other libpq
/// parameter of the configuration; missing values are left out.
fn conninfo_array(p: &ConnParams) -> pgentra::Result<ZBox<ZendHashTable>> {
    let internal = |e: ext_php_rs::error::Error| pgentra::Error::new(ErrorKind::Internal, format!("building the array: {e}"));
    let mut ht = ZendHashTable::new();
    if let Some(h) = &p.host {
        ht.insert("host", h.as_str()).map_err(internal)?;
    }
    if let Some(port) = p.port {
        ht.insert("port", i64::from(port)).map_err(internal)?;
    }
    if let Some(d) = &p.dbname {
        ht.insert("dbname", d.as_str()).map_err(internal)?;
    }
    if let Some(u) = &p.user {
        ht.insert("user", u.as_str()).map_err(internal)?;
    }
    if let Some(pw) = &p.password {
        ht.insert("password", pw.expose()).map_err(internal)?;
    }
    if let Some(m) = p.sslmode {
        ht.insert("sslmode", m.as_str()).map_err(internal)?;
    }
    for (k, v) in &p.extra {
        ht.insert(k.as_str(), v.as_str()).map_err(internal)?;
    }
    Ok(ht)
}

fn type_name(v: &Zval) -> String {
    format!("{:?}", v.get_type()).to_lowercase()
}

fn opt_string(key: &str, v: &Zval) -> pgentra::Result<String> {
    v.str()
        .map(str::to_string)
        .ok_or_else(|| config_err(format!("options['{key}'] must be a string, not {}", type_name(v))))
}

fn opt_bool(key: &str, v: &Zval) -> pgentra::Result<bool> {
    v.bool()
        .ok_or_else(|| config_err(format!("options['{key}'] must be a bool, not {}", type_name(v))))
}

const OPTION_KEYS: &str = "prefix, connection_string, host, port, dbname, user, password, sslmode, credential, client_id, tenant_id, client_secret, certificate_path, federated_token_file, scope, authority_host, allow_insecure, allow_unverified_tls, timeout";

/// The options array of `new PgEntra\Connector([...])`. Unknown keys and wrong types are
/// configuration errors naming the key; null means "not set".
fn options_from(arr: Option<&ZendHashTable>) -> pgentra::Result<Options> {
    let mut o = Options::default();
    let Some(arr) = arr else { return Ok(o) };
    for (key, value) in arr.iter() {
        let key = key.to_string();
        let v = value.dereference();
        if v.is_null() {
            continue;
        }
        match key.as_str() {
            "prefix" => o.prefix = Some(opt_string(&key, v)?),
            "connection_string" => o.connection_string = Some(opt_string(&key, v)?),
            "host" => o.host = Some(opt_string(&key, v)?),
            "port" => {
                let raw = if let Some(n) = v.long() {
                    n.to_string()
                } else if let Some(s) = v.str() {
                    s.to_string()
                } else {
                    return Err(config_err(format!("options['port'] must be an int, not {}", type_name(v))));
                };
                o.port = Some(pgentra::conninfo::parse_port(&raw).map_err(|e| e.context("options['port']"))?);
            }
            "dbname" => o.dbname = Some(opt_string(&key, v)?),
            "user" => o.user = Some(opt_string(&key, v)?),
            "password" => o.password = Some(Secret::new(opt_string(&key, v)?)),
            "sslmode" => {
                let s = opt_string(&key, v)?;
                o.sslmode = Some(SslMode::parse(&s).ok_or_else(|| {
                    config_err(format!(
                        "options['sslmode']: unknown sslmode '{s}'; use one of disable, allow, prefer, require, verify-ca, verify-full (Azure needs require or stricter)"
                    ))
                })?);
            }
            "credential" => {
                // "auto" forces nothing: PGENTRA_CREDENTIAL still applies, as in every binding.
                let k = CredentialKind::parse(&opt_string(&key, v)?).map_err(|e| e.context("options['credential']"))?;
                o.credential = (k != CredentialKind::Auto).then_some(k);
            }
            "client_id" => o.client_id = Some(opt_string(&key, v)?),
            "tenant_id" => o.tenant_id = Some(opt_string(&key, v)?),
            "client_secret" => o.client_secret = Some(Secret::new(opt_string(&key, v)?)),
            "certificate_path" => o.certificate_path = Some(PathBuf::from(opt_string(&key, v)?)),
            "federated_token_file" => o.federated_token_file = Some(PathBuf::from(opt_string(&key, v)?)),
            "scope" => o.scope = Some(opt_string(&key, v)?),
            "authority_host" => o.authority_host = Some(opt_string(&key, v)?),
            // false forces nothing: PGENTRA_ALLOW_INSECURE still applies.
            "allow_insecure" => o.allow_insecure = opt_bool(&key, v)?.then_some(true),
            "allow_unverified_tls" => o.allow_unverified_tls = opt_bool(&key, v)?.then_some(true),
            "timeout" => {
                let t = v.double().or_else(|| v.long().map(|n| n as f64)).ok_or_else(|| {
                    config_err(format!("options['timeout'] must be a number of seconds, not {}", type_name(v)))
                })?;
                if !(t.is_finite() && t > 0.0 && t <= 3600.0) {
                    return Err(config_err(format!(
                        "options['timeout']: {t} is not a number of seconds between 0 and 3600"
                    )));
                }
                o.timeout = Some(Duration::from_secs_f64(t));
            }
            other => {
                return Err(config_err(format!(
                    "options['{other}'] is not a pgentra option; use {OPTION_KEYS}"
                )))
            }
        }
    }
    Ok(o)
}

// ---------------------------------------------------------------------------------------------
// The default connector: from the environment, created on first use, kept for the process
// (a PHP-FPM worker keeps its token cache across requests; after fork the core renews its
// runtime and keeps the inherited token). A failed creation is not kept: the next call retries.
// ---------------------------------------------------------------------------------------------

static DEFAULT: Mutex<Option<pgentra::Connector>> = Mutex::new(None);

fn default_connector() -> pgentra::Result<pgentra::Connector> {
    let mut slot = DEFAULT.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(c) = slot.as_ref() {
        return Ok(c.clone());
    }
    let c = pgentra::Connector::new(Options::default())?;
    *slot = Some(c.clone());
    Ok(c)
}

fn invalidate(c: &pgentra::Connector, rejected: Option<&str>) -> bool {
    match rejected {
        Some(t) => c.invalidate_if(t),
        None => {
            c.invalidate();
            true
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Functions (default connector)
// ---------------------------------------------------------------------------------------------

/// The access token of the default connector (from the cache, or acquired now).
#[php_function]
pub fn pgentra_token() -> PhpResult<String> {
    guard(|| Ok(default_connector()?.token()?.expose().to_string()))
}

/// The connection string with a current token: libpq (default), uri, ado, jdbc, json, shell
/// or pdo.
#[php_function]
#[php(defaults(format = "\"libpq\""))]
pub fn pgentra_connection_string(format: String) -> PhpResult<String> {
    guard(|| {
        let f = parse_format(&format)?;
        render(&default_connector()?, f)
    })
}

/// Connection parameters with a current token: host, port (int), dbname, user, password,
/// sslmode (and any other libpq parameter of the configuration).
#[php_function]
pub fn pgentra_conninfo() -> PhpResult<ZBox<ZendHashTable>> {
    guard(|| conninfo_array(&default_connector()?.params()?))
}

/// A complete `pgsql:` DSN with user and password: `new PDO(pgentra_pdo_dsn())`.
#[php_function]
pub fn pgentra_pdo_dsn() -> PhpResult<String> {
    guard(|| render(&default_connector()?, Format::Pdo))
}

/// Drop the default connector's cached token (or only `$rejected`, if it is still the cached
/// one: the server refused it). Returns whether a token was dropped.
#[php_function]
pub fn pgentra_invalidate(rejected: Option<String>) -> PhpResult<bool> {
    guard(|| {
        let slot = DEFAULT.lock().unwrap_or_else(|p| p.into_inner()).clone();
        Ok(match slot {
            Some(c) => invalidate(&c, rejected.as_deref()),
            None => false,
        })
    })
}

/// `pg_connect()` with the default connector's current token. If the connect fails while the
/// token is still the cached one, the token is dropped (compare-and-invalidate) and the connect
/// tried once more; a failure is a `PgEntra\DatabaseException` with pgsql's message.
#[php_function]
#[php(defaults(flags = 0))]
pub fn pgentra_pg_connect(flags: i64) -> PhpResult<Zval> {
    guard(|| connect::pg_connect(&default_connector()?, flags))
}

/// `new PDO()` with the default connector's current token (user and password as constructor
/// arguments), `$options` passed to PDO; one reconnect after a possible refusal. A failed
/// connect is PDO's own `PDOException`.
#[php_function]
pub fn pgentra_pdo(options: Option<&ZendHashTable>) -> PhpResult<Zval> {
    let c = guard(default_connector)?;
    connect::pdo(&c, options)
}

/// How many connectors the per-process registry holds (`new PgEntra\Connector` with equal
/// options shares one).
#[php_function]
pub fn pgentra_connector_count() -> i64 {
    i64::try_from(pgentra::Connector::shared_count()).unwrap_or(i64::MAX)
}

/// Internal, for the test suite: panics inside a guarded body when PGENTRA_SELFTEST=1, to
/// show that a panic becomes a PgEntra\InternalException.
#[php_function]
#[php(name = "PgEntra\\selftest_panic")]
pub fn selftest_panic() -> PhpResult<()> {
    guard(|| {
        if std::env::var("PGENTRA_SELFTEST").as_deref() == Ok("1") {
            panic!("selftest panic");
        }
        Err(pgentra::Error::new(ErrorKind::Internal, "selftest_panic is disabled (set PGENTRA_SELFTEST=1)"))
    })
}

// ---------------------------------------------------------------------------------------------
// PgEntra\Connector
// ---------------------------------------------------------------------------------------------

/// One Azure Database for PostgreSQL configuration with its token cache. Keep one per process
/// (e.g. in a static): tokens are cached and refreshed ahead of expiry.
#[php_class]
#[php(name = "PgEntra\\Connector")]
pub struct PhpConnector {
    inner: pgentra::Connector,
}

#[php_impl]
impl PhpConnector {
    /// From the environment, with the options array's values taking precedence. Connectors
    /// with equal options share one token cache for the life of the process (a registry in
    /// the extension), so a PHP-FPM worker that builds one per request asks the identity
    /// service once, not once per request.
    pub fn __construct(options: Option<&ZendHashTable>) -> PhpResult<Self> {
        guard(|| {
            let o = options_from(options)?;
            Ok(PhpConnector { inner: pgentra::Connector::shared(o)? })
        })
    }

    /// `pg_connect()` with a current token; one reconnect after a possible refusal.
    #[php(defaults(flags = 0))]
    pub fn pg_connect(&self, flags: i64) -> PhpResult<Zval> {
        guard(|| connect::pg_connect(&self.inner, flags))
    }

    /// `new PDO()` with a current token; one reconnect after a possible refusal.
    pub fn pdo(&self, options: Option<&ZendHashTable>) -> PhpResult<Zval> {
        connect::pdo(&self.inner, options)
    }

    /// A connect with `$token` failed (a PHP driver knows nothing more): whether to connect
    /// again, once, with `token()`. The core decides (the same rule as pgConnect and pdo).
    pub fn connect_failed(&self, token: String) -> PhpResult<bool> {
        guard(|| Ok(connect::failed(&self.inner, &token)))
    }

    /// The access token (from the cache, or acquired now).
    pub fn token(&self) -> PhpResult<String> {
        guard(|| Ok(self.inner.token()?.expose().to_string()))
    }

    /// The connection string with a current token: libpq (default), uri, ado, jdbc, json,
    /// shell or pdo.
    #[php(defaults(format = "\"libpq\""))]
    pub fn connection_string(&self, format: String) -> PhpResult<String> {
        guard(|| render(&self.inner, parse_format(&format)?))
    }

    /// Connection parameters with a current token (host, port int, dbname, user, password,
    /// sslmode, ...).
    pub fn conninfo(&self) -> PhpResult<ZBox<ZendHashTable>> {
        guard(|| conninfo_array(&self.inner.params()?))
    }

    /// A complete `pgsql:` DSN with user and password for `new PDO(...)`.
    pub fn pdo_dsn(&self) -> PhpResult<String> {
        guard(|| render(&self.inner, Format::Pdo))
    }

    /// The database user: explicit, else configured, else from the token's claims.
    pub fn user(&self) -> PhpResult<String> {
        guard(|| self.inner.user())
    }

    /// Drop the cached token (or only `$rejected`, if it is still the cached one). Returns
    /// whether a token was dropped.
    pub fn invalidate(&self, rejected: Option<String>) -> PhpResult<bool> {
        guard(|| Ok(invalidate(&self.inner, rejected.as_deref())))
    }

    /// How many token requests this connector has made.
    pub fn token_requests(&self) -> PhpResult<i64> {
        guard(|| Ok(i64::try_from(self.inner.token_requests()).unwrap_or(i64::MAX)))
    }
}

// ---------------------------------------------------------------------------------------------
// Module
// ---------------------------------------------------------------------------------------------

extern "C" fn startup(_ty: i32, _module_number: i32) -> i32 {
    let outcome = catch_unwind(|| {
        pgentra::init_logging();
        register_exceptions()
    });
    let failure = match outcome {
        Ok(Ok(())) => return 0,
        Ok(Err(e)) => e,
        Err(p) => pgentra::Error::from_panic(p).message().to_string(),
    };
    let _ = catch_unwind(AssertUnwindSafe(|| {
        ext_php_rs::error::php_error(&ErrorType::CoreWarning, &format!("pgentra: cannot register the exception classes: {failure}"));
    }));
    -1
}

extern "C" fn info(_module: *mut ModuleEntry) {
    let _ = catch_unwind(|| {
        info_table_start!();
        info_table_row!("pgentra support", "enabled");
        info_table_row!("version", env!("CARGO_PKG_VERSION"));
        info_table_end!();
    });
}

#[php_module]
pub fn get_module(module: ModuleBuilder) -> ModuleBuilder {
    module
        .name("pgentra")
        .startup_function(startup)
        .info_function(info)
        .function(wrap_function!(pgentra_token))
        .function(wrap_function!(pgentra_connection_string))
        .function(wrap_function!(pgentra_conninfo))
        .function(wrap_function!(pgentra_pdo_dsn))
        .function(wrap_function!(pgentra_invalidate))
        .function(wrap_function!(pgentra_pg_connect))
        .function(wrap_function!(pgentra_pdo))
        .function(wrap_function!(pgentra_connector_count))
        .function(wrap_function!(selftest_panic))
        .class::<PhpConnector>()
}
