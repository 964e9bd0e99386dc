//! Signature methods, plugged into `oauth1-request`'s `SignatureMethod`/`Sign`
//! traits. That crate ships HMAC-SHA1 only; Magento 2.4.4+ accepts nothing but
//! HMAC-SHA256, so we add it here (same streaming shape as the crate's SHA1).

use std::fmt::{self, Display, Formatter};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use hmac::{Hmac, Mac};
use oauth1_request::signature_method::{
    HmacSha1 as CrateHmacSha1, Sign, SignatureMethod as CrateSignatureMethod,
};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::percent::rawurlencode;

/// The `oauth_signature_method` a store accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub enum SignatureMethod {
    /// The only method Magento accepts since 2.4.4.
    #[default]
    #[serde(rename = "hmac-sha256")]
    HmacSha256,
    /// Accepted by 2.4.0 – 2.4.3-p2 (and older) stores.
    #[serde(rename = "hmac-sha1")]
    HmacSha1,
}

impl SignatureMethod {
    /// The value of `oauth_signature_method`.
    pub fn oauth_name(self) -> &'static str {
        match self {
            SignatureMethod::HmacSha256 => "HMAC-SHA256",
            SignatureMethod::HmacSha1 => "HMAC-SHA1",
        }
    }

    /// Streams `base_string_parts` into the chosen `oauth1-request` signer and
    /// returns the signature as plain base64.
    pub(crate) fn sign(
        self,
        consumer_secret: &str,
        token_secret: Option<&str>,
        base: &BaseStringParts,
    ) -> String {
        match self {
            SignatureMethod::HmacSha256 => {
                let signer = HmacSha256.sign_with(consumer_secret, token_secret);
                feed(signer, base).base64
            }
            SignatureMethod::HmacSha1 => {
                let signer = CrateHmacSha1::new().sign_with(consumer_secret, token_secret);
                // The crate's signature displays percent-encoded base64;
                // undo the encoding so both methods return the same form.
                let encoded = feed(signer, base).to_string();
                String::from_utf8_lossy(&super::percent::rawurldecode(&encoded)).into_owned()
            }
        }
    }
}

impl Display for SignatureMethod {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        f.write_str(self.oauth_name())
    }
}

/// A signature base string split the way the `Sign` trait consumes it:
/// the method, the normalised URI, and the parameter pairs (already
/// rawurlencoded once and in their final order).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct BaseStringParts {
    pub method: String,
    pub uri: String,
    pub params: Vec<(String, String)>,
}

impl BaseStringParts {
    /// `METHOD&enc(uri)&enc(k=v&k=v…)`, i.e. what the signers hash.
    pub(crate) fn to_base_string(&self) -> String {
        let mut recorder = BaseStringRecorder(String::new());
        feed_parts(&mut recorder, self);
        recorder.0
    }
}

/// Drives any `oauth1-request` signer over the base string.
fn feed<S: Sign>(mut sign: S, base: &BaseStringParts) -> S::Signature {
    feed_parts(&mut sign, base);
    sign.end()
}

fn feed_parts<S: Sign>(sign: &mut S, base: &BaseStringParts) {
    sign.request_method(&base.method);
    sign.uri(rawurlencode(&base.uri));
    for (index, (key, value)) in base.params.iter().enumerate() {
        if index > 0 {
            sign.delimiter();
        }
        // The pair string is percent-encoded once more as a whole, so each
        // already-encoded name and value is encoded a second time.
        sign.parameter(&rawurlencode(key), rawurlencode(value));
    }
}

/// HMAC-SHA256 for `oauth1-request`.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct HmacSha256;

pub(crate) struct HmacSha256Sign {
    mac: Hmac<Sha256>,
}

pub(crate) struct HmacSha256Signature {
    base64: String,
}

impl Display for HmacSha256Signature {
    /// Like the crate's own signatures: percent-encoded, ready for a header.
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        f.write_str(&rawurlencode(&self.base64))
    }
}

impl CrateSignatureMethod for HmacSha256 {
    type Sign = HmacSha256Sign;

    fn sign_with(self, client_secret: &str, token_secret: Option<&str>) -> HmacSha256Sign {
        let key = format!(
            "{}&{}",
            rawurlencode(client_secret),
            token_secret.map(rawurlencode).unwrap_or_default()
        );
        HmacSha256Sign {
            mac: Hmac::<Sha256>::new(&key_block(key.as_bytes())),
        }
    }
}

/// The HMAC key as one SHA-256 block (RFC 2104: longer keys are hashed,
/// shorter ones zero-padded), which makes construction infallible.
fn key_block(key: &[u8]) -> hmac::digest::Key<Hmac<Sha256>> {
    let mut block = hmac::digest::Key::<Hmac<Sha256>>::default();
    if key.len() > block.len() {
        let digest = Sha256::digest(key);
        block[..digest.len()].copy_from_slice(&digest);
    } else {
        block[..key.len()].copy_from_slice(key);
    }
    block
}

impl Sign for HmacSha256Sign {
    type Signature = HmacSha256Signature;

    fn get_signature_method_name(&self) -> &'static str {
        "HMAC-SHA256"
    }

    fn request_method(&mut self, method: &str) {
        self.mac.update(method.as_bytes());
        self.mac.update(b"&");
    }

    fn uri<T: Display>(&mut self, uri: T) {
        self.mac.update(uri.to_string().as_bytes());
        self.mac.update(b"&");
    }

    fn parameter<V: Display>(&mut self, key: &str, value: V) {
        self.mac.update(key.as_bytes());
        self.mac.update(b"%3D");
        self.mac.update(value.to_string().as_bytes());
    }

    fn delimiter(&mut self) {
        self.mac.update(b"%26");
    }

    fn end(self) -> HmacSha256Signature {
        HmacSha256Signature {
            base64: BASE64.encode(self.mac.finalize().into_bytes()),
        }
    }
}

/// A `Sign` that writes the base string instead of hashing it, so tests and
/// debug output see exactly the bytes the HMAC signers consume.
struct BaseStringRecorder(String);

impl Sign for BaseStringRecorder {
    type Signature = String;

    fn get_signature_method_name(&self) -> &'static str {
        "RECORDER"
    }

    fn request_method(&mut self, method: &str) {
        self.0.push_str(method);
        self.0.push('&');
    }

    fn uri<T: Display>(&mut self, uri: T) {
        self.0.push_str(&uri.to_string());
        self.0.push('&');
    }

    fn parameter<V: Display>(&mut self, key: &str, value: V) {
        self.0.push_str(key);
        self.0.push_str("%3D");
        self.0.push_str(&value.to_string());
    }

    fn delimiter(&mut self) {
        self.0.push_str("%26");
    }

    fn end(self) -> String {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serde_names_match_the_api_contract() {
        let methods: Vec<SignatureMethod> =
            serde_json::from_str(r#"["hmac-sha256","hmac-sha1"]"#).expect("valid names");
        assert_eq!(
            methods,
            vec![SignatureMethod::HmacSha256, SignatureMethod::HmacSha1]
        );
        assert_eq!(
            serde_json::to_string(&SignatureMethod::HmacSha1).expect("serialises"),
            r#""hmac-sha1""#
        );
    }

    #[test]
    fn long_keys_are_hashed_like_rfc_2104() {
        let long_secret = "k".repeat(100);
        let mut ours = HmacSha256.sign_with(&long_secret, None);
        ours.request_method("GET");
        let mut reference = Hmac::<Sha256>::new_from_slice(format!("{long_secret}&").as_bytes())
            .expect("any key length");
        reference.update(b"GET&");
        assert_eq!(
            ours.end().base64,
            BASE64.encode(reference.finalize().into_bytes())
        );
    }

    #[test]
    fn hmac_sha256_uses_the_oauth_key_layout() {
        // Expected value from Python's hmac module: key "Jefe&t%20s"
        // (enc(consumer secret) & enc(token secret)), message "GET&u&k%3Dv".
        let mut sign = HmacSha256.sign_with("Jefe", Some("t s"));
        sign.request_method("GET");
        sign.uri("u");
        sign.parameter("k", "v");
        let signature = sign.end();
        assert_eq!(
            signature.base64,
            "DNp3JPkOTZbL3y4zW2WwpAvaZfe/b+IJSoR1+6xtyDo="
        );
        assert_eq!(
            signature.to_string(),
            "DNp3JPkOTZbL3y4zW2WwpAvaZfe%2Fb%2BIJSoR1%2B6xtyDo%3D"
        );
    }
}
