//! The S3 backend through aws-sdk-s3: any S3 API (AWS, MinIO, Garage, s3s…), path-style
//! addressing when configured, static credentials from the configuration, multipart uploads
//! for objects larger than one part, and presigned GET URLs that point at the S3 server.

use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use aws_sdk_s3::Client;
use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::config::{
    BehaviorVersion, Credentials, Region, RequestChecksumCalculation, ResponseChecksumValidation,
};
use aws_sdk_s3::error::{DisplayErrorContext, SdkError};
use aws_sdk_s3::presigning::PresigningConfig;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart, Delete, ObjectIdentifier};
use bytes::Bytes;
use chrono::{DateTime, Utc};
use secrecy::ExposeSecret;
use tokio::io::{AsyncRead, AsyncReadExt};

use super::{KeyPrefix, ObjectInfo, ObjectKey, ObjectStore, Presigned, StorageError};
use crate::config::StorageSettings;

/// S3 deletes at most this many keys per request.
const DELETE_BATCH: usize = 1000;

pub struct S3Store {
    client: Client,
    bucket: String,
    endpoint: String,
    part_size: usize,
}

impl std::fmt::Debug for S3Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Store")
            .field("endpoint", &self.endpoint)
            .field("bucket", &self.bucket)
            .field("part_size", &self.part_size)
            .finish_non_exhaustive()
    }
}

/// Names the operation and key and keeps the SDK's whole error chain (the server's code and
/// message), never the credentials.
fn failed<E: std::error::Error + 'static, R: std::fmt::Debug>(
    operation: &str,
    target: &str,
    err: SdkError<E, R>,
) -> StorageError {
    StorageError::S3(format!(
        "{operation} {target}: {}",
        DisplayErrorContext(&err)
    ))
}

fn status_of<E>(err: &SdkError<E, HttpResponse>) -> Option<u16> {
    err.raw_response().map(|r| r.status().as_u16())
}

impl S3Store {
    /// A client for the configured server and bucket. Builds no connection yet.
    pub fn new(settings: &StorageSettings) -> Result<S3Store, StorageError> {
        if settings.bucket.is_empty() {
            return Err(StorageError::Config("storage.bucket is empty".into()));
        }
        if settings.multipart_part_size_bytes < super::MIN_PART_SIZE {
            return Err(StorageError::Config(format!(
                "storage.multipart_part_size_bytes must be at least {}",
                super::MIN_PART_SIZE
            )));
        }
        let credentials = Credentials::new(
            settings.access_key_id.clone(),
            settings.secret_access_key.expose_secret().to_string(),
            None,
            None,
            "catalogd configuration",
        );
        let mut config = aws_sdk_s3::config::Builder::new()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new(settings.region.clone()))
            .credentials_provider(credentials)
            .force_path_style(settings.path_style)
            // Checksums only where S3 requires them: S3-compatible servers differ in which
            // of the newer checksum headers and trailers they understand.
            .request_checksum_calculation(RequestChecksumCalculation::WhenRequired)
            .response_checksum_validation(ResponseChecksumValidation::WhenRequired);
        if !settings.endpoint.is_empty() {
            config = config.endpoint_url(settings.endpoint.clone());
        }
        Ok(S3Store {
            client: Client::from_conf(config.build()),
            bucket: settings.bucket.clone(),
            endpoint: settings.endpoint.clone(),
            part_size: settings.multipart_part_size_bytes,
        })
    }

    /// The SDK client, for set-up work outside the trait (creating the bucket in tests).
    pub fn client(&self) -> &Client {
        &self.client
    }

    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    /// Uploads the parts of one multipart upload: `first` (already read, one full part),
    /// then the rest of `reader`. Returns the parts and the size.
    async fn upload_parts(
        &self,
        key: &ObjectKey,
        upload_id: &str,
        first: Vec<u8>,
        reader: &mut (dyn AsyncRead + Send + Unpin),
    ) -> Result<(Vec<CompletedPart>, u64), StorageError> {
        let mut parts = Vec::new();
        let mut total = 0u64;
        let mut chunk = first;
        loop {
            if chunk.is_empty() {
                break;
            }
            let number = i32::try_from(parts.len() + 1)
                .map_err(|_| StorageError::S3(format!("too many parts for {key}")))?;
            total += chunk.len() as u64;
            let sent = self
                .client
                .upload_part()
                .bucket(&self.bucket)
                .key(key.as_str())
                .upload_id(upload_id)
                .part_number(number)
                .body(ByteStream::from(chunk))
                .send()
                .await
                .map_err(|e| failed("UploadPart", key.as_str(), e))?;
            parts.push(
                CompletedPart::builder()
                    .part_number(number)
                    .set_e_tag(sent.e_tag().map(String::from))
                    .build(),
            );
            chunk = read_part(reader, self.part_size).await?;
        }
        Ok((parts, total))
    }
}

/// Reads up to `size` bytes (fewer only at the end of the stream).
async fn read_part(
    reader: &mut (dyn AsyncRead + Send + Unpin),
    size: usize,
) -> Result<Vec<u8>, StorageError> {
    let mut part = Vec::with_capacity(size);
    let mut limited = reader.take(size as u64);
    limited.read_to_end(&mut part).await?;
    Ok(part)
}

#[async_trait]
impl ObjectStore for S3Store {
    async fn put(&self, key: &ObjectKey, bytes: Bytes) -> Result<(), StorageError> {
        self.client
            .put_object()
            .bucket(&self.bucket)
            .key(key.as_str())
            .body(ByteStream::from(bytes))
            .send()
            .await
            .map_err(|e| failed("PutObject", key.as_str(), e))?;
        Ok(())
    }

    async fn put_reader(
        &self,
        key: &ObjectKey,
        reader: &mut (dyn AsyncRead + Send + Unpin),
    ) -> Result<u64, StorageError> {
        let first = read_part(reader, self.part_size).await?;
        if first.len() < self.part_size {
            // Fits in one part: a plain upload.
            let size = first.len() as u64;
            self.put(key, Bytes::from(first)).await?;
            return Ok(size);
        }
        let created = self
            .client
            .create_multipart_upload()
            .bucket(&self.bucket)
            .key(key.as_str())
            .send()
            .await
            .map_err(|e| failed("CreateMultipartUpload", key.as_str(), e))?;
        let upload_id = created
            .upload_id()
            .ok_or_else(|| StorageError::S3(format!("no upload id for {key}")))?
            .to_string();
        let uploaded = async {
            let (parts, total) = self.upload_parts(key, &upload_id, first, reader).await?;
            self.client
                .complete_multipart_upload()
                .bucket(&self.bucket)
                .key(key.as_str())
                .upload_id(&upload_id)
                .multipart_upload(
                    CompletedMultipartUpload::builder()
                        .set_parts(Some(parts))
                        .build(),
                )
                .send()
                .await
                .map_err(|e| failed("CompleteMultipartUpload", key.as_str(), e))?;
            Ok::<u64, StorageError>(total)
        }
        .await;
        if uploaded.is_err() {
            // The parts uploaded so far would otherwise be kept (and billed) by the server.
            let aborted = self
                .client
                .abort_multipart_upload()
                .bucket(&self.bucket)
                .key(key.as_str())
                .upload_id(&upload_id)
                .send()
                .await;
            if let Err(e) = aborted {
                tracing::warn!(key = %key, error = %DisplayErrorContext(&e), "could not abort a multipart upload");
            }
        }
        uploaded
    }

    async fn get(&self, key: &ObjectKey) -> Result<Bytes, StorageError> {
        let object = match self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key.as_str())
            .send()
            .await
        {
            Ok(object) => object,
            Err(e) if status_of(&e) == Some(404) => {
                return Err(StorageError::NotFound(key.to_string()));
            }
            Err(e) => return Err(failed("GetObject", key.as_str(), e)),
        };
        let body = object
            .body
            .collect()
            .await
            .map_err(|e| StorageError::S3(format!("reading {key}: {e}")))?;
        Ok(body.into_bytes())
    }

    async fn head(&self, key: &ObjectKey) -> Result<Option<u64>, StorageError> {
        match self
            .client
            .head_object()
            .bucket(&self.bucket)
            .key(key.as_str())
            .send()
            .await
        {
            Ok(head) => Ok(Some(head.content_length().unwrap_or(0).max(0) as u64)),
            Err(e) if status_of(&e) == Some(404) => Ok(None),
            Err(e) => Err(failed("HeadObject", key.as_str(), e)),
        }
    }

    async fn delete(&self, key: &ObjectKey) -> Result<(), StorageError> {
        self.client
            .delete_object()
            .bucket(&self.bucket)
            .key(key.as_str())
            .send()
            .await
            .map_err(|e| failed("DeleteObject", key.as_str(), e))?;
        Ok(())
    }

    async fn list(&self, prefix: &KeyPrefix) -> Result<Vec<ObjectInfo>, StorageError> {
        let mut found = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let page = self
                .client
                .list_objects_v2()
                .bucket(&self.bucket)
                .prefix(prefix.as_str())
                .set_continuation_token(token.take())
                .send()
                .await
                .map_err(|e| failed("ListObjectsV2", prefix.as_str(), e))?;
            for object in page.contents() {
                // Keys this daemon did not write are left alone.
                if let Some(Ok(key)) = object.key().map(ObjectKey::parse) {
                    found.push(ObjectInfo {
                        key,
                        size: object.size().unwrap_or(0).max(0) as u64,
                    });
                }
            }
            match page.next_continuation_token() {
                Some(next) if page.is_truncated() == Some(true) => token = Some(next.to_string()),
                _ => break,
            }
        }
        found.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(found)
    }

    async fn delete_prefix(&self, prefix: &KeyPrefix) -> Result<u64, StorageError> {
        let objects = self.list(prefix).await?;
        for batch in objects.chunks(DELETE_BATCH) {
            let identifiers = batch
                .iter()
                .map(|o| ObjectIdentifier::builder().key(o.key.as_str()).build())
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| StorageError::S3(format!("DeleteObjects {prefix:?}: {e}")))?;
            let delete = Delete::builder()
                .set_objects(Some(identifiers))
                .quiet(true)
                .build()
                .map_err(|e| StorageError::S3(format!("DeleteObjects {prefix:?}: {e}")))?;
            let answer = self
                .client
                .delete_objects()
                .bucket(&self.bucket)
                .delete(delete)
                .send()
                .await
                .map_err(|e| failed("DeleteObjects", prefix.as_str(), e))?;
            if let Some(error) = answer.errors().first() {
                return Err(StorageError::S3(format!(
                    "DeleteObjects {}: {} {}",
                    error.key().unwrap_or_default(),
                    error.code().unwrap_or_default(),
                    error.message().unwrap_or_default()
                )));
            }
        }
        Ok(objects.len() as u64)
    }

    async fn presigned_get_at(
        &self,
        key: &ObjectKey,
        ttl: Duration,
        now: DateTime<Utc>,
    ) -> Result<Presigned, StorageError> {
        let config = PresigningConfig::builder()
            .start_time(SystemTime::from(now))
            .expires_in(ttl)
            .build()
            .map_err(|e| StorageError::Config(format!("presigning {key}: {e}")))?;
        let request = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key.as_str())
            .presigned(config)
            .await
            .map_err(|e| failed("presigning GetObject", key.as_str(), e))?;
        let expires_at = now
            + chrono::Duration::from_std(ttl)
                .map_err(|_| StorageError::Config("the link expiry is out of range".into()))?;
        Ok(Presigned {
            url: request.uri().to_string(),
            expires_at,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::StorageKind;

    fn settings(part_size: usize) -> StorageSettings {
        StorageSettings {
            kind: StorageKind::S3,
            endpoint: "http://127.0.0.1:9".into(),
            region: "us-east-1".into(),
            bucket: "b".into(),
            path_style: true,
            access_key_id: "AKIDEXAMPLE".into(),
            secret_access_key: "wJalrXUtnFEMI-very-secret".to_string().into(),
            presign_ttl_secs: 900,
            multipart_part_size_bytes: part_size,
        }
    }

    #[test]
    fn the_secret_key_is_not_in_debug_output() {
        let store = S3Store::new(&settings(super::super::MIN_PART_SIZE)).unwrap();
        let text = format!("{store:?} {:?}", settings(super::super::MIN_PART_SIZE));
        assert!(!text.contains("very-secret"), "{text}");
    }

    #[test]
    fn parts_smaller_than_s3_accepts_are_refused() {
        assert!(matches!(
            S3Store::new(&settings(1024)),
            Err(StorageError::Config(_))
        ));
    }

    #[tokio::test]
    async fn presigned_urls_are_path_style_and_carry_the_expiry() {
        let store = S3Store::new(&settings(super::super::MIN_PART_SIZE)).unwrap();
        let key = ObjectKey::new(uuid::Uuid::nil(), "exports/a.csv").unwrap();
        let now = Utc::now();
        let link = store
            .presigned_get_at(&key, Duration::from_secs(900), now)
            .await
            .unwrap();
        assert!(
            link.url
                .starts_with(&format!("http://127.0.0.1:9/b/{key}?")),
            "{}",
            link.url
        );
        assert!(link.url.contains("X-Amz-Expires=900"), "{}", link.url);
        assert!(!link.url.contains("very-secret"));
        assert_eq!(link.expires_at, now + chrono::Duration::seconds(900));
    }
}
