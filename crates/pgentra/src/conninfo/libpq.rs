//! libpq keyword/value (`host=... dbname=...`) and PHP PDO's `pgsql:` DSN, which libpq reads
//! with `;` turned into spaces.

use super::{key_label, refuse_nul, ConnParams, LIBPQ_KEYWORDS};
use crate::error::{Error, Result};

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

pub(super) fn libpq_value(out: &mut String, v: &str) {
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

impl ConnParams {
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
}
