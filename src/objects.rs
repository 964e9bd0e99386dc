//! The local object store (`<data dir>/objects/<workspace>/…`) and the download URLs the
//! daemon signs for it: `/api/v1/files/<key>?expires=<unix>&signature=<hex>`, an HMAC-SHA256
//! over the whole key (workspace prefix included) and the expiry, so a URL opens one object
//! until it expires and nothing else.

use std::path::{Path, PathBuf};

use chrono::{DateTime, TimeZone, Utc};
use hmac::{Hmac, Mac};
use secrecy::ExposeSecret;
use sha2::Sha256;
use uuid::Uuid;

use crate::app::AppState;

/// How long a download URL works unless configured otherwise.
pub const DEFAULT_TTL_SECS: i64 = 900;

/// Why a key or URL is refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ObjectError {
    #[error("the object key is not valid")]
    InvalidKey,
    #[error("the download link is invalid")]
    BadSignature,
    #[error("the download link has expired")]
    Expired,
}

/// A key under a workspace's prefix: relative, no `..`, no empty or control characters.
pub fn key(workspace_id: Uuid, path: &str) -> Result<String, ObjectError> {
    let key = format!("{workspace_id}/{path}");
    check_key(&key)?;
    Ok(key)
}

fn check_key(key: &str) -> Result<(), ObjectError> {
    let ok = !key.is_empty()
        && !key.starts_with('/')
        && key.len() <= 1024
        && key
            .split('/')
            .all(|part| !part.is_empty() && part != "." && part != "..")
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/'));
    if ok {
        Ok(())
    } else {
        Err(ObjectError::InvalidKey)
    }
}

/// The workspace a key belongs to.
pub fn workspace_of(key: &str) -> Option<Uuid> {
    key.split('/').next().and_then(|p| p.parse().ok())
}

pub fn path_of(data_dir: &Path, key: &str) -> Result<PathBuf, ObjectError> {
    check_key(key)?;
    Ok(data_dir.join("objects").join(key))
}

fn mac(secret: &[u8], key: &str, expires: i64) -> Hmac<Sha256> {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes any key length");
    // Domain-separated from the JWT signatures made with the same secret.
    mac.update(b"catalogd object download v1\0");
    mac.update(key.as_bytes());
    mac.update(b"\0");
    mac.update(expires.to_string().as_bytes());
    mac
}

fn signature(state: &AppState, key: &str, expires: i64) -> Vec<u8> {
    mac(state.keys.jwt_secret.expose_secret(), key, expires)
        .finalize()
        .into_bytes()
        .to_vec()
}

/// A signed download URL for `key`, valid for `ttl_secs`, and its expiry.
pub fn signed_url(state: &AppState, key: &str, ttl_secs: i64) -> (String, DateTime<Utc>) {
    let expires = Utc::now().timestamp() + ttl_secs;
    let signature = hex::encode(signature(state, key, expires));
    let url = format!(
        "{}/api/v1/files/{key}?expires={expires}&signature={signature}",
        state.settings.public_base_url().trim_end_matches('/')
    );
    (
        url,
        Utc.timestamp_opt(expires, 0)
            .single()
            .unwrap_or_else(Utc::now),
    )
}

/// Checks a download link: the signature covers key and expiry; comparison in constant time.
pub fn verify(state: &AppState, key: &str, expires: i64, given: &str) -> Result<(), ObjectError> {
    verify_with(
        state.keys.jwt_secret.expose_secret(),
        key,
        expires,
        given,
        Utc::now().timestamp(),
    )
}

fn verify_with(
    secret: &[u8],
    key: &str,
    expires: i64,
    given: &str,
    now: i64,
) -> Result<(), ObjectError> {
    check_key(key)?;
    let given = hex::decode(given).map_err(|_| ObjectError::BadSignature)?;
    mac(secret, key, expires)
        .verify_slice(&given)
        .map_err(|_| ObjectError::BadSignature)?;
    if expires < now {
        return Err(ObjectError::Expired);
    }
    Ok(())
}

/// Removes every object of a workspace; returns how many files there were.
pub async fn delete_workspace(data_dir: &Path, workspace_id: Uuid) -> std::io::Result<u64> {
    let root = data_dir.join("objects").join(workspace_id.to_string());
    tokio::task::spawn_blocking(move || {
        let mut files = 0;
        let mut pending = vec![root.clone()];
        while let Some(dir) = pending.pop() {
            let entries = match std::fs::read_dir(&dir) {
                Ok(entries) => entries,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e),
            };
            for entry in entries {
                let entry = entry?;
                if entry.file_type()?.is_dir() {
                    pending.push(entry.path());
                } else {
                    files += 1;
                }
            }
        }
        match std::fs::remove_dir_all(&root) {
            Ok(()) => Ok(files),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(files),
            Err(e) => Err(e),
        }
    })
    .await
    .map_err(std::io::Error::other)?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_stay_inside_their_workspace() {
        let ws = Uuid::nil();
        assert!(key(ws, "exports/a.csv").is_ok());
        for bad in [
            "../x",
            "a/../b",
            "/etc/passwd",
            "a//b",
            "a b",
            "a\u{0}b",
            "",
        ] {
            assert_eq!(key(ws, bad), Err(ObjectError::InvalidKey), "{bad:?}");
        }
        assert_eq!(workspace_of(&key(ws, "x").unwrap()), Some(ws));
    }

    #[test]
    fn links_open_one_object_until_they_expire() {
        let secret = b"secret";
        let k = key(Uuid::nil(), "exports/a.csv").unwrap();
        let sign = |key: &str, expires: i64| {
            hex::encode(mac(secret, key, expires).finalize().into_bytes())
        };
        let good = sign(&k, 1_000);
        assert_eq!(verify_with(secret, &k, 1_000, &good, 999), Ok(()));
        assert_eq!(
            verify_with(secret, &k, 1_000, &good, 1_001),
            Err(ObjectError::Expired)
        );
        // Another expiry, another key, another secret or a mangled signature: refused.
        assert_eq!(
            verify_with(secret, &k, 2_000, &good, 999),
            Err(ObjectError::BadSignature)
        );
        let other = key(Uuid::max(), "exports/a.csv").unwrap();
        assert_eq!(
            verify_with(secret, &other, 1_000, &good, 999),
            Err(ObjectError::BadSignature)
        );
        assert_eq!(
            verify_with(b"other", &k, 1_000, &good, 999),
            Err(ObjectError::BadSignature)
        );
        assert_eq!(
            verify_with(secret, &k, 1_000, "zz", 999),
            Err(ObjectError::BadSignature)
        );
    }
}
