#![no_main]
//! Configuration discovery on an arbitrary environment: lines of KEY=value, keys drawn from
//! the variables pgentra reads so that the fuzzer reaches past the lookups.
use libfuzzer_sys::fuzz_target;
use std::collections::HashMap;

const KEYS: &[&str] = &[
    "AZURE_POSTGRESQL_CONNECTIONSTRING", "AZURE_POSTGRESQL_HOST", "AZURE_POSTGRESQL_PORT",
    "AZURE_POSTGRESQL_DATABASE", "AZURE_POSTGRESQL_USER", "AZURE_POSTGRESQL_USERNAME",
    "AZURE_POSTGRESQL_PASSWORD", "AZURE_POSTGRESQL_SSL", "AZURE_POSTGRESQL_CLIENTID",
    "AZURE_POSTGRESQL_TENANTID", "AZURE_POSTGRESQL_CLIENTSECRET", "AZURE_POSTGRESQL_NAME",
    "AZURE_POSTGRESQL_SCOPE", "Azure_PostgreSQL_ConnectionString", "AZURE_CLIENT_ID",
    "AZURE_TENANT_ID", "AZURE_CLIENT_SECRET", "AZURE_CLIENT_CERTIFICATE_PATH",
    "AZURE_FEDERATED_TOKEN_FILE", "AZURE_AUTHORITY_HOST", "IDENTITY_ENDPOINT", "IDENTITY_HEADER",
    "IMDS_ENDPOINT", "MSI_ENDPOINT", "PGENTRA_SCOPE", "PGENTRA_TIMEOUT", "PGENTRA_CREDENTIAL",
    "PGENTRA_PREFIX", "PGENTRA_USER", "PGENTRA_SSLMODE", "PGENTRA_ALLOW_INSECURE", "PGENTRA_MODE",
];

fuzz_target!(|s: &str| {
    let mut env = HashMap::new();
    for line in s.lines() {
        let (k, v) = line.split_once('=').unwrap_or((line, ""));
        // A leading digit picks a known key; anything else is taken as written.
        let key = match k.as_bytes().first() {
            Some(d @ b'0'..=b'9') if k.len() <= 2 => {
                let i = k.parse::<usize>().unwrap_or((d - b'0') as usize);
                KEYS[i % KEYS.len()].to_string()
            }
            _ => k.to_string(),
        };
        env.insert(key, v.to_string());
    }
    if let Ok(c) = pgentra::Config::resolve(pgentra::Options::default(), &env) {
        let mut p = c.params.clone();
        let _ = pgentra::tls::secure(&mut p, c.tls_policy(), true);
        let _ = format!("{c:?}");
    }
});
