//! JDBC URLs as pgJDBC's `Driver.parseURL` reads them:
//! `jdbc:postgresql://host[:port][,host[:port]...]/database?key=value&...`.

use super::{decode, enc, parse_port, refuse_nul, strip_prefix_ci, ConnParams, SslMode};
use crate::error::{Error, Result};
use std::fmt::Write as _;

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

impl ConnParams {
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
}
