//! The token's claims (read, never verified: the server verifies) and the user-name rules.

use crate::error::{Error, Result};
use base64::Engine;
use serde_json::Value;

/// The claims pgentra reads. Never holds the token itself.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Claims {
    pub aud: Option<String>,
    pub tid: Option<String>,
    pub oid: Option<String>,
    pub appid: Option<String>,
    pub xms_mirid: Option<String>,
    pub upn: Option<String>,
    pub preferred_username: Option<String>,
    pub unique_name: Option<String>,
    pub exp: Option<i64>,
    pub iat: Option<i64>,
}

impl Claims {
    /// Decode the payload of a JWT-shaped token. Errors never contain the token.
    pub fn decode(token: &str) -> Result<Claims> {
        let mut parts = token.split('.');
        let payload = match (parts.next(), parts.next(), parts.next()) {
            (Some(_), Some(p), Some(_)) => p,
            _ => return Err(Error::credential("the access token is not a JWT (expected three dot-separated parts)")),
        };
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload.trim_end_matches('='))
            .map_err(|_| Error::credential("the access token's payload is not base64url"))?;
        let v: Value = serde_json::from_slice(&bytes).map_err(|_| Error::credential("the access token's payload is not JSON"))?;
        let s = |k: &str| v.get(k).and_then(Value::as_str).filter(|s| !s.is_empty()).map(str::to_string);
        let n = |k: &str| v.get(k).and_then(Value::as_i64);
        let aud = match v.get("aud") {
            Some(Value::Array(a)) => a.first().and_then(Value::as_str).map(str::to_string),
            _ => s("aud"),
        };
        Ok(Claims {
            aud,
            tid: s("tid"),
            oid: s("oid"),
            appid: s("appid").or_else(|| s("azp")),
            xms_mirid: s("xms_mirid"),
            upn: s("upn"),
            preferred_username: s("preferred_username"),
            unique_name: s("unique_name"),
            exp: n("exp"),
            iat: n("iat"),
        })
    }

    /// The database user the token stands for: `xms_mirid`'s last segment, then `upn`,
    /// `preferred_username`, `unique_name`, each tried in turn.
    /// Returns the name and the claim it came from.
    pub fn user_name(&self) -> Option<(String, &'static str)> {
        if let Some(m) = &self.xms_mirid {
            if let Some(last) = m.trim_end_matches('/').rsplit('/').next().filter(|s| !s.is_empty()) {
                return Some((last.to_string(), "xms_mirid"));
            }
        }
        for (v, name) in [
            (&self.upn, "upn"),
            (&self.preferred_username, "preferred_username"),
            (&self.unique_name, "unique_name"),
        ] {
            if let Some(v) = v {
                return Some((v.clone(), name));
            }
        }
        None
    }
}

#[cfg(test)]
pub(crate) fn make_jwt(payload: &Value) -> String {
    let e = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    format!("{}.{}.{}", e.encode(br#"{"typ":"JWT","alg":"RS256"}"#), e.encode(payload.to_string()), e.encode(b"sig"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn each_rule_in_turn() {
        let t = make_jwt(&json!({"xms_mirid": "/subscriptions/s/resourcegroups/rg/providers/Microsoft.ManagedIdentity/userAssignedIdentities/my-id", "upn": "x@y"}));
        assert_eq!(Claims::decode(&t).unwrap().user_name().unwrap(), ("my-id".to_string(), "xms_mirid"));
        let t = make_jwt(&json!({"upn": "a@contoso.com", "preferred_username": "b"}));
        assert_eq!(Claims::decode(&t).unwrap().user_name().unwrap().0, "a@contoso.com");
        // The incumbent stops when upn is missing; we go on.
        let t = make_jwt(&json!({"preferred_username": "b@contoso.com"}));
        assert_eq!(Claims::decode(&t).unwrap().user_name().unwrap(), ("b@contoso.com".to_string(), "preferred_username"));
        let t = make_jwt(&json!({"unique_name": "c@contoso.com", "upn": ""}));
        assert_eq!(Claims::decode(&t).unwrap().user_name().unwrap().0, "c@contoso.com");
        let t = make_jwt(&json!({"oid": "x"}));
        assert_eq!(Claims::decode(&t).unwrap().user_name(), None);
    }

    #[test]
    fn garbage_is_an_error_without_the_token() {
        let e = Claims::decode("not-a-token-secretvalue").unwrap_err();
        assert!(!e.to_string().contains("secretvalue"));
    }
}
