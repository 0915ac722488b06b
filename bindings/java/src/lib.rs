//! `libpgentra_jni.so`: the Java binding of the pgentra core (JNI, `jni` 0.22). Thin on purpose:
//! it converts types, turns a core error into an `io.pgentra.PgEntraException` carrying the
//! error kind's number and the service's code (in `throw`, the one place), and runs every body
//! under `EnvUnowned::with_env`, which catches panics: a bug becomes a `PgEntraException` of
//! kind INTERNAL, never a crashed JVM. Configuration, rendering, caching, the TLS policy and
//! pgJDBC's TLS check all stay in the core.
//!
//! Ownership: `open` returns an `Arc<Connector>` as a `long` (`Arc::into_raw`); the Java object
//! `io.pgentra.PgEntra` owns it and gives it back exactly once, through `free`, from a
//! `java.lang.ref.Cleaner` action that runs only after the object is unreachable (every method
//! keeps it reachable with `Reference.reachabilityFence`), so no call can race the release.
//! `close()` in Java only forgets the token and refuses further calls.
//!
//! Secrets: the token leaves as a fresh `char[]` (pgJDBC wipes the array it gets), never as a
//! `java.lang.String`; the UTF-16 buffer used to fill it is zeroed.

use jni::errors::ErrorPolicy;
use jni::objects::{JCharArray, JClass, JObject, JObjectArray, JString, JValue};
use jni::sys::{jboolean, jint, jlong};
use jni::{jni_sig, jni_str, Env, EnvUnowned};
use pgentra::{Connector, ErrorKind, Format, Options};
use std::sync::Arc;
use zeroize::Zeroize;

/// Why a native body failed: a core error to throw, or a JNI failure (then a Java exception
/// is usually pending already).
enum Fail {
    Core(pgentra::Error),
    Jni(jni::errors::Error),
}

impl From<jni::errors::Error> for Fail {
    fn from(e: jni::errors::Error) -> Self {
        Fail::Jni(e)
    }
}

impl From<pgentra::Error> for Fail {
    fn from(e: pgentra::Error) -> Self {
        Fail::Core(e)
    }
}

type Res<T> = std::result::Result<T, Fail>;

/// The one place where a core error becomes a Java exception:
/// `new io.pgentra.PgEntraException(kindNumber, message, serviceCodeOrNull)`.
fn throw(env: &mut Env<'_>, e: &pgentra::Error) -> jni::errors::Result<()> {
    let message = JString::from_str(env, e.message())?;
    let code = match e.code() {
        Some(c) => JObject::from(JString::from_str(env, c)?),
        None => JObject::null(),
    };
    let message = JObject::from(message);
    let ex = env.new_object(
        jni_str!("io/pgentra/PgEntraException"),
        jni_sig!("(ILjava/lang/String;Ljava/lang/String;)V"),
        &[JValue::Int(e.kind() as u8 as jint), JValue::Object(&message), JValue::Object(&code)],
    )?;
    let ex = env.cast_local::<jni::objects::JThrowable>(ex)?;
    match env.throw(&ex) {
        Ok(()) | Err(jni::errors::Error::JavaException) => Ok(()),
        Err(other) => Err(other),
    }
}

/// Throws pgentra's exception for a core error or a panic; leaves a pending JNI exception alone.
struct ThrowPgEntra;

impl<T: Default> ErrorPolicy<T, Fail> for ThrowPgEntra {
    type Captures<'unowned_env_local: 'native_method, 'native_method> = ();

    fn on_error<'unowned_env_local: 'native_method, 'native_method>(
        env: &mut Env<'unowned_env_local>,
        _cap: &mut (),
        err: Fail,
    ) -> jni::errors::Result<T> {
        if env.exception_check() {
            return Ok(T::default());
        }
        let core = match err {
            Fail::Core(e) => e,
            Fail::Jni(e) => pgentra::Error::new(ErrorKind::Internal, format!("a JNI call failed in pgentra: {e}; please report it")),
        };
        throw(env, &core)?;
        Ok(T::default())
    }

    fn on_panic<'unowned_env_local: 'native_method, 'native_method>(
        env: &mut Env<'unowned_env_local>,
        _cap: &mut (),
        payload: Box<dyn std::any::Any + Send + 'static>,
    ) -> jni::errors::Result<T> {
        let e = pgentra::Error::from_panic(payload);
        if env.exception_check() {
            env.exception_clear();
        }
        throw(env, &e)?;
        Ok(T::default())
    }
}

fn config_err(message: impl Into<String>) -> Fail {
    Fail::Core(pgentra::Error::config(message))
}

/// A borrowed connector from a handle made by `open` (see the module's note on ownership).
fn connector<'a>(handle: jlong) -> Res<&'a Connector> {
    if handle == 0 {
        return Err(config_err("this PgEntra is closed; create a new one"));
    }
    // SAFETY: a non-zero handle is an `Arc::into_raw` from `open`, released only by `free`,
    // which Java calls once, after the owning object became unreachable.
    Ok(unsafe { &*(handle as usize as *const Connector) })
}

fn string(env: &Env<'_>, s: &JString<'_>, what: &str) -> Res<String> {
    if s.is_null() {
        return Err(config_err(format!("{what} is null")));
    }
    Ok(s.try_to_string(env)?)
}

fn opt_string(env: &Env<'_>, s: &JString<'_>) -> Res<Option<String>> {
    if s.is_null() {
        return Ok(None);
    }
    Ok(Some(s.try_to_string(env)?))
}

/// `String[]` of key, value, key, value... (a null value means "remove").
fn pairs(env: &mut Env<'_>, arr: &JObjectArray<'_, JString<'_>>) -> Res<Vec<(String, Option<String>)>> {
    if arr.is_null() {
        return Ok(Vec::new());
    }
    let n = arr.len(env)?;
    if n % 2 != 0 {
        return Err(Fail::Core(pgentra::Error::new(ErrorKind::Internal, "key/value array of odd length")));
    }
    let mut out = Vec::with_capacity(n / 2);
    for i in (0..n).step_by(2) {
        let k = arr.get_element(env, i)?;
        let v = arr.get_element(env, i + 1)?;
        let key = string(env, &k, "an option key")?;
        let value = opt_string(env, &v)?;
        out.push((key, value));
    }
    Ok(out)
}

fn new_string_array<'l>(env: &mut Env<'l>, items: &[(&str, &str)]) -> Res<JObjectArray<'l, JString<'l>>> {
    let arr = JObjectArray::<JString>::new(env, items.len() * 2, JString::null())?;
    for (i, (k, v)) in items.iter().enumerate() {
        let k = JString::from_str(env, k)?;
        arr.set_element(env, 2 * i, &k)?;
        let v = JString::from_str(env, v)?;
        arr.set_element(env, 2 * i + 1, &v)?;
    }
    Ok(arr)
}

fn chars_of<'l>(env: &mut Env<'l>, text: &str) -> Res<JCharArray<'l>> {
    let mut utf16: Vec<u16> = text.encode_utf16().collect();
    let out = JCharArray::new(env, utf16.len()).and_then(|arr| arr.set_region(env, 0, &utf16).map(|()| arr));
    utf16.zeroize();
    Ok(out?)
}

fn format_of(format: &str) -> Res<Format> {
    Format::parse(format).map_err(|e| Fail::Core(e.context("format argument")))
}

// ---------------------------------------------------------------------------------------------
// io.pgentra.Native (package-private static methods)
// ---------------------------------------------------------------------------------------------

/// `long open(String[] options)`: options as key, value pairs for `Options::set`.
#[unsafe(no_mangle)]
pub extern "system" fn Java_io_pgentra_Native_open<'c>(mut u: EnvUnowned<'c>, _c: JClass<'c>, options: JObjectArray<'c, JString<'c>>) -> jlong {
    u.with_env(|env| -> Res<jlong> {
        pgentra::init_logging();
        let mut o = Options::default();
        for (k, v) in pairs(env, &options)? {
            if let Some(v) = v {
                o.set(&k, &v)?;
            }
        }
        let c = Arc::new(Connector::new(o)?);
        Ok(Arc::into_raw(c) as usize as jlong)
    })
    .resolve::<ThrowPgEntra>()
}

/// `void free(long handle)`: called once, by the Cleaner of the owning `PgEntra`.
#[unsafe(no_mangle)]
pub extern "system" fn Java_io_pgentra_Native_free<'c>(mut u: EnvUnowned<'c>, _c: JClass<'c>, handle: jlong) {
    u.with_env(|_env| -> Res<()> {
        if handle != 0 {
            // SAFETY: see `connector`; this is the one release of `open`'s reference.
            let c = unsafe { Arc::from_raw(handle as usize as *const Connector) };
            // This JVM's copy only: the shared entry is the user's other processes' too.
            c.forget();
            drop(c);
        }
        Ok(())
    })
    .resolve::<ThrowPgEntra>()
}

/// `char[] token(long handle)`
#[unsafe(no_mangle)]
pub extern "system" fn Java_io_pgentra_Native_token<'c>(mut u: EnvUnowned<'c>, _c: JClass<'c>, handle: jlong) -> JCharArray<'c> {
    u.with_env(|env| -> Res<JCharArray<'c>> {
        let t = connector(handle)?.token()?;
        chars_of(env, t.expose())
    })
    .resolve::<ThrowPgEntra>()
}

/// A token handed back by Java as `char[]`, copied out; both copies are wiped when dropped.
fn secret_chars(env: &mut Env<'_>, chars: &JCharArray<'_>) -> Res<zeroize::Zeroizing<String>> {
    let mut buf = zeroize::Zeroizing::new(vec![0u16; chars.len(env)?]);
    chars.get_region(env, 0, &mut buf)?;
    Ok(zeroize::Zeroizing::new(String::from_utf16_lossy(&buf)))
}

/// `void forget(long handle)`: `PgEntra.close()` drops this JVM's token, never the shared entry
/// or a failure remembered for the user's other processes (`Connector::forget`).
#[unsafe(no_mangle)]
pub extern "system" fn Java_io_pgentra_Native_forget<'c>(mut u: EnvUnowned<'c>, _c: JClass<'c>, handle: jlong) {
    u.with_env(|_env| -> Res<()> {
        connector(handle)?.forget();
        Ok(())
    })
    .resolve::<ThrowPgEntra>()
}

/// `boolean invalidateIf(long handle, char[] rejected)`; a null array drops any cached token.
#[unsafe(no_mangle)]
pub extern "system" fn Java_io_pgentra_Native_invalidateIf<'c>(mut u: EnvUnowned<'c>, _c: JClass<'c>, handle: jlong, rejected: JCharArray<'c>) -> jboolean {
    u.with_env(|env| -> Res<jboolean> {
        let c = connector(handle)?;
        if rejected.is_null() {
            c.invalidate();
            return Ok(true);
        }
        let text = secret_chars(env, &rejected)?;
        Ok(c.invalidate_if(&text))
    })
    .resolve::<ThrowPgEntra>()
}

/// `boolean connectFailed(long handle, char[] token, String sqlstate)`: a connect that was given
/// `token` failed with `sqlstate` (pgJDBC reports every server refusal with one, so none means
/// the server never judged the password); the core decides whether to connect once more (`Connector::connect_failed`: a refusal, 28P01, of a token the cache no longer
/// hands out).
#[unsafe(no_mangle)]
pub extern "system" fn Java_io_pgentra_Native_connectFailed<'c>(
    mut u: EnvUnowned<'c>,
    _c: JClass<'c>,
    handle: jlong,
    token: JCharArray<'c>,
    sqlstate: JString<'c>,
) -> jboolean {
    u.with_env(|env| -> Res<jboolean> {
        let c = connector(handle)?;
        if token.is_null() {
            return Ok(false);
        }
        let state = if sqlstate.is_null() { None } else { Some(sqlstate.try_to_string(env)?) };
        let text = secret_chars(env, &token)?;
        Ok(c.connect_failed(&text, pgentra::Failure::from_facts(state.as_deref(), Some(false))))
    })
    .resolve::<ThrowPgEntra>()
}

/// `String render(long handle, boolean withToken, String format, String[] overrides)`: the
/// connection string (with the token) or the settings string (without a password).
#[unsafe(no_mangle)]
pub extern "system" fn Java_io_pgentra_Native_render<'c>(
    mut u: EnvUnowned<'c>,
    _c: JClass<'c>,
    handle: jlong,
    with_token: jboolean,
    format: JString<'c>,
    overrides: JObjectArray<'c, JString<'c>>,
) -> JString<'c> {
    u.with_env(|env| -> Res<JString<'c>> {
        let c = connector(handle)?;
        let f = format_of(&string(env, &format, "format")?)?;
        let o = pairs(env, &overrides)?;
        let text = if with_token { c.connection_string_with(f, &o)? } else { c.settings_string_with_user(f, &o)? };
        Ok(JString::from_str(env, &text)?)
    })
    .resolve::<ThrowPgEntra>()
}

/// `String[] params(long handle, boolean withToken, String[] overrides)`: the final libpq
/// parameters as key, value pairs (password included when `withToken`).
#[unsafe(no_mangle)]
pub extern "system" fn Java_io_pgentra_Native_params<'c>(
    mut u: EnvUnowned<'c>,
    _c: JClass<'c>,
    handle: jlong,
    with_token: jboolean,
    overrides: JObjectArray<'c, JString<'c>>,
) -> JObjectArray<'c, JString<'c>> {
    u.with_env(|env| -> Res<JObjectArray<'c, JString<'c>>> {
        let c = connector(handle)?;
        let o = pairs(env, &overrides)?;
        let p = if with_token { c.params_with(&o)? } else { c.settings_with_user(&o)? };
        let port = p.port.map(|n| n.to_string());
        let mut items: Vec<(&str, &str)> = Vec::new();
        for (k, v) in [("host", p.host.as_deref()), ("port", port.as_deref()), ("dbname", p.dbname.as_deref()), ("user", p.user.as_deref())] {
            if let Some(v) = v {
                items.push((k, v));
            }
        }
        if let Some(pw) = &p.password {
            items.push(("password", pw.expose()));
        }
        if let Some(m) = p.sslmode {
            items.push(("sslmode", m.as_str()));
        }
        if p.system_roots {
            items.push(("system_roots", "true"));
        }
        for (k, v) in &p.extra {
            items.push((k, v));
        }
        new_string_array(env, &items)
    })
    .resolve::<ThrowPgEntra>()
}

/// `String user(long handle)`
#[unsafe(no_mangle)]
pub extern "system" fn Java_io_pgentra_Native_user<'c>(mut u: EnvUnowned<'c>, _c: JClass<'c>, handle: jlong) -> JString<'c> {
    u.with_env(|env| -> Res<JString<'c>> {
        let user = connector(handle)?.user()?;
        Ok(JString::from_str(env, &user)?)
    })
    .resolve::<ThrowPgEntra>()
}

/// `long tokenRequests(long handle)`
#[unsafe(no_mangle)]
pub extern "system" fn Java_io_pgentra_Native_tokenRequests<'c>(mut u: EnvUnowned<'c>, _c: JClass<'c>, handle: jlong) -> jlong {
    u.with_env(|_env| -> Res<jlong> { Ok(i64::try_from(connector(handle)?.token_requests()).unwrap_or(i64::MAX)) })
        .resolve::<ThrowPgEntra>()
}

/// `String checkPgjdbc(long handle, String hosts, String sslmode, String sslfactory)`: whether
/// a token may go over the connection pgJDBC configured (`tls::check_pgjdbc` with this
/// connector's policy); returns the explanation, throws a TLS_POLICY exception otherwise.
#[unsafe(no_mangle)]
pub extern "system" fn Java_io_pgentra_Native_checkPgjdbc<'c>(
    mut u: EnvUnowned<'c>,
    _c: JClass<'c>,
    handle: jlong,
    hosts: JString<'c>,
    sslmode: JString<'c>,
    sslfactory: JString<'c>,
) -> JString<'c> {
    u.with_env(|env| -> Res<JString<'c>> {
        let c = connector(handle)?;
        let hosts = opt_string(env, &hosts)?.unwrap_or_default();
        let mode = string(env, &sslmode, "sslmode")?;
        let factory = opt_string(env, &sslfactory)?;
        let d = pgentra::tls::check_pgjdbc(&hosts, &mode, factory.as_deref(), c.config().tls_policy())?;
        Ok(JString::from_str(env, &d.explanation)?)
    })
    .resolve::<ThrowPgEntra>()
}

/// `String version()`
#[unsafe(no_mangle)]
pub extern "system" fn Java_io_pgentra_Native_version<'c>(mut u: EnvUnowned<'c>, _c: JClass<'c>) -> JString<'c> {
    u.with_env(|env| -> Res<JString<'c>> {
        pgentra::init_logging();
        Ok(JString::from_str(env, env!("CARGO_PKG_VERSION"))?)
    })
    .resolve::<ThrowPgEntra>()
}

/// `void selftestPanic()`: panics inside a guarded body when PGENTRA_SELFTEST=1, for the test
/// that shows a panic becomes a PgEntraException of kind INTERNAL.
#[unsafe(no_mangle)]
pub extern "system" fn Java_io_pgentra_Native_selftestPanic<'c>(mut u: EnvUnowned<'c>, _c: JClass<'c>) {
    u.with_env(|_env| -> Res<()> {
        if std::env::var("PGENTRA_SELFTEST").as_deref() == Ok("1") {
            panic!("selftest panic");
        }
        Err(Fail::Core(pgentra::Error::new(ErrorKind::Internal, "selftestPanic is disabled (set PGENTRA_SELFTEST=1)")))
    })
    .resolve::<ThrowPgEntra>()
}
