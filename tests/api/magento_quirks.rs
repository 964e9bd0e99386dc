//! catalogd against the simulator behaving like the Magento versions where their code differs
//! from what a client would expect (each behaviour cites the Magento source that decides it in
//! `connectors/magento-sim`).

use magento_sim::{MagentoSim, SimConfig};
use serde_json::json;

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
