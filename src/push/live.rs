//! What the store shows after a push, recorded as a scope's live version (origin `push`) the
//! way a pull would store it, so the next sync finds nothing new.

use std::collections::HashMap;

use uuid::Uuid;

use crate::catalog::content::{Content, DEFAULT_SCOPE};

/// How `scope` stores what it shows: the default scope as it is, a store view as what differs
/// from `default`.
pub fn stored_form(scope: &str, shown: &Content, default: &Content) -> Content {
    if scope == DEFAULT_SCOPE {
        shown.clone()
    } else {
        shown.overrides_of(default)
    }
}

/// Makes `content` the live version of `product_id` in `scope` unless it already is. `parent`
/// is the version it comes from (the pushed proposal); `None` for a scope the push changed
/// besides, whose new version follows its previous live one.
pub async fn record(
    tx: &mut sqlx::PgConnection,
    product_id: Uuid,
    scope: &str,
    content: &Content,
    parent: Option<Uuid>,
    job_id: Uuid,
) -> Result<(), sqlx::Error> {
    let shown = Shown {
        product_id,
        scope,
        content: content.clone(),
        parent,
    };
    record_many(tx, &[shown], job_id).await
}

/// A scope's new live content for [`record_many`].
pub struct Shown<'a> {
    pub product_id: Uuid,
    pub scope: &'a str,
    pub content: Content,
    /// As [`record`]'s `parent`.
    pub parent: Option<Uuid>,
}

/// [`record`] for many scopes at once, each (product, scope) at most once: four statements
/// whatever their number. A scope whose live version already has this content is left as it
/// is; otherwise a new version (origin `push`) supersedes the live one.
pub async fn record_many(
    tx: &mut sqlx::PgConnection,
    shown: &[Shown<'_>],
    job_id: Uuid,
) -> Result<(), sqlx::Error> {
    if shown.is_empty() {
        return Ok(());
    }
    let products: Vec<Uuid> = shown.iter().map(|s| s.product_id).collect();
    let scopes: Vec<&str> = shown.iter().map(|s| s.scope).collect();
    // Locked in one order, as any other writer of these rows would.
    let live: HashMap<(Uuid, String), (Uuid, Vec<u8>)> =
        sqlx::query_as::<_, (Uuid, String, Uuid, Vec<u8>)>(
            "SELECT l.product_id, l.store_view, l.version_id, l.content_hash
         FROM product_live l
         JOIN UNNEST($1::uuid[], $2::text[]) AS k(product_id, store_view)
             ON k.product_id = l.product_id AND k.store_view = l.store_view
         ORDER BY l.product_id, l.store_view
         FOR UPDATE OF l",
        )
        .bind(&products)
        .bind(&scopes)
        .fetch_all(&mut *tx)
        .await?
        .into_iter()
        .map(|(product, scope, version, hash)| ((product, scope), (version, hash)))
        .collect();
    let mut new = NewVersions::default();
    let mut superseded = Vec::new();
    for s in shown {
        let hash = s.content.hash();
        let current = live.get(&(s.product_id, s.scope.to_string()));
        if current.is_some_and(|(_, h)| *h == hash) {
            continue;
        }
        superseded.extend(current.map(|(id, _)| *id));
        new.ids.push(Uuid::now_v7());
        new.products.push(s.product_id);
        new.scopes.push(s.scope.to_string());
        new.contents
            .push(serde_json::to_value(&s.content).expect("content serialises"));
        new.hashes.push(hash);
        new.parents.push(s.parent.or(current.map(|(id, _)| *id)));
        new.url_keys.push(s.content.fields.get("url_key").cloned());
    }
    if new.ids.is_empty() {
        return Ok(());
    }
    sqlx::query(
        "INSERT INTO product_versions (id, product_id, workspace_id, store_view, content, content_hash,
             parent_id, origin, state, job_id)
         SELECT n.id, n.product_id, p.workspace_id, n.store_view, n.content, n.content_hash,
             n.parent_id, 'push', 'live', $7
         FROM UNNEST($1::uuid[], $2::uuid[], $3::text[], $4::jsonb[], $5::bytea[], $6::uuid[])
             AS n(id, product_id, store_view, content, content_hash, parent_id)
         JOIN products p ON p.id = n.product_id",
    )
    .bind(&new.ids)
    .bind(&new.products)
    .bind(&new.scopes)
    .bind(&new.contents)
    .bind(&new.hashes)
    .bind(&new.parents)
    .bind(job_id)
    .execute(&mut *tx)
    .await?;
    if !superseded.is_empty() {
        sqlx::query(
            "UPDATE product_versions SET state = 'superseded' WHERE id = ANY($1) AND state = 'live'",
        )
        .bind(&superseded)
        .execute(&mut *tx)
        .await?;
    }
    sqlx::query(
        "INSERT INTO product_live (product_id, store_view, version_id, content_hash, url_key)
         SELECT * FROM UNNEST($1::uuid[], $2::text[], $3::uuid[], $4::bytea[], $5::text[])
         ON CONFLICT (product_id, store_view) DO UPDATE SET version_id = EXCLUDED.version_id,
            content_hash = EXCLUDED.content_hash, url_key = EXCLUDED.url_key",
    )
    .bind(&new.products)
    .bind(&new.scopes)
    .bind(&new.ids)
    .bind(&new.hashes)
    .bind(&new.url_keys)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// The columns of the versions [`record_many`] inserts.
#[derive(Default)]
struct NewVersions {
    ids: Vec<Uuid>,
    products: Vec<Uuid>,
    scopes: Vec<String>,
    contents: Vec<serde_json::Value>,
    hashes: Vec<Vec<u8>>,
    parents: Vec<Option<Uuid>>,
    url_keys: Vec<Option<String>>,
}
