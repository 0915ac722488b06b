//! Reading what the identity services answer: token responses (every `expires_on` form the
//! services send), error responses with the service's code, and `Retry-After`.

use super::{now_unix, Token};
use crate::config::CredentialKind;
use crate::error::{Error, ErrorKind, Result};
use crate::secret::Secret;
use serde_json::Value;
use std::time::Duration;

/// `Retry-After` as delay-seconds or as an HTTP date (RFC 9110), capped at a minute.
pub(crate) fn retry_after_value(v: &str, now: i64) -> Option<Duration> {
    let v = v.trim();
    if let Ok(s) = v.parse::<u64>() {
        return Some(Duration::from_secs(s.min(60)));
    }
    let at = http_date(v)?;
    Some(Duration::from_secs(at.saturating_sub(now).clamp(0, 60) as u64))
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn unix_of(y: i64, mo: i64, d: i64, h: i64, mi: i64, s: i64) -> Option<i64> {
    let ok = (1970..=9999).contains(&y) && (1..=12).contains(&mo) && (1..=31).contains(&d) && (0..24).contains(&h) && (0..60).contains(&mi) && (0..=60).contains(&s);
    ok.then(|| days_from_civil(y, mo, d) * 86_400 + h * 3600 + mi * 60 + s)
}

/// An IMF-fixdate, `Sun, 06 Nov 1994 08:49:37 GMT`.
fn http_date(v: &str) -> Option<i64> {
    let parts: Vec<&str> = v.split_whitespace().collect();
    let [_, day, mon, year, time, "GMT"] = parts.as_slice() else { return None };
    const MONTHS: [&str; 12] = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
    let mo = MONTHS.iter().position(|m| m.eq_ignore_ascii_case(mon))? as i64 + 1;
    let t: Vec<i64> = time.split(':').map(|x| x.parse().ok()).collect::<Option<_>>()?;
    let [h, mi, s] = t.as_slice() else { return None };
    unix_of(year.parse().ok()?, mo, day.parse().ok()?, *h, *mi, *s)
}

/// App Service's older API writes `expires_on` as a date: `06/20/2019 02:57:58 +00:00`, or on
/// Windows `1/16/2020 5:24:12 AM +00:00` (as recorded in the Azure SDKs' tests).
fn app_service_date(v: &str) -> Option<i64> {
    let mut parts = v.split_whitespace();
    let date: Vec<i64> = parts.next()?.split('/').map(|x| x.parse().ok()).collect::<Option<_>>()?;
    let time: Vec<i64> = parts.next()?.split(':').map(|x| x.parse().ok()).collect::<Option<_>>()?;
    let (mut next, mut hour_shift) = (parts.next(), None);
    if let Some(ampm) = next.filter(|p| p.eq_ignore_ascii_case("AM") || p.eq_ignore_ascii_case("PM")) {
        hour_shift = Some(ampm.eq_ignore_ascii_case("PM"));
        next = parts.next();
    }
    let offset = match next {
        None => 0,
        Some(o) => {
            let sign = match o.as_bytes().first()? {
                b'+' => 1,
                b'-' => -1,
                _ => return None,
            };
            let (oh, om) = o[1..].split_once(':')?;
            sign * (oh.parse::<i64>().ok()? * 3600 + om.parse::<i64>().ok()? * 60)
        }
    };
    if parts.next().is_some() {
        return None;
    }
    let ([mo, d, y], [h, mi, s]) = (date.as_slice(), time.as_slice()) else { return None };
    let h = match hour_shift {
        None => *h,
        Some(_) if !(1..=12).contains(h) => return None,
        Some(false) => *h % 12,
        Some(true) => *h % 12 + 12,
    };
    Some(unix_of(*y, *mo, *d, h, *mi, *s)? - offset)
}

/// A number of seconds, as a JSON number or a string (IMDS sends every number as a string).
/// Out-of-range values saturate; never wraps.
fn seconds(v: &Value) -> Option<i64> {
    let float = |f: f64| f.is_finite().then_some(f as i64); // `as` saturates
    match v {
        Value::Number(n) => n.as_i64().or_else(|| n.as_f64().and_then(float)),
        Value::String(s) => s.trim().parse::<i64>().ok().or_else(|| s.trim().parse::<f64>().ok().and_then(float)),
        _ => None,
    }
}

fn unparseable(what: &str, field: &str, v: &Value) -> Error {
    let shown: String = v.to_string().chars().take(40).collect();
    Error::new(ErrorKind::IdentityService, format!("{what} answered a {field} that cannot be parsed ({shown}); expected seconds or a date"))
}

/// Parse a token response strictly: a non-empty token and a lifetime are required. The
/// lifetime is relative where the service says so (`expires_in`), so that a wrong host clock
/// does not matter; `expires_on` (Unix seconds, or App Service's older date form) otherwise.
pub(crate) fn parse_token_response(body: &[u8], what: &str, credential: CredentialKind, detail: &str, server_now: Option<i64>) -> Result<Token> {
    let v: Value = serde_json::from_slice(body)
        .map_err(|_| Error::new(ErrorKind::IdentityService, format!("{what} answered 200 with a body that is not JSON")))?;
    let token = v
        .get("access_token")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| Error::new(ErrorKind::IdentityService, format!("{what} answered 200 without an access_token")))?;
    let now = now_unix();
    let field = |name: &str| v.get(name).filter(|x| !x.is_null());
    let (expires_on, lifetime) = match (field("expires_in"), field("expires_on")) {
        (Some(i), _) => {
            let secs = seconds(i).ok_or_else(|| unparseable(what, "expires_in", i))?;
            (now.saturating_add(secs), Some(secs))
        }
        (None, Some(e)) => {
            let at = seconds(e).or_else(|| e.as_str().and_then(app_service_date)).ok_or_else(|| unparseable(what, "expires_on", e))?;
            // Against the service's own clock (its Date header) when it gave one.
            match server_now {
                Some(sn) => {
                    let secs = at.saturating_sub(sn);
                    (now.saturating_add(secs), Some(secs))
                }
                None => (at, None),
            }
        }
        (None, None) => {
            return Err(Error::new(
                ErrorKind::IdentityService,
                format!("{what} answered without expires_on or expires_in; a token of unknown lifetime is not cached"),
            ))
        }
    };
    let refresh_in = field("refresh_in").and_then(seconds).filter(|r| *r > 0);
    Ok(Token { secret: Secret::new(token), expires_on, lifetime, refresh_in, credential, detail: detail.to_string() })
}

/// The service's clock: its `Date` header (an HTTP date), if it sent one.
pub(crate) fn date_header(resp: &reqwest::Response) -> Option<i64> {
    resp.headers().get("date")?.to_str().ok().and_then(http_date)
}

/// Turn an error response into an error with the service's code and description.
pub(crate) fn service_error(status: u16, body: &[u8], what: &str, hint: &str) -> Error {
    let v: Option<Value> = serde_json::from_slice(body).ok();
    let desc = v
        .as_ref()
        .and_then(|v| {
            v.get("error_description")
                .or_else(|| v.get("message"))
                .or_else(|| v.get("error").and_then(|e| e.get("message")))
                .and_then(Value::as_str)
                .map(str::to_string)
        })
        .unwrap_or_default();
    let first_line = desc.lines().next().unwrap_or("").trim().to_string();
    let code = first_line
        .split(|c: char| !c.is_ascii_alphanumeric())
        .find(|w| w.starts_with("AADSTS"))
        .map(str::to_string)
        .or_else(|| v.as_ref().and_then(|v| v.get("error")).and_then(Value::as_str).map(str::to_string));
    let mut msg = format!("{what} answered HTTP {status}");
    if !first_line.is_empty() {
        msg.push_str(": ");
        msg.push_str(&first_line);
    }
    if !hint.is_empty() {
        msg.push_str("; ");
        msg.push_str(hint);
    }
    let mut e = Error::new(ErrorKind::IdentityService, msg);
    if let Some(c) = code {
        e = e.with_code(c);
    }
    e
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strict_response_parsing() {
        let k = CredentialKind::ManagedIdentity;
        assert!(parse_token_response(br#"{"access_token":"","expires_in":3600}"#, "x", k, "", None).is_err());
        assert!(parse_token_response(br#"{"access_token":"abc"}"#, "x", k, "", None).is_err());
        assert!(parse_token_response(br#"{not json"#, "x", k, "", None).is_err());
        let t = parse_token_response(br#"{"access_token":"abc","expires_on":"1700000000"}"#, "x", k, "", None).unwrap();
        assert_eq!(t.expires_on, 1_700_000_000);
        let t = parse_token_response(br#"{"access_token":"abc","expires_in":3600,"refresh_in":1800}"#, "x", k, "", None).unwrap();
        assert_eq!(t.refresh_in, Some(1800));
    }

    /// The forms the services send, as the Azure SDKs' tests record them (azure-sdk-for-python
    /// azure/identity/_credentials/app_service.py; azure-sdk-for-js managed identity tests).
    #[test]
    fn expires_on_forms() {
        assert_eq!(app_service_date("06/20/2019 02:57:58 +00:00"), Some(1_560_999_478));
        assert_eq!(app_service_date("1/16/2020 5:24:12 AM +00:00"), Some(1_579_152_252));
        assert_eq!(app_service_date("1/16/2020 5:24:12 PM +00:00"), Some(1_579_152_252 + 12 * 3600));
        assert_eq!(app_service_date("1/16/2020 12:00:00 AM +00:00"), Some(1_579_132_800));
        assert_eq!(app_service_date("06/20/2019 04:57:58 +02:00"), Some(1_560_999_478));
        for bad in ["", "soon", "13/01/2020 00:00:00 +00:00", "1/16/2020 13:00:00 PM +00:00", "1/16/2020 5:24:12 XM +00:00", "1/16/2020 5:24:12 +00:00 extra"] {
            assert_eq!(app_service_date(bad), None, "{bad}");
        }
        let k = CredentialKind::ManagedIdentity;
        let t = parse_token_response(br#"{"access_token":"abc","expires_on":"06/20/2019 02:57:58 +00:00"}"#, "x", k, "", None).unwrap();
        assert_eq!(t.expires_on, 1_560_999_478);
        // IMDS: numbers as strings; expires_in (relative) wins over expires_on.
        let now = now_unix();
        let t = parse_token_response(br#"{"access_token":"abc","expires_in":"86399","expires_on":"1567456848","refresh_in":"43199"}"#, "x", k, "", None).unwrap();
        assert!((t.expires_on - (now + 86399)).abs() <= 2 && t.refresh_in == Some(43199));
        // Unparseable is not "missing"; hostile numbers saturate.
        let e = parse_token_response(br#"{"access_token":"abc","expires_on":"soon"}"#, "the endpoint", k, "", None).unwrap_err();
        assert!(e.message().contains("expires_on") && e.message().contains("cannot be parsed") && e.message().contains("the endpoint"), "{e}");
        let t = parse_token_response(br#"{"access_token":"abc","expires_in":"1e19"}"#, "x", k, "", None).unwrap();
        assert_eq!(t.expires_on, i64::MAX);
        let t = parse_token_response(br#"{"access_token":"abc","expires_in":1e300}"#, "x", k, "", None).unwrap();
        assert_eq!(t.expires_on, i64::MAX);
    }

    #[test]
    fn retry_after_forms() {
        let now = 784_111_777; // Sun, 06 Nov 1994 08:49:37 GMT
        assert_eq!(http_date("Sun, 06 Nov 1994 08:49:37 GMT"), Some(now));
        assert_eq!(retry_after_value("Sun, 06 Nov 1994 08:49:40 GMT", now), Some(Duration::from_secs(3)));
        assert_eq!(retry_after_value("Sun, 06 Nov 1994 08:49:30 GMT", now), Some(Duration::from_secs(0)));
        assert_eq!(retry_after_value("120", now), Some(Duration::from_secs(60)));
        assert_eq!(retry_after_value("Sunday, 06-Nov-94 08:49:37 GMT", now), None);
    }

    #[test]
    fn aadsts_code_is_extracted() {
        let body = br#"{"error":"invalid_client","error_description":"AADSTS7000215: Invalid client secret provided.\r\nTrace ID: x","error_codes":[7000215]}"#;
        let e = service_error(401, body, "Entra", "check it");
        assert_eq!(e.code(), Some("AADSTS7000215"));
        assert!(e.message().contains("AADSTS7000215: Invalid client secret provided."));
        assert!(!e.message().contains("Trace ID"));
    }
}

