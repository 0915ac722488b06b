#![no_main]
//! conninfo::parse_uri on arbitrary text, then render and round trip (common.rs).
#[path = "common.rs"]
mod common;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|s: &str| {
    common::check(pgentra::conninfo::parse_uri(s));
    let _ = pgentra::conninfo::detect(s);
});
