//! Async and bulk calls against a scripted server shaped like Magento's
//! `WebapiAsync` answers (the simulator has no async endpoints).

#[path = "support/test_server.rs"]
mod test_server;

use std::num::NonZeroU32;
use std::time::Duration;

use magento::models::OperationStatus;
use magento::scope::Route;
use magento::{AccessCredentials, ClientConfig, MagentoClient, MagentoError, Product, StoreScope};
use reqwest::Method;
use serde_json::{Value, json};
use test_server::{Reply, TestServer};

const UUID: &str = "799a59c0-09ca-4d60-b432-2953986c1c38";

fn client(base_url: &str) -> MagentoClient {
    let mut config = ClientConfig::new(base_url, AccessCredentials::new("ck", "cs", "at", "ats"));
    // The test servers are on loopback.
    config.egress = egress::Policy::allowing_loopback();
    config.requests_per_second = NonZeroU32::new(1000).expect("non-zero");
    config.retry.base_delay = Duration::from_millis(10);
    MagentoClient::new(config).expect("valid config")
}

fn accepted(count: usize) -> String {
    let items: Vec<Value> = (0..count)
        .map(|id| json!({"id": id, "data_hash": format!("hash{id}"), "status": "accepted"}))
        .collect();
    json!({"bulk_uuid": UUID, "request_items": items, "errors": false}).to_string()
}

#[tokio::test]
async fn bulk_product_saves_go_to_the_bulk_route_as_an_array() {
    let server = TestServer::start(|_, _| Reply::json(202, accepted(2))).await;
    let mut red = Product {
        name: Some("Red tee".into()),
        ..Product::default()
    };
    red.set_custom_attribute("description", "<p>Soft</p>".into());
    let blue = Product {
        price: Some(12.0),
        ..Product::default()
    };
    let answer = client(&server.base_url)
        .bulk_put_products(
            &StoreScope::All,
            &[("TS-RED".into(), red), ("TS/BLUE".into(), blue)],
        )
        .await
        .expect("accepted");
    assert_eq!(answer.value.bulk_uuid.as_deref(), Some(UUID));
    assert_eq!(answer.value.request_items.map(|items| items.len()), Some(2));

    let received = server.received();
    assert_eq!(received.len(), 1);
    assert_eq!(received[0].method, "PUT");
    assert_eq!(received[0].target, "/rest/all/async/bulk/V1/products/bySku");
    let body: Value = serde_json::from_slice(&received[0].body).expect("JSON body");
    assert_eq!(
        body,
        json!([
            {"product": {"sku": "TS-RED", "name": "Red tee",
                         "custom_attributes": [{"attribute_code": "description", "value": "<p>Soft</p>"}]},
             "saveOptions": true},
            {"product": {"sku": "TS/BLUE", "price": 12.0}, "saveOptions": true}
        ])
    );
}

#[tokio::test]
async fn submissions_are_not_repeated_after_an_ambiguous_failure() {
    let server =
        TestServer::start(|_, _| Reply::json(500, r#"{"message":"Internal Error."}"#)).await;
    let error = client(&server.base_url)
        .submit_async(
            &StoreScope::parse("fr").expect("valid"),
            Method::PUT,
            Route::new().lit("products").value("TS-1"),
            json!({"product": {"name": "x"}}),
        )
        .await
        .expect_err("500");
    assert!(matches!(error, MagentoError::Server { status: 500, .. }));
    let received = server.received();
    assert_eq!(
        received.len(),
        1,
        "a second submission could schedule the work twice"
    );
    assert_eq!(received[0].target, "/rest/fr/async/V1/products/TS-1");

    // 503 (maintenance, overload) is answered before any work: retried.
    let server = TestServer::start(|number, _| {
        if number == 0 {
            Reply::json(503, "{}")
        } else {
            Reply::json(202, accepted(1))
        }
    })
    .await;
    client(&server.base_url)
        .bulk_put_products(&StoreScope::All, &[("A".into(), Product::default())])
        .await
        .expect("accepted on the second attempt");
    assert_eq!(server.count(), 2);
}

#[tokio::test]
async fn bulk_status_calls() {
    let server = TestServer::start(|_, request| {
        let path = request.path();
        if path.ends_with("/status") && !path.ends_with("detailed-status") {
            Reply::ok(json!({"bulk_id": UUID, "operation_count": 2, "operations_list": [
                {"id": 1, "status": 1, "result_message": null, "error_code": null},
                {"id": 2, "status": 4}]}).to_string())
        } else if path.ends_with("/detailed-status") {
            Reply::ok(json!({"bulk_id": UUID, "operations_list": [
                {"id": 1, "bulk_uuid": UUID, "topic_name": "async.magento.catalog.api.productrepositoryinterface.save.put",
                 "status": 3, "result_message": "URL key for specified store already exists.",
                 "serialized_data": "{}", "result_serialized_data": null}]}).to_string())
        } else {
            Reply::ok("1")
        }
    })
    .await;
    let client = client(&server.base_url);
    let status = client.bulk_status(UUID).await.expect("status").value;
    assert!(!status.is_finished());
    let detailed = client
        .bulk_detailed_status(UUID)
        .await
        .expect("detailed")
        .value;
    assert!(detailed.is_finished(), "a failed operation is finished");
    let operation = &detailed.operations_list.expect("operations")[0];
    assert_eq!(
        operation.operation_status(),
        Some(OperationStatus::NotRetriablyFailed)
    );
    assert_eq!(
        operation.result_message.as_deref(),
        Some("URL key for specified store already exists.")
    );
    assert_eq!(
        client
            .bulk_operation_count(UUID, OperationStatus::Open)
            .await
            .expect("count"),
        1
    );

    let targets: Vec<String> = server
        .received()
        .into_iter()
        .map(|request| request.target)
        .collect();
    assert_eq!(
        targets,
        vec![
            format!("/rest/V1/bulk/{UUID}/status"),
            format!("/rest/V1/bulk/{UUID}/detailed-status"),
            format!("/rest/V1/bulk/{UUID}/operation-status/4"),
        ]
    );
}
