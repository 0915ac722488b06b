//! URIs: `postgresql://[user[:password]@][host][:port][/dbname][?key=value&...]`.

use super::{decode, enc, key_label, parse_port, refuse_nul, strip_prefix_ci, ConnParams, LIBPQ_KEYWORDS};
use crate::error::{Error, Result};
use crate::secret::Secret;
use std::fmt::Write as _;

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

impl ConnParams {
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
}
