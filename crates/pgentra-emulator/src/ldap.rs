//! A minimal LDAP v3 server for one purpose: PostgreSQL's `ldap` authentication method in
//! simple-bind mode asks it whether a role's password (here: an access token) is good.
//!
//! Why LDAP and not PAM (`pam_exec`): the `ldap` method needs nothing installed or configured
//! outside pg_hba.conf (Debian's PostgreSQL links OpenLDAP's libldap), runs as the unprivileged
//! server user, and talks to the emulator over a loopback socket, so the emulator checks each
//! token against its own state (signing key, rotations, revocations) with no helper process per
//! connection. PAM would need a service file under /etc/pam.d (root, and shared with the whole
//! machine), a `pam_exec` script forked for every login, and a way back from that script to the
//! emulator anyway. Both make PostgreSQL report a refusal as SQLSTATE 28000 "<method>
//! authentication failed", not as Azure's (and every password method's) 28P01 "password
//! authentication failed", on which clients act: the harness loads a small hook that reports
//! it as the latter (tests/harness/pgentra_auth.c).
//!
//! What PostgreSQL 15 (libldap 2.5) sends with `ldapprefix`/`ldapsuffix` and `ldaptls=0`: one
//! connection per login, a BindRequest (version 3, DN = prefix + user name + suffix, simple
//! authentication = the client's cleartext password), then an UnbindRequest and a close.
//! This module speaks exactly that subset of RFC 4511's BER encoding:
//! - BindRequest with simple authentication: BindResponse with the checker's verdict
//!   (success, or invalidCredentials 49); SASL: authMethodNotSupported (7); a version other
//!   than 3: protocolError (2).
//! - UnbindRequest: the connection is closed.
//! - ExtendedRequest (StartTLS, Who am I?, ...): ExtendedResponse protocolError, as RFC 4511
//!   4.12 asks for unknown request names.
//! - Anything else, or bytes that are not a well-formed LDAPMessage: a Notice of Disconnection
//!   (protocolError) and the connection is closed.
//!
//! Input is bounded: one message at most `MAX_MESSAGE` bytes, definite lengths of at most four
//! length octets, a few messages per connection and an idle deadline.

use std::time::Duration;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

/// The largest LDAPMessage accepted (a token is about 1 KB; PostgreSQL's own limit on a
/// password packet is 1000 bytes in older versions and larger now, never near this).
pub const MAX_MESSAGE: usize = 64 * 1024;
/// Messages per connection (PostgreSQL sends two).
const MAX_MESSAGES: usize = 16;
/// How long a connection may stay silent.
const IDLE: Duration = Duration::from_secs(10);

pub const SUCCESS: u8 = 0;
pub const PROTOCOL_ERROR: u8 = 2;
pub const AUTH_METHOD_NOT_SUPPORTED: u8 = 7;
pub const INVALID_CREDENTIALS: u8 = 49;

const TAG_INTEGER: u8 = 0x02;
const TAG_OCTET_STRING: u8 = 0x04;
const TAG_ENUMERATED: u8 = 0x0a;
const TAG_SEQUENCE: u8 = 0x30;
const TAG_BIND_REQUEST: u8 = 0x60; // [APPLICATION 0] constructed
const TAG_BIND_RESPONSE: u8 = 0x61; // [APPLICATION 1] constructed
const TAG_UNBIND_REQUEST: u8 = 0x42; // [APPLICATION 2] primitive (NULL)
const TAG_EXTENDED_REQUEST: u8 = 0x77; // [APPLICATION 23] constructed
const TAG_EXTENDED_RESPONSE: u8 = 0x78; // [APPLICATION 24] constructed
const TAG_AUTH_SIMPLE: u8 = 0x80; // [0] primitive
const TAG_AUTH_SASL: u8 = 0xa3; // [3] constructed
const TAG_EXT_REQUEST_NAME: u8 = 0x80; // [0] primitive
const TAG_EXT_RESPONSE_NAME: u8 = 0x8a; // [10] primitive
/// RFC 4511 4.4.1: the Notice of Disconnection's responseName.
const NOTICE_OF_DISCONNECTION: &str = "1.3.6.1.4.1.1466.20036";

#[derive(Debug, PartialEq, Eq)]
pub enum Auth {
    Simple(Vec<u8>),
    Sasl,
}

#[derive(Debug, PartialEq, Eq)]
pub enum Request {
    Bind { id: i32, version: i64, name: Vec<u8>, auth: Auth },
    Unbind { id: i32 },
    Extended { id: i32 },
    /// A well-formed message with an operation this server does not offer.
    Other { id: i32, tag: u8 },
}

#[derive(Debug, PartialEq, Eq)]
pub enum Error {
    /// Not enough bytes yet for a whole message.
    Incomplete,
    /// Not a well-formed LDAPMessage (or over a limit).
    Malformed(&'static str),
}

/// Reads a tag and a definite length at the start of `b`: (tag, header length, content length).
fn header(b: &[u8]) -> Result<(u8, usize, usize), Error> {
    let tag = *b.first().ok_or(Error::Incomplete)?;
    if tag & 0x1f == 0x1f {
        return Err(Error::Malformed("multi-byte tags are not used by LDAP"));
    }
    let first = *b.get(1).ok_or(Error::Incomplete)?;
    if first < 0x80 {
        return Ok((tag, 2, first as usize));
    }
    let n = (first & 0x7f) as usize;
    if n == 0 {
        return Err(Error::Malformed("indefinite lengths are not allowed in LDAP"));
    }
    if n > 4 {
        return Err(Error::Malformed("length too long"));
    }
    let bytes = b.get(2..2 + n).ok_or(Error::Incomplete)?;
    let len = bytes.iter().fold(0usize, |acc, &x| (acc << 8) | x as usize);
    Ok((tag, 2 + n, len))
}

/// The whole size of the first message in `buf`, once its header is there.
pub fn frame_len(buf: &[u8]) -> Result<usize, Error> {
    let (tag, h, len) = header(buf)?;
    if tag != TAG_SEQUENCE {
        return Err(Error::Malformed("an LDAPMessage is a SEQUENCE"));
    }
    let total = h.checked_add(len).ok_or(Error::Malformed("length overflow"))?;
    if total > MAX_MESSAGE {
        return Err(Error::Malformed("message too large"));
    }
    Ok(total)
}

/// A cursor over the contents of one constructed element.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    /// The next element: (tag, contents). Everything must be present (a whole message is).
    fn next(&mut self) -> Result<(u8, &'a [u8]), Error> {
        let (tag, h, len) = header(self.0).map_err(|e| match e {
            Error::Incomplete => Error::Malformed("truncated element"),
            e => e,
        })?;
        let end = h.checked_add(len).ok_or(Error::Malformed("length overflow"))?;
        let content = self.0.get(h..end).ok_or(Error::Malformed("element longer than its container"))?;
        self.0 = &self.0[end..];
        Ok((tag, content))
    }

    fn expect(&mut self, want: u8, what: &'static str) -> Result<&'a [u8], Error> {
        match self.next()? {
            (tag, c) if tag == want => Ok(c),
            _ => Err(Error::Malformed(what)),
        }
    }

    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// A BER INTEGER of at most 8 octets (two's complement).
fn integer(c: &[u8]) -> Result<i64, Error> {
    if c.is_empty() || c.len() > 8 {
        return Err(Error::Malformed("integer length"));
    }
    let neg = c[0] & 0x80 != 0;
    let mut v: i64 = if neg { -1 } else { 0 };
    for &b in c {
        v = (v << 8) | b as i64;
    }
    Ok(v)
}

fn message_id(c: &[u8]) -> Result<i32, Error> {
    match integer(c)? {
        v @ 0..=0x7fff_ffff => Ok(v as i32),
        _ => Err(Error::Malformed("messageID out of range")),
    }
}

/// Parses one whole LDAPMessage (`msg` is exactly `frame_len` bytes).
pub fn parse(msg: &[u8]) -> Result<Request, Error> {
    let mut outer = Reader(msg);
    let body = outer.expect(TAG_SEQUENCE, "an LDAPMessage is a SEQUENCE")?;
    if !outer.is_empty() {
        return Err(Error::Malformed("bytes after the message"));
    }
    let mut m = Reader(body);
    let id = message_id(m.expect(TAG_INTEGER, "messageID")?)?;
    let (op, content) = m.next()?;
    // Controls ([0] SEQUENCE OF Control) may follow; none is critical to a bind here, but a
    // client that marks one critical expects unavailableCriticalExtension: PostgreSQL sends none.
    if !m.is_empty() {
        let (tag, _) = m.next()?;
        if tag != 0xa0 || !m.is_empty() {
            return Err(Error::Malformed("unexpected element after the operation"));
        }
    }
    match op {
        TAG_BIND_REQUEST => {
            let mut b = Reader(content);
            let version = integer(b.expect(TAG_INTEGER, "bind version")?)?;
            let name = b.expect(TAG_OCTET_STRING, "bind name")?.to_vec();
            let auth = match b.next()? {
                (TAG_AUTH_SIMPLE, pw) => Auth::Simple(pw.to_vec()),
                (TAG_AUTH_SASL, _) => Auth::Sasl,
                _ => return Err(Error::Malformed("bind authentication choice")),
            };
            if !b.is_empty() {
                return Err(Error::Malformed("bytes after the bind request"));
            }
            Ok(Request::Bind { id, version, name, auth })
        }
        TAG_UNBIND_REQUEST => {
            if !content.is_empty() {
                return Err(Error::Malformed("unbind request is NULL"));
            }
            Ok(Request::Unbind { id })
        }
        TAG_EXTENDED_REQUEST => {
            let mut e = Reader(content);
            e.expect(TAG_EXT_REQUEST_NAME, "extended request name")?;
            Ok(Request::Extended { id })
        }
        tag if tag & 0xc0 == 0x40 => Ok(Request::Other { id, tag }),
        _ => Err(Error::Malformed("protocolOp is not an application tag")),
    }
}

fn push_len(out: &mut Vec<u8>, len: usize) {
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes = (len as u32).to_be_bytes();
        let skip = bytes.iter().take_while(|&&b| b == 0).count();
        out.push(0x80 | (4 - skip) as u8);
        out.extend_from_slice(&bytes[skip..]);
    }
}

fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(content.len() + 6);
    out.push(tag);
    push_len(&mut out, content.len());
    out.extend_from_slice(content);
    out
}

fn integer_bytes(v: i32) -> Vec<u8> {
    let bytes = v.to_be_bytes();
    // Minimal two's complement: drop leading 0x00 octets while the next one keeps the sign.
    let mut i = 0;
    while i < 3 && bytes[i] == 0 && bytes[i + 1] & 0x80 == 0 {
        i += 1;
    }
    bytes[i..].to_vec()
}

/// resultCode, matchedDN (empty), diagnosticMessage.
fn ldap_result(code: u8, diagnostic: &str) -> Vec<u8> {
    let mut r = tlv(TAG_ENUMERATED, &[code]);
    r.extend(tlv(TAG_OCTET_STRING, b""));
    r.extend(tlv(TAG_OCTET_STRING, diagnostic.as_bytes()));
    r
}

fn message(id: i32, op: Vec<u8>) -> Vec<u8> {
    let mut body = tlv(TAG_INTEGER, &integer_bytes(id));
    body.extend(op);
    tlv(TAG_SEQUENCE, &body)
}

pub fn bind_response(id: i32, code: u8, diagnostic: &str) -> Vec<u8> {
    message(id, tlv(TAG_BIND_RESPONSE, &ldap_result(code, diagnostic)))
}

pub fn extended_response(id: i32, code: u8, diagnostic: &str, name: Option<&str>) -> Vec<u8> {
    let mut r = ldap_result(code, diagnostic);
    if let Some(n) = name {
        r.extend(tlv(TAG_EXT_RESPONSE_NAME, n.as_bytes()));
    }
    message(id, tlv(TAG_EXTENDED_RESPONSE, &r))
}

/// RFC 4511 4.4.1: sent (with messageID 0) before closing on a message we cannot handle.
pub fn notice_of_disconnection(diagnostic: &str) -> Vec<u8> {
    extended_response(0, PROTOCOL_ERROR, diagnostic, Some(NOTICE_OF_DISCONNECTION))
}

/// What a bind is checked with: the bind DN and the simple password; `Err` holds a reason for
/// the log (never the password).
pub trait Checker: Send + Sync + 'static {
    fn check(&self, dn: &[u8], password: &[u8]) -> Result<String, String>;
}

/// The answer to one request, and whether to close afterwards.
pub fn answer(req: &Request, checker: &dyn Checker) -> (Option<Vec<u8>>, bool, String) {
    match req {
        Request::Bind { id, version, name, auth } => {
            if *version != 3 {
                return (Some(bind_response(*id, PROTOCOL_ERROR, "only LDAP v3")), false, format!("bind version {version}"));
            }
            match auth {
                Auth::Sasl => (
                    Some(bind_response(*id, AUTH_METHOD_NOT_SUPPORTED, "simple bind only")),
                    false,
                    "sasl bind refused".into(),
                ),
                Auth::Simple(pw) => match checker.check(name, pw) {
                    Ok(who) => (Some(bind_response(*id, SUCCESS, "")), false, format!("bind ok ({who})")),
                    Err(why) => (
                        Some(bind_response(*id, INVALID_CREDENTIALS, "")),
                        false,
                        format!("bind refused ({why})"),
                    ),
                },
            }
        }
        Request::Unbind { .. } => (None, true, String::new()), // (not logged: every login ends so)
        Request::Extended { id } => (
            Some(extended_response(*id, PROTOCOL_ERROR, "extended operations are not supported", None)),
            false,
            "extended request refused".into(),
        ),
        Request::Other { tag, .. } => (
            Some(notice_of_disconnection("only bind and unbind are supported")),
            true,
            format!("operation 0x{tag:02x} refused"),
        ),
    }
}

/// Serves one LDAP connection until unbind, an error, the idle deadline or `MAX_MESSAGES`.
pub async fn serve(mut stream: TcpStream, checker: std::sync::Arc<dyn Checker>) {
    let mut buf: Vec<u8> = Vec::with_capacity(2048);
    let mut served = 0;
    loop {
        // Read until one whole message is buffered.
        let total = loop {
            match frame_len(&buf) {
                Ok(n) if buf.len() >= n => break Ok(n),
                Ok(_) | Err(Error::Incomplete) => {}
                Err(e) => break Err(e),
            }
            let mut chunk = [0u8; 4096];
            match tokio::time::timeout(IDLE, stream.read(&mut chunk)).await {
                Ok(Ok(0)) | Ok(Err(_)) | Err(_) => return,
                Ok(Ok(n)) => buf.extend_from_slice(&chunk[..n]),
            }
        };
        let parsed = total.and_then(|n| parse(&buf[..n]).map(|r| (r, n)));
        let (reply, close, note) = match parsed {
            Ok((req, n)) => {
                buf.drain(..n);
                answer(&req, checker.as_ref())
            }
            Err(e) => {
                let why = match e {
                    Error::Malformed(w) => w,
                    Error::Incomplete => "truncated message",
                };
                (Some(notice_of_disconnection(why)), true, format!("malformed message ({why})"))
            }
        };
        if !note.is_empty() {
            eprintln!("pgentra-emulator: ldap {note}");
        }
        if let Some(bytes) = reply {
            if stream.write_all(&bytes).await.is_err() {
                return;
            }
        }
        served += 1;
        if close || served >= MAX_MESSAGES {
            let _ = stream.shutdown().await;
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
    }

    /// What PostgreSQL 15.18 (Debian 12, libldap 2.5.13) sent for a login as pgentra-app with
    /// the password "a.b.c", captured between it and the emulator.
    const PG_BIND: &str = "303602010160310201030425636e3d7067656e7472612d6170702c64633d7067656e7472612c64633d656d756c61746f728005612e622e63";
    const PG_UNBIND: &str = "30050201024200";
    /// The emulator's refusal, as captured.
    const EMU_REFUSAL: &str = "300c02010161070a013104000400";

    struct Fixed(bool);
    impl Checker for Fixed {
        fn check(&self, dn: &[u8], pw: &[u8]) -> Result<String, String> {
            assert_eq!(dn, b"cn=pgentra-app,dc=pgentra,dc=emulator");
            assert_eq!(pw, b"a.b.c");
            if self.0 { Ok("ok".into()) } else { Err("no".into()) }
        }
    }

    #[test]
    fn what_postgresql_sends() {
        let bind = hex(PG_BIND);
        assert_eq!(frame_len(&bind), Ok(bind.len()));
        let req = parse(&bind).unwrap();
        assert_eq!(
            req,
            Request::Bind {
                id: 1,
                version: 3,
                name: b"cn=pgentra-app,dc=pgentra,dc=emulator".to_vec(),
                auth: Auth::Simple(b"a.b.c".to_vec())
            }
        );
        let (reply, close, _) = answer(&req, &Fixed(false));
        assert_eq!(reply.unwrap(), hex(EMU_REFUSAL));
        assert!(!close);
        let (reply, _, _) = answer(&req, &Fixed(true));
        assert_eq!(reply.unwrap(), bind_response(1, SUCCESS, ""));
        assert_eq!(bind_response(1, SUCCESS, ""), hex("300c02010161070a010004000400"));
        let unbind = hex(PG_UNBIND);
        assert_eq!(parse(&unbind), Ok(Request::Unbind { id: 2 }));
        assert!(answer(&parse(&unbind).unwrap(), &Fixed(true)).1, "unbind closes");
    }

    #[test]
    fn frames_arrive_in_pieces() {
        let bind = hex(PG_BIND);
        for cut in 0..bind.len() {
            match frame_len(&bind[..cut]) {
                Ok(n) => assert_eq!(n, bind.len()),
                Err(e) => assert_eq!(e, Error::Incomplete, "cut {cut}"),
            }
        }
    }

    #[test]
    fn encodings() {
        assert_eq!(integer_bytes(0), vec![0]);
        assert_eq!(integer_bytes(127), vec![0x7f]);
        assert_eq!(integer_bytes(128), vec![0, 0x80]);
        assert_eq!(integer_bytes(0x7fff_ffff), vec![0x7f, 0xff, 0xff, 0xff]);
        let long = "x".repeat(300);
        let r = bind_response(7, INVALID_CREDENTIALS, &long);
        assert_eq!(frame_len(&r), Ok(r.len()));
        assert_eq!(&r[..2], &[0x30, 0x82]);
        assert_eq!(integer(&[0xff]), Ok(-1));
        assert_eq!(integer(&[0x01, 0x00]), Ok(256));
        // A long-form length decodes as the short form does.
        let b = hex("30070201014200a000");
        assert_eq!(parse(&b), Ok(Request::Unbind { id: 1 }));
        let long_form = hex("30810502010142 00".replace(' ', "").as_str());
        assert_eq!(parse(&long_form), Ok(Request::Unbind { id: 1 }));
    }

    #[test]
    fn other_operations() {
        // SASL bind: authMethodNotSupported.
        let mut bind = tlv(TAG_INTEGER, &[3]);
        bind.extend(tlv(TAG_OCTET_STRING, b""));
        bind.extend(tlv(TAG_AUTH_SASL, &tlv(TAG_OCTET_STRING, b"EXTERNAL")));
        let sasl = parse(&message(3, tlv(TAG_BIND_REQUEST, &bind))).unwrap();
        assert!(matches!(sasl, Request::Bind { auth: Auth::Sasl, .. }));
        let (reply, close, _) = answer(&sasl, &Fixed(true));
        assert_eq!(reply.unwrap(), bind_response(3, AUTH_METHOD_NOT_SUPPORTED, "simple bind only"));
        assert!(!close);
        // Version 2: protocolError.
        let v2 = parse(&hex("300c020101600702010204008000")).unwrap();
        assert!(matches!(v2, Request::Bind { version: 2, .. }));
        let (reply, _, _) = answer(&v2, &Fixed(true));
        assert_eq!(reply.unwrap(), bind_response(1, PROTOCOL_ERROR, "only LDAP v3"));
        // StartTLS: an ExtendedResponse with protocolError.
        let starttls = parse(&hex("301d02010177188016312e332e362e312e342e312e313436362e3230303337")).unwrap();
        assert_eq!(starttls, Request::Extended { id: 1 });
        let (reply, close, _) = answer(&starttls, &Fixed(true));
        let reply = reply.unwrap();
        assert_eq!(reply[5], TAG_EXTENDED_RESPONSE);
        assert!(!close);
        // A search: notice of disconnection, then close.
        let search = parse(&hex("300602010263010a")).unwrap();
        assert_eq!(search, Request::Other { id: 2, tag: 0x63 });
        let (reply, close, _) = answer(&search, &Fixed(true));
        let reply = reply.unwrap();
        assert!(close);
        assert_eq!(&reply[..3], &[0x30, reply.len() as u8 - 2, 0x02]);
        assert!(reply.windows(NOTICE_OF_DISCONNECTION.len()).any(|w| w == NOTICE_OF_DISCONNECTION.as_bytes()));
    }

    #[test]
    fn malformed_input_is_refused_without_panicking() {
        let bad: &[&str] = &[
            "",                               // nothing
            "31",                             // not a SEQUENCE
            "3080",                           // indefinite length
            "3085ffffffffff",                 // five length octets
            "3084ffffffff",                   // 4 GiB
            "3083010000",                     // over MAX_MESSAGE
            "3000",                           // empty message
            "3005020101",                     // truncated
            "30030201",                       // integer without content
            "3003020100",                     // id, no operation
            "30050201ff4200",                 // negative message id
            "300902050100000000004200",       // message id too long
            "300402004200",                   // empty integer
            "300402010142",                   // operation header cut
            "30060201014201ff",               // unbind with content
            "3006020101420030",               // a stray byte after the operation
            "300502010142004200",             // bytes after the message
            "30080201016003020103",           // bind without name
            "300c020101600702010304008100",   // unknown auth choice
            "300d02010160080201030400800030", // bytes after the bind
            "3006020101bf1f00",               // multi-byte tag
            "3006020101020100",               // universal tag as operation
            "300a02010177058103616263",       // extended without requestName [0]
            "30070201014200a100",             // not controls after the op
        ];
        for h in bad {
            let b = hex(h);
            assert!(parse(&b).is_err(), "{h} parsed as {:?}", parse(&b));
            if let Ok(n) = frame_len(&b) {
                assert!(b.len() < n || parse(&b[..n]).is_err() || b.len() > n, "{h}");
            }
        }
        // Every prefix and every single-byte corruption of a real message: never a panic.
        let bind = hex(PG_BIND);
        for i in 0..bind.len() {
            let _ = parse(&bind[..i]);
            for v in [0x00, 0x7f, 0x80, 0xff, bind[i] ^ 0x01] {
                let mut m = bind.clone();
                m[i] = v;
                let _ = frame_len(&m).map(|n| parse(&m[..n.min(m.len())]));
                let _ = parse(&m);
            }
        }
        // Random bytes.
        let mut x: u32 = 0x1234_5678;
        for _ in 0..20_000 {
            let len = (x % 64) as usize;
            let m: Vec<u8> = (0..len)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 17;
                    x ^= x << 5;
                    if matches!(x % 3, 0) { 0x30 } else { x as u8 }
                })
                .collect();
            let _ = frame_len(&m);
            let _ = parse(&m);
        }
    }
}
