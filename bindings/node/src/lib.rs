//! Node.js binding of pgentra: a napi-rs addon, thin over `crates/pgentra`.
//!
//! It converts types, maps the core's `ErrorKind` to error codes in one place (`to_js_error`),
//! and keeps identity requests off the event loop. The npm package's JavaScript layer
//! (`node/lib/index.js`) builds the public API (`getToken`, `pgConfig`, `Connector`,
//! `PgEntraError`, the Sequelize and Knex helpers) on top of the `NativeConnector` class here.
//!
//! How calls stay off the event loop: an async method first polls the core's own async call
//! (`token_async`, `params_async`, `connection_string_async`) once, on the JavaScript thread,
//! with a no-op waker. When the token is cached the core answers on that first poll without
//! I/O, so the method returns the value itself (no thread hop, no promise machinery). When it is
//! not, the core has by then handed the request to pgentra's own runtime; the half-polled future
//! moves onto that runtime and settles a promise (`JsDeferred`, a threadsafe function) when it
//! completes. Neither libuv's thread pool (which `dns.lookup` and `fs` share) nor a second tokio
//! runtime is used: 64 callers waiting on one slow identity request occupy no thread at all.

#![deny(clippy::all)]

use napi::bindgen_prelude::*;
use napi_derive::napi;
use pgentra::{ConnParams, CredentialKind, ErrorKind, Format, Options, Secret, SslMode};
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

// ---------------------------------------------------------------------------------------------
// Errors: the one place where core error kinds become JavaScript error codes.
// ---------------------------------------------------------------------------------------------

fn code_of(kind: ErrorKind) -> &'static str {
    match kind {
        ErrorKind::Config => "PGENTRA_CONFIG",
        ErrorKind::Credential => "PGENTRA_CREDENTIAL",
        ErrorKind::IdentityService => "PGENTRA_IDENTITY_SERVICE",
        ErrorKind::Network => "PGENTRA_NETWORK",
        ErrorKind::TlsPolicy => "PGENTRA_TLS_POLICY",
        ErrorKind::Database => "PGENTRA_DATABASE",
        ErrorKind::Internal => "PGENTRA_INTERNAL",
    }
}

/// A core error as a napi error whose message is `CODE: message` or `CODE [serviceCode]:
/// message`. The JavaScript layer (`fromNative` in node/lib/index.js) turns exactly this shape
/// into a `PgEntraError`. The core's messages never contain a token, secret or password.
fn to_js_error(e: pgentra::Error) -> Error {
    let service = e.code().map(|c| format!(" [{c}]")).unwrap_or_default();
    Error::new(Status::GenericFailure, format!("{}{service}: {}", code_of(e.kind()), e.message()))
}

fn config_error(message: impl Into<String>) -> Error {
    to_js_error(pgentra::Error::config(message))
}

fn internal_error(message: impl Into<String>) -> Error {
    to_js_error(pgentra::Error::new(ErrorKind::Internal, message))
}

/// The error codes, in the core's kind order (1..=7), for the JavaScript layer to export.
#[napi(catch_unwind)]
pub fn error_codes() -> Vec<String> {
    ErrorKind::ALL.iter().map(|k| code_of(*k).to_string()).collect()
}

// ---------------------------------------------------------------------------------------------
// Conversions
// ---------------------------------------------------------------------------------------------

/// Options for `new NativeConnector(options)`. Every field set here wins over the environment.
/// The JavaScript layer checks the types and rejects unknown keys before this conversion.
#[napi(object)]
#[derive(Default)]
pub struct ConnectorOptions {
    /// Variable prefix (default `AZURE_POSTGRESQL`, or `PGENTRA_PREFIX`).
    pub prefix: Option<String>,
    /// A connection string in libpq keyword/value, URI, ADO.NET or JDBC form.
    pub connection_string: Option<String>,
    pub host: Option<String>,
    pub port: Option<f64>,
    pub database: Option<String>,
    pub user: Option<String>,
    /// A password: secret mode, no identity request is made.
    pub password: Option<String>,
    pub sslmode: Option<String>,
    /// auto, password, client-secret, client-certificate, workload-identity, managed-identity,
    /// azure-cli, azd.
    pub credential: Option<String>,
    pub client_id: Option<String>,
    pub tenant_id: Option<String>,
    pub client_secret: Option<String>,
    pub certificate_path: Option<String>,
    pub federated_token_file: Option<String>,
    pub scope: Option<String>,
    pub authority_host: Option<String>,
    pub allow_insecure: Option<bool>,
    /// Keep `sslmode=require` for Azure servers instead of `verify-full`
    /// (`PGENTRA_ALLOW_UNVERIFIED_TLS`).
    pub allow_unverified_tls: Option<bool>,
    /// Total deadline for one token acquisition, retries included (default 30000).
    pub timeout_ms: Option<f64>,
}

fn to_options(o: ConnectorOptions) -> Result<Options> {
    let port = match o.port {
        None => None,
        Some(p) if p.fract() == 0.0 && (1.0..=65535.0).contains(&p) => Some(p as u16),
        Some(p) => {
            return Err(config_error(format!(
                "option 'port' is {p}, out of range; use a number from 1 to 65535 (Azure uses 5432)"
            )))
        }
    };
    let sslmode = match o.sslmode.as_deref() {
        None => None,
        Some(s) => Some(SslMode::parse(s).ok_or_else(|| {
            config_error(format!(
                "option 'sslmode' is '{s}'; use one of disable, allow, prefer, require, verify-ca, verify-full (Azure needs require or stricter)"
            ))
        })?),
    };
    let credential = match o.credential.as_deref() {
        None => None,
        Some(s) => Some(CredentialKind::parse(s).map_err(|_| {
            config_error(format!(
                "option 'credential' is '{s}'; use one of auto, password, client-secret, client-certificate, workload-identity, managed-identity, azure-cli, azd"
            ))
        })?),
    };
    let timeout = match o.timeout_ms {
        None => None,
        Some(ms) if ms.is_finite() && ms > 0.0 && ms <= 3_600_000.0 => Some(Duration::from_secs_f64(ms / 1000.0)),
        Some(ms) => {
            return Err(config_error(format!(
                "option 'timeoutMs' is {ms}; use a number of milliseconds above 0 and at most 3600000"
            )))
        }
    };
    Ok(Options {
        prefix: o.prefix,
        connection_string: o.connection_string,
        host: o.host,
        port,
        dbname: o.database,
        user: o.user,
        password: o.password.map(Secret::new),
        sslmode,
        client_id: o.client_id,
        tenant_id: o.tenant_id,
        client_secret: o.client_secret.map(Secret::new),
        certificate_path: o.certificate_path.map(Into::into),
        federated_token_file: o.federated_token_file.map(Into::into),
        credential,
        scope: o.scope,
        authority_host: o.authority_host,
        allow_insecure: o.allow_insecure,
        allow_unverified_tls: o.allow_unverified_tls.filter(|a| *a),
        timeout,
    })
}

/// Connection parameters. `password` is the configured password (secret mode) or a current
/// token; `extra` holds the other libpq keywords (e.g. `sslrootcert`, `application_name`).
#[napi(object)]
pub struct ConnectionParams {
    pub host: Option<String>,
    pub port: Option<u32>,
    pub database: Option<String>,
    pub user: Option<String>,
    pub password: Option<String>,
    pub sslmode: Option<String>,
    pub extra: HashMap<String, String>,
}

fn to_js_params(p: ConnParams) -> ConnectionParams {
    ConnectionParams {
        host: p.host,
        port: p.port.map(u32::from),
        database: p.dbname,
        user: p.user,
        password: p.password.map(|s| s.expose().to_string()),
        sslmode: p.sslmode.map(|s| s.as_str().to_string()),
        extra: p.extra.into_iter().collect(),
    }
}

fn overrides_of(o: Option<HashMap<String, Option<String>>>) -> Vec<(String, Option<String>)> {
    let mut v: Vec<(String, Option<String>)> = o.map(|m| m.into_iter().collect()).unwrap_or_default();
    v.sort();
    v
}

/// What a connector was configured with, before any token: never a password or token.
#[napi(object)]
pub struct ConnectorConfig {
    pub prefix: String,
    pub host: Option<String>,
    pub port: Option<u32>,
    pub database: Option<String>,
    /// The configured user; `undefined` when it will come from the token's claims.
    pub user: Option<String>,
    pub sslmode: Option<String>,
    pub extra: HashMap<String, String>,
    /// True in secret mode: a configured password is used and no identity request is made.
    pub password_mode: bool,
    /// Which credential is used, e.g. "managed identity (App Service, system-assigned)".
    pub credential: String,
    pub scope: String,
}

/// The current token's metadata; never the token. Times are Unix seconds.
#[napi(object)]
pub struct TokenInfo {
    pub credential: String,
    pub detail: String,
    pub expires_on: i64,
    pub refresh_at: i64,
    pub acquired_at: i64,
    /// The database user the token's claims name, when they name one.
    pub user: Option<String>,
}

fn format_of(format: Option<String>) -> Result<Format> {
    match format.as_deref() {
        None => Ok(Format::Libpq),
        Some(f) => Format::parse(f).map_err(|e| to_js_error(e.context("option 'format'"))),
    }
}

// ---------------------------------------------------------------------------------------------
// Off the event loop: poll once here, finish on pgentra's runtime.
// ---------------------------------------------------------------------------------------------

/// Run `fut` (a call into the core's async API). When it completes on its first poll (a cached
/// token: no I/O), return the value itself; otherwise continue it on pgentra's runtime and
/// return a promise that settles on the JavaScript thread.
fn settle<'env, T, J, F>(env: &'env Env, fut: F, to_js: fn(T) -> J) -> Result<Either<J, PromiseRaw<'env, J>>>
where
    F: Future<Output = pgentra::Result<T>> + Send + 'static,
    T: Send + 'static,
    J: ToNapiValue + 'static,
{
    let mut fut: Pin<Box<F>> = Box::pin(fut);
    let mut cx = Context::from_waker(Waker::noop());
    if let Poll::Ready(r) = fut.as_mut().poll(&mut cx) {
        return r.map(|v| Either::A(to_js(v))).map_err(to_js_error);
    }
    let rt = pgentra::runtime::runtime().map_err(to_js_error)?;
    let (deferred, promise) = env.create_deferred()?;
    // A separate task, so that a panic inside the core still settles the promise.
    let work = rt.spawn(fut);
    rt.spawn(async move {
        match work.await {
            Ok(Ok(v)) => deferred.resolve(move |_env| Ok(to_js(v))),
            Ok(Err(e)) => deferred.reject(to_js_error(e)),
            Err(e) => deferred.reject(internal_error(format!("the pgentra task failed: {e}"))),
        }
    });
    Ok(Either::B(PromiseRaw::new(env.raw(), promise.raw())))
}

// ---------------------------------------------------------------------------------------------
// The connector
// ---------------------------------------------------------------------------------------------

/// One database configuration and its token cache. The JavaScript `Connector` wraps this.
#[napi]
pub struct NativeConnector {
    inner: pgentra::Connector,
}

#[napi]
impl NativeConnector {
    /// From the environment (`AZURE_POSTGRESQL_*` or `options.prefix`), with `options` winning.
    #[napi(constructor, catch_unwind)]
    pub fn new(options: Option<ConnectorOptions>) -> Result<Self> {
        pgentra::init_logging();
        let options = to_options(options.unwrap_or_default())?;
        let inner = pgentra::Connector::new(options).map_err(to_js_error)?;
        Ok(NativeConnector { inner })
    }

    /// A fresh cached token: `[serial, token, until]`, where `until` (milliseconds since the
    /// epoch) is the token's refresh point: JavaScript may hand out its copy until then without
    /// calling in, and forgets it on `invalidate()`. `null` when no fresh token is cached.
    #[napi(catch_unwind, ts_return_type = "[number, string, number] | null")]
    pub fn cached_token(&self) -> Option<(i64, String, f64)> {
        let (serial, t, refresh_at) = self.inner.try_token_serial()?;
        Some((serial as i64, t.expose().to_string(), refresh_at as f64 * 1000.0))
    }

    /// The access token: the string itself when cached, else a promise.
    #[napi(catch_unwind, ts_return_type = "string | Promise<string>")]
    pub fn token<'env>(&self, env: &'env Env) -> Result<Either<String, PromiseRaw<'env, String>>> {
        // Fast path: a fresh cached token, with no future and no promise.
        if let Some(t) = self.inner.try_token() {
            return Ok(Either::A(t.expose().to_string()));
        }
        let c = self.inner.clone();
        settle(env, async move { c.token_async().await }, |t: Secret| t.expose().to_string())
    }

    /// The connection parameters with the password or a current token: the object itself when
    /// no request is needed, else a promise.
    #[napi(catch_unwind, ts_return_type = "ConnectionParams | Promise<ConnectionParams>")]
    pub fn params<'env>(
        &self,
        env: &'env Env,
        overrides: Option<HashMap<String, Option<String>>>,
    ) -> Result<Either<ConnectionParams, PromiseRaw<'env, ConnectionParams>>> {
        let c = self.inner.clone();
        let overrides = overrides_of(overrides);
        settle(env, async move { c.params_with_async(&overrides).await }, to_js_params)
    }

    /// The parameters as they will leave after `overrides` (libpq keywords; null removes one),
    /// without waiting for a token and without a password: the TLS policy applied.
    #[napi(catch_unwind)]
    pub fn settings(&self, overrides: Option<HashMap<String, Option<String>>>) -> Result<ConnectionParams> {
        self.inner.settings_with(&overrides_of(overrides)).map(to_js_params).map_err(to_js_error)
    }

    /// The connection string in `format` (libpq, uri, ado, jdbc, json, shell; default libpq):
    /// the string itself when no request is needed, else a promise.
    #[napi(catch_unwind, ts_return_type = "string | Promise<string>")]
    pub fn connection_string<'env>(
        &self,
        env: &'env Env,
        format: Option<String>,
    ) -> Result<Either<String, PromiseRaw<'env, String>>> {
        let format = format_of(format)?;
        let c = self.inner.clone();
        settle(env, async move { c.connection_string_async(format).await }, |s: String| s)
    }

    /// The connection string, blocking the calling thread while a token is acquired (only when
    /// none is cached).
    #[napi(catch_unwind)]
    pub fn connection_string_sync(&self, format: Option<String>) -> Result<String> {
        let format = format_of(format)?;
        self.inner.connection_string(format).map_err(to_js_error)
    }

    /// The current token's metadata (acquiring a token if needed). Always a promise.
    #[napi(catch_unwind, ts_return_type = "Promise<TokenInfo>")]
    pub fn token_info<'env>(&self, env: &'env Env) -> Result<PromiseRaw<'env, TokenInfo>> {
        let c = self.inner.clone();
        let rt = pgentra::runtime::runtime().map_err(to_js_error)?;
        let (deferred, promise) = env.create_deferred()?;
        // The async form: a blocking call on the runtime's own threads (its blocking pool
        // included) is refused when no token is cached yet.
        rt.spawn(async move {
            match c.token_info_async().await {
                Ok(i) => deferred.resolve(move |_env| {
                    Ok(TokenInfo {
                        credential: i.credential.as_str().to_string(),
                        detail: i.detail,
                        expires_on: i.expires_on,
                        refresh_at: i.refresh_at,
                        acquired_at: i.acquired_at,
                        user: i.claims.as_ref().and_then(|c| c.user_name()).map(|(u, _)| u),
                    })
                }),
                Err(e) => deferred.reject(to_js_error(e)),
            }
        });
        Ok(PromiseRaw::new(env.raw(), promise.raw()))
    }

    /// Drop the cached token so that the next call acquires a new one.
    #[napi(catch_unwind)]
    pub fn invalidate(&self) {
        self.inner.invalidate();
    }

    /// Drop the cached token only if it is `rejected` (the token the server refused), so that
    /// many connections refused together cause one new request. Returns whether it was dropped.
    #[napi(catch_unwind)]
    pub fn invalidate_if(&self, rejected: String) -> bool {
        self.inner.invalidate_if(&rejected)
    }

    /// A connect with `token` (the password this connector handed out) failed: whether to
    /// connect once more, by the core's rule (`Connector::connect_failed`). `sqlstate` is the
    /// server's SQLSTATE (none: unknown); `usedPassword` whether the failed connection sent the
    /// password (none: unknown). Makes no network request.
    #[napi(catch_unwind)]
    pub fn connect_failed(&self, token: String, sqlstate: Option<String>, used_password: Option<bool>) -> bool {
        self.inner.connect_failed(&token, pgentra::Failure::from_facts(sqlstate.as_deref(), used_password))
    }

    /// The number of token requests this connector has made.
    #[napi(getter, catch_unwind)]
    pub fn token_requests(&self) -> f64 {
        self.inner.token_requests() as f64
    }

    /// The configuration, before any token: never a password, a token or any other secret
    /// (`sslpassword` is left out). sslmode and sslrootcert are those the TLS policy gives.
    #[napi(catch_unwind)]
    pub fn config(&self) -> ConnectorConfig {
        let cfg = self.inner.config();
        let secured = self.inner.settings_with(&[]);
        let p = secured.as_ref().unwrap_or(&cfg.params);
        ConnectorConfig {
            prefix: cfg.prefix.clone(),
            host: p.host.clone(),
            port: p.port.map(u32::from),
            database: p.dbname.clone(),
            user: p.user.clone(),
            sslmode: p.sslmode.map(|s| s.as_str().to_string()),
            extra: p.extra.iter().filter(|(k, _)| !k.contains("password")).cloned().collect(),
            password_mode: self.inner.is_password_mode(),
            credential: self.inner.credential_description(),
            scope: cfg.scope.clone(),
        }
    }
}
