//! Developer tools: Azure CLI and Azure Developer CLI, through `azure_identity`, which runs and
//! parses those tools well.

use super::{Token, TokenSource};
use crate::config::CredentialKind;
use crate::error::{Error, ErrorKind, Result};
use crate::secret::Secret;
use azure_core::credentials::TokenCredential;
use std::sync::Arc;
use std::time::Duration;


/// Runs `az` and `azd` so that a request abandoned at its deadline also ends the process: the
/// child is killed when the future that waits for it is dropped (azure_identity's own executor
/// would leave it running).
#[derive(Debug)]
struct KillOnDrop;

#[async_trait::async_trait]
impl azure_identity::Executor for KillOnDrop {
    async fn run(&self, program: &std::ffi::OsStr, args: &[&std::ffi::OsStr]) -> std::io::Result<std::process::Output> {
        use std::process::Stdio;
        // azure_identity runs `/bin/sh -c "cd ... && az ..."`: `az` is the shell's child, so the
        // whole process group is killed, not only the shell.
        let child = tokio::process::Command::new(program)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .kill_on_drop(true)
            .spawn()?;
        struct Group(Option<i32>);
        impl Drop for Group {
            fn drop(&mut self) {
                if let Some(pgid) = self.0.filter(|p| *p > 0) {
                    // SAFETY: kill(2) with a negative pid signals the process group we created.
                    unsafe { libc::kill(-pgid, libc::SIGKILL) };
                }
            }
        }
        let mut group = Group(child.id().and_then(|p| i32::try_from(p).ok()));
        let out = child.wait_with_output().await;
        group.0 = None; // it finished: nothing to kill, and its id may be reused
        out
    }
}

pub struct DevTool {
    kind: CredentialKind,
    cred: Arc<dyn TokenCredential>,
}

impl DevTool {
    pub fn new(kind: CredentialKind, tenant: Option<String>) -> Result<DevTool> {
        let cred: Arc<dyn TokenCredential> = match kind {
            CredentialKind::AzureCli => azure_identity::AzureCliCredential::new(Some(azure_identity::AzureCliCredentialOptions {
                tenant_id: tenant,
                executor: Some(Arc::new(KillOnDrop)),
                ..Default::default()
            }))
            .map_err(|e| Error::credential(format!("Azure CLI credential: {e}")))?,
            _ => azure_identity::AzureDeveloperCliCredential::new(Some(azure_identity::AzureDeveloperCliCredentialOptions {
                tenant_id: tenant,
                executor: Some(Arc::new(KillOnDrop)),
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
            lifetime: None,
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

