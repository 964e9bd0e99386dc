//! Standard Webhooks signing (standardwebhooks.com, the scheme Svix and others verify).
//!
//! A secret is `whsec_` + base64 of random bytes; the key is those bytes. Each attempt carries
//! `webhook-id` (the same on every retry), `webhook-timestamp` (Unix seconds of the attempt)
//! and `webhook-signature: v1,<base64 of HMAC-SHA256 over "{id}.{timestamp}.{body}">`.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use hmac::{Hmac, Mac};
use rand::RngCore;
use secrecy::{ExposeSecret, SecretSlice};
use sha2::Sha256;

const PREFIX: &str = "whsec_";
/// Above the specification's minimum of 24 bytes.
const SECRET_LEN: usize = 32;

/// A new signing key.
pub fn new_key() -> SecretSlice<u8> {
    let mut bytes = vec![0u8; SECRET_LEN];
    rand::rng().fill_bytes(&mut bytes);
    SecretSlice::from(bytes)
}

/// The secret as shown to the endpoint's owner (once, at creation).
pub fn encode_secret(key: &SecretSlice<u8>) -> String {
    format!("{PREFIX}{}", B64.encode(key.expose_secret()))
}

/// The `webhook-signature` header value for one attempt.
pub fn signature(key: &SecretSlice<u8>, id: &str, timestamp: i64, body: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key.expose_secret())
        .expect("HMAC-SHA256 takes a key of any length");
    mac.update(id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body.as_bytes());
    format!("v1,{}", B64.encode(mac.finalize().into_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example of the Standard Webhooks specification's reference libraries.
    #[test]
    fn signs_like_the_reference_implementation() {
        let key = SecretSlice::from(B64.decode("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap());
        let body = r#"{"test": 2432232314}"#;
        assert_eq!(
            signature(&key, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
    }

    #[test]
    fn secrets_carry_the_prefix_and_enough_randomness() {
        let key = new_key();
        let secret = encode_secret(&key);
        let raw = B64.decode(secret.strip_prefix("whsec_").unwrap()).unwrap();
        assert!(raw.len() >= 24);
        assert_eq!(raw, key.expose_secret());
        assert_ne!(encode_secret(&new_key()), secret);
    }
}
