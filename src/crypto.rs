//! Secrets at rest: AES-256-GCM with a random nonce per value and the key's id stored with it.
//!
//! A sealed value is `[version 1][key id, 8 bytes][nonce, 12 bytes][ciphertext + tag]`. The
//! key id lets a keyring hold the current key and retired ones, so `catalogd rotate-key` can
//! re-encrypt while older processes still read. Every value is bound to where it is stored
//! (associated data such as `stores.credentials:<id>`), so a sealed blob copied to another row
//! does not open.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use rand::RngCore;
use secrecy::{ExposeSecret, SecretBox};
use sha2::{Digest, Sha256};

const VERSION: u8 = 1;
const KEY_ID_LEN: usize = 8;
const NONCE_LEN: usize = 12;
const HEADER_LEN: usize = 1 + KEY_ID_LEN + NONCE_LEN;

#[derive(Debug, thiserror::Error)]
pub enum CryptoError {
    #[error("sealed value is malformed")]
    Malformed,
    #[error("sealed value uses key {0}, which this process does not have")]
    UnknownKey(String),
    #[error("sealed value does not open (wrong key, wrong place, or tampered)")]
    Open,
}

pub type KeyId = [u8; KEY_ID_LEN];

struct Key {
    id: KeyId,
    cipher: Aes256Gcm,
}

/// The current key (seals and opens) and retired keys (open only).
pub struct Keyring {
    current: Key,
    retired: Vec<Key>,
}

impl std::fmt::Debug for Keyring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keyring")
            .field("current", &hex::encode(self.current.id))
            .field(
                "retired",
                &self
                    .retired
                    .iter()
                    .map(|k| hex::encode(k.id))
                    .collect::<Vec<_>>(),
            )
            .finish()
    }
}

/// A key's public identifier: the start of SHA-256 over a domain tag and the key.
pub fn key_id(key: &[u8; 32]) -> KeyId {
    let digest = Sha256::new()
        .chain_update(b"catalogd key id v1")
        .chain_update(key)
        .finalize();
    let mut id = [0u8; KEY_ID_LEN];
    id.copy_from_slice(&digest[..KEY_ID_LEN]);
    id
}

impl Key {
    fn new(bytes: &SecretBox<[u8; 32]>) -> Key {
        let raw = bytes.expose_secret();
        Key {
            id: key_id(raw),
            cipher: Aes256Gcm::new(raw.into()),
        }
    }
}

impl Keyring {
    pub fn new(current: &SecretBox<[u8; 32]>, retired: &[SecretBox<[u8; 32]>]) -> Keyring {
        Keyring {
            current: Key::new(current),
            retired: retired.iter().map(Key::new).collect(),
        }
    }

    pub fn current_id(&self) -> String {
        hex::encode(self.current.id)
    }

    pub fn seal(&self, plaintext: &[u8], context: &str) -> Vec<u8> {
        let mut nonce = [0u8; NONCE_LEN];
        rand::rng().fill_bytes(&mut nonce);
        let ciphertext = self
            .current
            .cipher
            .encrypt(
                &Nonce::from(nonce),
                Payload {
                    msg: plaintext,
                    aad: context.as_bytes(),
                },
            )
            .expect("AES-GCM encryption of an in-memory buffer cannot fail");
        let mut out = Vec::with_capacity(HEADER_LEN + ciphertext.len());
        out.push(VERSION);
        out.extend_from_slice(&self.current.id);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&ciphertext);
        out
    }

    pub fn open(&self, sealed: &[u8], context: &str) -> Result<Vec<u8>, CryptoError> {
        if sealed.len() < HEADER_LEN + 16 || sealed[0] != VERSION {
            return Err(CryptoError::Malformed);
        }
        let id = &sealed[1..1 + KEY_ID_LEN];
        let nonce: [u8; NONCE_LEN] = sealed[1 + KEY_ID_LEN..HEADER_LEN]
            .try_into()
            .map_err(|_| CryptoError::Malformed)?;
        let key = std::iter::once(&self.current)
            .chain(&self.retired)
            .find(|k| k.id == id)
            .ok_or_else(|| CryptoError::UnknownKey(hex::encode(id)))?;
        key.cipher
            .decrypt(
                &Nonce::from(nonce),
                Payload {
                    msg: &sealed[HEADER_LEN..],
                    aad: context.as_bytes(),
                },
            )
            .map_err(|_| CryptoError::Open)
    }

    /// The id of the key a sealed value was made with.
    pub fn sealed_with(sealed: &[u8]) -> Option<KeyId> {
        (sealed.len() >= HEADER_LEN && sealed[0] == VERSION).then(|| {
            let mut id = [0u8; KEY_ID_LEN];
            id.copy_from_slice(&sealed[1..1 + KEY_ID_LEN]);
            id
        })
    }

    pub fn seal_json<T: serde::Serialize>(&self, value: &T, context: &str) -> Vec<u8> {
        let bytes = zeroizing(serde_json::to_vec(value).expect("secret values serialise"));
        self.seal(bytes.expose_secret(), context)
    }

    pub fn open_json<T: serde::de::DeserializeOwned>(
        &self,
        sealed: &[u8],
        context: &str,
    ) -> Result<T, CryptoError> {
        let bytes = zeroizing(self.open(sealed, context)?);
        serde_json::from_slice(bytes.expose_secret()).map_err(|_| CryptoError::Malformed)
    }
}

/// Plaintext buffers are wiped when dropped.
fn zeroizing(bytes: Vec<u8>) -> secrecy::SecretSlice<u8> {
    secrecy::SecretSlice::from(bytes)
}

/// Every column that holds a sealed value: (table, column, context prefix). The context of a
/// row is `<prefix>:<id>`.
pub const SEALED_COLUMNS: &[(&str, &str, &str)] = &[
    ("stores", "credentials", "stores.credentials"),
    ("stores", "link_token", "stores.link_token"),
    ("stores", "handshake", "stores.handshake"),
    ("users", "totp_secret", "users.totp_secret"),
    ("webhooks", "secret", "webhooks.secret"),
];

/// Re-encrypts every sealed value under `to`'s current key, in one transaction.
/// Returns how many values were re-sealed.
pub async fn reseal_all(db: &sqlx::PgPool, from: &Keyring, to: &Keyring) -> anyhow::Result<u64> {
    let mut tx = db.begin().await?;
    let mut count = 0;
    for (table, column, prefix) in SEALED_COLUMNS {
        let rows: Vec<(uuid::Uuid, Vec<u8>)> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT id, {column} FROM {table} WHERE {column} IS NOT NULL FOR UPDATE"
        )))
        .fetch_all(&mut *tx)
        .await?;
        for (id, sealed) in rows {
            let context = format!("{prefix}:{id}");
            let plain = secrecy::SecretSlice::from(
                from.open(&sealed, &context)
                    .map_err(|e| anyhow::anyhow!("{table}.{column} of {id}: {e}"))?,
            );
            let resealed = to.seal(plain.expose_secret(), &context);
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "UPDATE {table} SET {column} = $2 WHERE id = $1"
            )))
            .bind(id)
            .bind(resealed)
            .execute(&mut *tx)
            .await?;
            count += 1;
        }
    }
    tx.commit().await?;
    Ok(count)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(byte: u8) -> SecretBox<[u8; 32]> {
        SecretBox::new(Box::new([byte; 32]))
    }

    #[test]
    fn seals_and_opens_with_a_fresh_nonce_each_time() {
        let ring = Keyring::new(&key(1), &[]);
        let a = ring.seal(b"secret", "ctx");
        let b = ring.seal(b"secret", "ctx");
        assert_ne!(a, b, "nonces must differ");
        assert!(!a.windows(6).any(|w| w == b"secret"));
        assert_eq!(ring.open(&a, "ctx").unwrap(), b"secret");
    }

    #[test]
    fn refuses_wrong_context_tampering_and_unknown_keys() {
        let ring = Keyring::new(&key(1), &[]);
        let sealed = ring.seal(b"secret", "stores.credentials:1");
        assert!(matches!(
            ring.open(&sealed, "stores.credentials:2"),
            Err(CryptoError::Open)
        ));
        let mut tampered = sealed.clone();
        *tampered.last_mut().unwrap() ^= 1;
        assert!(matches!(
            ring.open(&tampered, "stores.credentials:1"),
            Err(CryptoError::Open)
        ));
        let other = Keyring::new(&key(2), &[]);
        assert!(matches!(
            other.open(&sealed, "stores.credentials:1"),
            Err(CryptoError::UnknownKey(_))
        ));
        assert!(matches!(
            ring.open(&[1, 2, 3], "x"),
            Err(CryptoError::Malformed)
        ));
    }

    #[test]
    fn retired_keys_still_open_old_values() {
        let old = Keyring::new(&key(1), &[]);
        let sealed = old.seal(b"v", "c");
        let rotated = Keyring::new(&key(2), &[key(1)]);
        assert_eq!(rotated.open(&sealed, "c").unwrap(), b"v");
        assert_eq!(
            Keyring::sealed_with(&rotated.seal(b"v", "c")),
            Some(key_id(&[2; 32]))
        );
    }

    #[test]
    fn debug_shows_key_ids_only() {
        let ring = Keyring::new(&key(7), &[]);
        let text = format!("{ring:?}");
        assert!(text.contains(&ring.current_id()));
        assert!(!text.contains("070707"));
    }
}
