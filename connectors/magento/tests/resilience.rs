//! Rate limit, retries, backoff, 429, 401 and error hygiene, against a
//! scripted local server.

#[path = "support/test_server.rs"]
mod test_server;

use std::num::{NonZeroU32, NonZeroUsize};
use std::time::Duration;

use futures::future::join_all;
use magento::models::MediaGalleryEntry;
use magento::{
    AccessCredentials, ClientConfig, MagentoClient, MagentoError, RetryPolicy, StoreScope,
};
use test_server::{Reply, TestServer};

const CONSUMER_SECRET: &str = "consumer-secret-9f8e7d6c5b4a3210";
const ACCESS_TOKEN: &str = "access-token-0a1b2c3d4e5f6a7b8c9d";
const TOKEN_SECRET: &str = "token-secret-1122334455667788aabb";

fn config(base_url: &str) -> ClientConfig {
    let mut config = ClientConfig::new(
        base_url,
        AccessCredentials::new("consumer-key", CONSUMER_SECRET, ACCESS_TOKEN, TOKEN_SECRET),
    );
    // The test servers are on loopback.
    config.egress = egress::Policy::allowing_loopback();
    config.requests_per_second = NonZeroU32::new(1000).expect("non-zero");
    config.retry = RetryPolicy {
        max_attempts: 4,
        base_delay: Duration::from_millis(20),
        max_delay: Duration::from_millis(200),
        max_retry_after: Duration::from_secs(5),
    };
    config.timeout = Duration::from_secs(5);
    config
}

fn client(config: ClientConfig) -> MagentoClient {
    MagentoClient::new(config).expect("valid config")
}

const STORE_VIEWS: &str = r#"[{"id":0,"code":"admin"},{"id":1,"code":"default"}]"#;

/// Nothing that identifies or unlocks the integration may be printed.
fn assert_no_secrets(error: &MagentoError) {
    let printed = format!("{error} {error:?}");
    for secret in [
        CONSUMER_SECRET,
        ACCESS_TOKEN,
        TOKEN_SECRET,
        "oauth_signature",
    ] {
        assert!(!printed.contains(secret), "{secret} leaked into {printed}");
    }
}

#[tokio::test]
async fn rate_limit_is_never_exceeded() {
    let server = TestServer::start(|_, _| Reply::ok(STORE_VIEWS)).await;
    let mut config = config(&server.base_url);
    let rps = 10u32;
    config.requests_per_second = NonZeroU32::new(rps).expect("non-zero");
    config.max_concurrency = NonZeroUsize::new(8).expect("non-zero");
    let client = client(config);

    let calls = (0..35).map(|_| client.store_views());
    for result in join_all(calls).await {
        result.expect("store views");
    }

    let arrivals: Vec<_> = server.received().iter().map(|request| request.at).collect();
    assert_eq!(arrivals.len(), 35);
    // Any window of one second holds at most `rps` arrivals. The window is
    // shortened by 20 ms of allowance for scheduling jitter between the
    // client's send and the server's receipt.
    let window = Duration::from_millis(980);
    for (index, start) in arrivals.iter().enumerate() {
        let in_window = arrivals[index..]
            .iter()
            .filter(|at| at.duration_since(*start) < window)
            .count();
        assert!(
            in_window <= rps as usize,
            "{in_window} requests within a second from #{index}"
        );
    }
    // And the limit is used, not undershot: 35 requests at 10/s take ~3.4 s.
    let span = arrivals[34].duration_since(arrivals[0]);
    assert!(span < Duration::from_millis(4200), "too slow: {span:?}");
}

#[tokio::test]
async fn server_error_storms_are_retried_within_the_attempt_budget() {
    let server = TestServer::start(|number, _| {
        if number < 3 {
            Reply::json(503, r#"{"message":"Service Unavailable"}"#)
        } else {
            Reply::ok(STORE_VIEWS)
        }
    })
    .await;
    let views = client(config(&server.base_url))
        .store_views()
        .await
        .expect("recovers");
    assert_eq!(views.len(), 2);
    assert_eq!(server.count(), 4);

    let server = TestServer::start(|_, _| {
        Reply::json(
            500,
            r#"{"message":"Internal Error. Details are available in Magento log file. Report ID: webapi-1"}"#,
        )
    })
    .await;
    let error = client(config(&server.base_url))
        .store_views()
        .await
        .expect_err("persistent 500");
    assert!(
        matches!(error, MagentoError::Server { status: 500, .. }),
        "{error:?}"
    );
    assert!(error.to_string().contains("Report ID: webapi-1"));
    assert_eq!(server.count(), 4, "max_attempts bounds the storm");
    assert_no_secrets(&error);
}

#[tokio::test]
async fn backoff_grows_between_attempts() {
    let server = TestServer::start(|_, _| Reply::json(502, "<html>Bad Gateway</html>")).await;
    let mut config = config(&server.base_url);
    config.retry.base_delay = Duration::from_millis(100);
    config.retry.max_delay = Duration::from_secs(2);
    let error = client(config)
        .store_views()
        .await
        .expect_err("persistent 502");
    // The proxy's page is described, not repeated.
    assert!(error.to_string().contains("HTTP 502"), "{error}");
    assert!(!error.to_string().contains("Bad Gateway"), "{error}");
    let arrivals: Vec<_> = server.received().iter().map(|request| request.at).collect();
    assert_eq!(arrivals.len(), 4);
    // Equal jitter: the n-th wait is within [base·2ⁿ⁻¹/2, base·2ⁿ⁻¹].
    let gaps: Vec<Duration> = arrivals
        .windows(2)
        .map(|pair| pair[1].duration_since(pair[0]))
        .collect();
    assert!(gaps[0] >= Duration::from_millis(50), "{gaps:?}");
    assert!(gaps[1] >= Duration::from_millis(100), "{gaps:?}");
    assert!(gaps[2] >= Duration::from_millis(200), "{gaps:?}");
}

#[tokio::test]
async fn too_many_requests_honours_retry_after() {
    let server = TestServer::start(|number, _| {
        if number == 0 {
            Reply::json(429, r#"{"message":"Too Many Requests","trace":null}"#)
                .header("retry-after", "1")
        } else {
            Reply::ok(STORE_VIEWS)
        }
    })
    .await;
    client(config(&server.base_url))
        .store_views()
        .await
        .expect("retried after waiting");
    let arrivals: Vec<_> = server.received().iter().map(|request| request.at).collect();
    assert_eq!(arrivals.len(), 2);
    assert!(arrivals[1].duration_since(arrivals[0]) >= Duration::from_secs(1));

    // A wait beyond the policy's patience is reported instead.
    let server = TestServer::start(|_, _| {
        Reply::json(429, r#"{"message":"Too Many Requests"}"#).header("retry-after", "3600")
    })
    .await;
    let error = client(config(&server.base_url))
        .store_views()
        .await
        .expect_err("gives up");
    match &error {
        MagentoError::RateLimited { retry_after, .. } => {
            assert_eq!(*retry_after, Some(Duration::from_secs(3600)));
        }
        other => panic!("unexpected {other:?}"),
    }
    assert_eq!(server.count(), 1);
}

#[tokio::test]
async fn unauthorized_is_final_and_secret_free() {
    let server = TestServer::start(|_, _| {
        Reply::json(
            401,
            r#"{"message":"The consumer isn't authorized to access %resources.","parameters":{"resources":"Magento_Catalog::products"}}"#,
        )
    })
    .await;
    let client = client(config(&server.base_url));
    let error = client
        .get_product(&StoreScope::All, "TS-RED-M")
        .await
        .expect_err("401");
    // An ACL refusal: the credentials work, the integration lacks the grant.
    assert!(!error.is_needs_reauth());
    assert_eq!(
        error.missing_permission(),
        Some("Magento_Catalog::products")
    );
    assert_eq!(
        error.to_string(),
        "Magento refused the call (HTTP 401): The consumer isn't authorized to access Magento_Catalog::products."
    );
    assert_eq!(server.count(), 1, "a 401 is never retried");
    assert_no_secrets(&error);
    // The client itself does not print secrets either.
    let printed = format!("{client:?}");
    assert!(!printed.contains(CONSUMER_SECRET) && !printed.contains(TOKEN_SECRET));
}

#[tokio::test]
async fn database_deadlocks_are_retried_other_client_errors_are_not() {
    let server = TestServer::start(|number, _| {
        if number == 0 {
            Reply::json(
                400,
                r#"{"message":"Database deadlock found when trying to get lock"}"#,
            )
        } else {
            Reply::ok(r#"{"id":1,"sku":"A"}"#)
        }
    })
    .await;
    let product = client(config(&server.base_url))
        .get_product(&StoreScope::All, "A")
        .await
        .expect("deadlock retried");
    assert_eq!(product.value.sku.as_deref(), Some("A"));
    assert_eq!(server.count(), 2);

    let server = TestServer::start(|_, _| {
        Reply::json(
            400,
            r#"{"message":"URL key for specified store already exists."}"#,
        )
    })
    .await;
    let error = client(config(&server.base_url))
        .get_product(&StoreScope::All, "A")
        .await
        .expect_err("400");
    assert!(matches!(error, MagentoError::Rejected { status: 400, .. }));
    assert_eq!(server.count(), 1);
}

#[tokio::test]
async fn timeouts_are_retried_and_shrink_the_concurrency_limit() {
    let server = TestServer::start(|number, _| {
        let reply = Reply::ok(STORE_VIEWS);
        if number == 0 {
            reply.after(Duration::from_secs(3))
        } else {
            reply
        }
    })
    .await;
    let mut config = config(&server.base_url);
    config.timeout = Duration::from_millis(300);
    config.max_concurrency = NonZeroUsize::new(8).expect("non-zero");
    let client = client(config);
    client.store_views().await.expect("second attempt answers");
    assert_eq!(server.count(), 2);
    assert!(
        client.concurrency_limit() < 8,
        "limit {}",
        client.concurrency_limit()
    );
}

#[tokio::test]
async fn uploads_are_not_repeated_after_an_ambiguous_failure() {
    let server =
        TestServer::start(|_, _| Reply::json(500, r#"{"message":"Internal Error."}"#)).await;
    let entry = MediaGalleryEntry::new_image(
        "iVBORw0KGgo=".to_owned(),
        "image/png",
        "tee.png",
        Some("Alt".to_owned()),
        vec!["image".to_owned()],
    );
    let error = client(config(&server.base_url))
        .create_media(&StoreScope::All, "TS-1", &entry)
        .await
        .expect_err("500");
    assert!(matches!(error, MagentoError::Server { status: 500, .. }));
    assert_eq!(
        server.count(),
        1,
        "the image may have been stored: no second upload"
    );
}

#[tokio::test]
async fn unreachable_stores_fail_with_a_connection_error() {
    // Bind and drop a listener so the port is very likely closed.
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.local_addr().expect("address").port()
    };
    let error = client(config(&format!("http://127.0.0.1:{port}/")))
        .store_views()
        .await
        .expect_err("nothing listens");
    assert!(matches!(error, MagentoError::Connection(_)), "{error:?}");
    assert_no_secrets(&error);
}

#[tokio::test]
async fn redirects_are_reported_not_followed() {
    let server = TestServer::start(|_, _| {
        Reply::json(301, "").header("location", "https://shop.example/rest/V1/store/storeViews")
    })
    .await;
    let error = client(config(&server.base_url))
        .store_views()
        .await
        .expect_err("redirect");
    assert!(
        error
            .to_string()
            .contains("redirected to https://shop.example/"),
        "{error}"
    );
    assert_eq!(server.count(), 1);
}

#[tokio::test]
async fn concurrency_never_exceeds_the_ceiling() {
    let server =
        TestServer::start(|_, _| Reply::ok(STORE_VIEWS).after(Duration::from_millis(50))).await;
    let mut config = config(&server.base_url);
    config.max_concurrency = NonZeroUsize::new(3).expect("non-zero");
    let client = client(config);
    for result in join_all((0..20).map(|_| client.store_views())).await {
        result.expect("store views");
    }
    assert!(
        server.max_in_flight() <= 3,
        "{} in flight",
        server.max_in_flight()
    );
    assert!(server.max_in_flight() >= 2, "requests were not overlapped");
}
