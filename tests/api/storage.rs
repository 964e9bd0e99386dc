//! Object storage, both backends: the local directory (links signed and served by the
//! daemon) and S3 against a real S3-compatible server that checks signatures. Each backend
//! goes through the same checks: put/get/head, a multipart-sized object, list and delete by
//! prefix, and links that download over HTTP, refuse tampering and expiry, and open only the
//! key they were made for.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use catalogd::storage::{KeyPrefix, ObjectKey, ObjectStore, StorageError};
use chrono::Utc;
use magento_sim::{MagentoSim, SimConfig};
use serde_json::json;
use tokio::io::{AsyncRead, ReadBuf};
use uuid::Uuid;

use crate::helpers::TestApp;
use crate::s3_server::{PART_SIZE, S3Server};

/// Deterministic bytes that do not repeat at part boundaries.
fn payload(len: usize) -> Vec<u8> {
    let mut state = 0x2545_f491_u32;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            state as u8
        })
        .collect()
}

async fn fetch(url: &str) -> (u16, Bytes) {
    let response = reqwest::get(url).await.expect("the link's server answers");
    let status = response.status().as_u16();
    (status, response.bytes().await.unwrap())
}

/// Yields `good` bytes, then fails: an upload whose source breaks halfway.
struct Breaks {
    left: usize,
}

impl AsyncRead for Breaks {
    fn poll_read(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        if self.left == 0 {
            return Poll::Ready(Err(std::io::Error::other("the source broke")));
        }
        let n = self.left.min(buf.remaining()).min(64 * 1024);
        buf.put_slice(&vec![7u8; n]);
        self.left -= n;
        Poll::Ready(Ok(()))
    }
}

/// The checks every backend must pass.
async fn exercise(store: &dyn ObjectStore) {
    let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
    let small = ObjectKey::new(a, "exports/small.csv").unwrap();
    store
        .put(&small, Bytes::from_static(b"sku,name\n1,One\n"))
        .await
        .unwrap();
    assert_eq!(&store.get(&small).await.unwrap()[..], b"sku,name\n1,One\n");
    assert_eq!(store.head(&small).await.unwrap(), Some(15));

    // Larger than one part: uploaded in parts, read back exactly.
    let big = ObjectKey::new(a, "exports/big.bin").unwrap();
    let content = payload(2 * PART_SIZE + 12_345);
    let stored = store
        .put_reader(&big, &mut content.as_slice())
        .await
        .unwrap();
    assert_eq!(stored, content.len() as u64);
    assert_eq!(store.head(&big).await.unwrap(), Some(content.len() as u64));
    assert!(store.get(&big).await.unwrap() == content);

    // An upload whose source fails leaves nothing under its key.
    let broken = ObjectKey::new(a, "exports/broken.bin").unwrap();
    let failed = store
        .put_reader(
            &broken,
            &mut Breaks {
                left: PART_SIZE + 10,
            },
        )
        .await;
    assert!(failed.is_err());
    assert_eq!(store.head(&broken).await.unwrap(), None);

    // The same path in another workspace is another object.
    let elsewhere = ObjectKey::new(b, "exports/small.csv").unwrap();
    store
        .put(&elsewhere, Bytes::from_static(b"other workspace"))
        .await
        .unwrap();
    let media = ObjectKey::new(a, "media/abc").unwrap();
    store.put(&media, Bytes::from_static(b"img")).await.unwrap();

    let exports = store
        .list(&KeyPrefix::folder(a, "exports").unwrap())
        .await
        .unwrap();
    let keys: Vec<&str> = exports.iter().map(|o| o.key.as_str()).collect();
    assert_eq!(keys, [big.as_str(), small.as_str()]);
    assert_eq!(store.list(&KeyPrefix::workspace(a)).await.unwrap().len(), 3);

    // A link downloads the object over HTTP.
    let link = store
        .presigned_get(&small, Duration::from_secs(900))
        .await
        .unwrap();
    assert!(link.expires_at > Utc::now() + chrono::Duration::seconds(890));
    let (status, body) = fetch(&link.url).await;
    assert_eq!(status, 200, "{link:?}");
    assert_eq!(&body[..], b"sku,name\n1,One\n");
    let big_link = store
        .presigned_get(&big, Duration::from_secs(60))
        .await
        .unwrap();
    let (status, body) = fetch(&big_link.url).await;
    assert_eq!(status, 200);
    assert!(body == content);

    // A tampered signature is refused.
    let url = url::Url::parse(&link.url).unwrap();
    let (name, signature) = url
        .query_pairs()
        .find(|(k, _)| k == "signature" || k == "X-Amz-Signature")
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .expect("the link carries a signature");
    let mut flipped = signature.clone().into_bytes();
    flipped[0] = if flipped[0] == b'0' { b'1' } else { b'0' };
    let tampered = link.url.replace(
        &format!("{name}={signature}"),
        &format!("{name}={}", String::from_utf8(flipped).unwrap()),
    );
    assert_ne!(tampered, link.url);
    assert_eq!(fetch(&tampered).await.0, 403);

    // A link made an hour ago for ten minutes has expired.
    let old = store
        .presigned_get_at(
            &small,
            Duration::from_secs(600),
            Utc::now() - chrono::Duration::hours(1),
        )
        .await
        .unwrap();
    assert!(old.expires_at < Utc::now());
    assert_eq!(fetch(&old.url).await.0, 403);

    // A's link, pointed at B's object of the same path: the signature binds the key.
    let crossed = link.url.replace(&a.to_string(), &b.to_string());
    assert_ne!(crossed, link.url);
    assert_eq!(fetch(&crossed).await.0, 403);

    // Deleting.
    store.delete(&media).await.unwrap();
    assert_eq!(store.head(&media).await.unwrap(), None);
    assert!(matches!(
        store.get(&media).await,
        Err(StorageError::NotFound(_))
    ));
    store.delete(&media).await.unwrap();
    assert_eq!(
        store.delete_prefix(&KeyPrefix::workspace(a)).await.unwrap(),
        2
    );
    assert!(
        store
            .list(&KeyPrefix::workspace(a))
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(store.head(&small).await.unwrap(), None);
    // The other workspace keeps its object.
    assert_eq!(
        &store.get(&elsewhere).await.unwrap()[..],
        b"other workspace"
    );
}

#[tokio::test]
async fn the_local_store_keeps_objects_and_serves_signed_links() {
    let app = TestApp::spawn().await;
    assert!(app.storage.local.is_some());
    exercise(&*app.storage).await;
}

#[tokio::test]
async fn the_s3_store_keeps_objects_and_hands_out_presigned_urls() {
    let s3 = S3Server::start().await;
    let app = TestApp::spawn_with_s3(&s3, &[]).await;
    assert!(app.storage.local.is_none());
    exercise(&*app.storage).await;
}

#[tokio::test]
async fn the_daemon_does_not_serve_files_when_storage_is_s3() {
    let s3 = S3Server::start().await;
    let app = TestApp::spawn_with_s3(&s3, &[]).await;
    let key = ObjectKey::new(Uuid::new_v4(), "exports/a.csv").unwrap();
    app.storage
        .put(&key, Bytes::from_static(b"x"))
        .await
        .unwrap();
    let link = app.storage.download_link(&key).await.unwrap();
    assert!(link.url.starts_with(&s3.endpoint), "{}", link.url);
    let (status, _) = fetch(&format!(
        "{}/api/v1/files/{key}?expires=9999999999&signature=00",
        app.base
    ))
    .await;
    assert_eq!(status, 404);
}

/// Runs an export through the API and returns its record.
async fn export(app: &TestApp, token: &str, store_id: &str, format: &str) -> serde_json::Value {
    let (started, _) = app
        .run_job(
            &format!("/stores/{store_id}/exports"),
            token,
            json!({"format": format}),
        )
        .await;
    let (status, record) = app
        .get(
            &format!("/exports/{}", started["export_id"].as_str().unwrap()),
            token,
        )
        .await;
    assert_eq!(status, 200, "{record}");
    record
}

#[tokio::test]
async fn exports_go_to_s3_and_download_through_presigned_urls_that_expire() {
    let s3 = S3Server::start().await;
    let app = TestApp::spawn_with_s3(&s3, &[("CATALOGD_STORAGE__PRESIGN_TTL_SECS", "300")]).await;
    let sim = MagentoSim::start(SimConfig {
        products: 20,
        ..SimConfig::default()
    })
    .await
    .unwrap();
    let owner = app.register("shop@example.com").await;
    let store_id = app.connect_store(&owner, &sim).await;
    app.sync(&owner, &store_id, "full").await;

    let record = export(&app, &owner.access_token, &store_id, "magento_csv").await;
    let url = record["download_url"].as_str().unwrap();
    assert!(
        url.starts_with(&s3.endpoint),
        "the link points at S3: {url}"
    );
    let expires_at: chrono::DateTime<Utc> = record["expires_at"].as_str().unwrap().parse().unwrap();
    let ttl = (expires_at - Utc::now()).num_seconds();
    assert!((290..=300).contains(&ttl), "{ttl}");

    let key = ObjectKey::new(
        owner.workspace_id,
        &format!("exports/{}.csv", record["id"].as_str().unwrap()),
    )
    .unwrap();
    let stored = app.storage.get(&key).await.unwrap();
    assert_eq!(record["bytes"].as_u64(), Some(stored.len() as u64));
    let (status, downloaded) = fetch(url).await;
    assert_eq!(status, 200);
    assert!(downloaded == stored);
    assert!(downloaded.starts_with(b"sku,"));
    let records = csv::ReaderBuilder::new()
        .has_headers(true)
        .from_reader(&downloaded[..])
        .records()
        .count();
    assert_eq!(Some(records as i64), record["rows"].as_i64());

    // S3 serves the download; the audit log has the link being handed out.
    let (_, log) = app
        .get(
            &format!("/workspaces/{}/audit-log", owner.workspace_id),
            &owner.access_token,
        )
        .await;
    assert!(
        log["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["action"] == "file.link_issued"),
        "{log}"
    );

    // The same key signed for a window that has passed is refused by S3.
    let expired = app
        .storage
        .presigned_get_at(
            &key,
            Duration::from_secs(300),
            Utc::now() - chrono::Duration::minutes(10),
        )
        .await
        .unwrap();
    assert_eq!(fetch(&expired.url).await.0, 403);
    // Another workspace's export of the same name cannot be read with this link.
    let stranger = app.register("other@example.com").await;
    let crossed = url.replace(
        &owner.workspace_id.to_string(),
        &stranger.workspace_id.to_string(),
    );
    assert_eq!(fetch(&crossed).await.0, 403);

    // The feed and the ZIP go the same way.
    let feed = export(&app, &owner.access_token, &store_id, "google_feed").await;
    let (status, xml) = fetch(feed["download_url"].as_str().unwrap()).await;
    assert_eq!(status, 200);
    assert!(xml.starts_with(b"<?xml"));
    // Nothing is left behind in the scratch directory.
    let scratch = app.data_dir.join("tmp");
    let left = std::fs::read_dir(&scratch).map(|d| d.count()).unwrap_or(0);
    assert_eq!(left, 0, "scratch files left in {}", scratch.display());
}

#[tokio::test]
async fn local_export_links_expire() {
    let app = TestApp::spawn().await;
    let sim = MagentoSim::start(SimConfig {
        products: 5,
        ..SimConfig::default()
    })
    .await
    .unwrap();
    let owner = app.register("shop@example.com").await;
    let store_id = app.connect_store(&owner, &sim).await;
    app.sync(&owner, &store_id, "full").await;
    let record = export(&app, &owner.access_token, &store_id, "magento_csv").await;
    let url = record["download_url"].as_str().unwrap();
    assert!(
        url.starts_with(&format!("{}/api/v1/files/", app.base)),
        "{url}"
    );
    assert_eq!(fetch(url).await.0, 200);
    let key = ObjectKey::new(
        owner.workspace_id,
        &format!("exports/{}.csv", record["id"].as_str().unwrap()),
    )
    .unwrap();
    let expired = app
        .storage
        .presigned_get_at(
            &key,
            Duration::from_secs(900),
            Utc::now() - chrono::Duration::minutes(20),
        )
        .await
        .unwrap();
    let response = reqwest::get(&expired.url).await.unwrap();
    assert_eq!(response.status().as_u16(), 403);
    let body: serde_json::Value = response.json().await.unwrap();
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("expired"),
        "{body}"
    );
}

#[tokio::test]
async fn mirrored_pictures_and_thumbnails_are_stored_once_in_s3() {
    let s3 = S3Server::start().await;
    let app = TestApp::spawn_with_s3(&s3, &[]).await;
    let sim = MagentoSim::start(SimConfig {
        products: 15,
        ..SimConfig::default()
    })
    .await
    .unwrap();
    let owner = app.register("shop@example.com").await;
    let store_id = app.connect_store(&owner, &sim).await;
    app.sync(&owner, &store_id, "full").await;

    let mirror = || async {
        let (_, job) = app
            .run_job(
                &format!("/stores/{store_id}/media"),
                &owner.access_token,
                json!({}),
            )
            .await;
        job
    };
    let job = mirror().await;
    let (rows, pictures, thumbnails, without): (i64, i64, i64, i64) = sqlx::query_as(
        "SELECT count(*), count(DISTINCT object_key), count(DISTINCT thumbnail_key),
                count(*) FILTER (WHERE thumbnail_key IS NULL)
         FROM media",
    )
    .fetch_one(&app.db)
    .await
    .unwrap();
    assert!(rows > 0);
    assert_eq!(job["counters"]["fetched"], rows, "{job}");
    assert_eq!(without, 0, "every simulator picture decodes");
    // Each distinct picture is stored once, under the workspace's prefix.
    let stored = app
        .storage
        .list(&KeyPrefix::folder(owner.workspace_id, "media").unwrap())
        .await
        .unwrap();
    assert_eq!(stored.len() as i64, pictures);
    assert_eq!(job["counters"]["stored"], pictures, "{job}");
    let thumbs = app
        .storage
        .list(&KeyPrefix::folder(owner.workspace_id, "thumbs").unwrap())
        .await
        .unwrap();
    assert_eq!(thumbs.len() as i64, thumbnails);
    let thumb = app.storage.get(&thumbs[0].key).await.unwrap();
    assert!(thumb.starts_with(b"\x89PNG"));

    // A product's detail links each picture's thumbnail, served by S3.
    let product_id: Uuid = sqlx::query_scalar("SELECT product_id FROM media LIMIT 1")
        .fetch_one(&app.db)
        .await
        .unwrap();
    let (status, detail) = app
        .get(&format!("/products/{product_id}"), &owner.access_token)
        .await;
    assert_eq!(status, 200, "{detail}");
    let first = &detail["media"][0];
    assert_eq!(first["width"], 1, "{detail}");
    let url = first["thumbnail_url"].as_str().unwrap();
    assert!(url.starts_with(&s3.endpoint), "{url}");
    let (status, png) = fetch(url).await;
    assert_eq!(status, 200);
    assert!(png.starts_with(b"\x89PNG"));
    assert!(first["thumbnail_error"].is_null());

    // A second run fetches and stores nothing.
    let again = mirror().await;
    assert_eq!(again["counters"]["fetched"], 0, "{again}");
    assert_eq!(again["counters"]["stored"], 0, "{again}");
    let after = app
        .storage
        .list(&KeyPrefix::workspace(owner.workspace_id))
        .await
        .unwrap();
    assert_eq!(after.len(), stored.len() + thumbs.len());
}

/// A media server whose every first gallery picture (`…-1.png`) is a PNG cut off after its
/// header: it looks like a picture (type and size read fine) but does not decode.
async fn hostile_media_server() -> String {
    async fn picture(axum::extract::Path(file): axum::extract::Path<String>) -> Vec<u8> {
        let whole = magento_sim::catalog::png_for(&file);
        if file.ends_with("-1.png") {
            whole[..33].to_vec()
        } else {
            whole
        }
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let router = axum::Router::new().route(
        "/media/catalog/product/{*file}",
        axum::routing::get(picture),
    );
    tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    format!("http://{addr}/media/")
}

#[tokio::test]
async fn a_picture_that_does_not_decode_is_recorded_and_mirroring_goes_on() {
    let app = TestApp::spawn().await;
    let sim = MagentoSim::start(SimConfig {
        products: 10,
        ..SimConfig::default()
    })
    .await
    .unwrap();
    let owner = app.register("shop@example.com").await;
    let store_id = app.connect_store(&owner, &sim).await;
    app.sync(&owner, &store_id, "full").await;
    let media_url = hostile_media_server().await;
    sqlx::query(
        "UPDATE stores SET store_views = (
            SELECT jsonb_agg(v || jsonb_build_object('base_media_url', $2::text))
            FROM jsonb_array_elements(store_views) v)
         WHERE id = $1",
    )
    .bind(store_id.parse::<Uuid>().unwrap())
    .bind(&media_url)
    .execute(&app.db)
    .await
    .unwrap();

    let (_, job) = app
        .run_job(
            &format!("/stores/{store_id}/media"),
            &owner.access_token,
            json!({}),
        )
        .await;
    let (broken, with_error, fine, with_thumbnail): (i64, i64, i64, i64) = sqlx::query_as(
        "SELECT count(*) FILTER (WHERE file LIKE '%-1.png'),
                count(*) FILTER (WHERE thumbnail_error IS NOT NULL AND thumbnail_key IS NULL),
                count(*) FILTER (WHERE file NOT LIKE '%-1.png'),
                count(*) FILTER (WHERE thumbnail_key IS NOT NULL AND thumbnail_error IS NULL)
         FROM media",
    )
    .fetch_one(&app.db)
    .await
    .unwrap();
    assert!(broken > 0 && fine > 0, "{broken} {fine}");
    assert_eq!(with_error, broken);
    assert_eq!(with_thumbnail, fine);
    assert_eq!(job["counters"]["undecodable"], broken, "{job}");
    assert_eq!(job["counters"]["failed"], 0, "{job}");
    // The undecodable picture itself is still mirrored (and its size read from the header).
    let sized: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM media WHERE file LIKE '%-1.png' AND width = 1 AND height = 1",
    )
    .fetch_one(&app.db)
    .await
    .unwrap();
    assert_eq!(sized, broken);
    // The product's detail says why its first picture has no thumbnail.
    let product_id: Uuid =
        sqlx::query_scalar("SELECT product_id FROM media WHERE file LIKE '%-1.png' LIMIT 1")
            .fetch_one(&app.db)
            .await
            .unwrap();
    let (status, detail) = app
        .get(&format!("/products/{product_id}"), &owner.access_token)
        .await;
    assert_eq!(status, 200, "{detail}");
    let broken = detail["media"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["file"].as_str().unwrap().ends_with("-1.png"))
        .unwrap();
    assert!(broken["thumbnail_url"].is_null(), "{broken}");
    assert!(broken["thumbnail_error"].is_string(), "{broken}");
    if let Some(fine) = detail["media"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| !m["file"].as_str().unwrap().ends_with("-1.png"))
    {
        let (status, png) = fetch(fine["thumbnail_url"].as_str().unwrap()).await;
        assert_eq!(status, 200);
        assert!(png.starts_with(b"\x89PNG"));
    }
}
