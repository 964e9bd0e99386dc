//! Access tokens (JWT, HS256) and opaque refresh tokens.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use rand::RngCore;
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::secrets::KeyMaterial;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claims {
    /// The user id.
    pub sub: Uuid,
    /// The session (login) the token belongs to; revoking the session ends the token early.
    pub sid: Uuid,
    pub iat: i64,
    pub exp: i64,
    /// Token id, unique per issued token.
    pub jti: Uuid,
}

struct VerifyingKey {
    id: String,
    decoding: DecodingKey,
    /// For a retired key: when it was retired (Unix seconds).
    retired_at: Option<i64>,
}

/// The current signing key and the retired ones still inside their grace period. Tokens name
/// their key in the `kid` header, so a verifier picks the key instead of trying each.
pub struct JwtKeys {
    encoding: EncodingKey,
    current_id: String,
    keys: Vec<VerifyingKey>,
    grace_secs: i64,
    validation: Validation,
}

impl std::fmt::Debug for JwtKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("JwtKeys(<redacted>)")
    }
}

/// A signing key's public name: the start of SHA-256 over a domain tag and the key.
pub fn key_id(secret: &[u8]) -> String {
    let digest = Sha256::new()
        .chain_update(b"catalogd jwt key id\0")
        .chain_update(secret)
        .finalize();
    hex::encode(&digest[..8])
}

impl JwtKeys {
    pub fn new(keys: &KeyMaterial, grace_secs: u64) -> JwtKeys {
        let secret = keys.jwt_secret.expose_secret();
        let mut validation = Validation::new(Algorithm::HS256);
        // Only HS256 is accepted: `alg: none` and every other algorithm are refused.
        validation.algorithms = vec![Algorithm::HS256];
        validation.leeway = 0;
        validation.validate_exp = true;
        validation.set_required_spec_claims(&["exp", "iat", "sub"]);
        let current_id = key_id(secret);
        let mut verifying = vec![VerifyingKey {
            id: current_id.clone(),
            decoding: DecodingKey::from_secret(secret),
            retired_at: None,
        }];
        for retired in &keys.previous_jwt_secrets {
            verifying.push(VerifyingKey {
                id: key_id(retired.secret.expose_secret()),
                decoding: DecodingKey::from_secret(retired.secret.expose_secret()),
                retired_at: Some(retired.retired_at),
            });
        }
        JwtKeys {
            encoding: EncodingKey::from_secret(secret),
            current_id,
            keys: verifying,
            grace_secs: i64::try_from(grace_secs).unwrap_or(i64::MAX),
            validation,
        }
    }

    pub fn issue(&self, user_id: Uuid, session_id: Uuid, ttl_secs: u64) -> anyhow::Result<String> {
        let now = chrono::Utc::now().timestamp();
        let claims = Claims {
            sub: user_id,
            sid: session_id,
            iat: now,
            exp: now + i64::try_from(ttl_secs)?,
            jti: Uuid::new_v4(),
        };
        let mut header = Header::new(Algorithm::HS256);
        header.kid = Some(self.current_id.clone());
        Ok(jsonwebtoken::encode(&header, &claims, &self.encoding)?)
    }

    /// `None` for anything that is not a valid, unexpired token signed by one of our keys: the
    /// current one, or a retired one within its grace period for a token issued before the
    /// rotation.
    pub fn verify(&self, token: &str) -> Option<Claims> {
        let header = jsonwebtoken::decode_header(token).ok()?;
        // Tokens from before key ids existed carry none: only the current key can have made them.
        let key = match header.kid.as_deref() {
            Some(kid) => self.keys.iter().find(|k| k.id == kid)?,
            None => &self.keys[0],
        };
        let claims = jsonwebtoken::decode::<Claims>(token, &key.decoding, &self.validation)
            .ok()?
            .claims;
        if let Some(retired_at) = key.retired_at {
            let now = chrono::Utc::now().timestamp();
            if now >= retired_at.saturating_add(self.grace_secs) || claims.iat > retired_at {
                return None;
            }
        }
        Some(claims)
    }
}

/// A new random refresh token and the hash under which it is stored.
pub fn new_refresh_token() -> (String, Vec<u8>) {
    new_secret_token("crt")
}

/// 32 random bytes behind `prefix_` (refresh tokens, invitation and password-reset links),
/// and the SHA-256 under which the token is stored: only the holder knows the token itself.
pub fn new_secret_token(prefix: &str) -> (String, Vec<u8>) {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    let token = format!("{prefix}_{}", B64URL.encode(bytes));
    let hash = hash_token(&token);
    (token, hash)
}

pub fn hash_token(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

#[cfg(test)]
mod tests {
    use secrecy::{SecretBox, SecretSlice};

    use super::*;
    use crate::secrets::RetiredJwtSecret;

    fn material(current: &[u8], retired: &[(&[u8], i64)]) -> KeyMaterial {
        KeyMaterial {
            jwt_secret: SecretSlice::from(current.to_vec()),
            previous_jwt_secrets: retired
                .iter()
                .map(|(secret, at)| RetiredJwtSecret {
                    secret: SecretSlice::from(secret.to_vec()),
                    retired_at: *at,
                })
                .collect(),
            master_key: SecretBox::new(Box::new([7u8; 32])),
            previous_master_keys: Vec::new(),
        }
    }

    const OLD: &[u8] = b"the old signing key, at least 32 bytes long";
    const NEW: &[u8] = b"the new signing key, at least 32 bytes long";

    #[test]
    fn tokens_of_a_rotated_key_work_through_the_grace_period_only() {
        let user = Uuid::now_v7();
        let session = Uuid::now_v7();
        let before = JwtKeys::new(&material(OLD, &[]), 900);
        let token = before.issue(user, session, 900).unwrap();

        let now = chrono::Utc::now().timestamp();
        // Rotated just now: the old token still works, and new tokens use the new key.
        let after = JwtKeys::new(&material(NEW, &[(OLD, now + 1)]), 900);
        assert_eq!(after.verify(&token).map(|c| c.sub), Some(user));
        let fresh = after.issue(user, session, 900).unwrap();
        assert_eq!(
            jsonwebtoken::decode_header(&fresh).unwrap().kid,
            Some(key_id(NEW))
        );
        assert!(after.verify(&fresh).is_some());
        assert!(
            before.verify(&fresh).is_none(),
            "the old key cannot verify new tokens"
        );

        // Rotated longer ago than the grace period: refused.
        let expired = JwtKeys::new(&material(NEW, &[(OLD, now - 901)]), 900);
        assert!(expired.verify(&token).is_none());
        // A token the old key signed after its retirement (the key leaked): refused.
        let retired_earlier = JwtKeys::new(&material(NEW, &[(OLD, now - 60)]), 900);
        assert!(retired_earlier.verify(&token).is_none());
        // Dropped from configuration altogether: refused.
        assert!(
            JwtKeys::new(&material(NEW, &[]), 900)
                .verify(&token)
                .is_none()
        );
    }

    #[test]
    fn a_token_naming_an_unknown_key_is_refused() {
        let keys = JwtKeys::new(&material(NEW, &[]), 900);
        let claims = Claims {
            sub: Uuid::now_v7(),
            sid: Uuid::now_v7(),
            iat: chrono::Utc::now().timestamp(),
            exp: chrono::Utc::now().timestamp() + 60,
            jti: Uuid::new_v4(),
        };
        let mut header = Header::new(Algorithm::HS256);
        header.kid = Some("0000000000000000".into());
        let token = jsonwebtoken::encode(&header, &claims, &EncodingKey::from_secret(NEW)).unwrap();
        assert!(keys.verify(&token).is_none());
        // Without a key id only the current key is tried.
        let plain = jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &EncodingKey::from_secret(NEW),
        )
        .unwrap();
        assert!(keys.verify(&plain).is_some());
    }

    proptest::proptest! {
        #[test]
        fn any_presented_string_is_refused_without_panicking(token in ".{0,300}") {
            let keys = JwtKeys::new(&material(NEW, &[]), 900);
            proptest::prop_assert!(keys.verify(&token).is_none());
        }

        #[test]
        fn changing_any_character_of_a_token_is_refused(index in 0usize..1000, replacement in "[A-Za-z0-9_-]") {
            let keys = JwtKeys::new(&material(NEW, &[]), 900);
            let token = keys.issue(Uuid::now_v7(), Uuid::now_v7(), 900).unwrap();
            let index = index % token.len();
            let original = token.as_bytes()[index] as char;
            let replacement = replacement.chars().next().unwrap();
            // The last character of a segment may carry padding bits that decode alike.
            let segment_end = token[index + 1..].starts_with('.') || index + 1 == token.len();
            proptest::prop_assume!(original != '.' && original != replacement && !segment_end);
            let mut tampered = token.clone();
            tampered.replace_range(index..=index, &replacement.to_string());
            proptest::prop_assert!(keys.verify(&tampered).is_none());
        }
    }
}
