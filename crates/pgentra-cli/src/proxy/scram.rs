

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use ring::{digest, hmac, pbkdf2, rand::SecureRandom};
use zeroize::Zeroize;

const MAX_ITERATIONS: u32 = 10_000_000;

pub struct Client {
    password: String,
    client_first_bare: String,
    client_nonce: String,
    auth_message: String,
    server_key: Option<[u8; 32]>,
}

impl Drop for Client {
    fn drop(&mut self) {
        self.password.zeroize();
        if let Some(k) = &mut self.server_key {
            k.zeroize();
        }
    }
}

impl Client {
    /// (state, client-first-message).
    pub fn new(password: &str) -> (Client, String) {
        let mut raw = [0u8; 18];
        let _ = ring::rand::SystemRandom::new().fill(&mut raw);
        Self::with_nonce(password, "", &B64.encode(raw))
    }

    pub fn with_nonce(password: &str, user: &str, nonce: &str) -> (Client, String) {
        // PostgreSQL takes the user from the startup packet and ignores this one.
        let bare = format!("n={user},r={nonce}");
        let first = format!("n,,{bare}");
        (
            Client { password: password.to_string(), client_first_bare: bare, client_nonce: nonce.to_string(), auth_message: String::new(), server_key: None },
            first,
        )
    }

    /// Given server-first-message, the client-final-message.
    pub fn client_final(&mut self, server_first: &[u8]) -> Result<String, String> {
        let sf = std::str::from_utf8(server_first).map_err(|_| "server-first-message is not UTF-8")?;
        let mut nonce = None;
        let mut salt = None;
        let mut iterations = None;
        for part in sf.split(',') {
            if let Some(v) = part.strip_prefix("r=") {
                nonce = Some(v);
            } else if let Some(v) = part.strip_prefix("s=") {
                salt = Some(B64.decode(v).map_err(|_| "bad salt")?);
            } else if let Some(v) = part.strip_prefix("i=") {
                iterations = Some(v.parse::<u32>().map_err(|_| "bad iteration count")?);
            }
        }
        let nonce = nonce.ok_or("no nonce")?;
        let salt = salt.ok_or("no salt")?;
        let iterations = iterations.ok_or("no iteration count")?;
        if !nonce.starts_with(&self.client_nonce) || nonce.len() <= self.client_nonce.len() {
            return Err("the server's nonce does not extend ours".into());
        }
        if iterations == 0 || iterations > MAX_ITERATIONS {
            return Err(format!("unreasonable iteration count {iterations}"));
        }
        let mut salted = [0u8; 32];
        pbkdf2::derive(
            pbkdf2::PBKDF2_HMAC_SHA256,
            std::num::NonZeroU32::new(iterations).expect("checked"),
            &salt,
            self.password.as_bytes(),
            &mut salted,
        );
        let salted_key = hmac::Key::new(hmac::HMAC_SHA256, &salted);
        let client_key = hmac::sign(&salted_key, b"Client Key");
        let stored_key = digest::digest(&digest::SHA256, client_key.as_ref());
        let without_proof = format!("c=biws,r={nonce}");
        self.auth_message = format!("{},{sf},{without_proof}", self.client_first_bare);
        let signature = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, stored_key.as_ref()), self.auth_message.as_bytes());
        let proof: Vec<u8> = client_key.as_ref().iter().zip(signature.as_ref()).map(|(a, b)| a ^ b).collect();
        let server_key = hmac::sign(&salted_key, b"Server Key");
        let mut sk = [0u8; 32];
        sk.copy_from_slice(server_key.as_ref());
        self.server_key = Some(sk);
        salted.zeroize();
        Ok(format!("{without_proof},p={}", B64.encode(proof)))
    }

    pub fn verify_server_final(&self, server_final: &[u8]) -> Result<(), String> {
        let sf = std::str::from_utf8(server_final).map_err(|_| "server-final-message is not UTF-8")?;
        if let Some(e) = sf.strip_prefix("e=") {
            return Err(format!("the server reports {e}"));
        }
        let v = sf.split(',').find_map(|p| p.strip_prefix("v=")).ok_or("no server signature")?;
        let v = B64.decode(v).map_err(|_| "bad server signature")?;
        let sk = self.server_key.ok_or("server-final before server-first")?;
        hmac::verify(&hmac::Key::new(hmac::HMAC_SHA256, &sk), self.auth_message.as_bytes(), &v)
            .map_err(|_| "the server's signature is wrong (it does not know the password)".to_string())
    }
}
