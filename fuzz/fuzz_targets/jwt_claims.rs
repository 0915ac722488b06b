#![no_main]
//! JWT claims: arbitrary tokens, and well-formed tokens around an arbitrary payload.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: (&str, &[u8])| {
    let (s, payload) = data;
    if let Ok(c) = pgentra::Claims::decode(s) {
        let _ = c.user_name();
    }
    let p = base64_url(payload);
    if let Ok(c) = pgentra::Claims::decode(&format!("eyJhbGciOiJub25lIn0.{p}.sig")) {
        let _ = c.user_name();
    }
});

fn base64_url(b: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for c in b.chunks(3) {
        let n = (c[0] as u32) << 16 | (*c.get(1).unwrap_or(&0) as u32) << 8 | *c.get(2).unwrap_or(&0) as u32;
        for i in 0..=c.len() {
            out.push(A[(n >> (18 - 6 * i) & 63) as usize] as char);
        }
    }
    out
}
