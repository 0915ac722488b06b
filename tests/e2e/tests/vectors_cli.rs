//! The conformance vectors through the CLI, as every binding runs them: a secret-mode
//! configuration read from each vector's libpq rendering prints every format byte for byte, and
//! each parse vector gives the same parameters or the same error.

use pgentra_e2e::*;
use serde_json::Value;

const DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../vectors");

fn load(name: &str) -> Vec<Value> {
    let text = std::fs::read_to_string(format!("{DIR}/{name}")).unwrap();
    serde_json::from_str::<Value>(&text).unwrap().as_array().unwrap().clone()
}

#[test]
fn render_vectors_byte_identical_through_the_cli() {
    let vectors = load("render.json");
    assert!(!vectors.is_empty());
    for v in vectors {
        let name = v["name"].as_str().unwrap();
        let libpq = v["rendered"]["libpq"].as_str().unwrap();
        let vars = env(&[("AZURE_POSTGRESQL_CONNECTIONSTRING", libpq), ("PGENTRA_CREDENTIAL", "password")]);
        for (fmt, want) in v["rendered"].as_object().unwrap() {
            let out = cli(&["dsn", "--format", fmt], &vars);
            match want.as_str() {
                Some(want) => {
                    assert!(out.status.success(), "{name} {fmt}: {}", text(&out.stderr));
                    assert_eq!(out.stdout, format!("{want}\n").into_bytes(), "{name} {fmt}");
                }
                // A PDO DSN cannot carry the value: a configuration error (exit 3).
                None => assert_eq!(out.status.code(), Some(3), "{name} {fmt}: {}", text(&out.stdout)),
            }
        }
    }
}

#[test]
fn parse_vectors_through_the_cli() {
    for v in load("parse.json") {
        let name = v["name"].as_str().unwrap();
        let input = v["input"].as_str().unwrap();
        // A password from a discrete variable puts the CLI in secret mode without touching the
        // string under test.
        let vars = env(&[("AZURE_POSTGRESQL_CONNECTIONSTRING", input), ("AZURE_POSTGRESQL_PASSWORD", "pw")]);
        let out = cli(&["dsn", "--format", "json"], &vars);
        if let Some(err) = v.get("error").and_then(Value::as_str) {
            assert_eq!(out.status.code(), Some(3), "{name}: {}", text(&out.stdout));
            assert!(text(&out.stderr).contains(err), "{name}: {}", text(&out.stderr));
            continue;
        }
        assert!(out.status.success(), "{name}: {}", text(&out.stderr));
        let got: Value = serde_json::from_slice(&out.stdout).unwrap();
        for k in ["host", "port", "dbname", "user", "sslmode"] {
            // The CLI applies the defaults (port 5432, sslmode require) where the string is silent.
            let want = &v["params"][k];
            if !want.is_null() {
                assert_eq!(&got[k], want, "{name}: {k}");
            }
        }
    }
}
