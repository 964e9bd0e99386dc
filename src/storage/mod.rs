//! Object storage behind one trait, [`ObjectStore`]: media pictures, thumbnails and export
//! files, each under its workspace's key prefix ([`ObjectKey`]). Two backends:
//!
//! - [`LocalStore`] (`kind = "fs"`, the default): files under `<data dir>/objects/`, handed
//!   out through links the daemon signs itself and checks on `GET /api/v1/files/{*key}`.
//! - [`S3Store`] (`kind = "s3"`): any S3 API through aws-sdk-s3, multipart uploads for large
//!   objects, downloads through presigned GET URLs that point at the S3 server.
//!
//! Both hand out links with the same expiry rules (`storage.presign_ttl_secs`), and both
//! bind a link to the whole key, workspace prefix included: a link opens one object, until it
//! expires, and nothing else.

mod key;
mod local;
mod s3;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use tokio::io::AsyncRead;

pub use self::key::{KeyPrefix, ObjectKey};
pub use self::local::LocalStore;
pub use self::s3::S3Store;
use crate::config::{StorageKind, StorageSettings};

/// S3 refuses multipart parts smaller than this (except the last).
pub const MIN_PART_SIZE: usize = 5 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("the object key is not valid")]
    InvalidKey,
    #[error("no object {0}")]
    NotFound(String),
    #[error("the download link is invalid")]
    BadSignature,
    #[error("the download link has expired")]
    Expired,
    #[error("object storage: {0}")]
    Io(#[from] std::io::Error),
    /// A request to the S3 server failed; `message` names the operation and the key.
    #[error("object storage (S3): {0}")]
    S3(String),
    #[error("object storage configuration: {0}")]
    Config(String),
}

/// A time-limited download link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Presigned {
    pub url: String,
    pub expires_at: DateTime<Utc>,
}

/// One stored object, as listed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectInfo {
    pub key: ObjectKey,
    pub size: u64,
}

/// What the daemon needs from object storage.
#[async_trait]
pub trait ObjectStore: Send + Sync + std::fmt::Debug {
    /// Stores `bytes` under `key`, replacing what was there.
    async fn put(&self, key: &ObjectKey, bytes: Bytes) -> Result<(), StorageError>;

    /// Stores everything `reader` yields under `key` without holding it in memory: the local
    /// store writes a temporary file and renames it into place, S3 uploads in parts of the
    /// configured size once the object is larger than one part. Returns the size stored.
    /// Nothing is visible under `key` until the whole object is.
    async fn put_reader(
        &self,
        key: &ObjectKey,
        reader: &mut (dyn AsyncRead + Send + Unpin),
    ) -> Result<u64, StorageError>;

    /// The object's bytes ([`StorageError::NotFound`] when there is none).
    async fn get(&self, key: &ObjectKey) -> Result<Bytes, StorageError>;

    /// The object's size, or `None` when there is no object under `key`.
    async fn head(&self, key: &ObjectKey) -> Result<Option<u64>, StorageError>;

    /// Removes the object; removing a missing object is not an error.
    async fn delete(&self, key: &ObjectKey) -> Result<(), StorageError>;

    /// Every object under `prefix`, in key order.
    async fn list(&self, prefix: &KeyPrefix) -> Result<Vec<ObjectInfo>, StorageError>;

    /// Removes every object under `prefix` and returns how many there were.
    async fn delete_prefix(&self, prefix: &KeyPrefix) -> Result<u64, StorageError>;

    /// A download link for `key` valid from `now` for `ttl`. Taking the time explicitly lets
    /// tests make links that have already expired.
    async fn presigned_get_at(
        &self,
        key: &ObjectKey,
        ttl: Duration,
        now: DateTime<Utc>,
    ) -> Result<Presigned, StorageError>;

    /// A download link for `key` valid for `ttl` from now.
    async fn presigned_get(
        &self,
        key: &ObjectKey,
        ttl: Duration,
    ) -> Result<Presigned, StorageError> {
        self.presigned_get_at(key, ttl, Utc::now()).await
    }

    /// Stores a file's contents (see [`ObjectStore::put_reader`]).
    async fn put_file(&self, key: &ObjectKey, path: &Path) -> Result<u64, StorageError> {
        let mut file = tokio::fs::File::open(path).await?;
        self.put_reader(key, &mut file).await
    }
}

/// The configured store. `secret` signs the local store's links; `public_base_url` is where
/// those links point.
pub fn from_settings(
    settings: &StorageSettings,
    data_dir: &Path,
    secret: &[u8],
    public_base_url: &str,
) -> Result<Storage, StorageError> {
    Ok(match settings.kind {
        StorageKind::Fs => {
            let local = Arc::new(LocalStore::new(
                data_dir.join("objects"),
                secret,
                public_base_url,
            ));
            Storage {
                store: local.clone(),
                local: Some(local),
                presign_ttl: Duration::from_secs(settings.presign_ttl_secs),
            }
        }
        StorageKind::S3 => Storage {
            store: Arc::new(S3Store::new(settings)?),
            local: None,
            presign_ttl: Duration::from_secs(settings.presign_ttl_secs),
        },
    })
}

/// The application's object storage: the store, the expiry of the links it hands out, and,
/// with the local backend, the store the download route serves from.
#[derive(Debug, Clone)]
pub struct Storage {
    pub store: Arc<dyn ObjectStore>,
    /// Set for `kind = "fs"` only: S3 links point at the S3 server, never at the daemon.
    pub local: Option<Arc<LocalStore>>,
    pub presign_ttl: Duration,
}

impl std::ops::Deref for Storage {
    type Target = dyn ObjectStore;
    fn deref(&self) -> &Self::Target {
        &*self.store
    }
}

impl Storage {
    /// A download link with the configured expiry.
    pub async fn download_link(&self, key: &ObjectKey) -> Result<Presigned, StorageError> {
        self.store.presigned_get(key, self.presign_ttl).await
    }
}
