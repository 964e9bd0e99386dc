//! Magento's behaviour where it differs from what a client would expect, selectable where
//! versions differ, driven by the real signed client.

use magento::client::Call;
use magento::scope::Route;
use magento::{AccessCredentials, ClientConfig, MagentoClient, StoreScope};
use magento_sim::{MagentoSim, SimConfig};
use serde_json::{Value, json};

async fn start(config: SimConfig) -> (MagentoSim, MagentoClient) {
    let sim = MagentoSim::start(config).await.unwrap();
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

/// A SKU with at least one image, and that image's gallery entry.
fn with_image(sim: &MagentoSim) -> (String, Value) {
    sim.skus()
        .into_iter()
        .find_map(|sku| {
            let entry = sim.product(&sku, None)?["media_gallery_entries"][0].clone();
            entry.is_object().then_some((sku, entry))
        })
        .expect("a product with an image")
}

/// `PUT /V1/products/{sku}/media/{id}` with the entry as read, `file` included, relabelled.
async fn put_entry_with_file(client: &MagentoClient, sku: &str, entry: &Value) {
    let id = entry["id"].as_i64().unwrap();
    let mut body = entry.clone();
    body["label"] = json!("Relabelled");
    let call = Call::new(
        reqwest::Method::PUT,
        StoreScope::All,
        Route::new()
            .lit("products")
            .value(sku)
            .lit("media")
            .value(&id.to_string()),
    )
    .with_body(json!({ "entry": body }));
    assert_eq!(client.send_json(&call).await.unwrap(), json!(true));
}

#[tokio::test]
async fn a_2_3_media_update_with_file_makes_a_new_entry() {
    let (sim, client) = start(SimConfig {
        products: 10,
        media_file_quirk: true,
        ..SimConfig::default()
    })
    .await;
    let (sku, entry) = with_image(&sim);
    let before = sim.product(&sku, None).unwrap()["media_gallery_entries"]
        .as_array()
        .unwrap()
        .len();
    put_entry_with_file(&client, &sku, &entry).await;
    let gallery = sim.product(&sku, None).unwrap()["media_gallery_entries"].clone();
    let gallery = gallery.as_array().unwrap();
    assert_eq!(gallery.len(), before);
    assert!(
        gallery.iter().all(|e| e["id"] != entry["id"]),
        "the old entry is gone: {gallery:?}"
    );
    let moved = gallery
        .iter()
        .find(|e| e["label"] == "Relabelled")
        .expect("the new entry");
    assert_eq!(moved["file"], entry["file"]);

    // Without `file` the entry keeps its id.
    let id = moved["id"].as_i64().unwrap();
    let relabel = magento::models::MediaGalleryEntry {
        label: Some("Again".into()),
        file: moved["file"].as_str().map(String::from),
        ..Default::default()
    };
    assert!(
        client
            .update_media(&StoreScope::All, &sku, id, &relabel)
            .await
            .unwrap()
    );
    let gallery = sim.product(&sku, None).unwrap()["media_gallery_entries"].clone();
    assert!(
        gallery
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["id"] == id && e["label"] == "Again"),
        "the client's update leaves `file` out: {gallery}"
    );
}

#[tokio::test]
async fn a_2_4_media_update_keeps_the_entry_whatever_it_carries() {
    let (sim, client) = start(SimConfig {
        products: 10,
        ..SimConfig::default()
    })
    .await;
    let (sku, entry) = with_image(&sim);
    put_entry_with_file(&client, &sku, &entry).await;
    let gallery = sim.product(&sku, None).unwrap()["media_gallery_entries"].clone();
    assert!(
        gallery
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["id"] == entry["id"] && e["label"] == "Relabelled"),
        "{gallery}"
    );
}

#[tokio::test]
async fn an_ungranted_resource_is_refused_with_magentos_acl_message() {
    let (sim, client) = start(SimConfig {
        products: 5,
        ..SimConfig::default()
    })
    .await;
    let key = sim.credentials().consumer_key;
    sim.deny_resource(&key, magento_sim::acl::BULK_STATUS)
        .unwrap();
    let error = client
        .bulk_detailed_status("0f6b3b2e-0000-4000-8000-000000000000")
        .await
        .expect_err("refused");
    assert_eq!(error.status(), Some(401));
    let message = error.magento_message().unwrap();
    assert_eq!(
        message.template.as_deref(),
        Some("The consumer isn't authorized to access %resources.")
    );
    assert_eq!(
        error.missing_permission(),
        Some("Magento_AsynchronousOperations::system_magento_logging_bulk_operations")
    );
    // Granted routes go on working with the same credentials.
    let sku = sim.skus().remove(0);
    client.get_product(&StoreScope::All, &sku).await.unwrap();
    sim.grant_resource(&key, magento_sim::acl::BULK_STATUS)
        .unwrap();
    let error = client
        .bulk_detailed_status("0f6b3b2e-0000-4000-8000-000000000000")
        .await
        .expect_err("no such bulk");
    assert_eq!(error.status(), Some(404));
}

#[tokio::test]
async fn a_deleted_token_is_refused_with_the_token_providers_message() {
    let (sim, client) = start(SimConfig {
        products: 5,
        ..SimConfig::default()
    })
    .await;
    let key = sim.credentials().consumer_key;
    // Reauthorize deletes the working token before posting the callback again; the post
    // itself fails here (nothing listens), the token is gone all the same.
    let _ = sim.reauthorize(&key, "http://127.0.0.1:9/callback").await;
    let sku = sim.skus().remove(0);
    let error = client
        .get_product(&StoreScope::All, &sku)
        .await
        .expect_err("refused");
    assert_eq!(
        error.to_string(),
        "Magento refused the call (HTTP 401): Specified token does not exist"
    );
    assert!(error.is_needs_reauth());
    assert_eq!(error.missing_permission(), None);
}

#[tokio::test]
async fn a_page_above_the_stores_maximum_is_refused_naming_the_maximum() {
    let (_sim, client) = start(SimConfig {
        products: 30,
        input_limits: true,
        maximum_page_size: 10,
        ..SimConfig::default()
    })
    .await;
    let criteria = magento::SearchCriteria::new().page_size(11).current_page(1);
    let error = client
        .search_products_page(&StoreScope::All, &criteria)
        .await
        .expect_err("refused");
    assert_eq!(error.status(), Some(400));
    assert_eq!(error.max_page_size(), Some(10));
    let criteria = magento::SearchCriteria::new().page_size(10).current_page(3);
    let page = client
        .search_products_page(&StoreScope::All, &criteria)
        .await
        .unwrap();
    assert_eq!(page.items.len(), 10);
    assert_eq!(page.total_count, Some(30));
}

/// Every character whose path escape the two signature rules treat differently, plus `#`,
/// a space and non-ASCII.
const AWKWARD_SKU: &str = "A/B+C#D:E@F&G=H$I,J;K L-é";

/// Reads (a `sku` search: the client keeps such SKUs out of paths where it can), renames (a
/// `PUT` with the SKU in the path) and relabels the image of [`AWKWARD_SKU`] (a media route,
/// which always carries it) on a store of `store_form` with a client that starts with
/// `client_form`; returns the requests the store received.
async fn awkward_round_trip(
    store_form: magento_sim::SignatureForm,
    client_form: magento::SignatureForm,
) -> u64 {
    let sim = MagentoSim::start(SimConfig {
        products: 3,
        signature_form: store_form,
        ..SimConfig::default()
    })
    .await
    .unwrap();
    assert!(sim.create_product(AWKWARD_SKU, "Awkward"));
    let c = sim.credentials();
    let mut config = ClientConfig::new(
        sim.base_url(),
        AccessCredentials::new(
            c.consumer_key,
            c.consumer_secret,
            c.access_token,
            c.access_token_secret,
        ),
    );
    config.egress = egress::Policy::allowing_loopback();
    config.signature_form = client_form;
    let client = MagentoClient::new(config).unwrap();
    let expected = match store_form {
        magento_sim::SignatureForm::Laminas => magento::SignatureForm::Laminas,
        magento_sim::SignatureForm::Magento247 => magento::SignatureForm::Magento247,
    };

    let read = client
        .get_product(&StoreScope::All, AWKWARD_SKU)
        .await
        .unwrap()
        .value;
    assert_eq!(read.name.as_deref(), Some("Awkward"));
    let save = Call::new(
        reqwest::Method::PUT,
        StoreScope::All,
        Route::new().lit("products").value(AWKWARD_SKU),
    )
    .with_body(json!({"product": {"sku": AWKWARD_SKU, "name": "Renamed"}}));
    client.send_json(&save).await.unwrap();
    let entry_id = sim.product(AWKWARD_SKU, None).unwrap()["media_gallery_entries"][0]["id"]
        .as_i64()
        .unwrap();
    let relabel = magento::models::MediaGalleryEntry {
        label: Some("Side view".into()),
        ..Default::default()
    };
    assert!(
        client
            .update_media(&StoreScope::All, AWKWARD_SKU, entry_id, &relabel)
            .await
            .unwrap()
    );
    let product = sim.product(AWKWARD_SKU, None).unwrap();
    assert_eq!(product["name"], "Renamed");
    assert_eq!(product["media_gallery_entries"][0]["label"], "Side view");
    assert_eq!(
        client.signature_form(),
        expected,
        "learned from the first path with the SKU"
    );
    sim.stats().total
}

#[tokio::test]
async fn each_release_verifies_awkward_skus_with_its_own_signature_rules() {
    use magento::SignatureForm as Client;
    use magento_sim::SignatureForm as Store;
    // Signed the store's way: one request per call.
    assert_eq!(awkward_round_trip(Store::Laminas, Client::Laminas).await, 3);
    assert_eq!(
        awkward_round_trip(Store::Magento247, Client::Magento247).await,
        3
    );
    // Signed the other way: the first call is refused as an invalid signature and sent again
    // the store's way; the client keeps that way for the rest.
    assert_eq!(
        awkward_round_trip(Store::Magento247, Client::Laminas).await,
        4
    );
    assert_eq!(
        awkward_round_trip(Store::Laminas, Client::Magento247).await,
        4
    );
}

/// The SKUs a search for products updated after `since` finds.
async fn updated_since(client: &MagentoClient, since: &str) -> Vec<String> {
    let call = Call::new(
        reqwest::Method::GET,
        StoreScope::All,
        Route::new().lit("products"),
    )
    .with_query(
        magento::query::QueryPairs::new()
            .with(
                "searchCriteria[filterGroups][0][filters][0][field]",
                "updated_at",
            )
            .with("searchCriteria[filterGroups][0][filters][0][value]", since)
            .with(
                "searchCriteria[filterGroups][0][filters][0][conditionType]",
                "gt",
            )
            .with("searchCriteria[pageSize]", "100"),
    );
    let found = client.send_json(&call).await.unwrap();
    found["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["sku"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn the_update_attributes_mass_action_leaves_updated_at_alone() {
    let (sim, client) = start(SimConfig {
        products: 6,
        ..SimConfig::default()
    })
    .await;
    let skus = sim.skus();
    let updated_at = |sku: &str| sim.product(sku, None).unwrap()["updated_at"].clone();
    let before = updated_at(&skus[0]);
    // Magento's times sort as text.
    let since = skus
        .iter()
        .map(|sku| updated_at(sku).as_str().unwrap().to_string())
        .max()
        .unwrap();
    sim.advance_clock(std::time::Duration::from_secs(3600));

    let mass: Vec<&str> = skus[..2].iter().map(String::as_str).collect();
    assert_eq!(
        sim.update_attributes(&mass, None, json!({"meta_title": "Mass"})),
        2
    );
    sim.update_product(&skus[2], None, json!({"meta_title": "Saved"}));

    let shown = sim.product(&skus[0], None).unwrap();
    assert_eq!(shown["updated_at"], before, "{shown}");
    let meta = shown["custom_attributes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["attribute_code"] == "meta_title")
        .unwrap()["value"]
        .clone();
    assert_eq!(meta, "Mass");
    assert_eq!(updated_since(&client, &since).await, vec![skus[2].clone()]);
}

/// `PUT /rest/<scope>/V1/products/<sku>` with `product`.
async fn save(client: &MagentoClient, scope: &str, sku: &str, product: Value) -> Value {
    let call = Call::new(
        reqwest::Method::PUT,
        StoreScope::parse(scope).unwrap(),
        Route::new().lit("products").value(sku),
    )
    .with_body(json!({ "product": product }));
    client.send_json(&call).await.unwrap()
}

/// What `view` shows for `code` of `sku` (`None`: the default values).
fn shown(sim: &MagentoSim, sku: &str, view: Option<&str>, code: &str) -> Value {
    sim.shown(sku, view, code).unwrap_or(Value::Null)
}

#[tokio::test]
async fn interface_attributes_inside_custom_attributes_are_ignored() {
    let (sim, client) = start(SimConfig {
        products: 20,
        ..SimConfig::default()
    })
    .await;
    // A product whose French view has its own name.
    let sku = sim
        .skus()
        .into_iter()
        .find(|sku| shown(&sim, sku, Some("fr"), "name") != shown(&sim, sku, None, "name"))
        .expect("a translated product");
    let french = shown(&sim, &sku, Some("fr"), "name");
    // "Use Default Value" for the name, the way a custom attribute is reset: Magento drops the
    // entry and answers with the product, the French name in place.
    let answer = save(
        &client,
        "fr",
        &sku,
        json!({"sku": sku, "custom_attributes": [
            {"attribute_code": "name", "value": null},
            {"attribute_code": "price", "value": "1.00"},
            {"attribute_code": "meta_title", "value": "Titre"}]}),
    )
    .await;
    assert_eq!(answer["name"], french);
    assert_eq!(shown(&sim, &sku, Some("fr"), "name"), french);
    assert_ne!(sim.product(&sku, None).unwrap()["price"], json!(1.0));
    assert_eq!(
        shown(&sim, &sku, Some("fr"), "meta_title"),
        "Titre",
        "the custom attribute beside it is saved"
    );
    // As the product's own field, an empty name fails the required check.
    let call = Call::new(
        reqwest::Method::PUT,
        StoreScope::parse("fr").unwrap(),
        Route::new().lit("products").value(&sku),
    )
    .with_body(json!({"product": {"sku": sku, "name": null}}));
    let error = client.send_json(&call).await.expect_err("refused");
    assert_eq!(error.status(), Some(400));
    assert_eq!(
        error.magento_message().unwrap().template.as_deref(),
        Some("The \"%1\" attribute value is empty. Set the attribute and try again.")
    );
    assert_eq!(shown(&sim, &sku, Some("fr"), "name"), french);
}

#[tokio::test]
async fn attribute_scopes_are_served_and_decide_where_a_store_view_save_lands() {
    let (sim, client) = start(SimConfig {
        products: 5,
        attribute_scopes: [(
            "meta_keyword".to_string(),
            magento_sim::AttributeScope::Global,
        )]
        .into_iter()
        .collect(),
        ..SimConfig::default()
    })
    .await;
    let all = StoreScope::All;
    for (code, scope) in [
        ("name", "store"),
        ("meta_keyword", "global"),
        ("tax_class_id", "website"),
        ("category_ids", "global"),
    ] {
        let attribute = client.attribute(&all, code).await.unwrap().value;
        assert_eq!(attribute.scope.as_deref(), Some(scope), "{code}");
    }
    let sku = sim.skus().remove(0);
    // A store-scoped value stays in its view.
    save(
        &client,
        "fr",
        &sku,
        json!({"sku": sku, "custom_attributes": [
        {"attribute_code": "meta_title", "value": "Titre"}]}),
    )
    .await;
    assert_eq!(shown(&sim, &sku, Some("fr"), "meta_title"), "Titre");
    assert_ne!(shown(&sim, &sku, None, "meta_title"), "Titre");
    assert_ne!(shown(&sim, &sku, Some("de"), "meta_title"), "Titre");
    // A global one saved in a view is the one value of every scope.
    save(
        &client,
        "fr",
        &sku,
        json!({"sku": sku, "custom_attributes": [
        {"attribute_code": "meta_keyword", "value": "mots"}]}),
    )
    .await;
    for view in [None, Some("default"), Some("fr"), Some("de")] {
        assert_eq!(shown(&sim, &sku, view, "meta_keyword"), "mots", "{view:?}");
    }
    // A website one changes every view of the website, not the default values.
    save(
        &client,
        "fr",
        &sku,
        json!({"sku": sku, "custom_attributes": [
        {"attribute_code": "tax_class_id", "value": "0"}]}),
    )
    .await;
    for view in ["default", "fr", "de"] {
        assert_eq!(shown(&sim, &sku, Some(view), "tax_class_id"), "0", "{view}");
    }
    assert_eq!(shown(&sim, &sku, None, "tax_class_id"), "2");
}
