//! The asynchronous bulk API and the admin hook, driven by the real signed client.

use magento::scope::Route;
use magento::{AccessCredentials, ClientConfig, MagentoClient, StoreScope};
use magento_sim::{MagentoSim, QueueMode, SimConfig};
use serde_json::{Value, json};

async fn setup() -> (MagentoSim, MagentoClient) {
    setup_with(QueueMode::Amqp).await
}

async fn setup_with(queue_mode: QueueMode) -> (MagentoSim, MagentoClient) {
    let sim = MagentoSim::start(SimConfig {
        products: 5,
        queue_mode,
        ..SimConfig::default()
    })
    .await
    .unwrap();
    let c = sim.credentials();
    let credentials = AccessCredentials::new(
        c.consumer_key,
        c.consumer_secret,
        c.access_token,
        c.access_token_secret,
    );
    let mut config = ClientConfig::new(sim.base_url(), credentials);
    // The simulator is on loopback.
    config.egress = egress::Policy::allowing_loopback();
    let client = MagentoClient::new(config).unwrap();
    (sim, client)
}

/// What `view` shows for `code` of `sku` (`None`: the default values).
fn shown(sim: &MagentoSim, sku: &str, view: Option<&str>, code: &str) -> Value {
    sim.shown(sku, view, code).unwrap_or(Value::Null)
}

#[tokio::test]
async fn with_amqp_bulk_operations_are_applied_per_store_view_and_reported_by_status() {
    let (sim, client) = setup().await;
    let skus = sim.skus();
    let fr = StoreScope::parse("fr").unwrap();
    let accepted = client
        .submit_bulk(
            &fr,
            reqwest::Method::PUT,
            Route::new().lit("products/bySku"),
            vec![
                json!({"product": {"sku": skus[0], "name": "Nom un"}}),
                json!({"product": {"sku": skus[1], "custom_attributes": [{"attribute_code": "meta_title", "value": "Titre deux"}]}}),
                json!({"product": {"sku": skus[2], "custom_attributes": [{"attribute_code": "url_key", "value": sim.product(&skus[3], Some("fr")).unwrap()["custom_attributes"].as_array().unwrap().iter().find(|a| a["attribute_code"] == "url_key").unwrap()["value"]}]}}),
            ],
        )
        .await
        .unwrap()
        .value;
    let uuid = accepted.bulk_uuid.clone().unwrap();
    assert_eq!(accepted.request_items.as_ref().unwrap().len(), 3);

    let status = client.bulk_status(&uuid).await.unwrap().value;
    let statuses: Vec<i64> = status
        .operations_list
        .unwrap()
        .iter()
        .map(|o| o.status.unwrap())
        .collect();
    // The third reuses another product's url_key in that view: refused, not retriable.
    assert_eq!(statuses, [1, 1, 3]);
    assert_eq!(sim.product(&skus[0], Some("fr")).unwrap()["name"], "Nom un");
    assert_ne!(
        sim.product(&skus[0], None).unwrap()["name"],
        "Nom un",
        "the default value is untouched"
    );
    let writes = sim.writes();
    assert_eq!(writes.len(), 3);
    assert!(
        writes
            .iter()
            .all(|w| w.store_code.as_deref() == Some("fr") && w.path.contains("/async/bulk/V1/"))
    );
}

#[tokio::test]
async fn with_mysqls_queue_bulk_operations_run_in_the_default_store_view() {
    let (sim, client) = setup_with(QueueMode::Mysql).await;
    assert_eq!(SimConfig::default().queue_mode, QueueMode::Mysql);
    let skus = sim.skus();
    let title = |view| shown(&sim, &skus[0], view, "meta_keyword");
    let (all_before, fr_before) = (title(None), title(Some("fr")));
    for (code, value) in [("fr", "mots clés"), ("all", "default keywords")] {
        let accepted = client
            .submit_bulk(
                &StoreScope::parse(code).unwrap(),
                reqwest::Method::PUT,
                Route::new().lit("products/bySku"),
                vec![json!({"product": {"sku": skus[0], "custom_attributes": [
                    {"attribute_code": "meta_keyword", "value": value}]}})],
            )
            .await
            .unwrap()
            .value;
        let uuid = accepted.bulk_uuid.unwrap();
        let status = client.bulk_status(&uuid).await.unwrap().value;
        assert_eq!(
            status.operations_list.unwrap()[0].status,
            Some(1),
            "Magento reports the operation complete"
        );
        // …but it ran in the default store view, not the one the URL names.
        assert_eq!(title(Some("default")), json!(value));
        assert_eq!(title(Some("fr")), fr_before);
        assert_eq!(title(None), all_before);
    }
}

#[tokio::test]
async fn the_admin_hook_changes_and_deletes_products() {
    let (sim, _) = setup().await;
    let sku = sim.skus()[0].clone();
    let http = reqwest::Client::new();
    let url = format!("{}__sim/products/{}", sim.base_url(), sku);
    let before = sim.product(&sku, None).unwrap()["updated_at"].clone();
    sim.advance_clock(std::time::Duration::from_secs(2));
    let res = http
        .post(&url)
        .json(&json!({"store_view": "de", "changes": {"name": "Neu"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(sim.product(&sku, Some("de")).unwrap()["name"], "Neu");
    assert_ne!(sim.product(&sku, None).unwrap()["updated_at"], before);
    let res = http.delete(&url).send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert!(sim.product(&sku, None).is_none());
    let res = http.delete(&url).send().await.unwrap();
    assert_eq!(res.status(), 404);
}

#[tokio::test]
async fn attributes_and_categories_answer_like_magento() {
    let (_sim, client) = setup().await;
    let scope = StoreScope::parse("all").unwrap();
    let tax = client
        .attribute(&scope, "tax_class_id")
        .await
        .unwrap()
        .value;
    assert_eq!(tax.attribute_code.as_deref(), Some("tax_class_id"));
    let options = client
        .attribute_options(&scope, "tax_class_id")
        .await
        .unwrap();
    assert_eq!(options.len(), 2);
    let missing = client
        .attribute(&scope, "no_such_attribute")
        .await
        .unwrap_err();
    assert!(
        missing.to_string().contains("no_such_attribute"),
        "{missing}"
    );
    let tree = client
        .category_tree(&scope, None, None)
        .await
        .unwrap()
        .value;
    assert_eq!(
        tree.children_data.as_ref().unwrap()[0]
            .children_data
            .as_ref()
            .unwrap()
            .len(),
        10
    );
    let tees = client.category(&scope, 3).await.unwrap().value;
    assert_eq!(tees.name.as_deref(), Some("Tees"));
}
