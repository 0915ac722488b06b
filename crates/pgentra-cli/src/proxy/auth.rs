//! Authentication: the optional local password asked of clients, and the answers to the
//! server's requests (cleartext, MD5, SCRAM-SHA-256).

use super::*;

/// Ask the client for the local password (AuthenticationCleartextPassword) and compare.
pub(super) async fn local_password<S: AsyncRead + AsyncWrite + Unpin>(client: &mut S, expected: &Secret) -> io::Result<bool> {
    client.write_all(&[b'R', 0, 0, 0, 8, 0, 0, 0, 3]).await?;
    client.flush().await?;
    let mut raw = read_message(client, 4096).await?;
    if raw[0] != b'p' {
        raw.zeroize();
        return Err(io::Error::new(io::ErrorKind::InvalidData, "expected a password message"));
    }
    let body = &raw[5..];
    let given = body.strip_suffix(&[0]).unwrap_or(body);
    let ok = constant_time_eq(given, expected.expose().as_bytes());
    raw.zeroize();
    Ok(ok)
}

pub(super) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Answer the server's authentication requests. Returns the AuthenticationOk message (and any
/// NegotiateProtocolVersion or notice before it) to forward to the client.
pub(super) async fn authenticate(up: &mut UpStream, user: &str, password: Option<&Secret>, password_mode: bool) -> Result<Vec<u8>, LoginError> {
    let io_err = |e: io::Error| local("08006", format!("reading the server's authentication request: {e}"));
    let mut forward = Vec::new();
    let mut scram: Option<scram::Client> = None;
    let mut scram_verified = false;
    let need_pw = || password.ok_or_else(|| local("28000", "the server asks for a password and none is configured"));
    loop {
        let raw = read_message(up, MAX_AUTH_MESSAGE).await.map_err(io_err)?;
        let body = &raw[5..];
        match raw[0] {
            b'R' if body.len() >= 4 => {
                let code = u32::from_be_bytes([body[0], body[1], body[2], body[3]]);
                match code {
                    0 => {
                        if scram.is_some() && !scram_verified {
                            return Err(local("28000", "the server skipped the SCRAM final message; refusing"));
                        }
                        forward.extend_from_slice(&raw);
                        return Ok(forward);
                    }
                    3 => {
                        // Cleartext password (Azure's Entra authentication): the token, over TLS.
                        let pw = need_pw()?;
                        let mut body = Vec::with_capacity(pw.expose().len() + 1);
                        body.extend_from_slice(pw.expose().as_bytes());
                        body.push(0);
                        send_secret(up, b'p', body).await?;
                    }
                    5 if body.len() >= 8 => {
                        if !password_mode {
                            return Err(local(
                                "28000",
                                "the server asks for MD5 password authentication, which cannot carry an Entra token; the server must use `password` (Azure does) for Entra roles",
                            ));
                        }
                        let pw = need_pw()?;
                        let salt = [body[4], body[5], body[6], body[7]];
                        let mut b = md5_password(pw.expose(), user, &salt).into_bytes();
                        b.push(0);
                        send_secret(up, b'p', b).await?;
                    }
                    10 => {
                        let mechs = cstrings(&body[4..]);
                        if !mechs.iter().any(|m| m == "SCRAM-SHA-256") {
                            return Err(local(
                                "28000",
                                format!("the server offers SASL mechanisms {mechs:?}; pgentra proxy supports SCRAM-SHA-256 without channel binding"),
                            ));
                        }
                        let pw = need_pw()?;
                        let (c, first) = scram::Client::new(pw.expose());
                        scram = Some(c);
                        let mut b = Vec::new();
                        b.extend_from_slice(b"SCRAM-SHA-256\0");
                        b.extend_from_slice(&(first.len() as u32).to_be_bytes());
                        b.extend_from_slice(first.as_bytes());
                        send_secret(up, b'p', b).await?;
                    }
                    11 => {
                        let c = scram.as_mut().ok_or_else(|| local("08P01", "SASLContinue without SASL"))?;
                        let fin = c.client_final(&body[4..]).map_err(|m| local("28000", format!("SCRAM: {m}")))?;
                        send_secret(up, b'p', fin.into_bytes()).await?;
                    }
                    12 => {
                        let c = scram.as_ref().ok_or_else(|| local("08P01", "SASLFinal without SASL"))?;
                        c.verify_server_final(&body[4..]).map_err(|m| local("28000", format!("SCRAM: {m}")))?;
                        scram_verified = true;
                    }
                    other => {
                        let name = match other {
                            2 => "Kerberos V5",
                            6 => "SCM credentials",
                            7 | 8 => "GSSAPI",
                            9 => "SSPI",
                            _ => "unknown",
                        };
                        return Err(local("28000", format!("the server asks for {name} authentication (code {other}), which the proxy does not support")));
                    }
                }
            }
            b'E' => {
                let (sqlstate, message) = error_fields(body);
                return Err(LoginError::Server { raw, sqlstate, message });
            }
            // NegotiateProtocolVersion, notices: for the client.
            b'v' | b'N' => forward.extend_from_slice(&raw),
            other => return Err(local("08P01", format!("unexpected message '{}' during authentication", other.escape_ascii()))),
        }
    }
}

/// Send a message carrying a secret and zero the buffer afterwards.
pub(super) async fn send_secret(up: &mut UpStream, tag: u8, mut body: Vec<u8>) -> Result<(), LoginError> {
    let mut m = message_bytes(tag, &body);
    body.zeroize();
    let r = async {
        up.write_all(&m).await?;
        up.flush().await
    }
    .await;
    m.zeroize();
    r.map_err(|e| local("08006", format!("sending the password: {e}")))
}

pub(super) fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// PostgreSQL's MD5 answer: "md5" + md5(md5(password + user) + salt), in hex.
pub(super) fn md5_password(password: &str, user: &str, salt: &[u8; 4]) -> String {
    use md5::{Digest, Md5};
    let mut h = Md5::new();
    h.update(password.as_bytes());
    h.update(user.as_bytes());
    let inner = hex(&h.finalize());
    let mut h = Md5::new();
    h.update(inner.as_bytes());
    h.update(salt);
    format!("md5{}", hex(&h.finalize()))
}
