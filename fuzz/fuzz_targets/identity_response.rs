#![no_main]
//! Identity endpoint answers: a 200 body must give a token with a lifetime or a clean error; an
//! error body must give an error whose message never repeats a token-looking value verbatim
//! beyond its first line.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: (u16, &[u8])| {
    let (status, body) = data;
    let _ = pgentra::fuzzing::token_response(body);
    let e = pgentra::fuzzing::error_response(status, body);
    let msg = e.to_string();
    assert!(!msg.contains('\n'), "one-line error messages");
    let _ = format!("{e:?}");
});
