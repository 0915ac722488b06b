//! Connection parameters: one model, parsed from and rendered to every dialect
//! (libpq keyword/value, URI, ADO.NET, JDBC, JSON, shell).

use crate::error::{Error, Result};
use crate::secret::Secret;
use percent_encoding::{percent_decode_str, utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use std::fmt::Write as _;

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
                return Err(Error::config(format!(
                    "unknown format '{s}'; use one of libpq, uri, ado, jdbc, json, shell, pdo"
                )))
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

/// ADO.NET keys as Npgsql spells them (for error messages).
const ADO_KEYS: &[&str] = &[
    "Server", "Host", "Port", "Database", "User Id", "Username", "Password", "Ssl Mode", "SslMode",
    "Timeout", "Application Name", "Options", "Target Session Attributes", "Root Certificate",
    "SSL Certificate", "SSL Key", "SSL Password", "Keepalive",
];

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

/// libpq keyword/value, following `conninfo_parse` in libpq's fe-connect.c.
pub fn parse_libpq(s: &str) -> Result<ConnParams> {
    refuse_nul(s)?;
    let mut out = ConnParams::default();
    let chars: Vec<char> = s.chars().collect();
    let mut i = 0;
    let n = chars.len();
    let mut pair = 0;
    loop {
        while i < n && chars[i].is_whitespace() {
            i += 1;
        }
        if i >= n {
            break;
        }
        pair += 1;
        let kstart = i;
        while i < n && chars[i] != '=' && !chars[i].is_whitespace() {
            i += 1;
        }
        let key: String = chars[kstart..i].iter().collect();
        let label = || key_label(&key, LIBPQ_KEYWORDS, pair);
        while i < n && chars[i].is_whitespace() {
            i += 1;
        }
        if i >= n || chars[i] != '=' {
            return Err(Error::config(format!(
                "missing '=' after {} in libpq keyword/value string; write key=value pairs separated by spaces, and quote a value that holds spaces: password='...'",
                label()
            )));
        }
        i += 1;
        while i < n && chars[i].is_whitespace() {
            i += 1;
        }
        let mut value = String::new();
        if i < n && chars[i] == '\'' {
            i += 1;
            let mut closed = false;
            while i < n {
                match chars[i] {
                    '\\' if i + 1 < n => {
                        value.push(chars[i + 1]);
                        i += 2;
                    }
                    '\\' => i += 1,
                    '\'' => {
                        closed = true;
                        i += 1;
                        break;
                    }
                    c => {
                        value.push(c);
                        i += 1;
                    }
                }
            }
            if !closed {
                return Err(Error::config(format!(
                    "unterminated quoted value for {}; close it with a single quote and escape inner quotes as \\'",
                    label()
                )));
            }
        } else {
            while i < n && !chars[i].is_whitespace() {
                if chars[i] == '\\' && i + 1 < n {
                    value.push(chars[i + 1]);
                    i += 2;
                } else {
                    value.push(chars[i]);
                    i += 1;
                }
            }
        }
        if !LIBPQ_KEYWORDS.contains(&key.as_str()) {
            return Err(Error::config(format!(
                "{} in libpq keyword/value string; expected keys such as host, port, dbname, user, password, sslmode, and a value with spaces in single quotes",
                label()
            )));
        }
        out.set_libpq(&key, value)?;
    }
    Ok(out)
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

/// `postgresql://[user[:password]@][host][:port][/dbname][?key=value&...]`
pub fn parse_uri(s: &str) -> Result<ConnParams> {
    refuse_nul(s)?;
    let s = s.trim();
    let rest = if let Some(r) = strip_prefix_ci(s, "postgresql://") {
        r
    } else if let Some(r) = strip_prefix_ci(s, "postgres://") {
        r
    } else {
        return Err(Error::config("a URI must start with postgresql:// or postgres://"));
    };
    let mut out = ConnParams::default();
    let (before_query, query) = match rest.find('?') {
        Some(q) => (&rest[..q], Some(&rest[q + 1..])),
        None => (rest, None),
    };
    let (authority, path) = match before_query.find('/') {
        Some(p) => (&before_query[..p], Some(&before_query[p + 1..])),
        None => (before_query, None),
    };
    let hostport = match authority.rfind('@') {
        Some(at) => {
            let userinfo = &authority[..at];
            match userinfo.find(':') {
                Some(c) => {
                    out.user = Some(decode(&userinfo[..c], "the URI's user")?).filter(|u| !u.is_empty());
                    let pw = decode(&userinfo[c + 1..], "the URI's password")?;
                    out.password = (!pw.is_empty()).then(|| Secret::new(pw));
                }
                None => out.user = Some(decode(userinfo, "the URI's user")?).filter(|u| !u.is_empty()),
            }
            &authority[at + 1..]
        }
        None => authority,
    };
    if !hostport.is_empty() {
        let (host, port) = if let Some(h) = hostport.strip_prefix('[') {
            let end = h.find(']').ok_or_else(|| Error::config("unterminated '[' in the URI's host"))?;
            let port = h[end + 1..].strip_prefix(':');
            (h[..end].to_string(), port)
        } else if hostport.contains(',') {
            (hostport.to_string(), None)
        } else {
            match hostport.rfind(':') {
                Some(c) => (hostport[..c].to_string(), Some(&hostport[c + 1..])),
                None => (hostport.to_string(), None),
            }
        };
        if !host.is_empty() {
            out.host = Some(decode(&host, "the URI's host")?);
        }
        if let Some(p) = port {
            if !p.is_empty() {
                out.port = Some(parse_port(p).map_err(|e| e.context("URI"))?);
            }
        }
    }
    if let Some(path) = path {
        if !path.is_empty() {
            out.dbname = Some(decode(path, "the URI's database")?);
        }
    }
    if let Some(q) = query {
        for (n, pair) in q.split('&').filter(|p| !p.is_empty()).enumerate() {
            let (k, v) = pair.split_once('=').ok_or_else(|| {
                Error::config(format!("URI parameter {} has no '='; write key=value, and percent-encode '&' inside a value", n + 1))
            })?;
            let k = decode(k, "a URI parameter name")?;
            if !LIBPQ_KEYWORDS.contains(&k.as_str()) && k != "ssl" {
                return Err(Error::config(format!(
                    "{} in the URI's parameters; use libpq keywords such as sslmode, application_name",
                    key_label(&k, LIBPQ_KEYWORDS, n + 1)
                )));
            }
            let v = decode(v, &format!("URI parameter '{k}'"))?;
            let k = if k == "ssl" && v == "true" { "sslmode".to_string() } else { k };
            let v = if k == "sslmode" && v == "true" { "require".to_string() } else { v };
            if !LIBPQ_KEYWORDS.contains(&k.as_str()) {
                return Err(Error::config(format!("URI parameter '{k}' must be true (or use sslmode=)")));
            }
            out.set_libpq(&k, v)?;
        }
    }
    Ok(out)
}

fn strip_prefix_ci<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    if s.len() >= prefix.len() && s.is_char_boundary(prefix.len()) && s[..prefix.len()].eq_ignore_ascii_case(prefix) {
        Some(&s[prefix.len()..])
    } else {
        None
    }
}

/// `jdbc:postgresql://host[:port]/database?key=value&...`
pub fn parse_jdbc(s: &str) -> Result<ConnParams> {
    refuse_nul(s)?;
    let s = s.trim();
    let rest = strip_prefix_ci(s, "jdbc:postgresql://").ok_or_else(|| {
        Error::config("a JDBC URL must start with jdbc:postgresql://")
    })?;
    let (before_query, query) = match rest.find('?') {
        Some(q) => (&rest[..q], Some(&rest[q + 1..])),
        None => (rest, None),
    };
    let (hostport, db) = match before_query.find('/') {
        Some(p) => (&before_query[..p], &before_query[p + 1..]),
        None => (before_query, ""),
    };
    let mut out = ConnParams::default();
    // `a:6432,b:6432`: each host carries its own port (pgJDBC gives one without a port 5432).
    let mut hosts = Vec::new();
    let mut ports = Vec::new();
    for hp in hostport.split(',') {
        let (host, port) = if let Some(h) = hp.strip_prefix('[') {
            let end = h.find(']').ok_or_else(|| Error::config("unterminated '[' in the JDBC host"))?;
            (h[..end].to_string(), h[end + 1..].strip_prefix(':'))
        } else {
            match hp.rfind(':') {
                Some(c) => (hp[..c].to_string(), Some(&hp[c + 1..])),
                None => (hp.to_string(), None),
            }
        };
        hosts.push(host);
        ports.push(match port.filter(|p| !p.is_empty()) {
            Some(p) => Some(parse_port(p).map_err(|e| e.context("JDBC URL"))?),
            None => None,
        });
    }
    if hosts.len() > 1 {
        let with_default: Vec<u16> = ports.iter().map(|p| p.unwrap_or(5432)).collect();
        if with_default.windows(2).any(|w| w[0] != w[1]) {
            return Err(Error::config("the JDBC URL's hosts have different ports, which one port setting cannot carry; give every host the same port"));
        }
        out.port = ports.iter().any(Option::is_some).then(|| with_default[0]);
    } else {
        out.port = ports[0];
    }
    let host = hosts.join(",");
    if !host.is_empty() && hosts.iter().all(|h| !h.is_empty()) {
        out.host = Some(host);
    }
    if !db.is_empty() {
        out.dbname = Some(decode(db, "the JDBC database")?);
    }
    if let Some(q) = query {
        for pair in q.split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            let k = decode(k, "a JDBC parameter name")?;
            let v = decode(v, "a JDBC parameter's value")?;
            match k.as_str() {
                "user" | "password" | "sslmode" | "dbname" | "sslrootcert" | "sslcert" | "sslkey" | "sslpassword" | "options" => out.set_libpq(&k, v)?,
                "ApplicationName" => out.set_libpq("application_name", v)?,
                "connectTimeout" => out.set_libpq("connect_timeout", v)?,
                "ssl" if v.eq_ignore_ascii_case("true") && out.sslmode.is_none() => {
                    out.sslmode = Some(SslMode::Require);
                }
                // pgjdbc-only properties (authenticationPluginClassName, sslfactory, ...):
                // meaningless to libpq, so they are dropped here.
                _ => {}
            }
        }
    }
    Ok(out)
}

fn normalize_ado_key(k: &str) -> String {
    k.chars().filter(|c| !c.is_whitespace()).collect::<String>().to_ascii_lowercase()
}

/// The libpq keyword an ADO.NET key stands for.
fn ado_field(norm: &str) -> Option<&'static str> {
    Some(match norm {
        "server" | "host" | "datasource" | "address" | "addr" | "networkaddress" => "host",
        "port" => "port",
        "database" | "db" | "initialcatalog" => "dbname",
        "userid" | "username" | "user" | "uid" => "user",
        "password" | "pwd" | "psw" => "password",
        "sslmode" => "sslmode",
        "timeout" => "connect_timeout",
        "applicationname" => "application_name",
        "options" => "options",
        "targetsessionattributes" => "target_session_attrs",
        "rootcertificate" => "sslrootcert",
        "sslcertificate" => "sslcert",
        "sslkey" => "sslkey",
        "sslpassword" => "sslpassword",
        "keepalive" => "keepalives_idle",
        "trustservercertificate" | "includeerrordetail" | "pooling" | "minimumpoolsize"
        | "maximumpoolsize" | "commandtimeout" | "connectionidlelifetime" | "maxpoolsize"
        | "minpoolsize" | "encoding" | "searchpath" | "multiplexing" => "",
        _ => return None,
    })
}

/// ADO.NET `Key=Value;` pairs as Npgsql and DbConnectionStringBuilder read them.
pub fn parse_ado(s: &str) -> Result<ConnParams> {
    refuse_nul(s)?;
    let mut out = ConnParams::default();
    let chars: Vec<char> = s.chars().collect();
    let n = chars.len();
    let mut i = 0;
    let mut pair = 0;
    loop {
        while i < n && (chars[i].is_whitespace() || chars[i] == ';') {
            i += 1;
        }
        if i >= n {
            break;
        }
        let kstart = i;
        // `==` inside a key stands for a literal '='.
        let mut key = String::new();
        while i < n {
            if chars[i] == '=' {
                if i + 1 < n && chars[i + 1] == '=' {
                    key.push('=');
                    i += 2;
                    continue;
                }
                break;
            }
            if chars[i] == ';' {
                break;
            }
            key.push(chars[i]);
            i += 1;
        }
        let _ = kstart;
        pair += 1;
        let key = key.trim().to_string();
        let label = || {
            if ado_field(&normalize_ado_key(&key)).is_some() {
                format!("key '{key}'")
            } else {
                key_label(&key, ADO_KEYS, pair)
            }
        };
        if i >= n || chars[i] != '=' {
            return Err(Error::config(format!(
                "missing '=' after {} in ADO.NET string; write Key=Value; pairs, and double-quote a value that holds ';'",
                label()
            )));
        }
        i += 1;
        while i < n && chars[i].is_whitespace() && chars[i] != ';' {
            i += 1;
        }
        let mut value = String::new();
        if i < n && (chars[i] == '"' || chars[i] == '\'') {
            let q = chars[i];
            i += 1;
            let mut closed = false;
            while i < n {
                if chars[i] == q {
                    if i + 1 < n && chars[i + 1] == q {
                        value.push(q);
                        i += 2;
                        continue;
                    }
                    closed = true;
                    i += 1;
                    break;
                }
                value.push(chars[i]);
                i += 1;
            }
            if !closed {
                return Err(Error::config(format!(
                    "unterminated quoted value for {} in ADO.NET string; close the quote and double any quote inside",
                    label()
                )));
            }
            while i < n && chars[i].is_whitespace() {
                i += 1;
            }
            if i < n && chars[i] != ';' {
                return Err(Error::config(format!(
                    "unexpected text after the quoted value of {} in ADO.NET string; end the pair with ';'",
                    label()
                )));
            }
        } else {
            while i < n && chars[i] != ';' {
                value.push(chars[i]);
                i += 1;
            }
            value = value.trim().to_string();
        }
        let norm = normalize_ado_key(&key);
        let field = ado_field(&norm).ok_or_else(|| {
            Error::config(format!(
                "{} in ADO.NET string; expected keys such as Server, Port, Database, User Id, Password, Ssl Mode, and a value holding ';' in double quotes",
                label()
            ))
        })?;
        if field != "password" && (value.contains(" host=") || value.contains(" dbname=") || value.contains(" user=")) {
            return Err(Error::config(format!(
                "key '{key}' holds libpq key=value text: this looks like ADO.NET and libpq syntax mixed; use one dialect"
            )));
        }
        match field {
            "" => {}
            "sslmode" => out.sslmode = Some(parse_sslmode(&value, &format!("'{key}'"))?),
            "port" => out.port = Some(parse_port(&value).map_err(|e| e.context(format!("key '{key}'")))?),
            f => out.set_libpq(f, value)?,
        }
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------------------
// Rendering
// ---------------------------------------------------------------------------------------------

/// Everything but RFC 3986 unreserved characters is percent-encoded.
const COMPONENT: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~');

fn enc(s: &str) -> String {
    utf8_percent_encode(s, COMPONENT).to_string()
}

fn libpq_value(out: &mut String, v: &str) {
    let needs_quotes = v.is_empty() || v.chars().any(|c| c.is_whitespace() || c == '\'' || c == '\\');
    if needs_quotes {
        out.push('\'');
        for c in v.chars() {
            if c == '\'' || c == '\\' {
                out.push('\\');
            }
            out.push(c);
        }
        out.push('\'');
    } else {
        out.push_str(v);
    }
}

fn ado_value(out: &mut String, v: &str) {
    let needs_quotes = v.is_empty()
        || v.contains(';')
        || v.contains('=')
        || v.contains('"')
        || v.contains('\'')
        || v.starts_with(char::is_whitespace)
        || v.ends_with(char::is_whitespace);
    if needs_quotes {
        out.push('"');
        for c in v.chars() {
            if c == '"' {
                out.push('"');
            }
            out.push(c);
        }
        out.push('"');
    } else {
        out.push_str(v);
    }
}

/// The pgJDBC property for a libpq parameter, if there is one.
fn jdbc_property(key: &str, value: &str) -> Option<(&'static str, String)> {
    Some(match key {
        "application_name" => ("ApplicationName", value.to_string()),
        "options" => ("options", value.to_string()),
        "connect_timeout" => ("connectTimeout", value.to_string()),
        "sslrootcert" => ("sslrootcert", value.to_string()),
        "sslcert" => ("sslcert", value.to_string()),
        "sslkey" => ("sslkey", value.to_string()),
        "sslpassword" => ("sslpassword", value.to_string()),
        "keepalives" => ("tcpKeepAlive", (value.trim() != "0").to_string()),
        "target_session_attrs" => (
            "targetServerType",
            match value {
                "any" => "any",
                "read-write" | "primary" => "primary",
                "read-only" | "standby" => "secondary",
                "prefer-standby" => "preferSecondary",
                _ => return None,
            }
            .to_string(),
        ),
        _ => return None,
    })
}

/// POSIX shell single-quoting.
pub fn shell_quote(v: &str) -> String {
    let mut s = String::with_capacity(v.len() + 2);
    s.push('\'');
    for c in v.chars() {
        if c == '\'' {
            s.push_str("'\\''");
        } else {
            s.push(c);
        }
    }
    s.push('\'');
    s
}

fn json_str(out: &mut String, v: &str) {
    out.push('"');
    for c in v.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
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

    /// Whether `to_pdo` can carry every value: PDO turns each `;` of a DSN into a space
    /// before libpq reads it, so a value holding `;` cannot be written there.
    pub fn pdo_representable(&self) -> bool {
        self.ordered().iter().all(|(_, v)| !v.contains(';'))
    }

    /// `pgsql:host=...;port=...;dbname=...;user=...;password=...;sslmode=...`, values quoted as
    /// libpq reads them (PDO hands the DSN to libpq with `;` turned into spaces).
    pub fn to_pdo(&self) -> String {
        let mut out = String::with_capacity(256);
        out.push_str("pgsql:");
        for (i, (k, v)) in self.ordered().into_iter().enumerate() {
            if i > 0 {
                out.push(';');
            }
            out.push_str(k);
            out.push('=');
            libpq_value(&mut out, &v);
        }
        out
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

    pub fn to_libpq(&self) -> String {
        let mut out = String::with_capacity(256);
        for (k, v) in self.ordered() {
            if !out.is_empty() {
                out.push(' ');
            }
            out.push_str(k);
            out.push('=');
            libpq_value(&mut out, &v);
        }
        out
    }

    pub fn to_uri(&self) -> String {
        let mut out = String::with_capacity(256);
        out.push_str("postgresql://");
        if let Some(u) = &self.user {
            out.push_str(&enc(u));
            if let Some(p) = &self.password {
                out.push(':');
                out.push_str(&enc(p.expose()));
            }
            out.push('@');
        }
        // A host that is not a plain name, list of names or IPv6 address goes in the query,
        // where percent-encoding carries any value (libpq reads `?host=` too).
        let plain = |n: &str| !n.is_empty() && n.chars().all(|c| c.is_ascii_alphanumeric() || "-._~".contains(c));
        let ipv6 = |n: &str| n.contains(':') && n.chars().all(|c| c.is_ascii_hexdigit() || c == ':' || c == '.');
        // A list of hosts shares one port in libpq's keyword form but not in a URI's
        // authority (`a,b:5432` gives the port to b alone): lists go in the query with the port.
        let mut host_in_query = None;
        let list = self.host.as_deref().is_some_and(|h| h.contains(','));
        if let Some(h) = &self.host {
            if list {
                host_in_query = Some(h);
            } else if plain(h) {
                out.push_str(h);
            } else if ipv6(h) {
                out.push('[');
                out.push_str(h);
                out.push(']');
            } else {
                host_in_query = Some(h);
            }
        }
        if let (Some(p), false) = (self.port, list) {
            let _ = write!(out, ":{p}");
        }
        out.push('/');
        if let Some(d) = &self.dbname {
            out.push_str(&enc(d));
        }
        let mut sep = '?';
        if let Some(h) = host_in_query {
            let _ = write!(out, "{sep}host={}", enc(h));
            sep = '&';
        }
        if let (Some(p), true) = (self.port, list) {
            let _ = write!(out, "{sep}port={p}");
            sep = '&';
        }
        if self.user.is_none() {
            if let Some(p) = &self.password {
                let _ = write!(out, "{sep}password={}", enc(p.expose()));
                sep = '&';
            }
        }
        if let Some(s) = self.sslmode {
            let _ = write!(out, "{sep}sslmode={}", s.as_str());
            sep = '&';
        }
        for (k, v) in &self.extra {
            let _ = write!(out, "{sep}{}={}", enc(k), enc(v));
            sep = '&';
        }
        out
    }

    pub fn to_ado(&self) -> String {
        let mut out = String::with_capacity(256);
        let mut pair = |k: &str, v: &str| {
            out.push_str(k);
            out.push('=');
            ado_value(&mut out, v);
            out.push(';');
        };
        if let Some(h) = &self.host {
            pair("Server", h);
        }
        if let Some(p) = self.port {
            pair("Port", &p.to_string());
        }
        if let Some(d) = &self.dbname {
            pair("Database", d);
        }
        if let Some(u) = &self.user {
            pair("User Id", u);
        }
        if let Some(p) = &self.password {
            pair("Password", p.expose());
        }
        if let Some(s) = self.sslmode {
            pair("Ssl Mode", s.as_ado());
        }
        for (k, v) in &self.extra {
            let ado_key = match k.as_str() {
                "application_name" => "Application Name",
                "connect_timeout" => "Timeout",
                "options" => "Options",
                "target_session_attrs" => "Target Session Attributes",
                // Npgsql verifies against the system's store by itself.
                "sslrootcert" if self.system_roots => continue,
                "sslrootcert" => "Root Certificate",
                "sslcert" => "SSL Certificate",
                "sslkey" => "SSL Key",
                "sslpassword" => "SSL Password",
                _ => continue,
            };
            pair(ado_key, v);
        }
        out
    }

    /// Whether a JDBC URL can carry these parameters exactly as pgJDBC will read them back
    /// (`Driver.parseURL`); an error names what it cannot carry and what to do.
    pub fn check_jdbc(&self) -> Result<()> {
        if let Some(hosts) = &self.host {
            for h in hosts.split(',') {
                if h.starts_with('/') {
                    return Err(Error::config("the host is a Unix-socket directory, which a JDBC URL cannot express; use a host name (pgJDBC connects over TCP)"));
                }
                let plain = !h.is_empty() && h.chars().all(|c| c.is_ascii_alphanumeric() || "-._".contains(c));
                let ipv6 = h.contains(':') && h.chars().all(|c| c.is_ascii_hexdigit() || c == ':' || c == '.');
                if !plain && !ipv6 {
                    return Err(Error::config(
                        "the host holds a character a JDBC URL cannot carry (only letters, digits, '-', '.', '_' or an IPv6 address); check the host name",
                    ));
                }
            }
        }
        for (k, v) in &self.extra {
            if jdbc_property(k, v).is_none() {
                return Err(Error::config(format!(
                    "'{k}' has no pgJDBC equivalent, so a JDBC URL cannot carry it; remove it, or use another format"
                )));
            }
        }
        Ok(())
    }

    pub fn to_jdbc(&self) -> String {
        let mut out = String::with_capacity(256);
        out.push_str("jdbc:postgresql://");
        // Every host carries its port: pgJDBC gives a host without one the default port.
        if let Some(hosts) = &self.host {
            for (i, h) in hosts.split(',').enumerate() {
                if i > 0 {
                    out.push(',');
                }
                if h.contains(':') {
                    let _ = write!(out, "[{h}]");
                } else {
                    out.push_str(h);
                }
                if let Some(p) = self.port {
                    let _ = write!(out, ":{p}");
                }
            }
        } else if let Some(p) = self.port {
            let _ = write!(out, ":{p}");
        }
        out.push('/');
        if let Some(d) = &self.dbname {
            out.push_str(&enc(d));
        }
        let mut sep = '?';
        if let Some(s) = self.sslmode {
            let _ = write!(out, "{sep}sslmode={}", s.as_str());
            sep = '&';
            if matches!(s, SslMode::VerifyCa | SslMode::VerifyFull) {
                if self.system_roots {
                    // The JVM's trust store (pgJDBC's default factory would read
                    // ~/.postgresql/root.crt instead).
                    let _ = write!(out, "{sep}sslfactory=org.postgresql.ssl.DefaultJavaSSLFactory");
                } else if let Some(root) = self.get_extra("sslrootcert") {
                    let _ = write!(out, "{sep}sslrootcert={}", enc(root));
                }
            }
        }
        if let Some(u) = &self.user {
            let _ = write!(out, "{sep}user={}", enc(u));
            sep = '&';
        }
        if let Some(p) = &self.password {
            let _ = write!(out, "{sep}password={}", enc(p.expose()));
            sep = '&';
        }
        for (k, v) in &self.extra {
            if k == "sslrootcert" {
                continue; // written with sslmode above
            }
            if let Some((name, value)) = jdbc_property(k, v) {
                let _ = write!(out, "{sep}{name}={}", enc(&value));
                sep = '&';
            }
        }
        out
    }

    pub fn to_json(&self) -> String {
        let mut out = String::with_capacity(256);
        out.push('{');
        let mut first = true;
        let mut field = |out: &mut String, k: &str, v: Option<&str>, number: bool| {
            if !first {
                out.push(',');
            }
            first = false;
            json_str(out, k);
            out.push(':');
            match v {
                None => out.push_str("null"),
                Some(v) if number => out.push_str(v),
                Some(v) => json_str(out, v),
            }
        };
        field(&mut out, "host", self.host.as_deref(), false);
        let port = self.port.map(|p| p.to_string());
        field(&mut out, "port", port.as_deref(), true);
        field(&mut out, "dbname", self.dbname.as_deref(), false);
        field(&mut out, "user", self.user.as_deref(), false);
        field(&mut out, "password", self.password.as_ref().map(|p| p.expose()), false);
        field(&mut out, "sslmode", self.sslmode.map(|s| s.as_str()), false);
        if let Some(root) = self.get_extra("sslrootcert") {
            field(&mut out, "sslrootcert", Some(root), false);
        }
        out.push('}');
        out
    }

    /// `export PGHOST=... PGPASSWORD=...`, every value single-quoted for POSIX shells.
    pub fn to_shell(&self) -> String {
        let mut parts: Vec<String> = Vec::new();
        let mut push = |k: &str, v: &str| parts.push(format!("{k}={}", shell_quote(v)));
        if let Some(h) = &self.host {
            push("PGHOST", h);
        }
        if let Some(p) = self.port {
            push("PGPORT", &p.to_string());
        }
        if let Some(d) = &self.dbname {
            push("PGDATABASE", d);
        }
        if let Some(u) = &self.user {
            push("PGUSER", u);
        }
        if let Some(p) = &self.password {
            push("PGPASSWORD", p.expose());
        }
        if let Some(s) = self.sslmode {
            push("PGSSLMODE", s.as_str());
        }
        if let Some(root) = self.get_extra("sslrootcert") {
            push("PGSSLROOTCERT", root);
        }
        format!("export {}", parts.join(" "))
    }

    /// The libpq environment variables (name, value) for `exec`.
    pub fn to_pg_env(&self) -> Vec<(&'static str, String)> {
        let mut v = Vec::new();
        if let Some(h) = &self.host {
            v.push(("PGHOST", h.clone()));
        }
        if let Some(p) = self.port {
            v.push(("PGPORT", p.to_string()));
        }
        if let Some(d) = &self.dbname {
            v.push(("PGDATABASE", d.clone()));
        }
        if let Some(u) = &self.user {
            v.push(("PGUSER", u.clone()));
        }
        if let Some(p) = &self.password {
            v.push(("PGPASSWORD", p.expose().to_string()));
        }
        if let Some(s) = self.sslmode {
            v.push(("PGSSLMODE", s.as_str().to_string()));
        }
        if let Some(root) = self.get_extra("sslrootcert") {
            v.push(("PGSSLROOTCERT", root.to_string()));
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
