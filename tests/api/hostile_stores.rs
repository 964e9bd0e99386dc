//! Hostile stores: addresses the egress policy refuses, redirects, hostile gallery files,
//! answers that never end and answers that must not be repeated. Every server here is on
//! loopback (127.0.0.1 and 127.0.0.2); the other refused ranges are unit tests of the policy
//! (`crates/egress`), which never sends a packet to them.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::body::Body;
use axum::http::{StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use magento_sim::{MagentoSim, SimConfig};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::helpers::{Registered, TestApp};

/// The refusal names the setting an operator would change.
const SETTING: &str = "`[egress] allow` (CATALOGD_EGRESS__ALLOW)";

/// What a hostile store's server saw.
#[derive(Default)]
struct Seen {
    requests: AtomicUsize,
    /// Bytes of endless bodies handed to the connection.
    streamed: AtomicUsize,
    paths: std::sync::Mutex<Vec<String>>,
}

/// Serves `answer` on `ip`, recording every request's path.
async fn hostile_server<F, R>(ip: &str, answer: F) -> (SocketAddr, Arc<Seen>)
where
    F: Fn(Uri, Arc<Seen>) -> R + Clone + Send + Sync + 'static,
    R: std::future::Future<Output = Response> + Send + 'static,
{
    let seen = Arc::new(Seen::default());
    let recorder = seen.clone();
    let router = axum::Router::new().fallback(move |uri: Uri| {
        let seen = recorder.clone();
        let answer = answer.clone();
        async move {
            seen.requests.fetch_add(1, Ordering::SeqCst);
            seen.paths.lock().unwrap().push(uri.path().to_string());
            answer(uri, seen).await
        }
    });
    let listener = tokio::net::TcpListener::bind((ip, 0)).await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    (address, seen)
}

/// A 200 whose body never ends.
fn endless(content_type: &str, seen: Arc<Seen>) -> Response {
    let chunk = bytes::Bytes::from(vec![b' '; 64 * 1024]);
    let stream = futures::stream::repeat_with(move || {
        seen.streamed.fetch_add(chunk.len(), Ordering::SeqCst);
        Ok::<_, std::io::Error>(chunk.clone())
    });
    Response::builder()
        .header(header::CONTENT_TYPE, content_type)
        .body(Body::from_stream(stream))
        .unwrap()
}

/// Peak resident memory of this process (the daemon runs in it), bytes.
fn peak_rss() -> usize {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|kib| kib.parse::<usize>().ok())
        .unwrap()
        * 1024
}

async fn create_store(app: &TestApp, owner: &Registered, body: Value) -> (u16, Value) {
    app.post(
        &format!("/workspaces/{}/stores", owner.workspace_id),
        Some(&owner.access_token),
        body,
    )
    .await
}

fn credentials() -> Value {
    json!({"consumer_key": "ck0000", "consumer_secret": "cs0000",
           "access_token": "at0000", "access_token_secret": "ats0000"})
}

/// Waits until the background token exchange of a pending store has ended.
async fn handshake_result(app: &TestApp, owner: &Registered, store: &Value) -> Value {
    let form = [
        ("oauth_consumer_key", "consumerkey0000"),
        ("oauth_consumer_secret", "consumersecret0000"),
        ("store_base_url", "http://shop.example/"),
        ("oauth_verifier", "verifier0000"),
    ];
    let status = app
        .client
        .post(store["callback_url"].as_str().unwrap())
        .form(&form)
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, 200);
    let id = store["id"].as_str().unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let (_, store) = app.get(&format!("/stores/{id}"), &owner.access_token).await;
        if store["status"] != "pending" {
            return store;
        }
        assert!(tokio::time::Instant::now() < deadline, "{store}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn stores_on_this_machine_are_refused_with_the_setting_named() {
    // The default policy: nothing but public addresses.
    let app = TestApp::spawn_with(&[("CATALOGD_EGRESS__ALLOW", "[]")]).await;
    let sim = MagentoSim::start(SimConfig {
        products: 5,
        ..SimConfig::default()
    })
    .await
    .unwrap();
    let owner = app.register("shop@example.com").await;
    let port = url::Url::parse(&sim.base_url()).unwrap().port().unwrap();
    let c = sim.credentials();
    let sim_credentials = json!({"consumer_key": c.consumer_key, "consumer_secret": c.consumer_secret,
        "access_token": c.access_token, "access_token_secret": c.access_token_secret});
    for base_url in [
        sim.base_url(),
        format!("http://[::1]:{port}/"),
        format!("http://localhost:{port}/"),
    ] {
        for credentials in [Some(sim_credentials.clone()), None] {
            let mut body = json!({"name": "Next door", "base_url": base_url});
            if let Some(credentials) = &credentials {
                body["credentials"] = credentials.clone();
            }
            let (status, refused) = create_store(&app, &owner, body).await;
            assert_eq!(status, 422, "{base_url}: {refused}");
            assert_eq!(refused["error"]["field"], "base_url", "{refused}");
            let message = refused["error"]["message"].as_str().unwrap();
            assert!(message.contains(SETTING), "{message}");
            assert!(message.contains("loopback"), "{message}");
        }
    }
    assert_eq!(sim.stats().total, 0, "nothing reached the store");
    let stores: i64 = sqlx::query_scalar("SELECT count(*) FROM stores")
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert_eq!(stores, 0);
}

#[tokio::test]
async fn with_only_127_0_0_1_allowed_a_redirect_to_127_0_0_2_is_not_followed() {
    let app = TestApp::spawn_with(&[("CATALOGD_EGRESS__ALLOW", r#"["127.0.0.1/32"]"#)]).await;
    let owner = app.register("shop@example.com").await;
    let (elsewhere, elsewhere_seen) = hostile_server("127.0.0.2", |_, _| async {
        r#"{"ami-id":"ami-0123","secret":"internal"}"#.into_response()
    })
    .await;
    let (redirector, _) = hostile_server("127.0.0.1", move |uri: Uri, _| async move {
        let target = format!("http://{elsewhere}{}", uri.path());
        (StatusCode::FOUND, [(header::LOCATION, target)]).into_response()
    })
    .await;
    let base_url = format!("http://{redirector}/");

    // Store discovery meets the redirect and stops.
    let (status, refused) = create_store(
        &app,
        &owner,
        json!({"name": "Redirecting", "base_url": base_url, "credentials": credentials()}),
    )
    .await;
    assert_eq!(status, 422, "{refused}");
    let message = refused["error"]["message"].as_str().unwrap();
    assert!(message.contains("HTTP 302"), "{message}");
    assert!(!message.contains("ami-"), "{message}");

    // So does the token exchange of the integration handshake.
    let (status, pending) = create_store(
        &app,
        &owner,
        json!({"name": "Redirecting", "base_url": base_url}),
    )
    .await;
    assert_eq!(status, 201, "{pending}");
    let store = handshake_result(&app, &owner, &pending).await;
    assert_eq!(store["status"], "failed", "{store}");
    let detail = store["status_detail"].as_str().unwrap();
    assert!(detail.contains("HTTP 302"), "{detail}");

    // And 127.0.0.2 itself is refused, naming the setting.
    let (status, refused) = create_store(
        &app,
        &owner,
        json!({"name": "Elsewhere", "base_url": format!("http://{elsewhere}/"),
               "credentials": credentials()}),
    )
    .await;
    assert_eq!(status, 422, "{refused}");
    assert!(
        refused["error"]["message"]
            .as_str()
            .unwrap()
            .contains(SETTING),
        "{refused}"
    );

    // Media downloads meet the same redirect: each picture fails, none is fetched there.
    let sim = MagentoSim::start(SimConfig {
        products: 3,
        ..SimConfig::default()
    })
    .await
    .unwrap();
    let store_id = app.connect_store(&owner, &sim).await;
    app.sync(&owner, &store_id, "full").await;
    point_media_at(&app, &store_id, &format!("http://{redirector}/media/")).await;
    let (_, job) = app
        .run_job(
            &format!("/stores/{store_id}/media"),
            &owner.access_token,
            json!({}),
        )
        .await;
    assert!(job["counters"]["failed"].as_i64().unwrap() > 0, "{job}");
    assert_eq!(job["counters"]["fetched"], 0, "{job}");

    assert_eq!(elsewhere_seen.requests.load(Ordering::SeqCst), 0);
}

/// Makes the store's media URL (as Magento reported it) point at `media_url`.
async fn point_media_at(app: &TestApp, store_id: &str, media_url: &str) {
    sqlx::query(
        "UPDATE stores SET store_views = (
            SELECT jsonb_agg(v || jsonb_build_object('base_media_url', $2::text))
            FROM jsonb_array_elements(store_views) v)
         WHERE id = $1",
    )
    .bind(store_id.parse::<Uuid>().unwrap())
    .bind(media_url)
    .execute(&app.db)
    .await
    .unwrap();
}

#[tokio::test]
async fn gallery_files_stay_under_the_media_directory_and_endless_pictures_are_cut() {
    let app = TestApp::spawn().await;
    let sim = MagentoSim::start(SimConfig {
        products: 6,
        ..SimConfig::default()
    })
    .await
    .unwrap();
    let owner = app.register("shop@example.com").await;
    let store_id = app.connect_store(&owner, &sim).await;
    app.sync(&owner, &store_id, "full").await;
    // The first picture of each product never ends; the others are pictures.
    let (media, seen) = hostile_server("127.0.0.1", |uri: Uri, seen| async move {
        let file = uri.path().to_string();
        if file.ends_with("-1.png") {
            endless("image/png", seen)
        } else {
            magento_sim::catalog::png_for(&file).into_response()
        }
    })
    .await;
    point_media_at(&app, &store_id, &format!("http://{media}/media/")).await;
    // One product's gallery holds files a hostile store could send in its product page.
    let hostile = [
        "/../../../admin/secret",
        "/r/e/x.png?token=1",
        "/r/e/x.png#top",
        "//169.254.169.254/latest/meta-data/x.png",
        "/%2e%2e/%2e%2e/x.png",
    ];
    let entries: Vec<Value> = hostile
        .iter()
        .enumerate()
        .map(
            |(i, file)| json!({"entry_id": 90_000 + i, "file": file, "label": null, "position": i}),
        )
        .collect();
    sqlx::query(
        "UPDATE product_versions SET content = jsonb_set(content, '{media}', $1::jsonb)
         WHERE id = (SELECT l.version_id FROM product_live l JOIN products p ON p.id = l.product_id
                     WHERE p.store_id = $2 AND l.store_view = 'all' ORDER BY p.sku LIMIT 1)",
    )
    .bind(Value::Array(entries))
    .bind(store_id.parse::<Uuid>().unwrap())
    .execute(&app.db)
    .await
    .unwrap();

    let before = peak_rss();
    let (_, job) = app
        .run_job(
            &format!("/stores/{store_id}/media"),
            &owner.access_token,
            json!({}),
        )
        .await;
    let growth = peak_rss().saturating_sub(before);
    let endless_pictures = seen
        .paths
        .lock()
        .unwrap()
        .iter()
        .filter(|p| p.ends_with("-1.png"))
        .count();
    assert!(endless_pictures > 0);
    assert_eq!(
        job["counters"]["failed"].as_u64().unwrap() as usize,
        endless_pictures + hostile.len(),
        "{job}"
    );
    assert!(job["counters"]["fetched"].as_i64().unwrap() > 0, "{job}");
    // Every request stayed under the product directory.
    for path in seen.paths.lock().unwrap().iter() {
        assert!(path.starts_with("/media/catalog/product/"), "{path}");
        assert!(!path.contains(".."), "{path}");
    }
    // Each endless picture was read to its 20 MiB cap and no further.
    assert!(
        seen.streamed.load(Ordering::SeqCst) >= endless_pictures * 20 * 1024 * 1024,
        "the server streamed less than the cap"
    );
    assert!(
        growth < 64 * 1024 * 1024,
        "peak RSS grew by {growth} bytes mirroring endless pictures"
    );
    let logs = job.to_string();
    assert!(
        logs.contains("not a path under the media directory"),
        "{logs}"
    );
    assert!(logs.contains("larger than 20971520 bytes"), "{logs}");
}

/// A store that answers discovery like Magento and then streams every other answer without
/// end.
async fn endless_store() -> (SocketAddr, Arc<Seen>) {
    hostile_server("127.0.0.1", |uri: Uri, seen| async move {
        let path = uri.path();
        if path.ends_with("/store/storeViews") {
            axum::Json(json!([
                {"id": 0, "code": "admin", "name": "Admin", "website_id": 0},
                {"id": 1, "code": "default", "name": "Default", "website_id": 1}
            ]))
            .into_response()
        } else if path.ends_with("/store/storeConfigs") {
            axum::Json(json!([{"id": 1, "code": "default", "locale": "en_US",
                "base_url": "http://shop.example/", "base_media_url": "http://shop.example/media/",
                "base_currency_code": "USD"}]))
            .into_response()
        } else {
            endless("application/json", seen)
        }
    })
    .await
}

#[tokio::test]
async fn an_endless_product_page_fails_the_sync_and_memory_stays_flat() {
    let app = TestApp::spawn().await;
    let owner = app.register("shop@example.com").await;
    let (store, seen) = endless_store().await;
    let (status, created) = create_store(
        &app,
        &owner,
        json!({"name": "Endless", "base_url": format!("http://{store}/"),
               "credentials": credentials(),
               "rate_limit": {"requests_per_second": 100, "max_concurrency": 1}}),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    let store_id = created["id"].as_str().unwrap();

    let before = peak_rss();
    let (status, started) = app
        .post(
            &format!("/stores/{store_id}/sync"),
            Some(&owner.access_token),
            json!({"mode": "full"}),
        )
        .await;
    assert_eq!(status, 202, "{started}");
    let job = app
        .wait_for_job(
            &owner.access_token,
            started["job_id"].as_str().unwrap(),
            Duration::from_secs(60),
        )
        .await;
    let growth = peak_rss().saturating_sub(before);
    assert_eq!(job["status"], "failed", "{job}");
    assert!(
        job["error"]
            .as_str()
            .unwrap()
            .contains("larger than 33554432 bytes"),
        "{job}"
    );
    // Read to the cap once (a page past the cap is not retried), and not further.
    let streamed = seen.streamed.load(Ordering::SeqCst);
    assert!(streamed >= 32 * 1024 * 1024, "streamed {streamed}");
    assert!(
        growth < 64 * 1024 * 1024,
        "peak RSS grew by {growth} bytes while the store streamed without end"
    );
}

#[tokio::test]
async fn the_store_status_never_repeats_what_the_store_answered() {
    let app = TestApp::spawn().await;
    let owner = app.register("shop@example.com").await;
    let secret = "root:x:0:0:internal-admin-console";
    let (page, _) = hostile_server("127.0.0.1", move |_, _| async move {
        (
            [(header::CONTENT_TYPE, "text/html")],
            format!("<html>{secret}</html>"),
        )
            .into_response()
    })
    .await;
    let (status, pending) = create_store(
        &app,
        &owner,
        json!({"name": "Page", "base_url": format!("http://{page}/")}),
    )
    .await;
    assert_eq!(status, 201, "{pending}");
    let store = handshake_result(&app, &owner, &pending).await;
    assert_eq!(store["status"], "failed", "{store}");
    let detail = store["status_detail"].as_str().unwrap();
    assert!(!detail.contains("internal-admin"), "{detail}");
    assert!(detail.contains("text/html"), "{detail}");

    // A token answer that never ends is cut at its cap.
    let (endless_tokens, _) =
        hostile_server(
            "127.0.0.1",
            |_, seen| async move { endless("text/plain", seen) },
        )
        .await;
    let (status, pending) = create_store(
        &app,
        &owner,
        json!({"name": "Endless", "base_url": format!("http://{endless_tokens}/")}),
    )
    .await;
    assert_eq!(status, 201, "{pending}");
    let store = handshake_result(&app, &owner, &pending).await;
    assert_eq!(store["status"], "failed", "{store}");
    let detail = store["status_detail"].as_str().unwrap();
    assert!(detail.contains("larger than 16384 bytes"), "{detail}");

    // Neither is in what the API shows of the stores.
    let (_, list) = app
        .get(
            &format!("/workspaces/{}/stores", owner.workspace_id),
            &owner.access_token,
        )
        .await;
    assert!(!list.to_string().contains("internal-admin"), "{list}");
}

/// Starts a job and waits for it to end, whatever its outcome.
async fn job_outcome(app: &TestApp, owner: &Registered, path: &str, body: Value) -> Value {
    let (status, started) = app.post(path, Some(&owner.access_token), body).await;
    assert_eq!(status, 202, "{started}");
    app.wait_for_job(
        &owner.access_token,
        started["job_id"].as_str().unwrap(),
        Duration::from_secs(60),
    )
    .await
}

#[tokio::test]
async fn jobs_meeting_a_refused_address_fail_naming_the_setting() {
    // The store is connected and synced while loopback is allowed; then the operator
    // removes the range and restarts the workers.
    let app = TestApp::spawn_with(&[("CATALOGD_JOBS__WORKERS_IN_SERVE", "false")]).await;
    let sim = MagentoSim::start(SimConfig {
        products: 3,
        ..SimConfig::default()
    })
    .await
    .unwrap();
    let owner = app.register("shop@example.com").await;
    let store_id = app.connect_store(&owner, &sim).await;
    let mut allowing = app.start_worker(&[]);
    let synced = job_outcome(
        &app,
        &owner,
        &format!("/stores/{store_id}/sync"),
        json!({"mode": "full"}),
    )
    .await;
    allowing.kill().unwrap();
    allowing.wait().unwrap();
    assert_eq!(synced["status"], "succeeded", "{synced}");

    let mut strict = app.start_worker(&[("CATALOGD_EGRESS__ALLOW".to_string(), "[]".to_string())]);
    let requests_before = sim.stats().total;
    let sync = job_outcome(
        &app,
        &owner,
        &format!("/stores/{store_id}/sync"),
        json!({"mode": "full"}),
    )
    .await;
    let media = job_outcome(
        &app,
        &owner,
        &format!("/stores/{store_id}/media"),
        json!({}),
    )
    .await;
    strict.kill().unwrap();
    strict.wait().unwrap();
    for job in [&sync, &media] {
        assert_eq!(job["status"], "failed", "{job}");
        let error = job["error"].as_str().unwrap();
        assert!(error.contains(SETTING), "{error}");
        assert!(error.contains("127.0.0.1"), "{error}");
    }
    assert_eq!(
        sim.stats().total,
        requests_before,
        "nothing reached the store"
    );
}
