//! HTTP plumbing shared by the managed identity and Entra sources: retries within one
//! deadline, error classification, `Retry-After`, and the refusal of redirects.

use super::response::retry_after_value;
use super::{now_unix, Token};
use crate::error::{Error, ErrorKind, Result};
use percent_encoding::{utf8_percent_encode, NON_ALPHANUMERIC};
use rand::Rng;
use std::time::{Duration, Instant};

pub(super) fn enc(s: &str) -> String {
    utf8_percent_encode(s, NON_ALPHANUMERIC).to_string()
}

/// The outcome of one attempt.
pub(super) enum Attempt {
    Ok(Token),
    /// Worth another try, after at least this long (Retry-After).
    Transient(Error, Option<Duration>),
    Permanent(Error),
}

/// Retries `attempt` with exponential back-off and full jitter until `deadline`.
pub(super) async fn with_retries<F, Fut>(deadline: Duration, mut attempt: F) -> Result<Token>
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
                    let e = e.context(format!("gave up after {tries} attempts within {:?}", deadline));
                    return Err(match retry_after {
                        Some(ra) => e.with_retry_after(ra),
                        None => e,
                    });
                }
                tracing::debug!(attempt = tries, wait_ms = wait.as_millis() as u64, error = %e, "transient identity error; retrying");
                tokio::time::sleep(wait).await;
                delay = (delay * 2).min(Duration::from_secs(8));
            }
        }
    }
}

pub(super) fn classify_reqwest(e: reqwest::Error, what: &str) -> Attempt {
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
    let message = format!("{what}: request {kind}{}{}", if detail.is_empty() { "" } else { ": " }, detail);
    if tls {
        // Not a policy refusal: the endpoint's certificate is not trusted here. A network error
        // that says which CA to trust; retrying cannot help.
        let host = e.url().and_then(|u| u.host_str()).unwrap_or("the identity endpoint").to_string();
        Attempt::Permanent(Error::new(ErrorKind::Network, format!("{message}; {}", trust_advice(&host))))
    } else {
        Attempt::Transient(Error::new(ErrorKind::Network, message), None)
    }
}

/// What to do when an identity endpoint's TLS certificate is not trusted: which CA to add
/// and where. Names the pgentra emulator's CA when its variables are set.
pub(super) fn trust_advice(host: &str) -> String {
    let emulator = std::env::var("PGENTRA_EMULATOR_CA").ok().filter(|c| !c.is_empty());
    let bundle = match std::env::var("SSL_CERT_FILE") {
        Ok(f) if !f.is_empty() => format!("the CA bundle SSL_CERT_FILE names ({f})"),
        _ => "the system's CA bundle (or a PEM file named by SSL_CERT_FILE)".to_string(),
    };
    let which = match emulator {
        Some(ca) => format!("the pgentra emulator's CA, {ca} (PGENTRA_EMULATOR_CA; its emulator.env sets SSL_CERT_FILE to it)"),
        None => "the root CA that issued its certificate (for Azure's Entra endpoints: DigiCert Global Root G2 or Microsoft RSA Root Certificate Authority 2017)".to_string(),
    };
    format!("the certificate of {host} is not trusted: add {which} to {bundle}")
}

pub(super) fn retry_after(resp: &reqwest::Response) -> Option<Duration> {
    let v = resp.headers().get("retry-after")?.to_str().ok()?;
    retry_after_value(v, now_unix())
}

/// `Retry-After` as delay-seconds or as an HTTP date (RFC 9110), capped at a minute.
/// A 3xx answer: identity requests never follow redirects (the request carries the identity
/// header, a client secret or assertion, or a federated token). The error names the status and
/// the target's host, never the whole target (its query could carry anything).
pub(super) fn redirect_refused(resp: &reqwest::Response, what: &str) -> Option<Attempt> {
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

pub(super) fn is_transient_status(status: u16, imds: bool) -> bool {
    status == 429 || status >= 500 || (imds && (status == 404 || status == 410))
}

