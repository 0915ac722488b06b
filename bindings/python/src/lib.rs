//! `pgentra._pgentra`: the Python binding of the pgentra core. Thin on purpose: it converts
//! types, maps the core's `ErrorKind` to exception classes (in `to_py_err`, the one place),
//! and releases the GIL around every call that may wait on the network. Configuration,
//! parsing, rendering, caching, user discovery and TLS policy all stay in the core.
//!
//! The pure-Python package `pgentra` (python/pgentra) re-exports these and adds the async
//! methods and the driver integrations.

use pgentra::{ConnParams, CredentialKind, ErrorKind, Failure, Format, Options, Secret, SslMode};
use pyo3::exceptions::PyException;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyString};
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

pyo3::create_exception!(
    pgentra,
    Error,
    PyException,
    "Base class of every pgentra error. `kind` names the core's error kind, `kind_id` its number, `service_code` the identity service's own code (e.g. 'AADSTS7000215') or None (`code`: its deprecated old name)."
);
pyo3::create_exception!(pgentra, ConfigError, Error, "A variable, key or argument is missing, malformed or contradictory.");
pyo3::create_exception!(pgentra, CredentialError, Error, "No credential applies, or a credential could not be built or run.");
pyo3::create_exception!(pgentra, IdentityServiceError, Error, "The identity service answered with an error (Entra AADSTS..., managed identity 4xx/5xx).");
pyo3::create_exception!(pgentra, NetworkError, Error, "The identity service or database could not be reached in time.");
pyo3::create_exception!(pgentra, TlsPolicyError, Error, "A token would travel without TLS, or TLS failed.");
pyo3::create_exception!(pgentra, DatabaseError, Error, "The database refused the connection or a query failed.");
pyo3::create_exception!(pgentra, InternalError, Error, "A bug in pgentra.");

fn class_of(py: Python<'_>, kind: ErrorKind) -> Bound<'_, pyo3::types::PyType> {
    match kind {
        ErrorKind::Config => py.get_type::<ConfigError>(),
        ErrorKind::Credential => py.get_type::<CredentialError>(),
        ErrorKind::IdentityService => py.get_type::<IdentityServiceError>(),
        ErrorKind::Network => py.get_type::<NetworkError>(),
        ErrorKind::TlsPolicy => py.get_type::<TlsPolicyError>(),
        ErrorKind::Database => py.get_type::<DatabaseError>(),
        ErrorKind::Internal => py.get_type::<InternalError>(),
    }
}

/// The one place where a core error becomes a Python exception: the class from the kind, the
/// core's message as the only argument, the identity service's code as `.service_code`.
fn to_py_err(py: Python<'_>, e: pgentra::Error) -> PyErr {
    let made = class_of(py, e.kind()).call1((e.message(),)).and_then(|exc| {
        if let Some(code) = e.code() {
            exc.setattr("service_code", code)?;
        }
        Ok(PyErr::from_value(exc))
    });
    made.unwrap_or_else(|err| err)
}

fn config_err(py: Python<'_>, message: String) -> PyErr {
    to_py_err(py, pgentra::Error::config(message))
}

/// `host`, `port` (int), `dbname`, `user`, `password`, `sslmode`, then any other libpq
/// parameter from the configuration; missing values are left out.
fn params_dict<'py>(py: Python<'py>, p: &ConnParams) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    if let Some(h) = &p.host {
        d.set_item("host", h)?;
    }
    if let Some(port) = p.port {
        d.set_item("port", port)?;
    }
    if let Some(db) = &p.dbname {
        d.set_item("dbname", db)?;
    }
    if let Some(u) = &p.user {
        d.set_item("user", u)?;
    }
    if let Some(pw) = &p.password {
        d.set_item("password", PyString::new(py, pw.expose()))?;
    }
    if let Some(m) = p.sslmode {
        d.set_item("sslmode", m.as_str())?;
    }
    for (k, v) in &p.extra {
        d.set_item(k, v)?;
    }
    Ok(d)
}

/// Libpq keywords among the caller's overrides go to the core, which merges them and checks the
/// final parameters (a weaker sslmode never replaces a stricter one, None never drops sslmode,
/// an Azure host gets verify-full); the other keys (driver options such as cursor_factory) are
/// returned to be applied to the dict afterwards: they cannot change where or how it connects.
type Overrides = (Vec<(String, Option<String>)>, Option<Py<PyDict>>);
fn split_overrides(py: Python<'_>, overrides: Option<&Bound<'_, PyDict>>) -> PyResult<Overrides> {
    let Some(o) = overrides else {
        return Ok((Vec::new(), None));
    };
    let mut libpq = Vec::new();
    let rest = PyDict::new(py);
    for (k, v) in o.iter() {
        let key: String = k.extract()?;
        if pgentra::conninfo::is_libpq_keyword(&key) {
            let value = if v.is_none() { None } else { Some(v.str()?.to_string()) };
            libpq.push((key, value));
        } else {
            rest.set_item(k, v)?;
        }
    }
    Ok((libpq, (!rest.is_empty()).then(|| rest.unbind())))
}

/// Caller overrides: a value replaces the key, None removes it.
fn apply_overrides(d: &Bound<'_, PyDict>, overrides: Option<&Bound<'_, PyDict>>) -> PyResult<()> {
    if let Some(o) = overrides {
        for (k, v) in o.iter() {
            if v.is_none() {
                if d.contains(&k)? {
                    d.del_item(&k)?;
                }
            } else {
                d.set_item(k, v)?;
            }
        }
    }
    Ok(())
}

fn secret_str<'py>(py: Python<'py>, s: &Secret) -> Bound<'py, PyString> {
    PyString::new(py, s.expose())
}

type CoreFuture<T> = Pin<Box<dyn Future<Output = pgentra::Result<T>> + Send + 'static>>;

/// Start a core async operation. If it completes on its first poll (a cached token, secret
/// mode, or an immediate error) the result comes back at once, with no thread hop. Otherwise
/// it goes on on pgentra's runtime, and `callback(error, value)` is called from a pgentra
/// thread when it is done; the Python side turns that into an asyncio future result through
/// `loop.call_soon_threadsafe`. No thread waits for the network while the request runs.
fn start<T, C>(py: Python<'_>, mut fut: CoreFuture<T>, callback: Py<PyAny>, convert: C) -> PyResult<Option<Py<PyAny>>>
where
    T: Send + 'static,
    C: for<'py> Fn(Python<'py>, T) -> PyResult<Py<PyAny>> + Send + 'static,
{
    let first = py.detach(|| {
        let mut cx = Context::from_waker(Waker::noop());
        match fut.as_mut().poll(&mut cx) {
            Poll::Ready(r) => Some(r),
            Poll::Pending => None,
        }
    });
    match first {
        Some(Ok(v)) => convert(py, v).map(Some),
        Some(Err(e)) => Err(to_py_err(py, e)),
        None => {
            let rt = pgentra::runtime::runtime().map_err(|e| to_py_err(py, e))?;
            rt.spawn(async move {
                let result = fut.await;
                // Deliver on a blocking-pool thread: waiting for the GIL must not hold up the
                // runtime's workers, which serve every connector's refreshes. Detached: the
                // handle is not needed.
                drop(tokio::task::spawn_blocking(move || deliver(result, callback, convert)));
            });
            Ok(None)
        }
    }
}

fn deliver<T, C>(result: pgentra::Result<T>, callback: Py<PyAny>, convert: C)
where
    C: for<'py> Fn(Python<'py>, T) -> PyResult<Py<PyAny>>,
{
    // Nothing to do if the interpreter is shutting down.
    let _ = Python::try_attach(|py| {
        let outcome = match result {
            Ok(v) => convert(py, v),
            Err(e) => Err(to_py_err(py, e)),
        };
        let args = match outcome {
            Ok(v) => (py.None(), v),
            Err(e) => (e.into_value(py).into_any(), py.None()),
        };
        if let Err(e) = callback.call1(py, args) {
            e.write_unraisable(py, Some(callback.bind(py)));
        }
        drop(callback);
    });
}

/// One Azure Database for PostgreSQL configuration with its token cache. Share one per
/// process: tokens are cached, refreshed ahead of expiry, and fetched once however many
/// threads ask at the same time.
#[pyclass(frozen, subclass, module = "pgentra._pgentra", name = "Connector")]
struct PyConnector {
    inner: pgentra::Connector,
    /// The Python string last built for the cached token and that token's serial, handed out
    /// again while the cache holds the same token: a cached read allocates nothing and copies
    /// nothing.
    last: std::sync::Mutex<Option<(u64, Py<PyString>)>>,
}

#[allow(clippy::too_many_arguments)]
#[pymethods]
impl PyConnector {
    #[new]
    #[pyo3(signature = (
        prefix=None, connection_string=None, host=None, port=None, dbname=None, user=None,
        credential="auto", client_id=None, tenant_id=None, client_secret=None, scope=None,
        allow_insecure=false, timeout=None, *, password=None, sslmode=None, authority_host=None,
        certificate_path=None, federated_token_file=None, allow_unverified_tls=false
    ))]
    fn new(
        py: Python<'_>,
        prefix: Option<String>,
        connection_string: Option<String>,
        host: Option<String>,
        port: Option<i64>,
        dbname: Option<String>,
        user: Option<String>,
        credential: Option<&str>,
        client_id: Option<String>,
        tenant_id: Option<String>,
        client_secret: Option<String>,
        scope: Option<String>,
        allow_insecure: Option<bool>,
        timeout: Option<f64>,
        password: Option<String>,
        sslmode: Option<&str>,
        authority_host: Option<String>,
        certificate_path: Option<PathBuf>,
        federated_token_file: Option<PathBuf>,
        allow_unverified_tls: Option<bool>,
    ) -> PyResult<Self> {
        // The defaults "auto" and False force nothing: PGENTRA_CREDENTIAL and
        // PGENTRA_ALLOW_INSECURE still apply, as they do for every other binding.
        let credential = match credential.map(CredentialKind::parse).transpose().map_err(|e| to_py_err(py, e))? {
            Some(CredentialKind::Auto) | None => None,
            Some(k) => Some(k),
        };
        let port = match port {
            None => None,
            Some(p) if (1..=65535).contains(&p) => Some(p as u16),
            Some(p) => {
                return Err(config_err(
                    py,
                    format!("port argument: port {p} is out of range; use a number from 1 to 65535 (Azure uses 5432)"),
                ))
            }
        };
        let timeout = match timeout {
            None => None,
            Some(t) if t.is_finite() && t > 0.0 && t <= 3600.0 => Some(Duration::from_secs_f64(t)),
            Some(t) => {
                return Err(config_err(py, format!("timeout argument: {t} is not a number of seconds between 0 and 3600")))
            }
        };
        let sslmode = match sslmode {
            None => None,
            Some(s) => Some(SslMode::parse(s).ok_or_else(|| {
                config_err(
                    py,
                    format!("sslmode argument: unknown sslmode '{s}'; use one of disable, allow, prefer, require, verify-ca, verify-full (Azure needs require or stricter)"),
                )
            })?),
        };
        let options = Options {
            prefix,
            connection_string,
            host,
            port,
            dbname,
            user,
            password: password.map(Secret::new),
            sslmode,
            client_id,
            tenant_id,
            client_secret: client_secret.map(Secret::new),
            certificate_path,
            federated_token_file,
            credential,
            scope,
            authority_host,
            allow_insecure: allow_insecure.filter(|a| *a),
            allow_unverified_tls: allow_unverified_tls.filter(|a| *a),
            timeout,
        };
        let inner = py.detach(move || pgentra::Connector::new(options)).map_err(|e| to_py_err(py, e))?;
        Ok(PyConnector { inner, last: std::sync::Mutex::new(None) })
    }

    /// The access token (acquired, or from the cache). Releases the GIL while it waits.
    fn token<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyString>> {
        // Fast path: the fresh cached token is the one whose string we hold (GIL kept).
        if let Some(serial) = self.inner.fresh_serial() {
            let last = self.last.lock().unwrap_or_else(|p| p.into_inner());
            if let Some((_, obj)) = last.as_ref().filter(|(s, _)| *s == serial) {
                return Ok(obj.bind(py).clone());
            }
        }
        let (serial, t) = match self.inner.try_token_serial() {
            Some((serial, t, _)) => (serial, t),
            None => py.detach(|| self.inner.token_with_serial()).map_err(|e| to_py_err(py, e))?,
        };
        let obj = secret_str(py, &t);
        *self.last.lock().unwrap_or_else(|p| p.into_inner()) = Some((serial, obj.clone().unbind()));
        Ok(obj)
    }

    /// Connection parameters with a current token (or the configured password) as a dict
    /// for `psycopg2.connect(**d)`: host, port (int), dbname, user, password, sslmode, and any
    /// other libpq parameter of the configuration. `overrides` replace keys (None removes).
    #[pyo3(signature = (**overrides))]
    fn conninfo<'py>(&self, py: Python<'py>, overrides: Option<&Bound<'py, PyDict>>) -> PyResult<Bound<'py, PyDict>> {
        let (libpq, rest) = split_overrides(py, overrides)?;
        let p = py.detach(|| self.inner.params_with(&libpq)).map_err(|e| to_py_err(py, e))?;
        let d = params_dict(py, &p)?;
        apply_overrides(&d, rest.as_ref().map(|r| r.bind(py)))?;
        Ok(d)
    }

    /// The connection string with a current token: libpq, uri, ado, jdbc, json or shell.
    #[pyo3(signature = (format="libpq"))]
    fn connection_string(&self, py: Python<'_>, format: &str) -> PyResult<String> {
        let f = Format::parse(format).map_err(|e| to_py_err(py, e))?;
        py.detach(|| self.inner.connection_string(f)).map_err(|e| to_py_err(py, e))
    }

    /// The database user: explicit, else configured, else from the token's claims.
    fn user(&self, py: Python<'_>) -> PyResult<String> {
        py.detach(|| self.inner.user()).map_err(|e| to_py_err(py, e))
    }

    /// Drop the cached token so that the next call acquires a new one.
    fn invalidate(&self) {
        self.inner.invalidate();
    }

    /// The server refused `rejected`: drop it only if it is still the cached one (and was not
    /// fetched right after another refusal). Returns whether it was dropped.
    fn invalidate_if(&self, py: Python<'_>, rejected: &str) -> bool {
        py.detach(|| self.inner.invalidate_if(rejected))
    }

    /// A connect with `token` failed; `sqlstate` and `used_password` are what the driver could
    /// tell (None: nothing). The core decides (pgentra::recovery) and returns whether to
    /// connect again, once, with a new token.
    #[pyo3(signature = (token, sqlstate=None, used_password=None))]
    fn _connect_failed(&self, py: Python<'_>, token: &str, sqlstate: Option<&str>, used_password: Option<bool>) -> bool {
        py.detach(|| self.inner.connect_failed(token, Failure::from_facts(sqlstate, used_password)))
    }

    /// What is known about the current token (acquiring one if needed); never the token.
    fn token_info<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let info = py.detach(|| self.inner.token_info()).map_err(|e| to_py_err(py, e))?;
        let d = PyDict::new(py);
        d.set_item("credential", info.credential.as_str())?;
        d.set_item("detail", info.detail)?;
        d.set_item("expires_on", info.expires_on)?;
        d.set_item("refresh_at", info.refresh_at)?;
        d.set_item("acquired_at", info.acquired_at)?;
        d.set_item("user", info.claims.as_ref().and_then(|c| c.user_name()).map(|(name, _)| name))?;
        Ok(d)
    }

    /// How many token requests this connector has made.
    #[getter]
    fn token_requests(&self) -> u64 {
        self.inner.token_requests()
    }

    /// Which credential serves this connector (a description; never a secret).
    #[getter]
    fn credential(&self) -> String {
        self.inner.credential_description()
    }

    /// True when a configured password is used and no token is ever requested.
    #[getter]
    fn password_mode(&self) -> bool {
        self.inner.is_password_mode()
    }

    /// The configured host (no token needed).
    #[getter]
    fn host(&self) -> Option<String> {
        self.inner.config().params.host.clone()
    }

    #[getter]
    fn port(&self) -> Option<u16> {
        self.inner.config().params.port
    }

    #[getter]
    fn dbname(&self) -> Option<String> {
        self.inner.config().params.dbname.clone()
    }

    #[getter]
    fn sslmode(&self) -> Option<&'static str> {
        self.inner.config().params.sslmode.map(SslMode::as_str)
    }

    #[getter]
    fn prefix(&self) -> String {
        self.inner.config().prefix.clone()
    }

    #[getter]
    fn scope(&self) -> String {
        self.inner.config().scope.clone()
    }

    fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
        // Python's own repr of each value; never a password, token or client secret.
        let r = |v: Option<&str>| -> PyResult<String> {
            match v {
                Some(s) => Ok(PyString::new(py, s).repr()?.to_string()),
                None => Ok("None".to_string()),
            }
        };
        let c = self.inner.config();
        Ok(format!(
            "Connector(host={}, port={}, dbname={}, user={}, prefix={}, credential={})",
            r(c.params.host.as_deref())?,
            c.params.port.map(|p| p.to_string()).unwrap_or_else(|| "None".into()),
            r(c.params.dbname.as_deref())?,
            r(c.params.user.as_deref())?,
            r(Some(&c.prefix))?,
            r(Some(&self.inner.credential_description()))?
        ))
    }

    /// Internal (used by `token_async`): the token now if it is cached, else None and
    /// `callback(error, token)` later from a pgentra thread.
    fn _start_token(&self, py: Python<'_>, callback: Py<PyAny>) -> PyResult<Option<Py<PyAny>>> {
        let c = self.inner.clone();
        let fut: CoreFuture<Secret> = Box::pin(async move { c.token_async().await });
        start(py, fut, callback, |py, t: Secret| Ok(secret_str(py, &t).into_any().unbind()))
    }

    /// Internal (used by `conninfo_async`): like `_start_token`, for `conninfo(**overrides)`.
    #[pyo3(signature = (callback, overrides=None))]
    fn _start_conninfo(&self, py: Python<'_>, callback: Py<PyAny>, overrides: Option<Py<PyDict>>) -> PyResult<Option<Py<PyAny>>> {
        let c = self.inner.clone();
        let (libpq, rest) = split_overrides(py, overrides.as_ref().map(|o| o.bind(py)))?;
        let fut: CoreFuture<ConnParams> = Box::pin(async move { c.params_with_async(&libpq).await });
        start(py, fut, callback, move |py, p: ConnParams| {
            let d = params_dict(py, &p)?;
            apply_overrides(&d, rest.as_ref().map(|o| o.bind(py)))?;
            Ok(d.into_any().unbind())
        })
    }
}

/// The core's reading of a failed connect's facts (pgentra::recovery): whether it may be the
/// server refusing the password.
#[pyfunction]
#[pyo3(signature = (sqlstate=None, used_password=None))]
fn _may_be_refusal(sqlstate: Option<&str>, used_password: Option<bool>) -> bool {
    Failure::from_facts(sqlstate, used_password).may_be_refusal()
}

#[pymodule]
fn _pgentra(m: &Bound<'_, PyModule>) -> PyResult<()> {
    pgentra::init_logging();
    let py = m.py();
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add_function(wrap_pyfunction!(_may_be_refusal, m)?)?;
    m.add_class::<PyConnector>()?;
    let base = py.get_type::<Error>();
    base.setattr("kind", py.None())?;
    base.setattr("kind_id", py.None())?;
    base.setattr("service_code", py.None())?;
    m.add("Error", base)?;
    for kind in ErrorKind::ALL {
        let cls = class_of(py, kind);
        cls.setattr("kind", kind.as_str())?;
        cls.setattr("kind_id", kind as u8)?;
        m.add(cls.name()?, cls)?;
    }
    Ok(())
}
