//! The `magento-sim` binary as the benchmark starts it.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The running binary; killed when dropped.
struct Sim(std::process::Child);

impl Drop for Sim {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts the binary with `args`; returns it and the base URL from its banner.
fn start(args: &[&str]) -> (Sim, String) {
    let (sim, banner) = start_with_banner(args);
    let base_url = banner["base_url"].as_str().expect("base_url").to_string();
    (sim, base_url.trim_end_matches('/').to_string())
}

/// A signed client with the credentials the banner prints.
fn client_for(banner: &serde_json::Value) -> magento::MagentoClient {
    let text = |key: &str| banner[key].as_str().expect(key).to_string();
    let credentials = magento::AccessCredentials::new(
        text("consumer_key"),
        text("consumer_secret"),
        text("access_token"),
        text("access_token_secret"),
    );
    let mut config = magento::ClientConfig::new(text("base_url"), credentials);
    // The simulator is on loopback.
    config.egress = egress::Policy::allowing_loopback();
    magento::MagentoClient::new(config).unwrap()
}

/// Starts the binary with `args`; returns it and its JSON banner.
fn start_with_banner(args: &[&str]) -> (Sim, serde_json::Value) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_magento-sim"))
        .args(["--products", "2", "--port", "0"])
        .args(args)
        .stdout(Stdio::piped())
        .spawn()
        .expect("magento-sim starts");
    let stdout = child.stdout.take().expect("stdout");
    let sim = Sim(child);
    let mut banner = String::new();
    BufReader::new(stdout).read_line(&mut banner).unwrap();
    let banner: serde_json::Value = serde_json::from_str(&banner).expect("a JSON banner");
    (sim, banner)
}

#[tokio::test]
async fn latency_ms_makes_every_rest_answer_take_that_long() {
    let (_sim, base_url) = start(&["--latency-ms", "400"]);
    let started = Instant::now();
    // Unsigned, so refused: but only after the store's time, like any REST answer.
    let answer = reqwest::get(format!(
        "{base_url}/rest/V1/products?searchCriteria[pageSize]=1"
    ))
    .await
    .unwrap();
    let took = started.elapsed();
    assert_eq!(answer.status(), 401);
    assert!(took >= Duration::from_millis(400), "answered in {took:?}");
}

#[test]
fn a_latency_that_is_not_a_number_is_refused() {
    let out = Command::new(env!("CARGO_BIN_EXE_magento-sim"))
        .args(["--port", "0", "--latency-ms", "soon"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("--latency-ms must be a number"), "{stderr}");
}

#[tokio::test]
async fn media_file_quirk_gives_an_updated_entry_a_new_id() {
    use magento::StoreScope;
    use magento::client::Call;
    use magento::scope::Route;

    let (_sim, banner) = start_with_banner(&["--media-file-quirk", "--products", "10"]);
    let client = client_for(&banner);
    let page = client
        .search_products_page(
            &StoreScope::All,
            &magento::SearchCriteria::new().page_size(10).current_page(1),
        )
        .await
        .unwrap();
    let (sku, entry) = page
        .items
        .iter()
        .find_map(|p| {
            let entry = p.value.media_gallery_entries.as_ref()?.first()?.clone();
            Some((p.value.sku.clone()?, entry))
        })
        .expect("a product with an image");
    let id = entry.id.unwrap();
    let route = || Route::new().lit("products").value(&sku).lit("media");
    let put = Call::new(
        reqwest::Method::PUT,
        StoreScope::All,
        route().value(&id.to_string()),
    )
    .with_body(serde_json::json!({"entry": {"id": id, "file": entry.file, "label": "x"}}));
    client.send(&put).await.unwrap();
    let gallery = client.list_media(&StoreScope::All, &sku).await.unwrap();
    assert!(gallery.iter().all(|e| e.value.id != Some(id)));
    assert!(
        gallery
            .iter()
            .any(|e| e.value.label.as_deref() == Some("x"))
    );
}

#[test]
fn a_queue_mode_other_than_mysql_or_amqp_is_refused() {
    let out = Command::new(env!("CARGO_BIN_EXE_magento-sim"))
        .args(["--port", "0", "--queue-mode", "rabbit"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("--queue-mode is mysql or amqp"), "{stderr}");
}

#[tokio::test]
async fn queue_mode_decides_the_store_view_of_bulk_operations() {
    use magento::StoreScope;
    use magento::client::Call;
    use magento::scope::Route;

    for (mode, lands_in) in [("amqp", "fr"), ("mysql", "default")] {
        let (_sim, banner) = start_with_banner(&["--queue-mode", mode]);
        let client = client_for(&banner);
        let fr = StoreScope::parse("fr").unwrap();
        let sku = client
            .search_products_page(
                &StoreScope::All,
                &magento::SearchCriteria::new().page_size(1).current_page(1),
            )
            .await
            .unwrap()
            .items[0]
            .value
            .sku
            .clone()
            .unwrap();
        client
            .submit_bulk(
                &fr,
                reqwest::Method::PUT,
                Route::new().lit("products/bySku"),
                vec![
                    serde_json::json!({"product": {"sku": sku, "custom_attributes": [
                    {"attribute_code": "meta_keyword", "value": "en masse"}]}}),
                ],
            )
            .await
            .unwrap();
        for view in ["default", "fr"] {
            let read = Call::get(
                StoreScope::parse(view).unwrap(),
                Route::new().lit("products").value(&sku),
            );
            let product = client.send_json(&read).await.unwrap();
            let keyword = product["custom_attributes"]
                .as_array()
                .unwrap()
                .iter()
                .find(|a| a["attribute_code"] == "meta_keyword")
                .map(|a| a["value"].clone());
            assert_eq!(
                keyword.as_ref().and_then(|k| k.as_str()) == Some("en masse"),
                view == lands_in,
                "{mode}: {view} shows {keyword:?}"
            );
        }
    }
}
