//! Hand-rolled command-line parsing (no clap).

use std::path::PathBuf;

use serde::Deserialize;

pub const USAGE: &str = "usage: pgentra-emulator --state-dir DIR [--background] \
[--pg-admin \"host=/sock/dir port=N user=postgres dbname=postgres\"] \
[--lifetime SECS (default 3600)] [--refresh-in SECS] [--secret S (default \"emulator-secret\")] \
[--faults JSON] [--ldap-port N (default: any free port)]
       pgentra-emulator --stop --state-dir DIR      stop the emulator running in DIR
       pgentra-emulator --list [--secret S]         its identities, client ids, secrets and roles
--background: returns once the emulator listens, printing the path of DIR/emulator.env
(its log goes to DIR/emulator.log); the emulator runs on until --stop or SIGTERM.";

/// What the invocation asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Run in the foreground until SIGTERM or SIGINT.
    Run,
    /// Start in the background, return once it listens.
    Background,
    /// Stop the emulator running in the state directory.
    Stop,
    /// Print the identities and exit.
    List,
}

#[derive(Debug)]
pub struct Args {
    pub mode: Mode,
    pub state_dir: PathBuf,
    pub pg_admin: Option<String>,
    pub lifetime: u64,
    pub refresh_in: Option<u64>,
    pub secret: String,
    pub faults: Vec<Fault>,
    /// The loopback port for PostgreSQL's LDAP token check (0 or absent: any free port).
    pub ldap_port: Option<u16>,
}

/// One injected fault, consumed by the next identity request (MSI, IMDS or Entra).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Fault {
    #[serde(default)]
    pub status: Option<u16>,
    #[serde(default)]
    pub retry_after: Option<u64>,
    /// Retry-After as an HTTP date (sent verbatim).
    #[serde(default)]
    pub retry_after_date: Option<String>,
    #[serde(default)]
    pub delay_ms: Option<u64>,
    #[serde(default)]
    pub drop: bool,
    #[serde(default)]
    pub bad_json: bool,
    #[serde(default)]
    pub empty_token: bool,
    /// Send the token response's body in pieces spread over this many milliseconds.
    #[serde(default)]
    pub slow_body_ms: Option<u64>,
    /// `"missing"`: no `expires_on`/`expires_in` in the token response; `"past"`: both say
    /// the token expired a minute ago.
    #[serde(default)]
    pub expires: Option<String>,
    /// A `refresh_in` (seconds) for this one token response.
    #[serde(default)]
    pub refresh_in: Option<u64>,
    /// Answer with a redirect (`status`, default 307) to this URL instead of a token.
    #[serde(default)]
    pub redirect: Option<String>,
    /// Answer with exactly this body (and `status`, default 200; `content_type`, default
    /// application/json): to replay what Azure's services really send.
    #[serde(default)]
    pub body: Option<String>,
    #[serde(default)]
    pub content_type: Option<String>,
    /// Extra headers for that answer (e.g. a `Date` from a service whose clock differs).
    #[serde(default)]
    pub headers: Option<std::collections::BTreeMap<String, String>>,
}

/// Parses a JSON array of faults (a single fault object is accepted too).
pub fn parse_faults(text: &str) -> Result<Vec<Fault>, String> {
    let value: serde_json::Value =
        serde_json::from_str(text).map_err(|e| format!("faults: invalid JSON: {e}"))?;
    let faults: Vec<Fault> = match value {
        serde_json::Value::Array(_) => serde_json::from_value(value),
        serde_json::Value::Object(_) => serde_json::from_value(value).map(|f| vec![f]),
        _ => return Err("faults: expected a JSON array of fault objects".into()),
    }
    .map_err(|e| format!("faults: {e}"))?;
    for f in &faults {
        if let Some(e) = f.expires.as_deref() {
            if e != "missing" && e != "past" {
                return Err(format!("faults: expires must be \"missing\" or \"past\", not {e:?}"));
            }
        }
        if let Some(s) = f.status {
            if !(100..=599).contains(&s) {
                return Err(format!("faults: status {s} is not an HTTP status"));
            }
        }
    }
    Ok(faults)
}

fn parse_secs(flag: &str, v: &str) -> Result<u64, String> {
    v.parse::<u64>()
        .map_err(|_| format!("{flag}: expected a whole number of seconds, got {v:?}"))
}

pub fn parse(argv: impl IntoIterator<Item = String>) -> Result<Args, String> {
    let mut state_dir = None;
    let mut pg_admin = None;
    let mut lifetime = 3600u64;
    let mut refresh_in = None;
    let mut secret = "emulator-secret".to_string();
    let mut faults = Vec::new();
    let mut ldap_port = None;
    let mut mode = Mode::Run;
    let mut set_mode = |m: Mode, flag: &str| -> Result<(), String> {
        if mode != Mode::Run {
            return Err(format!("{flag}: only one of --background, --stop and --list"));
        }
        mode = m;
        Ok(())
    };

    let mut it = argv.into_iter();
    while let Some(arg) = it.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f.to_string(), Some(v.to_string())),
            _ => (arg.clone(), None),
        };
        if flag == "--help" || flag == "-h" {
            return Err(USAGE.to_string());
        }
        let mut value = || -> Result<String, String> {
            match inline.clone() {
                Some(v) => Ok(v),
                None => it.next().ok_or_else(|| format!("{flag}: missing value")),
            }
        };
        match flag.as_str() {
            "--background" | "--stop" | "--list" if inline.is_some() => {
                return Err(format!("{flag} takes no value"))
            }
            "--background" => set_mode(Mode::Background, &flag)?,
            "--stop" => set_mode(Mode::Stop, &flag)?,
            "--list" => set_mode(Mode::List, &flag)?,
            "--state-dir" => state_dir = Some(PathBuf::from(value()?)),
            "--pg-admin" => pg_admin = Some(value()?),
            "--lifetime" => lifetime = parse_secs("--lifetime", &value()?)?,
            "--refresh-in" => refresh_in = Some(parse_secs("--refresh-in", &value()?)?),
            "--secret" => secret = value()?,
            "--faults" => faults.extend(parse_faults(&value()?)?),
            "--ldap-port" => {
                let v = value()?;
                ldap_port = Some(v.parse::<u16>().map_err(|_| format!("--ldap-port: expected a port number, got {v:?}"))?);
            }
            other => return Err(format!("unknown argument {other:?}\n{USAGE}")),
        }
    }
    let state_dir = match (state_dir, mode) {
        (Some(d), _) => d,
        (None, Mode::List) => PathBuf::new(),
        (None, _) => return Err(format!("--state-dir is required\n{USAGE}")),
    };
    if lifetime == 0 {
        return Err("--lifetime must be at least 1 second".into());
    }
    if secret.is_empty() {
        return Err("--secret must not be empty".into());
    }
    Ok(Args {
        mode,
        state_dir,
        pg_admin,
        lifetime,
        refresh_in,
        secret,
        faults,
        ldap_port,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn parses_flags() {
        let a = parse(v(&[
            "--state-dir",
            "/tmp/x",
            "--lifetime=60",
            "--refresh-in",
            "30",
            "--secret",
            "s",
            "--faults",
            r#"[{"status":500},{"drop":true}]"#,
        ]))
        .unwrap();
        assert_eq!(a.lifetime, 60);
        assert_eq!(a.refresh_in, Some(30));
        assert_eq!(a.secret, "s");
        assert_eq!(a.faults.len(), 2);
        assert!(parse(v(&["--lifetime", "5"])).is_err());
        assert!(parse(v(&["--state-dir", "/x", "--bogus"])).is_err());
        assert_eq!(a.mode, Mode::Run);
        assert_eq!(parse(v(&["--list"])).unwrap().mode, Mode::List);
        assert_eq!(parse(v(&["--state-dir", "/x", "--background"])).unwrap().mode, Mode::Background);
        assert_eq!(parse(v(&["--stop", "--state-dir=/x"])).unwrap().mode, Mode::Stop);
        assert!(parse(v(&["--stop"])).unwrap_err().contains("--state-dir"));
        assert!(parse(v(&["--state-dir", "/x", "--stop", "--list"])).unwrap_err().contains("only one"));
        assert!(parse(v(&["--list=yes"])).is_err());
    }
}
