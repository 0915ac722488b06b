//! The control endpoints (`/control/*`): counters, faults, rotation, revocation, minting.

use hyper::body::Incoming;
use hyper::Request;
use serde_json::json;

use super::*;

impl Emulator {
    pub(super) fn stats(&self) -> Resp {
        let sh = self.shared();
        let mut v = serde_json::to_value(&sh.stats).expect("stats json");
        v["faults_pending"] = json!(sh.faults.len());
        json_resp(200, &v)
    }

    pub(super) fn reset(&self) -> Resp {
        let mut sh = self.shared();
        sh.stats = Stats::default();
        sh.faults.clear();
        json_resp(200, &json!({"ok": true}))
    }

    /// Every token issued so far stops logging in, and the token endpoints mint new ones.
    pub(super) async fn rotate(&self) -> Resp {
        let dropped = {
            let mut st = self.mint.lock().await;
            let n = st.cache.len();
            st.cache.clear();
            n
        };
        self.book().generation += 1;
        with_note(
            json_resp(200, &json!({"ok": true, "dropped": dropped})),
            format!("dropped {dropped}"),
        )
    }

    /// `POST /control/revoke` with a token as the body: the server refuses it from now on, and
    /// the identity endpoints no longer hand it out.
    pub(super) async fn revoke(&self, req: Request<Incoming>) -> Resp {
        let body = match Limited::new(req.into_body(), MAX_BODY).collect().await {
            Ok(b) => b.to_bytes(),
            Err(_) => return json_resp(400, &json!({"error": "could not read body"})),
        };
        let token = String::from_utf8_lossy(&body).trim().to_string();
        match self.revoke_token(&token).await {
            Ok(dropped) => with_note(
                json_resp(200, &json!({"ok": true, "revoked": true, "dropped": dropped})),
                format!("revoked, dropped {dropped}"),
            ),
            Err(e) => json_resp(400, &json!({ "error": e })),
        }
    }

    /// Refuses `token` from now on. If the token endpoints keep it, they stop handing it out (as
    /// after a rotation): a client that asks again gets a new token, not the revoked one.
    /// Returns how many kept tokens were dropped (0 or 1).
    pub(super) async fn revoke_token(&self, token: &str) -> Result<usize, String> {
        let uti = identity::signed_uti(&self.signer, token).map_err(|e| format!("not a token this emulator signed: {e}"))?;
        {
            let mut book = self.book();
            if !book.issued.contains_key(&uti) {
                return Err("not a token of this emulator run".into());
            }
            book.revoked.insert(uti);
        }
        let mut st = self.mint.lock().await;
        let before = st.cache.len();
        st.cache.retain(|_, kept| kept.token != token);
        Ok(before - st.cache.len())
    }

    pub(super) async fn add_faults(&self, req: Request<Incoming>) -> Resp {
        let body = match Limited::new(req.into_body(), MAX_BODY).collect().await {
            Ok(b) => b.to_bytes(),
            Err(_) => return json_resp(400, &json!({"error": "could not read body"})),
        };
        match crate::args::parse_faults(&String::from_utf8_lossy(&body)) {
            Ok(faults) => {
                let mut sh = self.shared();
                let added = faults.len();
                sh.faults.extend(faults);
                json_resp(
                    200,
                    &json!({"ok": true, "queued": added, "faults_pending": sh.faults.len()}),
                )
            }
            Err(e) => json_resp(400, &json!({"error": e})),
        }
    }

    /// `GET /control/mint`: a new token on every call (`lifetime` in seconds, default the
    /// emulator's); `GET /control/current`: the kept token the token endpoints hand out.
    pub(super) async fn control_mint(&self, req: Request<Incoming>, kept: bool) -> Resp {
        self.shared().stats.mint_requests += 1;
        let q = Params(form_decode(req.uri().query().unwrap_or("")));
        let key = q.value("identity").unwrap_or("dev");
        let Some(ident) = identity::by_key(key) else {
            return json_resp(
                400,
                &json!({"error": format!("unknown identity {key:?}; one of system, uami, sp, cert, wi, dev")}),
            );
        };
        let Some(resource) = q.value("resource").or_else(|| q.value("scope")) else {
            return json_resp(400, &json!({"error": "resource (or scope) is required"}));
        };
        let aud = identity::audience(resource.trim());
        let lifetime = match q.value("lifetime").map(|v| v.trim().parse::<u64>()) {
            None => self.cfg.lifetime,
            Some(Ok(n)) if n >= 1 => n,
            Some(_) => return json_resp(400, &json!({"error": "lifetime must be a whole number of seconds, at least 1"})),
        };
        let (issued, note) = if kept {
            self.issue(&FaultAction::None, ident, &aud).await
        } else {
            (self.new_token(ident, &aud, lifetime), format!("{}, new token", ident.key))
        };
        let body = match q.value("format").unwrap_or("az") {
            "azd" => json!({"token": issued.token, "expiresOn": rfc3339_utc(issued.exp)}),
            "az" => {
                let local = utc(issued.exp).to_offset(self.cfg.local_offset);
                json!({
                    "accessToken": issued.token,
                    "expiresOn": format!("{}.{:06}", ymd_hms(local, ' '), 0),
                    "expires_on": issued.exp,
                    "subscription": SUBSCRIPTION_ID,
                    "tenant": TENANT_ID,
                    "tokenType": "Bearer",
                })
            }
            other => {
                return json_resp(
                    400,
                    &json!({"error": format!("unknown format {other:?}; az or azd")}),
                )
            }
        };
        with_note(json_resp(200, &body), note)
    }
}
