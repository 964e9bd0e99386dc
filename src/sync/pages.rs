//! Writing pulled pages: products, new versions where content changed, what is live now.
//!
//! A batch costs three statements whatever its size: one reads or writes the products and
//! reads what is live (for a store view also the default content its overrides are computed
//! against), one writes the new versions, supersedes their parents and moves `product_live`,
//! and the job's checkpoint.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use serde_json::Value;
use sha2::{Digest, Sha256};
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use crate::catalog::content::{Content, DEFAULT_SCOPE, EncodedContent};
use crate::connector::PulledProduct;
use crate::jobs::context::JobContext;
use crate::stores::Store;

#[derive(Debug, Default)]
pub struct Written {
    pub versions: u64,
    pub unchanged: u64,
    pub warnings: u64,
}

/// One pulled product; in the default scope with its content already encoded.
pub struct Item {
    pub product: PulledProduct,
    pub encoded: Option<EncodedContent>,
}

/// What the database holds for a product of the batch.
struct Known {
    id: Uuid,
    /// The live version in the batch's scope and its hash.
    live: Option<(Uuid, Vec<u8>)>,
    /// For a store view: the live default content (JSON), which overrides are computed against.
    default_content: Option<String>,
}

/// A row of the products read: `Known` and the SKU it belongs to.
#[derive(sqlx::FromRow)]
struct KnownRow {
    id: Uuid,
    sku: String,
    live_version: Option<Uuid>,
    live_hash: Option<Vec<u8>>,
    default_content: Option<String>,
}

fn by_sku(rows: Vec<KnownRow>) -> HashMap<String, Known> {
    rows.into_iter()
        .map(|row| {
            let known = Known {
                id: row.id,
                live: row.live_version.zip(row.live_hash),
                default_content: row.default_content,
            };
            (row.sku, known)
        })
        .collect()
}

/// The versions a batch writes, as columns.
#[derive(Default)]
struct NewVersions {
    ids: Vec<Uuid>,
    products: Vec<Uuid>,
    contents: Vec<String>,
    hashes: Vec<Vec<u8>>,
    parents: Vec<Option<Uuid>>,
    /// The content's own url key (a store view's: only when it overrides the default).
    url_keys: Vec<Option<String>>,
}

/// Writes a batch of one scope; `items` hold each SKU once.
pub async fn commit(
    tx: &mut PgConnection,
    ctx: &JobContext,
    store: &Store,
    scope: &str,
    items: Vec<Item>,
) -> Result<Written, sqlx::Error> {
    if items.is_empty() {
        return Ok(Written::default());
    }
    let known = if scope == DEFAULT_SCOPE {
        upsert_products(tx, ctx, store, scope, &items).await?
    } else {
        let mut known = read_known(tx, store, scope, &items).await?;
        if known.len() < items.len() {
            // Listed in a store view but not (yet) in the default scope: the product is added,
            // its default data follows with the next default-scope pull.
            upsert_products(tx, ctx, store, scope, &items).await?;
            known = read_known(tx, store, scope, &items).await?;
        }
        known
    };
    let scope_owned = scope.to_string();
    // Computing overrides, serialising and hashing a batch of products is CPU work; it runs on the
    // blocking pool so the downloads in flight keep being served.
    let (versions, written) =
        tokio::task::spawn_blocking(move || new_versions(&scope_owned, items, &known))
            .await
            .map_err(|e| sqlx::Error::Protocol(format!("version preparation failed: {e}")))?;
    if versions.ids.is_empty() {
        return Ok(written);
    }
    // Data-modifying CTEs see one snapshot and their foreign keys are checked at the end of
    // the statement, so `product_live` can point at the versions inserted beside it.
    sqlx::query(
        "WITH v AS (
            SELECT * FROM unnest($4::uuid[], $5::uuid[], $6::text[], $7::bytea[], $8::uuid[], $9::text[])
                AS v(id, product_id, content, hash, parent, url_key)),
         inserted AS (
            INSERT INTO product_versions (id, product_id, workspace_id, store_view, content, content_hash,
                                          parent_id, origin, state, job_id)
            SELECT v.id, v.product_id, $1, $2, v.content::jsonb, v.hash, v.parent, 'pull', 'live', $3 FROM v),
         superseded AS (
            UPDATE product_versions SET state = 'superseded'
            WHERE id = ANY($8::uuid[]) AND state = 'live')
         INSERT INTO product_live (product_id, store_view, version_id, content_hash, url_key)
         SELECT v.product_id, $2, v.id, v.hash, v.url_key FROM v
         ON CONFLICT (product_id, store_view) DO UPDATE
            SET version_id = EXCLUDED.version_id, content_hash = EXCLUDED.content_hash,
                url_key = EXCLUDED.url_key",
    )
    .bind(store.workspace_id)
    .bind(scope)
    .bind(ctx.job.id)
    .bind(&versions.ids)
    .bind(&versions.products)
    .bind(&versions.contents)
    .bind(&versions.hashes)
    .bind(&versions.parents)
    .bind(&versions.url_keys)
    .execute(&mut *tx)
    .await?;
    Ok(written)
}

/// The versions to write: products whose content (a store view: its overrides of the default)
/// hashes differently from what is live.
fn new_versions(
    scope: &str,
    items: Vec<Item>,
    known: &HashMap<String, Known>,
) -> (NewVersions, Written) {
    let mut written = Written::default();
    let mut versions = NewVersions::default();
    for Item { product, encoded } in items {
        written.warnings += product.warnings.len() as u64;
        let Some(known) = known.get(&product.sku) else {
            continue;
        };
        let (encoded, overrides_nothing, url_key) = if scope == DEFAULT_SCOPE {
            let encoded = encoded.unwrap_or_else(|| product.content.encode());
            (
                encoded,
                false,
                product.content.fields.get("url_key").cloned(),
            )
        } else {
            let default: Content = known
                .default_content
                .as_deref()
                .and_then(|json| serde_json::from_str(json).ok())
                .unwrap_or_default();
            let overrides = product.content.overrides_of(&default);
            let nothing = overrides == Content::default();
            (
                overrides.encode(),
                nothing,
                overrides.fields.get("url_key").cloned(),
            )
        };
        // A store view that overrides nothing and never did inherits everything: nothing to record.
        let inherits_all = overrides_nothing && known.live.is_none();
        if inherits_all || known.live.as_ref().is_some_and(|(_, h)| *h == encoded.hash) {
            written.unchanged += 1;
            continue;
        }
        versions.ids.push(Uuid::now_v7());
        versions.products.push(known.id);
        versions.contents.push(encoded.json);
        versions.hashes.push(encoded.hash);
        versions.parents.push(known.live.as_ref().map(|(v, _)| *v));
        versions.url_keys.push(url_key);
    }
    written.versions = versions.ids.len() as u64;
    (versions, written)
}

/// A store view's products: ids, what is live in the view, and the live default content.
/// Plain reads: no row locks.
///
/// Every lookup here and in the writes is by key, one index probe per product of the batch.
/// Written as joins, the planner preferred hashing all of `product_live` (or, for the
/// superseded parents, all of `product_versions`) on every batch: a cost that grew with the
/// catalog. `LATERAL … LIMIT 1` and `= ANY` keep them probes.
async fn read_known(
    tx: &mut PgConnection,
    store: &Store,
    scope: &str,
    items: &[Item],
) -> Result<HashMap<String, Known>, sqlx::Error> {
    let skus: Vec<&str> = items.iter().map(|i| i.product.sku.as_str()).collect();
    let rows: Vec<KnownRow> = sqlx::query_as(
        "SELECT p.id, p.sku, l.version_id AS live_version, l.content_hash AS live_hash,
                d.content::text AS default_content
         FROM products p
         LEFT JOIN LATERAL (
            SELECT version_id, content_hash FROM product_live
            WHERE product_id = p.id AND store_view = $3 LIMIT 1) l ON true
         LEFT JOIN LATERAL (
            SELECT dv.content FROM product_live dl JOIN product_versions dv ON dv.id = dl.version_id
            WHERE dl.product_id = p.id AND dl.store_view = $4 LIMIT 1) d ON true
         WHERE p.store_id = $1 AND p.sku = ANY($2)",
    )
    .bind(store.id)
    .bind(&skus)
    .bind(scope)
    .bind(DEFAULT_SCOPE)
    .fetch_all(&mut *tx)
    .await?;
    Ok(by_sku(rows))
}

/// Inserts or refreshes the products of a batch, and in the default scope records them as
/// seen by this sync; returns their ids and live versions by SKU. Only the default scope
/// refreshes product data (name, price, attributes…); a store view only adds products the
/// default scope has not listed yet.
async fn upsert_products(
    tx: &mut PgConnection,
    ctx: &JobContext,
    store: &Store,
    scope: &str,
    items: &[Item],
) -> Result<HashMap<String, Known>, sqlx::Error> {
    let products = || items.iter().map(|i| &i.product);
    let new_ids: Vec<Uuid> = products().map(|_| Uuid::now_v7()).collect();
    let skus: Vec<&str> = products().map(|p| p.sku.as_str()).collect();
    let remote_ids: Vec<Option<i64>> = products().map(|p| p.remote_id).collect();
    let type_ids: Vec<Option<&str>> = products().map(|p| p.type_id.as_deref()).collect();
    let names: Vec<Option<&str>> = products()
        .map(|p| p.content.fields.get("name").map(String::as_str))
        .collect();
    let attributes: Vec<Value> = products()
        .map(|p| Value::Object(p.attributes.clone()))
        .collect();
    let attribute_hashes: Vec<Vec<u8>> = attributes
        .iter()
        .map(|a| Sha256::digest(serde_json::to_vec(a).unwrap_or_default()).to_vec())
        .collect();
    let warnings: Vec<Value> = products().map(|p| serde_json::json!(p.warnings)).collect();
    let updated: Vec<Option<DateTime<Utc>>> = products().map(|p| p.updated_at).collect();
    // Rows are rewritten only when something changed (an unchanged catalog rewrites nothing);
    // the second half of the union finds the ids of the untouched ones.
    let rows: Vec<KnownRow> = sqlx::query_as(
        "WITH written AS (
            INSERT INTO products AS p (id, workspace_id, store_id, sku, remote_id, type_id, name, attributes,
                                       attributes_hash, warnings, remote_updated_at, last_seen_job)
            SELECT v.id, $1, $2, v.sku, v.remote_id, v.type_id, v.name, v.attributes, v.attributes_hash,
                   v.warnings, v.updated_at, $4::uuid
            FROM unnest($5::uuid[], $6::text[], $7::bigint[], $8::text[], $9::text[], $10::jsonb[], $11::bytea[],
                        $12::jsonb[], $13::timestamptz[])
                 AS v(id, sku, remote_id, type_id, name, attributes, attributes_hash, warnings, updated_at)
            ON CONFLICT (store_id, sku) DO UPDATE SET
               remote_id = EXCLUDED.remote_id,
               type_id = EXCLUDED.type_id,
               name = EXCLUDED.name,
               attributes = EXCLUDED.attributes,
               attributes_hash = EXCLUDED.attributes_hash,
               warnings = EXCLUDED.warnings,
               remote_updated_at = EXCLUDED.remote_updated_at,
               last_seen_job = EXCLUDED.last_seen_job,
               removed_at = NULL
            WHERE $3 AND (p.removed_at IS NOT NULL
               OR p.attributes_hash IS DISTINCT FROM EXCLUDED.attributes_hash
               OR p.name IS DISTINCT FROM EXCLUDED.name
               OR p.type_id IS DISTINCT FROM EXCLUDED.type_id
               OR p.remote_id IS DISTINCT FROM EXCLUDED.remote_id
               OR p.warnings IS DISTINCT FROM EXCLUDED.warnings
               OR p.remote_updated_at IS DISTINCT FROM EXCLUDED.remote_updated_at)
            RETURNING p.id, p.sku),
         ids AS (
            SELECT id, sku FROM written
            UNION ALL
            SELECT id, sku FROM products WHERE store_id = $2 AND sku = ANY($6) AND sku NOT IN (SELECT sku FROM written)),
         seen AS (
            INSERT INTO sync_seen (job_id, product_id) SELECT $4, id FROM ids WHERE $3
            ON CONFLICT DO NOTHING)
         SELECT ids.id, ids.sku, l.version_id AS live_version, l.content_hash AS live_hash,
                NULL::text AS default_content
         FROM ids LEFT JOIN LATERAL (
            SELECT version_id, content_hash FROM product_live
            WHERE product_id = ids.id AND store_view = $14 LIMIT 1) l ON true",
    )
    .bind(store.workspace_id)
    .bind(store.id)
    .bind(scope == DEFAULT_SCOPE)
    .bind(ctx.job.id)
    .bind(&new_ids)
    .bind(&skus)
    .bind(&remote_ids)
    .bind(&type_ids)
    .bind(&names)
    .bind(&attributes)
    .bind(&attribute_hashes)
    .bind(&warnings)
    .bind(&updated)
    .bind(scope)
    .fetch_all(&mut *tx)
    .await?;
    Ok(by_sku(rows))
}

/// After a full pull of the default scope: products it did not list are marked removed.
pub async fn mark_removed(db: &PgPool, store_id: Uuid, job_id: Uuid) -> Result<u64, sqlx::Error> {
    let done = sqlx::query(
        "UPDATE products p SET removed_at = now()
         WHERE p.store_id = $1 AND p.removed_at IS NULL
           AND NOT EXISTS (SELECT 1 FROM sync_seen s WHERE s.job_id = $2 AND s.product_id = p.id)",
    )
    .bind(store_id)
    .bind(job_id)
    .execute(db)
    .await?;
    Ok(done.rows_affected())
}

/// Records the finished sync on the store and moves the watermark forward (never back).
pub async fn finish(
    db: &PgPool,
    store_id: Uuid,
    job_id: Uuid,
    max_updated: Option<DateTime<Utc>>,
    read_everything: bool,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE stores SET last_sync_job = $2, last_synced_at = now(),
            sync_watermark = GREATEST(sync_watermark, $3),
            last_full_sync_at = CASE WHEN $4 THEN now() ELSE last_full_sync_at END
         WHERE id = $1",
    )
    .bind(store_id)
    .bind(job_id)
    .bind(max_updated)
    .bind(read_everything)
    .execute(db)
    .await?;
    Ok(())
}

/// The sync's record of seen products is needed only while it runs.
pub async fn forget_seen(conn: &mut PgConnection, job_id: Uuid) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM sync_seen WHERE job_id = $1")
        .bind(job_id)
        .execute(conn)
        .await?;
    Ok(())
}
