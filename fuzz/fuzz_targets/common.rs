//! Shared by the conninfo targets: whatever parses must render in every format, and the
//! lossless formats (libpq, URI) must parse back to the same parameters.
use pgentra::{conninfo, ConnParams, Format};

pub fn check(parsed: pgentra::Result<ConnParams>) {
    let Ok(p) = parsed else { return };
    for f in [Format::Libpq, Format::Uri, Format::Ado, Format::Jdbc, Format::Json, Format::Shell, Format::Pdo] {
        let _ = p.render(f);
    }
    let json = p.to_json();
    let again = conninfo::parse_libpq(&p.to_libpq()).expect("rendered libpq parses");
    assert_eq!(again.to_json(), json, "libpq round trip");
    let again = conninfo::parse_uri(&p.to_uri()).expect("rendered URI parses");
    assert_eq!(again.to_json(), json, "URI round trip");
}
