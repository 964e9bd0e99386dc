//! catalogd against the simulator behaving like the Magento versions where their code differs
//! from what a client would expect (each behaviour cites the Magento source that decides it in
//! `connectors/magento-sim`).

use magento_sim::{MagentoSim, SimConfig};
use serde_json::{Value, json};

use crate::helpers::{Registered, TestApp};

struct Shop {
    app: TestApp,
    sim: MagentoSim,
    owner: Registered,
    store_id: String,
}

async fn shop(config: SimConfig) -> Shop {
    let app = TestApp::spawn().await;
    let sim = MagentoSim::start(config).await.expect("simulator starts");
    let owner = app.register("shop@example.com").await;
    let store_id = app.connect_store(&owner, &sim).await;
    Shop {
        app,
        sim,
        owner,
        store_id,
    }
}

#[tokio::test]
async fn an_alt_text_push_keeps_the_gallery_entry_on_a_2_3_store() {
    let shop = shop(SimConfig {
        products: 20,
        media_file_quirk: true,
        ..SimConfig::default()
    })
    .await;
    shop.app.sync(&shop.owner, &shop.store_id, "full").await;
    let (sku, entry) = shop
        .sim
        .skus()
        .into_iter()
        .find_map(|sku| {
            let entry = shop.sim.product(&sku, None)?["media_gallery_entries"][0].clone();
            entry.is_object().then_some((sku, entry))
        })
        .expect("a product with an image");
    let entry_id = entry["id"].as_i64().unwrap();
    let product_id: uuid::Uuid = sqlx::query_scalar("SELECT id FROM products WHERE sku = $1")
        .bind(&sku)
        .fetch_one(&shop.app.db)
        .await
        .unwrap();
    let token = &shop.owner.access_token;
    let proposal = shop
        .app
        .approved_edit(
            token,
            &product_id.to_string(),
            json!({"store_view": "all", "media": [{"entry_id": entry_id, "label": "Front view"}]}),
        )
        .await;
    let (_, job) = shop
        .app
        .run_job(
            &format!("/stores/{}/push", shop.store_id),
            token,
            json!({"proposals": [proposal]}),
        )
        .await;
    assert_eq!(job["counters"]["pushed"], 1, "{job}");
    let write = shop.sim.writes().pop().expect("one write");
    assert!(
        write.body["entry"].get("file").is_none(),
        "a media update never sends `file`: {}",
        write.body
    );
    let gallery = shop.sim.product(&sku, None).unwrap()["media_gallery_entries"].clone();
    assert!(
        gallery
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["id"] == entry_id && e["label"] == "Front view"),
        "the entry kept its id: {gallery}"
    );
}

#[tokio::test]
async fn a_missing_api_permission_names_the_grant_and_leaves_the_store_connected() {
    let shop = shop(SimConfig {
        products: 5,
        ..SimConfig::default()
    })
    .await;
    let token = &shop.owner.access_token;
    let key = shop.sim.credentials().consumer_key;
    shop.sim
        .deny_resource(&key, magento_sim::acl::PRODUCTS)
        .unwrap();
    let (status, started) = shop
        .app
        .post(
            &format!("/stores/{}/sync", shop.store_id),
            Some(token),
            json!({"mode": "full"}),
        )
        .await;
    assert_eq!(status, 202, "{started}");
    let job = shop
        .app
        .wait_for_job(
            token,
            started["job_id"].as_str().unwrap(),
            std::time::Duration::from_secs(60),
        )
        .await;
    assert_eq!(job["status"], "failed", "{job}");
    let error = job["error"].as_str().unwrap();
    assert!(
        error.contains("must be granted Magento_Catalog::products"),
        "{error}"
    );
    let (_, store) = shop
        .app
        .get(&format!("/stores/{}", shop.store_id), token)
        .await;
    assert_eq!(store["status"], "active", "{store}");
    assert_eq!(
        store["missing_permissions"][0]["resource"], "Magento_Catalog::products",
        "{store}"
    );
    assert_eq!(store["missing_permissions"][0]["step"], "sync");

    // Once granted, the next sync works and the store forgets the refusal.
    shop.sim
        .grant_resource(&key, magento_sim::acl::PRODUCTS)
        .unwrap();
    shop.app.sync(&shop.owner, &shop.store_id, "full").await;
    let (_, store) = shop
        .app
        .get(&format!("/stores/{}", shop.store_id), token)
        .await;
    assert_eq!(store["missing_permissions"], json!([]), "{store}");
    assert_eq!(store["status"], "active");
}

#[tokio::test]
async fn a_rejected_token_still_asks_for_reauthorisation() {
    let shop = shop(SimConfig {
        products: 5,
        ..SimConfig::default()
    })
    .await;
    let token = &shop.owner.access_token;
    let key = shop.sim.credentials().consumer_key;
    // The token is deleted (Reauthorize in Magento); the post to a closed port is lost.
    let _ = shop
        .sim
        .reauthorize(&key, "http://127.0.0.1:9/callback")
        .await;
    let (_, started) = shop
        .app
        .post(
            &format!("/stores/{}/sync", shop.store_id),
            Some(token),
            json!({"mode": "full"}),
        )
        .await;
    let job = shop
        .app
        .wait_for_job(
            token,
            started["job_id"].as_str().unwrap(),
            std::time::Duration::from_secs(60),
        )
        .await;
    assert_eq!(job["status"], "failed", "{job}");
    let (_, store) = shop
        .app
        .get(&format!("/stores/{}", shop.store_id), token)
        .await;
    assert_eq!(store["status"], "needs_reauth", "{store}");
    assert_eq!(store["missing_permissions"], json!([]));
}

#[tokio::test]
async fn a_store_with_a_smaller_maximum_page_size_is_read_in_its_pages() {
    let shop = shop(SimConfig {
        products: 45,
        input_limits: true,
        maximum_page_size: 20,
        ..SimConfig::default()
    })
    .await;
    let job = shop.app.sync(&shop.owner, &shop.store_id, "full").await;
    assert_eq!(job["counters"]["products"], 45 * 4, "{job}");
    let token = &shop.owner.access_token;
    let (_, store) = shop
        .app
        .get(&format!("/stores/{}", shop.store_id), token)
        .await;
    assert_eq!(store["max_page_size"], 20, "{store}");
    let products: i64 = sqlx::query_scalar("SELECT count(*) FROM products")
        .fetch_one(&shop.app.db)
        .await
        .unwrap();
    assert_eq!(products, 45);
    // The next sync asks for pages of 20 from the start: no page is refused.
    let refused_before = shop.sim.stats().total;
    shop.app.sync(&shop.owner, &shop.store_id, "full").await;
    let requests = shop.sim.stats().total - refused_before;
    assert_eq!(
        requests,
        3 * 4 + 1,
        "three pages of 20 in each of the four scopes, and the attribute scopes"
    );
}

/// Every character whose path escape Magento's two signature rules treat differently, plus
/// `#`, a space and non-ASCII.
const AWKWARD_SKU: &str = "A/B+C#D:E@F&G=H$I,J;K L-é";

/// Connects a store of `form`, syncs it and pushes a name and an image label of
/// [`AWKWARD_SKU`] (a read, a product save, a media update, a read-back, all with the SKU in
/// the path); returns the shop.
async fn push_awkward_sku(form: magento_sim::SignatureForm) -> Shop {
    let shop = shop(SimConfig {
        products: 5,
        signature_form: form,
        ..SimConfig::default()
    })
    .await;
    assert!(shop.sim.create_product(AWKWARD_SKU, "Awkward"));
    shop.app.sync(&shop.owner, &shop.store_id, "full").await;
    let product_id: uuid::Uuid = sqlx::query_scalar("SELECT id FROM products WHERE sku = $1")
        .bind(AWKWARD_SKU)
        .fetch_one(&shop.app.db)
        .await
        .unwrap();
    let entry_id = shop.sim.product(AWKWARD_SKU, None).unwrap()["media_gallery_entries"][0]["id"]
        .as_i64()
        .unwrap();
    let token = &shop.owner.access_token;
    let proposal = shop
        .app
        .approved_edit(
            token,
            &product_id.to_string(),
            json!({"store_view": "all", "fields": {"name": "Renamed"},
                "media": [{"entry_id": entry_id, "label": "Side view"}]}),
        )
        .await;
    let (_, job) = shop
        .app
        .run_job(
            &format!("/stores/{}/push", shop.store_id),
            token,
            json!({"proposals": [proposal]}),
        )
        .await;
    assert_eq!(job["counters"]["pushed"], 1, "{job}");
    let product = shop.sim.product(AWKWARD_SKU, None).unwrap();
    assert_eq!(product["name"], "Renamed");
    assert_eq!(product["media_gallery_entries"][0]["label"], "Side view");
    shop
}

async fn signature_form_of(shop: &Shop) -> Value {
    let (_, store) = shop
        .app
        .get(
            &format!("/stores/{}", shop.store_id),
            &shop.owner.access_token,
        )
        .await;
    store["signature_form"].clone()
}

#[tokio::test]
async fn a_store_before_2_4_7_signs_awkward_skus_the_laminas_way() {
    let shop = push_awkward_sku(magento_sim::SignatureForm::Laminas).await;
    assert_eq!(signature_form_of(&shop).await, "laminas");
}

#[tokio::test]
async fn a_2_4_7_store_is_recognised_on_connect_and_takes_awkward_skus() {
    let shop = push_awkward_sku(magento_sim::SignatureForm::Magento247).await;
    assert_eq!(signature_form_of(&shop).await, "2.4.7+");
}

#[tokio::test]
async fn a_store_upgraded_to_2_4_7_is_learned_from_its_first_refusal() {
    let shop = shop(SimConfig {
        products: 5,
        signature_form: magento_sim::SignatureForm::Magento247,
        ..SimConfig::default()
    })
    .await;
    // The store was connected while it ran 2.4.6.
    sqlx::query("UPDATE stores SET signature_form = 'laminas'")
        .execute(&shop.app.db)
        .await
        .unwrap();
    assert!(shop.sim.create_product(AWKWARD_SKU, "Awkward"));
    shop.app.sync(&shop.owner, &shop.store_id, "full").await;
    let product_id: uuid::Uuid = sqlx::query_scalar("SELECT id FROM products WHERE sku = $1")
        .bind(AWKWARD_SKU)
        .fetch_one(&shop.app.db)
        .await
        .unwrap();
    let entry_id = shop.sim.product(AWKWARD_SKU, None).unwrap()["media_gallery_entries"][0]["id"]
        .as_i64()
        .unwrap();
    let token = &shop.owner.access_token;
    // The image's route carries the SKU in its path, signed the old way first.
    let proposal = shop
        .app
        .approved_edit(
            token,
            &product_id.to_string(),
            json!({"store_view": "all", "media": [{"entry_id": entry_id, "label": "Side view"}]}),
        )
        .await;
    let (_, job) = shop
        .app
        .run_job(
            &format!("/stores/{}/push", shop.store_id),
            token,
            json!({"proposals": [proposal]}),
        )
        .await;
    assert_eq!(job["counters"]["pushed"], 1, "{job}");
    assert_eq!(signature_form_of(&shop).await, "2.4.7+");
    let (_, store) = shop
        .app
        .get(&format!("/stores/{}", shop.store_id), token)
        .await;
    assert_eq!(store["status"], "active");
}
