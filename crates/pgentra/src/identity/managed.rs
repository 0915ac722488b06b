//! Managed identity: the App Service / Functions / Container Apps endpoint, Azure Arc (with its
//! challenge file) and the VM metadata service (IMDS).

use super::http::{classify_reqwest, enc, is_transient_status, redirect_refused, retry_after, with_retries, Attempt};
use super::{date_header, parse_token_response, service_error, Token, TokenSource};
use crate::cloud::resource_of;
use crate::config::{Config, CredentialKind};
use crate::error::{Error, ErrorKind, Result};
use crate::runtime;
use crate::secret::Secret;
use std::time::Duration;


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
        let server_now = date_header(&resp);
        let body = match resp.bytes().await {
            Ok(b) => b,
            Err(e) => return classify_reqwest(e, what),
        };
        // In the automatic chain, IMDS answering "no identity here" means this credential is
        // unavailable, as the Azure SDKs treat it, and the chain moves on (to `az`): 400
        // "Identity not found" on a VM without one, Docker Desktop's 403 for the metadata
        // address, a 200 that is not a token.
        let probing = self.probe && self.host == MiHost::Imds;
        if status == 200 {
            return match parse_token_response(&body, what, CredentialKind::ManagedIdentity, what, server_now) {
                Ok(t) => Attempt::Ok(t),
                Err(e) if probing => Attempt::Permanent(Error::credential(format!("{what}: not a managed identity endpoint ({})", e.message()))),
                Err(e) => Attempt::Permanent(e),
            };
        }
        if probing && (status == 400 || status == 403) {
            let e = service_error(status, &body, what, "");
            return Attempt::Permanent(Error::credential(format!("no managed identity here ({})", e.message())));
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

