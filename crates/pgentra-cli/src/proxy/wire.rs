//! Protocol framing: the client's startup packet, whole messages, ErrorResponse.

use super::*;

pub(super) enum Startup {
    Cancel { pid: i32, secret: Vec<u8> },
    Login { version: u32, params: Vec<(String, String)> },
}

pub(super) enum StartupError {
    /// The client closed before sending anything.
    Closed,
    Io(io::Error),
    /// Refused with an 08P01 ErrorResponse.
    Bad(String),
}

pub(super) async fn read_startup<S: AsyncRead + AsyncWrite + Unpin>(client: &mut S) -> Result<Startup, StartupError> {
    let mut ssl_answered = false;
    let mut gss_answered = false;
    let mut first = true;
    loop {
        let mut len = [0u8; 4];
        let mut got = 0;
        while got < 4 {
            match client.read(&mut len[got..]).await {
                Ok(0) if got == 0 && first => return Err(StartupError::Closed),
                Ok(0) => return Err(StartupError::Bad("incomplete startup packet".into())),
                Ok(n) => got += n,
                Err(e) => return Err(StartupError::Io(e)),
            }
        }
        first = false;
        let len = u32::from_be_bytes(len) as usize;
        if !(8..=MAX_STARTUP_PACKET).contains(&len) {
            return Err(StartupError::Bad(format!("invalid length of startup packet ({len} bytes; at most {MAX_STARTUP_PACKET})")));
        }
        let mut body = vec![0u8; len - 4];
        match client.read_exact(&mut body).await {
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Err(StartupError::Bad("incomplete startup packet".into())),
            Err(e) => return Err(StartupError::Io(e)),
        }
        let code = u32::from_be_bytes([body[0], body[1], body[2], body[3]]);
        match code {
            SSL_REQUEST | GSSENC_REQUEST => {
                let answered = if code == SSL_REQUEST { &mut ssl_answered } else { &mut gss_answered };
                if len != 8 || *answered {
                    return Err(StartupError::Bad("unexpected encryption request".into()));
                }
                *answered = true;
                // Decline: the client continues in plaintext on loopback.
                client.write_all(b"N").await.map_err(StartupError::Io)?;
                client.flush().await.map_err(StartupError::Io)?;
            }
            CANCEL_REQUEST => {
                // 3.0: a 4-byte secret; 3.2: up to 256 bytes.
                if len < 16 || len > 12 + 256 {
                    return Err(StartupError::Bad("invalid length of cancel request packet".into()));
                }
                let pid = i32::from_be_bytes([body[4], body[5], body[6], body[7]]);
                return Ok(Startup::Cancel { pid, secret: body[8..].to_vec() });
            }
            v if v >> 16 == 3 => return parse_startup_params(&body[4..]).map(|params| Startup::Login { version: v, params }),
            v => {
                return Err(StartupError::Bad(format!(
                    "unsupported frontend protocol {}.{}: the proxy supports 3.x",
                    v >> 16,
                    v & 0xffff
                )))
            }
        }
    }
}

pub(super) fn parse_startup_params(mut b: &[u8]) -> Result<Vec<(String, String)>, StartupError> {
    let bad = |m: &str| StartupError::Bad(format!("invalid startup packet layout: {m}"));
    let mut out = Vec::new();
    loop {
        let Some(nul) = b.iter().position(|&c| c == 0) else {
            return Err(bad("expected terminator as last byte"));
        };
        if nul == 0 {
            if b.len() != 1 {
                return Err(bad("data after the terminator"));
            }
            return Ok(out);
        }
        let key = std::str::from_utf8(&b[..nul]).map_err(|_| bad("a parameter name is not UTF-8"))?.to_string();
        b = &b[nul + 1..];
        let Some(vnul) = b.iter().position(|&c| c == 0) else {
            return Err(bad("missing value for parameter"));
        };
        let value = std::str::from_utf8(&b[..vnul]).map_err(|_| bad("a parameter value is not UTF-8"))?.to_string();
        b = &b[vnul + 1..];
        out.push((key, value));
    }
}

/// Send an ErrorResponse (FATAL) and close the client's connection without losing it: the
/// write side is shut down, then unread input is drained briefly so that the close is a FIN,
/// not a reset that could discard the error in flight.
pub(super) async fn refuse<S: AsyncRead + AsyncWrite + Unpin>(client: &mut S, sqlstate: &str, message: &str) {
    let _ = client.write_all(&error_response(sqlstate, message)).await;
    let _ = client.flush().await;
    let _ = client.shutdown().await;
    let _ = timeout(Duration::from_millis(200), async {
        let mut buf = [0u8; 4096];
        let mut total = 0;
        while total < 256 * 1024 {
            match client.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => total += n,
            }
        }
    })
    .await;
}

pub(super) fn error_response(sqlstate: &str, message: &str) -> Vec<u8> {
    let mut body = Vec::new();
    for (t, v) in [(b'S', "FATAL"), (b'V', "FATAL"), (b'C', sqlstate), (b'M', message)] {
        body.push(t);
        body.extend(v.bytes().filter(|&c| c != 0));
        body.push(0);
    }
    body.push(0);
    message_bytes(b'E', &body)
}

pub(super) fn message_bytes(tag: u8, body: &[u8]) -> Vec<u8> {
    let mut m = Vec::with_capacity(body.len() + 5);
    m.push(tag);
    m.extend_from_slice(&((body.len() + 4) as u32).to_be_bytes());
    m.extend_from_slice(body);
    m
}

/// (SQLSTATE, message) of an ErrorResponse body.
pub(super) fn error_fields(mut body: &[u8]) -> (String, String) {
    let (mut code, mut msg) = (String::new(), String::new());
    while let Some((&t, rest)) = body.split_first() {
        if t == 0 {
            break;
        }
        let end = rest.iter().position(|&c| c == 0).unwrap_or(rest.len());
        let v = String::from_utf8_lossy(&rest[..end]).into_owned();
        match t {
            b'C' => code = v,
            b'M' => msg = v,
            _ => {}
        }
        body = rest.get(end + 1..).unwrap_or(&[]);
    }
    (code, msg)
}

/// One whole message (tag, length, body) as raw bytes.
pub(super) async fn read_message<R: AsyncRead + Unpin>(r: &mut R, max: usize) -> io::Result<Vec<u8>> {
    let mut head = [0u8; 5];
    r.read_exact(&mut head).await?;
    let len = u32::from_be_bytes([head[1], head[2], head[3], head[4]]) as usize;
    if len < 4 || len > max {
        return Err(io::Error::new(io::ErrorKind::InvalidData, format!("invalid message length {len} (type '{}')", head[0].escape_ascii())));
    }
    let mut raw = vec![0u8; len + 1];
    raw[..5].copy_from_slice(&head);
    r.read_exact(&mut raw[5..]).await?;
    Ok(raw)
}

pub(super) fn startup_message(version: u32, user: &str, database: Option<&str>, passthrough: &[(String, String)]) -> Vec<u8> {
    let mut body = Vec::with_capacity(256);
    body.extend_from_slice(&version.to_be_bytes());
    let mut put = |k: &str, v: &str| {
        body.extend_from_slice(k.as_bytes());
        body.push(0);
        body.extend_from_slice(v.as_bytes());
        body.push(0);
    };
    put("user", user);
    if let Some(d) = database {
        put("database", d);
    }
    for (k, v) in passthrough {
        put(k, v);
    }
    body.push(0);
    let mut m = Vec::with_capacity(body.len() + 4);
    m.extend_from_slice(&((body.len() + 4) as u32).to_be_bytes());
    m.extend_from_slice(&body);
    m
}

pub(super) fn ssl_request() -> [u8; 8] {
    let mut b = [0u8; 8];
    b[..4].copy_from_slice(&8u32.to_be_bytes());
    b[4..].copy_from_slice(&SSL_REQUEST.to_be_bytes());
    b
}

pub(super) fn cstrings(mut b: &[u8]) -> Vec<String> {
    let mut out = Vec::new();
    while let Some(n) = b.iter().position(|&c| c == 0) {
        if n == 0 {
            break;
        }
        out.push(String::from_utf8_lossy(&b[..n]).into_owned());
        b = &b[n + 1..];
    }
    out
}
