//! The local backend: files under `<data dir>/objects/<key>`, and download links the daemon
//! signs itself: `/api/v1/files/<key>?expires=<unix>&signature=<hex>`, an HMAC-SHA256 over
//! the whole key (workspace prefix included) and the expiry.

use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use chrono::{DateTime, TimeZone, Utc};
use hmac::{Hmac, Mac};
use secrecy::{ExposeSecret, SecretSlice};
use sha2::Sha256;
use tokio::io::{AsyncRead, AsyncWriteExt};
use uuid::Uuid;

use super::{KeyPrefix, ObjectInfo, ObjectKey, ObjectStore, Presigned, StorageError};

/// Where unfinished writes wait; not a workspace prefix, so never listed or served.
const TMP_DIR: &str = ".tmp";

pub struct LocalStore {
    root: PathBuf,
    secret: SecretSlice<u8>,
    base_url: String,
}

impl std::fmt::Debug for LocalStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalStore")
            .field("root", &self.root)
            .field("base_url", &self.base_url)
            .finish_non_exhaustive()
    }
}

impl LocalStore {
    /// A store rooted at `root` whose links point at `base_url` and are signed with `secret`.
    pub fn new(root: PathBuf, secret: &[u8], base_url: &str) -> LocalStore {
        LocalStore {
            root,
            secret: SecretSlice::from(secret.to_vec()),
            base_url: base_url.trim_end_matches('/').to_string(),
        }
    }

    fn path_of(&self, key: &ObjectKey) -> PathBuf {
        self.root.join(key.as_str())
    }

    fn mac(&self, key: &str, expires: i64) -> Hmac<Sha256> {
        let mut mac = Hmac::<Sha256>::new_from_slice(self.secret.expose_secret())
            .expect("HMAC takes any key length");
        // Domain-separated from the JWT signatures made with the same secret.
        mac.update(b"catalogd object download v1\0");
        mac.update(key.as_bytes());
        mac.update(b"\0");
        mac.update(expires.to_string().as_bytes());
        mac
    }

    /// Checks a download link as of `now`: the signature covers key and expiry (compared in
    /// constant time), then the expiry. Returns the key it opens.
    pub fn verify_at(
        &self,
        key: &str,
        expires: i64,
        signature: &str,
        now: DateTime<Utc>,
    ) -> Result<ObjectKey, StorageError> {
        let key = ObjectKey::parse(key)?;
        let given = hex::decode(signature).map_err(|_| StorageError::BadSignature)?;
        self.mac(key.as_str(), expires)
            .verify_slice(&given)
            .map_err(|_| StorageError::BadSignature)?;
        if expires < now.timestamp() {
            return Err(StorageError::Expired);
        }
        Ok(key)
    }

    /// [`LocalStore::verify_at`] now.
    pub fn verify(
        &self,
        key: &str,
        expires: i64,
        signature: &str,
    ) -> Result<ObjectKey, StorageError> {
        self.verify_at(key, expires, signature, Utc::now())
    }

    /// Opens an object for streaming, with its size.
    pub async fn open(&self, key: &ObjectKey) -> Result<(tokio::fs::File, u64), StorageError> {
        let file = tokio::fs::File::open(self.path_of(key))
            .await
            .map_err(|e| not_found(e, key))?;
        let size = file.metadata().await?.len();
        Ok((file, size))
    }

    async fn temp_file(&self) -> Result<(PathBuf, tokio::fs::File), StorageError> {
        let dir = self.root.join(TMP_DIR);
        tokio::fs::create_dir_all(&dir).await?;
        let path = dir.join(Uuid::new_v4().simple().to_string());
        let file = tokio::fs::File::create(&path).await?;
        Ok((path, file))
    }

    /// Renames a complete temporary file into place, so a crash never leaves half an
    /// object under its key.
    async fn commit(&self, tmp: &Path, key: &ObjectKey) -> Result<(), StorageError> {
        let path = self.path_of(key);
        if let Some(dir) = path.parent() {
            tokio::fs::create_dir_all(dir).await?;
        }
        tokio::fs::rename(tmp, &path).await?;
        Ok(())
    }

    /// Fills a temporary file with `fill` and renames it under `key`; the temporary file is
    /// removed if anything fails.
    async fn write_with<F, Fut>(&self, key: &ObjectKey, fill: F) -> Result<u64, StorageError>
    where
        F: FnOnce(PathBuf, tokio::fs::File) -> Fut,
        Fut: std::future::Future<Output = Result<u64, StorageError>>,
    {
        let (tmp, file) = self.temp_file().await?;
        let written = async {
            let n = fill(tmp.clone(), file).await?;
            self.commit(&tmp, key).await?;
            Ok::<u64, StorageError>(n)
        }
        .await;
        if written.is_err() {
            let _ = tokio::fs::remove_file(&tmp).await;
        }
        written
    }

    async fn write(
        &self,
        key: &ObjectKey,
        reader: &mut (dyn AsyncRead + Send + Unpin),
    ) -> Result<u64, StorageError> {
        self.write_with(key, |_, mut file| async move {
            let n = tokio::io::copy(reader, &mut file).await?;
            file.flush().await?;
            file.sync_all().await?;
            Ok(n)
        })
        .await
    }
}

fn not_found(err: std::io::Error, key: &ObjectKey) -> StorageError {
    if err.kind() == ErrorKind::NotFound {
        StorageError::NotFound(key.to_string())
    } else {
        StorageError::Io(err)
    }
}

#[async_trait]
impl ObjectStore for LocalStore {
    async fn put(&self, key: &ObjectKey, bytes: Bytes) -> Result<(), StorageError> {
        self.write(key, &mut bytes.as_ref()).await.map(|_| ())
    }

    async fn put_reader(
        &self,
        key: &ObjectKey,
        reader: &mut (dyn AsyncRead + Send + Unpin),
    ) -> Result<u64, StorageError> {
        self.write(key, reader).await
    }

    /// One copy in the kernel (`copy_file_range`) instead of a read and a write per buffer.
    async fn put_file(&self, key: &ObjectKey, path: &Path) -> Result<u64, StorageError> {
        self.write_with(key, |tmp, file| async move {
            drop(file);
            let n = tokio::fs::copy(path, &tmp).await?;
            tokio::fs::File::open(&tmp).await?.sync_all().await?;
            Ok(n)
        })
        .await
    }

    async fn get(&self, key: &ObjectKey) -> Result<Bytes, StorageError> {
        tokio::fs::read(self.path_of(key))
            .await
            .map(Bytes::from)
            .map_err(|e| not_found(e, key))
    }

    async fn head(&self, key: &ObjectKey) -> Result<Option<u64>, StorageError> {
        match tokio::fs::metadata(self.path_of(key)).await {
            Ok(meta) if meta.is_file() => Ok(Some(meta.len())),
            Ok(_) => Ok(None),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    async fn delete(&self, key: &ObjectKey) -> Result<(), StorageError> {
        match tokio::fs::remove_file(self.path_of(key)).await {
            Err(e) if e.kind() != ErrorKind::NotFound => Err(e.into()),
            _ => Ok(()),
        }
    }

    async fn list(&self, prefix: &KeyPrefix) -> Result<Vec<ObjectInfo>, StorageError> {
        let mut found = Vec::new();
        let mut pending = vec![self.root.join(prefix.as_str())];
        while let Some(dir) = pending.pop() {
            let mut entries = match tokio::fs::read_dir(&dir).await {
                Ok(entries) => entries,
                Err(e) if e.kind() == ErrorKind::NotFound => continue,
                Err(e) => return Err(e.into()),
            };
            while let Some(entry) = entries.next_entry().await? {
                let kind = entry.file_type().await?;
                if kind.is_dir() {
                    pending.push(entry.path());
                    continue;
                }
                let Some(relative) = entry
                    .path()
                    .strip_prefix(&self.root)
                    .ok()
                    .and_then(|p| p.to_str())
                    .map(|p| p.replace(std::path::MAIN_SEPARATOR, "/"))
                else {
                    continue;
                };
                // Files that are not valid keys were not written by this store.
                if let Ok(key) = ObjectKey::parse(&relative) {
                    let size = entry.metadata().await?.len();
                    found.push(ObjectInfo { key, size });
                }
            }
        }
        found.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(found)
    }

    async fn delete_prefix(&self, prefix: &KeyPrefix) -> Result<u64, StorageError> {
        let objects = self.list(prefix).await?;
        for object in &objects {
            self.delete(&object.key).await?;
        }
        match tokio::fs::remove_dir_all(self.root.join(prefix.as_str())).await {
            Err(e) if e.kind() != ErrorKind::NotFound => return Err(e.into()),
            _ => {}
        }
        Ok(objects.len() as u64)
    }

    async fn presigned_get_at(
        &self,
        key: &ObjectKey,
        ttl: Duration,
        now: DateTime<Utc>,
    ) -> Result<Presigned, StorageError> {
        let expires = now.timestamp() + i64::try_from(ttl.as_secs()).unwrap_or(i64::MAX / 2);
        let signature = hex::encode(self.mac(key.as_str(), expires).finalize().into_bytes());
        let expires_at = Utc
            .timestamp_opt(expires, 0)
            .single()
            .ok_or_else(|| StorageError::Config("the link expiry is out of range".into()))?;
        Ok(Presigned {
            url: format!(
                "{}/api/v1/files/{key}?expires={expires}&signature={signature}",
                self.base_url
            ),
            expires_at,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store(secret: &[u8]) -> LocalStore {
        LocalStore::new(
            std::env::temp_dir().join("unused"),
            secret,
            "http://catalog.test/",
        )
    }

    fn query(url: &str) -> (String, i64, String) {
        let url = url::Url::parse(url).unwrap();
        let key = url
            .path()
            .strip_prefix("/api/v1/files/")
            .unwrap()
            .to_string();
        let pairs: std::collections::HashMap<_, _> = url.query_pairs().into_owned().collect();
        (
            key,
            pairs["expires"].parse().unwrap(),
            pairs["signature"].clone(),
        )
    }

    #[tokio::test]
    async fn links_open_one_object_until_they_expire() {
        let store = store(b"secret");
        let ws = Uuid::nil();
        let key = ObjectKey::new(ws, "exports/a.csv").unwrap();
        let now = Utc.timestamp_opt(1_000_000, 0).unwrap();
        let link = store
            .presigned_get_at(&key, Duration::from_secs(900), now)
            .await
            .unwrap();
        assert!(link.url.starts_with("http://catalog.test/api/v1/files/"));
        assert_eq!(link.expires_at.timestamp(), 1_000_900);
        let (k, expires, signature) = query(&link.url);
        assert_eq!(store.verify_at(&k, expires, &signature, now).unwrap(), key);
        let at_expiry = Utc.timestamp_opt(1_000_900, 0).unwrap();
        assert!(store.verify_at(&k, expires, &signature, at_expiry).is_ok());
        let after = Utc.timestamp_opt(1_000_901, 0).unwrap();
        assert!(matches!(
            store.verify_at(&k, expires, &signature, after),
            Err(StorageError::Expired)
        ));
        // Another expiry, another key (another workspace's), another secret or a mangled
        // signature: refused.
        assert!(matches!(
            store.verify_at(&k, expires + 1000, &signature, now),
            Err(StorageError::BadSignature)
        ));
        let other = ObjectKey::new(Uuid::max(), "exports/a.csv").unwrap();
        assert!(matches!(
            store.verify_at(other.as_str(), expires, &signature, now),
            Err(StorageError::BadSignature)
        ));
        assert!(matches!(
            super::LocalStore::new(PathBuf::new(), b"other", "http://x")
                .verify_at(&k, expires, &signature, now),
            Err(StorageError::BadSignature)
        ));
        assert!(matches!(
            store.verify_at(&k, expires, "zz", now),
            Err(StorageError::BadSignature)
        ));
        assert!(matches!(
            store.verify_at("../etc/passwd", expires, &signature, now),
            Err(StorageError::InvalidKey)
        ));
    }
}
