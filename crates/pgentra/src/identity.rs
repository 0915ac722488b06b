//! Token sources: the credential chain.
//!
//! The HTTP protocols (App Service / Container Apps / Functions managed identity, IMDS, Arc, and
//! the Entra v2 token endpoint for client secret, certificate and federated credentials) are
//! spoken here directly, because the product needs what `azure_identity` 1.0 does not give:
//! `refresh_in`, strict response checks (no empty token, no missing lifetime), the service's
//! `AADSTS` code, a total deadline instead of an ~82 s retry policy, no second cache under ours,
//! a federated token file read on every request, and no silent fall-through to the metadata
//! address. The developer-tool credentials (Azure CLI, Azure Developer CLI) wrap
//! `azure_identity`, which runs and parses those tools well.

use crate::cloud::resource_of;
use crate::config::{Config, CredentialKind};
use crate::error::{Error, ErrorKind, Result};
use crate::runtime;
use crate::secret::Secret;
use azure_core::credentials::TokenCredential;
use base64::Engine;
use percent_encoding::{utf8_percent_encode, NON_ALPHANUMERIC};
use rand::Rng;
use serde_json::Value;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// A token as a source returns it.
#[derive(Debug, Clone)]
pub struct Token {
    pub secret: Secret,
    /// Unix seconds.
    pub expires_on: i64,
    /// Seconds after issue when a client should refresh, if the service said.
    pub refresh_in: Option<i64>,
    pub credential: CredentialKind,
    /// e.g. "managed identity (App Service endpoint, user-assigned client id from AZURE_POSTGRESQL_CLIENTID)"
    pub detail: String,
}

/// Wall-clock Unix seconds. On Linux the coarse clock (a vDSO read without `rdtsc`, a few
/// milliseconds of resolution) keeps the cache's fast path cheap; token lifetimes are in seconds.
#[inline]
pub fn now_unix() -> i64 {
    #[cfg(target_os = "linux")]
    {
        let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
        // SAFETY: clock_gettime writes into the timespec we own; CLOCK_REALTIME_COARSE exists
        // on every Linux since 2.6.32.
        if unsafe { libc::clock_gettime(libc::CLOCK_REALTIME_COARSE, &mut ts) } == 0 {
            return ts.tv_sec;
        }
    }
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
}

fn enc(s: &str) -> String {
    utf8_percent_encode(s, NON_ALPHANUMERIC).to_string()
}

/// The outcome of one attempt.
enum Attempt {
    Ok(Token),
    /// Worth another try, after at least this long (Retry-After).
    Transient(Error, Option<Duration>),
    Permanent(Error),
}

/// Retries `attempt` with exponential back-off and full jitter until `deadline`.
async fn with_retries<F, Fut>(deadline: Duration, mut attempt: F) -> Result<Token>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Attempt>,
{
    let start = Instant::now();
    let mut delay = Duration::from_millis(200);
    let mut tries = 0u32;
    loop {
        tries += 1;
        let remaining = deadline.saturating_sub(start.elapsed());
        let outcome = match tokio::time::timeout(remaining, attempt()).await {
            Ok(o) => o,
            Err(_) => {
                return Err(Error::new(
                    ErrorKind::Network,
                    format!("no token within the deadline of {:?} ({tries} attempts); raise PGENTRA_TIMEOUT or check the identity endpoint", deadline),
                ))
            }
        };
        match outcome {
            Attempt::Ok(t) => return Ok(t),
            Attempt::Permanent(e) => return Err(e),
            Attempt::Transient(e, retry_after) => {
                let jitter = rand::thread_rng().gen_range(0.5..1.0);
                let mut wait = delay.mul_f64(jitter);
                if let Some(ra) = retry_after {
                    wait = wait.max(ra);
                }
                let remaining = deadline.saturating_sub(start.elapsed());
                if wait >= remaining {
                    return Err(e.context(format!("gave up after {tries} attempts within {:?}", deadline)));
                }
                tracing::debug!(attempt = tries, wait_ms = wait.as_millis() as u64, error = %e, "transient identity error; retrying");
                tokio::time::sleep(wait).await;
                delay = (delay * 2).min(Duration::from_secs(8));
            }
        }
    }
}

fn classify_reqwest(e: reqwest::Error, what: &str) -> Attempt {
    // reqwest's Display can include the URL (never a secret here: secrets go in headers/bodies).
    let kind = if e.is_timeout() { "timed out" } else if e.is_connect() { "could not connect" } else { "failed" };
    let mut src: Option<&dyn std::error::Error> = std::error::Error::source(&e);
    let mut detail = String::new();
    while let Some(s) = src {
        detail = s.to_string();
        src = s.source();
    }
    // A certificate or handshake failure will not heal by retrying; a connection closed mid-way
    // (rustls reports a missing close_notify) is an ordinary network failure and will.
    let lower = detail.to_ascii_lowercase();
    let cut_short = lower.contains("close_notify") || lower.contains("unexpected eof");
    let tls = !cut_short && (lower.contains("certificate") || lower.contains("tls") || lower.contains("handshake"));
    let err = Error::new(
        if tls { ErrorKind::TlsPolicy } else { ErrorKind::Network },
        format!("{what}: request {kind}{}{}", if detail.is_empty() { "" } else { ": " }, detail),
    );
    if tls {
        Attempt::Permanent(err)
    } else {
        Attempt::Transient(err, None)
    }
}

fn retry_after(resp: &reqwest::Response) -> Option<Duration> {
    let v = resp.headers().get("retry-after")?.to_str().ok()?;
    v.trim().parse::<u64>().ok().map(|s| Duration::from_secs(s.min(60)))
}

fn num_or_str(v: Option<&Value>) -> Option<i64> {
    match v? {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse::<f64>().ok().map(|f| f as i64),
        _ => None,
    }
}

/// Parse a token response strictly: a non-empty token and a lifetime are required.
pub(crate) fn parse_token_response(body: &[u8], what: &str, credential: CredentialKind, detail: &str) -> Result<Token> {
    let v: Value = serde_json::from_slice(body)
        .map_err(|_| Error::new(ErrorKind::IdentityService, format!("{what} answered 200 with a body that is not JSON")))?;
    let token = v
        .get("access_token")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| Error::new(ErrorKind::IdentityService, format!("{what} answered 200 without an access_token")))?;
    let now = now_unix();
    let expires_on = if let Some(e) = num_or_str(v.get("expires_on")) {
        e
    } else if let Some(i) = num_or_str(v.get("expires_in")) {
        now + i
    } else {
        return Err(Error::new(
            ErrorKind::IdentityService,
            format!("{what} answered without expires_on or expires_in; a token of unknown lifetime is not cached"),
        ));
    };
    let refresh_in = num_or_str(v.get("refresh_in")).filter(|r| *r > 0);
    Ok(Token { secret: Secret::new(token), expires_on, refresh_in, credential, detail: detail.to_string() })
}

/// Turn an error response into an error with the service's code and description.
pub(crate) fn service_error(status: u16, body: &[u8], what: &str, hint: &str) -> Error {
    let v: Option<Value> = serde_json::from_slice(body).ok();
    let desc = v
        .as_ref()
        .and_then(|v| {
            v.get("error_description")
                .or_else(|| v.get("message"))
                .or_else(|| v.get("error").and_then(|e| e.get("message")))
                .and_then(Value::as_str)
                .map(str::to_string)
        })
        .unwrap_or_default();
    let first_line = desc.lines().next().unwrap_or("").trim().to_string();
    let code = first_line
        .split(|c: char| !c.is_ascii_alphanumeric())
        .find(|w| w.starts_with("AADSTS"))
        .map(str::to_string)
        .or_else(|| v.as_ref().and_then(|v| v.get("error")).and_then(Value::as_str).map(str::to_string));
    let mut msg = format!("{what} answered HTTP {status}");
    if !first_line.is_empty() {
        msg.push_str(": ");
        msg.push_str(&first_line);
    }
    if !hint.is_empty() {
        msg.push_str("; ");
        msg.push_str(hint);
    }
    let mut e = Error::new(ErrorKind::IdentityService, msg);
    if let Some(c) = code {
        e = e.with_code(c);
    }
    e
}

/// A 3xx answer: identity requests never follow redirects (the request carries the identity
/// header, a client secret or assertion, or a federated token). The error names the status and
/// the target's host, never the whole target (its query could carry anything).
fn redirect_refused(resp: &reqwest::Response, what: &str) -> Option<Attempt> {
    let status = resp.status().as_u16();
    if !(300..400).contains(&status) {
        return None;
    }
    let target = resp
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .map(|l| match reqwest::Url::parse(l).or_else(|_| resp.url().join(l)) {
            Ok(u) => u.host_str().map(|h| format!("host {h}")).unwrap_or_else(|| "a target without a host".to_string()),
            Err(_) => "an unreadable target".to_string(),
        })
        .unwrap_or_else(|| "no Location".to_string());
    Some(Attempt::Permanent(Error::new(
        ErrorKind::IdentityService,
        format!("{what} answered HTTP {status}, a redirect to {target}; identity requests never follow redirects, so nothing was sent there; check IDENTITY_ENDPOINT / AZURE_AUTHORITY_HOST"),
    )))
}

fn is_transient_status(status: u16, imds: bool) -> bool {
    status == 429 || status >= 500 || (imds && (status == 404 || status == 410))
}

/// A source of tokens for one scope.
#[async_trait::async_trait]
pub trait TokenSource: Send + Sync {
    async fn fetch(&self, scope: &str, deadline: Duration) -> Result<Token>;
    fn kind(&self) -> CredentialKind;
    fn describe(&self) -> String;
}

// ---------------------------------------------------------------------------------------------
// Managed identity
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MiHost {
    AppService,
    Arc,
    Imds,
}

pub struct ManagedIdentity {
    host: MiHost,
    endpoint: String,
    header: Option<Secret>,
    client_id: Option<String>,
    client_id_var: Option<String>,
    /// In the automatic chain, probing for IMDS gives up after about a second.
    probe: bool,
}

impl ManagedIdentity {
    pub fn from_config(c: &Config, probe: bool) -> Result<ManagedIdentity> {
        let (host, endpoint) = match (&c.identity_endpoint, &c.imds_endpoint) {
            (Some(ep), Some(_)) => (MiHost::Arc, ep.clone()),
            (Some(ep), None) => {
                if c.identity_header.is_none() {
                    return Err(Error::config(
                        "IDENTITY_ENDPOINT is set but IDENTITY_HEADER is not: the managed identity endpoint needs both (App Service, Functions and Container Apps set them together); unset IDENTITY_ENDPOINT or set IDENTITY_HEADER",
                    ));
                }
                (MiHost::AppService, ep.clone())
            }
            (None, _) => (MiHost::Imds, format!("{}/metadata/identity/oauth2/token", c.imds_base)),
        };
        if !(endpoint.starts_with("http://") || endpoint.starts_with("https://")) {
            return Err(Error::config(format!("IDENTITY_ENDPOINT '{endpoint}' is not an http URL")));
        }
        // A client id means a user-assigned identity, unless it belongs to a secret (then it is a
        // service principal, handled elsewhere).
        Ok(ManagedIdentity {
            host,
            endpoint,
            header: c.identity_header.clone(),
            client_id: c.client_id.clone(),
            client_id_var: c.client_id_var.clone(),
            probe,
        })
    }

    fn what(&self) -> String {
        let host = match self.host {
            MiHost::AppService => "App Service managed identity endpoint (IDENTITY_ENDPOINT)",
            MiHost::Arc => "Azure Arc managed identity endpoint",
            MiHost::Imds => "instance metadata service (IMDS)",
        };
        match (&self.client_id, &self.client_id_var) {
            (Some(id), Some(var)) => format!("{host}, user-assigned identity {id} from {var}"),
            (Some(id), None) => format!("{host}, user-assigned identity {id}"),
            _ => format!("{host}, system-assigned identity"),
        }
    }

    async fn attempt(&self, client: &reqwest::Client, resource: &str) -> Attempt {
        let what = self.what();
        let (api, id_param) = match self.host {
            MiHost::AppService => ("2019-08-01", "client_id"),
            MiHost::Arc => ("2020-06-01", "client_id"),
            MiHost::Imds => ("2018-02-01", "client_id"),
        };
        let mut url = format!("{}?api-version={api}&resource={}", self.endpoint, enc(resource));
        if let Some(id) = &self.client_id {
            url.push_str(&format!("&{id_param}={}", enc(id)));
        }
        let mut req = client.get(&url);
        match self.host {
            MiHost::AppService => {
                if let Some(h) = &self.header {
                    req = req.header("X-IDENTITY-HEADER", h.expose());
                }
            }
            MiHost::Arc | MiHost::Imds => req = req.header("Metadata", "true"),
        }
        if self.probe && self.host == MiHost::Imds {
            req = req.timeout(Duration::from_secs(1));
        }
        let resp = match req.send().await {
            Ok(r) => r,
            Err(e) => {
                if self.probe && self.host == MiHost::Imds {
                    return Attempt::Permanent(Error::credential(format!("{what}: not reachable (not an Azure VM)")));
                }
                return classify_reqwest(e, &what);
            }
        };
        let status = resp.status().as_u16();
        if self.host == MiHost::Arc && status == 401 {
            // The Arc challenge: read the file named in the realm and send its content back.
            let realm = resp
                .headers()
                .get("www-authenticate")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.split_once("realm=").map(|(_, r)| r.trim().trim_matches('"').to_string()));
            let Some(path) = realm else {
                return Attempt::Permanent(Error::new(ErrorKind::IdentityService, format!("{what}: 401 without a Basic realm challenge")));
            };
            // Read only what an Arc agent would name: a small `.key` file in its token folder.
            let allowed_dir = std::env::var("PGENTRA_ARC_KEY_DIR").unwrap_or_else(|_| "/var/opt/azcmagent/tokens".to_string());
            let p = std::path::Path::new(&path);
            let in_dir = p.parent().map(|d| d == std::path::Path::new(allowed_dir.trim_end_matches('/'))).unwrap_or(false);
            if !in_dir || p.extension().and_then(|e| e.to_str()) != Some("key") {
                return Attempt::Permanent(Error::credential(format!(
                    "{what}: the challenge names {path}, which is not a .key file in {allowed_dir}; refusing to read it"
                )));
            }
            let secret = match std::fs::metadata(p) {
                Ok(m) if m.len() > 4096 => {
                    return Attempt::Permanent(Error::credential(format!("{what}: the challenge file {path} is larger than 4096 bytes")))
                }
                _ => match std::fs::read_to_string(p) {
                    Ok(s) => Secret::new(s.trim().to_string()),
                    Err(e) => return Attempt::Permanent(Error::credential(format!("{what}: cannot read the challenge file {path}: {e}"))),
                },
            };
            let req = client.get(&url).header("Metadata", "true").header("Authorization", format!("Basic {}", secret.expose()));
            let resp = match req.send().await {
                Ok(r) => r,
                Err(e) => return classify_reqwest(e, &what),
            };
            return self.finish(resp, &what).await;
        }
        self.finish(resp, &what).await
    }

    async fn finish(&self, resp: reqwest::Response, what: &str) -> Attempt {
        if let Some(refused) = redirect_refused(&resp, what) {
            return refused;
        }
        let status = resp.status().as_u16();
        let ra = retry_after(&resp);
        let body = match resp.bytes().await {
            Ok(b) => b,
            Err(e) => return classify_reqwest(e, what),
        };
        if status == 200 {
            return match parse_token_response(&body, what, CredentialKind::ManagedIdentity, what) {
                Ok(t) => Attempt::Ok(t),
                Err(e) => Attempt::Permanent(e),
            };
        }
        let hint = if self.client_id.is_some() {
            "check that the user-assigned identity with this client id is assigned to this app"
        } else {
            "check that a system-assigned identity is enabled, or set AZURE_POSTGRESQL_CLIENTID for a user-assigned one"
        };
        let err = service_error(status, &body, what, hint);
        if is_transient_status(status, self.host == MiHost::Imds) {
            Attempt::Transient(err, ra)
        } else {
            Attempt::Permanent(err)
        }
    }
}

#[async_trait::async_trait]
impl TokenSource for ManagedIdentity {
    async fn fetch(&self, scope: &str, deadline: Duration) -> Result<Token> {
        let client = runtime::http_client()?;
        let resource = resource_of(scope).to_string();
        with_retries(deadline, || self.attempt(&client, &resource)).await
    }
    fn kind(&self) -> CredentialKind {
        CredentialKind::ManagedIdentity
    }
    fn describe(&self) -> String {
        format!("managed identity via the {}", self.what())
    }
}

// ---------------------------------------------------------------------------------------------
// Entra v2 (client secret, certificate, federated token)
// ---------------------------------------------------------------------------------------------

enum Proof {
    Secret(Secret),
    Certificate { key: Arc<ring::rsa::KeyPair>, x5t: String, path: String },
    FederatedFile(std::path::PathBuf),
}

pub struct Entra {
    endpoint: String,
    client_id: String,
    proof: Proof,
    kind: CredentialKind,
}

impl Entra {
    pub fn from_config(c: &Config, kind: CredentialKind) -> Result<Entra> {
        let (cid_hint, tid_hint) = (
            format!("{}_CLIENTID or AZURE_CLIENT_ID", c.prefix),
            format!("{}_TENANTID or AZURE_TENANT_ID", c.prefix),
        );
        let client_id = c.client_id.clone().filter(|s| !s.is_empty()).ok_or_else(|| {
            Error::config(format!("{} needs a client id: set {cid_hint}", kind.as_str()))
        })?;
        let tenant = c.tenant_id.clone().filter(|s| !s.is_empty()).ok_or_else(|| {
            Error::config(format!("{} needs a tenant id: set {tid_hint}", kind.as_str()))
        })?;
        if !tenant.chars().all(|ch| ch.is_ascii_alphanumeric() || ch == '-' || ch == '.') {
            return Err(Error::config(format!("tenant id '{tenant}' is not a GUID or domain: check {tid_hint}")));
        }
        let proof = match kind {
            CredentialKind::ClientSecret => Proof::Secret(c.client_secret.clone().ok_or_else(|| {
                Error::config(format!("client-secret needs a secret: set {}_CLIENTSECRET or AZURE_CLIENT_SECRET", c.prefix))
            })?),
            CredentialKind::ClientCertificate => {
                let path = c.certificate_path.clone().ok_or_else(|| {
                    Error::config("client-certificate needs AZURE_CLIENT_CERTIFICATE_PATH (a PEM file with the certificate and its private key)")
                })?;
                let (key, x5t) = load_certificate(&path, c.certificate_password.is_some())?;
                Proof::Certificate { key: Arc::new(key), x5t, path: path.display().to_string() }
            }
            CredentialKind::WorkloadIdentity => Proof::FederatedFile(c.federated_token_file.clone().ok_or_else(|| {
                Error::config("workload-identity needs AZURE_FEDERATED_TOKEN_FILE (set by the AKS workload identity webhook)")
            })?),
            _ => return Err(Error::new(ErrorKind::Internal, "Entra source built for a non-Entra credential")),
        };
        Ok(Entra { endpoint: format!("{}/{}/oauth2/v2.0/token", c.authority_host, tenant), client_id, proof, kind })
    }

    fn what(&self) -> String {
        format!("Microsoft Entra ID ({}, client id {})", self.kind.as_str(), self.client_id)
    }

    fn assertion(&self) -> Result<Option<Secret>> {
        match &self.proof {
            Proof::Secret(_) => Ok(None),
            Proof::FederatedFile(p) => {
                // Re-read every time: the kubelet rotates the file.
                let s = std::fs::read_to_string(p).map_err(|e| {
                    Error::credential(format!("cannot read AZURE_FEDERATED_TOKEN_FILE {}: {e}", p.display()))
                })?;
                let s = s.trim().to_string();
                if s.is_empty() {
                    return Err(Error::credential(format!("AZURE_FEDERATED_TOKEN_FILE {} is empty", p.display())));
                }
                Ok(Some(Secret::new(s)))
            }
            Proof::Certificate { key, x5t, path } => {
                let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
                let now = now_unix();
                let jti: String = (0..16).map(|_| format!("{:02x}", rand::thread_rng().gen::<u8>())).collect();
                let header = serde_json::json!({"alg": "RS256", "typ": "JWT", "x5t": x5t});
                let payload = serde_json::json!({
                    "aud": self.endpoint, "iss": self.client_id, "sub": self.client_id,
                    "jti": jti, "nbf": now, "iat": now, "exp": now + 600,
                });
                let signing_input = format!("{}.{}", b64.encode(header.to_string()), b64.encode(payload.to_string()));
                let mut sig = vec![0u8; key.public().modulus_len()];
                key.sign(&ring::signature::RSA_PKCS1_SHA256, &ring::rand::SystemRandom::new(), signing_input.as_bytes(), &mut sig)
                    .map_err(|_| Error::credential(format!("signing the client assertion with the key in {path} failed")))?;
                Ok(Some(Secret::new(format!("{signing_input}.{}", b64.encode(sig)))))
            }
        }
    }

    async fn attempt(&self, client: &reqwest::Client, scope: &str) -> Attempt {
        let what = self.what();
        let assertion = match self.assertion() {
            Ok(a) => a,
            Err(e) => return Attempt::Permanent(e),
        };
        let mut body = format!("grant_type=client_credentials&client_id={}&scope={}", enc(&self.client_id), enc(scope));
        match (&self.proof, &assertion) {
            (Proof::Secret(s), _) => body.push_str(&format!("&client_secret={}", enc(s.expose()))),
            (_, Some(a)) => body.push_str(&format!(
                "&client_assertion_type={}&client_assertion={}",
                enc("urn:ietf:params:oauth:client-assertion-type:jwt-bearer"),
                enc(a.expose())
            )),
            _ => {}
        }
        let body = Secret::new(body);
        let resp = client
            .post(&self.endpoint)
            .header("Content-Type", "application/x-www-form-urlencoded")
            .body(body.expose().to_string())
            .send()
            .await;
        let resp = match resp {
            Ok(r) => r,
            Err(e) => return classify_reqwest(e, &what),
        };
        if let Some(refused) = redirect_refused(&resp, &what) {
            return refused;
        }
        let status = resp.status().as_u16();
        let ra = retry_after(&resp);
        let bytes = match resp.bytes().await {
            Ok(b) => b,
            Err(e) => return classify_reqwest(e, &what),
        };
        if status == 200 {
            return match parse_token_response(&bytes, &what, self.kind, &what) {
                Ok(t) => Attempt::Ok(t),
                Err(e) => Attempt::Permanent(e),
            };
        }
        let hint = match self.kind {
            CredentialKind::ClientSecret => "check the client id, tenant id and client secret (AZURE_POSTGRESQL_CLIENTSECRET / AZURE_CLIENT_SECRET); an expired secret must be renewed in Entra ID",
            CredentialKind::ClientCertificate => "check that this certificate is uploaded to the app registration",
            _ => "check the federated credential (issuer, subject) on the app registration or managed identity",
        };
        let err = service_error(status, &bytes, &what, hint);
        if is_transient_status(status, false) {
            Attempt::Transient(err, ra)
        } else {
            Attempt::Permanent(err)
        }
    }
}

/// Load an RSA key and certificate from a PEM file; returns the key and the x5t thumbprint.
fn load_certificate(path: &std::path::Path, encrypted: bool) -> Result<(ring::rsa::KeyPair, String)> {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};
    let shown = path.display();
    let data = std::fs::read(path).map_err(|e| Error::config(format!("AZURE_CLIENT_CERTIFICATE_PATH {shown}: {e}")))?;
    if !data.starts_with(b"-----") && !data.windows(5).any(|w| w == b"-----") {
        return Err(Error::config(format!(
            "AZURE_CLIENT_CERTIFICATE_PATH {shown} is not PEM; convert a PFX with `openssl pkcs12 -in cert.pfx -out cert.pem -nodes`"
        )));
    }
    if encrypted {
        return Err(Error::config("AZURE_CLIENT_CERTIFICATE_PASSWORD is set, but encrypted keys are not supported yet; store the key unencrypted in a file only the app can read"));
    }
    let cert = CertificateDer::pem_slice_iter(&data)
        .next()
        .and_then(|c| c.ok())
        .ok_or_else(|| Error::config(format!("AZURE_CLIENT_CERTIFICATE_PATH {shown} holds no CERTIFICATE block")))?;
    let key = PrivateKeyDer::from_pem_slice(&data)
        .map_err(|_| Error::config(format!("AZURE_CLIENT_CERTIFICATE_PATH {shown} holds no unencrypted PRIVATE KEY block")))?;
    let pair = match &key {
        PrivateKeyDer::Pkcs8(k) => ring::rsa::KeyPair::from_pkcs8(k.secret_pkcs8_der()),
        PrivateKeyDer::Pkcs1(k) => ring::rsa::KeyPair::from_der(k.secret_pkcs1_der()),
        _ => return Err(Error::config(format!("AZURE_CLIENT_CERTIFICATE_PATH {shown}: only RSA keys are supported by Entra ID certificate credentials"))),
    }
    .map_err(|_| Error::config(format!("AZURE_CLIENT_CERTIFICATE_PATH {shown}: the private key is not a usable RSA key")))?;
    let digest = ring::digest::digest(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY, cert.as_ref());
    let x5t = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(digest.as_ref());
    Ok((pair, x5t))
}

#[async_trait::async_trait]
impl TokenSource for Entra {
    async fn fetch(&self, scope: &str, deadline: Duration) -> Result<Token> {
        let client = runtime::http_client()?;
        with_retries(deadline, || self.attempt(&client, scope)).await
    }
    fn kind(&self) -> CredentialKind {
        self.kind
    }
    fn describe(&self) -> String {
        self.what()
    }
}

// ---------------------------------------------------------------------------------------------
// Developer tools (wrapping azure_identity)
// ---------------------------------------------------------------------------------------------

pub struct DevTool {
    kind: CredentialKind,
    cred: Arc<dyn TokenCredential>,
}

impl DevTool {
    pub fn new(kind: CredentialKind, tenant: Option<String>) -> Result<DevTool> {
        let cred: Arc<dyn TokenCredential> = match kind {
            CredentialKind::AzureCli => azure_identity::AzureCliCredential::new(Some(azure_identity::AzureCliCredentialOptions {
                tenant_id: tenant,
                ..Default::default()
            }))
            .map_err(|e| Error::credential(format!("Azure CLI credential: {e}")))?,
            _ => azure_identity::AzureDeveloperCliCredential::new(Some(azure_identity::AzureDeveloperCliCredentialOptions {
                tenant_id: tenant,
                ..Default::default()
            }))
            .map_err(|e| Error::credential(format!("Azure Developer CLI credential: {e}")))?,
        };
        Ok(DevTool { kind, cred })
    }
}

#[async_trait::async_trait]
impl TokenSource for DevTool {
    async fn fetch(&self, scope: &str, deadline: Duration) -> Result<Token> {
        let what = self.describe();
        let scopes = [scope];
        let fut = self.cred.get_token(&scopes, None);
        let t = tokio::time::timeout(deadline, fut)
            .await
            .map_err(|_| Error::new(ErrorKind::Network, format!("{what} did not answer within {deadline:?}")))?
            .map_err(|e| {
                // Display only: Debug carries a backtrace.
                let hint = if self.kind == CredentialKind::AzureCli { "run `az login`" } else { "run `azd auth login`" };
                Error::credential(format!("{what}: {}; {hint}", e.to_string().lines().next().unwrap_or("")))
            })?;
        if t.token.secret().is_empty() {
            return Err(Error::credential(format!("{what} returned an empty token")));
        }
        Ok(Token {
            secret: Secret::new(t.token.secret()),
            expires_on: t.expires_on.unix_timestamp(),
            refresh_in: None,
            credential: self.kind,
            detail: what,
        })
    }
    fn kind(&self) -> CredentialKind {
        self.kind
    }
    fn describe(&self) -> String {
        match self.kind {
            CredentialKind::AzureCli => "Azure CLI (az account get-access-token)".to_string(),
            _ => "Azure Developer CLI (azd auth token)".to_string(),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The chain
// ---------------------------------------------------------------------------------------------

/// Sources tried in order at run time; the first that gives a token is kept.
pub struct Chain {
    sources: Vec<Box<dyn TokenSource>>,
    winner: AtomicUsize,
}

const NO_WINNER: usize = usize::MAX;

#[async_trait::async_trait]
impl TokenSource for Chain {
    async fn fetch(&self, scope: &str, deadline: Duration) -> Result<Token> {
        let w = self.winner.load(Ordering::Acquire);
        if w != NO_WINNER {
            return self.sources[w].fetch(scope, deadline).await;
        }
        let mut reasons = Vec::new();
        for (i, s) in self.sources.iter().enumerate() {
            match s.fetch(scope, deadline).await {
                Ok(mut t) => {
                    self.winner.store(i, Ordering::Release);
                    if !reasons.is_empty() {
                        t.detail = format!("{} (after: {})", t.detail, reasons.join("; "));
                    }
                    return Ok(t);
                }
                Err(e) if e.kind() == ErrorKind::Credential || e.kind() == ErrorKind::Network => {
                    reasons.push(format!("{}: {}", s.describe(), e.message()));
                }
                Err(e) => return Err(e),
            }
        }
        Err(Error::credential(format!(
            "no credential worked. Tried: {}. On Azure, enable a managed identity; elsewhere set AZURE_POSTGRESQL_CLIENTID, AZURE_POSTGRESQL_TENANTID and AZURE_POSTGRESQL_CLIENTSECRET, or run `az login`",
            reasons.join("; ")
        )))
    }
    fn kind(&self) -> CredentialKind {
        let w = self.winner.load(Ordering::Acquire);
        if w == NO_WINNER {
            CredentialKind::Auto
        } else {
            self.sources[w].kind()
        }
    }
    fn describe(&self) -> String {
        let names: Vec<String> = self.sources.iter().map(|s| s.describe()).collect();
        format!("chain: {}", names.join(" → "))
    }
}

/// Build the source that applies to this configuration. `None` in password (secret) mode.
pub fn source_for(c: &Config) -> Result<Option<Box<dyn TokenSource>>> {
    let kind = c.credential;
    let boxed = |s: Box<dyn TokenSource>| Ok(Some(s));
    match kind {
        CredentialKind::Password => {
            if c.params.password.is_none() {
                return Err(Error::config(format!(
                    "PGENTRA_CREDENTIAL=password but no password is configured: set {}_PASSWORD or put password= in {}_CONNECTIONSTRING",
                    c.prefix, c.prefix
                )));
            }
            Ok(None)
        }
        CredentialKind::ClientSecret | CredentialKind::ClientCertificate | CredentialKind::WorkloadIdentity => {
            boxed(Box::new(Entra::from_config(c, kind)?))
        }
        CredentialKind::ManagedIdentity => boxed(Box::new(ManagedIdentity::from_config(c, false)?)),
        CredentialKind::AzureCli | CredentialKind::AzureDeveloperCli => boxed(Box::new(DevTool::new(kind, c.tenant_id.clone())?)),
        CredentialKind::Auto => {
            if c.params.password.is_some() {
                return Ok(None);
            }
            if c.client_secret.is_some() {
                return boxed(Box::new(Entra::from_config(c, CredentialKind::ClientSecret)?));
            }
            if c.certificate_path.is_some() {
                return boxed(Box::new(Entra::from_config(c, CredentialKind::ClientCertificate)?));
            }
            if c.federated_token_file.is_some() {
                return boxed(Box::new(Entra::from_config(c, CredentialKind::WorkloadIdentity)?));
            }
            if c.identity_endpoint.is_some() {
                return boxed(Box::new(ManagedIdentity::from_config(c, false)?));
            }
            let sources: Vec<Box<dyn TokenSource>> = vec![
                Box::new(ManagedIdentity::from_config(c, true)?),
                Box::new(DevTool::new(CredentialKind::AzureCli, c.tenant_id.clone())?),
                Box::new(DevTool::new(CredentialKind::AzureDeveloperCli, c.tenant_id.clone())?),
            ];
            boxed(Box::new(Chain { sources, winner: AtomicUsize::new(NO_WINNER) }))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strict_response_parsing() {
        let k = CredentialKind::ManagedIdentity;
        assert!(parse_token_response(br#"{"access_token":"","expires_in":3600}"#, "x", k, "").is_err());
        assert!(parse_token_response(br#"{"access_token":"abc"}"#, "x", k, "").is_err());
        assert!(parse_token_response(br#"{not json"#, "x", k, "").is_err());
        let t = parse_token_response(br#"{"access_token":"abc","expires_on":"1700000000"}"#, "x", k, "").unwrap();
        assert_eq!(t.expires_on, 1_700_000_000);
        let t = parse_token_response(br#"{"access_token":"abc","expires_in":3600,"refresh_in":1800}"#, "x", k, "").unwrap();
        assert_eq!(t.refresh_in, Some(1800));
    }

    #[test]
    fn aadsts_code_is_extracted() {
        let body = br#"{"error":"invalid_client","error_description":"AADSTS7000215: Invalid client secret provided.\r\nTrace ID: x","error_codes":[7000215]}"#;
        let e = service_error(401, body, "Entra", "check it");
        assert_eq!(e.code(), Some("AADSTS7000215"));
        assert!(e.message().contains("AADSTS7000215: Invalid client secret provided."));
        assert!(!e.message().contains("Trace ID"));
    }
}
