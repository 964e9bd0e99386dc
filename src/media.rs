//! Media mirroring: each product's images copied from the store's media URL into object
//! storage (`<workspace>/media/<sha256>`), stored once per content hash, with their size, so
//! audits can check dimensions and pushes can match pictures to gallery entries by hash. Each
//! picture also gets a PNG thumbnail for the UI (`<workspace>/thumbs/<sha256>.png`, at most
//! [`THUMBNAIL_MAX_PX`] on its longer side); a picture the decoder refuses is recorded as
//! such and mirroring goes on.
//!
//! A job walks the store's products in id order (the checkpoint is the last one done); an
//! entry already mirrored with the same file is not fetched again.

use std::io::Cursor;
use std::time::Duration;

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use url::Url;
use uuid::Uuid;

use crate::catalog::content::Content;
use crate::jobs::context::{JobContext, JobError, Outcome};
use crate::storage::{ObjectKey, ObjectStore, StorageError};
use crate::stores::{self, Store};

/// Pictures larger than this are not mirrored (and reported); the download stops there.
const PICTURE: egress::BodyLimit = egress::BodyLimit::new("picture", 20 * 1024 * 1024);
const BATCH: i64 = 100;
/// Longer side of a thumbnail, pixels.
pub const THUMBNAIL_MAX_PX: u32 = 256;
/// Pictures whose decoded size exceeds these are not decoded for a thumbnail: a small file
/// can claim an enormous canvas.
const DECODE_MAX_SIDE_PX: u32 = 12_000;
const DECODE_MAX_ALLOC_BYTES: u64 = 512 * 1024 * 1024;

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Checkpoint {
    after: Option<Uuid>,
}

/// Where a workspace's mirrored picture lives. The key is derived from the hash alone, so a
/// picture used by several products (or entries) is stored once.
pub fn object_key(workspace_id: Uuid, sha256: &[u8]) -> ObjectKey {
    ObjectKey::new(workspace_id, &format!("media/{}", hex::encode(sha256)))
        .expect("a hex hash is a valid key segment")
}

/// Where the thumbnail of a mirrored picture lives, also by hash.
pub fn thumbnail_key(workspace_id: Uuid, sha256: &[u8]) -> ObjectKey {
    ObjectKey::new(workspace_id, &format!("thumbs/{}.png", hex::encode(sha256)))
        .expect("a hex hash is a valid key segment")
}

/// The store's media URL: its default store view's (as Magento reported it), or `media/`
/// under the store's base URL. Only http(s), without user info, query or fragment.
fn media_base(store: &Store) -> Result<Url, String> {
    let configured = store
        .store_views
        .0
        .iter()
        .find(|v| v.code == "default")
        .or_else(|| store.store_views.0.first())
        .and_then(|v| v.base_media_url.clone());
    let text =
        configured.unwrap_or_else(|| format!("{}/media/", store.base_url.trim_end_matches('/')));
    let mut url = Url::parse(&text)
        .ok()
        .filter(|url| matches!(url.scheme(), "http" | "https") && url.host().is_some())
        .filter(|url| url.username().is_empty() && url.password().is_none())
        .ok_or_else(|| format!("the store's media URL {text:?} is not an http(s) URL"))?;
    url.set_query(None);
    url.set_fragment(None);
    if !url.path().ends_with('/') {
        let path = format!("{}/", url.path());
        url.set_path(&path);
    }
    Ok(url)
}

/// The URL of a gallery file: Magento's product image directory under the media URL. The
/// file must be a path there (no `..`, `?`, `#`, scheme…), so the URL stays on the store's
/// media host and under its product directory.
fn media_url(base: &Url, file: &str) -> Result<Url, String> {
    let outside = || format!("gallery file {file:?} is not a path under the media directory");
    let path = magento::models::gallery_path(file).ok_or_else(outside)?;
    let directory = base.join("catalog/product/").map_err(|_| outside())?;
    let url = directory.join(path).map_err(|_| outside())?;
    let stays = url.scheme() == base.scheme()
        && url.host() == base.host()
        && url.port_or_known_default() == base.port_or_known_default()
        && url.path().starts_with(directory.path())
        && url.query().is_none()
        && url.fragment().is_none();
    if stays { Ok(url) } else { Err(outside()) }
}

pub async fn run(ctx: &JobContext) -> Result<Outcome, JobError> {
    let db = &ctx.state.db;
    let store_id = ctx
        .job
        .store_id
        .ok_or_else(|| JobError::Fatal("media job without a store".into()))?;
    let store = stores::get(db, store_id)
        .await?
        .ok_or_else(|| JobError::Fatal("the store no longer exists".into()))?;
    let base = media_base(&store).map_err(JobError::Fatal)?;
    let http = ctx
        .state
        .egress
        .client()
        .timeout(Duration::from_secs(30))
        .build()
        .map_err(|e| JobError::Fatal(format!("http client: {e}")))?;
    let total: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM products WHERE store_id = $1 AND removed_at IS NULL",
    )
    .bind(store.id)
    .fetch_one(db)
    .await?;
    ctx.set_total(Some(total));
    for counter in [
        "images",
        "fetched",
        "stored",
        "unchanged",
        "failed",
        "thumbnails",
        "undecodable",
    ] {
        ctx.add(counter, 0);
    }
    let mut checkpoint: Checkpoint = ctx.checkpoint().unwrap_or_default();
    loop {
        let rows: Vec<(Uuid, sqlx::types::Json<Content>)> = sqlx::query_as(
            "SELECT p.id, v.content FROM products p
             JOIN product_live l ON l.product_id = p.id AND l.store_view = 'all'
             JOIN product_versions v ON v.id = l.version_id
             WHERE p.store_id = $1 AND p.removed_at IS NULL AND ($2::uuid IS NULL OR p.id > $2)
             ORDER BY p.id LIMIT $3",
        )
        .bind(store.id)
        .bind(checkpoint.after)
        .bind(BATCH)
        .fetch_all(db)
        .await?;
        if rows.is_empty() {
            break;
        }
        for (product_id, content) in rows {
            if let Some(stop) = ctx.should_stop().await {
                return Ok(Outcome::Stopped(stop));
            }
            mirror_product(ctx, &http, &base, &store, product_id, &content.0).await?;
            checkpoint.after = Some(product_id);
            ctx.advance(1);
            let mut tx = db.begin().await?;
            ctx.save(&mut tx, &checkpoint).await?;
            tx.commit().await?;
        }
    }
    ctx.log(
        "info",
        format!(
            "{} images: {} fetched, {} new pictures stored, {} failed",
            ctx.counter("images"),
            ctx.counter("fetched"),
            ctx.counter("stored"),
            ctx.counter("failed")
        ),
    )
    .await;
    Ok(Outcome::Done)
}

async fn mirror_product(
    ctx: &JobContext,
    http: &egress::HttpClient,
    base: &Url,
    store: &Store,
    product_id: Uuid,
    content: &Content,
) -> Result<(), JobError> {
    let db = &ctx.state.db;
    let known: Vec<(i64, String)> =
        sqlx::query_as("SELECT entry_id, file FROM media WHERE product_id = $1")
            .bind(product_id)
            .fetch_all(db)
            .await?;
    for item in &content.media {
        ctx.add("images", 1);
        if known
            .iter()
            .any(|(id, file)| *id == item.entry_id && *file == item.file)
        {
            ctx.add("unchanged", 1);
            continue;
        }
        let fetched = match media_url(base, &item.file) {
            Ok(url) => fetch(http, &url).await?,
            Err(message) => Err(message),
        };
        let bytes = match fetched {
            Ok(bytes) => bytes,
            Err(message) => {
                ctx.add("failed", 1);
                ctx.log("warn", format!("{}: {message}", item.file)).await;
                continue;
            }
        };
        ctx.add("fetched", 1);
        let sha = Sha256::digest(&bytes).to_vec();
        let key = object_key(store.workspace_id, &sha);
        let storage = &*ctx.state.storage;
        if store_once(storage, &key, &bytes).await? {
            ctx.add("stored", 1);
        }
        let thumb_key = thumbnail_key(store.workspace_id, &sha);
        let (thumbnail_key, thumbnail_error) =
            match ensure_thumbnail(storage, &thumb_key, &bytes).await? {
                Ok(made) => {
                    if made {
                        ctx.add("thumbnails", 1);
                    }
                    (Some(thumb_key.to_string()), None)
                }
                Err(reason) => {
                    ctx.add("undecodable", 1);
                    ctx.log("warn", format!("{}: no thumbnail, {reason}", item.file))
                        .await;
                    (None, Some(reason))
                }
            };
        let size = imagesize::blob_size(&bytes).ok();
        let mime = imagesize::image_type(&bytes)
            .ok()
            .map(|t| format!("{t:?}").to_lowercase());
        sqlx::query(
            "INSERT INTO media (product_id, entry_id, workspace_id, file, sha256, bytes, mime, width, height,
                                object_key, thumbnail_key, thumbnail_error)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
             ON CONFLICT (product_id, entry_id) DO UPDATE SET file = EXCLUDED.file, sha256 = EXCLUDED.sha256,
                bytes = EXCLUDED.bytes, mime = EXCLUDED.mime, width = EXCLUDED.width, height = EXCLUDED.height,
                object_key = EXCLUDED.object_key, thumbnail_key = EXCLUDED.thumbnail_key,
                thumbnail_error = EXCLUDED.thumbnail_error, fetched_at = now()",
        )
        .bind(product_id)
        .bind(item.entry_id)
        .bind(store.workspace_id)
        .bind(&item.file)
        .bind(&sha)
        .bind(bytes.len() as i64)
        .bind(mime)
        .bind(size.map(|s| s.width as i32))
        .bind(size.map(|s| s.height as i32))
        .bind(key.as_str())
        .bind(thumbnail_key)
        .bind(thumbnail_error)
        .execute(db)
        .await?;
    }
    Ok(())
}

fn storing(key: &ObjectKey, err: StorageError) -> JobError {
    JobError::Transient(format!("storing {key}: {err}"))
}

/// Stores `bytes` under `key` unless an object is already there (the key is the content's
/// hash, so it is the same picture). True when it was stored now.
async fn store_once(
    storage: &dyn ObjectStore,
    key: &ObjectKey,
    bytes: &Bytes,
) -> Result<bool, JobError> {
    if storage
        .head(key)
        .await
        .map_err(|e| storing(key, e))?
        .is_some()
    {
        return Ok(false);
    }
    storage
        .put(key, bytes.clone())
        .await
        .map_err(|e| storing(key, e))?;
    Ok(true)
}

/// Makes and stores the thumbnail under `key` unless it is there already. The outer error is
/// storage failing (worth a retry); the inner one why the picture cannot be decoded (final,
/// recorded). `Ok(Ok(true))` when a thumbnail was made now.
async fn ensure_thumbnail(
    storage: &dyn ObjectStore,
    key: &ObjectKey,
    picture: &Bytes,
) -> Result<Result<bool, String>, JobError> {
    if storage
        .head(key)
        .await
        .map_err(|e| storing(key, e))?
        .is_some()
    {
        return Ok(Ok(false));
    }
    let picture = picture.clone();
    // Decoding is CPU work; a decoder panic on hostile input ends only this task.
    let made = tokio::task::spawn_blocking(move || thumbnail(&picture))
        .await
        .unwrap_or_else(|_| Err("the decoder failed on this picture".into()));
    match made {
        Ok(png) => {
            storage
                .put(key, Bytes::from(png))
                .await
                .map_err(|e| storing(key, e))?;
            Ok(Ok(true))
        }
        Err(reason) => Ok(Err(reason)),
    }
}

/// A PNG of at most [`THUMBNAIL_MAX_PX`] on its longer side (pictures already that small
/// keep their size), or why the picture cannot be decoded.
pub fn thumbnail(picture: &[u8]) -> Result<Vec<u8>, String> {
    let mut reader = image::ImageReader::new(Cursor::new(picture))
        .with_guessed_format()
        .map_err(|e| format!("unreadable picture ({e})"))?;
    let mut limits = image::Limits::default();
    limits.max_image_width = Some(DECODE_MAX_SIDE_PX);
    limits.max_image_height = Some(DECODE_MAX_SIDE_PX);
    limits.max_alloc = Some(DECODE_MAX_ALLOC_BYTES);
    reader.limits(limits);
    let decoded = reader
        .decode()
        .map_err(|e| format!("cannot decode the picture ({e})"))?;
    let small = if decoded.width() > THUMBNAIL_MAX_PX || decoded.height() > THUMBNAIL_MAX_PX {
        decoded.thumbnail(THUMBNAIL_MAX_PX, THUMBNAIL_MAX_PX)
    } else {
        decoded
    };
    let mut png = Vec::new();
    small
        .write_to(&mut Cursor::new(&mut png), image::ImageFormat::Png)
        .map_err(|e| format!("cannot encode the thumbnail ({e})"))?;
    Ok(png)
}

/// Downloads one picture. `Err` is this picture's failure; an address the egress policy
/// refuses fails the whole job, since every picture of the store is on the same host.
async fn fetch(http: &egress::HttpClient, url: &Url) -> Result<Result<Bytes, String>, JobError> {
    let response = match http.send(http.get(url.clone())).await {
        Ok(response) => response,
        Err(egress::SendError::Refused(refusal)) => {
            return Err(JobError::Fatal(format!(
                "the store's media URL is refused: {refusal}"
            )));
        }
        Err(e) => return Ok(Err(format!("could not download {url}: {e}"))),
    };
    if !response.status().is_success() {
        // Redirects are not followed: a 3xx is a failure like any other.
        return Ok(Err(format!(
            "{url} answered {}",
            response.error_answer().await
        )));
    }
    let bytes = match response.bytes(PICTURE).await {
        Ok(bytes) => bytes,
        Err(e) => return Ok(Err(format!("{url}: {e}"))),
    };
    if imagesize::image_type(&bytes).is_err() {
        return Ok(Err(format!("{url} is not a picture")));
    }
    Ok(Ok(bytes))
}

/// A product's mirrored picture as recorded.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Mirrored {
    pub entry_id: i64,
    pub file: String,
    pub bytes: i64,
    pub mime: Option<String>,
    pub width: Option<i32>,
    pub height: Option<i32>,
    pub thumbnail_key: Option<String>,
    pub thumbnail_error: Option<String>,
}

/// The mirrored pictures of a product in the workspace, by gallery entry.
pub async fn of_product(
    db: &sqlx::PgPool,
    workspace_id: Uuid,
    product_id: Uuid,
) -> Result<Vec<Mirrored>, sqlx::Error> {
    sqlx::query_as(
        "SELECT entry_id, file, bytes, mime, width, height, thumbnail_key, thumbnail_error
         FROM media WHERE product_id = $1 AND workspace_id = $2 ORDER BY entry_id",
    )
    .bind(product_id)
    .bind(workspace_id)
    .fetch_all(db)
    .await
}

/// Known sizes of a product's mirrored pictures, by gallery entry, for audits.
pub const SIZES_SQL: &str = "(SELECT json_agg(json_build_array(m.entry_id, m.width, m.height))
     FROM media m WHERE m.product_id = p.id AND m.width IS NOT NULL)";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn media_urls_stay_on_the_media_host_under_the_product_directory() {
        let base = Url::parse("https://cdn.shop.example/pub/media/").unwrap();
        assert_eq!(
            media_url(&base, "/r/e/red-tee.jpg").unwrap().as_str(),
            "https://cdn.shop.example/pub/media/catalog/product/r/e/red-tee.jpg"
        );
        for hostile in [
            "/../../../../etc/passwd",
            "/r/e/x.jpg?x=1",
            "/r/e/x.jpg#f",
            "//169.254.169.254/latest/meta-data/",
            "http://10.0.0.1/x.jpg",
            "/%2e%2e/%2e%2e/admin",
            "",
        ] {
            let error = media_url(&base, hostile).unwrap_err();
            assert!(
                error.contains("not a path under the media directory"),
                "{hostile}: {error}"
            );
        }
    }

    #[test]
    fn keys_are_per_workspace_and_content() {
        let ws = Uuid::nil();
        assert_eq!(
            object_key(ws, &[0xab, 0x01]).as_str(),
            "00000000-0000-0000-0000-000000000000/media/ab01"
        );
        assert_eq!(
            thumbnail_key(ws, &[0xab, 0x01]).as_str(),
            "00000000-0000-0000-0000-000000000000/thumbs/ab01.png"
        );
    }

    fn png(width: u32, height: u32) -> Vec<u8> {
        let picture = image::RgbImage::from_fn(width, height, |x, y| {
            image::Rgb([(x % 256) as u8, (y % 256) as u8, 128])
        });
        let mut out = Vec::new();
        image::DynamicImage::ImageRgb8(picture)
            .write_to(&mut Cursor::new(&mut out), image::ImageFormat::Png)
            .unwrap();
        out
    }

    #[test]
    fn thumbnails_fit_the_box_and_keep_the_aspect_ratio() {
        let thumb = thumbnail(&png(1024, 512)).unwrap();
        let decoded = image::load_from_memory(&thumb).unwrap();
        assert_eq!((decoded.width(), decoded.height()), (256, 128));
        // Small pictures are not enlarged.
        let thumb = thumbnail(&png(3, 2)).unwrap();
        let decoded = image::load_from_memory(&thumb).unwrap();
        assert_eq!((decoded.width(), decoded.height()), (3, 2));
    }

    #[test]
    fn hostile_pictures_are_refused_not_panicked_on() {
        let whole = png(64, 64);
        let mut inputs: Vec<Vec<u8>> = vec![
            Vec::new(),
            b"not a picture".to_vec(),
            whole[..whole.len() / 2].to_vec(),
            b"GIF89a\xff\xff\xff\xff".to_vec(),
            b"\xff\xd8\xff\xe0\x00\x10JFIF\x00".to_vec(),
            b"RIFF\x10\x00\x00\x00WEBPVP8 ".to_vec(),
        ];
        // A PNG header claiming a canvas far beyond the decode limits.
        let mut huge = whole.clone();
        huge[16..20].copy_from_slice(&100_000u32.to_be_bytes());
        huge[20..24].copy_from_slice(&100_000u32.to_be_bytes());
        inputs.push(huge);
        for input in inputs {
            assert!(
                thumbnail(&input).is_err(),
                "{:?}",
                &input[..input.len().min(16)]
            );
        }
    }
}
