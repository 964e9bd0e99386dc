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
