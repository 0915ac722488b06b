//! The conformance vectors in tests/vectors/ drive this crate and every binding: rendering is
//! byte-identical everywhere, and parsing gives the same parameters or the same error.
//! `PGENTRA_BLESS=1 cargo test -p pgentra --test vectors` rewrites render.json from the cases.

use pgentra::{conninfo, ConnParams, Format, Secret, SslMode};
use serde_json::{json, Value};

const DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/vectors");

fn cases() -> Vec<(&'static str, ConnParams)> {
    let mk = |host: &str, port: u16, db: &str, user: &str, pw: &str, ssl: SslMode| ConnParams {
        host: Some(host.into()),
        port: Some(port),
        dbname: Some(db.into()),
        user: Some(user.into()),
        password: Some(Secret::new(pw)),
        sslmode: Some(ssl),
        extra: vec![],
        system_roots: false,
    };
    let all = "a b'c\"d\\e;f=g@h/i?j#k%l ü";
    vec![
        ("plain", mk("srv.postgres.database.azure.com", 5432, "app", "aad_app", "eyJ0eXAi.eyJhdWQi.c2ln-_", SslMode::Require)),
        ("legacy_user_at_server", mk("srv.postgres.database.azure.com", 5432, "app", "user@srv", "tok", SslMode::Require)),
        ("upn_user", mk("srv.postgres.database.usgovcloudapi.net", 6432, "db", "dev@contoso.com", "tok", SslMode::VerifyFull)),
        ("space", mk("h", 5432, "my db", "a user", "p w", SslMode::Require)),
        ("single_quote", mk("h", 5432, "o'db", "o'user", "pa'ss", SslMode::Require)),
        ("double_quote", mk("h", 5432, "d\"b", "u\"s", "p\"w", SslMode::Require)),
        ("backslash", mk("h", 5432, "d\\b", "u\\s", "p\\w\\", SslMode::Require)),
        ("semicolon_equals", mk("h", 5432, "d;b=1", "u;s=r", "p;w=x;", SslMode::Require)),
        ("uri_delimiters", mk("h", 5432, "d/b?x#y", "u@s:r/x", "p@w:d/?#[]", SslMode::Require)),
        ("percent_plus", mk("h", 5432, "d%20b+c", "u%40s+", "p%w+&=", SslMode::Require)),
        ("non_ascii", mk("h", 5432, "données", "usér_名前", "pässwörd🔑", SslMode::Require)),
        ("leading_trailing_space", mk("h", 5432, " db ", " u ", " p ", SslMode::Require)),
        ("everything", mk("h", 5432, all, all, all, SslMode::Require)),
    ]
}

fn params_json(p: &ConnParams) -> Value {
    json!({
        "host": p.host, "port": p.port, "dbname": p.dbname, "user": p.user,
        "password": p.password.as_ref().map(|s| s.expose()), "sslmode": p.sslmode.map(|s| s.as_str()),
    })
}

const FORMATS: [(&str, Format); 7] = [
    ("libpq", Format::Libpq),
    ("uri", Format::Uri),
    ("ado", Format::Ado),
    ("jdbc", Format::Jdbc),
    ("json", Format::Json),
    ("shell", Format::Shell),
    ("pdo", Format::Pdo),
];

#[test]
fn render_vectors() {
    let path = format!("{DIR}/render.json");
    let mut generated = Vec::new();
    for (name, p) in cases() {
        let mut rendered = serde_json::Map::new();
        for (fname, f) in FORMATS {
            // A PDO DSN cannot carry ';' in a value: such vectors expect a configuration error.
            let v = if f == Format::Pdo && !p.pdo_representable() { Value::Null } else { json!(p.render(f)) };
            rendered.insert(fname.into(), v);
        }
        generated.push(json!({"name": name, "params": params_json(&p), "rendered": Value::Object(rendered)}));
    }
    let generated = Value::Array(generated);
    if std::env::var("PGENTRA_BLESS").is_ok() {
        std::fs::write(&path, serde_json::to_string_pretty(&generated).unwrap() + "\n").unwrap();
    }
    let committed: Value = serde_json::from_str(&std::fs::read_to_string(&path).expect("render.json")).unwrap();
    assert_eq!(committed, generated, "rendering changed; review and re-bless with PGENTRA_BLESS=1");
    // Every rendered string parses back to the same parameters (an empty value as none, as
    // libpq reads it).
    for case in committed.as_array().unwrap() {
        let mut want = case["params"].clone();
        for v in want.as_object_mut().unwrap().values_mut() {
            if v == "" {
                *v = Value::Null;
            }
        }
        for fname in ["libpq", "uri", "ado", "jdbc"] {
            let s = case["rendered"][fname].as_str().unwrap();
            let (_, back) = conninfo::parse(s).unwrap_or_else(|e| panic!("{} {fname}: {e}", case["name"]));
            assert_eq!(params_json(&back), want, "{} {fname}: {s}", case["name"]);
        }
    }
}

#[test]
fn parse_vectors() {
    let v: Value = serde_json::from_str(&std::fs::read_to_string(format!("{DIR}/parse.json")).unwrap()).unwrap();
    for case in v.as_array().unwrap() {
        let input = case["input"].as_str().unwrap();
        match conninfo::parse(input) {
            Ok((dialect, p)) => {
                assert!(case.get("error").is_none(), "{}: expected an error", case["name"]);
                assert_eq!(case["dialect"], json!(format!("{dialect:?}").to_lowercase()), "{}", case["name"]);
                assert_eq!(params_json(&p), case["params"], "{}", case["name"]);
            }
            Err(e) => {
                let want = case["error"].as_str().unwrap_or_else(|| panic!("{}: unexpected error {e}", case["name"]));
                assert!(e.message().contains(want), "{}: {e}", case["name"]);
            }
        }
    }
}
