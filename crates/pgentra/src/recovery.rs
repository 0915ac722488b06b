//! What a binding does after a connect with our token failed: the one decision every
//! integration shares ("was that a refusal of the token we hold? then drop it and reconnect
//! once"), and the per-process registry of connectors keyed by their options.
//!
//! The decision reads facts, never message text (servers localize their messages):
//!
//! 1. The server's SQLSTATE, where the driver exposes it (asyncpg, psycopg on some paths,
//!    pgx, Npgsql, node-postgres, the proxy). `28P01` (invalid_password) is a refusal of the
//!    token; any other code is not, and nothing is renewed.
//! 2. Otherwise libpq's `PQconnectionUsedPassword` where the driver exposes the failed
//!    connection (psycopg 3's `OperationalError.pgconn.used_password`, ruby-pg's
//!    `PG::ConnectionBad#connection`): false means the failure came before the server asked
//!    for a password (network, TLS, pg_hba), so the token is not in question. Drivers that speak
//!    the protocol themselves (pgx, lib/pq, node-postgres, pgJDBC, Npgsql, the proxy) report
//!    every server refusal with its SQLSTATE, so when one of them has none, the server never
//!    judged the password: their bindings pass `UsedPassword(false)` then.
//! 3. Otherwise (libpq failures through psycopg2, PHP's pgsql and PDO, which report no
//!    SQLSTATE for a failed connect) the failure is **treated as a refusal**. The two mistakes
//!    cost very differently: taking an outage or a wrong database name for a refusal costs one
//!    identity request and one extra connect attempt, and then the new token is kept for
//!    `REFUSAL_HOLD` seconds (a token fetched after a refusal and refused again is not dropped
//!    again), so a persistent non-token failure costs at most one identity request per
//!    `REFUSAL_HOLD` per process, and no retry at all within that window. Taking a real
//!    refusal for something else leaves every connect failing until the token's own refresh
//!    point, up to an hour. The first is bounded and cheap, the second is an outage.

use crate::config::Options;
use crate::connector::Connector;
use crate::error::Result;
use std::collections::HashMap;
use std::sync::Mutex;

/// What the driver could tell about a failed connect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure<'a> {
    /// The server's SQLSTATE (e.g. from an ErrorResponse during authentication).
    Sqlstate(&'a str),
    /// No SQLSTATE; libpq's `PQconnectionUsedPassword` of the failed connection.
    UsedPassword(bool),
    /// Neither: a libpq-based driver that reports only a message.
    Unknown,
}

impl<'a> Failure<'a> {
    /// From optional facts, the stronger first: a SQLSTATE, then used-password, else unknown.
    /// An empty SQLSTATE counts as none.
    pub fn from_facts(sqlstate: Option<&'a str>, used_password: Option<bool>) -> Self {
        match (sqlstate.filter(|s| !s.is_empty()), used_password) {
            (Some(s), _) => Failure::Sqlstate(s),
            (None, Some(u)) => Failure::UsedPassword(u),
            (None, None) => Failure::Unknown,
        }
    }

    /// Whether this failure may be the server refusing the password (see the module text).
    pub fn may_be_refusal(self) -> bool {
        match self {
            Failure::Sqlstate(s) => s == "28P01",
            Failure::UsedPassword(used) => used,
            Failure::Unknown => true,
        }
    }
}

impl Connector {
    /// A connect with `token` (the password we handed out) failed for `failure`. Returns
    /// whether the caller should connect again, once, with fresh parameters: when the failure
    /// may be a refusal, this connector uses tokens, and the cache will hand out another token:
    /// `invalidate_if` dropped this one, or another caller already replaced it (concurrent
    /// refusals of one token drop it once, cause one identity request, and all reconnect).
    /// Not when the cache keeps the token (fetched right after another refusal and refused
    /// again within `REFUSAL_HOLD`: the refusal is about the role, not the token).
    pub fn connect_failed(&self, token: &str, failure: Failure<'_>) -> bool {
        if self.is_password_mode() || token.is_empty() || !failure.may_be_refusal() {
            return false;
        }
        let dropped = self.invalidate_if(token);
        let retry = dropped || self.try_token().is_none_or(|t| t.expose() != token);
        tracing::debug!(?failure, dropped, retry, "connect failed");
        retry
    }
}

/// At most this many connectors in the registry; past it, `shared` builds unshared ones
/// (an application that builds options per request, e.g. with a changing value, must not
/// grow the process without bound).
pub const REGISTRY_LIMIT: usize = 64;

static REGISTRY: Mutex<Option<HashMap<Vec<u8>, Connector>>> = Mutex::new(None);

/// The registry key of `o`: every field, length-prefixed, hashed (SHA-256) so that secrets
/// among the options (client secret, password) are never kept in the clear as a key.
fn key(o: &Options) -> Vec<u8> {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    let mut field = |name: &str, v: Option<&str>| {
        ctx.update(name.as_bytes());
        match v {
            None => ctx.update(&[0]),
            Some(s) => {
                ctx.update(&[1]);
                ctx.update(&(s.len() as u64).to_le_bytes());
                ctx.update(s.as_bytes());
            }
        }
    };
    let port = o.port.map(|p| p.to_string());
    let timeout = o.timeout.map(|t| t.as_nanos().to_string());
    let flag = |b: Option<bool>| b.map(|b| if b { "1" } else { "0" });
    field("prefix", o.prefix.as_deref());
    field("connection_string", o.connection_string.as_deref());
    field("host", o.host.as_deref());
    field("port", port.as_deref());
    field("dbname", o.dbname.as_deref());
    field("user", o.user.as_deref());
    field("password", o.password.as_ref().map(|s| s.expose()));
    field("sslmode", o.sslmode.map(|m| m.as_str()));
    field("client_id", o.client_id.as_deref());
    field("tenant_id", o.tenant_id.as_deref());
    field("client_secret", o.client_secret.as_ref().map(|s| s.expose()));
    field("certificate_path", o.certificate_path.as_ref().and_then(|p| p.to_str()));
    field("federated_token_file", o.federated_token_file.as_ref().and_then(|p| p.to_str()));
    field("credential", o.credential.map(|c| c.as_str()));
    field("scope", o.scope.as_deref());
    field("authority_host", o.authority_host.as_deref());
    field("allow_insecure", flag(o.allow_insecure));
    field("allow_unverified_tls", flag(o.allow_unverified_tls));
    field("timeout", timeout.as_deref());
    ctx.finish().as_ref().to_vec()
}

impl Connector {
    /// The process's connector for these options: the first call builds it (from the
    /// environment, options winning, as `new`), later calls with equal options return the same
    /// one and so share its token cache. For runtimes that drop every object between requests
    /// (PHP-FPM), where `new` per request would mean an identity request per request. A failed
    /// build is not kept. The environment is read once, by the first call.
    pub fn shared(options: Options) -> Result<Connector> {
        let k = key(&options);
        let mut slot = REGISTRY.lock().unwrap_or_else(|p| p.into_inner());
        let map = slot.get_or_insert_with(HashMap::new);
        if let Some(c) = map.get(&k) {
            return Ok(c.clone());
        }
        let c = Connector::new(options)?;
        if map.len() < REGISTRY_LIMIT {
            map.insert(k, c.clone());
        }
        Ok(c)
    }

    /// How many connectors `shared` holds (for tests and diagnostics).
    pub fn shared_count() -> usize {
        REGISTRY.lock().unwrap_or_else(|p| p.into_inner()).as_ref().map_or(0, HashMap::len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::tests::Counting;
    use crate::config::Config;
    use crate::Error;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    use std::sync::Arc;

    fn connector() -> (Connector, Arc<AtomicUsize>) {
        let calls = Arc::new(AtomicUsize::new(0));
        let env: std::collections::HashMap<String, String> =
            [("AZURE_POSTGRESQL_HOST", "h.example"), ("AZURE_POSTGRESQL_USER", "u")].iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        let config = Config::resolve(Options::default(), &env).map_err(|e: Error| e.to_string()).unwrap();
        let source = Counting { calls: calls.clone(), fail: Arc::new(AtomicBool::new(false)), lifetime: 3600, gate: None };
        (Connector::with_source(config, Box::new(source)), calls)
    }

    #[test]
    fn a_refusal_renews_once_and_late_callers_of_the_same_token_reconnect_too() {
        let (c, calls) = connector();
        let t0 = c.token().unwrap().expose().to_string();
        // Three connections refused with t0 at once: the first drops it, all three reconnect.
        assert!(c.connect_failed(&t0, Failure::Sqlstate("28P01")));
        assert!(c.connect_failed(&t0, Failure::Unknown));
        let t1 = c.token().unwrap().expose().to_string();
        assert!(c.connect_failed(&t0, Failure::UsedPassword(true)));
        assert_ne!(t0, t1);
        assert_eq!(calls.load(Ordering::SeqCst), 2, "one new token for all of them");
        // t1 was fetched right after a refusal and is refused too: kept, no reconnect.
        assert!(!c.connect_failed(&t1, Failure::Unknown));
        assert_eq!(c.token().unwrap().expose(), t1);
        // Not a refusal: nothing dropped, no reconnect.
        assert!(!c.connect_failed(&t1, Failure::Sqlstate("3D000")));
        assert!(!c.connect_failed(&t1, Failure::UsedPassword(false)));
        assert_eq!(calls.load(Ordering::SeqCst), 2);
    }

    #[test]
    fn only_28p01_or_a_used_password_or_no_facts_may_be_a_refusal() {
        assert!(Failure::from_facts(Some("28P01"), None).may_be_refusal());
        assert!(Failure::from_facts(Some("28P01"), Some(false)).may_be_refusal());
        assert!(!Failure::from_facts(Some("28000"), Some(true)).may_be_refusal());
        assert!(!Failure::from_facts(Some("08006"), None).may_be_refusal());
        assert!(!Failure::from_facts(Some("3D000"), None).may_be_refusal());
        assert!(Failure::from_facts(Some(""), Some(true)).may_be_refusal());
        assert!(!Failure::from_facts(None, Some(false)).may_be_refusal());
        assert!(Failure::from_facts(None, None).may_be_refusal());
    }

    #[test]
    fn keys_differ_by_every_value_and_hide_secrets() {
        let a = Options { host: Some("h".into()), client_id: Some("x".into()), ..Default::default() };
        let b = Options { host: Some("h".into()), client_id: Some("y".into()), ..Default::default() };
        let c = Options { host: Some("h".into()), client_id: Some("x".into()), ..Default::default() };
        assert_ne!(key(&a), key(&b));
        assert_eq!(key(&a), key(&c));
        // A value moved to another field is another key.
        let d = Options { host: Some("hx".into()), ..Default::default() };
        let e = Options { host: Some("h".into()), dbname: Some("x".into()), ..Default::default() };
        assert_ne!(key(&d), key(&e));
        let s = Options { client_secret: Some(crate::Secret::new("sekrit-value")), ..Default::default() };
        let k = key(&s);
        assert_eq!(k.len(), 32);
        assert!(!k.windows(6).any(|w| w == b"sekrit"));
    }
}
