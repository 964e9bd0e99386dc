//! Writing one pulled page: products, new versions where content changed, what is live now.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use serde_json::Value;
use sha2::{Digest, Sha256};
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use super::{Defaults, LiveHashes};
use crate::catalog::content::{Content, DEFAULT_SCOPE};
use crate::connector::{PulledPage, PulledProduct};
use crate::jobs::context::JobContext;
use crate::stores::Store;

#[derive(Debug, Default)]
pub struct Written {
    pub versions: u64,
    pub unchanged: u64,
    pub warnings: u64,
}

pub async fn commit(
    tx: &mut PgConnection,
    ctx: &JobContext,
    store: &Store,
    scope: &str,
    page: &PulledPage,
) -> Result<Written, sqlx::Error> {
    let mut written = Written::default();
    // One row per SKU: a store that lists a SKU twice on a page keeps the last.
    let mut seen = HashSet::new();
    let products: Vec<&PulledProduct> = page
        .products
        .iter()
        .rev()
        .filter(|p| seen.insert(p.sku.as_str()))
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    if products.is_empty() {
        return Ok(written);
    }
    let ids = upsert_products(tx, ctx, store, scope, &products).await?;
    let product_ids: Vec<Uuid> = products
        .iter()
        .filter_map(|p| ids.get(&p.sku).copied())
        .collect();

    let live: LiveHashes = sqlx::query_as::<_, (Uuid, Uuid, Vec<u8>)>(
        "SELECT product_id, version_id, content_hash FROM product_live WHERE store_view = $1 AND product_id = ANY($2)",
    )
    .bind(scope)
    .bind(&product_ids)
    .fetch_all(&mut *tx)
    .await?
    .into_iter()
    .map(|(product, version, hash)| (product, (version, hash)))
    .collect();

    let defaults: Defaults = if scope == DEFAULT_SCOPE {
        HashMap::new()
    } else {
        sqlx::query_as::<_, (Uuid, sqlx::types::Json<Content>)>(
            "SELECT pl.product_id, pv.content FROM product_live pl JOIN product_versions pv ON pv.id = pl.version_id
             WHERE pl.store_view = $1 AND pl.product_id = ANY($2)",
        )
        .bind(DEFAULT_SCOPE)
        .bind(&product_ids)
        .fetch_all(&mut *tx)
        .await?
        .into_iter()
        .map(|(id, content)| (id, content.0))
        .collect()
    };

    let mut new_ids = Vec::new();
    let mut new_products = Vec::new();
    let mut new_contents = Vec::new();
    let mut new_hashes = Vec::new();
    let mut parents: Vec<Option<Uuid>> = Vec::new();
    for product in &products {
        written.warnings += product.warnings.len() as u64;
        let Some(&product_id) = ids.get(&product.sku) else {
            continue;
        };
        let content = if scope == DEFAULT_SCOPE {
            product.content.clone()
        } else {
            let default = defaults.get(&product_id).cloned().unwrap_or_default();
            product.content.overrides_of(&default)
        };
        let hash = content.hash();
        let previous = live.get(&product_id);
        // A store view that overrides nothing and never did inherits everything: nothing to record.
        let inherits_all =
            scope != DEFAULT_SCOPE && previous.is_none() && content == Content::default();
        if inherits_all || previous.is_some_and(|(_, h)| *h == hash) {
            written.unchanged += 1;
            continue;
        }
        new_ids.push(Uuid::now_v7());
        new_products.push(product_id);
        new_contents.push(serde_json::to_value(&content).expect("content serialises"));
        new_hashes.push(hash);
        parents.push(previous.map(|(v, _)| *v));
    }
    if new_ids.is_empty() {
        return Ok(written);
    }
    sqlx::query(
        "INSERT INTO product_versions (id, product_id, workspace_id, store_view, content, content_hash, parent_id, origin, state, job_id)
         SELECT v.id, v.product_id, $1, $2, v.content, v.hash, v.parent, 'pull', 'live', $3
         FROM unnest($4::uuid[], $5::uuid[], $6::jsonb[], $7::bytea[], $8::uuid[]) AS v(id, product_id, content, hash, parent)",
    )
    .bind(store.workspace_id)
    .bind(scope)
    .bind(ctx.job.id)
    .bind(&new_ids)
    .bind(&new_products)
    .bind(&new_contents)
    .bind(&new_hashes)
    .bind(&parents)
    .execute(&mut *tx)
    .await?;
    let superseded: Vec<Uuid> = parents.iter().flatten().copied().collect();
    if !superseded.is_empty() {
        sqlx::query("UPDATE product_versions SET state = 'superseded' WHERE id = ANY($1) AND state = 'live'")
            .bind(&superseded)
            .execute(&mut *tx)
            .await?;
    }
    sqlx::query(
        "INSERT INTO product_live (product_id, store_view, version_id, content_hash)
         SELECT v.product_id, $1, v.id, v.hash FROM unnest($2::uuid[], $3::uuid[], $4::bytea[]) AS v(product_id, id, hash)
         ON CONFLICT (product_id, store_view) DO UPDATE SET version_id = EXCLUDED.version_id, content_hash = EXCLUDED.content_hash",
    )
    .bind(scope)
    .bind(&new_products)
    .bind(&new_ids)
    .bind(&new_hashes)
    .execute(&mut *tx)
    .await?;
    written.versions = new_ids.len() as u64;
    Ok(written)
}

/// Inserts or refreshes the products of a page; returns their ids by SKU. Only the default
/// scope refreshes product data (name, price, attributes…); a store view's page only adds
/// products the default scope has not listed yet.
async fn upsert_products(
    tx: &mut PgConnection,
    ctx: &JobContext,
    store: &Store,
    scope: &str,
    products: &[&PulledProduct],
) -> Result<HashMap<String, Uuid>, sqlx::Error> {
    let new_ids: Vec<Uuid> = products.iter().map(|_| Uuid::now_v7()).collect();
    let skus: Vec<&str> = products.iter().map(|p| p.sku.as_str()).collect();
    let remote_ids: Vec<Option<i64>> = products.iter().map(|p| p.remote_id).collect();
    let type_ids: Vec<Option<&str>> = products.iter().map(|p| p.type_id.as_deref()).collect();
    let names: Vec<Option<&str>> = products
        .iter()
        .map(|p| p.content.fields.get("name").map(String::as_str))
        .collect();
    let attributes: Vec<Value> = products
        .iter()
        .map(|p| Value::Object(p.attributes.clone()))
        .collect();
    let attribute_hashes: Vec<Vec<u8>> = attributes
        .iter()
        .map(|a| Sha256::digest(serde_json::to_vec(a).unwrap_or_default()).to_vec())
        .collect();
    let warnings: Vec<Value> = products
        .iter()
        .map(|p| serde_json::json!(p.warnings))
        .collect();
    let updated: Vec<Option<DateTime<Utc>>> = products.iter().map(|p| p.updated_at).collect();
    let default_scope = scope == DEFAULT_SCOPE;
    if !default_scope {
        // A store view's page only needs the ids; reading them takes no row locks.
        let found: Vec<(Uuid, String)> =
            sqlx::query_as("SELECT id, sku FROM products WHERE store_id = $1 AND sku = ANY($2)")
                .bind(store.id)
                .bind(&skus)
                .fetch_all(&mut *tx)
                .await?;
        if found.len() == products.len() {
            return Ok(found.into_iter().map(|(id, sku)| (sku, id)).collect());
        }
    }
    // Rows are rewritten only when something changed (an unchanged catalog rewrites nothing);
    // the second half of the union finds the ids of the untouched ones.
    let rows: Vec<(Uuid, String)> = sqlx::query_as(
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
            RETURNING p.id, p.sku)
         SELECT id, sku FROM written
         UNION ALL
         SELECT id, sku FROM products WHERE store_id = $2 AND sku = ANY($6) AND sku NOT IN (SELECT sku FROM written)",
    )
    .bind(store.workspace_id)
    .bind(store.id)
    .bind(default_scope)
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
    .fetch_all(&mut *tx)
    .await?;
    if default_scope {
        let ids: Vec<Uuid> = rows.iter().map(|(id, _)| *id).collect();
        sqlx::query(
            "INSERT INTO sync_seen (job_id, product_id) SELECT $1, unnest($2::uuid[]) ON CONFLICT DO NOTHING",
        )
        .bind(ctx.job.id)
        .bind(&ids)
        .execute(&mut *tx)
        .await?;
    }
    Ok(rows.into_iter().map(|(id, sku)| (sku, id)).collect())
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
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE stores SET last_sync_job = $2, last_synced_at = now(),
            sync_watermark = GREATEST(sync_watermark, $3)
         WHERE id = $1",
    )
    .bind(store_id)
    .bind(job_id)
    .bind(max_updated)
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
