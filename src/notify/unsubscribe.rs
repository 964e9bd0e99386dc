//! Signed unsubscribe links: they work without signing in, for one person, workspace and
//! event kind, and cannot be made for anyone else without the daemon's key.
//!
//! The token is `<payload>.<mac>`, both base64url: the payload names the person, the
//! workspace and the kind; the MAC is HMAC-SHA256 under a key of its own derived from the
//! session signing key. Links signed before a key rotation keep working while the retired key
//! is kept.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use hmac::{Hmac, Mac};
use secrecy::ExposeSecret;
use sha2::Sha256;
use subtle::ConstantTimeEq;
use uuid::Uuid;

use super::EventKind;
use crate::secrets::KeyMaterial;

/// Whose mail about what a link turns off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Subscription {
    pub user_id: Uuid,
    pub workspace_id: Uuid,
    pub kind: EventKind,
}

fn mac(signing_key: &[u8]) -> Hmac<Sha256> {
    let mut derive = Hmac::<Sha256>::new_from_slice(signing_key).expect("HMAC takes any key");
    derive.update(b"catalogd unsubscribe v1");
    let key = derive.finalize().into_bytes();
    Hmac::<Sha256>::new_from_slice(&key).expect("HMAC takes any key")
}

fn sign(signing_key: &[u8], payload: &str) -> Vec<u8> {
    let mut mac = mac(signing_key);
    mac.update(payload.as_bytes());
    mac.finalize().into_bytes().to_vec()
}

pub fn token(keys: &KeyMaterial, subscription: Subscription) -> String {
    let payload = format!(
        "{}.{}.{}",
        subscription.user_id.simple(),
        subscription.workspace_id.simple(),
        subscription.kind.as_str()
    );
    let signature = sign(keys.jwt_secret.expose_secret(), &payload);
    format!("{}.{}", B64.encode(&payload), B64.encode(signature))
}

/// The subscription a token names, if the daemon signed it.
pub fn verify(keys: &KeyMaterial, token: &str) -> Option<Subscription> {
    let (payload, signature) = token.trim().split_once('.')?;
    let payload = String::from_utf8(B64.decode(payload).ok()?).ok()?;
    let signature = B64.decode(signature).ok()?;
    let signed_by_us = std::iter::once(keys.jwt_secret.expose_secret())
        .chain(
            keys.previous_jwt_secrets
                .iter()
                .map(|k| k.secret.expose_secret()),
        )
        .any(|key| bool::from(sign(key, &payload).ct_eq(&signature)));
    if !signed_by_us {
        return None;
    }
    let mut parts = payload.splitn(3, '.');
    let user_id = Uuid::parse_str(parts.next()?).ok()?;
    let workspace_id = Uuid::parse_str(parts.next()?).ok()?;
    let kind = EventKind::parse(parts.next()?)?;
    Some(Subscription {
        user_id,
        workspace_id,
        kind,
    })
}

/// The page behind the link (`{public_url}/unsubscribe?token=…`).
pub fn page_url(public_base: &str, token: &str) -> String {
    format!("{public_base}/unsubscribe?token={token}")
}

/// The one-click address mail clients post to (RFC 8058).
pub fn one_click_url(public_base: &str, token: &str) -> String {
    format!("{public_base}/api/v1/notifications/unsubscribe?token={token}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secrets::RetiredJwtSecret;
    use secrecy::{SecretBox, SecretSlice};

    fn keys(secret: &[u8], previous: &[&[u8]]) -> KeyMaterial {
        KeyMaterial {
            jwt_secret: SecretSlice::from(secret.to_vec()),
            previous_jwt_secrets: previous
                .iter()
                .map(|p| RetiredJwtSecret {
                    secret: SecretSlice::from(p.to_vec()),
                    retired_at: 0,
                })
                .collect(),
            master_key: SecretBox::new(Box::new([0; 32])),
            previous_master_keys: vec![],
        }
    }

    #[test]
    fn tokens_verify_only_as_signed() {
        let ours = keys(b"a key that is long enough for this test 123", &[]);
        let subscription = Subscription {
            user_id: Uuid::now_v7(),
            workspace_id: Uuid::now_v7(),
            kind: EventKind::ReviewReady,
        };
        let token = token(&ours, subscription);
        assert_eq!(verify(&ours, &token), Some(subscription));
        // Another kind in the payload with the same signature is refused.
        let (_, signature) = token.split_once('.').unwrap();
        let forged_payload = format!(
            "{}.{}.job.failed",
            subscription.user_id.simple(),
            subscription.workspace_id.simple()
        );
        let forged = format!("{}.{signature}", B64.encode(forged_payload));
        assert_eq!(verify(&ours, &forged), None);
        let theirs = keys(b"another key that is long enough 1234567890", &[]);
        assert_eq!(verify(&theirs, &token), None);
        for junk in ["", ".", "abc", "a.b.c", &token[1..]] {
            assert_eq!(verify(&ours, junk), None, "{junk}");
        }
        // After a rotation, the retired key still opens old links.
        let rotated = keys(
            b"the new key that is long enough for it 123456",
            &[b"a key that is long enough for this test 123"],
        );
        assert_eq!(verify(&rotated, &token), Some(subscription));
    }
}
