//! `in` lists as Magento splits them, and the hooks that tell a test or a benchmark what the
//! store received.

use magento::search::{Filter, SearchCriteria};
use magento::{AccessCredentials, ClientConfig, MagentoClient, Product, StoreScope};
use magento_sim::{MagentoSim, SimConfig};
use serde_json::Value;

async fn start() -> (MagentoSim, MagentoClient) {
    let sim = MagentoSim::start(SimConfig {
        products: 3,
        ..SimConfig::default()
    })
    .await
    .unwrap();
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
    (sim, MagentoClient::new(config).unwrap())
}

async fn create(client: &MagentoClient, sku: &str) {
    let product = Product {
        name: Some(format!("Product {sku}")),
        ..Product::default()
    };
    client
        .put_product(&StoreScope::All, sku, &product)
        .await
        .unwrap();
}

async fn skus_in(client: &MagentoClient, value: &str) -> Vec<String> {
    let criteria = SearchCriteria::new()
        .any_of([Filter::new("sku", magento::ConditionType::In, value)])
        .page_size(50)
        .current_page(1);
    let page = client
        .search_products_page(&StoreScope::All, &criteria)
        .await
        .unwrap();
    let mut skus: Vec<String> = page.items.into_iter().filter_map(|p| p.value.sku).collect();
    skus.sort();
    skus
}

#[tokio::test]
async fn an_in_list_is_split_at_every_comma_and_nothing_is_trimmed() {
    let (_sim, client) = start().await;
    for sku in ["A", "B", "A,B", "C D/E"] {
        create(&client, sku).await;
    }
    assert_eq!(
        skus_in(&client, "A,B").await,
        ["A", "B"],
        "never the SKU A,B"
    );
    assert_eq!(skus_in(&client, "A, B").await, ["A"], "\" B\" is not B");
    assert_eq!(skus_in(&client, "C D/E,B").await, ["B", "C D/E"]);
    // The SKU with a comma is found alone, by an `eq` search.
    let found = client.get_product(&StoreScope::All, "A,B").await.unwrap();
    assert_eq!(found.value.sku.as_deref(), Some("A,B"));
    // The batched read reads what lists can carry.
    let found = client
        .get_products_by_sku(&StoreScope::All, &["A", "C D/E", "missing"])
        .await
        .unwrap();
    assert_eq!(found.len(), 2);
    assert_eq!(found["C D/E"].value.sku.as_deref(), Some("C D/E"));
}

#[tokio::test]
async fn the_hooks_tell_what_the_store_received() {
    let (sim, client) = start().await;
    create(&client, "HOOKED").await;
    let http = reqwest::Client::new();
    let get = |what: &str| {
        let url = format!("{}__sim/{what}", sim.base_url());
        let http = http.clone();
        async move {
            http.get(url)
                .send()
                .await
                .unwrap()
                .json::<Value>()
                .await
                .unwrap()
        }
    };
    let stats = get("stats").await;
    assert_eq!(stats["writes"], 1, "{stats}");
    assert_eq!(stats["write_requests"], 1, "{stats}");
    assert!(stats["requests"].as_u64().unwrap() >= 1, "{stats}");
    let writes = get("writes").await;
    assert_eq!(writes[0]["method"], "PUT", "{writes}");
    assert_eq!(writes[0]["body"]["product"]["sku"], "HOOKED", "{writes}");
    assert_eq!(writes, serde_json::to_value(sim.writes()).unwrap());
}

#[tokio::test]
async fn a_storm_on_some_products_spares_the_others() {
    let (sim, _) = start().await;
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
    config.retry.max_attempts = 1;
    let client = MagentoClient::new(config).unwrap();
    for sku in ["STORMY", "CALM"] {
        create(&client, sku).await;
    }
    sim.fail_skus(["STORMY".to_string()]);
    let failed = client
        .get_product(&StoreScope::All, "STORMY")
        .await
        .unwrap_err();
    assert!(failed.to_string().contains("503"), "{failed}");
    assert!(
        client
            .get_products_by_sku(&StoreScope::All, &["CALM", "STORMY"])
            .await
            .is_err(),
        "a list naming it fails"
    );
    let saved = client
        .put_product(&StoreScope::All, "STORMY", &Product::default())
        .await;
    assert!(saved.is_err());
    assert!(client.get_product(&StoreScope::All, "CALM").await.is_ok());
    sim.fail_skus([]);
    assert!(client.get_product(&StoreScope::All, "STORMY").await.is_ok());
}
