//! Keeps PostgreSQL role passwords in step with the tokens the emulator issues.

use std::time::Duration;

use tokio_postgres::{Client, NoTls};

pub struct PgSync {
    conninfo: String,
    client: Option<Client>,
}

pub fn quote_ident(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}

pub fn quote_literal(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// An error with its source chain (tokio-postgres's Display alone says only "db error").
fn describe(e: &tokio_postgres::Error) -> String {
    let mut s = e.to_string();
    let mut src = std::error::Error::source(e);
    while let Some(cause) = src {
        s.push_str(": ");
        s.push_str(&cause.to_string());
        src = cause.source();
    }
    s
}

impl PgSync {
    pub fn new(conninfo: String) -> Self {
        PgSync {
            conninfo,
            client: None,
        }
    }

    async fn client(&mut self) -> Result<&Client, String> {
        if !matches!(&self.client, Some(c) if !c.is_closed()) {
            self.client = None;
            let connect = tokio_postgres::connect(&self.conninfo, NoTls);
            let (client, conn) = tokio::time::timeout(Duration::from_secs(15), connect)
                .await
                .map_err(|_| "connecting to PostgreSQL timed out".to_string())?
                .map_err(|e| format!("connecting to PostgreSQL: {}", describe(&e)))?;
            tokio::spawn(async move {
                if let Err(e) = conn.await {
                    eprintln!(
                        "pgentra-emulator: PostgreSQL admin connection ended: {}",
                        describe(&e)
                    );
                }
            });
            self.client = Some(client);
        }
        Ok(self.client.as_ref().expect("client just set"))
    }

    async fn try_set(&mut self, role: &str, token: &str) -> Result<(), (bool, String)> {
        let client = self.client().await.map_err(|e| (false, e))?;
        let redact = |e: tokio_postgres::Error| {
            let retryable = e.as_db_error().is_none();
            (retryable, describe(&e).replace(token, "<token>"))
        };
        let exists = client
            .query_opt(
                "SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = $1",
                &[&role],
            )
            .await
            .map_err(redact)?
            .is_some();
        let sql = format!(
            "{} ROLE {} LOGIN PASSWORD {}",
            if exists { "ALTER" } else { "CREATE" },
            quote_ident(role),
            quote_literal(token)
        );
        client.batch_execute(&sql).await.map_err(redact)
    }

    /// Creates each missing role (LOGIN, no password yet) before any client connects, as on
    /// Azure, where the roles exist before their tokens do. A role created while a client's
    /// connection is already open would stay invisible to that backend: PostgreSQL looks the
    /// role up when it matches pg_hba.conf, before it asks for the password.
    pub async fn ensure_roles(&mut self, roles: &[&str]) -> Result<(), String> {
        let client = self.client().await?;
        for role in roles {
            let exists = client
                .query_opt("SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = $1", &[role])
                .await
                .map_err(|e| describe(&e))?
                .is_some();
            if !exists {
                client
                    .batch_execute(&format!("CREATE ROLE {} LOGIN", quote_ident(role)))
                    .await
                    .map_err(|e| describe(&e))?;
            }
        }
        Ok(())
    }

    /// Creates the role (LOGIN) or sets its password to `token`. Reconnects once if the
    /// reused connection turned out to be broken. Errors never contain the token.
    pub async fn set_password(&mut self, role: &str, token: &str) -> Result<(), String> {
        match self.try_set(role, token).await {
            Ok(()) => Ok(()),
            Err((true, first)) => {
                eprintln!("pgentra-emulator: PostgreSQL error ({first}); reconnecting");
                self.client = None;
                self.try_set(role, token).await.map_err(|(_, e)| e)
            }
            Err((false, e)) => Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting() {
        assert_eq!(quote_ident("dev@contoso.com"), "\"dev@contoso.com\"");
        assert_eq!(quote_ident("a\"b"), "\"a\"\"b\"");
        assert_eq!(quote_literal("it's"), "'it''s'");
    }
}
