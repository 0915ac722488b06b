//! The hard-coded identity table and token minting.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use rand::RngCore as _;
use serde_json::{json, Map, Value};

pub const TENANT_ID: &str = "72f988bf-86f1-41af-91ab-2d7cd011db47";
pub const SUBSCRIPTION_ID: &str = "00000000-0000-0000-0000-000000000000";

/// How an identity authenticates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Managed identity, requested through MSI / IMDS.
    Managed,
    /// Service principal with a client secret.
    Secret,
    /// Service principal with a certificate (client assertion signed by the cert).
    Certificate,
    /// Workload identity (federated token as the client assertion).
    Federated,
    /// A developer signed in to `az` / `azd` (control endpoint only).
    Developer,
}

#[derive(Debug)]
pub struct Identity {
    pub key: &'static str,
    pub client_id: &'static str,
    pub oid: &'static str,
    /// The PostgreSQL role the token logs in as.
    pub role: &'static str,
    pub mirid: Option<&'static str>,
    pub upn: Option<&'static str>,
    pub kind: Kind,
}

pub static IDENTITIES: [Identity; 6] = [
    Identity {
        key: "system",
        client_id: "a0000000-0000-0000-0000-000000000001",
        oid: "00000000-0000-0000-0000-00000000a001",
        role: "pgentra-app",
        mirid: Some("/subscriptions/00000000-0000-0000-0000-000000000000/resourcegroups/rg/providers/Microsoft.Web/sites/pgentra-app"),
        upn: None,
        kind: Kind::Managed,
    },
    Identity {
        key: "uami",
        client_id: "11111111-1111-1111-1111-111111111111",
        oid: "00000000-0000-0000-0000-00000000a002",
        role: "pgentra-uami",
        mirid: Some("/subscriptions/00000000-0000-0000-0000-000000000000/resourcegroups/rg/providers/Microsoft.ManagedIdentity/userAssignedIdentities/pgentra-uami"),
        upn: None,
        kind: Kind::Managed,
    },
    Identity {
        key: "sp",
        client_id: "22222222-2222-2222-2222-222222222222",
        oid: "00000000-0000-0000-0000-00000000a003",
        role: "aad_pgentra_sp",
        mirid: None,
        upn: None,
        kind: Kind::Secret,
    },
    Identity {
        key: "cert",
        client_id: "33333333-3333-3333-3333-333333333333",
        oid: "00000000-0000-0000-0000-00000000a004",
        role: "aad_pgentra_cert",
        mirid: None,
        upn: None,
        kind: Kind::Certificate,
    },
    Identity {
        key: "wi",
        client_id: "44444444-4444-4444-4444-444444444444",
        oid: "00000000-0000-0000-0000-00000000a005",
        role: "aad_pgentra_wi",
        mirid: None,
        upn: None,
        kind: Kind::Federated,
    },
    Identity {
        key: "dev",
        client_id: "04b07795-8ddb-461a-bbee-02f9e1bf7b46",
        oid: "00000000-0000-0000-0000-00000000a006",
        role: "dev@contoso.com",
        mirid: None,
        upn: Some("dev@contoso.com"),
        kind: Kind::Developer,
    },
];

pub fn by_key(key: &str) -> Option<&'static Identity> {
    IDENTITIES.iter().find(|i| i.key == key)
}

/// Entra v2 client-credentials identities (sp, cert, wi) by client id.
pub fn entra_by_client_id(client_id: &str) -> Option<&'static Identity> {
    IDENTITIES.iter().find(|i| {
        matches!(i.kind, Kind::Secret | Kind::Certificate | Kind::Federated)
            && i.client_id.eq_ignore_ascii_case(client_id.trim())
    })
}

/// Managed identity selection as App Service / IMDS does it: no selector means the
/// system-assigned identity; otherwise match by client id, principal (object) id or
/// resource id. `None` means "no such identity".
fn nonempty(v: Option<&str>) -> Option<&str> {
    v.map(str::trim).filter(|s| !s.is_empty())
}

pub fn managed_lookup(
    client_id: Option<&str>,
    principal_id: Option<&str>,
    res_id: Option<&str>,
) -> Option<&'static Identity> {
    let managed = || IDENTITIES.iter().filter(|i| i.kind == Kind::Managed);
    if let Some(c) = nonempty(client_id) {
        return managed().find(|i| i.client_id.eq_ignore_ascii_case(c));
    }
    if let Some(p) = nonempty(principal_id) {
        return managed().find(|i| i.oid.eq_ignore_ascii_case(p));
    }
    if let Some(r) = nonempty(res_id) {
        let r = r.trim_end_matches('/');
        return managed().find(|i| i.mirid.is_some_and(|m| m.eq_ignore_ascii_case(r)));
    }
    by_key("system")
}

pub fn random_bytes(n: usize) -> Vec<u8> {
    let mut v = vec![0u8; n];
    rand::thread_rng().fill_bytes(&mut v);
    v
}

pub fn random_hex(n: usize) -> String {
    random_bytes(n).iter().map(|b| format!("{b:02x}")).collect()
}

/// A random id in GUID form (for trace / correlation ids).
pub fn random_guid() -> String {
    let h = random_hex(16);
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// Audience for a resource or scope: strips a trailing `/.default`.
pub fn audience(resource_or_scope: &str) -> String {
    resource_or_scope
        .strip_suffix("/.default")
        .unwrap_or(resource_or_scope)
        .to_string()
}

/// The audience Azure Database for PostgreSQL accepts (public cloud), the harness's server too.
pub const PG_AUDIENCE: &str = "https://ossrdbms-aad.database.windows.net";

/// The emulator's token signing key: ECDSA P-256 (ES256), made fresh for each run, so a token
/// the emulator did not sign in this run never verifies. Entra signs with RS256; nothing but the
/// emulator itself checks these signatures (ring can sign RSA but not make an RSA key), so the
/// header says what is really used.
pub struct Signer {
    key: ring::signature::EcdsaKeyPair,
    rng: ring::rand::SystemRandom,
}

pub const KEY_ID: &str = "pgentra-emulator";

impl Signer {
    pub fn generate() -> Result<Self, String> {
        use ring::signature::{EcdsaKeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
        let rng = ring::rand::SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
            .map_err(|_| "generating the token signing key failed".to_string())?;
        let key = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng)
            .map_err(|_| "loading the token signing key failed".to_string())?;
        Ok(Signer { key, rng })
    }

    fn sign(&self, msg: &[u8]) -> Vec<u8> {
        self.key
            .sign(&self.rng, msg)
            .map(|s| s.as_ref().to_vec())
            .expect("ECDSA signing with a valid key")
    }

    fn verify(&self, msg: &[u8], sig: &[u8]) -> bool {
        use ring::signature::KeyPair as _;
        ring::signature::UnparsedPublicKey::new(
            &ring::signature::ECDSA_P256_SHA256_FIXED,
            self.key.public_key().as_ref(),
        )
        .verify(msg, sig)
        .is_ok()
    }

    /// The public key as a JWK (for the discovery keys endpoint).
    pub fn jwk(&self) -> Value {
        use ring::signature::KeyPair as _;
        let p = self.key.public_key().as_ref(); // 0x04 || x || y
        json!({
            "kty": "EC", "crv": "P-256", "use": "sig", "alg": "ES256", "kid": KEY_ID,
            "x": URL_SAFE_NO_PAD.encode(&p[1..33]), "y": URL_SAFE_NO_PAD.encode(&p[33..65]),
        })
    }
}

/// A token minted by the emulator: the token and its unique id (`uti`).
pub struct Minted {
    pub token: String,
    pub uti: String,
}

/// Mints a JWT-shaped token with realistic claims, signed with the emulator's key.
pub fn mint(signer: &Signer, ident: &Identity, aud: &str, iat: u64, exp: u64) -> Minted {
    let header = json!({"typ": "JWT", "alg": "ES256", "kid": KEY_ID});
    let uti = URL_SAFE_NO_PAD.encode(random_bytes(16));
    let iss = format!("https://sts.windows.net/{TENANT_ID}/");
    let mut p = Map::new();
    p.insert("aud".into(), json!(aud));
    p.insert("iss".into(), json!(iss));
    p.insert("iat".into(), json!(iat));
    p.insert("nbf".into(), json!(iat));
    p.insert("exp".into(), json!(exp));
    p.insert("appid".into(), json!(ident.client_id));
    let appidacr = match ident.kind {
        Kind::Secret => "1",
        Kind::Developer => "0",
        _ => "2",
    };
    p.insert("appidacr".into(), json!(appidacr));
    p.insert("idp".into(), json!(iss));
    p.insert(
        "idtyp".into(),
        json!(if ident.kind == Kind::Developer {
            "user"
        } else {
            "app"
        }),
    );
    p.insert("oid".into(), json!(ident.oid));
    p.insert("sub".into(), json!(ident.oid));
    p.insert("tid".into(), json!(TENANT_ID));
    p.insert("uti".into(), json!(uti));
    p.insert("ver".into(), json!("1.0"));
    if let Some(m) = ident.mirid {
        p.insert("xms_mirid".into(), json!(m));
    }
    if let Some(u) = ident.upn {
        p.insert("upn".into(), json!(u));
        p.insert("preferred_username".into(), json!(u));
        p.insert("unique_name".into(), json!(u));
        p.insert("name".into(), json!("Dev User"));
        p.insert("scp".into(), json!("user_impersonation"));
    }
    let enc = |v: &Value| URL_SAFE_NO_PAD.encode(serde_json::to_vec(v).expect("json"));
    let signed = format!("{}.{}", enc(&header), enc(&Value::Object(p)));
    let sig = URL_SAFE_NO_PAD.encode(signer.sign(signed.as_bytes()));
    Minted { token: format!("{signed}.{sig}"), uti }
}

/// What a verified token says.
#[derive(Debug)]
pub struct Verified {
    pub ident: &'static Identity,
    pub uti: String,
}

/// The payload of a token this emulator signed (signature checked, nothing else).
fn signed_payload(signer: &Signer, token: &str) -> Result<Value, String> {
    let parts: Vec<&str> = token.split('.').collect();
    if parts.len() != 3 {
        return Err("not a JWT".into());
    }
    let sig = URL_SAFE_NO_PAD
        .decode(parts[2])
        .map_err(|_| "signature is not base64url".to_string())?;
    let signed = &token[..parts[0].len() + 1 + parts[1].len()];
    if !signer.verify(signed.as_bytes(), &sig) {
        return Err("bad signature".into());
    }
    b64url_json(parts[1])
        .filter(Value::is_object)
        .ok_or_else(|| "payload is not a JSON object".to_string())
}

/// The unique id of a token this emulator signed (for revocation).
pub fn signed_uti(signer: &Signer, token: &str) -> Result<String, String> {
    let p = signed_payload(signer, token)?;
    p.get("uti").and_then(Value::as_str).map(str::to_string).ok_or_else(|| "no uti".into())
}

/// Checks a token as Azure Database for PostgreSQL does for a login as `role`: signed by this
/// emulator, within its validity, for the OSS RDBMS audience, for the identity that `role`
/// belongs to. Revocation is the caller's (it keeps the state). `Err` says why, for the log.
pub fn verify(signer: &Signer, token: &str, role: &str, now: u64) -> Result<Verified, String> {
    let p = signed_payload(signer, token)?;
    let num = |k: &str| p.get(k).and_then(Value::as_u64);
    let exp = num("exp").ok_or("no exp")?;
    if exp <= now {
        return Err("expired".into());
    }
    if num("nbf").is_some_and(|nbf| nbf > now) {
        return Err("not yet valid".into());
    }
    let aud = p.get("aud").and_then(Value::as_str).unwrap_or("");
    if aud.strip_suffix('/').unwrap_or(aud) != PG_AUDIENCE {
        return Err(format!("wrong audience {aud:?}"));
    }
    let oid = p.get("oid").and_then(Value::as_str).unwrap_or("");
    let ident = IDENTITIES
        .iter()
        .find(|i| i.oid == oid)
        .ok_or("unknown identity")?;
    if ident.role != role {
        return Err(format!("a token of {} for role {role:?}", ident.key));
    }
    let uti = p.get("uti").and_then(Value::as_str).ok_or("no uti")?.to_string();
    Ok(Verified { ident, uti })
}

fn b64url_json(part: &str) -> Option<Value> {
    let bytes = URL_SAFE_NO_PAD.decode(part.trim_end_matches('=')).ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// Checks a certificate client assertion without verifying its signature.
/// On failure returns (AADSTS code, message).
pub fn check_cert_assertion(
    assertion: &str,
    client_id: &str,
    now: u64,
) -> Result<(), (u32, String)> {
    let malformed = || (50027, "JWT token is invalid or malformed.".to_string());
    let parts: Vec<&str> = assertion.split('.').collect();
    if parts.len() != 3 || parts.iter().any(|p| p.is_empty()) {
        return Err(malformed());
    }
    let header = b64url_json(parts[0])
        .filter(Value::is_object)
        .ok_or_else(malformed)?;
    let payload = b64url_json(parts[1])
        .filter(Value::is_object)
        .ok_or_else(malformed)?;
    if header.get("x5t").and_then(Value::as_str).is_none()
        && header.get("x5t#S256").and_then(Value::as_str).is_none()
    {
        return Err((
            700027,
            "Client assertion failed signature validation: the header has no x5t or x5t#S256 thumbprint."
                .into(),
        ));
    }
    let claim_is_client = |name: &str| {
        payload
            .get(name)
            .and_then(Value::as_str)
            .is_some_and(|v| v.eq_ignore_ascii_case(client_id))
    };
    if !claim_is_client("sub") || !claim_is_client("iss") {
        return Err((
            700021,
            "Client assertion application identifier doesn't match 'client_id' parameter (check the 'iss' and 'sub' claims)."
                .into(),
        ));
    }
    let aud_ok = match payload.get("aud") {
        Some(Value::String(s)) => s.contains("/oauth2/v2.0/token"),
        Some(Value::Array(a)) => a
            .iter()
            .any(|v| v.as_str().is_some_and(|s| s.contains("/oauth2/v2.0/token"))),
        _ => false,
    };
    if !aud_ok {
        return Err((
            700212,
            "No matching federated identity record found for presented assertion audience (expected the token endpoint, '.../oauth2/v2.0/token')."
                .into(),
        ));
    }
    if let Some(exp) = payload.get("exp").and_then(Value::as_u64) {
        if exp + 300 < now {
            return Err((
                700024,
                "Client assertion is not within its valid time range.".into(),
            ));
        }
    }
    Ok(())
}

/// Decodes a token's payload (for logging-free introspection in tests).
#[cfg(test)]
pub fn payload(token: &str) -> Value {
    b64url_json(token.split('.').nth(1).unwrap()).unwrap()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mint_shape() {
        let signer = Signer::generate().unwrap();
        let t = mint(
            &signer,
            by_key("uami").unwrap(),
            "https://ossrdbms-aad.database.windows.net",
            10,
            20,
        )
        .token;
        assert_eq!(t.split('.').count(), 3);
        let p = payload(&t);
        assert_eq!(p["aud"], "https://ossrdbms-aad.database.windows.net");
        assert_eq!(p["exp"], 20);
        assert_eq!(p["sub"], p["oid"]);
        assert!(p["xms_mirid"].as_str().unwrap().ends_with("/pgentra-uami"));
        let d = payload(&mint(&signer, by_key("dev").unwrap(), "x", 1, 2).token);
        assert_eq!(d["idtyp"], "user");
        assert_eq!(d["upn"], "dev@contoso.com");
        assert!(d.get("xms_mirid").is_none());
    }

    #[test]
    fn verify_checks_signature_time_audience_and_role() {
        let signer = Signer::generate().unwrap();
        let sys = by_key("system").unwrap();
        let t = mint(&signer, sys, PG_AUDIENCE, 100, 200).token;
        let ok = verify(&signer, &t, "pgentra-app", 150).unwrap();
        assert_eq!(ok.ident.key, "system");
        assert_eq!(ok.uti, payload(&t)["uti"]);
        // Expired at exp, not yet valid before nbf.
        assert_eq!(verify(&signer, &t, "pgentra-app", 200).unwrap_err(), "expired");
        assert_eq!(verify(&signer, &t, "pgentra-app", 99).unwrap_err(), "not yet valid");
        // Another identity's role.
        assert!(verify(&signer, &t, "pgentra-uami", 150).unwrap_err().contains("a token of system"));
        // Wrong audience (a trailing slash is the same audience).
        let graph = mint(&signer, sys, "https://graph.microsoft.com", 100, 200).token;
        assert!(verify(&signer, &graph, "pgentra-app", 150).unwrap_err().contains("wrong audience"));
        let slash = mint(&signer, sys, "https://ossrdbms-aad.database.windows.net/", 100, 200).token;
        assert!(verify(&signer, &slash, "pgentra-app", 150).is_ok());
        // Tampered: a payload that says something else, with the original signature.
        let parts: Vec<&str> = t.split('.').collect();
        let mut claims = payload(&t);
        claims["exp"] = json!(10_000);
        let forged = format!("{}.{}.{}", parts[0], URL_SAFE_NO_PAD.encode(claims.to_string()), parts[2]);
        assert_eq!(verify(&signer, &forged, "pgentra-app", 150).unwrap_err(), "bad signature");
        let mut sig = URL_SAFE_NO_PAD.decode(parts[2]).unwrap();
        sig[10] ^= 1;
        let flipped = format!("{}.{}.{}", parts[0], parts[1], URL_SAFE_NO_PAD.encode(sig));
        assert_eq!(verify(&signer, &flipped, "pgentra-app", 150).unwrap_err(), "bad signature");
        // Signed by another key (another emulator run).
        let other = mint(&Signer::generate().unwrap(), sys, PG_AUDIENCE, 100, 200).token;
        assert_eq!(verify(&signer, &other, "pgentra-app", 150).unwrap_err(), "bad signature");
        // Garbage.
        for g in ["", "a.b.c", "a.b", "...", "x.y.z.w", "eyJ.eyJ.!!", &format!("{t}x"), &t[..t.len() - 2]] {
            assert!(verify(&signer, g, "pgentra-app", 150).is_err(), "{g}");
        }
        assert!(signed_uti(&signer, &t).is_ok());
        assert!(signed_uti(&signer, &other).is_err());
        // The published key is the verifying one's shape.
        let jwk = signer.jwk();
        assert_eq!(jwk["kty"], "EC");
        assert_eq!(URL_SAFE_NO_PAD.decode(jwk["x"].as_str().unwrap()).unwrap().len(), 32);
    }

    #[test]
    fn lookups() {
        assert_eq!(managed_lookup(None, None, None).unwrap().key, "system");
        assert_eq!(
            managed_lookup(Some("11111111-1111-1111-1111-111111111111"), None, None)
                .unwrap()
                .key,
            "uami"
        );
        assert_eq!(
            managed_lookup(None, Some("00000000-0000-0000-0000-00000000A002"), None)
                .unwrap()
                .key,
            "uami"
        );
        assert_eq!(
            managed_lookup(None, None, by_key("uami").unwrap().mirid)
                .unwrap()
                .key,
            "uami"
        );
        assert!(managed_lookup(Some("99999999-1111-1111-1111-111111111111"), None, None).is_none());
        assert!(entra_by_client_id("11111111-1111-1111-1111-111111111111").is_none());
        assert_eq!(
            entra_by_client_id("33333333-3333-3333-3333-333333333333")
                .unwrap()
                .key,
            "cert"
        );
    }

    #[test]
    fn cert_assertion() {
        let cid = "33333333-3333-3333-3333-333333333333";
        let enc = |v: Value| URL_SAFE_NO_PAD.encode(serde_json::to_vec(&v).unwrap());
        let good = format!(
            "{}.{}.sig",
            enc(json!({"alg":"RS256","x5t#S256":"abc"})),
            enc(json!({"sub":cid,"iss":cid,"aud":"https://h/t/oauth2/v2.0/token","exp":100}))
        );
        assert!(check_cert_assertion(&good, cid, 50).is_ok());
        assert_eq!(check_cert_assertion("a.b", cid, 50).unwrap_err().0, 50027);
        let no_x5t = format!(
            "{}.{}.sig",
            enc(json!({"alg":"RS256"})),
            enc(json!({"sub":cid,"iss":cid,"aud":"/oauth2/v2.0/token"}))
        );
        assert_eq!(
            check_cert_assertion(&no_x5t, cid, 50).unwrap_err().0,
            700027
        );
        let wrong_sub = format!(
            "{}.{}.sig",
            enc(json!({"x5t":"a"})),
            enc(json!({"sub":"x","iss":cid,"aud":"/oauth2/v2.0/token"}))
        );
        assert_eq!(
            check_cert_assertion(&wrong_sub, cid, 50).unwrap_err().0,
            700021
        );
    }
}
