//! The public entry point: one `Connector` per database configuration.

use crate::cache::{Cached, TokenCache};
use crate::claims::Claims;
use crate::config::{Config, CredentialKind, Env, Options};
use crate::conninfo::{ConnParams, Format};
use crate::error::{Error, ErrorKind, Result};
use crate::identity;
use crate::runtime;
use crate::conninfo::SslMode;
use crate::secret::Secret;
use crate::shared_cache;
use crate::tls::{self, TlsDecision};
use std::sync::Arc;

/// Apply a caller's values (libpq keywords) to `p`. Returns whether the caller set the
/// password (then it is theirs, and no token is attached).
fn apply_overrides(p: &mut ConnParams, overrides: &[(String, Option<String>)]) -> Result<bool> {
    let mut caller_password = false;
    for (k, v) in overrides {
        match (k.as_str(), v) {
            // Removing sslmode would let the driver fall back to PGSSLMODE or `prefer`: the
            // configured mode stays.
            ("sslmode", None) => {}
            ("password", Some(_)) => {
                caller_password = true;
                p.set_value(k, v.clone())?;
            }
            _ => p.set_value(k, v.clone())?,
        }
    }
    Ok(caller_password)
}

/// Reaches one Azure Database for PostgreSQL server with a password or an Entra ID token.
/// Cheap to clone; share one per process (it holds the token cache).
#[derive(Clone)]
pub struct Connector {
    inner: Arc<Inner>,
}

struct Inner {
    config: Config,
    cache: Option<Arc<TokenCache>>,
}

impl std::fmt::Debug for Connector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connector")
            .field("host", &self.inner.config.params.host)
            .field("credential", &self.credential_description())
            .finish_non_exhaustive()
    }
}

/// What `check` and `token --json` show about the current token. Never the token.
#[derive(Debug, Clone)]
pub struct TokenInfo {
    pub credential: CredentialKind,
    pub detail: String,
    pub expires_on: i64,
    pub refresh_at: i64,
    pub acquired_at: i64,
    pub claims: Option<Claims>,
}

impl Connector {
    /// From the process environment with the given variable prefix (default `AZURE_POSTGRESQL`).
    pub fn from_env(prefix: Option<&str>) -> Result<Connector> {
        Self::new(Options { prefix: prefix.map(str::to_string), ..Default::default() })
    }

    /// From the process environment, with values passed by code taking precedence.
    pub fn new(options: Options) -> Result<Connector> {
        Self::with_config(Config::from_env(options)?)
    }

    /// From an explicit variable source (tests, embedding).
    pub fn with_env(options: Options, env: &dyn Env) -> Result<Connector> {
        Self::with_config(Config::resolve(options, env)?)
    }

    pub fn with_config(config: Config) -> Result<Connector> {
        runtime::install_fork_handler();
        let cache = match identity::source_for(&config)? {
            Some(s) => Some(Arc::new(
                TokenCache::new(s, config.scope.clone(), config.timeout).with_shared(shared_cache::Shared::for_config(&config)),
            )),
            None => None,
        };
        Ok(Connector { inner: Arc::new(Inner { config, cache }) })
    }

    /// With a token source of the caller's own (a custom credential, or a test double).
    pub fn with_source(config: Config, source: Box<dyn identity::TokenSource>) -> Connector {
        runtime::install_fork_handler();
        let cache = Some(Arc::new(TokenCache::new(source, config.scope.clone(), config.timeout)));
        Connector { inner: Arc::new(Inner { config, cache }) }
    }

    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    /// True when a configured password is used and no identity request is ever made.
    pub fn is_password_mode(&self) -> bool {
        self.inner.cache.is_none()
    }

    pub fn credential_description(&self) -> String {
        match &self.inner.cache {
            None => "password from the configuration (secret mode)".to_string(),
            Some(c) => c.source().describe(),
        }
    }

    fn cache(&self) -> Result<&TokenCache> {
        self.inner.cache.as_deref().ok_or_else(|| {
            Error::config(format!(
                "a password is configured ({}_PASSWORD or password in the connection string), so pgentra uses it and acquires no token; remove it to use Entra ID",
                self.inner.config.prefix
            ))
        })
    }

    /// Whether this connector shares its tokens with this user's other processes: the shared
    /// entry's path, or why not (for `pgentra check`).
    pub fn shared_cache(&self) -> std::result::Result<std::path::PathBuf, String> {
        match &self.inner.cache {
            None => Err("a password is configured: no token to share".into()),
            Some(c) => match c.shared() {
                Some(sh) => Ok(sh.entry_path()),
                None => Err(shared_cache::why_not(&self.inner.config)),
            },
        }
    }

    /// The number of token requests this connector has made.
    pub fn token_requests(&self) -> u64 {
        self.inner.cache.as_ref().map(|c| c.requests()).unwrap_or(0)
    }

    async fn cached(inner: Arc<Inner>) -> Result<Arc<Cached>> {
        let cache = inner.cache.as_ref().ok_or_else(|| Error::config("no token in password mode"))?;
        if let Some(c) = cache.fresh() {
            return Ok(c);
        }
        cache.get().await
    }

    fn cached_blocking(&self) -> Result<Arc<Cached>> {
        let cache = self.cache()?;
        if let Some(c) = cache.fresh() {
            return Ok(c);
        }
        let inner = Arc::clone(&self.inner);
        runtime::block_on(Self::cached(inner))
    }

    async fn cached_async(&self) -> Result<Arc<Cached>> {
        let cache = self.cache()?;
        if let Some(c) = cache.fresh() {
            return Ok(c);
        }
        let inner = Arc::clone(&self.inner);
        runtime::spawn(Self::cached(inner)).await
    }

    /// The access token (blocking). Fresh reads take no lock.
    pub fn token(&self) -> Result<Secret> {
        if let Some(t) = self.inner.cache.as_ref().and_then(|c| c.fresh_token()) {
            return Ok(t);
        }
        Ok(self.cached_blocking()?.token.clone())
    }

    /// The current token only if it is not the one numbered `known_serial`: `(serial, None)`
    /// when the caller's copy is current, else `(serial, Some(token))`. Serials start at 1, so
    /// 0 always gets the token. Lets a binding keep one copy of the token in its own language
    /// and skip the copy on every call (the Go wrapper does).
    pub fn token_if_changed(&self, known_serial: u64) -> Result<(u64, Option<Secret>)> {
        let c = match self.inner.cache.as_ref().and_then(|c| c.fresh()) {
            Some(c) => c,
            None => self.cached_blocking()?,
        };
        if c.serial == known_serial {
            return Ok((c.serial, None));
        }
        Ok((c.serial, Some(c.token.clone())))
    }

    /// The access token with its serial number (blocking, like `token`).
    pub fn token_with_serial(&self) -> Result<(u64, Secret)> {
        let c = match self.inner.cache.as_ref().and_then(|c| c.fresh()) {
            Some(c) => c,
            None => self.cached_blocking()?,
        };
        Ok((c.serial, c.token.clone()))
    }

    /// The access token with its serial number (async; see `token_with_serial`).
    pub async fn token_with_serial_async(&self) -> Result<(u64, Secret)> {
        let c = self.cached_async().await?;
        Ok((c.serial, c.token.clone()))
    }

    /// The access token (async; the request runs on pgentra's own runtime).
    pub async fn token_async(&self) -> Result<Secret> {
        Ok(self.cached_async().await?.token.clone())
    }

    /// The current token's metadata (acquiring one if needed).
    pub fn token_info(&self) -> Result<TokenInfo> {
        let c = self.cached_blocking()?;
        Ok(Self::info(&c))
    }

    /// The current token's metadata (async; acquiring one if needed on pgentra's runtime). The
    /// form to use from a task of pgentra's own runtime, where `token_info` refuses to block.
    pub async fn token_info_async(&self) -> Result<TokenInfo> {
        let c = self.cached_async().await?;
        Ok(Self::info(&c))
    }

    fn info(c: &Cached) -> TokenInfo {
        TokenInfo {
            credential: c.credential,
            detail: c.detail.clone(),
            expires_on: c.expires_on,
            refresh_at: c.refresh_at,
            acquired_at: c.acquired_at,
            claims: c.claims.clone(),
        }
    }

    /// The cached token if it is fresh, without any I/O or waiting; `None` otherwise (then call
    /// `token` or `token_async`). Bindings use it for a fast path that never leaves the thread.
    pub fn try_token(&self) -> Option<Secret> {
        self.inner.cache.as_ref()?.fresh_token()
    }

    /// The serial number of the cached token when it is fresh (see `token_if_changed`): a
    /// binding holding the token of that serial can hand out its own copy. Never waits.
    pub fn fresh_serial(&self) -> Option<u64> {
        self.inner.cache.as_ref()?.fresh_serial()
    }

    /// A fresh cached token with its serial number and the time (Unix seconds) until which the
    /// cache serves it without asking anyone (its refresh point), or `None`. Never waits. A
    /// binding may hand out its own copy until then without calling in again, as long as it
    /// forgets the copy when it invalidates.
    pub fn try_token_serial(&self) -> Option<(u64, Secret, i64)> {
        let c = self.inner.cache.as_ref()?.fresh()?;
        Some((c.serial, c.token.clone(), TokenCache::refresh_at_wall(&c)))
    }

    /// The server refused `rejected` (SQLSTATE 28P01): drop it from the cache, unless another
    /// caller already replaced it. Returns whether it was dropped. Every integration's
    /// "refused, renew once, reconnect" path calls this, so concurrent refusals cause one
    /// identity request.
    pub fn invalidate_if(&self, rejected: &str) -> bool {
        match &self.inner.cache {
            Some(c) => c.invalidate_if(rejected),
            None => false,
        }
    }

    /// Drop this connector's cached token (wiped once nothing holds it) and nothing else: the
    /// token shared with the user's other processes, and a failure remembered for them, stay.
    /// For a binding's `close()` or release, where [`invalidate`](Self::invalidate) would
    /// remove the shared entry and make every process of the user ask again.
    pub fn forget(&self) {
        if let Some(c) = &self.inner.cache {
            c.forget();
        }
    }

    /// Drop the cached token so that the next call acquires a new one; the shared entry too
    /// when it holds the same token, and a failure remembered for the other processes.
    pub fn invalidate(&self) {
        if let Some(c) = &self.inner.cache {
            c.invalidate();
        }
    }

    fn assemble(&self, cached: Option<&Cached>, overrides: &[(String, Option<String>)]) -> Result<ConnParams> {
        let config = &self.inner.config;
        let mut p = config.params.clone();
        let caller_password = apply_overrides(&mut p, overrides)?;
        let Some(c) = cached.filter(|_| !caller_password) else {
            tls::secure(&mut p, config.tls_policy(), false)?;
            return Ok(p);
        };
        if p.user.is_none() {
            let derived = c.claims.as_ref().and_then(|cl| cl.user_name());
            match derived {
                Some((name, _)) => p.user = Some(name),
                None => {
                    return Err(Error::config(format!(
                        "cannot tell the database user: the token ({}) has no xms_mirid, upn, preferred_username or unique_name claim (service principal tokens never do); set {}_USER to the PostgreSQL role created for this identity (Service Connector names it aad_<connection name>)",
                        c.detail, config.prefix
                    )))
                }
            }
        }
        p.password = Some(c.token.clone());
        // The one check of what leaves pgentra, after every value is in place.
        tls::secure(&mut p, config.tls_policy(), true)?;
        Ok(p)
    }

    /// The connection parameters with the password or a current token (blocking).
    pub fn params(&self) -> Result<ConnParams> {
        self.params_with(&[])
    }

    /// The connection parameters with the password or a current token (async).
    pub async fn params_async(&self) -> Result<ConnParams> {
        self.params_with_async(&[]).await
    }

    /// The connection parameters after the caller's own values (libpq keywords; `None`
    /// removes a key), checked by the TLS policy as they will leave: a weaker sslmode never
    /// replaces a stricter one, and an Azure server gets `verify-full`. Every integration that
    /// lets its user add values passes them here rather than merging them afterwards.
    pub fn params_with(&self, overrides: &[(String, Option<String>)]) -> Result<ConnParams> {
        if self.is_password_mode() {
            return self.assemble(None, overrides);
        }
        self.precheck(overrides)?;
        let c = self.cached_blocking()?;
        self.assemble(Some(&c), overrides)
    }

    /// `params_with`, async.
    pub async fn params_with_async(&self, overrides: &[(String, Option<String>)]) -> Result<ConnParams> {
        if self.is_password_mode() {
            return self.assemble(None, overrides);
        }
        self.precheck(overrides)?;
        let c = self.cached_async().await?;
        self.assemble(Some(&c), overrides)
    }

    /// Refuse before any identity request what the final check would refuse anyway.
    fn precheck(&self, overrides: &[(String, Option<String>)]) -> Result<()> {
        let config = &self.inner.config;
        let mut p = config.params.clone();
        apply_overrides(&mut p, overrides)?;
        let mode = p.sslmode.unwrap_or(SslMode::Require);
        if !mode.guarantees_tls() && !config.allow_insecure {
            return tls::secure(&mut p, config.tls_policy(), true).map(|_| ());
        }
        Ok(())
    }

    /// The parameters as they will leave, after the caller's own values, without waiting for
    /// a token and without the password (unless the caller gave one): the TLS policy applied.
    /// For integrations that build a driver's configuration before the first connection
    /// (the token then comes per connection, through `params_with`).
    pub fn settings_with(&self, overrides: &[(String, Option<String>)]) -> Result<ConnParams> {
        let config = &self.inner.config;
        let mut p = config.params.clone();
        let caller_password = apply_overrides(&mut p, overrides)?;
        if !caller_password {
            p.password = None;
        }
        tls::secure(&mut p, config.tls_policy(), !self.is_password_mode() && !caller_password)?;
        Ok(p)
    }

    /// `settings_with`, plus the database user from the token's claims when none is configured
    /// (which may wait for a token): for drivers that send the user name before they ask for
    /// the password (pgJDBC's authentication plugin), so that a settings URL alone logs in as
    /// the identity's role rather than as the operating system's user. Without such a claim
    /// (a service principal) the user stays unset, for the caller to give.
    pub fn settings_with_user(&self, overrides: &[(String, Option<String>)]) -> Result<ConnParams> {
        let mut p = self.settings_with(overrides)?;
        if p.user.is_none() && !self.is_password_mode() {
            match self.params_with(overrides) {
                Ok(full) => p.user = full.user,
                // The settings were valid, so this is the token naming no user (a service
                // principal's never does): the caller gives the user to the driver itself.
                Err(e) if e.kind() == ErrorKind::Config => {}
                Err(e) => return Err(e),
            }
        }
        Ok(p)
    }

    /// `settings_with_user` rendered in `format`.
    pub fn settings_string_with_user(&self, format: Format, overrides: &[(String, Option<String>)]) -> Result<String> {
        Self::render(self.settings_with_user(overrides)?, format)
    }

    /// Which TLS rule applies to this connector's parameters and why (for `pgentra check`),
    /// without any identity request.
    pub fn tls_decision(&self) -> Result<TlsDecision> {
        let config = &self.inner.config;
        let mut p = config.params.clone();
        tls::secure(&mut p, config.tls_policy(), !self.is_password_mode())
    }

    /// Check parameters that an integration built itself from this connector's (for example
    /// a driver's own configuration object after its user's values were merged in) and
    /// complete them as they must leave: the same check as `params_with`.
    pub fn secure(&self, p: &mut ConnParams, token: bool) -> Result<TlsDecision> {
        tls::secure(p, self.inner.config.tls_policy(), token)
    }

    /// The connection string in the given format, with the password or a current token.
    pub fn connection_string(&self, format: Format) -> Result<String> {
        Self::render(self.params()?, format)
    }

    /// The connection string after the caller's own values (see `params_with`).
    pub fn connection_string_with(&self, format: Format, overrides: &[(String, Option<String>)]) -> Result<String> {
        Self::render(self.params_with(overrides)?, format)
    }

    /// The connection string as it will leave, without a password or token (see
    /// `settings_with`): for a driver configuration whose password comes per connection.
    pub fn settings_string_with(&self, format: Format, overrides: &[(String, Option<String>)]) -> Result<String> {
        Self::render(self.settings_with(overrides)?, format)
    }

    pub async fn connection_string_async(&self, format: Format) -> Result<String> {
        Self::render(self.params_async().await?, format)
    }

    fn render(p: ConnParams, format: Format) -> Result<String> {
        if format == Format::Jdbc {
            p.check_jdbc()?;
        }
        if format == Format::Pdo && !p.pdo_representable() {
            return Err(Error::config(
                "a value contains ';', which a PDO DSN cannot carry (PDO turns ';' into spaces); pass the user and password as PDO's constructor arguments instead",
            ));
        }
        Ok(p.render(format))
    }

    /// The database user (explicit, else configured, else from the token's claims).
    pub fn user(&self) -> Result<String> {
        self.params()?.user.ok_or_else(|| Error::new(ErrorKind::Config, "no user"))
    }
}
