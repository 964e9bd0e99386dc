//! Catalog rows written straight into the database, as a sync would leave them: a store with
//! store views, products, their versions, and which version is live in each scope.

use catalogd::catalog::content::Content;
use rand::RngCore;
use serde_json::{Value, json};
use sqlx::PgPool;
use uuid::Uuid;

pub struct Catalog {
    pub db: PgPool,
    pub workspace_id: Uuid,
    pub store_id: Uuid,
}

fn random_bytes() -> Vec<u8> {
    let mut bytes = vec![0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    bytes
}

/// Content JSON from field pairs.
pub fn fields(pairs: &[(&str, &str)]) -> Value {
    let fields: serde_json::Map<String, Value> = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), json!(v)))
        .collect();
    json!({ "fields": fields })
}

/// A gallery entry as content JSON holds it.
pub fn image(entry_id: i64, label: &str, position: i64) -> Value {
    json!({"entry_id": entry_id, "file": format!("/i/{entry_id}.jpg"), "label": label,
           "position": position, "disabled": false, "roles": ["image"]})
}

impl Catalog {
    /// An active store of `workspace_id` with these store view codes and extra content attributes.
    pub async fn store(
        db: &PgPool,
        workspace_id: Uuid,
        views: &[&str],
        content_attributes: &[&str],
    ) -> Catalog {
        let store_id = Uuid::now_v7();
        let store_views: Vec<Value> = views
            .iter()
            .enumerate()
            .map(|(i, code)| {
                json!({"code": code, "id": i + 1, "name": code.to_uppercase(), "website_id": 1,
                       "locale": null, "base_url": null, "base_media_url": null})
            })
            .collect();
        sqlx::query(
            "INSERT INTO stores (id, workspace_id, name, base_url, status, link_token_hash, link_token,
                                 store_views, content_attributes)
             VALUES ($1, $2, 'Fixture shop', 'https://shop.example.com/', 'active', $3, $4, $5, $6)",
        )
        .bind(store_id)
        .bind(workspace_id)
        .bind(random_bytes())
        .bind(random_bytes())
        .bind(json!(store_views))
        .bind(
            content_attributes
                .iter()
                .map(|s| s.to_string())
                .collect::<Vec<_>>(),
        )
        .execute(db)
        .await
        .expect("fixture store");
        Catalog {
            db: db.clone(),
            workspace_id,
            store_id,
        }
    }

    pub async fn product(&self, sku: &str, name: &str) -> Uuid {
        let id = Uuid::now_v7();
        sqlx::query(
            "INSERT INTO products (id, workspace_id, store_id, sku, name, type_id, remote_id, attributes, remote_updated_at)
             VALUES ($1, $2, $3, $4, $5, 'simple', $6, $7, now())",
        )
        .bind(id)
        .bind(self.workspace_id)
        .bind(self.store_id)
        .bind(sku)
        .bind(name)
        .bind(i64::from(rand::random::<u16>()))
        .bind(json!({"price": 19.9, "status": 1, "visibility": 4}))
        .execute(&self.db)
        .await
        .expect("fixture product");
        id
    }

    pub async fn remove(&self, product_id: Uuid) {
        sqlx::query("UPDATE products SET removed_at = now() WHERE id = $1")
            .bind(product_id)
            .execute(&self.db)
            .await
            .unwrap();
    }

    /// A version of `product_id` in `scope`, in any origin and state; not made live.
    pub async fn version(
        &self,
        product_id: Uuid,
        scope: &str,
        content: Value,
        origin: &str,
        state: &str,
        parent: Option<Uuid>,
    ) -> Uuid {
        let id = Uuid::now_v7();
        let parsed: Content = serde_json::from_value(content.clone()).expect("fixture content");
        sqlx::query(
            "INSERT INTO product_versions (id, product_id, workspace_id, store_view, content, content_hash,
                                           parent_id, origin, state)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(id)
        .bind(product_id)
        .bind(self.workspace_id)
        .bind(scope)
        .bind(&content)
        .bind(parsed.hash())
        .bind(parent)
        .bind(origin)
        .bind(state)
        .execute(&self.db)
        .await
        .expect("fixture version");
        id
    }

    /// What a pull writes: a live version of `scope` whose parent is the previous live one
    /// (now superseded), and `product_live` pointing at it.
    pub async fn pull(&self, product_id: Uuid, scope: &str, content: Value) -> Uuid {
        let previous = self.live_version(product_id, scope).await;
        let id = self
            .version(product_id, scope, content.clone(), "pull", "live", previous)
            .await;
        if let Some(previous) = previous {
            sqlx::query("UPDATE product_versions SET state = 'superseded' WHERE id = $1")
                .bind(previous)
                .execute(&self.db)
                .await
                .unwrap();
        }
        let parsed: Content = serde_json::from_value(content).unwrap();
        sqlx::query(
            "INSERT INTO product_live (product_id, store_view, version_id, content_hash, url_key)
             VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (product_id, store_view) DO UPDATE SET version_id = EXCLUDED.version_id,
                 content_hash = EXCLUDED.content_hash, url_key = EXCLUDED.url_key",
        )
        .bind(product_id)
        .bind(scope)
        .bind(id)
        .bind(parsed.hash())
        .bind(parsed.fields.get("url_key"))
        .execute(&self.db)
        .await
        .unwrap();
        id
    }

    pub async fn live_version(&self, product_id: Uuid, scope: &str) -> Option<Uuid> {
        sqlx::query_scalar(
            "SELECT version_id FROM product_live WHERE product_id = $1 AND store_view = $2",
        )
        .bind(product_id)
        .bind(scope)
        .fetch_optional(&self.db)
        .await
        .unwrap()
    }

    pub async fn state_of(&self, version_id: Uuid) -> String {
        sqlx::query_scalar("SELECT state FROM product_versions WHERE id = $1")
            .bind(version_id)
            .fetch_one(&self.db)
            .await
            .unwrap()
    }
}
