#![no_main]
//! conninfo::parse_jdbc on arbitrary text, then render and round trip (common.rs).
#[path = "common.rs"]
mod common;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|s: &str| {
    common::check(pgentra::conninfo::parse_jdbc(s));
    let _ = pgentra::conninfo::detect(s);
});
