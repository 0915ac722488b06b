//! The chain: the sources that apply to a configuration, tried in order within one deadline.

use super::{DevTool, Entra, ManagedIdentity, Token, TokenSource};
use crate::config::{Config, CredentialKind};
use crate::error::{Error, ErrorKind, Result};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};


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
        // One deadline for the whole chain, not one per source.
        let start = Instant::now();
        for (i, s) in self.sources.iter().enumerate() {
            let remaining = deadline.saturating_sub(start.elapsed());
            if remaining.is_zero() {
                reasons.push(format!("{}: not tried, the deadline of {deadline:?} had passed", s.describe()));
                continue;
            }
            match s.fetch(scope, remaining).await {
                Ok(mut t) => {
                    self.winner.store(i, Ordering::Release);
                    if !reasons.is_empty() {
                        t.detail = format!("{} (after: {})", t.detail, reasons.join("; "));
                    }
                    return Ok(t);
                }
                Err(e) if e.kind() == ErrorKind::Credential || e.kind() == ErrorKind::Network => {
                    reasons.push(reason(&s.describe(), e.message()));
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

/// One source's failure for the chain's message: its label once, then why. A source's own
/// message often starts with its label, or the tail of it (`instance metadata service (IMDS),
/// system-assigned identity: not reachable`); that label is not repeated.
fn reason(label: &str, message: &str) -> String {
    match message.split_once(": ") {
        Some((head, rest)) if !head.is_empty() && label.ends_with(head) => format!("{label}: {rest}"),
        _ => format!("{label}: {message}"),
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
    use super::reason;

    #[test]
    fn a_reason_names_its_source_once() {
        let imds = "managed identity via the instance metadata service (IMDS), system-assigned identity";
        assert_eq!(
            reason(imds, "instance metadata service (IMDS), system-assigned identity: not reachable (not an Azure VM)"),
            format!("{imds}: not reachable (not an Azure VM)")
        );
        let az = "Azure CLI (az account get-access-token)";
        assert_eq!(reason(az, &format!("{az}: az not found on PATH")), format!("{az}: az not found on PATH"));
        // A message without the label keeps all of it.
        assert_eq!(reason(az, "timed out: after 3s"), format!("{az}: timed out: after 3s"));
        assert_eq!(reason(az, "no colon here"), format!("{az}: no colon here"));
    }
}
