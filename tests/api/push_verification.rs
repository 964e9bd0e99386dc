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

impl Shop {
    async fn store(&self) -> Value {
        self.app
            .get(
                &format!("/stores/{}", self.store_id),
                &self.owner.access_token,
            )
            .await
            .1
    }

    /// Approved proposals of `edits` (SKU, scope, edit), in that order.
    async fn approved(&self, edits: &[(&str, &str, Value)]) -> Vec<String> {
        let mut ids = Vec::new();
        for (sku, scope, edit) in edits {
            let (status, proposal) = self.propose_as_owner(sku, scope, edit.clone()).await;
            assert_eq!(status, 201, "{proposal}");
            let id = proposal["id"].as_str().unwrap().to_string();
            assert_eq!(self.approve_with(&id, json!({})).await.0, 200);
            ids.push(id);
        }
        ids
    }

    fn catalog_skus(&self, n: usize) -> Vec<String> {
        self.sim
            .skus()
            .into_iter()
            .filter(|s| s.starts_with("CD-"))
            .take(n)
            .collect()
    }
}

/// Magento's MySQL queue runs every bulk operation in the default store view: the canary shows
/// it, is taken out of the default view again, and the push goes on product by product, so the
/// French values end up in `fr`, the default values in `all`, and the default store view keeps
/// inheriting; no proposal is reported pushed for the misplaced write.
#[tokio::test]
async fn with_mysqls_queue_a_bulk_push_lands_right_product_by_product() {
    let shop = shop_with(SimConfig {
        products: 20,
        queue_mode: QueueMode::Mysql,
        ..SimConfig::default()
    })
    .await;
    let store = shop.set_push_via_bulk().await;
    assert_eq!(store["bulk_keeps_scope"], Value::Null, "{store}");
    let skus = shop.catalog_skus(3);
    let edits = [
        (
            skus[0].as_str(),
            "all",
            json!({"fields": {"meta_keyword": "default, keywords", "name": "Default name"}}),
        ),
        (
            skus[1].as_str(),
            "all",
            json!({"fields": {"meta_keyword": "more, keywords", "name": "Another default name"}}),
        ),
        (
            skus[0].as_str(),
            "fr",
            json!({"fields": {"short_description": "Un t-shirt doux", "meta_title": "Titre"}}),
        ),
        (
            skus[2].as_str(),
            "fr",
            json!({"fields": {"name": "Nom français", "meta_keyword": "mots"}}),
        ),
    ];
    let ids = shop.approved(&edits).await;
    let job = shop.push(&shop.owner, json!({"all_approved": true})).await;
    assert_eq!(job["counters"]["pushed"], 4, "{job}");
    assert_eq!(job["counters"]["canaries"], 1, "{job}");
    assert_eq!(job["counters"]["bulks"], 1, "{job}");
    assert_eq!(job["counters"]["not_applied"], 0, "{job}");
    for id in &ids {
        assert_eq!(shop.state_of(id).await, "pushed");
    }
    let log = log_of(&job);
    assert!(
        log.iter()
            .any(|l| l.contains("in the default store view default")),
        "{log:?}"
    );
    // The canary's name stays the default view's own value (REST cannot empty it), equal to
    // the new default.
    assert!(
        log.iter()
            .any(|l| l.contains("keeps `name` as its own value")),
        "{log:?}"
    );
    // One bulk (the canary), then every save at its scope's own URL.
    let writes = shop.sim.writes();
    let bulk: Vec<_> = writes
        .iter()
        .filter(|w| w.path.contains("/async/bulk/"))
        .collect();
    assert_eq!(bulk.len(), 1, "{writes:?}");
    // The store ends as meant.
    for (sku, scope, edit) in &edits {
        let view = (*scope != "all").then_some(*scope);
        for (field, value) in edit["fields"].as_object().unwrap() {
            assert_eq!(
                shop.attribute(sku, view, field).as_deref(),
                value.as_str(),
                "{sku} {scope} {field}"
            );
            // The default store view shows the default, as before.
            assert_eq!(
                shop.attribute(sku, Some("default"), field),
                shop.attribute(sku, None, field),
                "{sku} default view {field}"
            );
        }
    }
    let store = shop.store().await;
    assert_eq!(store["bulk_keeps_scope"], false, "{store}");
    let detail = store["bulk_scope_detail"].as_str().unwrap();
    assert!(detail.contains("MySQL queue"), "{detail}");
    assert!(detail.contains("RabbitMQ"), "{detail}");

    // From now on pushes to this store go product by product, without a canary.
    let more = shop
        .approved(&[(
            skus[1].as_str(),
            "fr",
            json!({"fields": {"meta_keyword": "encore"}}),
        )])
        .await;
    let job = shop.push(&shop.owner, json!({"proposals": more})).await;
    assert_eq!(job["counters"]["pushed"], 1, "{job}");
    assert!(job["counters"]["bulks"].is_null(), "{job}");
    assert!(
        log_of(&job)
            .iter()
            .any(|l| l.contains("product by product, not in bulk")),
        "{job}"
    );
    // Switching bulk on again (say, after moving Magento's queue to RabbitMQ) checks anew.
    let store = shop.set_push_via_bulk().await;
    assert_eq!(store["bulk_keeps_scope"], Value::Null, "{store}");
}

/// With RabbitMQ each operation keeps its store view: the canaries prove it, the rest goes in
/// bulk, and a store known to keep scopes checks only each push's first save.
#[tokio::test]
async fn with_an_amqp_queue_bulk_is_used_once_the_canaries_landed() {
    let shop = shop_with(SimConfig {
        products: 20,
        queue_mode: QueueMode::Amqp,
        ..SimConfig::default()
    })
    .await;
    shop.set_push_via_bulk().await;
    let skus = shop.catalog_skus(4);
    let mut edits = Vec::new();
    for sku in &skus {
        edits.push((
            sku.as_str(),
            "all",
            json!({"fields": {"meta_keyword": "bulk, keywords"}}),
        ));
        edits.push((
            sku.as_str(),
            "fr",
            json!({"fields": {"meta_title": "En masse"}}),
        ));
    }
    let ids = shop.approved(&edits).await;
    let job = shop.push(&shop.owner, json!({"all_approved": true})).await;
    assert_eq!(job["counters"]["pushed"], 8, "{job}");
    assert_eq!(job["counters"]["canaries"], 2, "one per scope: {job}");
    assert_eq!(job["counters"]["bulks"], 4, "{job}");
    for id in &ids {
        assert_eq!(shop.state_of(id).await, "pushed");
    }
    assert!(
        shop.sim
            .writes()
            .iter()
            .all(|w| w.path.contains("/async/bulk/V1/products/bySku"))
    );
    for sku in &skus {
        assert_eq!(
            shop.attribute(sku, Some("fr"), "meta_title").as_deref(),
            Some("En masse")
        );
        assert_eq!(
            shop.attribute(sku, Some("default"), "meta_keyword")
                .as_deref(),
            Some("bulk, keywords")
        );
    }
    let store = shop.store().await;
    assert_eq!(store["bulk_keeps_scope"], true, "{store}");

    let more: Vec<(&str, &str, Value)> = skus
        .iter()
        .map(|sku| {
            (
                sku.as_str(),
                "fr",
                json!({"fields": {"short_description": "Encore en masse"}}),
            )
        })
        .collect();
    shop.approved(&more).await;
    let job = shop.push(&shop.owner, json!({"all_approved": true})).await;
    assert_eq!(job["counters"]["pushed"], 4, "{job}");
    assert_eq!(
        job["counters"]["canaries"], 1,
        "the push's first save: {job}"
    );
    assert_eq!(job["counters"]["bulks"], 2, "{job}");
}

#[tokio::test]
async fn a_website_scoped_attribute_is_announced_for_every_view_of_the_website() {
    let shop = shop_with(SimConfig {
        products: 10,
        ..SimConfig::default()
    })
    .await;
    sqlx::query("UPDATE stores SET content_attributes = '{tax_class_id}'")
        .execute(&shop.app.db)
        .await
        .unwrap();
    shop.app.sync(&shop.owner, &shop.store_id, "full").await;
    assert_eq!(
        shop.store().await["attribute_scopes"]["tax_class_id"],
        "website"
    );
    let sku = shop.translated_sku();
    let ids = shop
        .approved(&[(sku.as_str(), "fr", json!({"fields": {"tax_class_id": "0"}}))])
        .await;
    let dry = shop.dry_run(&ids[0]).await;
    assert_eq!(dry["outcome"], "write", "{dry}");
    let warning = dry["warnings"][0].as_str().unwrap();
    assert!(
        warning.contains("every store view of the website (default, fr, de)"),
        "{warning}"
    );
    let job = shop.push(&shop.owner, json!({"proposals": ids})).await;
    assert_eq!(job["counters"]["pushed"], 1, "{job}");
    assert!(
        log_of(&job).iter().any(|l| l.contains("website-scoped")),
        "{job}"
    );
    for view in ["default", "fr", "de"] {
        assert_eq!(
            shop.attribute(&sku, Some(view), "tax_class_id").as_deref(),
            Some("0"),
            "{view}"
        );
    }
    assert_eq!(
        shop.attribute(&sku, None, "tax_class_id").as_deref(),
        Some("2")
    );
}
