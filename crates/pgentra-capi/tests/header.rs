//! The committed header must be exactly what cbindgen generates from the current sources.

#[test]
fn committed_header_is_current() {
    let fresh_path = concat!(env!("OUT_DIR"), "/pgentra.h");
    let committed_path = concat!(env!("CARGO_MANIFEST_DIR"), "/include/pgentra.h");
    let fresh = std::fs::read_to_string(fresh_path).expect("build.rs writes OUT_DIR/pgentra.h");
    let committed = std::fs::read_to_string(committed_path).unwrap_or_default();
    if fresh != committed {
        let line = fresh
            .lines()
            .zip(committed.lines())
            .position(|(a, b)| a != b)
            .map(|i| i + 1)
            .unwrap_or_else(|| fresh.lines().count().min(committed.lines().count()) + 1);
        panic!(
            "crates/pgentra-capi/include/pgentra.h differs from the header generated from the sources \
             (first difference at line {line}; generated copy: {fresh_path}).\n\
             Update it with:\n    PGENTRA_UPDATE_HEADER=1 cargo build --release -p pgentra-capi\n\
             and commit include/pgentra.h."
        );
    }
}

#[test]
fn header_declares_the_api() {
    let h = include_str!("../include/pgentra.h");
    for needle in [
        "#ifndef PGENTRA_H",
        "typedef struct pgentra_connector pgentra_connector;",
        "typedef enum pgentra_status {",
        "PGENTRA_OK = 0,",
        "PGENTRA_ERR_NULL_ARGUMENT = 100,",
        "PGENTRA_ERR_INVALID_ARGUMENT = 103,",
        "PGENTRA_FORMAT_LIBPQ = 0,",
        "PGENTRA_FORMAT_SHELL = 5,",
        "PGENTRA_CREDENTIAL_AUTO = 0,",
        "PGENTRA_CREDENTIAL_AZURE_DEVELOPER_CLI = 7,",
        "int pgentra_connector_from_env(const char *prefix, struct pgentra_connector **out);",
        "int pgentra_connector_new(const struct pgentra_options *opts, struct pgentra_connector **out);",
        "int pgentra_token(struct pgentra_connector *c, char **out);",
        "int pgentra_connection_string(struct pgentra_connector *c, uint32_t format, char **out);",
        "void pgentra_string_free(char *s);",
        "const char *pgentra_last_error_message(void);",
        "extern \"C\"",
    ] {
        assert!(h.contains(needle), "include/pgentra.h lacks `{needle}`");
    }
}
