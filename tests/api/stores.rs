//! Connecting stores: with credentials, through Magento's integration handshake against the
//! simulator over loopback, and disconnecting. Secrets never leave their sealed form.

use std::time::Duration;

use magento_sim::{MagentoSim, SimConfig};
use serde_json::{Value, json};

use crate::helpers::{Registered, TestApp, error_code};

async fn sim() -> MagentoSim {
    MagentoSim::start(SimConfig {
        products: 5,
        ..SimConfig::default()
    })
    .await
    .expect("simulator starts")
}

fn credentials_json(sim: &MagentoSim) -> Value {
    let c = sim.credentials();
    json!({
        "consumer_key": c.consumer_key, "consumer_secret": c.consumer_secret,
        "access_token": c.access_token, "access_token_secret": c.access_token_secret,
    })
}

fn secrets_of(sim: &MagentoSim) -> Vec<String> {
    let c = sim.credentials();
    vec![
        c.consumer_secret.clone(),
        c.access_token.clone(),
        c.access_token_secret.clone(),
    ]
}

async fn create_pending(app: &TestApp, owner: &Registered, base_url: &str) -> Value {
    let (status, store) = app
        .post(
            &format!("/workspaces/{}/stores", owner.workspace_id),
            Some(&owner.access_token),
            json!({"name": "Sim shop", "base_url": base_url}),
        )
        .await;
    assert_eq!(status, 201, "{store}");
    store
}

/// Polls the store until it leaves `pending`: the exchange runs after the callback answered.
async fn settled(app: &TestApp, owner: &Registered, id: &str) -> Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let (status, store) = app.get(&format!("/stores/{id}"), &owner.access_token).await;
        assert_eq!(status, 200, "{store}");
        if store["status_detail"] != "exchanging tokens with Magento"
            && store["status"] != "pending"
        {
            return store;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "handshake did not finish: {store}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn connecting_with_credentials_discovers_store_views_and_never_shows_secrets() {
    let app = TestApp::spawn().await;
    let sim = sim().await;
    let owner = app.register("shop@example.com").await;
    let (status, store) = app
        .post(
            &format!("/workspaces/{}/stores", owner.workspace_id),
            Some(&owner.access_token),
            json!({"name": "Sim", "base_url": sim.base_url(), "credentials": credentials_json(&sim),
                   "rate_limit": {"requests_per_second": 10, "max_concurrency": 2}}),
        )
        .await;
    assert_eq!(status, 201, "{store}");
    assert_eq!(store["status"], "active");
    assert_eq!(store["signature_method"], "hmac-sha256");
    assert_eq!(
        store["rate_limit"],
        json!({"requests_per_second": 10, "max_concurrency": 2})
    );
    let views: Vec<(&str, &str)> = store["store_views"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| (v["code"].as_str().unwrap(), v["locale"].as_str().unwrap()))
        .collect();
    assert_eq!(
        views,
        [("default", "en_US"), ("fr", "fr_FR"), ("de", "de_DE")]
    );
    assert!(
        store["callback_url"]
            .as_str()
            .unwrap()
            .starts_with(&format!("{}/integrations/magento/", app.base))
    );

    let id = store["id"].as_str().unwrap();
    let (_, fetched) = app.get(&format!("/stores/{id}"), &owner.access_token).await;
    let (_, listed) = app
        .get(
            &format!("/workspaces/{}/stores", owner.workspace_id),
            &owner.access_token,
        )
        .await;
    assert_eq!(listed["items"][0]["id"], id);
    for text in [store.to_string(), fetched.to_string(), listed.to_string()] {
        for secret in secrets_of(&sim) {
            assert!(
                !text.contains(&secret),
                "a secret appears in an API response"
            );
        }
    }
}

#[tokio::test]
async fn wrong_credentials_are_refused_and_nothing_is_stored() {
    let app = TestApp::spawn().await;
    let sim = sim().await;
    let owner = app.register("shop@example.com").await;
    let mut creds = credentials_json(&sim);
    creds["access_token_secret"] = json!("0123456789abcdef0123456789abcdef");
    let (status, body) = app
        .post(
            &format!("/workspaces/{}/stores", owner.workspace_id),
            Some(&owner.access_token),
            json!({"name": "Sim", "base_url": sim.base_url(), "credentials": creds}),
        )
        .await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(error_code(&body), "invalid_request");
    assert!(
        !body
            .to_string()
            .contains("0123456789abcdef0123456789abcdef")
    );
    let stores: i64 = sqlx::query_scalar("SELECT count(*) FROM stores")
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert_eq!(stores, 0);

    let (status, body) = app
        .post(
            &format!("/workspaces/{}/stores", owner.workspace_id),
            Some(&owner.access_token),
            json!({"name": "Sim", "base_url": "not a url"}),
        )
        .await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["error"]["field"], "base_url");
}

#[tokio::test]
async fn integration_handshake_activates_a_pending_store_and_refuses_a_replayed_callback() {
    let app = TestApp::spawn().await;
    let sim = sim().await;
    let owner = app.register("shop@example.com").await;
    let store = create_pending(&app, &owner, &sim.base_url()).await;
    assert_eq!(store["status"], "pending");
    assert_eq!(store["awaiting_callback"], true);
    let id = store["id"].as_str().unwrap();
    let callback = store["callback_url"].as_str().unwrap();
    let identity = store["identity_url"].as_str().unwrap();
    assert!(identity.ends_with("/identity"));

    // The merchant saves the integration in Magento and clicks Activate.
    let integration = sim
        .create_integration(callback, identity)
        .await
        .expect("Magento reaches the callback");
    let store = settled(&app, &owner, id).await;
    assert_eq!(store["status"], "active", "{store}");
    assert_eq!(store["awaiting_callback"], false);
    assert_eq!(store["store_views"].as_array().unwrap().len(), 3, "{store}");
    assert_eq!(
        sim.integration_status(&integration.consumer_key),
        Some(magento_sim::IntegrationStatus::Active)
    );

    // A second post to the same URL is refused and logged; the store stays connected.
    let replay = app
        .client
        .post(callback)
        .form(&[
            ("oauth_consumer_key", integration.consumer_key.as_str()),
            ("oauth_consumer_secret", "abcdefabcdefabcdefabcdefabcdefab"),
            ("store_base_url", sim.base_url().as_str()),
            ("oauth_verifier", "abcdefabcdefabcdefabcdefabcdefab"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(replay.status(), 409);
    let (_, store) = app.get(&format!("/stores/{id}"), &owner.access_token).await;
    assert_eq!(store["status"], "active");
    let refused: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM audit_log WHERE action = 'store.callback_refused'",
    )
    .fetch_one(&app.db)
    .await
    .unwrap();
    assert_eq!(refused, 1);

    // A forged URL is refused too.
    let forged = app
        .client
        .post(format!(
            "{}/integrations/magento/{}/callback",
            app.base,
            "x".repeat(43)
        ))
        .form(&[
            ("oauth_consumer_key", "a"),
            ("oauth_consumer_secret", "b"),
            ("store_base_url", "http://x/"),
            ("oauth_verifier", "c"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), 404);

    // The identity link sends the popup back to Magento, and nowhere else.
    let back = format!(
        "{}admin/admin/integration/loginSuccessCallback/",
        sim.base_url()
    );
    let res = app
        .client
        .get(identity)
        .query(&[
            ("oauth_consumer_key", integration.consumer_key.as_str()),
            ("success_call_back", back.as_str()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 302);
    assert_eq!(res.headers()["location"], back.as_str());
    let res = app
        .client
        .get(identity)
        .query(&[("success_call_back", "https://evil.example.net/steal")])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 422);
}

/// Stands in for Magento's callback target so a test can hold Magento's post and deliver it later.
async fn capture_server() -> (
    String,
    tokio::sync::mpsc::UnboundedReceiver<Vec<(String, String)>>,
) {
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let app = axum::Router::new().route(
        "/cb",
        axum::routing::post(
            move |axum::extract::Form(form): axum::extract::Form<Vec<(String, String)>>| {
                let tx = tx.clone();
                async move {
                    let _ = tx.send(form);
                    "ok"
                }
            },
        ),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}/cb"), rx)
}

/// A pending store whose Magento post was captured instead of delivered, so a test can tamper
/// with time or the verifier before handing it to catalogd.
struct HeldHandshake {
    app: TestApp,
    sim: MagentoSim,
    owner: Registered,
    store_id: String,
    callback: String,
    integration: magento_sim::PendingIntegration,
    form: Vec<(String, String)>,
}

async fn held_handshake() -> HeldHandshake {
    let app = TestApp::spawn().await;
    let sim = sim().await;
    let owner = app.register("shop@example.com").await;
    let store = create_pending(&app, &owner, &sim.base_url()).await;
    let (capture_url, mut posts) = capture_server().await;
    let integration = sim
        .create_integration(&capture_url, store["identity_url"].as_str().unwrap())
        .await
        .unwrap();
    let form = posts.recv().await.unwrap();
    HeldHandshake {
        store_id: store["id"].as_str().unwrap().to_string(),
        callback: store["callback_url"].as_str().unwrap().to_string(),
        app,
        sim,
        owner,
        integration,
        form,
    }
}

async fn deliver(app: &TestApp, callback: &str, form: &[(String, String)]) -> u16 {
    app.client
        .post(callback)
        .form(form)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test]
async fn an_expired_consumer_fails_the_store_until_magento_reauthorizes() {
    let held = held_handshake().await;
    let (app, sim, owner, integration, form) = (
        &held.app,
        &held.sim,
        &held.owner,
        &held.integration,
        &held.form,
    );
    let (id, callback) = (held.store_id.as_str(), held.callback.as_str());
    // More than Magento's 300 seconds pass before the post reaches catalogd.
    sim.advance_clock(Duration::from_secs(301));
    assert_eq!(deliver(app, callback, form).await, 200);
    let store = settled(app, owner, id).await;
    assert_eq!(store["status"], "failed", "{store}");
    assert!(
        store["status_detail"].as_str().unwrap().contains("expired"),
        "{store}"
    );
    assert!(
        store["status_detail"]
            .as_str()
            .unwrap()
            .contains("Reauthorize"),
        "{store}"
    );
    assert_eq!(store["awaiting_callback"], true);

    // Reauthorize in Magento posts a fresh verifier; this time the exchange succeeds.
    sim.reauthorize(&integration.consumer_key, callback)
        .await
        .unwrap();
    let store = settled(app, owner, id).await;
    assert_eq!(store["status"], "active", "{store}");
}

#[tokio::test]
async fn a_verifier_used_once_cannot_be_exchanged_again() {
    let held = held_handshake().await;
    let (app, sim, owner, integration, form) = (
        &held.app,
        &held.sim,
        &held.owner,
        &held.integration,
        &held.form,
    );
    let (id, callback) = (held.store_id.as_str(), held.callback.as_str());
    let value = |name: &str| form.iter().find(|(k, _)| k == name).unwrap().1.clone();
    // Someone else exchanges the verifier first.
    let consumer = magento::ConsumerCredentials::new(
        value("oauth_consumer_key"),
        value("oauth_consumer_secret"),
    );
    magento::oauth::request_token(
        &egress::Policy::allowing_loopback(),
        &sim.base_url(),
        &consumer,
        magento::SignatureMethod::HmacSha256,
    )
    .await
    .unwrap();

    assert_eq!(deliver(app, callback, form).await, 200);
    let store = settled(app, owner, id).await;
    assert_eq!(store["status"], "failed", "{store}");
    assert!(
        store["status_detail"]
            .as_str()
            .unwrap()
            .contains("Reauthorize"),
        "{store}"
    );

    sim.reauthorize(&integration.consumer_key, callback)
        .await
        .unwrap();
    let store = settled(app, owner, id).await;
    assert_eq!(store["status"], "active", "{store}");
}

#[tokio::test]
async fn disconnecting_deletes_the_tokens_at_once() {
    let app = TestApp::spawn().await;
    let sim = sim().await;
    let owner = app.register("shop@example.com").await;
    let (_, store) = app
        .post(
            &format!("/workspaces/{}/stores", owner.workspace_id),
            Some(&owner.access_token),
            json!({"name": "Sim", "base_url": sim.base_url(), "credentials": credentials_json(&sim)}),
        )
        .await;
    let id = store["id"].as_str().unwrap();
    let callback = store["callback_url"].as_str().unwrap().to_string();
    let (status, gone) = app
        .call(
            reqwest::Method::DELETE,
            &format!("/stores/{id}"),
            Some(&owner.access_token),
            None,
        )
        .await;
    assert_eq!(status, 200, "{gone}");
    assert_eq!(gone["status"], "disconnected");
    assert!(gone["disconnected_at"].is_string());
    assert!(gone["callback_url"].is_null());
    let sealed: Option<Vec<u8>> = sqlx::query_scalar("SELECT credentials FROM stores")
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert!(sealed.is_none(), "tokens must be deleted at once");
    let res = app
        .client
        .post(&callback)
        .form(&[
            ("oauth_consumer_key", "a1"),
            ("oauth_consumer_secret", "b1"),
            ("store_base_url", "http://x/"),
            ("oauth_verifier", "c1"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 404);
    let logged: i64 =
        sqlx::query_scalar("SELECT count(*) FROM audit_log WHERE action = 'store.disconnected'")
            .fetch_one(&app.db)
            .await
            .unwrap();
    assert_eq!(logged, 1);
}

#[tokio::test]
async fn store_access_follows_roles_and_workspaces() {
    let app = TestApp::spawn().await;
    let sim = sim().await;
    let owner = app.register("shop@example.com").await;
    let viewer = app.member(&owner, "viewer@example.com", "viewer").await;
    let other = app.register("other@example.com").await;
    let store = create_pending(&app, &owner, &sim.base_url()).await;
    let id = store["id"].as_str().unwrap();

    let (status, _) = app
        .post(
            &format!("/workspaces/{}/stores", owner.workspace_id),
            Some(&viewer.access_token),
            json!({"name": "x", "base_url": sim.base_url()}),
        )
        .await;
    assert_eq!(status, 403);
    let (status, _) = app
        .get(&format!("/stores/{id}"), &viewer.access_token)
        .await;
    assert_eq!(status, 200);
    let (status, _) = app
        .call(
            reqwest::Method::DELETE,
            &format!("/stores/{id}"),
            Some(&viewer.access_token),
            None,
        )
        .await;
    assert_eq!(status, 403);
    for (method, path) in [
        (reqwest::Method::GET, format!("/stores/{id}")),
        (reqwest::Method::DELETE, format!("/stores/{id}")),
        (reqwest::Method::POST, format!("/stores/{id}/reauthorize")),
    ] {
        let (status, body) = app
            .call(method, &path, Some(&other.access_token), None)
            .await;
        assert_eq!(status, 404, "{path}: {body}");
    }
    let (_, listed) = app
        .get(
            &format!("/workspaces/{}/stores", other.workspace_id),
            &other.access_token,
        )
        .await;
    assert_eq!(listed["items"], json!([]));
}

/// The callback and identity URLs carry the store's link token: only those who connect stores
/// see them. The identity link sends Magento's popup back only to the host Magento reported in
/// a handshake that succeeded, never to the base URL a tenant typed.
#[tokio::test]
async fn link_urls_are_for_admins_and_the_identity_link_trusts_only_verified_magento() {
    let app = TestApp::spawn().await;
    let sim = sim().await;
    let owner = app.register("shop@example.com").await;
    let admin = app.member(&owner, "admin@example.com", "admin").await;
    let store = create_pending(&app, &owner, &sim.base_url()).await;
    let id = store["id"].as_str().unwrap();
    let callback = store["callback_url"].as_str().unwrap().to_string();
    let identity = store["identity_url"].as_str().unwrap().to_string();
    let back = format!(
        "{}admin/admin/integration/loginSuccessCallback/",
        sim.base_url()
    );

    // Before Magento has proved itself, the store's own base URL is only what a tenant typed.
    let res = app
        .client
        .get(&identity)
        .query(&[("success_call_back", back.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 422);

    let ws = owner.workspace_id;
    let key = app.api_key(&owner, "editor").await;
    let mut readers = vec![key];
    for role in ["viewer", "editor", "reviewer"] {
        readers.push(
            app.member(&owner, &format!("{role}@example.com"), role)
                .await
                .access_token,
        );
    }
    for token in &readers {
        let (_, one) = app.get(&format!("/stores/{id}"), token).await;
        let (_, all) = app.get(&format!("/workspaces/{ws}/stores"), token).await;
        for seen in [&one, &all["items"][0]] {
            assert_eq!(seen["id"], id);
            assert!(seen["callback_url"].is_null(), "{seen}");
            assert!(seen["identity_url"].is_null(), "{seen}");
        }
    }
    let (_, seen) = app.get(&format!("/stores/{id}"), &admin.access_token).await;
    assert_eq!(seen["callback_url"], callback.as_str());
    assert_eq!(seen["identity_url"], identity.as_str());

    // Magento posts, the exchange succeeds: now its host is the way back.
    sim.create_integration(&callback, &identity)
        .await
        .expect("Magento reaches the callback");
    let store = settled(&app, &owner, id).await;
    assert_eq!(store["status"], "active", "{store}");
    let res = app
        .client
        .get(&identity)
        .query(&[("success_call_back", back.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 302);
    assert_eq!(res.headers()["location"], back.as_str());
}

#[tokio::test]
async fn magentos_reauthorize_of_a_connected_store_exchanges_again_and_stays_active() {
    let app = TestApp::spawn().await;
    let sim = sim().await;
    let owner = app.register("shop@example.com").await;
    let store = create_pending(&app, &owner, &sim.base_url()).await;
    let id = store["id"].as_str().unwrap();
    let callback = store["callback_url"].as_str().unwrap();
    let integration = sim
        .create_integration(callback, store["identity_url"].as_str().unwrap())
        .await
        .unwrap();
    assert_eq!(settled(&app, &owner, id).await["status"], "active");
    let first_token = sim
        .access_credentials(&integration.consumer_key)
        .unwrap()
        .access_token;

    // A post with the store's consumer key but not its secret is not Magento: refused, and
    // the store keeps working.
    let forged = app
        .client
        .post(callback)
        .form(&[
            ("oauth_consumer_key", integration.consumer_key.as_str()),
            ("oauth_consumer_secret", "abcdefabcdefabcdefabcdefabcdefab"),
            ("store_base_url", sim.base_url().as_str()),
            ("oauth_verifier", "abcdefabcdefabcdefabcdefabcdefab"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), 409);

    // The owner clicks Reauthorize in Magento without telling catalogd: Magento deletes the
    // token and posts the same consumer again.
    sim.reauthorize(&integration.consumer_key, callback)
        .await
        .expect("Magento reaches the callback");
    let store = settled(&app, &owner, id).await;
    assert_eq!(store["status"], "active", "{store}");
    assert_eq!(store["awaiting_callback"], false);
    assert_eq!(
        sim.integration_status(&integration.consumer_key),
        Some(magento_sim::IntegrationStatus::Active)
    );
    let second_token = sim
        .access_credentials(&integration.consumer_key)
        .unwrap()
        .access_token;
    assert_ne!(first_token, second_token);
    let job = app.sync(&owner, id, "full").await;
    assert_eq!(job["status"], "succeeded", "{job}");
    let reauthorized: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM audit_log WHERE action = 'store.callback_received'
           AND (details ->> 'reauthorized_in_magento')::boolean",
    )
    .fetch_one(&app.db)
    .await
    .unwrap();
    assert_eq!(reauthorized, 1);
}
