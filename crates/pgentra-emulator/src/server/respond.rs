//! Response building and request decoding shared by the handlers: times in each service's
//! format, JSON and error bodies of each identity service, form and query decoding.

use super::*;

pub(super) fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

pub(super) fn utc(secs: u64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(secs as i64).unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

pub(super) fn ymd_hms(t: OffsetDateTime, date_time_sep: char) -> String {
    format!(
        "{:04}-{:02}-{:02}{}{:02}:{:02}:{:02}",
        t.year(),
        u8::from(t.month()),
        t.day(),
        date_time_sep,
        t.hour(),
        t.minute(),
        t.second()
    )
}

/// `2024-05-01T12:00:00Z`
pub(super) fn rfc3339_utc(secs: u64) -> String {
    format!("{}Z", ymd_hms(utc(secs), 'T'))
}

pub(super) fn json_resp(status: u16, body: &Value) -> Resp {
    raw_resp(
        status,
        "application/json; charset=utf-8",
        serde_json::to_vec(body).expect("json"),
    )
}

pub(super) fn raw_resp(status: u16, content_type: &str, body: Vec<u8>) -> Resp {
    let mut r = Response::new(EmuBody::full(Bytes::from(body)));
    *r.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    r.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_str(content_type).expect("ctype"),
    );
    r.headers_mut().insert(
        "cache-control",
        HeaderValue::from_static("no-store, no-cache"),
    );
    r
}

pub(super) fn with_note(mut r: Resp, note: impl Into<String>) -> Resp {
    r.extensions_mut().insert(Note(note.into()));
    r
}

/// Decodes `application/x-www-form-urlencoded` (also used for query strings).
pub(super) fn form_decode(s: &str) -> Vec<(String, String)> {
    fn dec(s: &str) -> String {
        let b = s.as_bytes();
        let mut out = Vec::with_capacity(b.len());
        let mut i = 0;
        while i < b.len() {
            match b[i] {
                b'+' => out.push(b' '),
                b'%' if i + 2 < b.len()
                    && b[i + 1].is_ascii_hexdigit()
                    && b[i + 2].is_ascii_hexdigit() =>
                {
                    let hex = std::str::from_utf8(&b[i + 1..i + 3]).expect("ascii");
                    out.push(u8::from_str_radix(hex, 16).expect("hex digits"));
                    i += 2;
                }
                c => out.push(c),
            }
            i += 1;
        }
        String::from_utf8_lossy(&out).into_owned()
    }
    s.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| match p.split_once('=') {
            Some((k, v)) => (dec(k), dec(v)),
            None => (dec(p), String::new()),
        })
        .collect()
}

pub(super) struct Params(pub(super) Vec<(String, String)>);

impl Params {
    pub(super) fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
    /// Present and non-empty.
    pub(super) fn value(&self, name: &str) -> Option<&str> {
        self.get(name).filter(|v| !v.trim().is_empty())
    }
}

pub(super) fn aad_timestamp(secs: u64) -> String {
    format!("{}Z", ymd_hms(utc(secs), ' '))
}

/// An Entra-style error body (`error`, `error_description` with AADSTS code, ...).
pub(super) fn aad_error(status: u16, error: &str, code: u32, message: &str) -> Resp {
    let trace = identity::random_guid();
    let corr = identity::random_guid();
    let ts = aad_timestamp(now_secs());
    let body = json!({
        "error": error,
        "error_description": format!("AADSTS{code}: {message} Trace ID: {trace} Correlation ID: {corr} Timestamp: {ts}"),
        "error_codes": [code],
        "timestamp": ts,
        "trace_id": trace,
        "correlation_id": corr,
    });
    with_note(json_resp(status, &body), format!("AADSTS{code}"))
}

pub(super) fn missing_param(name: &str) -> Resp {
    aad_error(
        400,
        "invalid_request",
        900144,
        &format!("The request body must contain the following parameter: '{name}'."),
    )
}

pub(super) fn msi_error(status: u16, message: &str) -> Resp {
    json_resp(
        status,
        &json!({"statusCode": status, "message": message, "correlationId": identity::random_guid()}),
    )
}

pub(super) fn imds_error(status: u16, error: &str, description: &str) -> Resp {
    json_resp(
        status,
        &json!({"error": error, "error_description": description}),
    )
}
