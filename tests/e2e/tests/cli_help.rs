//! `pgentra help token` names every field that `pgentra token --json` prints (issue 17, item 5),
//! checked against a real token from the emulator. Run under tests/harness/with-harness.sh.

use pgentra_e2e::*;

fn keys(prefix: &str, v: &serde_json::Value, out: &mut Vec<String>) {
    if let Some(o) = v.as_object() {
        for (k, child) in o {
            out.push(format!("{prefix}{k}"));
            keys(&format!("{prefix}{k}."), child, out);
        }
    }
}

#[test]
fn help_token_lists_every_json_field() {
    if std::env::var("IDENTITY_ENDPOINT").is_err() {
        eprintln!("SKIP: needs tests/harness/with-harness.sh");
        return;
    }
    let out = cli(&["token", "--json"], &mi_env(&[("AZURE_POSTGRESQL_CONNECTIONSTRING", &libpq(""))]));
    assert!(out.status.success(), "{}", text(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("token --json is JSON");
    let mut fields = Vec::new();
    keys("", &v, &mut fields);
    assert!(fields.len() >= 10, "{fields:?}");
    let help = cli(&["help", "token"], &env(&[]));
    let help = text(&help.stdout) + &text(&help.stderr);
    for f in &fields {
        assert!(help.contains(f.as_str()), "`pgentra help token` does not name `{f}`:\n{help}");
    }
}
