//! Connection parameters: one model, parsed from and rendered to every dialect
//! (libpq keyword/value, URI, ADO.NET, JDBC, JSON, shell).//!
//! One module per dialect (`libpq`, `uri`, `ado`, `jdbc`) holds its parser and its renderer;
//! `env` renders JSON, POSIX shell and the libpq environment variables.

mod ado;
mod env;
mod jdbc;
mod libpq;
mod uri;

pub use ado::parse_ado;
pub use env::shell_quote;
pub use jdbc::parse_jdbc;
pub use libpq::parse_libpq;
pub use uri::parse_uri;

use ado::{ado_field, normalize_ado_key};

use crate::error::{Error, Result};
use crate::secret::Secret;
use percent_encoding::{percent_decode_str, utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};

/// libpq's `sslmode`, ordered from the weakest to the strictest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum SslMode {
    Disable,
    Allow,
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

impl SslMode {
    pub fn as_str(self) -> &'static str {
        match self {
            SslMode::Disable => "disable",
            SslMode::Allow => "allow",
            SslMode::Prefer => "prefer",
            SslMode::Require => "require",
            SslMode::VerifyCa => "verify-ca",
            SslMode::VerifyFull => "verify-full",
        }
    }
    /// Npgsql's spelling.
    pub fn as_ado(self) -> &'static str {
        match self {
            SslMode::Disable => "Disable",
            SslMode::Allow => "Allow",
            SslMode::Prefer => "Prefer",
            SslMode::Require => "Require",
            SslMode::VerifyCa => "VerifyCA",
            SslMode::VerifyFull => "VerifyFull",
        }
    }
    /// Accepts libpq's and Npgsql's spellings, any case.
    pub fn parse(s: &str) -> Option<SslMode> {
        let norm: String = s.chars().filter(|c| *c != '-' && *c != '_' && !c.is_whitespace()).collect();
        Some(match norm.to_ascii_lowercase().as_str() {
            "disable" => SslMode::Disable,
            "allow" => SslMode::Allow,
            "prefer" => SslMode::Prefer,
            "require" => SslMode::Require,
            "verifyca" => SslMode::VerifyCa,
            "verifyfull" => SslMode::VerifyFull,
            _ => return None,
        })
    }
    /// Whether a token may be sent under this mode: only when TLS is guaranteed.
    pub fn guarantees_tls(self) -> bool {
        matches!(self, SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull)
    }
}

/// The dialect of a connection string.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Libpq,
    Uri,
    Ado,
    Jdbc,
}

impl Dialect {
    pub fn as_str(self) -> &'static str {
        match self {
            Dialect::Libpq => "libpq keyword/value",
            Dialect::Uri => "URI",
            Dialect::Ado => "ADO.NET",
            Dialect::Jdbc => "JDBC",
        }
    }
}

/// Output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(C)]
pub enum Format {
    Libpq = 0,
    Uri = 1,
    Ado = 2,
    Jdbc = 3,
    Json = 4,
    Shell = 5,
    /// PHP PDO's `pgsql:` DSN (`key=value;` pairs, with user and password).
    Pdo = 6,
}

impl Format {
    /// Every format, in number order: help texts and tests list them from here.
    pub const ALL: [Format; 7] = [Format::Libpq, Format::Uri, Format::Ado, Format::Jdbc, Format::Json, Format::Shell, Format::Pdo];

    /// The name `parse` reads first for this format.
    pub fn name(self) -> &'static str {
        match self {
            Format::Libpq => "libpq",
            Format::Uri => "uri",
            Format::Ado => "ado",
            Format::Jdbc => "jdbc",
            Format::Json => "json",
            Format::Shell => "shell",
            Format::Pdo => "pdo",
        }
    }

    pub fn parse(s: &str) -> Result<Format> {
        Ok(match s.to_ascii_lowercase().as_str() {
            "libpq" | "keyword" | "kv" | "dsn" => Format::Libpq,
            "uri" | "url" => Format::Uri,
            "ado" | "ado.net" | "adonet" | "npgsql" | "dotnet" => Format::Ado,
            "jdbc" => Format::Jdbc,
            "json" => Format::Json,
            "shell" | "env" => Format::Shell,
            "pdo" | "pdo_pgsql" | "pgsql" => Format::Pdo,
            _ => {
                let names: Vec<&str> = Format::ALL.iter().map(|f| f.name()).collect();
                return Err(Error::config(format!("unknown format '{s}'; use one of {}", names.join(", "))));
            }
        })
    }
}

/// Connection parameters. `extra` keeps other keys in their original dialect's spelling.
/// `Debug` shows no secret: the password is a `Secret`, and `sslpassword` in `extra` is masked.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct ConnParams {
    pub host: Option<String>,
    pub port: Option<u16>,
    pub dbname: Option<String>,
    pub user: Option<String>,
    pub password: Option<Secret>,
    pub sslmode: Option<SslMode>,
    /// Other parameters, as (libpq keyword, value).
    pub extra: Vec<(String, String)>,
    /// The `sslrootcert` in `extra` is the machine's CA bundle, chosen by pgentra's TLS policy
    /// (see `tls::secure`), not the caller's: formats whose drivers have a trust store of their
    /// own (JDBC, ADO.NET) use that store instead of the file.
    pub system_roots: bool,
}

/// libpq keywords that pgentra passes through (PQconninfoOptions of PostgreSQL 15/16).
const LIBPQ_KEYWORDS: &[&str] = &[
    "host", "hostaddr", "port", "dbname", "user", "password", "passfile", "channel_binding",
    "connect_timeout", "client_encoding", "options", "application_name",
    "fallback_application_name", "keepalives", "keepalives_idle", "keepalives_interval",
    "keepalives_count", "tcp_user_timeout", "replication", "gssencmode", "sslmode",
    "requiressl", "sslcompression", "sslcert", "sslkey", "sslpassword", "sslrootcert",
    "sslcrl", "sslcrldir", "sslsni", "requirepeer", "ssl_min_protocol_version",
    "ssl_max_protocol_version", "krbsrvname", "gsslib", "gssdelegation", "service",
    "target_session_attrs", "load_balance_hosts", "sslcertmode", "require_auth", "sslnegotiation",
];

/// Whether `key` is a libpq connection parameter that pgentra passes through.
pub fn is_libpq_keyword(key: &str) -> bool {
    LIBPQ_KEYWORDS.contains(&key)
}

/// libpq's strings end at a NUL byte: a value carrying one would be cut short, and with it
/// whatever follows (sslmode among them). Refused wherever a connection string comes in.
fn refuse_nul(s: &str) -> Result<()> {
    if s.contains('\0') {
        return Err(Error::config("the connection string contains a NUL character; remove it (libpq would cut the string there)"));
    }
    Ok(())
}

/// Parse a port number (1–65535), with an error that says what to use. The value is never
/// quoted in the error: text in the port's place can be a piece of a password (a URI whose
/// password holds a `/` puts it there, as libpq reads it).
pub fn parse_port(value: &str) -> Result<u16> {
    match value.trim().parse::<u32>() {
        Ok(p) if (1..=65535).contains(&p) => Ok(p as u16),
        Ok(_) => Err(Error::config("the port is out of range; use a number from 1 to 65535 (Azure uses 5432)")),
        Err(_) => Err(Error::config(
            "the port is not a number; use a number from 1 to 65535 (Azure uses 5432); in a URI, percent-encode '/', ':', '@', '?' and '#' in the password",
        )),
    }
}

fn parse_sslmode(value: &str, key: &str) -> Result<SslMode> {
    SslMode::parse(value).ok_or_else(|| {
        Error::config(format!(
            "the value of {key} is not an sslmode; use one of disable, allow, prefer, require, verify-ca, verify-full (Azure needs require or stricter)"
        ))
    })
}

/// How a parse error names text found where a key belongs. A known key is named; anything
/// else is never quoted, because it may be a piece of a password whose value was not quoted,
/// and is described by position and by the known key it resembles.
fn key_label(key: &str, known: &[&str], pair: usize) -> String {
    if known.iter().any(|k| k.eq_ignore_ascii_case(key)) {
        return format!("key '{key}'");
    }
    let lower = key.to_ascii_lowercase();
    let near = known
        .iter()
        .map(|k| (edit_distance(&lower, &k.to_ascii_lowercase()), *k))
        .filter(|(d, k)| *d <= 2 && *d < k.len())
        .min_by_key(|(d, _)| *d);
    match near {
        Some((_, k)) => format!("an unknown key in pair {pair} (did you mean '{k}'?)"),
        None => format!("an unknown key in pair {pair}"),
    }
}

fn edit_distance(a: &str, b: &str) -> usize {
    let (a, b): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
    if a.len().abs_diff(b.len()) > 2 || a.len() > 64 {
        return usize::MAX;
    }
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.iter().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            cur[j + 1] = (prev[j] + usize::from(ca != cb)).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

impl ConnParams {
    /// Set a parameter given its libpq keyword.
    fn set_libpq(&mut self, key: &str, value: String) -> Result<()> {
        // libpq takes an empty host, dbname, user or password as not given (the default
        // applies), and a URI cannot write them; so they are not given here either.
        if value.is_empty() && matches!(key, "host" | "dbname" | "user" | "password") {
            match key {
                "host" => self.host = None,
                "dbname" => self.dbname = None,
                "user" => self.user = None,
                _ => self.password = None,
            }
            return Ok(());
        }
        match key {
            "host" => self.host = Some(value),
            "port" => self.port = Some(parse_port(&value).map_err(|e| e.context("key 'port'"))?),
            "dbname" => self.dbname = Some(value),
            "user" => self.user = Some(value),
            "password" => self.password = Some(Secret::new(value)),
            "sslmode" => self.sslmode = Some(parse_sslmode(&value, "sslmode")?),
            other => {
                if let Some(slot) = self.extra.iter_mut().find(|(k, _)| k == other) {
                    slot.1 = value;
                } else {
                    self.extra.push((other.to_string(), value));
                }
            }
        }
        Ok(())
    }

    /// A caller's value for a libpq keyword (`None` removes it). A weaker sslmode never
    /// replaces a stricter one.
    pub fn set_value(&mut self, key: &str, value: Option<String>) -> Result<()> {
        if !LIBPQ_KEYWORDS.contains(&key) {
            return Err(Error::config(format!(
                "'{key}' is not a libpq connection parameter; use keywords such as host, port, dbname, user, sslmode, sslrootcert, application_name"
            )));
        }
        let Some(value) = value else {
            match key {
                "host" => self.host = None,
                "port" => self.port = None,
                "dbname" => self.dbname = None,
                "user" => self.user = None,
                "password" => self.password = None,
                "sslmode" => {}
                _ => {
                    self.extra.retain(|(k, _)| k != key);
                    if key == "sslrootcert" {
                        self.system_roots = false;
                    }
                }
            }
            return Ok(());
        };
        if value.contains('\0') {
            return Err(Error::config(format!("the value of '{key}' contains a NUL character; remove it (libpq would cut the value there)")));
        }
        if key == "sslmode" {
            let m = parse_sslmode(&value, "sslmode")?;
            self.sslmode = Some(self.sslmode.map_or(m, |s| s.max(m)));
            return Ok(());
        }
        if key == "sslrootcert" {
            self.system_roots = false;
        }
        self.set_libpq(key, value)
    }

    /// Overlay: every field set in `other` replaces ours, except that a weaker sslmode never
    /// replaces a stricter one.
    pub fn overlay(&mut self, other: ConnParams) {
        if other.host.is_some() {
            self.host = other.host;
        }
        if other.port.is_some() {
            self.port = other.port;
        }
        if other.dbname.is_some() {
            self.dbname = other.dbname;
        }
        if other.user.is_some() {
            self.user = other.user;
        }
        if other.password.is_some() {
            self.password = other.password;
        }
        if let Some(m) = other.sslmode {
            self.sslmode = Some(self.sslmode.map_or(m, |s| s.max(m)));
        }
        for (k, v) in other.extra {
            let _ = self.set_libpq(&k, v);
        }
    }
}

impl std::fmt::Debug for ConnParams {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let extra: Vec<(&str, &str)> = self
            .extra
            .iter()
            .map(|(k, v)| (k.as_str(), if k.contains("password") { "***" } else { v.as_str() }))
            .collect();
        f.debug_struct("ConnParams")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("dbname", &self.dbname)
            .field("user", &self.user)
            .field("password", &self.password)
            .field("sslmode", &self.sslmode)
            .field("extra", &extra)
            .field("system_roots", &self.system_roots)
            .finish()
    }
}

// ---------------------------------------------------------------------------------------------
// Parsing
// ---------------------------------------------------------------------------------------------

/// Detect the dialect of a connection string.
pub fn detect(s: &str) -> Result<Dialect> {
    let t = s.trim_start();
    let lower: String = t.chars().take(16).collect::<String>().to_ascii_lowercase();
    if lower.starts_with("jdbc:") {
        return Ok(Dialect::Jdbc);
    }
    if lower.starts_with("postgresql://") || lower.starts_with("postgres://") {
        return Ok(Dialect::Uri);
    }
    if t.is_empty() {
        return Err(Error::config("the connection string is empty"));
    }
    // ADO.NET: `Key=Value;` pairs. The first key decides: libpq keys never contain spaces or
    // capitals in practice, ADO keys are Server/Host/Database/User Id/...
    let first_key: String = t.split('=').next().unwrap_or("").trim().to_string();
    let first_key_norm = normalize_ado_key(&first_key);
    let looks_libpq_key = LIBPQ_KEYWORDS.contains(&first_key.as_str());
    if !looks_libpq_key && ado_field(&first_key_norm).is_some() {
        return Ok(Dialect::Ado);
    }
    if looks_libpq_key && t.contains(';') && !t.contains(' ') {
        // `host=x;dbname=y`: ADO.NET separators around libpq keys.
        return Ok(Dialect::Ado);
    }
    Ok(Dialect::Libpq)
}

/// Parse a connection string in any dialect.
pub fn parse(s: &str) -> Result<(Dialect, ConnParams)> {
    let d = detect(s)?;
    let p = match d {
        Dialect::Libpq => parse_libpq(s).map_err(|e| {
            let ado_like = s.split(';').skip(1).any(|seg| {
                let k = seg.split('=').next().unwrap_or("");
                seg.contains('=') && ado_field(&normalize_ado_key(k)).is_some()
            });
            if ado_like {
                Error::config("this looks like libpq keyword/value and ADO.NET (Key=Value;) syntax mixed; use one dialect: spaces between key=value pairs, or ';' after each")
            } else {
                e
            }
        })?,
        Dialect::Uri => parse_uri(s)?,
        Dialect::Ado => parse_ado(s)?,
        Dialect::Jdbc => parse_jdbc(s)?,
    };
    Ok((d, p))
}

fn decode(s: &str, what: &str) -> Result<String> {
    let v = percent_decode_str(s)
        .decode_utf8()
        .map(|c| c.into_owned())
        .map_err(|_| Error::config(format!("{what} is not valid UTF-8 after percent-decoding")))?;
    if v.contains('\0') {
        return Err(Error::config(format!("{what} contains %00 (a NUL character); remove it (libpq would cut the value there)")));
    }
    Ok(v)
}

fn strip_prefix_ci<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    if s.len() >= prefix.len() && s.is_char_boundary(prefix.len()) && s[..prefix.len()].eq_ignore_ascii_case(prefix) {
        Some(&s[prefix.len()..])
    } else {
        None
    }
}

/// Everything but RFC 3986 unreserved characters is percent-encoded.
const COMPONENT: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~');

fn enc(s: &str) -> String {
    utf8_percent_encode(s, COMPONENT).to_string()
}

impl ConnParams {
    /// Render in the given format. The password (a token, in token mode) is included.
    pub fn render(&self, format: Format) -> String {
        match format {
            Format::Libpq => self.to_libpq(),
            Format::Uri => self.to_uri(),
            Format::Ado => self.to_ado(),
            Format::Jdbc => self.to_jdbc(),
            Format::Json => self.to_json(),
            Format::Shell => self.to_shell(),
            Format::Pdo => self.to_pdo(),
        }
    }

    /// Every parameter that is set, as (libpq keyword, value), password included: a caller's
    /// values in the form `Connector::params_with` takes.
    pub fn as_overrides(&self) -> Vec<(String, Option<String>)> {
        self.ordered().into_iter().map(|(k, v)| (k.to_string(), Some(v))).collect()
    }

    fn ordered(&self) -> Vec<(&str, String)> {
        let mut v: Vec<(&str, String)> = Vec::with_capacity(6 + self.extra.len());
        if let Some(h) = &self.host {
            v.push(("host", h.clone()));
        }
        if let Some(p) = self.port {
            v.push(("port", p.to_string()));
        }
        if let Some(d) = &self.dbname {
            v.push(("dbname", d.clone()));
        }
        if let Some(u) = &self.user {
            v.push(("user", u.clone()));
        }
        if let Some(p) = &self.password {
            v.push(("password", p.expose().to_string()));
        }
        if let Some(s) = self.sslmode {
            v.push(("sslmode", s.as_str().to_string()));
        }
        for (k, val) in &self.extra {
            v.push((k.as_str(), val.clone()));
        }
        v
    }

    /// The value of another libpq parameter, if set.
    pub fn get_extra(&self, key: &str) -> Option<&str> {
        self.extra.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }
}
#[cfg(test)]
mod tests {
    use super::*;

    fn p(host: &str, user: &str, pw: &str, db: &str) -> ConnParams {
        ConnParams {
            host: Some(host.into()),
            port: Some(5432),
            dbname: Some(db.into()),
            user: Some(user.into()),
            password: Some(Secret::new(pw)),
            sslmode: Some(SslMode::Require),
            extra: vec![],
            system_roots: false,
        }
    }

    #[test]
    fn service_connector_shapes_parse() {
        let (d, c) = parse("Server=srv.postgres.database.azure.com;Database=app;Port=5432;Ssl Mode=Require;User Id=aad_conn;").unwrap();
        assert_eq!(d, Dialect::Ado);
        assert_eq!(c.host.as_deref(), Some("srv.postgres.database.azure.com"));
        assert_eq!(c.user.as_deref(), Some("aad_conn"));
        assert_eq!(c.sslmode, Some(SslMode::Require));
        let (d, c) = parse("host=srv dbname=app sslmode=require user=u@srv").unwrap();
        assert_eq!(d, Dialect::Libpq);
        assert_eq!(c.user.as_deref(), Some("u@srv"));
        let (d, c) = parse("jdbc:postgresql://srv:5432/app?sslmode=require&user=u%40srv").unwrap();
        assert_eq!(d, Dialect::Jdbc);
        assert_eq!(c.user.as_deref(), Some("u@srv"));
        assert_eq!(c.dbname.as_deref(), Some("app"));
        let (d, c) = parse("postgresql://u%40srv:p%20w@srv:6543/app?sslmode=verify-full").unwrap();
        assert_eq!(d, Dialect::Uri);
        assert_eq!(c.port, Some(6543));
        assert_eq!(c.password.unwrap().expose(), "p w");
        for key in ["SslMode", "SSL Mode", "sslmode", "ssl mode", "SSLMODE"] {
            let (_, c) = parse(&format!("Server=h;{key}=Require")).unwrap();
            assert_eq!(c.sslmode, Some(SslMode::Require), "{key}");
        }
    }

    #[test]
    fn bad_input_names_the_key() {
        let e = parse_libpq("host=h password='abc").unwrap_err();
        assert!(e.message().contains("unterminated") && e.message().contains("password"), "{e}");
        assert!(!e.message().contains("abc"));
        let e = parse_libpq("host=h sslmode=sometimes").unwrap_err();
        assert!(e.message().contains("sslmode"), "{e}");
        let e = parse_libpq("host=h port=70000").unwrap_err();
        assert!(e.message().contains("out of range") && e.message().contains("port") && !e.message().contains("70000"), "{e}");
        let e = parse("host=h dbname=d;User Id=u").unwrap_err();
        assert!(e.message().contains("mixed") || e.message().contains("unknown key"), "{e}");
        let e = parse_ado("Server=h;Password=\"abc").unwrap_err();
        assert!(e.message().contains("Password") && !e.message().contains("abc"), "{e}");
        // An unknown key is never quoted (it may be a piece of an unquoted password).
        let e = parse_ado("Server=h;Bogus Key=1").unwrap_err();
        assert!(e.message().contains("an unknown key in pair 2") && !e.message().contains("Bogus"), "{e}");
        let e = parse_ado("Server=h;Passwrd=x").unwrap_err();
        assert!(e.message().contains("did you mean 'Password'?"), "{e}");
        // The example of issue #13: a '/' in a URI's password.
        let e = parse("postgresql://app:Xy7/QpZ+w9@host/db").unwrap_err();
        assert!(!e.message().contains("Xy7") && e.message().contains("port"), "{e}");
    }

    /// What pgJDBC's `Driver.parseURL` reads back (issue #14, item 5): every host carries its
    /// port, what JDBC cannot express is refused, what it can is carried.
    #[test]
    fn jdbc_output_pgjdbc_reads_back_exactly() {
        let mut c = p("a,b", "u", "pw", "db");
        c.port = Some(6432);
        c.extra = vec![("application_name".into(), "my app".into()), ("options".into(), "-c search_path=x".into())];
        assert!(c.check_jdbc().is_ok());
        let s = c.to_jdbc();
        assert_eq!(s, "jdbc:postgresql://a:6432,b:6432/db?sslmode=require&user=u&password=pw&ApplicationName=my%20app&options=-c%20search_path%3Dx");
        let (_, back) = parse(&s).unwrap();
        assert_eq!((back.host.as_deref(), back.port), (Some("a,b"), Some(6432)));
        assert_eq!(back.get_extra("application_name"), Some("my app"));
        assert_eq!(back.get_extra("options"), Some("-c search_path=x"));
        assert!(parse("jdbc:postgresql://a:1,b:2/db").unwrap_err().message().contains("different ports"));
        // A Unix-socket directory and hosts that would inject parameters are refused.
        for host in ["/var/run/postgresql", "h/x?sslmode=disable&", "h?sslmode=disable", "h&x", "[::1]", "h#", "a b", "u@h"] {
            let mut c = p(host, "u", "pw", "db");
            c.host = Some(host.into());
            assert!(c.check_jdbc().is_err(), "{host}");
        }
        let mut c = p("h", "u", "pw", "db");
        c.extra = vec![("gssencmode".into(), "disable".into())];
        assert!(c.check_jdbc().unwrap_err().message().contains("gssencmode"));
        let mut c = p("::1", "u", "pw", "db");
        c.extra = vec![];
        assert!(c.check_jdbc().is_ok());
        assert!(c.to_jdbc().starts_with("jdbc:postgresql://[::1]:5432/db?"));
    }

    #[test]
    fn caller_values_never_lower_sslmode() {
        let mut p = ConnParams { sslmode: Some(SslMode::VerifyFull), ..Default::default() };
        p.set_value("sslmode", Some("require".into())).unwrap();
        p.set_value("sslmode", None).unwrap();
        assert_eq!(p.sslmode, Some(SslMode::VerifyFull));
        p.overlay(ConnParams { sslmode: Some(SslMode::Disable), ..Default::default() });
        assert_eq!(p.sslmode, Some(SslMode::VerifyFull));
        let mut p = ConnParams { sslmode: Some(SslMode::Require), ..Default::default() };
        p.set_value("sslmode", Some("verify-full".into())).unwrap();
        assert_eq!(p.sslmode, Some(SslMode::VerifyFull));
        assert!(p.set_value("colour", Some("x".into())).is_err());
    }

    #[test]
    fn debug_shows_no_secret() {
        let (_, c) = parse("host=h password=tok-secret sslpassword=key-secret application_name=app").unwrap();
        let d = format!("{c:?}");
        assert!(!d.contains("tok-secret") && !d.contains("key-secret"), "{d}");
        assert!(d.contains("application_name") && d.contains("app"), "{d}");
    }

    #[test]
    fn renders_every_format() {
        let c = p("h.postgres.database.azure.com", "aad_x", "tok.en", "db");
        assert_eq!(c.to_libpq(), "host=h.postgres.database.azure.com port=5432 dbname=db user=aad_x password=tok.en sslmode=require");
        assert_eq!(c.to_uri(), "postgresql://aad_x:tok.en@h.postgres.database.azure.com:5432/db?sslmode=require");
        assert_eq!(c.to_ado(), "Server=h.postgres.database.azure.com;Port=5432;Database=db;User Id=aad_x;Password=tok.en;Ssl Mode=Require;");
        assert_eq!(c.to_jdbc(), "jdbc:postgresql://h.postgres.database.azure.com:5432/db?sslmode=require&user=aad_x&password=tok.en");
        assert_eq!(c.to_json(), r#"{"host":"h.postgres.database.azure.com","port":5432,"dbname":"db","user":"aad_x","password":"tok.en","sslmode":"require"}"#);
        assert_eq!(c.to_shell(), "export PGHOST='h.postgres.database.azure.com' PGPORT='5432' PGDATABASE='db' PGUSER='aad_x' PGPASSWORD='tok.en' PGSSLMODE='require'");
    }

    #[test]
    fn hostile_values_round_trip_through_our_parsers() {
        let nasty = "a b'c\"d\\e;f=g@h/i?j#k%l ü";
        let c = p("h", nasty, nasty, nasty);
        for f in [Format::Libpq, Format::Uri, Format::Ado, Format::Jdbc] {
            let s = c.render(f);
            let (_, back) = parse(&s).unwrap_or_else(|e| panic!("{f:?}: {e}"));
            assert_eq!(back.user.as_deref(), Some(nasty), "{f:?} {s}");
            assert_eq!(back.dbname.as_deref(), Some(nasty), "{f:?} {s}");
            assert_eq!(back.password.as_ref().map(|p| p.expose()), Some(nasty), "{f:?} {s}");
        }
    }

    mod prop {
        use super::*;
        use proptest::prelude::*;

        /// Every way a careless caller puts a password into each dialect: raw, naively quoted.
        fn embeddings(pw: &str) -> Vec<String> {
            vec![
                format!("host=h password={pw} dbname=d"),
                format!("host=h password='{pw}' dbname=d"),
                format!("host=h dbname=d password={pw}"),
                format!("postgresql://app:{pw}@host/db"),
                format!("postgresql://host/db?password={pw}&sslmode=require"),
                format!("postgres://{pw}@host:5432/db"),
                format!("Server=h;Password={pw};Database=d"),
                format!("Server=h;Password=\"{pw}\";Database=d"),
                format!("Server=h;Password='{pw}'"),
                format!("jdbc:postgresql://h:5432/db?password={pw}&user=u"),
                format!("jdbc:postgresql://h:{pw}/db"),
            ]
        }

        fn assert_no_fragment(pw: &str, input: &str, shown: &str) -> Result<(), TestCaseError> {
            let chars: Vec<char> = pw.chars().collect();
            for w in chars.windows(4) {
                let frag: String = w.iter().collect();
                prop_assert!(!shown.contains(&frag), "fragment {:?} of the password in {:?} (input {:?})", frag, shown, input);
            }
            Ok(())
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(512))]
            /// No run of four characters of a password ever appears in a parse error, its
            /// Display or its Debug, in any dialect (issue #13, item 6).
            #[test]
            fn parse_errors_never_carry_a_fragment_of_the_password(
                pw in "[A-Z0-9 !\"#$%&'()*+,\\-./:;<=>?@\\[\\\\\\]^_`{|}~]{4,24}"
            ) {
                for input in embeddings(&pw) {
                    if let Err(e) = parse(&input) {
                        assert_no_fragment(&pw, &input, &format!("{e} {e:?}"))?;
                    }
                }
            }
        }

        proptest! {
            #[test]
            fn round_trip(user in "\\PC{0,20}", pw in "\\PC{0,40}", db in "\\PC{1,20}", host in "[a-z][a-z0-9.-]{0,20}") {
                let c = ConnParams { host: Some(host), port: Some(5432), dbname: Some(db), user: Some(user), password: Some(Secret::new(pw)), sslmode: Some(SslMode::Require), extra: vec![], system_roots: false };
                for f in [Format::Libpq, Format::Uri, Format::Ado, Format::Jdbc] {
                    let s = c.render(f);
                    let (_, back) = parse(&s).map_err(|e| TestCaseError::fail(format!("{f:?} {s}: {e}")))?;
                    // An empty value is the same as none (as in libpq).
                    let given = |v: Option<&str>| v.filter(|v| !v.is_empty()).map(str::to_string);
                    prop_assert_eq!(&back.dbname, &c.dbname, "{:?} {}", f, s);
                    prop_assert_eq!(back.password.as_ref().map(|p| p.expose().to_string()), given(c.password.as_ref().map(|p| p.expose())));
                    prop_assert_eq!(back.user.clone(), given(c.user.as_deref()), "{:?} {}", f, s);
                }
            }
        }
    }
}
