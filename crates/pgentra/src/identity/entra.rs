//! Microsoft Entra ID v2 token endpoint: client secret, certificate (a signed client
//! assertion) and federated token (AKS workload identity).

use super::http::{classify_reqwest, enc, is_transient_status, redirect_refused, retry_after, with_retries, Attempt};
use super::{date_header, now_unix, parse_token_response, service_error, Token, TokenSource};
use crate::config::{Config, CredentialKind};
use crate::error::{Error, ErrorKind, Result};
use crate::runtime;
use crate::secret::Secret;
use base64::Engine;
use rand::Rng;
use std::sync::Arc;
use std::time::Duration;


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
        let server_now = date_header(&resp);
        let bytes = match resp.bytes().await {
            Ok(b) => b,
            Err(e) => return classify_reqwest(e, &what),
        };
        if status == 200 {
            return match parse_token_response(&bytes, &what, self.kind, &what, server_now) {
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

