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
