//! The CLI (issue 19, item 5): `grant` on the server and database of the Service Connector
//! variables (every dialect), every `--format` in the help and the README, and a "no credential
//! worked" message that names each source once. Run under tests/harness/with-harness.sh.

use std::collections::HashMap;

use pgentra::Format;
use pgentra_e2e::*;

fn under_harness() -> bool {
    let ok = std::env::var("IDENTITY_ENDPOINT").is_ok();
    if !ok {
        eprintln!("SKIP: needs tests/harness/with-harness.sh");
    }
    ok
}

/// The owner's credentials, as a DBA would export them, plus `pairs`.
fn owner(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    let mut v = env(&[("PGUSER", "owner_user"), ("PGPASSWORD", "owner-pw")]);
    v.extend(env(pairs));
    v
}

fn granted(vars: &HashMap<String, String>, what: &str) {
    let out = cli(&["grant", "--role", "aad_pgentra_sp"], vars);
    assert_eq!(out.status.code(), Some(0), "{what}: {}", text(&out.stderr));
    assert!(text(&out.stdout).contains("items"), "{what}: {}", text(&out.stdout));
}

#[test]
fn grant_reads_the_service_connector_variables_in_every_dialect() {
    if !under_harness() {
        return;
    }
    let (host, port) = (h("PGENTRA_PG_HOST"), h("PGENTRA_PG_PORT"));
    for cs in [
        format!("host={host} port={port} dbname=postgres sslmode=require user=aad_pgentra_sp"),
        format!("postgresql://aad_pgentra_sp@{host}:{port}/postgres?sslmode=require"),
        format!("Server={host};Database=postgres;Port={port};Ssl Mode=Require;User Id=aad_pgentra_sp;"),
        format!("jdbc:postgresql://{host}:{port}/postgres?sslmode=require&user=aad_pgentra_sp"),
    ] {
        granted(&owner(&[("AZURE_POSTGRESQL_CONNECTIONSTRING", &cs)]), &cs);
    }
    // The discrete variables, and another prefix.
    let discrete = [("AZURE_POSTGRESQL_HOST", host.as_str()), ("AZURE_POSTGRESQL_PORT", port.as_str()), ("AZURE_POSTGRESQL_DATABASE", "postgres")];
    granted(&owner(&discrete), "discrete");
    let out = cli(&["--prefix", "MYDB", "grant", "--role", "aad_pgentra_sp"], &owner(&[("MYDB_HOST", &host), ("MYDB_PORT", &port), ("MYDB_DATABASE", "postgres")]));
    assert_eq!(out.status.code(), Some(0), "prefix: {}", text(&out.stderr));
    // PGPORT (the owner's libpq environment) wins over the Service Connector's.
    let mut wrong = owner(&[("AZURE_POSTGRESQL_HOST", &host), ("AZURE_POSTGRESQL_PORT", "9"), ("AZURE_POSTGRESQL_DATABASE", "postgres")]);
    wrong.insert("PGPORT".into(), port.clone());
    granted(&wrong, "PGPORT over AZURE_POSTGRESQL_PORT");
    // ... and --port over both: the wrong one fails to connect.
    let out = cli(&["grant", "--role", "aad_pgentra_sp", "--port", "9"], &wrong);
    assert_ne!(out.status.code(), Some(0));
    // The owner is never the application's user: without PGUSER, a configuration error that says so.
    let mut no_owner = env(&discrete);
    no_owner.insert("AZURE_POSTGRESQL_USER".into(), "aad_pgentra_sp".into());
    no_owner.insert("PGPASSWORD".into(), "owner-pw".into());
    let out = cli(&["grant", "--role", "aad_pgentra_sp"], &no_owner);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{err}");
    assert!(err.contains("PGUSER") && err.contains("AZURE_POSTGRESQL_USER"), "{err}");
    // Nothing names a server: the error names the variables that would.
    let out = cli(&["grant", "--role", "aad_pgentra_sp"], &owner(&[]));
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{err}");
    assert!(err.contains("AZURE_POSTGRESQL_CONNECTIONSTRING") && err.contains("PGHOST"), "{err}");
    // A malformed connection string is named, not ignored.
    let out = cli(&["grant", "--role", "aad_pgentra_sp"], &owner(&[("AZURE_POSTGRESQL_CONNECTIONSTRING", "host=h port=notaport")]));
    assert_eq!(out.status.code(), Some(3));
    assert!(text(&out.stderr).contains("AZURE_POSTGRESQL_CONNECTIONSTRING"), "{}", text(&out.stderr));
}

#[test]
fn every_format_is_in_the_help_and_the_readme_and_works() {
    let usage = text(&cli(&["help"], &env(&[])).stdout);
    let dsn_help = text(&cli(&["help", "dsn"], &env(&[])).stdout);
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md")).unwrap();
    let readme_line = readme.lines().find(|l| l.starts_with("pgentra dsn --format")).expect("README has the dsn line");
    for f in Format::ALL {
        let name = f.name();
        assert_eq!(Format::parse(name).unwrap(), f);
        assert!(usage.contains(&format!(" {name}")), "`pgentra help` lacks {name}:\n{usage}");
        assert!(dsn_help.lines().any(|l| l.trim_start().starts_with(&format!("{name} "))), "`pgentra help dsn` lacks {name}:\n{dsn_help}");
        assert!(readme_line.contains(name), "README's dsn line lacks {name}: {readme_line}");
    }
    if !under_harness() {
        return;
    }
    let vars = mi_env(&[("AZURE_POSTGRESQL_CONNECTIONSTRING", &libpq(""))]);
    for f in Format::ALL {
        let out = cli(&["dsn", "--format", f.name()], &vars);
        assert_eq!(out.status.code(), Some(0), "{}: {}", f.name(), text(&out.stderr));
        assert!(text(&out.stdout).contains("pgentra-app"), "{}: no user", f.name());
    }
    let out = cli(&["dsn", "--format", "yaml"], &vars);
    assert_eq!(out.status.code(), Some(3));
    assert!(text(&out.stderr).contains("shell, pdo"), "{}", text(&out.stderr));
}

#[test]
fn no_credential_worked_names_each_source_once() {
    if !under_harness() {
        return;
    }
    // No managed identity endpoint, no metadata service, no az or azd on PATH.
    let cs = libpq("");
    let vars = env(&[("AZURE_POSTGRESQL_CONNECTIONSTRING", &cs), ("PATH", "/usr/bin:/bin"), ("PGENTRA_TIMEOUT", "5")]);
    let out = cli(&["token"], &vars);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(4), "{err}");
    assert!(err.contains("no credential worked"), "{err}");
    for label in ["instance metadata service (IMDS), system-assigned identity", "Azure CLI (az account get-access-token)", "Azure Developer CLI (azd auth token)"] {
        assert_eq!(err.matches(label).count(), 1, "'{label}' is not named exactly once: {err}");
    }
}
