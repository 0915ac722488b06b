//! ADO.NET (`Server=...;Database=...;`) as Npgsql and `DbConnectionStringBuilder` read it.

use super::{key_label, parse_port, parse_sslmode, refuse_nul, ConnParams};
use crate::error::{Error, Result};

/// ADO.NET keys as Npgsql spells them (for error messages).
const ADO_KEYS: &[&str] = &[
    "Server", "Host", "Port", "Database", "User Id", "Username", "Password", "Ssl Mode", "SslMode",
    "Timeout", "Application Name", "Options", "Target Session Attributes", "Root Certificate",
    "SSL Certificate", "SSL Key", "SSL Password", "Keepalive",
];

pub(super) fn normalize_ado_key(k: &str) -> String {
    k.chars().filter(|c| !c.is_whitespace()).collect::<String>().to_ascii_lowercase()
}

/// The libpq keyword an ADO.NET key stands for.
pub(super) fn ado_field(norm: &str) -> Option<&'static str> {
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

impl ConnParams {
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

}
