//! Spawns the emulator binary and talks to it over loopback with plain HTTP/1.1.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde_json::Value;

struct Emu {
    child: Child,
    dir: PathBuf,
    env: HashMap<String, String>,
}

impl Drop for Emu {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn start() -> Emu {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    let dir = std::env::temp_dir().join(format!("pgentra-emu-test-{}-{nanos}", std::process::id()));
    let child = Command::new(env!("CARGO_BIN_EXE_pgentra-emulator"))
        .arg("--state-dir")
        .arg(&dir)
        .args(["--refresh-in", "1800"])
        .stdin(Stdio::null())
        .spawn()
        .expect("spawn emulator");
    let mut emu = Emu {
        child,
        dir,
        env: HashMap::new(),
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    let text = loop {
        if let Ok(t) = std::fs::read_to_string(emu.dir.join("emulator.env")) {
            break t;
        }
        assert!(
            emu.child.try_wait().unwrap().is_none(),
            "emulator exited early"
        );
        assert!(Instant::now() < deadline, "emulator.env did not appear");
        std::thread::sleep(Duration::from_millis(50));
    };
    for line in text.lines() {
        let (k, v) = line.split_once('=').unwrap();
        emu.env.insert(k.to_string(), v.to_string());
    }
    emu
}

/// One request on a fresh connection; returns (status, body).
fn request(
    base: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (u16, String) {
    let addr = base.trim_start_matches("http://");
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    req.push_str(body);
    s.write_all(req.as_bytes()).unwrap();
    let mut resp = String::new();
    s.read_to_string(&mut resp).unwrap();
    let status = resp.split(' ').nth(1).unwrap().parse().unwrap();
    let body = resp
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

fn claims(token: &str) -> Value {
    let part = token.split('.').nth(1).unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).unwrap()).unwrap()
}

#[test]
fn managed_identity_endpoint() {
    let emu = start();
    let http = emu.env["PGENTRA_EMULATOR_HTTP"].clone();
    assert!(emu.env["IDENTITY_ENDPOINT"].ends_with("/msi/token"));
    assert!(emu.env["AZURE_AUTHORITY_HOST"].starts_with("https://127.0.0.1:"));
    assert!(std::fs::read_to_string(&emu.env["PGENTRA_EMULATOR_CA"])
        .unwrap()
        .contains("BEGIN CERTIFICATE"));
    let json: Value =
        serde_json::from_str(&std::fs::read_to_string(emu.dir.join("emulator.json")).unwrap())
            .unwrap();
    assert_eq!(json["IDENTITY_HEADER"], emu.env["IDENTITY_HEADER"].as_str());

    let hdr = [("X-IDENTITY-HEADER", emu.env["IDENTITY_HEADER"].as_str())];
    let res = "https%3A%2F%2Fossrdbms-aad.database.windows.net";
    let msi = |extra: &str, h: &[(&str, &str)]| {
        request(
            &http,
            "GET",
            &format!("/msi/token?api-version=2019-08-01&resource={res}{extra}"),
            h,
            "",
        )
    };

    // Happy path, user-assigned identity.
    let (st, body) = msi("&client_id=11111111-1111-1111-1111-111111111111", &hdr);
    assert_eq!(st, 200, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["token_type"], "Bearer");
    assert_eq!(v["client_id"], "11111111-1111-1111-1111-111111111111");
    assert_eq!(v["refresh_in"], 1800);
    let exp: u64 = v["expires_on"].as_str().unwrap().parse().unwrap();
    let token = v["access_token"].as_str().unwrap().to_string();
    let c = claims(&token);
    assert_eq!(c["aud"], "https://ossrdbms-aad.database.windows.net");
    assert_eq!(c["exp"], exp);
    assert!(c["xms_mirid"]
        .as_str()
        .unwrap()
        .ends_with("/userAssignedIdentities/pgentra-uami"));

    // Same request again: the kept token comes back.
    let (_, body) = msi("&client_id=11111111-1111-1111-1111-111111111111", &hdr);
    let again: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(again["access_token"], token.as_str());

    // System-assigned identity.
    let (st, body) = msi("", &hdr);
    assert_eq!(st, 200);
    let v: Value = serde_json::from_str(&body).unwrap();
    assert!(claims(v["access_token"].as_str().unwrap())["xms_mirid"]
        .as_str()
        .unwrap()
        .ends_with("/sites/pgentra-app"));

    // Errors.
    assert_eq!(msi("", &[]).0, 401);
    assert_eq!(msi("", &[("X-IDENTITY-HEADER", "wrong")]).0, 401);
    let (st, body) = msi("&client_id=99999999-9999-9999-9999-999999999999", &hdr);
    assert_eq!(st, 400);
    assert!(body.contains("No User Assigned or Delegated Managed Identity found"));

    // Faults: 500 once, then normal service.
    let (st, _) = request(&http, "POST", "/control/faults", &[], r#"[{"status":500}]"#);
    assert_eq!(st, 200);
    assert_eq!(msi("", &hdr).0, 500);
    assert_eq!(msi("", &hdr).0, 200);

    // Counters.
    let (_, body) = request(&http, "GET", "/control/stats", &[], "");
    let s: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(s["msi_requests"], 8);
    assert_eq!(s["tokens_issued"], 2);
    assert_eq!(s["imds_requests"], 0);
    assert_eq!(s["entra_requests"], 0);

    // Rotate: the next request mints a different token.
    assert_eq!(request(&http, "POST", "/control/rotate", &[], "").0, 200);
    let (_, body) = msi("&client_id=11111111-1111-1111-1111-111111111111", &hdr);
    let rotated: Value = serde_json::from_str(&body).unwrap();
    assert_ne!(rotated["access_token"], token.as_str());

    assert_eq!(request(&http, "POST", "/control/reset", &[], "").0, 200);
    let (_, body) = request(&http, "GET", "/control/stats", &[], "");
    let s: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(s["msi_requests"], 0);
}

fn ber(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    if content.len() < 0x80 {
        out.push(content.len() as u8);
    } else {
        out.extend([0x82, (content.len() >> 8) as u8, content.len() as u8]);
    }
    out.extend_from_slice(content);
    out
}

/// A simple BindRequest as PostgreSQL's libldap sends it (see ldap.rs).
fn bind_request(id: u8, dn: &str, password: &str) -> Vec<u8> {
    let mut bind = ber(0x02, &[3]);
    bind.extend(ber(0x04, dn.as_bytes()));
    bind.extend(ber(0x80, password.as_bytes()));
    let mut msg = ber(0x02, &[id]);
    msg.extend(ber(0x60, &bind));
    ber(0x30, &msg)
}

/// Sends `bytes` on one LDAP connection; returns everything read until the server closes or
/// `replies` BindResponses arrived, and whether it closed.
fn ldap_exchange(port: &str, bytes: &[u8], replies: usize) -> (Vec<u8>, bool) {
    let mut s = TcpStream::connect(format!("127.0.0.1:{port}")).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    // In pieces, as TCP may deliver them; garbage at once (the server closes on its first bytes,
    // and what it has not read would turn its close into a reset).
    let piece = if bytes.first() == Some(&0x30) && bytes.len() > 8 { 7 } else { bytes.len().max(1) };
    for chunk in bytes.chunks(piece) {
        if s.write_all(chunk).is_err() {
            break;
        }
    }
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        if replies > 0 && out.len() >= 14 * replies {
            return (out, false);
        }
        match s.read(&mut buf) {
            Ok(0) => return (out, true),
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) => panic!("ldap read: {e} after {out:?}"),
        }
    }
}

#[test]
fn token_checks_over_ldap_and_control_endpoints() {
    let emu = start();
    let http = emu.env["PGENTRA_EMULATOR_HTTP"].clone();
    let port = emu.env["PGENTRA_EMULATOR_LDAP_PORT"].clone();
    assert!(emu.env["PGENTRA_EMULATOR_HBA"].contains(&format!("ldapport={port}")));
    let res = "https%3A%2F%2Fossrdbms-aad.database.windows.net";
    let mint = |q: &str| {
        let (st, body) = request(&http, "GET", &format!("/control/mint?{q}"), &[], "");
        assert_eq!(st, 200, "{body}");
        serde_json::from_str::<Value>(&body).unwrap()["accessToken"].as_str().unwrap().to_string()
    };
    // A new token on every mint; /control/current keeps one.
    let a = mint(&format!("identity=system&resource={res}"));
    let b = mint(&format!("identity=system&resource={res}"));
    assert_ne!(a, b);
    let current = |id: &str| {
        let (_, body) = request(&http, "GET", &format!("/control/current?identity={id}&resource={res}"), &[], "");
        serde_json::from_str::<Value>(&body).unwrap()["accessToken"].as_str().unwrap().to_string()
    };
    assert_eq!(current("system"), current("system"));
    let short = mint(&format!("identity=system&resource={res}&lifetime=1"));
    let c = claims(&short);
    assert_eq!(c["exp"].as_u64().unwrap() - c["iat"].as_u64().unwrap(), 1);
    assert_eq!(request(&http, "GET", &format!("/control/mint?identity=system&resource={res}&lifetime=0"), &[], "").0, 400);

    let dn = "cn=pgentra-app,dc=pgentra,dc=emulator";
    let success = [0x30, 0x0c, 0x02, 0x01, 0x01, 0x61, 0x07, 0x0a, 0x01, 0x00, 0x04, 0x00, 0x04, 0x00];
    let refused = [0x30, 0x0c, 0x02, 0x01, 0x01, 0x61, 0x07, 0x0a, 0x01, 49, 0x04, 0x00, 0x04, 0x00];
    // Bind then unbind, as PostgreSQL does: the answer, then the server closes.
    let mut both = bind_request(1, dn, &a);
    both.extend([0x30, 0x05, 0x02, 0x01, 0x02, 0x42, 0x00]);
    assert_eq!(ldap_exchange(&port, &both, 0), (success.to_vec(), true));
    assert_eq!(ldap_exchange(&port, &bind_request(1, dn, &b), 1).0, success);
    assert_eq!(ldap_exchange(&port, &bind_request(1, dn, "not a token"), 1).0, refused);
    assert_eq!(ldap_exchange(&port, &bind_request(1, "cn=pgentra-uami,dc=pgentra,dc=emulator", &a), 1).0, refused);
    // Revoke: that token only.
    assert_eq!(request(&http, "POST", "/control/revoke", &[], &a).0, 200);
    assert_eq!(request(&http, "POST", "/control/revoke", &[], "a.b.c").0, 400);
    assert_eq!(ldap_exchange(&port, &bind_request(1, dn, &a), 1).0, refused);
    assert_eq!(ldap_exchange(&port, &bind_request(1, dn, &b), 1).0, success);
    // Rotate: every earlier token.
    assert_eq!(request(&http, "POST", "/control/rotate", &[], "").0, 200);
    assert_eq!(ldap_exchange(&port, &bind_request(1, dn, &b), 1).0, refused);
    let fresh = mint(&format!("identity=system&resource={res}"));
    assert_eq!(ldap_exchange(&port, &bind_request(1, dn, &fresh), 1).0, success);
    // Garbage: a notice of disconnection, then the server closes; it keeps serving others.
    let (out, closed) = ldap_exchange(&port, b"GET / HTTP/1.1\r\n\r\n", 0);
    assert!(closed && out.first() == Some(&0x30), "{out:?}");
    let (out, closed) = ldap_exchange(&port, &[0x30, 0x84, 0x7f, 0xff, 0xff, 0xff], 0);
    assert!(closed && !out.is_empty());
    assert_eq!(ldap_exchange(&port, &bind_request(1, dn, &fresh), 1).0, success);
    let (_, body) = request(&http, "GET", "/control/stats", &[], "");
    let s: Value = serde_json::from_str(&body).unwrap();
    assert_eq!((s["logins_accepted"].as_u64(), s["logins_refused"].as_u64()), (Some(5), Some(4)));
}
