//! Real database connections for `check` and `grant` (feature `db`): tokio-postgres over rustls,
//! with libpq's sslmode semantics (`require` encrypts without verifying, `verify-ca` and
//! `verify-full` verify against `sslrootcert` or the system's roots).

use crate::conninfo::{ConnParams, SslMode};
use crate::error::{Error, ErrorKind, Result};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use std::sync::Arc;
use std::time::Duration;

#[derive(Debug)]
struct EncryptOnly(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for EncryptOnly {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// The rustls client configuration for these parameters (libpq sslmode semantics).
pub fn tls_config(p: &ConnParams) -> Result<rustls::ClientConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::new(ErrorKind::Internal, format!("TLS set-up: {e}")))?;
    let mode = p.sslmode.unwrap_or(SslMode::Require);
    if matches!(mode, SslMode::VerifyCa | SslMode::VerifyFull) {
        let mut roots = rustls::RootCertStore::empty();
        let rootcert = p
            .extra
            .iter()
            .find(|(k, _)| k == "sslrootcert")
            .map(|(_, v)| v.clone())
            .or_else(|| std::env::var("PGSSLROOTCERT").ok());
        match rootcert {
            Some(path) if path != "system" => {
                use rustls::pki_types::pem::PemObject;
                let certs = CertificateDer::pem_file_iter(&path)
                    .map_err(|e| Error::config(format!("sslrootcert {path}: {e}")))?;
                for c in certs {
                    let c = c.map_err(|e| Error::config(format!("sslrootcert {path}: {e}")))?;
                    roots.add(c).map_err(|e| Error::config(format!("sslrootcert {path}: {e}")))?;
                }
            }
            _ => {
                for c in rustls_native_certs::load_native_certs().certs {
                    let _ = roots.add(c);
                }
            }
        }
        // verify-ca: rustls always checks the name too; with an IP host that is what
        // verify-full means, and Azure's certificates carry the server name.
        Ok(builder.with_root_certificates(roots).with_no_client_auth())
    } else {
        Ok(builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(EncryptOnly(provider)))
            .with_no_client_auth())
    }
}

/// Connect with these parameters. The password (token) is never part of an error.
pub async fn connect(p: &ConnParams) -> Result<tokio_postgres::Client> {
    let mut cfg = tokio_postgres::Config::new();
    let host = p.host.clone().ok_or_else(|| Error::config("no host"))?;
    for h in host.split(',') {
        cfg.host(h.trim());
    }
    cfg.port(p.port.unwrap_or(5432));
    if let Some(d) = &p.dbname {
        cfg.dbname(d);
    }
    if let Some(u) = &p.user {
        cfg.user(u);
    }
    if let Some(pw) = &p.password {
        cfg.password(pw.expose());
    }
    cfg.connect_timeout(Duration::from_secs(15));
    cfg.application_name("pgentra");
    let mode = p.sslmode.unwrap_or(SslMode::Require);
    cfg.ssl_mode(match mode {
        SslMode::Disable => tokio_postgres::config::SslMode::Disable,
        SslMode::Allow | SslMode::Prefer => tokio_postgres::config::SslMode::Prefer,
        _ => tokio_postgres::config::SslMode::Require,
    });
    let tls = tokio_postgres_rustls::MakeRustlsConnect::new(tls_config(p)?);
    let (client, conn) = cfg.connect(tls).await.map_err(|e| describe_pg_error(&e, p))?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(client)
}

/// A precise diagnosis of a connection failure.
pub fn describe_pg_error(e: &tokio_postgres::Error, p: &ConnParams) -> Error {
    let user = p.user.as_deref().unwrap_or("?");
    let host = p.host.as_deref().unwrap_or("?");
    if let Some(db) = e.as_db_error() {
        let code = db.code().code();
        let msg = db.message();
        let text = match code {
            "28P01" => format!(
                "the server refused the password/token for user '{user}' ({msg}); check that the role exists and is mapped to this Entra identity, that the user name matches the token's identity, and that the token's audience is the PostgreSQL resource"
            ),
            "28000" if msg.contains("no encryption") || msg.contains("SSL off") => {
                return Error::new(ErrorKind::TlsPolicy, format!("the server refuses connections without TLS ({msg}); use sslmode=require"));
            }
            "28000" => format!("the server refused user '{user}' ({msg}); check the role and the server's firewall and authentication settings"),
            "3D000" => format!("database does not exist ({msg}); check the database name"),
            _ => format!("the server answered {code}: {msg}"),
        };
        return Error::new(ErrorKind::Database, text).with_code(code.to_string());
    }
    let mut detail = e.to_string();
    let mut src = std::error::Error::source(e);
    while let Some(s) = src {
        detail = format!("{detail}: {s}");
        src = s.source();
    }
    let kind = if detail.contains("certificate") || detail.contains("TLS") || detail.contains("tls") || detail.contains("ssl") {
        ErrorKind::TlsPolicy
    } else {
        ErrorKind::Network
    };
    Error::new(kind, format!("cannot connect to {host}:{}: {detail}", p.port.unwrap_or(5432)))
}

/// `select current_user`.
pub async fn current_user(p: &ConnParams) -> Result<String> {
    let client = connect(p).await?;
    let row = client
        .query_one("select current_user::text", &[])
        .await
        .map_err(|e| Error::new(ErrorKind::Database, format!("select current_user failed: {e}")))?;
    Ok(row.get(0))
}

/// Quote an identifier for SQL.
pub fn quote_ident(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}

/// Grant ALL on the schema's tables and sequences to `role`; return the tables the role can
/// now use (the validation query of Azure's documentation).
pub async fn grant(owner: &ConnParams, role: &str, schema: &str) -> Result<Vec<String>> {
    let client = connect(owner).await?;
    let sql = format!(
        "GRANT ALL PRIVILEGES ON ALL TABLES IN SCHEMA {s} TO {r}; GRANT ALL PRIVILEGES ON ALL SEQUENCES IN SCHEMA {s} TO {r}",
        s = quote_ident(schema),
        r = quote_ident(role)
    );
    client
        .batch_execute(&sql)
        .await
        .map_err(|e| Error::new(ErrorKind::Database, format!("GRANT failed: {}", e.as_db_error().map(|d| d.message().to_string()).unwrap_or_else(|| e.to_string()))))?;
    let rows = client
        .query(
            "SELECT DISTINCT table_name::text FROM information_schema.table_privileges WHERE grantee = $1 AND table_schema = $2 ORDER BY 1",
            &[&role, &schema],
        )
        .await
        .map_err(|e| Error::new(ErrorKind::Database, format!("validation query failed: {e}")))?;
    Ok(rows.iter().map(|r| r.get::<_, String>(0)).collect())
}
