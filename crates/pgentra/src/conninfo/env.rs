//! JSON, POSIX shell (`export PGHOST=...`) and the libpq environment variables for `exec`.

use super::ConnParams;
use std::fmt::Write as _;

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
}
