//! Request routing and the endpoint handlers.

use std::collections::{HashMap, HashSet, VecDeque};
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Mutex;
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http_body_util::{BodyExt as _, Limited};
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper::header::{HeaderValue, CONTENT_TYPE, RETRY_AFTER};
use hyper::{Method, Request, Response, StatusCode};
use serde::Serialize;
use serde_json::{json, Value};
use time::{OffsetDateTime, UtcOffset};

use crate::args::Fault;
use crate::identity::{self, Identity, Kind, Signer, SUBSCRIPTION_ID, TENANT_ID};
use crate::pg::PgSync;

mod control;
mod respond;
use respond::*;

pub type Resp = Response<EmuBody>;

/// A response body: whole, or (the `slow_body_ms` fault) in pieces with pauses between them.
pub struct EmuBody {
    chunks: VecDeque<Bytes>,
    len: u64,
    pause: Option<Duration>,
    sleep: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl EmuBody {
    fn full(b: Bytes) -> Self {
        let len = b.len() as u64;
        EmuBody { chunks: VecDeque::from([b]), len, pause: None, sleep: None }
    }

    /// The same bytes in `pieces` parts, with `total / pieces` before each.
    fn slow(self, total: Duration, pieces: usize) -> Self {
        let all: Vec<u8> = self.chunks.iter().flat_map(|c| c.iter().copied()).collect();
        let size = all.len().div_ceil(pieces.max(1)).max(1);
        let chunks = all.chunks(size).map(Bytes::copy_from_slice).collect::<VecDeque<_>>();
        let pause = total / (chunks.len().max(1) as u32);
        EmuBody { chunks, len: self.len, pause: Some(pause), sleep: None }
    }
}

impl Body for EmuBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        let this = &mut *self;
        if this.chunks.is_empty() {
            return Poll::Ready(None);
        }
        if let Some(pause) = this.pause {
            let sleep = this.sleep.get_or_insert_with(|| Box::pin(tokio::time::sleep(pause)));
            if sleep.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
            this.sleep = None;
        }
        Poll::Ready(this.chunks.pop_front().map(|c| Ok(Frame::data(c))))
    }

    fn is_end_stream(&self) -> bool {
        self.chunks.is_empty()
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.len)
    }
}

/// Returned by the service to make hyper close the connection without answering.
#[derive(Debug)]
pub struct Dropped;

impl std::fmt::Display for Dropped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("connection dropped by injected fault")
    }
}
impl std::error::Error for Dropped {}

/// A short note for the request log line (never a token or secret).
#[derive(Clone)]
struct Note(String);

/// Tokens with less than this left are not handed out again.
const REUSE_MARGIN_SECS: u64 = 300;
const MAX_BODY: usize = 1 << 20;

pub struct Config {
    pub identity_header: String,
    pub secret: String,
    pub lifetime: u64,
    pub refresh_in: Option<u64>,
    /// `https://127.0.0.1:Q`
    pub https_base: String,
    pub local_offset: UtcOffset,
    /// Azure Arc: the file named in the 401 challenge, and its content.
    pub arc_key_path: String,
    pub arc_key: String,
}

#[derive(Default, Serialize, Clone)]
struct Stats {
    msi_requests: u64,
    imds_requests: u64,
    entra_requests: u64,
    tokens_issued: u64,
    mint_requests: u64,
    /// LDAP binds (PostgreSQL logins with a token) accepted and refused.
    logins_accepted: u64,
    logins_refused: u64,
}

#[derive(Default)]
struct Shared {
    stats: Stats,
    faults: VecDeque<Fault>,
}

#[derive(Clone)]
struct Issued {
    token: String,
    iat: u64,
    exp: u64,
}

struct MintState {
    /// The token each identity and audience is handed out until it nears its expiry (so
    /// that clients' caches are observable through the request counters).
    cache: HashMap<(&'static str, String), Issued>,
    pg: Option<PgSync>,
}

/// Every token issued in this run, for the login check: the rotation generation it was issued
/// in (a rotation refuses every token of an earlier generation) and the revoked ones.
#[derive(Default)]
struct TokenBook {
    generation: u64,
    issued: HashMap<String, u64>,
    revoked: HashSet<String>,
}

/// The bind DN PostgreSQL sends is `LDAP_DN_PREFIX` + role name + `LDAP_DN_SUFFIX`
/// (pg_hba.conf: `ldapprefix="cn=" ldapsuffix=",dc=pgentra,dc=emulator"`).
pub const LDAP_DN_PREFIX: &str = "cn=";
pub const LDAP_DN_SUFFIX: &str = ",dc=pgentra,dc=emulator";

pub struct Emulator {
    cfg: Config,
    shared: Mutex<Shared>,
    mint: tokio::sync::Mutex<MintState>,
    signer: Signer,
    book: Mutex<TokenBook>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Endpoint {
    Msi,
    Imds,
    Entra,
}

/// What an injected fault asks the handler to do after the request was counted.
enum FaultAction {
    None,
    Respond(Resp),
    /// Answer with a token, shaped by the fault (empty token, expiry, refresh_in, slow body).
    Shape(Fault),
}

impl FaultAction {
    fn empty_token(&self) -> bool {
        matches!(self, FaultAction::Shape(f) if f.empty_token)
    }

    /// Applies the fault's changes to a token response body, then builds the response.
    fn finish(&self, mut body: Value, note: String) -> Resp {
        let FaultAction::Shape(f) = self else {
            return with_note(json_resp(200, &body), note);
        };
        let mut note = note;
        if let Some(r) = f.refresh_in {
            body["refresh_in"] = json!(r);
        }
        match f.expires.as_deref() {
            Some("missing") => {
                if let Some(o) = body.as_object_mut() {
                    o.remove("expires_on");
                    o.remove("expires_in");
                    o.remove("ext_expires_in");
                }
                note.push_str(", fault expires missing");
            }
            Some("past") => {
                let past = now_secs().saturating_sub(60);
                for (k, v) in [("expires_on", json!(past.to_string())), ("expires_in", json!(-60))] {
                    if body.get(k).is_some() || k == "expires_on" {
                        body[k] = v;
                    }
                }
                note.push_str(", fault expires past");
            }
            _ => {}
        }
        let mut r = json_resp(200, &body);
        if let Some(ms) = f.slow_body_ms {
            r = r.map(|b| b.slow(Duration::from_millis(ms), 8));
            note.push_str(", fault slow body");
        }
        with_note(r, note)
    }
}

impl Emulator {
    /// With `--pg-admin`: creates every identity's PostgreSQL role (LOGIN, no password) before
    /// any client connects, as on Azure, where the roles exist before their tokens do. The
    /// server checks tokens by asking the emulator over LDAP (see `ldap.rs`), so no password
    /// is ever set. Counters start at zero.
    pub async fn prepare_roles(&self) -> Result<(), String> {
        {
            let mut st = self.mint.lock().await;
            let Some(pg) = st.pg.as_mut() else { return Ok(()) };
            let roles: Vec<&str> = identity::IDENTITIES.iter().map(|i| i.role).collect();
            pg.ensure_roles(&roles).await?;
        }
        self.shared().stats = Stats::default();
        Ok(())
    }

    pub fn new(cfg: Config, pg_admin: Option<String>, faults: Vec<Fault>) -> Result<Self, String> {
        Ok(Emulator {
            cfg,
            shared: Mutex::new(Shared {
                stats: Stats::default(),
                faults: faults.into(),
            }),
            mint: tokio::sync::Mutex::new(MintState {
                cache: HashMap::new(),
                pg: pg_admin.map(PgSync::new),
            }),
            signer: Signer::generate()?,
            book: Mutex::new(TokenBook::default()),
        })
    }

    fn book(&self) -> std::sync::MutexGuard<'_, TokenBook> {
        self.book.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Mints and records a new token (never kept: see `token_for`).
    fn new_token(&self, ident: &'static Identity, aud: &str, lifetime: u64) -> Issued {
        let now = now_secs();
        let exp = now + lifetime;
        let minted = identity::mint(&self.signer, ident, aud, now, exp);
        {
            let mut book = self.book();
            let generation = book.generation;
            book.issued.insert(minted.uti, generation);
        }
        self.shared().stats.tokens_issued += 1;
        Issued { token: minted.token, iat: now, exp }
    }

    /// The login check behind the LDAP bind: `dn` names the role, `password` is the token.
    /// `Ok` names the identity; `Err` says why not (for the log; never the token).
    pub fn check_login(&self, dn: &[u8], password: &[u8]) -> Result<String, String> {
        let verdict = (|| {
            let dn = std::str::from_utf8(dn).map_err(|_| "the bind DN is not UTF-8".to_string())?;
            let role = dn
                .strip_prefix(LDAP_DN_PREFIX)
                .and_then(|r| r.strip_suffix(LDAP_DN_SUFFIX))
                .ok_or_else(|| format!("bind DN {dn:?} is not {LDAP_DN_PREFIX}<role>{LDAP_DN_SUFFIX}"))?;
            let token = std::str::from_utf8(password).map_err(|_| "the password is not UTF-8".to_string())?;
            let v = identity::verify(&self.signer, token.trim(), role, now_secs())
                .map_err(|e| format!("role {role:?}: {e}"))?;
            let book = self.book();
            match book.issued.get(&v.uti) {
                None => return Err(format!("role {role:?}: not a token of this run")),
                Some(g) if *g < book.generation => return Err(format!("role {role:?}: issued before a rotation")),
                Some(_) => {}
            }
            if book.revoked.contains(&v.uti) {
                return Err(format!("role {role:?}: revoked"));
            }
            Ok(format!("{role:?} as {}", v.ident.key))
        })();
        let mut sh = self.shared();
        match verdict {
            Ok(_) => sh.stats.logins_accepted += 1,
            Err(_) => sh.stats.logins_refused += 1,
        }
        verdict
    }

    fn shared(&self) -> std::sync::MutexGuard<'_, Shared> {
        self.shared.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Entry point for hyper: routes, logs one line, maps `Dropped` to a closed connection.
    pub async fn serve(&self, req: Request<Incoming>, tls: bool) -> Result<Resp, Dropped> {
        let method = req.method().clone();
        let path = req.uri().path().to_string();
        let result = if tls {
            self.route_https(req).await
        } else {
            self.route_http(req).await
        };
        match &result {
            Ok(r) => {
                let note = r
                    .extensions()
                    .get::<Note>()
                    .map(|n| format!(" ({})", n.0))
                    .unwrap_or_default();
                eprintln!(
                    "pgentra-emulator: {method} {path} {}{note}",
                    r.status().as_u16()
                );
            }
            Err(_) => eprintln!("pgentra-emulator: {method} {path} dropped (fault)"),
        }
        result
    }

    async fn route_http(&self, req: Request<Incoming>) -> Result<Resp, Dropped> {
        let path = req.uri().path().to_string();
        let method = req.method().clone();
        match (path.as_str(), &method) {
            ("/msi/token", &Method::GET) => self.msi(req).await,
            ("/metadata/identity/oauth2/token", &Method::GET) => self.imds(req).await,
            ("/arc/token", &Method::GET) => self.arc(req).await,
            ("/control/stats", &Method::GET) => Ok(self.stats()),
            ("/control/reset", &Method::POST) => Ok(self.reset()),
            ("/control/rotate", &Method::POST) => Ok(self.rotate().await),
            ("/control/faults", &Method::POST) => Ok(self.add_faults(req).await),
            ("/control/mint", &Method::GET) => Ok(self.control_mint(req, false).await),
            ("/control/current", &Method::GET) => Ok(self.control_mint(req, true).await),
            ("/control/revoke", &Method::POST) => Ok(self.revoke(req).await),
            ("/control/health", &Method::GET) | ("/", &Method::GET) => Ok(json_resp(
                200,
                &json!({"status": "ok", "service": "pgentra-emulator"}),
            )),
            (
                "/msi/token"
                | "/metadata/identity/oauth2/token"
                | "/control/stats"
                | "/control/reset"
                | "/control/rotate"
                | "/control/faults"
                | "/control/mint"
                | "/control/current"
                | "/control/revoke",
                _,
            ) => Ok(json_resp(405, &json!({"error": "method_not_allowed"}))),
            _ => Ok(json_resp(404, &json!({"error": "not_found", "path": path}))),
        }
    }

    async fn route_https(&self, req: Request<Incoming>) -> Result<Resp, Dropped> {
        let path = req.uri().path().to_string();
        let segs: Vec<&str> = path.trim_start_matches('/').split('/').collect();
        let method = req.method().clone();
        match (segs.as_slice(), &method) {
            ([tenant, "oauth2", "v2.0", "token"], &Method::POST) if !tenant.is_empty() => {
                let tenant = tenant.to_string();
                self.entra(req, &tenant).await
            }
            ([_, "oauth2", "v2.0", "token"], _) => Ok(aad_error(
                405,
                "invalid_request",
                900561,
                "The endpoint only accepts POST requests.",
            )),
            ([tenant, "v2.0", ".well-known", "openid-configuration"], &Method::GET) => {
                Ok(self.openid_configuration(tenant))
            }
            ([_, "discovery", "instance"], &Method::GET) => {
                Ok(self.instance_discovery(req.uri().query()))
            }
            ([_, "discovery", "v2.0", "keys"], &Method::GET) => {
                Ok(json_resp(200, &json!({"keys": [self.signer.jwk()]})))
            }
            _ => Ok(json_resp(404, &json!({"error": "not_found", "path": path}))),
        }
    }

    // ---- faults --------------------------------------------------------------------

    async fn take_fault(&self, ep: Endpoint) -> Result<FaultAction, Dropped> {
        let fault = self.shared().faults.pop_front();
        let Some(f) = fault else {
            return Ok(FaultAction::None);
        };
        if let Some(ms) = f.delay_ms {
            tokio::time::sleep(Duration::from_millis(ms)).await;
        }
        if f.drop {
            return Err(Dropped);
        }
        if let Some(body) = &f.body {
            let ct = f.content_type.as_deref().unwrap_or("application/json; charset=utf-8");
            let mut r = raw_resp(f.status.unwrap_or(200), ct, body.clone().into_bytes());
            for (k, v) in f.headers.iter().flatten() {
                if let (Ok(k), Ok(v)) = (hyper::header::HeaderName::from_bytes(k.as_bytes()), HeaderValue::from_str(v)) {
                    r.headers_mut().insert(k, v);
                }
            }
            return Ok(FaultAction::Respond(with_note(r, "fault body")));
        }
        if let Some(target) = &f.redirect {
            let mut r = raw_resp(f.status.unwrap_or(307), "text/plain", b"moved".to_vec());
            if let Ok(v) = HeaderValue::from_str(target) {
                r.headers_mut().insert(hyper::header::LOCATION, v);
            }
            return Ok(FaultAction::Respond(with_note(r, "fault redirect")));
        }
        if let Some(status) = f.status {
            let msg = format!("pgentra-emulator injected fault (HTTP {status})");
            let mut r = match ep {
                Endpoint::Msi => msi_error(status, &msg),
                Endpoint::Imds => imds_error(status, "temporarily_unavailable", &msg),
                Endpoint::Entra => aad_error(status, "temporarily_unavailable", 50196, &msg),
            };
            if let Some(secs) = f.retry_after {
                r.headers_mut().insert(RETRY_AFTER, HeaderValue::from(secs));
            }
            if let Some(v) = f.retry_after_date.as_deref().and_then(|d| HeaderValue::from_str(d).ok()) {
                r.headers_mut().insert(RETRY_AFTER, v);
            }
            return Ok(FaultAction::Respond(with_note(r, "fault")));
        }
        if f.bad_json {
            return Ok(FaultAction::Respond(with_note(
                raw_resp(
                    200,
                    "application/json; charset=utf-8",
                    b"{not json".to_vec(),
                ),
                "fault bad_json",
            )));
        }
        Ok(FaultAction::Shape(f))
    }

    // ---- tokens ---------------------------------------------------------------------

    /// Returns the kept token for identity+audience, or mints a new one and keeps it. The
    /// token endpoints hand out the kept token until it nears its expiry (as Azure's managed
    /// identity endpoints cache theirs), so the tests can count what clients request.
    async fn token_for(&self, ident: &'static Identity, aud: &str) -> (Issued, bool) {
        let mut st = self.mint.lock().await;
        let now = now_secs();
        let key = (ident.key, aud.to_string());
        if let Some(kept) = st.cache.get(&key) {
            if kept.exp >= now + REUSE_MARGIN_SECS {
                return (kept.clone(), false);
            }
        }
        let issued = self.new_token(ident, aud, self.cfg.lifetime);
        st.cache.insert(key, issued.clone());
        (issued, true)
    }

    fn empty_issued(&self) -> Issued {
        let now = now_secs();
        Issued {
            token: String::new(),
            iat: now,
            exp: now + self.cfg.lifetime,
        }
    }

    async fn issue(
        &self,
        fault: &FaultAction,
        ident: &'static Identity,
        aud: &str,
    ) -> (Issued, String) {
        if fault.empty_token() {
            return (self.empty_issued(), format!("{}, fault empty_token", ident.key));
        }
        let (i, fresh) = self.token_for(ident, aud).await;
        let note = format!("{}, {}", ident.key, if fresh { "new token" } else { "kept token" });
        (i, note)
    }

    // ---- App Service managed identity ----------------------------------------------

    async fn msi(&self, req: Request<Incoming>) -> Result<Resp, Dropped> {
        self.shared().stats.msi_requests += 1;
        let fault = match self.take_fault(Endpoint::Msi).await? {
            FaultAction::Respond(r) => return Ok(r),
            other => other,
        };
        let header_ok = req
            .headers()
            .get("x-identity-header")
            .is_some_and(|v| v.as_bytes() == self.cfg.identity_header.as_bytes());
        if !header_ok {
            return Ok(msi_error(
                401,
                "The X-IDENTITY-HEADER header is missing or does not match IDENTITY_HEADER.",
            ));
        }
        let q = Params(form_decode(req.uri().query().unwrap_or("")));
        if q.value("api-version").is_none() {
            return Ok(msi_error(
                400,
                "The api-version query parameter is required (e.g. api-version=2019-08-01).",
            ));
        }
        let Some(resource) = q.value("resource") else {
            return Ok(msi_error(400, "The resource query parameter is required."));
        };
        let res_id = q.value("mi_res_id").or_else(|| q.value("msi_res_id"));
        let Some(ident) =
            identity::managed_lookup(q.value("client_id"), q.value("principal_id"), res_id)
        else {
            return Ok(with_note(
                msi_error(400, "No User Assigned or Delegated Managed Identity found for specified ClientId/ResourceId/PrincipalId."),
                "unknown identity",
            ));
        };
        let aud = identity::audience(resource);
        let (issued, note) = self.issue(&fault, ident, &aud).await;
        let mut body = json!({
            "access_token": issued.token,
            "expires_on": issued.exp.to_string(),
            "resource": resource,
            "token_type": "Bearer",
            "client_id": ident.client_id,
        });
        if let Some(r) = self.cfg.refresh_in {
            body["refresh_in"] = json!(r);
        }
        Ok(fault.finish(body, note))
    }

    // ---- Azure Arc ------------------------------------------------------------------

    /// Arc's challenge: without `Authorization`, 401 naming a key file in
    /// `WWW-Authenticate: Basic realm=<file>`; with `Authorization: Basic <content>`, an
    /// IMDS-shaped token.
    async fn arc(&self, req: Request<Incoming>) -> Result<Resp, Dropped> {
        let auth = req.headers().get("authorization").and_then(|v| v.to_str().ok()).map(str::to_string);
        match auth {
            None => {
                let mut r = imds_error(401, "unauthorized", "Authorization header required");
                let challenge = format!("Basic realm={}", self.cfg.arc_key_path);
                if let Ok(v) = HeaderValue::from_str(&challenge) {
                    r.headers_mut().insert(hyper::header::WWW_AUTHENTICATE, v);
                }
                Ok(with_note(r, "arc challenge"))
            }
            Some(a) if a == format!("Basic {}", self.cfg.arc_key) => self.imds(req).await,
            Some(_) => Ok(with_note(imds_error(401, "unauthorized", "Invalid key"), "arc bad key")),
        }
    }

    // ---- IMDS -----------------------------------------------------------------------

    async fn imds(&self, req: Request<Incoming>) -> Result<Resp, Dropped> {
        self.shared().stats.imds_requests += 1;
        let fault = match self.take_fault(Endpoint::Imds).await? {
            FaultAction::Respond(r) => return Ok(r),
            other => other,
        };
        let metadata_ok = req
            .headers()
            .get("metadata")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.trim().eq_ignore_ascii_case("true"));
        if !metadata_ok {
            return Ok(imds_error(
                400,
                "invalid_request",
                "Required metadata header not specified",
            ));
        }
        let q = Params(form_decode(req.uri().query().unwrap_or("")));
        if q.value("api-version").is_none() {
            return Ok(imds_error(
                400,
                "invalid_request",
                "Required query variable 'api-version' is missing",
            ));
        }
        let Some(resource) = q.value("resource") else {
            return Ok(imds_error(
                400,
                "invalid_request",
                "Required query variable 'resource' is missing",
            ));
        };
        let Some(ident) = identity::managed_lookup(
            q.value("client_id"),
            q.value("object_id").or_else(|| q.value("principal_id")),
            q.value("msi_res_id").or_else(|| q.value("mi_res_id")),
        ) else {
            return Ok(with_note(
                imds_error(400, "invalid_request", "Identity not found"),
                "unknown identity",
            ));
        };
        let aud = identity::audience(resource);
        let (issued, note) = self.issue(&fault, ident, &aud).await;
        let expires_in = issued.exp.saturating_sub(now_secs());
        let mut body = json!({
            "access_token": issued.token,
            "client_id": ident.client_id,
            "expires_in": expires_in.to_string(),
            "expires_on": issued.exp.to_string(),
            "ext_expires_in": expires_in.to_string(),
            "not_before": issued.iat.to_string(),
            "resource": resource,
            "token_type": "Bearer",
        });
        if let Some(r) = self.cfg.refresh_in {
            body["refresh_in"] = json!(r);
        }
        Ok(fault.finish(body, note))
    }

    // ---- Entra ID v2 ----------------------------------------------------------------

    async fn entra(&self, req: Request<Incoming>, tenant: &str) -> Result<Resp, Dropped> {
        self.shared().stats.entra_requests += 1;
        let fault = match self.take_fault(Endpoint::Entra).await? {
            FaultAction::Respond(r) => return Ok(r),
            other => other,
        };
        let body = match Limited::new(req.into_body(), MAX_BODY).collect().await {
            Ok(b) => b.to_bytes(),
            Err(_) => {
                return Ok(aad_error(
                    400,
                    "invalid_request",
                    900144,
                    "The request body could not be read.",
                ))
            }
        };
        let f = Params(form_decode(&String::from_utf8_lossy(&body)));
        let Some(grant_type) = f.value("grant_type") else {
            return Ok(missing_param("grant_type"));
        };
        if grant_type != "client_credentials" {
            return Ok(aad_error(
                400,
                "unsupported_grant_type",
                70003,
                &format!("The app requested an unsupported grant type '{grant_type}'."),
            ));
        }
        let Some(client_id) = f.value("client_id") else {
            return Ok(missing_param("client_id"));
        };
        let Some(scope) = f.value("scope") else {
            return Ok(missing_param("scope"));
        };
        let scope = scope.trim();
        if !scope.ends_with("/.default") || scope.contains(' ') {
            return Ok(aad_error(
                400,
                "invalid_scope",
                1002012,
                &format!("The provided value for scope {scope} is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier (application ID URI)."),
            ));
        }
        let Some(ident) = identity::entra_by_client_id(client_id) else {
            return Ok(aad_error(
                400,
                "unauthorized_client",
                700016,
                &format!("Application with identifier '{client_id}' was not found in the directory '{tenant}'. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant. You may have sent your authentication request to the wrong tenant."),
            ));
        };
        let secret = f.get("client_secret");
        let assertion = f.value("client_assertion");
        let assertion_type = f.value("client_assertion_type");
        if secret.is_none() && assertion.is_none() {
            return Ok(aad_error(
                401,
                "invalid_client",
                7000218,
                "The request body must contain the following parameter: 'client_assertion' or 'client_secret'.",
            ));
        }
        if assertion.is_some() {
            if assertion_type.is_none() {
                return Ok(missing_param("client_assertion_type"));
            }
            if assertion_type != Some("urn:ietf:params:oauth:client-assertion-type:jwt-bearer") {
                return Ok(aad_error(
                    400,
                    "invalid_request",
                    50027,
                    "Invalid client_assertion_type; expected urn:ietf:params:oauth:client-assertion-type:jwt-bearer.",
                ));
            }
        }
        let bad_secret = || {
            aad_error(
                401,
                "invalid_client",
                7000215,
                &format!("Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '{}'.", ident.client_id),
            )
        };
        match ident.kind {
            Kind::Secret => match secret {
                Some(s) if s == self.cfg.secret => {}
                Some(_) => return Ok(bad_secret()),
                None => {
                    return Ok(aad_error(
                        401,
                        "invalid_client",
                        7000218,
                        "The request body must contain the following parameter: 'client_assertion' or 'client_secret'. (this application uses a client secret)",
                    ))
                }
            },
            Kind::Certificate | Kind::Federated => {
                let Some(a) = assertion else { return Ok(bad_secret()) };
                if ident.kind == Kind::Certificate {
                    if let Err((code, msg)) = identity::check_cert_assertion(a, ident.client_id, now_secs()) {
                        return Ok(aad_error(401, "invalid_client", code, &msg));
                    }
                }
            }
            Kind::Managed | Kind::Developer => unreachable!("not an Entra client-credentials identity"),
        }
        let aud = identity::audience(scope);
        let (issued, note) = self.issue(&fault, ident, &aud).await;
        let expires_in = issued.exp.saturating_sub(now_secs());
        let mut body = json!({
            "token_type": "Bearer",
            "expires_in": expires_in,
            "ext_expires_in": expires_in,
            "access_token": issued.token,
        });
        if let Some(r) = self.cfg.refresh_in {
            body["refresh_in"] = json!(r);
        }
        Ok(fault.finish(body, note))
    }

    fn openid_configuration(&self, tenant: &str) -> Resp {
        let base = &self.cfg.https_base;
        json_resp(
            200,
            &json!({
                "token_endpoint": format!("{base}/{tenant}/oauth2/v2.0/token"),
                "token_endpoint_auth_methods_supported": ["client_secret_post", "private_key_jwt", "client_secret_basic"],
                "jwks_uri": format!("{base}/{tenant}/discovery/v2.0/keys"),
                "response_modes_supported": ["query", "fragment", "form_post"],
                "subject_types_supported": ["pairwise"],
                "id_token_signing_alg_values_supported": ["RS256"],
                "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
                "scopes_supported": ["openid", "profile", "email", "offline_access"],
                "issuer": format!("{base}/{TENANT_ID}/v2.0"),
                "request_uri_parameter_supported": false,
                "userinfo_endpoint": format!("{base}/oidc/userinfo"),
                "authorization_endpoint": format!("{base}/{tenant}/oauth2/v2.0/authorize"),
                "device_authorization_endpoint": format!("{base}/{tenant}/oauth2/v2.0/devicecode"),
                "http_logout_supported": true,
                "frontchannel_logout_supported": true,
                "end_session_endpoint": format!("{base}/{tenant}/oauth2/v2.0/logout"),
                "claims_supported": ["sub", "iss", "aud", "exp", "iat", "nbf", "tid", "oid"],
                "tenant_region_scope": "NA",
                "cloud_instance_name": "microsoftonline.com",
                "cloud_graph_host_name": "graph.windows.net",
                "msgraph_host": "graph.microsoft.com",
            }),
        )
    }

    fn instance_discovery(&self, query: Option<&str>) -> Resp {
        let base = &self.cfg.https_base;
        let host = base.trim_start_matches("https://");
        let q = Params(form_decode(query.unwrap_or("")));
        let tenant = q
            .value("authorization_endpoint")
            .and_then(|a| a.strip_prefix(base.as_str()))
            .and_then(|rest| {
                rest.trim_start_matches('/')
                    .split('/')
                    .next()
                    .map(str::to_string)
            })
            .filter(|t| !t.is_empty())
            .unwrap_or_else(|| "common".to_string());
        json_resp(
            200,
            &json!({
                "tenant_discovery_endpoint": format!("{base}/{tenant}/v2.0/.well-known/openid-configuration"),
                "api-version": "1.1",
                "metadata": [{
                    "preferred_network": host,
                    "preferred_cache": host,
                    "aliases": [host],
                }],
            }),
        )
    }

}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decode() {
        let p = form_decode("a=b+c&resource=https%3A%2F%2Fx.y%2F&flag&bad=%zz%4");
        assert_eq!(p[0], ("a".into(), "b c".into()));
        assert_eq!(p[1].1, "https://x.y/");
        assert_eq!(p[2], ("flag".into(), "".into()));
        assert_eq!(p[3].1, "%zz%4");
    }

    fn emulator() -> Emulator {
        let cfg = Config {
            identity_header: "h".into(),
            secret: "s".into(),
            lifetime: 3600,
            refresh_in: None,
            https_base: "https://127.0.0.1:1".into(),
            local_offset: UtcOffset::UTC,
            arc_key_path: "/nonexistent".into(),
            arc_key: "k".into(),
        };
        Emulator::new(cfg, None, Vec::new()).unwrap()
    }

    fn dn(role: &str) -> Vec<u8> {
        format!("{LDAP_DN_PREFIX}{role}{LDAP_DN_SUFFIX}").into_bytes()
    }

    #[tokio::test]
    async fn login_check() {
        let emu = emulator();
        let sys = identity::by_key("system").unwrap();
        let app = dn("pgentra-app");
        // Two different tokens for the same identity both log in; so does the kept one.
        let a = emu.new_token(sys, identity::PG_AUDIENCE, 3600).token;
        let b = emu.new_token(sys, identity::PG_AUDIENCE, 3600).token;
        assert_ne!(a, b);
        assert!(emu.check_login(&app, a.as_bytes()).is_ok());
        assert!(emu.check_login(&app, b.as_bytes()).is_ok());
        let (kept, _) = emu.token_for(sys, identity::PG_AUDIENCE).await;
        assert!(emu.check_login(&app, kept.token.as_bytes()).is_ok());
        // The wrong DN shape, another identity's role, the wrong audience, a tampered token.
        assert!(emu.check_login(b"pgentra-app", a.as_bytes()).unwrap_err().contains("is not cn="));
        assert!(emu.check_login(&dn("pgentra-uami"), a.as_bytes()).unwrap_err().contains("a token of system"));
        let graph = emu.new_token(sys, "https://graph.microsoft.com", 3600).token;
        assert!(emu.check_login(&app, graph.as_bytes()).unwrap_err().contains("wrong audience"));
        let mut tampered = a.clone().into_bytes();
        let i = tampered.len() - 5;
        tampered[i] = if tampered[i] == b'A' { b'B' } else { b'A' };
        assert!(emu.check_login(&app, &tampered).is_err());
        assert!(emu.check_login(&app, &[0xff, 0xfe]).is_err());
        // Signed with this key but never recorded (not issued in this run): refused.
        let stray = identity::mint(&emu.signer, sys, identity::PG_AUDIENCE, now_secs(), now_secs() + 60).token;
        assert!(emu.check_login(&app, stray.as_bytes()).unwrap_err().contains("not a token of this run"));
        // Revoked: that one only.
        assert_eq!(emu.revoke_token(&a).await, Ok(0));
        assert!(emu.check_login(&app, a.as_bytes()).unwrap_err().contains("revoked"));
        assert!(emu.check_login(&app, b.as_bytes()).is_ok());
        assert!(emu.revoke_token(&stray).await.unwrap_err().contains("not a token of this emulator run"));
        // The kept token, revoked, is not handed out again: the next request gets a new one.
        let (kept2, _) = emu.token_for(sys, identity::PG_AUDIENCE).await;
        assert_eq!(emu.revoke_token(&kept2.token).await, Ok(1));
        let (next, fresh) = emu.token_for(sys, identity::PG_AUDIENCE).await;
        assert!(fresh && next.token != kept2.token, "a revoked kept token is not served again");
        assert!(emu.check_login(&app, next.token.as_bytes()).is_ok());
        // A rotation refuses every earlier token; later ones log in.
        assert_eq!(emu.rotate().await.status(), 200);
        assert!(emu.check_login(&app, b.as_bytes()).unwrap_err().contains("before a rotation"));
        assert!(emu.check_login(&app, kept.token.as_bytes()).is_err());
        let (after, fresh) = emu.token_for(sys, identity::PG_AUDIENCE).await;
        assert!(fresh, "the rotation dropped the kept token");
        assert!(emu.check_login(&app, after.token.as_bytes()).is_ok());
        let s = emu.shared().stats.clone();
        assert_eq!((s.logins_accepted, s.logins_refused), (6, 9));
    }

    #[tokio::test]
    async fn expired_tokens_are_refused() {
        let emu = emulator();
        let sys = identity::by_key("system").unwrap();
        let t = emu.new_token(sys, identity::PG_AUDIENCE, 1).token;
        assert!(emu.check_login(&dn("pgentra-app"), t.as_bytes()).is_ok());
        tokio::time::sleep(Duration::from_millis(2100)).await;
        assert!(emu.check_login(&dn("pgentra-app"), t.as_bytes()).unwrap_err().contains("expired"));
    }

    #[test]
    fn times() {
        assert_eq!(rfc3339_utc(0), "1970-01-01T00:00:00Z");
        assert_eq!(aad_timestamp(86_400 + 61), "1970-01-02 00:01:01Z");
    }
}
