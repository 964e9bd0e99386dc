//! Media mirroring: each product's images copied from the store's media URL into the local
//! object store (`<data dir>/objects/<workspace>/media/<sha256>`), stored once per content
//! hash, with their size, so audits can check dimensions and pushes can match pictures to
//! gallery entries by hash.
//!
//! A job walks the store's products in id order (the checkpoint is the last one done); an
//! entry already mirrored with the same file is not fetched again.

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::catalog::content::Content;
use crate::jobs::context::{JobContext, JobError, Outcome};
use crate::stores::{self, Store};

/// Pictures larger than this are not mirrored (and reported).
const MAX_BYTES: usize = 20 * 1024 * 1024;
const BATCH: i64 = 100;

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Checkpoint {
    after: Option<Uuid>,
}

/// Where a workspace's mirrored picture lives. The key is derived from the hash alone, so a
/// picture used by several products (or entries) is stored once.
pub fn object_key(workspace_id: Uuid, sha256: &[u8]) -> String {
    format!("{workspace_id}/media/{}", hex::encode(sha256))
}

fn object_path(data_dir: &std::path::Path, key: &str) -> PathBuf {
    data_dir.join("objects").join(key)
}

/// The URL of a gallery file: the store's media URL (from its default store view) plus
/// Magento's product image directory.
fn media_url(store: &Store, file: &str) -> String {
    let base = store
        .store_views
        .0
        .iter()
        .find(|v| v.code == "default")
        .or_else(|| store.store_views.0.first())
        .and_then(|v| v.base_media_url.clone())
        .unwrap_or_else(|| format!("{}/media/", store.base_url.trim_end_matches('/')));
    format!(
        "{}/catalog/product/{}",
        base.trim_end_matches('/'),
        file.trim_start_matches('/')
    )
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
    let http = reqwest::Client::builder()
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
    for counter in ["images", "fetched", "stored", "unchanged", "failed"] {
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
            mirror_product(ctx, &http, &store, product_id, &content.0).await?;
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
    http: &reqwest::Client,
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
        let url = media_url(store, &item.file);
        let bytes = match fetch(http, &url).await {
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
        let path = object_path(&ctx.state.settings.data_dir, &key);
        if !path.exists() {
            write_atomically(&path, &bytes)
                .await
                .map_err(|e| JobError::Transient(format!("storing {key}: {e}")))?;
            ctx.add("stored", 1);
        }
        let size = imagesize::blob_size(&bytes).ok();
        let mime = imagesize::image_type(&bytes)
            .ok()
            .map(|t| format!("{t:?}").to_lowercase());
        sqlx::query(
            "INSERT INTO media (product_id, entry_id, workspace_id, file, sha256, bytes, mime, width, height, object_key)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
             ON CONFLICT (product_id, entry_id) DO UPDATE SET file = EXCLUDED.file, sha256 = EXCLUDED.sha256,
                bytes = EXCLUDED.bytes, mime = EXCLUDED.mime, width = EXCLUDED.width, height = EXCLUDED.height,
                object_key = EXCLUDED.object_key, fetched_at = now()",
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
        .bind(&key)
        .execute(db)
        .await?;
    }
    Ok(())
}

async fn fetch(http: &reqwest::Client, url: &str) -> Result<Vec<u8>, String> {
    let response = http
        .get(url)
        .send()
        .await
        .map_err(|e| format!("could not download {url}: {e}"))?;
    if !response.status().is_success() {
        return Err(format!("{url} answered {}", response.status()));
    }
    if response
        .content_length()
        .is_some_and(|n| n as usize > MAX_BYTES)
    {
        return Err(format!("{url} is larger than {MAX_BYTES} bytes"));
    }
    let bytes = response
        .bytes()
        .await
        .map_err(|e| format!("reading {url}: {e}"))?;
    if bytes.len() > MAX_BYTES {
        return Err(format!("{url} is larger than {MAX_BYTES} bytes"));
    }
    if imagesize::image_type(&bytes).is_err() {
        return Err(format!("{url} is not a picture"));
    }
    Ok(bytes.to_vec())
}

/// Writes to a temporary name and renames, so a crash never leaves half a picture under its
/// hash.
async fn write_atomically(path: &std::path::Path, bytes: &[u8]) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        tokio::fs::create_dir_all(dir).await?;
    }
    let tmp = path.with_extension(format!("tmp-{}", Uuid::new_v4().simple()));
    tokio::fs::write(&tmp, bytes).await?;
    tokio::fs::rename(&tmp, path).await
}

/// Known sizes of a product's mirrored pictures, by gallery entry, for audits.
pub const SIZES_SQL: &str = "(SELECT json_agg(json_build_array(m.entry_id, m.width, m.height))
     FROM media m WHERE m.product_id = p.id AND m.width IS NOT NULL)";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_per_workspace_and_content() {
        let ws = Uuid::nil();
        assert_eq!(
            object_key(ws, &[0xab, 0x01]),
            "00000000-0000-0000-0000-000000000000/media/ab01"
        );
    }
}
