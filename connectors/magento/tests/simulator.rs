//! The client against `magento-sim`, which verifies every signature with its
//! own implementation of Magento's rules.

#[path = "support/test_server.rs"]
mod test_server;

use std::collections::BTreeSet;
use std::num::{NonZeroU32, NonZeroUsize};
use std::time::Duration;

use base64::Engine as _;
use futures::StreamExt;
use magento::models::MediaGalleryEntry;
use magento::oauth::{OAuthProblem, access_token, request_token};
use magento::scope::is_path_safe_sku;
use magento::search::SearchCriteria;
use magento::{
    AccessCredentials, ClientConfig, ConsumerCredentials, MagentoClient, PageStreamOptions,
    Product, SignatureMethod, StoreScope,
};
use magento_sim::{Faults, MagentoSim, SimConfig};
use serde_json::Value;
use test_server::{Reply, TestServer};

const RPS: u32 = 40;

async fn sim(products: usize, configure: impl FnOnce(&mut SimConfig)) -> MagentoSim {
    let mut config = SimConfig {
        products,
        seed: 7,
        store_views: vec!["default".into(), "fr".into(), "de".into()],
        ..SimConfig::default()
    };
    configure(&mut config);
    MagentoSim::start(config).await.expect("simulator starts")
}

fn client_for(sim: &MagentoSim, method: SignatureMethod) -> MagentoClient {
    let credentials = sim.credentials();
    let mut config = ClientConfig::new(
        sim.base_url(),
        AccessCredentials::new(
            credentials.consumer_key,
            credentials.consumer_secret,
            credentials.access_token,
            credentials.access_token_secret,
        ),
    );
    config.signature_method = method;
    config.egress = egress::Policy::allowing_loopback();
    config.requests_per_second = NonZeroU32::new(RPS).expect("non-zero");
    config.max_concurrency = NonZeroUsize::new(4).expect("non-zero");
    config.page_concurrency = NonZeroUsize::new(3).expect("non-zero");
    config.retry.base_delay = Duration::from_millis(20);
    config.retry.max_attempts = 6;
    MagentoClient::new(config).expect("valid config")
}

fn scopes() -> Vec<StoreScope> {
    ["", "default", "fr", "de", "all"]
        .iter()
        .map(|code| StoreScope::parse(code).expect("valid scope"))
        .collect()
}

/// All SKUs the stream yields for `scope`, with every page checked.
async fn all_skus(client: &MagentoClient, scope: &StoreScope, page_size: u32) -> Vec<String> {
    let options = PageStreamOptions {
        page_size: NonZeroU32::new(page_size),
        concurrency: NonZeroUsize::new(3).expect("non-zero"),
    };
    let mut skus = Vec::new();
    let mut pages = client.search_products_with(scope, SearchCriteria::new(), options);
    while let Some(page) = pages.next().await {
        let page = page.unwrap_or_else(|error| panic!("page in {scope}: {error}"));
        for item in page.items {
            assert!(item.is_clean(), "{scope}: {:?}", item.warnings);
            skus.push(item.value.sku.expect("every product has a SKU"));
        }
    }
    skus
}

#[tokio::test]
async fn pages_the_whole_catalog_in_every_scope() {
    let sim = sim(400, |_| {}).await;
    let client = client_for(&sim, SignatureMethod::HmacSha256);
    let expected: BTreeSet<String> = sim.skus().into_iter().collect();
    assert!(
        expected.iter().any(|sku| !is_path_safe_sku(sku)),
        "the seed should give some odd SKUs"
    );
    for scope in scopes() {
        let skus = all_skus(&client, &scope, 60).await;
        assert_eq!(skus.len(), expected.len(), "{scope}: duplicates or gaps");
        assert_eq!(
            skus.into_iter().collect::<BTreeSet<_>>(),
            expected,
            "{scope}"
        );
    }
    let stats = sim.stats();
    assert!(
        stats.max_per_second() <= u64::from(RPS),
        "{} requests in one second",
        stats.max_per_second()
    );
}

#[tokio::test]
async fn a_2_3_store_that_repeats_its_last_page_is_paged_once() {
    let sim = sim(130, |config| config.legacy_last_page = true).await;
    let client = client_for(&sim, SignatureMethod::HmacSha256);
    let skus = all_skus(&client, &StoreScope::All, 50).await;
    assert_eq!(skus.len(), 130);
}

#[tokio::test]
async fn older_stores_sign_with_hmac_sha1() {
    let sim = sim(30, |config| {
        config.signature_methods = vec![SignatureMethod::HmacSha1.into_sim()]
    })
    .await;
    let client = client_for(&sim, SignatureMethod::HmacSha1);
    assert_eq!(
        all_skus(&client, &StoreScope::parse("fr").expect("valid"), 100)
            .await
            .len(),
        30
    );
    // A 2.4.4+ store refuses SHA1 outright.
    let modern = sim_with_default_methods().await;
    let error = client_for(&modern, SignatureMethod::HmacSha1)
        .store_views()
        .await
        .expect_err("SHA1 refused");
    assert!(error.to_string().contains("HMAC-SHA1"), "{error}");
}

async fn sim_with_default_methods() -> MagentoSim {
    sim(5, |_| {}).await
}

trait IntoSim {
    fn into_sim(self) -> magento_sim::SignatureMethod;
}

impl IntoSim for SignatureMethod {
    fn into_sim(self) -> magento_sim::SignatureMethod {
        match self {
            SignatureMethod::HmacSha256 => magento_sim::SignatureMethod::HmacSha256,
            SignatureMethod::HmacSha1 => magento_sim::SignatureMethod::HmacSha1,
        }
    }
}

#[tokio::test]
async fn odd_skus_read_and_write_per_store_scope() {
    let sim = sim(200, |_| {}).await;
    let client = client_for(&sim, SignatureMethod::HmacSha256);
    let skus = sim.skus();
    let odd: Vec<&String> = skus.iter().filter(|sku| !is_path_safe_sku(sku)).collect();
    let plain = skus
        .iter()
        .find(|sku| is_path_safe_sku(sku))
        .expect("a plain SKU");
    let fr = StoreScope::parse("fr").expect("valid");

    for sku in odd.iter().copied().chain([plain]) {
        for scope in scopes() {
            let product = client
                .get_product(&scope, sku)
                .await
                .unwrap_or_else(|e| panic!("{sku} in {scope}: {e}"));
            assert!(product.is_clean(), "{:?}", product.warnings);
            assert_eq!(product.value.sku.as_deref(), Some(sku.as_str()));
        }

        // A French name is an override in `fr` only.
        let default_name = sim.product(sku, None).expect("exists")["name"].clone();
        let french = Product {
            name: Some(format!("Nom français {sku}")),
            ..Product::default()
        };
        let saved = client
            .put_product(&fr, sku, &french)
            .await
            .expect("saved in fr");
        assert_eq!(saved.value.name, french.name);
        assert_eq!(
            sim.product(sku, Some("fr")).expect("exists")["name"],
            Value::from(french.name.clone())
        );
        assert_eq!(
            sim.product(sku, None).expect("exists")["name"],
            default_name
        );
        let read_back = client.get_product(&fr, sku).await.expect("read back");
        assert_eq!(read_back.value.name, french.name);

        // A description at `all` is a default value.
        let mut defaults = Product::default();
        defaults.set_custom_attribute("description", format!("<p>{sku}</p>").into());
        client
            .put_product(&StoreScope::All, sku, &defaults)
            .await
            .expect("saved at all");
        let stored = sim.product(sku, None).expect("exists");
        let description = stored["custom_attributes"]
            .as_array()
            .and_then(|attributes| {
                attributes
                    .iter()
                    .find(|a| a["attribute_code"] == "description")
            })
            .map(|a| a["value"].clone());
        assert_eq!(description, Some(Value::from(format!("<p>{sku}</p>"))));
    }

    // Path-hostile SKUs were saved with POST /V1/products, the others with PUT.
    let writes = sim.writes();
    for write in &writes {
        let sku = write.body["product"]["sku"]
            .as_str()
            .expect("body carries the SKU");
        let expected = if is_path_safe_sku(sku) { "PUT" } else { "POST" };
        assert_eq!(write.method, expected, "{sku}: {}", write.path);
        assert!(matches!(write.store_code.as_deref(), Some("fr" | "all")));
    }
    assert_eq!(writes.len(), (odd.len() + 1) * 2);
}

#[tokio::test]
async fn media_list_create_update_delete() {
    let sim = sim(400, |_| {}).await;
    let client = client_for(&sim, SignatureMethod::HmacSha256);
    let with_media = |sku: &String| {
        sim.product(sku, None)
            .and_then(|p| p["media_gallery_entries"].as_array().map(|m| !m.is_empty()))
            .unwrap_or(false)
    };
    let skus = sim.skus();
    let mut targets: Vec<&String> = skus
        .iter()
        .filter(|sku| with_media(sku) && is_path_safe_sku(sku))
        .take(1)
        .collect();
    // The gallery has no filter alternative: odd SKUs must work in the path.
    targets.extend(
        skus.iter()
            .filter(|sku| with_media(sku) && !is_path_safe_sku(sku))
            .take(2),
    );
    assert!(
        targets.len() >= 2,
        "the seed should give products with images"
    );
    let fr = StoreScope::parse("fr").expect("valid");

    for sku in targets {
        let entries = client
            .list_media(&StoreScope::All, sku)
            .await
            .unwrap_or_else(|e| panic!("{sku}: {e}"));
        assert!(entries.iter().all(|entry| entry.is_clean()));
        let first = entries[0].value.clone();
        let id = first.id.expect("entries have ids");
        let one = client
            .get_media(&StoreScope::All, sku, id)
            .await
            .expect("single entry");
        assert_eq!(one.value.file, first.file);

        // A label written through `fr` is that view's label only.
        let relabel = MediaGalleryEntry {
            label: Some(format!("Photo de {sku}")),
            ..MediaGalleryEntry::default()
        };
        assert!(
            client
                .update_media(&fr, sku, id, &relabel)
                .await
                .expect("updated")
        );
        let french = client.list_media(&fr, sku).await.expect("fr gallery");
        assert_eq!(french[0].value.label, relabel.label);
        let default = client
            .list_media(&StoreScope::All, sku)
            .await
            .expect("default gallery");
        assert_eq!(default[0].value.label, first.label);

        let png = base64::engine::general_purpose::STANDARD.encode(b"\x89PNG\r\n\x1a\n");
        let upload =
            MediaGalleryEntry::new_image(png, "image/png", "new.png", Some("Alt".into()), vec![]);
        let new_id = client
            .create_media(&StoreScope::All, sku, &upload)
            .await
            .expect("created");
        let after = client
            .list_media(&StoreScope::All, sku)
            .await
            .expect("gallery");
        assert_eq!(after.len(), entries.len() + 1);
        assert!(after.iter().any(|entry| entry.value.id == Some(new_id)));

        assert!(
            client
                .delete_media(&StoreScope::All, sku, new_id)
                .await
                .expect("deleted")
        );
        assert_eq!(
            client
                .list_media(&StoreScope::All, sku)
                .await
                .expect("gallery")
                .len(),
            entries.len()
        );
        let gone = client
            .delete_media(&StoreScope::All, sku, new_id)
            .await
            .expect_err("already gone");
        assert!(gone.is_not_found());
    }
}

#[tokio::test]
async fn store_structure() {
    let sim = sim(5, |_| {}).await;
    let client = client_for(&sim, SignatureMethod::HmacSha256);
    let views = client.store_views().await.expect("store views");
    let codes: Vec<String> = views
        .iter()
        .filter_map(|view| view.value.code.clone())
        .collect();
    assert_eq!(codes, vec!["admin", "default", "fr", "de"]);
    assert!(views[0].value.is_admin());

    let websites = client.websites().await.expect("websites");
    assert!(
        websites
            .iter()
            .any(|site| site.value.code.as_deref() == Some("base"))
    );
    assert_eq!(client.store_groups().await.expect("groups").len(), 2);

    let configs = client.store_configs(&["fr", "de"]).await.expect("configs");
    let locales: Vec<Option<String>> = configs
        .iter()
        .map(|config| config.value.locale.clone())
        .collect();
    assert_eq!(locales, vec![Some("fr_FR".into()), Some("de_DE".into())]);
    let media = configs[0]
        .value
        .product_image_url("/a/b/c.png")
        .expect("media URL");
    assert!(
        media.starts_with(&sim.base_url()) && media.ends_with("media/catalog/product/a/b/c.png")
    );
    assert_eq!(client.store_configs(&[]).await.expect("configs").len(), 3);
}

#[tokio::test]
async fn faults_are_absorbed_within_the_limits() {
    let sim = sim(300, |_| {}).await;
    sim.set_faults(Faults {
        error_5xx_rate: 0.2,
        rate_429: 0.05,
        retry_after_secs: Some(1),
        ..Faults::default()
    });
    let client = client_for(&sim, SignatureMethod::HmacSha256);
    let skus = all_skus(&client, &StoreScope::parse("de").expect("valid"), 50).await;
    assert_eq!(skus.len(), 300);
    sim.set_faults(Faults::default());
    sim.fail_next(3);
    client.store_views().await.expect("three 503s are retried");
    assert!(sim.stats().max_per_second() <= u64::from(RPS));
}

#[tokio::test]
async fn malformed_pages_are_errors_not_panics() {
    let sim = sim(50, |_| {}).await;
    sim.set_faults(Faults {
        malformed_rate: 1.0,
        ..Faults::default()
    });
    let client = client_for(&sim, SignatureMethod::HmacSha256);
    let mut pages = client.search_products(&StoreScope::All, SearchCriteria::new());
    let first = pages.next().await.expect("one result");
    assert!(
        matches!(first, Err(magento::MagentoError::InvalidResponse(_))),
        "{first:?}"
    );
    assert!(pages.next().await.is_none());
}

#[tokio::test]
async fn integration_handshake_then_signed_calls() {
    let sim = sim(10, |_| {}).await;
    let callback = TestServer::start(|_, _| Reply::ok("")).await;
    let pending = sim
        .create_integration(
            &format!("{}callback", callback.base_url),
            &format!("{}identity", callback.base_url),
        )
        .await
        .expect("callback reachable");
    let posted = String::from_utf8(callback.received()[0].body.clone()).expect("form body");
    assert!(posted.contains("oauth_verifier="));

    let consumer = ConsumerCredentials::new(
        pending.consumer_key.clone(),
        pending.consumer_secret.clone(),
    );
    let method = SignatureMethod::HmacSha256;
    let request = request_token(
        &egress::Policy::allowing_loopback(),
        &sim.base_url(),
        &consumer,
        method,
    )
    .await
    .expect("request token");
    let access = access_token(
        &egress::Policy::allowing_loopback(),
        &sim.base_url(),
        &consumer,
        &request,
        &pending.verifier,
        method,
    )
    .await
    .expect("access token");
    let reused = access_token(
        &egress::Policy::allowing_loopback(),
        &sim.base_url(),
        &consumer,
        &request,
        &pending.verifier,
        method,
    )
    .await
    .expect_err("one-shot");
    assert_eq!(reused.problem(), Some(&OAuthProblem::TokenAlreadyUsed));

    let mut config = ClientConfig::new(
        sim.base_url(),
        AccessCredentials::from_exchange(consumer.clone(), access),
    );
    config.requests_per_second = NonZeroU32::new(RPS).expect("non-zero");
    config.egress = egress::Policy::allowing_loopback();
    let client = MagentoClient::new(config).expect("valid config");
    assert_eq!(
        client
            .store_views()
            .await
            .expect("signed with the new token")
            .len(),
        4
    );

    // Past the 300 s window the consumer can no longer start an exchange.
    let late = sim
        .reauthorize(
            &pending.consumer_key,
            &format!("{}callback", callback.base_url),
        )
        .await
        .expect("reauthorize posts again");
    sim.advance_clock(Duration::from_secs(301));
    let consumer = ConsumerCredentials::new(late.consumer_key, late.consumer_secret);
    let expired = request_token(
        &egress::Policy::allowing_loopback(),
        &sim.base_url(),
        &consumer,
        method,
    )
    .await
    .expect_err("expired");
    assert_eq!(expired.problem(), Some(&OAuthProblem::ConsumerKeyExpired));
    // The old access token was revoked by reauthorizing.
    assert!(
        client
            .store_views()
            .await
            .expect_err("revoked")
            .is_needs_reauth()
    );
}
