//! Arbitrary input never panics: every parser returns a value or an error (a stable-toolchain
//! stand-in for fuzzing; proptest shrinks any failure to a minimal input).

use pgentra::{conninfo, Claims, Config, Options};
use proptest::prelude::*;
use std::collections::HashMap;

fn dialect_like() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        "[a-z ='\\\\;\"]{0,40}",
        "(postgres(ql)?://)[a-z@:%/?#&=.\\[\\]0-9]{0,40}",
        "(jdbc:postgresql://)[a-z@:%/?#&=.0-9]{0,40}",
        "(Server|Host|User Id|Password|Port|Ssl Mode)=[a-z\"';= ]{0,20};{0,2}[A-Za-z =\"';]{0,30}",
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn parsers_never_panic(s in dialect_like()) {
        let _ = conninfo::parse(&s);
        let _ = conninfo::parse_libpq(&s);
        let _ = conninfo::parse_uri(&s);
        let _ = conninfo::parse_ado(&s);
        let _ = conninfo::parse_jdbc(&s);
        let _ = conninfo::detect(&s);
    }

    #[test]
    fn claims_never_panic(s in any::<String>(), payload in any::<Vec<u8>>()) {
        let _ = Claims::decode(&s);
        use base64::Engine;
        let p = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&payload);
        let _ = Claims::decode(&format!("a.{p}.c"));
    }

    #[test]
    fn environment_never_panics(
        cs in dialect_like(), host in any::<String>(), port in any::<String>(), ssl in any::<String>(),
        scope in any::<String>(), authority in any::<String>(), timeout in any::<String>(), cred in any::<String>(),
    ) {
        let env: HashMap<String, String> = [
            ("AZURE_POSTGRESQL_CONNECTIONSTRING", cs), ("AZURE_POSTGRESQL_HOST", host),
            ("AZURE_POSTGRESQL_PORT", port), ("AZURE_POSTGRESQL_SSL", ssl), ("PGENTRA_SCOPE", scope),
            ("AZURE_AUTHORITY_HOST", authority), ("PGENTRA_TIMEOUT", timeout), ("PGENTRA_CREDENTIAL", cred),
        ].into_iter().map(|(k, v)| (k.to_string(), v)).collect();
        let _ = Config::resolve(Options::default(), &env);
    }
}

/// Found by the fuzz targets (fuzz/): a host that is neither a name nor an IPv6 address went
/// into the URI's authority raw, and a value with a NUL byte could cut a libpq string short.
#[test]
fn fuzz_regressions() {
    use pgentra::Format;
    for s in ["host='a:%ec]'", "host='::1]x' port=5432", "host=\u{702}%er$\u{702}<%e", "host=a,b port=6432"] {
        let p = conninfo::parse_libpq(s).unwrap();
        let back = conninfo::parse_uri(&p.render(Format::Uri)).unwrap();
        assert_eq!(back.to_json(), p.to_json(), "{s}");
    }
    let e = conninfo::parse_libpq("host=h password=a\0b sslmode=require").unwrap_err();
    assert!(e.message().contains("NUL"), "{e}");
    let e = conninfo::parse_uri("postgresql://u%002@h/db").unwrap_err();
    assert!(e.message().contains("NUL") && e.message().contains("user"), "{e}");
    let env: HashMap<String, String> = [("AZURE_POSTGRESQL_HOST", "h"), ("AZURE_POSTGRESQL_USER", "u\0x")]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let e = Config::resolve(Options::default(), &env).unwrap_err();
    assert!(e.message().contains("'user'") && e.message().contains("NUL"), "{e}");
}

/// libpq reads an empty password (or host, dbname, user) as not given; so does pgentra.
#[test]
fn empty_values_are_not_given() {
    let p = conninfo::parse_libpq("host=h user='' password='' dbname=d").unwrap();
    assert!(p.password.is_none() && p.user.is_none());
    let env: HashMap<String, String> = [("AZURE_POSTGRESQL_CONNECTIONSTRING", "host=h dbname=d user=u password=''"), ("PGENTRA_CREDENTIAL", "password")]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let e = pgentra::Connector::with_env(Options::default(), &env).unwrap_err();
    assert!(e.message().contains("no password is configured"), "{e}");
}
