//! The TLS policy for every set of parameters that leaves pgentra with a token.
//!
//! A token opens every Azure Database for PostgreSQL server where its identity has a role, so
//! it must reach only the server it was meant for. Service Connector writes `sslmode=require`,
//! which encrypts but never checks who answers. For an Azure server name (any cloud, private
//! link included) pgentra raises the mode to `verify-full` and names a CA bundle file that
//! every libpq understands; `PGENTRA_ALLOW_UNVERIFIED_TLS=1` keeps `require`. Hosts outside
//! Azure keep libpq's meaning of the configured mode. A mode that does not guarantee TLS at
//! all (`disable`, `allow`, `prefer`) is refused unless `PGENTRA_ALLOW_INSECURE=1`.
//!
//! [`secure`] is the one check: every layer calls it on the final parameters, after merging
//! the caller's own values, so that what it checks is what leaves pgentra.

use crate::conninfo::{ConnParams, SslMode};
use crate::error::{Error, ErrorKind, Result};
use std::path::{Path, PathBuf};

/// Host suffixes of Azure Database for PostgreSQL in every cloud. Private-link names
/// (`<server>.privatelink.postgres.database.azure.com`) end the same way.
pub const AZURE_SUFFIXES: [&str; 3] =
    [".postgres.database.azure.com", ".postgres.database.usgovcloudapi.net", ".postgres.database.chinacloudapi.cn"];

/// Azure's documented roots for its PostgreSQL servers: DigiCert Global Root G2, Microsoft RSA
/// Root Certificate Authority 2017 and (older servers) DigiCert Global Root CA. Written to a
/// file only on a machine that has no CA bundle of its own.
pub const AZURE_ROOTS_PEM: &str = include_str!("tls/azure-roots.pem");

/// Where Linux distributions (and the BSDs, macOS) keep the system's CA bundle.
const SYSTEM_BUNDLES: [&str; 7] = [
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/pki/ca-trust/extracted/pem/tls-ca-bundle.pem",
    "/etc/ssl/ca-bundle.pem",
    "/etc/ssl/cert.pem",
    "/usr/local/share/certs/ca-root-nss.crt",
    "/usr/local/etc/openssl/cert.pem",
];

/// Whether `host` (one name) is an Azure Database for PostgreSQL server name.
pub fn is_azure_host(host: &str) -> bool {
    let h = host.trim().trim_end_matches('.').to_ascii_lowercase();
    AZURE_SUFFIXES.iter().any(|s| h.len() > s.len() && h.ends_with(s))
}

/// Whether any host of a libpq host list (`a,b,c`) is an Azure server name.
pub fn any_azure_host(hosts: &str) -> bool {
    hosts.split(',').any(is_azure_host)
}

/// Which rule decided the TLS mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsRule {
    /// An Azure server: the chain and the host name are verified.
    AzureVerified,
    /// An Azure server, with `PGENTRA_ALLOW_UNVERIFIED_TLS`: encrypted, not verified.
    AzureUnverifiedAllowed,
    /// Not an Azure name: libpq's meaning of the configured mode.
    NotAzure,
    /// A mode without guaranteed TLS, allowed by `PGENTRA_ALLOW_INSECURE`.
    InsecureAllowed,
    /// No token is attached (secret mode): the configured mode as is.
    NoToken,
}

impl TlsRule {
    pub fn as_str(self) -> &'static str {
        match self {
            TlsRule::AzureVerified => "azure-verified",
            TlsRule::AzureUnverifiedAllowed => "azure-unverified-allowed",
            TlsRule::NotAzure => "not-azure",
            TlsRule::InsecureAllowed => "insecure-allowed",
            TlsRule::NoToken => "no-token",
        }
    }
}

/// The outcome of [`secure`]: the rule, the final mode and why (for `pgentra check`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsDecision {
    pub rule: TlsRule,
    pub sslmode: SslMode,
    /// The mode before pgentra raised it, when it did.
    pub raised_from: Option<SslMode>,
    /// The CA bundle in `sslrootcert`, if any.
    pub rootcert: Option<String>,
    pub explanation: String,
}

/// What the caller allowed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TlsPolicy {
    /// `PGENTRA_ALLOW_INSECURE`: a token may go where TLS is not guaranteed.
    pub allow_insecure: bool,
    /// `PGENTRA_ALLOW_UNVERIFIED_TLS`: keep `require` for Azure servers.
    pub allow_unverified: bool,
}

impl TlsPolicy {
    /// `PGENTRA_ALLOW_INSECURE` and `PGENTRA_ALLOW_UNVERIFIED_TLS` from the process
    /// environment (a connector reads them through its configuration instead).
    pub fn from_env() -> TlsPolicy {
        let on = |k: &str| std::env::var(k).is_ok_and(|v| matches!(v.trim().to_ascii_lowercase().as_str(), "1" | "true" | "yes" | "on"));
        TlsPolicy { allow_insecure: on("PGENTRA_ALLOW_INSECURE"), allow_unverified: on("PGENTRA_ALLOW_UNVERIFIED_TLS") }
    }
}

fn sslrootcert(p: &ConnParams) -> Option<&str> {
    p.extra.iter().find(|(k, _)| k == "sslrootcert").map(|(_, v)| v.as_str()).filter(|v| !v.is_empty())
}

/// Check and complete the final parameters. With `token` false (secret mode) only the
/// configured mode is reported. Otherwise: refuse a mode without guaranteed TLS (unless
/// allowed); for an Azure server raise the mode to `verify-full` and, when no `sslrootcert`
/// is given, name the machine's CA bundle (`SSL_CERT_FILE` first) or pgentra's bundle of
/// Azure's roots.
pub fn secure(p: &mut ConnParams, policy: TlsPolicy, token: bool) -> Result<TlsDecision> {
    let mode = *p.sslmode.get_or_insert(SslMode::Require);
    let azure = p.host.as_deref().is_some_and(any_azure_host);
    let decision = |rule, raised_from, rootcert: Option<String>, explanation: String| TlsDecision {
        rule,
        sslmode: mode,
        raised_from,
        rootcert,
        explanation,
    };
    if !token {
        return Ok(decision(TlsRule::NoToken, None, None, format!("no token is attached (password from the configuration): sslmode={} as configured", mode.as_str())));
    }
    if !mode.guarantees_tls() {
        if !policy.allow_insecure {
            return Err(Error::new(
                ErrorKind::TlsPolicy,
                format!(
                    "sslmode={} would let the access token travel without TLS; use sslmode=require or stricter (Azure requires TLS), or set PGENTRA_ALLOW_INSECURE=1 for a local test server",
                    mode.as_str()
                ),
            ));
        }
        return Ok(decision(TlsRule::InsecureAllowed, None, None, format!("sslmode={} allowed by PGENTRA_ALLOW_INSECURE: the token may travel without TLS", mode.as_str())));
    }
    if !azure {
        return Ok(decision(
            TlsRule::NotAzure,
            None,
            sslrootcert(p).map(str::to_string),
            format!("the host is not an Azure Database for PostgreSQL name: sslmode={} as configured (libpq's meaning)", mode.as_str()),
        ));
    }
    if mode != SslMode::VerifyFull && policy.allow_unverified {
        return Ok(decision(
            TlsRule::AzureUnverifiedAllowed,
            None,
            sslrootcert(p).map(str::to_string),
            format!("an Azure server, but PGENTRA_ALLOW_UNVERIFIED_TLS keeps sslmode={}: the server's certificate is not fully checked", mode.as_str()),
        ));
    }
    let raised_from = (mode != SslMode::VerifyFull).then_some(mode);
    p.sslmode = Some(SslMode::VerifyFull);
    let (root, why) = match sslrootcert(p) {
        Some(r) => (r.to_string(), "the configured sslrootcert"),
        None => {
            let (path, why) = ca_bundle()?;
            p.extra.push(("sslrootcert".to_string(), path.clone()));
            p.system_roots = true;
            (path, why)
        }
    };
    let explanation = match raised_from {
        Some(m) => format!(
            "an Azure Database for PostgreSQL name: sslmode={} raised to verify-full (chain and host name checked against {root}, {why}); PGENTRA_ALLOW_UNVERIFIED_TLS=1 would keep {}",
            m.as_str(),
            m.as_str()
        ),
        None => format!("an Azure Database for PostgreSQL name: sslmode=verify-full (checked against {root}, {why})"),
    };
    Ok(TlsDecision { rule: TlsRule::AzureVerified, sslmode: SslMode::VerifyFull, raised_from, rootcert: Some(root), explanation })
}

/// The same rules as [`secure`] for a connection that a driver has already configured and
/// pgentra can only accept or refuse: pgJDBC's authentication plugin is asked for the password
/// after the driver chose its TLS settings. `hosts` is the driver's host list, `sslmode` the mode
/// the driver itself resolved (pgJDBC's `SslMode.of`, whose default is `prefer`), `sslfactory`
/// pgJDBC's socket factory property. A token is handed over only where `secure` would have let
/// it go unchanged; otherwise the error says what to add to the JDBC URL.
pub fn check_pgjdbc(hosts: &str, sslmode: &str, sslfactory: Option<&str>, policy: TlsPolicy) -> Result<TlsDecision> {
    let mode = SslMode::parse(sslmode).ok_or_else(|| {
        Error::config("the JDBC sslmode is not one of disable, allow, prefer, require, verify-ca, verify-full; use sslmode=verify-full")
    })?;
    let factory = sslfactory.map(str::trim).filter(|f| !f.is_empty());
    // pgJDBC's NonValidatingFactory accepts any certificate, whatever the mode says.
    let checks_nothing = factory.is_some_and(|f| f.rsplit('.').next() == Some("NonValidatingFactory"));
    let decision = |rule, explanation: String| TlsDecision { rule, sslmode: mode, raised_from: None, rootcert: None, explanation };
    if !mode.guarantees_tls() {
        if !policy.allow_insecure {
            return Err(Error::new(
                ErrorKind::TlsPolicy,
                format!(
                    "the JDBC connection's sslmode is {} (pgJDBC's default is prefer), which would let the access token travel without TLS; add sslmode=verify-full to the JDBC URL (Azure requires TLS), or set PGENTRA_ALLOW_INSECURE=1 for a local test server",
                    mode.as_str()
                ),
            ));
        }
        return Ok(decision(TlsRule::InsecureAllowed, format!("sslmode={} allowed by PGENTRA_ALLOW_INSECURE: the token may travel without TLS", mode.as_str())));
    }
    if !any_azure_host(hosts) {
        return Ok(decision(TlsRule::NotAzure, format!("the host is not an Azure Database for PostgreSQL name: sslmode={} as configured", mode.as_str())));
    }
    if mode == SslMode::VerifyFull && !checks_nothing {
        return Ok(decision(TlsRule::AzureVerified, "an Azure Database for PostgreSQL name: pgJDBC checks the chain and the host name (sslmode=verify-full)".to_string()));
    }
    if policy.allow_unverified {
        return Ok(decision(
            TlsRule::AzureUnverifiedAllowed,
            format!("an Azure server, but PGENTRA_ALLOW_UNVERIFIED_TLS keeps sslmode={}: the server's certificate is not fully checked", mode.as_str()),
        ));
    }
    let what = if checks_nothing {
        "sslfactory=NonValidatingFactory accepts any certificate".to_string()
    } else {
        format!("sslmode={} does not check the server's host name", mode.as_str())
    };
    Err(Error::new(
        ErrorKind::TlsPolicy,
        format!(
            "the host is an Azure Database for PostgreSQL name, but {what}, so the access token could reach another server; use sslmode=verify-full&sslfactory=org.postgresql.ssl.DefaultJavaSSLFactory (the JVM's trust store holds Azure's roots), or set PGENTRA_ALLOW_UNVERIFIED_TLS=1"
        ),
    ))
}

fn usable_file(path: &Path) -> bool {
    std::fs::metadata(path).map(|m| m.is_file() && m.len() > 0).unwrap_or(false)
}

/// The CA bundle file for `sslrootcert`, with where it came from: `SSL_CERT_FILE`, else the
/// system's bundle, else pgentra's bundle of Azure's roots (written once).
pub fn ca_bundle() -> Result<(String, &'static str)> {
    if let Some(f) = std::env::var_os("SSL_CERT_FILE").filter(|f| !f.is_empty()) {
        let p = PathBuf::from(&f);
        if usable_file(&p) {
            return Ok((p.display().to_string(), "the CA bundle named by SSL_CERT_FILE"));
        }
        return Err(Error::config(format!(
            "SSL_CERT_FILE names {}, which is not a readable, non-empty file; fix or unset SSL_CERT_FILE",
            p.display()
        )));
    }
    for b in SYSTEM_BUNDLES {
        if usable_file(Path::new(b)) {
            return Ok((b.to_string(), "the system's CA bundle"));
        }
    }
    Ok((write_azure_roots()?.display().to_string(), "pgentra's bundle of Azure's documented roots (no system CA bundle found)"))
}

/// A folder only this user can write to: `PGENTRA_CACHE_DIR`, `$XDG_CACHE_HOME/pgentra`,
/// `~/.cache/pgentra`, else `<tmp>/pgentra-<uid>`. Created 0700; refused unless owned by the
/// effective uid with no group or other write access (a trust anchor must not be replaceable).
fn private_dir() -> Result<PathBuf> {
    use std::os::unix::fs::{DirBuilderExt, MetadataExt};
    let uid = unsafe { libc::geteuid() };
    let dir = std::env::var_os("PGENTRA_CACHE_DIR")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("XDG_CACHE_HOME").filter(|v| !v.is_empty()).map(|d| PathBuf::from(d).join("pgentra")))
        .or_else(|| std::env::var_os("HOME").filter(|v| !v.is_empty()).map(|h| PathBuf::from(h).join(".cache").join("pgentra")))
        .unwrap_or_else(|| std::env::temp_dir().join(format!("pgentra-{uid}")));
    let _ = std::fs::DirBuilder::new().recursive(true).mode(0o700).create(&dir);
    let meta = std::fs::symlink_metadata(&dir).map_err(|e| Error::config(format!("cannot create {}: {e}", dir.display())))?;
    if !meta.is_dir() || meta.uid() != uid || meta.mode() & 0o022 != 0 {
        return Err(Error::config(format!(
            "{} is not a folder owned by this user and closed to others, so pgentra will not keep a CA bundle there; set SSL_CERT_FILE to a CA bundle, or PGENTRA_CACHE_DIR to a private folder",
            dir.display()
        )));
    }
    Ok(dir)
}

fn write_azure_roots() -> Result<PathBuf> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let dir = private_dir()?;
    let path = dir.join("azure-postgresql-roots.pem");
    if std::fs::read(&path).is_ok_and(|b| b == AZURE_ROOTS_PEM.as_bytes()) {
        return Ok(path);
    }
    let tmp = dir.join(format!(".azure-postgresql-roots.{}.tmp", std::process::id()));
    let fail = |e: std::io::Error| Error::config(format!("cannot write {}: {e}; set SSL_CERT_FILE to a CA bundle", path.display()));
    let _ = std::fs::remove_file(&tmp);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o644)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(&tmp)
        .map_err(fail)?;
    f.write_all(AZURE_ROOTS_PEM.as_bytes()).and_then(|_| f.sync_all()).map_err(fail)?;
    std::fs::rename(&tmp, &path).map_err(fail)?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(host: &str, mode: SslMode) -> ConnParams {
        ConnParams { host: Some(host.into()), sslmode: Some(mode), ..Default::default() }
    }

    #[test]
    fn azure_names_of_every_cloud() {
        for h in [
            "srv.postgres.database.azure.com",
            "SRV.Postgres.Database.Azure.COM.",
            "srv.privatelink.postgres.database.azure.com",
            "srv.postgres.database.usgovcloudapi.net",
            "srv.postgres.database.chinacloudapi.cn",
        ] {
            assert!(is_azure_host(h), "{h}");
        }
        for h in ["127.0.0.1", "postgres.database.azure.com", ".postgres.database.azure.com", "srv.postgres.database.azure.com.evil.example", "db.example.com"] {
            assert!(!is_azure_host(h), "{h}");
        }
        assert!(any_azure_host("localhost,srv.postgres.database.azure.com"));
    }

    #[test]
    fn azure_require_becomes_verify_full_with_a_bundle() {
        for mode in [SslMode::Require, SslMode::VerifyCa, SslMode::VerifyFull] {
            let mut p = params("srv.postgres.database.azure.com", mode);
            let d = secure(&mut p, TlsPolicy::default(), true).unwrap();
            assert_eq!(d.rule, TlsRule::AzureVerified);
            assert_eq!(p.sslmode, Some(SslMode::VerifyFull));
            let root = sslrootcert(&p).expect("sslrootcert").to_string();
            assert!(Path::new(&root).is_file(), "{root}");
            assert_eq!(d.raised_from, (mode != SslMode::VerifyFull).then_some(mode));
        }
        // A configured sslrootcert is kept.
        let mut p = params("srv.postgres.database.azure.com", SslMode::Require);
        p.extra.push(("sslrootcert".into(), "/my/ca.pem".into()));
        secure(&mut p, TlsPolicy::default(), true).unwrap();
        assert_eq!(sslrootcert(&p), Some("/my/ca.pem"));
        assert!(!p.system_roots);
    }

    #[test]
    fn opt_outs_and_other_hosts() {
        let mut p = params("srv.postgres.database.azure.com", SslMode::Require);
        let d = secure(&mut p, TlsPolicy { allow_unverified: true, ..Default::default() }, true).unwrap();
        assert_eq!((d.rule, p.sslmode), (TlsRule::AzureUnverifiedAllowed, Some(SslMode::Require)));
        let mut p = params("127.0.0.1", SslMode::Require);
        let d = secure(&mut p, TlsPolicy::default(), true).unwrap();
        assert_eq!((d.rule, p.sslmode, sslrootcert(&p)), (TlsRule::NotAzure, Some(SslMode::Require), None));
        for mode in [SslMode::Disable, SslMode::Allow, SslMode::Prefer] {
            let mut p = params("srv.postgres.database.azure.com", mode);
            assert_eq!(secure(&mut p, TlsPolicy::default(), true).unwrap_err().kind(), ErrorKind::TlsPolicy);
            let d = secure(&mut p, TlsPolicy { allow_insecure: true, ..Default::default() }, true).unwrap();
            assert_eq!(d.rule, TlsRule::InsecureAllowed);
        }
        let mut p = params("srv.postgres.database.azure.com", SslMode::Disable);
        assert_eq!(secure(&mut p, TlsPolicy::default(), false).unwrap().rule, TlsRule::NoToken);
    }

    #[test]
    fn pgjdbc_connections_are_checked_not_changed() {
        let az = "srv.postgres.database.azure.com";
        let none = TlsPolicy::default();
        for mode in ["disable", "allow", "prefer"] {
            let e = check_pgjdbc(az, mode, None, none).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::TlsPolicy);
            assert!(e.message().contains("add sslmode=verify-full"), "{}", e.message());
            let e = check_pgjdbc("127.0.0.1", mode, None, none).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::TlsPolicy);
            let ok = check_pgjdbc(az, mode, None, TlsPolicy { allow_insecure: true, ..none }).unwrap();
            assert_eq!(ok.rule, TlsRule::InsecureAllowed);
        }
        for (mode, factory) in [("require", None), ("verify-ca", None), ("verify-full", Some("org.postgresql.ssl.NonValidatingFactory"))] {
            let e = check_pgjdbc(&format!("a.example,{az}"), mode, factory, none).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::TlsPolicy, "{mode}");
            assert!(e.message().contains("DefaultJavaSSLFactory"), "{}", e.message());
            let ok = check_pgjdbc(az, mode, factory, TlsPolicy { allow_unverified: true, ..none }).unwrap();
            assert_eq!(ok.rule, TlsRule::AzureUnverifiedAllowed);
        }
        assert_eq!(check_pgjdbc(az, "verify-full", None, none).unwrap().rule, TlsRule::AzureVerified);
        assert_eq!(check_pgjdbc(az, "verify-full", Some("org.postgresql.ssl.DefaultJavaSSLFactory"), none).unwrap().rule, TlsRule::AzureVerified);
        assert_eq!(check_pgjdbc("127.0.0.1", "require", None, none).unwrap().rule, TlsRule::NotAzure);
        assert_eq!(check_pgjdbc(az, "bogus", None, none).unwrap_err().kind(), ErrorKind::Config);
    }

    #[test]
    fn the_embedded_roots_are_azures() {
        assert_eq!(AZURE_ROOTS_PEM.matches("-----BEGIN CERTIFICATE-----").count(), 3);
        for name in ["DigiCert Global Root G2", "Microsoft RSA Root Certificate Authority 2017", "DigiCert Global Root CA"] {
            assert!(AZURE_ROOTS_PEM.contains(name), "{name}");
        }
    }
}
