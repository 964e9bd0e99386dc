//! What the store shows after a push, recorded as a scope's live version (origin `push`) the
//! way a pull would store it, so the next sync finds nothing new.

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
    let hash = content.hash();
    let live: Option<(Uuid, Vec<u8>)> = sqlx::query_as(
        "SELECT version_id, content_hash FROM product_live WHERE product_id = $1 AND store_view = $2 FOR UPDATE",
    )
    .bind(product_id)
    .bind(scope)
    .fetch_optional(&mut *tx)
    .await?;
    if live.as_ref().is_some_and(|(_, h)| *h == hash) {
        return Ok(());
    }
    let parent = parent.or(live.as_ref().map(|(id, _)| *id));
    let id = Uuid::now_v7();
    sqlx::query(
        "INSERT INTO product_versions (id, product_id, workspace_id, store_view, content, content_hash,
             parent_id, origin, state, job_id)
         SELECT $1, $2, workspace_id, $3, $4, $5, $6, 'push', 'live', $7 FROM products WHERE id = $2",
    )
    .bind(id)
    .bind(product_id)
    .bind(scope)
    .bind(sqlx::types::Json(content))
    .bind(&hash)
    .bind(parent)
    .bind(job_id)
    .execute(&mut *tx)
    .await?;
    if let Some((previous, _)) = live {
        sqlx::query(
            "UPDATE product_versions SET state = 'superseded' WHERE id = $1 AND state = 'live'",
        )
        .bind(previous)
        .execute(&mut *tx)
        .await?;
    }
    sqlx::query(
        "INSERT INTO product_live (product_id, store_view, version_id, content_hash, url_key) VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (product_id, store_view) DO UPDATE SET version_id = EXCLUDED.version_id,
            content_hash = EXCLUDED.content_hash, url_key = EXCLUDED.url_key",
    )
    .bind(product_id)
    .bind(scope)
    .bind(id)
    .bind(&hash)
    .bind(content.fields.get("url_key"))
    .execute(&mut *tx)
    .await?;
    Ok(())
}
