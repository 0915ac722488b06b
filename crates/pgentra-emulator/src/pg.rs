//! Creates the identities' PostgreSQL roles (the server checks their tokens over LDAP).

use std::time::Duration;

use tokio_postgres::{Client, NoTls};

pub struct PgSync {
    conninfo: String,
    client: Option<Client>,
}

/// The group role of token (Entra) roles, named as on Azure.
pub const ENTRA_GROUP: &str = "azure_ad_user";

pub fn quote_ident(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
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

    /// Creates each missing role (LOGIN, no password) before any client connects, as on
    /// Azure, where the roles exist before their tokens do, and makes it a member of
    /// `ENTRA_GROUP`, which pg_hba.conf sends to the emulator's LDAP token check (Azure marks
    /// its Entra roles the same way). A role created while a client's connection is already
    /// open would stay invisible to that backend: PostgreSQL looks the role up when it matches
    /// pg_hba.conf, before it asks for the password.
    pub async fn ensure_roles(&mut self, roles: &[&str]) -> Result<(), String> {
        let client = self.client().await?;
        let exists = |role: &str| {
            let role = role.to_string();
            async move {
                client
                    .query_opt("SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = $1", &[&role])
                    .await
                    .map(|r| r.is_some())
                    .map_err(|e| describe(&e))
            }
        };
        let mut sql = String::new();
        if !exists(ENTRA_GROUP).await? {
            sql.push_str(&format!("CREATE ROLE {} NOLOGIN;\n", quote_ident(ENTRA_GROUP)));
        }
        for role in roles {
            if !exists(role).await? {
                sql.push_str(&format!("CREATE ROLE {} LOGIN;\n", quote_ident(role)));
            }
            sql.push_str(&format!("GRANT {} TO {};\n", quote_ident(ENTRA_GROUP), quote_ident(role)));
        }
        client
            .batch_execute(&sql)
            .await
            .map_err(|e| describe(&e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting() {
        assert_eq!(quote_ident("dev@contoso.com"), "\"dev@contoso.com\"");
        assert_eq!(quote_ident("a\"b"), "\"a\"\"b\"");
    }
}
