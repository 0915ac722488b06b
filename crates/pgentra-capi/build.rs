//! Generates the C header with cbindgen into OUT_DIR/pgentra.h. The committed copy,
//! include/pgentra.h, is checked against it by tests/header.rs; to update it run
//! `PGENTRA_UPDATE_HEADER=1 cargo build --release -p pgentra-capi`.
//!
//! Only this crate's own sources are parsed (`with_src`), so no `cargo metadata` runs here:
//! the build works offline and inside the loopback-only test namespace.

use std::env;
use std::path::PathBuf;

fn main() {
    let dir = PathBuf::from(env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let out_dir = PathBuf::from(env::var("OUT_DIR").expect("cargo sets OUT_DIR"));
    println!("cargo:rerun-if-changed=src");
    println!("cargo:rerun-if-changed=cbindgen.toml");
    println!("cargo:rerun-if-changed=include/pgentra.h");
    println!("cargo:rerun-if-env-changed=PGENTRA_UPDATE_HEADER");

    let config = cbindgen::Config::from_file(dir.join("cbindgen.toml")).expect("cbindgen.toml is readable and valid");
    let bindings = cbindgen::Builder::new()
        .with_config(config)
        .with_src(dir.join("src/lib.rs"))
        .generate()
        .expect("cbindgen generates include/pgentra.h from src/lib.rs");
    let fresh = out_dir.join("pgentra.h");
    bindings.write_to_file(&fresh);

    let committed = dir.join("include/pgentra.h");
    if env::var("PGENTRA_UPDATE_HEADER").as_deref() == Ok("1") {
        bindings.write_to_file(&committed);
    } else {
        let same = std::fs::read(&fresh).ok() == std::fs::read(&committed).ok();
        if !same {
            println!(
                "cargo:warning=include/pgentra.h is out of date; update it with `PGENTRA_UPDATE_HEADER=1 cargo build --release -p pgentra-capi`"
            );
        }
    }
}
