//! A push is done only when the store shows it: each kind of write Magento answers with
//! success but ignores or saves elsewhere ends the proposal `failed`, never `pushed`, and what
//! Magento cannot do in a store view is refused before anything is sent.

use magento_sim::{AttributeScope, QueueMode, SimConfig};
use serde_json::{Value, json};

use crate::review::{Shop, shop_denied, shop_with};

fn log_of(job: &Value) -> Vec<String> {
    job["log"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["message"].as_str().unwrap().to_string())
        .collect()
}

impl Shop {
    async fn propose_as_owner(&self, sku: &str, scope: &str, edit: Value) -> (u16, Value) {
        self.try_propose(&self.owner.access_token, sku, scope, edit)
            .await
    }

    async fn approve_with(&self, id: &str, body: Value) -> (u16, Value) {
        self.app
            .post(
                &format!("/proposals/{id}/approve"),
                Some(&self.owner.access_token),
                body,
            )
            .await
    }

    async fn dry_run(&self, id: &str) -> Value {
        let (status, dry) = self
            .app
            .post(
                &format!("/stores/{}/push", self.store_id),
                Some(&self.owner.access_token),
                json!({"proposals": [id], "dry_run": true}),
            )
            .await;
        assert_eq!(status, 200, "{dry}");
        dry["items"][0].clone()
    }

    async fn set_state(&self, id: &str, state: &str) {
        sqlx::query("UPDATE product_versions SET state = $2 WHERE id = $1::uuid")
            .bind(id)
            .bind(state)
            .execute(&self.app.db)
            .await
            .unwrap();
    }

    /// The proposal's state and meta.
    async fn outcome(&self, id: &str) -> (String, Value) {
        sqlx::query_as("SELECT state, meta FROM product_versions WHERE id = $1::uuid")
            .bind(id)
            .fetch_one(&self.app.db)
            .await
            .unwrap()
    }

    /// A SKU whose French view has its own name.
    fn translated_sku(&self) -> String {
        self.sim
            .skus()
            .into_iter()
            .filter(|s| s.starts_with("CD-"))
            .find(|sku| {
                self.attribute(sku, Some("fr"), "name") != self.attribute(sku, None, "name")
            })
            .expect("a translated product")
    }
}

#[tokio::test]
async fn a_store_views_name_goes_back_to_the_default_only_as_an_explicit_value() {
    let shop = shop_with(SimConfig {
        products: 30,
        ..SimConfig::default()
    })
    .await;
    let sku = shop.translated_sku();
    let default_name = shop.attribute(&sku, None, "name").unwrap();
    let french_name = shop.attribute(&sku, Some("fr"), "name").unwrap();
    // "Use Default Value" for the French name: proposed like any reset…
    let (status, proposal) = shop
        .propose_as_owner(&sku, "fr", json!({"fields": {"name": null}}))
        .await;
    assert_eq!(status, 201, "{proposal}");
    let id = proposal["id"].as_str().unwrap().to_string();
    // …but Magento takes `name` only as a product field, so REST cannot restore inheritance.
    let (status, refused) = shop.approve_with(&id, json!({})).await;
    assert_eq!(status, 422, "{refused}");
    let message = refused["error"]["message"].as_str().unwrap();
    assert!(message.contains("\"Use Default Value\""), "{message}");
    assert!(message.contains("explicit_default_values"), "{message}");

    // Approved before this was checked: the dry run and the push refuse it, sending nothing.
    shop.set_state(&id, "approved").await;
    let dry = shop.dry_run(&id).await;
    assert_eq!(dry["outcome"], "refused", "{dry}");
    assert!(dry["requests"].as_array().unwrap().is_empty());
    let job = shop.push(&shop.owner, json!({"proposals": [id]})).await;
    assert_eq!(job["counters"]["failed"], 1, "{job}");
    assert_eq!(job["counters"]["pushed"], 0, "{job}");
    assert!(shop.sim.writes().is_empty(), "nothing was sent");
    let (state, meta) = shop.outcome(&id).await;
    assert_eq!(state, "failed");
    assert_eq!(meta["push_error_kind"], "refused", "{meta}");

    // The reviewer chooses the explicit default: the view gets the default name as its own.
    shop.set_state(&id, "proposed").await;
    let (status, approved) = shop
        .approve_with(&id, json!({"explicit_default_values": true}))
        .await;
    assert_eq!(status, 200, "{approved}");
    let dry = shop.dry_run(&id).await;
    assert_eq!(dry["outcome"], "write", "{dry}");
    assert!(
        dry["warnings"][0]
            .as_str()
            .unwrap()
            .contains("equal to the default value"),
        "{dry}"
    );
    let body = &dry["requests"][0]["body"]["product"];
    assert_eq!(body["name"], default_name.as_str(), "{body}");
    assert!(body.get("custom_attributes").is_none(), "{body}");
    let job = shop.push(&shop.owner, json!({"proposals": [id]})).await;
    assert_eq!(job["counters"]["pushed"], 1, "{job}");
    assert!(
        log_of(&job)
            .iter()
            .any(|l| l.contains("equal to the default value")),
        "{job}"
    );
    let writes = shop.sim.writes();
    assert_eq!(writes.len(), 1, "{writes:?}");
    assert_eq!(writes[0].store_code.as_deref(), Some("fr"));
    assert_eq!(writes[0].body["product"]["name"], default_name.as_str());
    assert_eq!(shop.attribute(&sku, Some("fr"), "name"), Some(default_name));
    assert_ne!(shop.attribute(&sku, Some("fr"), "name"), Some(french_name));
    assert_eq!(shop.outcome(&id).await.0, "pushed");
}

/// A store whose merchant made `meta_keyword` global.
fn global_keywords() -> SimConfig {
    SimConfig {
        products: 10,
        attribute_scopes: [("meta_keyword".to_string(), AttributeScope::Global)]
            .into_iter()
            .collect(),
        ..SimConfig::default()
    }
}

#[tokio::test]
async fn a_global_attribute_has_no_store_view_value_to_propose() {
    let shop = shop_with(global_keywords()).await;
    let (_, store) = shop
        .app
        .get(
            &format!("/stores/{}", shop.store_id),
            &shop.owner.access_token,
        )
        .await;
    assert_eq!(
        store["attribute_scopes"]["meta_keyword"], "global",
        "{store}"
    );
    assert_eq!(store["attribute_scopes"]["name"], "store", "{store}");
    let sku = shop.translated_sku();
    let (status, refused) = shop
        .propose_as_owner(
            &sku,
            "fr",
            json!({"fields": {"meta_keyword": "mots, clés"}}),
        )
        .await;
    assert_eq!(status, 422, "{refused}");
    assert!(
        refused["error"]["message"]
            .as_str()
            .unwrap()
            .contains("`meta_keyword` is a global attribute"),
        "{refused}"
    );
    let (status, _) = shop
        .propose_as_owner(&sku, "all", json!({"fields": {"meta_keyword": "keywords"}}))
        .await;
    assert_eq!(status, 201, "the default scope holds its one value");
}

#[tokio::test]
async fn a_global_attribute_saved_in_a_view_is_caught_by_the_read_back() {
    // The integration may not read attributes: catalogd cannot know the scope beforehand.
    let shop = shop_denied(
        global_keywords(),
        &["Magento_Catalog::attributes_attributes"],
    )
    .await;
    let sku = shop.translated_sku();
    let default_before = shop.attribute(&sku, None, "meta_keyword");
    let (status, proposal) = shop
        .propose_as_owner(
            &sku,
            "fr",
            json!({"fields": {"meta_keyword": "mots, clés"}}),
        )
        .await;
    assert_eq!(status, 201, "{proposal}");
    let id = proposal["id"].as_str().unwrap().to_string();
    let (status, _) = shop.approve_with(&id, json!({})).await;
    assert_eq!(status, 200);
    let job = shop.push(&shop.owner, json!({"proposals": [id]})).await;
    assert_eq!(job["counters"]["pushed"], 0, "{job}");
    assert_eq!(job["counters"]["changed_elsewhere"], 1, "{job}");
    assert!(
        log_of(&job)
            .iter()
            .any(|l| l.contains("attribute scopes could not be read")),
        "{job}"
    );
    assert!(
        log_of(&job)
            .iter()
            .any(|l| l.contains("changed a scope it was not meant to touch")),
        "{job}"
    );
    // Magento saved the view's value as the one value of every scope.
    assert_ne!(shop.attribute(&sku, None, "meta_keyword"), default_before);
    let (state, meta) = shop.outcome(&id).await;
    assert_eq!(state, "failed");
    assert_eq!(meta["push_error_kind"], "changed_elsewhere", "{meta}");
    assert_eq!(
        meta["changed_elsewhere"],
        json!([{"scope": "all", "field": "meta_keyword", "before": default_before,
                "after": "mots, clés"}])
    );
    // What the store shows now is recorded for both scopes.
    let recorded: Option<String> = sqlx::query_scalar(
        "SELECT v.content -> 'fields' ->> 'meta_keyword' FROM product_live l
         JOIN product_versions v ON v.id = l.version_id
         WHERE l.product_id = $1::uuid AND l.store_view = 'all'",
    )
    .bind(shop.product_id(&sku).await)
    .fetch_one(&shop.app.db)
    .await
    .unwrap();
    assert_eq!(recorded.as_deref(), Some("mots, clés"));
}

#[tokio::test]
async fn a_bulk_write_mysqls_queue_ran_in_the_default_view_is_never_pushed() {
    let shop = shop_with(SimConfig {
        products: 20,
        queue_mode: QueueMode::Mysql,
        ..SimConfig::default()
    })
    .await;
    sqlx::query("UPDATE stores SET push_via_bulk = true")
        .execute(&shop.app.db)
        .await
        .unwrap();
    let skus: Vec<String> = shop
        .sim
        .skus()
        .into_iter()
        .filter(|s| s.starts_with("CD-"))
        .take(2)
        .collect();
    let mut ids = Vec::new();
    for (sku, scope, edit) in [
        (
            &skus[0],
            "all",
            json!({"fields": {"meta_keyword": "default, keywords"}}),
        ),
        (
            &skus[1],
            "fr",
            json!({"fields": {"meta_keyword": "mots, clés"}}),
        ),
    ] {
        let (status, proposal) = shop.propose_as_owner(sku, scope, edit).await;
        assert_eq!(status, 201, "{proposal}");
        let id = proposal["id"].as_str().unwrap().to_string();
        assert_eq!(shop.approve_with(&id, json!({})).await.0, 200);
        ids.push(id);
    }
    let job = shop.push(&shop.owner, json!({"all_approved": true})).await;
    assert_eq!(job["counters"]["pushed"], 0, "{job}");
    assert_eq!(job["counters"]["not_applied"], 2, "{job}");
    assert_eq!(job["counters"]["changed_elsewhere"], 2, "{job}");
    for id in &ids {
        let (state, meta) = shop.outcome(id).await;
        assert_eq!(state, "failed");
        assert_eq!(meta["push_error_kind"], "not_applied", "{meta}");
        assert_eq!(meta["changed_elsewhere"][0]["scope"], "default", "{meta}");
    }
    // Magento ran both saves in the default store view.
    assert_eq!(
        shop.attribute(&skus[0], Some("default"), "meta_keyword")
            .as_deref(),
        Some("default, keywords")
    );
    assert_ne!(
        shop.attribute(&skus[0], None, "meta_keyword").as_deref(),
        Some("default, keywords")
    );
    assert_ne!(
        shop.attribute(&skus[1], Some("fr"), "meta_keyword")
            .as_deref(),
        Some("mots, clés")
    );
}
