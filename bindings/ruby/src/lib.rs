//! `pgentra_ext`: the Ruby binding of the pgentra core (loaded by the gem as
//! `pgentra/pgentra_ext`). Thin on purpose: it converts types, maps the core's `ErrorKind` to
//! exception classes (in `to_rb_err`, the one place), releases the GVL around every call that
//! may wait on the network, and never lets a panic cross into Ruby (`guard`: a panic becomes
//! `PgEntra::InternalError`). Configuration, parsing, rendering, caching, user discovery and TLS
//! policy all stay in the core.
//!
//! The pure-Ruby gem (ruby/lib/pgentra.rb) adds the keyword constructor, `conninfo(**overrides)`,
//! `connect` with its renew-once retry, the module-level default connector and the
//! ActiveRecord integration.

use magnus::{
    function, method, prelude::*, value::Opaque, Error, ExceptionClass, RClass, RHash, RModule,
    RString, Ruby, Symbol, Value,
};
use pgentra::{ConnParams, CredentialKind, ErrorKind, Failure, Format, Options, Secret, SslMode};
use std::ffi::c_void;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::Duration;

/// The class name and the `kind` symbol of each error kind.
fn class_name(kind: ErrorKind) -> (&'static str, &'static str) {
    match kind {
        ErrorKind::Config => ("ConfigError", "config"),
        ErrorKind::Credential => ("CredentialError", "credential"),
        ErrorKind::IdentityService => ("IdentityServiceError", "identity_service"),
        ErrorKind::Network => ("NetworkError", "network"),
        ErrorKind::TlsPolicy => ("TlsPolicyError", "tls_policy"),
        ErrorKind::Database => ("DatabaseError", "database"),
        ErrorKind::Internal => ("InternalError", "internal"),
    }
}

/// The subclasses of `PgEntra::Error` in `ErrorKind::ALL` order, created once by `init`.
struct Classes {
    kinds: [Opaque<ExceptionClass>; 7],
}

static CLASSES: OnceLock<Classes> = OnceLock::new();

fn class_of(ruby: &Ruby, kind: ErrorKind) -> ExceptionClass {
    match CLASSES.get() {
        Some(c) => ruby.get_inner(c.kinds[ErrorKind::ALL.iter().position(|k| *k == kind).unwrap_or(6)]),
        None => ruby.exception_standard_error(),
    }
}

/// The one place where a core error becomes a Ruby exception: the class from the kind, the
/// core's message (which never holds a secret), the identity service's code as `@service_code`.
fn to_rb_err(ruby: &Ruby, e: pgentra::Error) -> Error {
    let made = class_of(ruby, e.kind())
        .new_instance((ruby.str_new(e.message()),))
        .and_then(|exc| {
            if let Some(code) = e.code() {
                exc.funcall::<_, _, Value>("instance_variable_set", ("@service_code", ruby.str_new(code)))?;
            }
            Ok(exc)
        });
    match made {
        Ok(exc) => Error::from(exc),
        Err(err) => err,
    }
}

fn config_err(ruby: &Ruby, message: String) -> Error {
    to_rb_err(ruby, pgentra::Error::config(message))
}

/// A panic (a bug in pgentra) as `PgEntra::InternalError`.
fn panic_err(ruby: &Ruby, payload: Box<dyn std::any::Any + Send>) -> Error {
    to_rb_err(ruby, pgentra::Error::from_panic(payload))
}

/// Run a method body with the GVL held; a panic becomes `PgEntra::InternalError` here, before
/// it could reach Ruby.
fn guard<T>(ruby: &Ruby, f: impl FnOnce() -> Result<T, Error>) -> Result<T, Error> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(r) => r,
        Err(p) => Err(panic_err(ruby, p)),
    }
}

/// Where a waiting Ruby thread learns that the work is done or that Ruby wants it back.
struct Waiter<T> {
    slot: std::sync::Mutex<Option<std::thread::Result<T>>>,
    cv: std::sync::Condvar,
    interrupted: std::sync::atomic::AtomicBool,
}

unsafe extern "C" fn wait_trampoline<T>(data: *mut c_void) -> *mut c_void {
    // SAFETY: `data` is the `Waiter` that `interruptible` keeps alive for the call.
    let w = unsafe { &*(data as *const Waiter<T>) };
    let mut g = w.slot.lock().unwrap_or_else(|p| p.into_inner());
    while g.is_none() && !w.interrupted.load(std::sync::atomic::Ordering::SeqCst) {
        g = w.cv.wait(g).unwrap_or_else(|p| p.into_inner());
    }
    std::ptr::null_mut()
}

/// Ruby's unblocking function: Thread#raise, Thread#kill, Timeout and signals call it.
unsafe extern "C" fn wait_ubf<T>(data: *mut c_void) {
    // SAFETY: as above.
    let w = unsafe { &*(data as *const Waiter<T>) };
    w.interrupted.store(true, std::sync::atomic::Ordering::SeqCst);
    let _g = w.slot.lock().unwrap_or_else(|p| p.into_inner());
    w.cv.notify_all();
}

/// Run blocking core work (a token request) on a helper thread while this Ruby thread waits
/// with the GVL released and an unblocking function: Timeout, Thread#raise and Thread#kill end
/// the wait at once (the request goes on and fills the cache). Other Ruby threads run meanwhile.
fn interruptible<F, T>(ruby: &Ruby, func: F) -> Result<T, Error>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    let w = std::sync::Arc::new(Waiter { slot: std::sync::Mutex::new(None), cv: std::sync::Condvar::new(), interrupted: false.into() });
    let done = std::sync::Arc::clone(&w);
    let spawned = std::thread::Builder::new().name("pgentra-rb-wait".into()).spawn(move || {
        let r = catch_unwind(AssertUnwindSafe(func));
        *done.slot.lock().unwrap_or_else(|p| p.into_inner()) = Some(r);
        done.cv.notify_all();
    });
    if let Err(e) = spawned {
        return Err(to_rb_err(ruby, pgentra::Error::new(ErrorKind::Internal, format!("cannot start a waiting thread: {e}"))));
    }
    let data = std::sync::Arc::as_ptr(&w) as *mut c_void;
    loop {
        // SAFETY: the trampoline and the unblocking function match `w`'s type; `w` outlives
        // the call (we hold an Arc).
        unsafe { rb_sys::rb_thread_call_without_gvl2(Some(wait_trampoline::<T>), data, Some(wait_ubf::<T>), data) };
        if let Some(r) = w.slot.lock().unwrap_or_else(|p| p.into_inner()).take() {
            return r.map_err(|p| panic_err(ruby, p));
        }
        // Interrupted: let Ruby raise (Timeout::Error, Thread#raise, kill); else wait again.
        ruby.thread_check_ints()?;
        w.interrupted.store(false, std::sync::atomic::Ordering::SeqCst);
    }
}

fn secret_str(ruby: &Ruby, s: &Secret) -> RString {
    ruby.str_new(s.expose())
}

/// `{host:, port: Integer, dbname:, user:, password:, sslmode:}` plus any other libpq parameter
/// of the configuration (symbol keys, as `PG.connect(**h)` takes them); missing values are left
/// out.
fn params_hash(ruby: &Ruby, p: &ConnParams) -> Result<RHash, Error> {
    let h = ruby.hash_new();
    if let Some(v) = &p.host {
        h.aset(ruby.to_symbol("host"), v.as_str())?;
    }
    if let Some(v) = p.port {
        h.aset(ruby.to_symbol("port"), v)?;
    }
    if let Some(v) = &p.dbname {
        h.aset(ruby.to_symbol("dbname"), v.as_str())?;
    }
    if let Some(v) = &p.user {
        h.aset(ruby.to_symbol("user"), v.as_str())?;
    }
    if let Some(v) = &p.password {
        h.aset(ruby.to_symbol("password"), secret_str(ruby, v))?;
    }
    if let Some(v) = p.sslmode {
        h.aset(ruby.to_symbol("sslmode"), v.as_str())?;
    }
    for (k, v) in &p.extra {
        h.aset(ruby.to_symbol(k), v.as_str())?;
    }
    Ok(h)
}

fn key_name(ruby: &Ruby, key: Value) -> Result<String, Error> {
    if let Some(s) = Symbol::from_value(key) {
        return Ok(s.name()?.into_owned());
    }
    if let Some(s) = RString::from_value(key) {
        return s.to_string();
    }
    Err(config_err(
        ruby,
        format!(
            "option names are symbols or strings, not {}",
            key.class().inspect()
        ),
    ))
}

/// A String (or Symbol) argument.
fn str_arg(ruby: &Ruby, name: &str, v: Value) -> Result<String, Error> {
    if let Some(s) = RString::from_value(v) {
        return s.to_string();
    }
    if let Some(s) = Symbol::from_value(v) {
        return Ok(s.name()?.into_owned());
    }
    Err(config_err(
        ruby,
        format!(
            "{name} argument: expected a String, got {}",
            v.class().inspect()
        ),
    ))
}

/// A path argument: a String or anything with `to_path` (Pathname, File).
fn path_arg(ruby: &Ruby, name: &str, v: Value) -> Result<PathBuf, Error> {
    let v = if v.respond_to("to_path", false)? {
        v.funcall::<_, _, Value>("to_path", ())?
    } else {
        v
    };
    Ok(PathBuf::from(str_arg(ruby, name, v)?))
}

fn port_arg(ruby: &Ruby, v: Value) -> Result<u16, Error> {
    if let Some(i) = magnus::Integer::from_value(v) {
        return match i.to_i64() {
            Ok(p) if (1..=65535).contains(&p) => Ok(p as u16),
            _ => Err(config_err(
                ruby,
                format!("port argument: port {} is out of range; use a number from 1 to 65535 (Azure uses 5432)", v.inspect()),
            )),
        };
    }
    let s = str_arg(ruby, "port", v)?;
    pgentra::conninfo::parse_port(&s).map_err(|e| to_rb_err(ruby, e.context("port argument")))
}

fn timeout_arg(ruby: &Ruby, v: Value) -> Result<Duration, Error> {
    let bad = || {
        config_err(
            ruby,
            format!(
                "timeout argument: {} is not a number of seconds between 0 and 3600",
                v.inspect()
            ),
        )
    };
    if magnus::Integer::from_value(v).is_none() && magnus::Float::from_value(v).is_none() {
        return Err(bad());
    }
    let t = f64::try_convert(v).map_err(|_| bad())?;
    if t.is_finite() && t > 0.0 && t <= 3600.0 {
        Ok(Duration::from_secs_f64(t))
    } else {
        Err(bad())
    }
}

/// The keyword arguments of `PgEntra::Connector.new` (nil values already left out by the Ruby
/// side) as the core's `Options`.
fn options_from(ruby: &Ruby, h: RHash) -> Result<Options, Error> {
    let mut pairs: Vec<(Value, Value)> = Vec::new();
    h.foreach(|k: Value, v: Value| {
        pairs.push((k, v));
        Ok(magnus::r_hash::ForEach::Continue)
    })?;
    let mut o = Options::default();
    for (k, v) in pairs {
        let name = key_name(ruby, k)?;
        if v.is_nil() {
            continue;
        }
        match name.as_str() {
            "prefix" => o.prefix = Some(str_arg(ruby, &name, v)?),
            "connection_string" => o.connection_string = Some(str_arg(ruby, &name, v)?),
            "host" => o.host = Some(str_arg(ruby, &name, v)?),
            "port" => o.port = Some(port_arg(ruby, v)?),
            "dbname" | "database" => o.dbname = Some(str_arg(ruby, &name, v)?),
            "user" | "username" => o.user = Some(str_arg(ruby, &name, v)?),
            "password" => o.password = Some(Secret::new(str_arg(ruby, &name, v)?)),
            "sslmode" => {
                let s = str_arg(ruby, &name, v)?;
                o.sslmode = Some(SslMode::parse(&s).ok_or_else(|| {
                    config_err(
                        ruby,
                        format!("sslmode argument: unknown sslmode '{s}'; use one of disable, allow, prefer, require, verify-ca, verify-full (Azure needs require or stricter)"),
                    )
                })?)
            }
            "client_id" => o.client_id = Some(str_arg(ruby, &name, v)?),
            "tenant_id" => o.tenant_id = Some(str_arg(ruby, &name, v)?),
            "client_secret" => o.client_secret = Some(Secret::new(str_arg(ruby, &name, v)?)),
            "certificate_path" => o.certificate_path = Some(path_arg(ruby, &name, v)?),
            "federated_token_file" => o.federated_token_file = Some(path_arg(ruby, &name, v)?),
            "credential" => {
                let s = str_arg(ruby, &name, v)?;
                // "auto" forces nothing: PGENTRA_CREDENTIAL still applies.
                o.credential = match CredentialKind::parse(&s).map_err(|e| to_rb_err(ruby, e))? {
                    CredentialKind::Auto => None,
                    k => Some(k),
                }
            }
            "scope" => o.scope = Some(str_arg(ruby, &name, v)?),
            "authority_host" => o.authority_host = Some(str_arg(ruby, &name, v)?),
            // false forces nothing: PGENTRA_ALLOW_INSECURE still applies.
            "allow_insecure" => o.allow_insecure = Some(true).filter(|_| v.to_bool()),
            "allow_unverified_tls" => o.allow_unverified_tls = Some(true).filter(|_| v.to_bool()),
            "timeout" => o.timeout = Some(timeout_arg(ruby, v)?),
            other => return Err(config_err(ruby, format!("unknown option '{other}'"))),
        }
    }
    Ok(o)
}

/// `PgEntra::Connector`: one Azure Database for PostgreSQL configuration with its token cache.
#[magnus::wrap(class = "PgEntra::Connector", free_immediately, size)]
struct RbConnector {
    inner: pgentra::Connector,
}

impl RbConnector {
    /// `PgEntra::Connector._new(options_hash)`; `Connector.new(**kw)` in Ruby calls it.
    fn new(ruby: &Ruby, options: RHash) -> Result<RbConnector, Error> {
        guard(ruby, || {
            let o = options_from(ruby, options)?;
            // Reads variables and perhaps a certificate file: no network, so the GVL is kept.
            let inner = pgentra::Connector::new(o).map_err(|e| to_rb_err(ruby, e))?;
            Ok(RbConnector { inner })
        })
    }

    /// Whether the core can answer at once: secret mode, or a fresh cached token. Otherwise the
    /// call may wait on the identity service and goes through `interruptible`.
    fn ready(&self) -> bool {
        self.inner.is_password_mode() || self.inner.try_token().is_some()
    }

    /// Call `f` on the core: directly when it cannot wait, else with the GVL released.
    fn call<T: Send + 'static>(
        &self,
        ruby: &Ruby,
        f: impl FnOnce(&pgentra::Connector) -> pgentra::Result<T> + Send + 'static,
    ) -> Result<T, Error> {
        let r = if self.ready() {
            f(&self.inner)
        } else {
            let c = self.inner.clone();
            interruptible(ruby, move || f(&c))?
        };
        r.map_err(|e| to_rb_err(ruby, e))
    }

    fn token(ruby: &Ruby, rb_self: &Self) -> Result<RString, Error> {
        guard(ruby, || {
            // Fast path: a fresh cached token, no lock, no GVL release.
            if let Some(t) = rb_self.inner.try_token() {
                return Ok(secret_str(ruby, &t));
            }
            let c = rb_self.inner.clone();
            let t = interruptible(ruby, move || c.token())?.map_err(|e| to_rb_err(ruby, e))?;
            Ok(secret_str(ruby, &t))
        })
    }

    /// `overrides`: [[libpq keyword, value or nil], ...], merged and checked by the core.
    fn params(ruby: &Ruby, rb_self: &Self, overrides: Vec<(String, Option<String>)>) -> Result<RHash, Error> {
        guard(ruby, || {
            let p = rb_self.call(ruby, move |c| c.params_with(&overrides))?;
            params_hash(ruby, &p)
        })
    }

    fn connection_string(ruby: &Ruby, rb_self: &Self, format: Value) -> Result<String, Error> {
        guard(ruby, || {
            let name = str_arg(ruby, "format", format)?;
            let f = Format::parse(&name).map_err(|e| to_rb_err(ruby, e))?;
            rb_self.call(ruby, move |c| c.connection_string(f))
        })
    }

    fn user(ruby: &Ruby, rb_self: &Self) -> Result<String, Error> {
        guard(ruby, || rb_self.call(ruby, |c| c.user()))
    }

    fn token_info(ruby: &Ruby, rb_self: &Self) -> Result<RHash, Error> {
        guard(ruby, || {
            let info = rb_self.call(ruby, |c| c.token_info())?;
            let h = ruby.hash_new();
            h.aset(ruby.to_symbol("credential"), info.credential.as_str())?;
            h.aset(ruby.to_symbol("detail"), info.detail.as_str())?;
            h.aset(ruby.to_symbol("expires_on"), info.expires_on)?;
            h.aset(ruby.to_symbol("refresh_at"), info.refresh_at)?;
            h.aset(ruby.to_symbol("acquired_at"), info.acquired_at)?;
            h.aset(
                ruby.to_symbol("user"),
                info.claims
                    .as_ref()
                    .and_then(|c| c.user_name())
                    .map(|(name, _)| name),
            )?;
            Ok(h)
        })
    }

    fn invalidate(ruby: &Ruby, rb_self: &Self) -> Result<(), Error> {
        guard(ruby, || {
            rb_self.inner.invalidate();
            Ok(())
        })
    }

    fn invalidate_if(ruby: &Ruby, rb_self: &Self, rejected: Value) -> Result<bool, Error> {
        guard(ruby, || {
            if rejected.is_nil() {
                return Ok(false);
            }
            let t = str_arg(ruby, "rejected", rejected)?;
            Ok(rb_self.inner.invalidate_if(&t))
        })
    }

    /// A connect with `token` failed; `sqlstate` and `used_password` (nil: unknown) are what
    /// ruby-pg could tell. The core decides (pgentra::recovery): whether to reconnect once.
    fn connect_failed(ruby: &Ruby, rb_self: &Self, token: Value, sqlstate: Value, used_password: Value) -> Result<bool, Error> {
        guard(ruby, || {
            if token.is_nil() {
                return Ok(false);
            }
            let t = str_arg(ruby, "token", token)?;
            let code = if sqlstate.is_nil() { None } else { Some(str_arg(ruby, "sqlstate", sqlstate)?) };
            let used = if used_password.is_nil() { None } else { Some(used_password.to_bool()) };
            Ok(rb_self.inner.connect_failed(&t, Failure::from_facts(code.as_deref(), used)))
        })
    }

    fn token_requests(ruby: &Ruby, rb_self: &Self) -> Result<u64, Error> {
        guard(ruby, || Ok(rb_self.inner.token_requests()))
    }

    fn password_mode(ruby: &Ruby, rb_self: &Self) -> Result<bool, Error> {
        guard(ruby, || Ok(rb_self.inner.is_password_mode()))
    }

    fn credential(ruby: &Ruby, rb_self: &Self) -> Result<String, Error> {
        guard(ruby, || Ok(rb_self.inner.credential_description()))
    }

    fn host(ruby: &Ruby, rb_self: &Self) -> Result<Option<String>, Error> {
        guard(ruby, || Ok(rb_self.inner.config().params.host.clone()))
    }

    fn port(ruby: &Ruby, rb_self: &Self) -> Result<Option<u16>, Error> {
        guard(ruby, || Ok(rb_self.inner.config().params.port))
    }

    fn dbname(ruby: &Ruby, rb_self: &Self) -> Result<Option<String>, Error> {
        guard(ruby, || Ok(rb_self.inner.config().params.dbname.clone()))
    }

    fn sslmode(ruby: &Ruby, rb_self: &Self) -> Result<Option<&'static str>, Error> {
        guard(ruby, || {
            Ok(rb_self.inner.config().params.sslmode.map(SslMode::as_str))
        })
    }

    fn prefix(ruby: &Ruby, rb_self: &Self) -> Result<String, Error> {
        guard(ruby, || Ok(rb_self.inner.config().prefix.clone()))
    }

    fn scope(ruby: &Ruby, rb_self: &Self) -> Result<String, Error> {
        guard(ruby, || Ok(rb_self.inner.config().scope.clone()))
    }

    /// Never a password, token or client secret.
    fn inspect(ruby: &Ruby, rb_self: &Self) -> Result<String, Error> {
        guard(ruby, || {
            let q = |v: Option<&str>| match v {
                Some(s) => ruby.str_new(s).inspect(),
                None => "nil".to_string(),
            };
            let c = rb_self.inner.config();
            Ok(format!(
                "#<PgEntra::Connector host={} port={} dbname={} user={} prefix={} credential={}>",
                q(c.params.host.as_deref()),
                c.params
                    .port
                    .map(|p| p.to_string())
                    .unwrap_or_else(|| "nil".into()),
                q(c.params.dbname.as_deref()),
                q(c.params.user.as_deref()),
                q(Some(&c.prefix)),
                q(Some(&rb_self.inner.credential_description())),
            ))
        })
    }
}

/// `PgEntra::Error#kind`: the class's `KIND` symbol (nil for the base class).
fn error_kind(rb_self: Value) -> Result<Value, Error> {
    rb_self.class().const_get("KIND")
}

/// `PgEntra::Error#kind_id`: the core's number of the kind (1..7; nil for the base class).
fn error_kind_id(rb_self: Value) -> Result<Value, Error> {
    rb_self.class().const_get("KIND_ID")
}

/// `PgEntra._panic_for_tests(where)`: panics on purpose, with the GVL held ("gvl") or inside
/// the GVL-free section ("nogvl", the helper thread of `interruptible`), so that the tests can see it arrive as
/// `PgEntra::InternalError` rather than crossing into Ruby.
fn panic_for_tests(ruby: &Ruby, place: String) -> Result<(), Error> {
    guard(ruby, || {
        if place == "nogvl" {
            interruptible(ruby, || -> () {
                panic!("deliberate panic without the GVL (test)")
            })
        } else {
            panic!("deliberate panic with the GVL held (test)")
        }
    })
}

fn define_errors(ruby: &Ruby, module: RModule) -> Result<(), Error> {
    let base = module.define_error("Error", ruby.exception_standard_error())?;
    base.const_set("KIND", ruby.qnil())?;
    base.const_set("KIND_ID", ruby.qnil())?;
    // `service_code`: the identity service's own error code (e.g. "AADSTS7000215"), or nil.
    // `code`, its deprecated old name, is defined in lib/pgentra.rb.
    base.funcall::<_, _, Value>("attr_reader", (ruby.to_symbol("service_code"),))?;
    base.define_method("kind", method!(error_kind, 0))?;
    base.define_method("kind_id", method!(error_kind_id, 0))?;
    let mut kinds = Vec::with_capacity(ErrorKind::ALL.len());
    for kind in ErrorKind::ALL {
        let (name, sym) = class_name(kind);
        let cls = module.define_error(name, base)?;
        cls.const_set("KIND", ruby.to_symbol(sym))?;
        cls.const_set("KIND_ID", kind as u8)?;
        kinds.push(Opaque::from(cls));
    }
    let kinds: [Opaque<ExceptionClass>; 7] = kinds
        .try_into()
        .map_err(|_| Error::new(ruby.exception_runtime_error(), "pgentra: error classes"))?;
    let _ = CLASSES.set(Classes { kinds });
    Ok(())
}

/// `PgEntra._may_be_refusal(sqlstate, used_password)`: the core's reading of a failed
/// connect's facts (nil: unknown), pgentra::recovery.
fn may_be_refusal(ruby: &Ruby, sqlstate: Value, used_password: Value) -> Result<bool, Error> {
    let code = if sqlstate.is_nil() { None } else { Some(str_arg(ruby, "sqlstate", sqlstate)?) };
    let used = if used_password.is_nil() { None } else { Some(used_password.to_bool()) };
    Ok(Failure::from_facts(code.as_deref(), used).may_be_refusal())
}

// The package is pgentra-ruby, the library (and so the file Ruby loads) pgentra_ext: name the
// entry point after the file, `Init_pgentra_ext`.
#[magnus::init(name = "pgentra_ext")]
fn init(ruby: &Ruby) -> Result<(), Error> {
    pgentra::init_logging();
    let module = ruby.define_module("PgEntra")?;
    module.const_set("NATIVE_VERSION", env!("CARGO_PKG_VERSION"))?;
    define_errors(ruby, module)?;
    module.define_singleton_method("_panic_for_tests", function!(panic_for_tests, 1))?;
    module.define_singleton_method("_may_be_refusal", function!(may_be_refusal, 2))?;

    let class: RClass = module.define_class("Connector", ruby.class_object())?;
    // Instances come only from `_new` (wrapping a core connector), never from `allocate`.
    class.undef_default_alloc_func();
    class.define_singleton_method("_new", function!(RbConnector::new, 1))?;
    class.define_method("token", method!(RbConnector::token, 0))?;
    class.define_method("_params", method!(RbConnector::params, 1))?;
    class.define_method(
        "_connection_string",
        method!(RbConnector::connection_string, 1),
    )?;
    class.define_method("user", method!(RbConnector::user, 0))?;
    class.define_method("token_info", method!(RbConnector::token_info, 0))?;
    class.define_method("invalidate", method!(RbConnector::invalidate, 0))?;
    class.define_method("invalidate_if", method!(RbConnector::invalidate_if, 1))?;
    class.define_method("_connect_failed", method!(RbConnector::connect_failed, 3))?;
    class.define_method("token_requests", method!(RbConnector::token_requests, 0))?;
    class.define_method("password_mode?", method!(RbConnector::password_mode, 0))?;
    class.define_method("credential", method!(RbConnector::credential, 0))?;
    class.define_method("host", method!(RbConnector::host, 0))?;
    class.define_method("port", method!(RbConnector::port, 0))?;
    class.define_method("dbname", method!(RbConnector::dbname, 0))?;
    class.define_method("sslmode", method!(RbConnector::sslmode, 0))?;
    class.define_method("prefix", method!(RbConnector::prefix, 0))?;
    class.define_method("scope", method!(RbConnector::scope, 0))?;
    class.define_method("inspect", method!(RbConnector::inspect, 0))?;
    class.define_method("to_s", method!(RbConnector::inspect, 0))?;
    Ok(())
}
