//! Configuration discovery: Service Connector variables (any prefix, both spellings), the Azure
//! SDK variables as fallback, and values passed by code, which override the environment.

use crate::cloud::Cloud;
use crate::conninfo::{self, parse_port, ConnParams, Dialect, SslMode};
use crate::error::{Error, Result};
use crate::secret::Secret;
use std::collections::HashMap;
use std::path::PathBuf;

pub const DEFAULT_PREFIX: &str = "AZURE_POSTGRESQL";

/// Which credential to use. `Auto` walks the chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(C)]
pub enum CredentialKind {
    Auto = 0,
    /// A password from the configuration: no identity request at all.
    Password = 1,
    ClientSecret = 2,
    ClientCertificate = 3,
    WorkloadIdentity = 4,
    ManagedIdentity = 5,
    AzureCli = 6,
    AzureDeveloperCli = 7,
}

impl CredentialKind {
    pub fn parse(s: &str) -> Result<CredentialKind> {
        let n: String = s.chars().filter(|c| c.is_ascii_alphanumeric()).collect::<String>().to_ascii_lowercase();
        Ok(match n.as_str() {
            "" | "auto" | "default" => CredentialKind::Auto,
            "password" | "secret" | "secretmode" => CredentialKind::Password,
            "clientsecret" | "serviceprincipal" | "sp" => CredentialKind::ClientSecret,
            "clientcertificate" | "certificate" | "cert" => CredentialKind::ClientCertificate,
            "workloadidentity" | "workload" | "federated" => CredentialKind::WorkloadIdentity,
            "managedidentity" | "msi" | "mi" => CredentialKind::ManagedIdentity,
            "azurecli" | "cli" | "az" => CredentialKind::AzureCli,
            "azuredevelopercli" | "azd" => CredentialKind::AzureDeveloperCli,
            _ => {
                return Err(Error::config(format!(
                    "PGENTRA_CREDENTIAL='{s}' is not a credential; use one of auto, password, client-secret, client-certificate, workload-identity, managed-identity, azure-cli, azd"
                )))
            }
        })
    }
    pub fn as_str(self) -> &'static str {
        match self {
            CredentialKind::Auto => "auto",
            CredentialKind::Password => "password",
            CredentialKind::ClientSecret => "client-secret",
            CredentialKind::ClientCertificate => "client-certificate",
            CredentialKind::WorkloadIdentity => "workload-identity",
            CredentialKind::ManagedIdentity => "managed-identity",
            CredentialKind::AzureCli => "azure-cli",
            CredentialKind::AzureDeveloperCli => "azd",
        }
    }
}

/// Values passed by code. Every field set here wins over the environment.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Variable prefix; `None` means `AZURE_POSTGRESQL`.
    pub prefix: Option<String>,
    pub connection_string: Option<String>,
    pub host: Option<String>,
    pub port: Option<u16>,
    pub dbname: Option<String>,
    pub user: Option<String>,
    pub password: Option<Secret>,
    pub sslmode: Option<SslMode>,
    pub client_id: Option<String>,
    pub tenant_id: Option<String>,
    pub client_secret: Option<Secret>,
    pub certificate_path: Option<PathBuf>,
    pub federated_token_file: Option<PathBuf>,
    pub credential: Option<CredentialKind>,
    pub scope: Option<String>,
    pub authority_host: Option<String>,
    pub allow_insecure: Option<bool>,
    /// Keep `sslmode=require` for Azure servers instead of raising it to `verify-full`
    /// (`PGENTRA_ALLOW_UNVERIFIED_TLS`).
    pub allow_unverified_tls: Option<bool>,
    /// Total deadline for one token acquisition, retries included (default 30 s).
    pub timeout: Option<std::time::Duration>,
}

/// The option names [`Options::set`] accepts, in the order documentation lists them.
pub const OPTION_KEYS: [&str; 19] = [
    "prefix",
    "connection_string",
    "host",
    "port",
    "dbname",
    "user",
    "password",
    "sslmode",
    "credential",
    "client_id",
    "tenant_id",
    "client_secret",
    "certificate_path",
    "federated_token_file",
    "scope",
    "authority_host",
    "allow_insecure",
    "allow_unverified_tls",
    "timeout",
];

impl Options {
    /// Set one option from text, as a binding or a property file passes it: `key` is one of
    /// [`OPTION_KEYS`] (snake_case), `value` its text. Booleans take true/false/1/0/yes/no/on/off,
    /// `timeout` is seconds (fractions allowed, up to 3600), `credential` any spelling that
    /// `PGENTRA_CREDENTIAL` takes ("auto" forces nothing). An error names the key (never the
    /// value of a secret) and says what to do; an unknown key lists the known ones.
    pub fn set(&mut self, key: &str, value: &str) -> Result<()> {
        let named = |e: Error| Error::new(e.kind(), format!("option '{key}': {}", e.message()));
        let flag = |v: &str| -> Result<bool> {
            match v.trim().to_ascii_lowercase().as_str() {
                "1" | "true" | "yes" | "on" => Ok(true),
                "0" | "false" | "no" | "off" | "" => Ok(false),
                _ => Err(Error::config(format!("option '{key}' takes true or false"))),
            }
        };
        match key {
            "prefix" => self.prefix = Some(value.to_string()),
            "connection_string" => self.connection_string = Some(value.to_string()),
            "host" => self.host = Some(value.to_string()),
            "port" => self.port = Some(parse_port(value).map_err(named)?),
            "dbname" => self.dbname = Some(value.to_string()),
            "user" => self.user = Some(value.to_string()),
            "password" => self.password = Some(Secret::new(value.to_string())),
            "sslmode" => {
                self.sslmode = Some(SslMode::parse(value).ok_or_else(|| {
                    Error::config("option 'sslmode' is not an sslmode; use one of disable, allow, prefer, require, verify-ca, verify-full (Azure needs require or stricter)")
                })?)
            }
            "credential" => {
                let k = CredentialKind::parse(value).map_err(|_| {
                    Error::config(format!(
                        "option 'credential' is not a credential; use one of auto, password, client-secret, client-certificate, workload-identity, managed-identity, azure-cli, azd"
                    ))
                })?;
                self.credential = (k != CredentialKind::Auto).then_some(k);
            }
            "client_id" => self.client_id = Some(value.to_string()),
            "tenant_id" => self.tenant_id = Some(value.to_string()),
            "client_secret" => self.client_secret = Some(Secret::new(value.to_string())),
            "certificate_path" => self.certificate_path = Some(PathBuf::from(value)),
            "federated_token_file" => self.federated_token_file = Some(PathBuf::from(value)),
            "scope" => self.scope = Some(value.to_string()),
            "authority_host" => self.authority_host = Some(value.to_string()),
            // false forces nothing: the PGENTRA_ALLOW_* variables still apply.
            "allow_insecure" => self.allow_insecure = flag(value)?.then_some(true),
            "allow_unverified_tls" => self.allow_unverified_tls = flag(value)?.then_some(true),
            "timeout" => {
                let t: f64 = value.trim().parse().map_err(|_| Error::config("option 'timeout' is not a number of seconds; give a number between 0 and 3600"))?;
                if !(t.is_finite() && t > 0.0 && t <= 3600.0) {
                    return Err(Error::config("option 'timeout' is out of range; give a number of seconds greater than 0 and at most 3600"));
                }
                self.timeout = Some(std::time::Duration::from_secs_f64(t));
            }
            other => {
                // A key is a name a program chose; quote it only when it looks like one.
                let label = if !other.is_empty() && other.len() <= 64 && other.chars().all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c)) {
                    format!("'{other}'")
                } else {
                    "the key given".to_string()
                };
                let hint = OPTION_KEYS.iter().find(|k| k.replace('_', "").eq_ignore_ascii_case(&other.replace(['_', '-', '.'], "")));
                return Err(Error::config(match hint {
                    Some(k) => format!("{label} is not a pgentra option; did you mean '{k}'?"),
                    None => format!("{label} is not a pgentra option; use one of {}", OPTION_KEYS.join(", ")),
                }));
            }
        }
        Ok(())
    }
}

/// Where a setting came from, for `check` and error messages.
#[derive(Debug, Clone, Default)]
pub struct Sources {
    pub connection_string: Option<(String, Dialect)>,
    pub discrete: Vec<String>,
}

/// The resolved configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub prefix: String,
    pub params: ConnParams,
    pub client_id: Option<String>,
    pub client_id_var: Option<String>,
    pub tenant_id: Option<String>,
    pub client_secret: Option<Secret>,
    pub certificate_path: Option<PathBuf>,
    pub certificate_password: Option<Secret>,
    pub federated_token_file: Option<PathBuf>,
    pub credential: CredentialKind,
    pub cloud: Cloud,
    pub scope: String,
    pub authority_host: String,
    pub allow_insecure: bool,
    pub allow_unverified_tls: bool,
    pub timeout: std::time::Duration,
    /// `IDENTITY_ENDPOINT`, `IDENTITY_HEADER`, `IMDS_ENDPOINT` (managed identity hosts).
    pub identity_endpoint: Option<String>,
    pub identity_header: Option<Secret>,
    pub imds_endpoint: Option<String>,
    /// Where the VM metadata service is (tests point it at the emulator).
    pub imds_base: String,
    pub sources: Sources,
}

/// A source of variables. The process environment in production, a map in tests.
pub trait Env {
    fn get(&self, key: &str) -> Option<String>;
}

pub struct ProcessEnv;
impl Env for ProcessEnv {
    fn get(&self, key: &str) -> Option<String> {
        std::env::var(key).ok()
    }
}

impl Env for HashMap<String, String> {
    fn get(&self, key: &str) -> Option<String> {
        HashMap::get(self, key).cloned()
    }
}

impl Env for [(&str, &str)] {
    fn get(&self, key: &str) -> Option<String> {
        self.iter().find(|(k, _)| *k == key).map(|(_, v)| v.to_string())
    }
}

fn truthy(v: &str) -> bool {
    matches!(v.trim().to_ascii_lowercase().as_str(), "1" | "true" | "yes" | "on")
}

struct Prefixed<'a> {
    env: &'a dyn Env,
    prefix: String,
}

impl Prefixed<'_> {
    /// `(variable name, value)`, exact prefix first, then the `Azure_` spelling.
    fn get(&self, key: &str) -> Option<(String, String)> {
        let name = format!("{}_{key}", self.prefix);
        if let Some(v) = self.env.get(&name) {
            return Some((name, v));
        }
        if let Some(rest) = self.prefix.strip_prefix("AZURE_") {
            let alt = format!("Azure_{rest}_{key}");
            if let Some(v) = self.env.get(&alt) {
                return Some((alt, v));
            }
        }
        None
    }
}

impl Config {
    /// Resolve from the process environment.
    pub fn from_env(options: Options) -> Result<Config> {
        Self::resolve(options, &ProcessEnv)
    }

    /// The Service Connector prefix: `options`, else `PGENTRA_PREFIX`, else AZURE_POSTGRESQL.
    fn prefix(options: &Options, env: &dyn Env) -> Result<String> {
        let prefix = options
            .prefix
            .clone()
            .or_else(|| env.get("PGENTRA_PREFIX"))
            .unwrap_or_else(|| DEFAULT_PREFIX.to_string());
        let prefix = prefix.trim_end_matches('_').to_string();
        if prefix.is_empty() || !prefix.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(Error::config(format!(
                "prefix '{prefix}' is not a valid variable prefix; use letters, digits and '_' (default AZURE_POSTGRESQL)"
            )));
        }
        Ok(prefix)
    }

    /// The server and database the Service Connector variables name (`{prefix}_CONNECTIONSTRING`
    /// in any dialect, then `{prefix}_HOST`, `_PORT`, `_DATABASE`, ...), with `options` over
    /// them, and where they came from; no credential is looked at. `None` when nothing is set.
    pub fn server(options: &Options, env: &dyn Env) -> Result<Option<(ConnParams, Sources)>> {
        let prefix = Self::prefix(options, env)?;
        let pv = Prefixed { env, prefix };
        let mut sources = Sources::default();
        let params = Self::params(options, &pv, &mut sources)?;
        let found = sources.connection_string.is_some() || !sources.discrete.is_empty() || options.host.is_some();
        Ok(found.then_some((params, sources)))
    }

    /// Steps 1 to 3 of `resolve`: the connection parameters, code over the environment.
    fn params(options: &Options, pv: &Prefixed<'_>, sources: &mut Sources) -> Result<ConnParams> {
        // 1. The connection string (code, else environment).
        let mut params = ConnParams::default();
        let mut code_cs = None;
        let cs = match &options.connection_string {
            Some(s) => Some(("connection_string argument".to_string(), s.clone())),
            None => pv.get("CONNECTIONSTRING"),
        };
        if let Some((var, s)) = cs {
            let (dialect, p) = conninfo::parse(&s).map_err(|e| e.context(&var))?;
            sources.connection_string = Some((var, dialect));
            if options.connection_string.is_some() {
                code_cs = Some(p);
            } else {
                params = p;
            }
        }

        // 2. Discrete variables override the environment's connection string, but not one
        // passed by code: values passed by code win over the environment.
        let mut discrete = ConnParams::default();
        if let Some((var, v)) = pv.get("HOST") {
            if v.trim().is_empty() {
                return Err(Error::config(format!(
                    "{var} is empty; set it to the server's host name, e.g. myserver.postgres.database.azure.com"
                )));
            }
            discrete.host = Some(v.trim().to_string());
            sources.discrete.push(var);
        }
        if let Some((var, v)) = pv.get("PORT") {
            discrete.port = Some(parse_port(&v).map_err(|e| e.context(&var))?);
            sources.discrete.push(var);
        }
        let name = pv.get("DATABASE").or_else(|| pv.get("NAME"));
        if let Some((var, v)) = name {
            discrete.dbname = Some(v);
            sources.discrete.push(var);
        }
        if let Some((var, v)) = pv.get("USER") {
            discrete.user = Some(v);
            sources.discrete.push(var);
        }
        if let Some((var, v)) = pv.get("PASSWORD") {
            if !v.is_empty() {
                discrete.password = Some(Secret::new(v));
            }
            sources.discrete.push(var);
        }
        if let Some((var, v)) = pv.get("SSL") {
            discrete.sslmode = Some(match v.trim().to_ascii_lowercase().as_str() {
                "true" | "1" | "yes" => SslMode::Require,
                "false" | "0" | "no" => SslMode::Disable,
                other => SslMode::parse(other).ok_or_else(|| {
                    Error::config(format!("{var}='{v}' is not a boolean; use true or false (or an sslmode such as require)"))
                })?,
            });
            sources.discrete.push(var);
        }
        if let Some((var, v)) = pv.get("SSLMODE") {
            discrete.sslmode = Some(SslMode::parse(&v).ok_or_else(|| {
                Error::config(format!("{var}='{v}' is not an sslmode; use require, verify-ca or verify-full"))
            })?);
            sources.discrete.push(var);
        }
        params.overlay(discrete);
        if let Some(p) = code_cs {
            params.overlay(p);
        }

        // 3. Code overrides.
        let code = ConnParams {
            host: options.host.clone(),
            port: options.port,
            dbname: options.dbname.clone(),
            user: options.user.clone(),
            password: options.password.clone(),
            sslmode: options.sslmode,
            extra: vec![],
            system_roots: false,
        };
        params.overlay(code);
        Ok(params)
    }

    /// Resolve from `env` and `options` (which win).
    pub fn resolve(options: Options, env: &dyn Env) -> Result<Config> {
        let prefix = Self::prefix(&options, env)?;
        let pv = Prefixed { env, prefix: prefix.clone() };
        let mut sources = Sources::default();
        let mut params = Self::params(&options, &pv, &mut sources)?;

        if sources.connection_string.is_none() && sources.discrete.is_empty() && options.host.is_none() {
            return Err(Error::config(format!(
                "no database configuration found: set {prefix}_CONNECTIONSTRING (libpq, URI, ADO.NET or JDBC) or {prefix}_HOST, {prefix}_DATABASE and {prefix}_USER"
            )));
        }
        match params.host.as_deref() {
            None => {
                return Err(Error::config(format!(
                    "no host: add host= to {prefix}_CONNECTIONSTRING or set {prefix}_HOST"
                )))
            }
            Some(h) if h.trim().is_empty() => {
                return Err(Error::config(format!(
                    "the host is empty: set it in {prefix}_CONNECTIONSTRING or {prefix}_HOST, e.g. myserver.postgres.database.azure.com"
                )))
            }
            _ => {}
        }
        if params.sslmode.is_none() {
            params.sslmode = Some(SslMode::Require);
        }
        if params.port.is_none() {
            params.port = Some(5432);
        }

        // 4. Identity.
        let (client_id, client_id_var) = match &options.client_id {
            Some(c) => (Some(c.clone()), Some("client_id argument".to_string())),
            None => match pv.get("CLIENTID") {
                Some((var, v)) => (Some(v), Some(var)),
                None => match env.get("AZURE_CLIENT_ID") {
                    Some(v) => (Some(v), Some("AZURE_CLIENT_ID".to_string())),
                    None => (None, None),
                },
            },
        };
        let tenant_id = options
            .tenant_id
            .clone()
            .or_else(|| pv.get("TENANTID").map(|x| x.1))
            .or_else(|| env.get("AZURE_TENANT_ID"));
        let client_secret = options
            .client_secret
            .clone()
            .or_else(|| pv.get("CLIENTSECRET").map(|x| Secret::new(x.1)))
            .or_else(|| env.get("AZURE_CLIENT_SECRET").map(Secret::new))
            .filter(|s| !s.is_empty());
        let certificate_path = options
            .certificate_path
            .clone()
            .or_else(|| env.get("AZURE_CLIENT_CERTIFICATE_PATH").filter(|s| !s.is_empty()).map(PathBuf::from));
        let certificate_password = env.get("AZURE_CLIENT_CERTIFICATE_PASSWORD").filter(|s| !s.is_empty()).map(Secret::new);
        let federated_token_file = options
            .federated_token_file
            .clone()
            .or_else(|| env.get("AZURE_FEDERATED_TOKEN_FILE").filter(|s| !s.is_empty()).map(PathBuf::from));

        let credential = match options.credential {
            Some(c) => c,
            None => match env.get("PGENTRA_CREDENTIAL") {
                Some(v) => CredentialKind::parse(&v)?,
                None => CredentialKind::Auto,
            },
        };

        // 5. Cloud, scope, authority.
        // Values from code or discrete variables: libpq would cut a value at a NUL byte.
        let fields = [("host", params.host.as_deref()), ("dbname", params.dbname.as_deref()), ("user", params.user.as_deref()), ("password", params.password.as_ref().map(|p| p.expose()))];
        let extra = params.extra.iter().map(|(k, v)| (k.as_str(), Some(v.as_str())));
        if let Some((k, _)) = fields.into_iter().chain(extra).find(|(_, v)| v.is_some_and(|v| v.contains('\0'))) {
            return Err(Error::config(format!("the value of '{k}' contains a NUL character; remove it (libpq would cut the value there)")));
        }
        let host = params.host.clone().unwrap_or_default();
        let cloud = Cloud::from_host(&host);
        let scope = options
            .scope
            .clone()
            .or_else(|| env.get("PGENTRA_SCOPE").filter(|s| !s.is_empty()))
            .unwrap_or_else(|| cloud.scope().to_string());
        if !scope.ends_with("/.default") {
            return Err(Error::config(format!(
                "PGENTRA_SCOPE '{scope}' must end with /.default, e.g. https://ossrdbms-aad.database.windows.net/.default"
            )));
        }
        let authority_host = options
            .authority_host
            .clone()
            .or_else(|| env.get("AZURE_AUTHORITY_HOST").filter(|s| !s.is_empty()))
            .unwrap_or_else(|| cloud.authority_host().to_string());
        let authority_host = authority_host.trim_end_matches('/').to_string();
        if !authority_host.starts_with("https://") {
            return Err(Error::config(format!(
                "AZURE_AUTHORITY_HOST '{authority_host}' must be an https URL, e.g. https://login.microsoftonline.com"
            )));
        }
        let allow_insecure = options
            .allow_insecure
            .unwrap_or_else(|| env.get("PGENTRA_ALLOW_INSECURE").map(|v| truthy(&v)).unwrap_or(false));
        let allow_unverified_tls = options
            .allow_unverified_tls
            .unwrap_or_else(|| env.get("PGENTRA_ALLOW_UNVERIFIED_TLS").map(|v| truthy(&v)).unwrap_or(false));
        let timeout = match options.timeout {
            Some(t) => t,
            None => match env.get("PGENTRA_TIMEOUT") {
                Some(v) => {
                    let secs: f64 = v.trim().parse().ok().filter(|s: &f64| *s > 0.0 && *s <= 3600.0).ok_or_else(|| {
                        Error::config(format!("PGENTRA_TIMEOUT='{v}' is not a number of seconds between 0 and 3600"))
                    })?;
                    std::time::Duration::from_secs_f64(secs)
                }
                None => std::time::Duration::from_secs(30),
            },
        };

        let identity_endpoint = env.get("IDENTITY_ENDPOINT").filter(|s| !s.is_empty());
        let identity_header = env.get("IDENTITY_HEADER").filter(|s| !s.is_empty()).map(Secret::new);
        let imds_endpoint = env.get("IMDS_ENDPOINT").filter(|s| !s.is_empty());
        let imds_base = env
            .get("PGENTRA_IMDS_ENDPOINT")
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| "http://169.254.169.254".to_string())
            .trim_end_matches('/')
            .to_string();

        Ok(Config {
            prefix,
            params,
            client_id,
            client_id_var,
            tenant_id,
            client_secret,
            certificate_path,
            certificate_password,
            federated_token_file,
            credential,
            cloud,
            scope,
            authority_host,
            allow_insecure,
            allow_unverified_tls,
            timeout,
            identity_endpoint,
            identity_header,
            imds_endpoint,
            imds_base,
            sources,
        })
    }

    /// Secret mode: a password is configured, so no identity request is made.
    pub fn uses_password(&self) -> bool {
        match self.credential {
            CredentialKind::Password => true,
            CredentialKind::Auto => self.params.password.is_some(),
            _ => false,
        }
    }

    /// What the caller allowed of the TLS policy.
    pub fn tls_policy(&self) -> crate::tls::TlsPolicy {
        crate::tls::TlsPolicy { allow_insecure: self.allow_insecure, allow_unverified: self.allow_unverified_tls }
    }

}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn options_set_from_text() {
        let mut o = Options::default();
        for (k, v) in [
            ("host", "srv.postgres.database.azure.com"),
            ("port", "6432"),
            ("sslmode", "verify-full"),
            ("credential", "managed-identity"),
            ("client_id", "abc"),
            ("client_secret", "s3cret-value"),
            ("timeout", "2.5"),
            ("allow_unverified_tls", "yes"),
            ("allow_insecure", "false"),
        ] {
            o.set(k, v).unwrap();
        }
        assert_eq!(o.port, Some(6432));
        assert_eq!(o.sslmode, Some(SslMode::VerifyFull));
        assert_eq!(o.credential, Some(CredentialKind::ManagedIdentity));
        assert_eq!(o.timeout, Some(std::time::Duration::from_millis(2500)));
        assert_eq!((o.allow_unverified_tls, o.allow_insecure), (Some(true), None));
        o.set("credential", "auto").unwrap();
        assert_eq!(o.credential, None);
        for (k, v, want) in [
            ("port", "70000", "option 'port'"),
            ("timeout", "0", "option 'timeout'"),
            ("timeout", "NaN", "option 'timeout'"),
            ("allow_insecure", "maybe", "option 'allow_insecure'"),
            ("sslmode", "bananas", "option 'sslmode'"),
            ("credential", "hunter2", "option 'credential'"),
            ("clientId", "x", "did you mean 'client_id'"),
            ("bogus", "x", "use one of prefix"),
        ] {
            let e = o.set(k, v).unwrap_err();
            assert_eq!(e.kind(), crate::ErrorKind::Config);
            assert!(e.message().contains(want), "{k}: {}", e.message());
            assert!(!e.message().contains("hunter2") && !e.message().contains("bananas"), "{}", e.message());
        }
        // A key that is not a name is not quoted (it could be text pasted from a secret).
        let e = o.set("pass word=abc;", "x").unwrap_err();
        assert!(!e.message().contains("abc"), "{}", e.message());
    }

    #[test]
    fn node_and_django_style_variables() {
        let e = env(&[
            ("AZURE_POSTGRESQL_HOST", "srv.postgres.database.azure.com"),
            ("AZURE_POSTGRESQL_USER", "aad_app"),
            ("AZURE_POSTGRESQL_DATABASE", "app"),
            ("AZURE_POSTGRESQL_PORT", "5432"),
            ("AZURE_POSTGRESQL_SSL", "true"),
        ]);
        let c = Config::resolve(Options::default(), &e).unwrap();
        assert_eq!(c.params.host.as_deref(), Some("srv.postgres.database.azure.com"));
        assert_eq!(c.params.dbname.as_deref(), Some("app"));
        assert_eq!(c.params.sslmode, Some(SslMode::Require));
        let e = env(&[("AZURE_POSTGRESQL_HOST", "h"), ("AZURE_POSTGRESQL_NAME", "django_db"), ("AZURE_POSTGRESQL_USER", "u")]);
        let c = Config::resolve(Options::default(), &e).unwrap();
        assert_eq!(c.params.dbname.as_deref(), Some("django_db"));
        assert_eq!(c.params.sslmode, Some(SslMode::Require), "default sslmode");
    }

    #[test]
    fn azure_spelling_and_exact_case_wins() {
        let e = env(&[("Azure_POSTGRESQL_CONNECTIONSTRING", "host=old dbname=d user=u")]);
        assert_eq!(Config::resolve(Options::default(), &e).unwrap().params.host.as_deref(), Some("old"));
        let e = env(&[
            ("Azure_POSTGRESQL_CONNECTIONSTRING", "host=old dbname=d user=u"),
            ("AZURE_POSTGRESQL_CONNECTIONSTRING", "host=new dbname=d user=u"),
        ]);
        assert_eq!(Config::resolve(Options::default(), &e).unwrap().params.host.as_deref(), Some("new"));
    }

    #[test]
    fn custom_prefix_and_code_overrides() {
        let e = env(&[("MYDB_CONNECTIONSTRING", "host=h dbname=d user=u"), ("AZURE_POSTGRESQL_HOST", "other")]);
        let o = Options { prefix: Some("MYDB".into()), user: Some("code_user".into()), ..Default::default() };
        let c = Config::resolve(o, &e).unwrap();
        assert_eq!(c.params.host.as_deref(), Some("h"));
        assert_eq!(c.params.user.as_deref(), Some("code_user"));
    }

    #[test]
    fn errors_name_the_variable() {
        let cases: &[(&[(&str, &str)], &str)] = &[
            (&[("AZURE_POSTGRESQL_CONNECTIONSTRING", "host=h password='x")], "AZURE_POSTGRESQL_CONNECTIONSTRING"),
            (&[("AZURE_POSTGRESQL_CONNECTIONSTRING", "host=h sslmode=bogus")], "AZURE_POSTGRESQL_CONNECTIONSTRING"),
            (&[("AZURE_POSTGRESQL_HOST", "")], "AZURE_POSTGRESQL_HOST"),
            (&[("AZURE_POSTGRESQL_HOST", "h"), ("AZURE_POSTGRESQL_PORT", "70000")], "AZURE_POSTGRESQL_PORT"),
            (&[("AZURE_POSTGRESQL_CONNECTIONSTRING", "host=h dbname=d;User Id=u")], "AZURE_POSTGRESQL_CONNECTIONSTRING"),
            (&[], "AZURE_POSTGRESQL_CONNECTIONSTRING"),
            (&[("AZURE_POSTGRESQL_HOST", "h"), ("AZURE_AUTHORITY_HOST", "http://x")], "AZURE_AUTHORITY_HOST"),
        ];
        for (pairs, var) in cases {
            let e = Config::resolve(Options::default(), &env(pairs)).unwrap_err();
            assert!(e.message().contains(var), "{pairs:?}: {e}");
            assert_eq!(e.kind(), crate::error::ErrorKind::Config);
        }
    }

    #[test]
    fn tls_policy() {
        let c = Config::resolve(Options::default(), &env(&[("AZURE_POSTGRESQL_CONNECTIONSTRING", "host=h sslmode=disable")])).unwrap();
        let mut p = c.params.clone();
        assert_eq!(crate::tls::secure(&mut p, c.tls_policy(), true).unwrap_err().kind(), crate::error::ErrorKind::TlsPolicy);
        let c = Config::resolve(
            Options::default(),
            &env(&[("AZURE_POSTGRESQL_CONNECTIONSTRING", "host=h sslmode=prefer"), ("PGENTRA_ALLOW_INSECURE", "1")]),
        )
        .unwrap();
        let mut p = c.params.clone();
        assert_eq!(crate::tls::secure(&mut p, c.tls_policy(), true).unwrap().rule, crate::tls::TlsRule::InsecureAllowed);
    }

    #[test]
    fn cloud_from_host() {
        let c = Config::resolve(Options::default(), &env(&[("AZURE_POSTGRESQL_HOST", "x.postgres.database.usgovcloudapi.net")])).unwrap();
        assert_eq!(c.scope, "https://ossrdbms-aad.database.usgovcloudapi.net/.default");
        assert_eq!(c.authority_host, "https://login.microsoftonline.us");
    }
}
