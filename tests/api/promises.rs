//! One test per promise of the privacy policy (DESIGN.md, "Promises the product makes"), named
//! after it. Each checks the promise end to end through the API, the database and the store;
//! the deeper tests of each area live next to it (see ARCHITECTURE.md, Tests).

use ai::fake::FakeServer;
use base64::Engine;
use magento_sim::{MagentoSim, SimConfig};
use reqwest::Method;
use serde_json::{Value, json};

use crate::cli::catalogd;
use crate::helpers::{JWT_SECRET, PASSWORD, Registered, TestApp, error_code};

async fn shop(app: &TestApp, email: &str, products: usize) -> (MagentoSim, Registered, String) {
    let sim = MagentoSim::start(SimConfig {
        products,
        ..SimConfig::default()
    })
    .await
    .unwrap();
    let owner = app.register(email).await;
    let store_id = app.connect_store(&owner, &sim).await;
    app.sync(&owner, &store_id, "full").await;
    (sim, owner, store_id)
}

async fn job(app: &TestApp, who: &Registered, path: &str, body: Value) -> Value {
    app.run_job(path, &who.access_token, body).await.0
}

#[tokio::test]
async fn passwords_are_stored_only_as_bcrypt_hashes_and_api_keys_only_as_hashes_with_a_short_prefix_shown()
 {
    let app = TestApp::spawn().await;
    let owner = app.register("promise1@example.com").await;
    let hash: String = sqlx::query_scalar("SELECT password_hash FROM users WHERE id = $1")
        .bind(owner.user_id)
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert!(hash.starts_with("$2"), "a bcrypt hash: {hash}");
    assert!(bcrypt::verify(PASSWORD, &hash).unwrap());
    let key = app.api_key(&owner, "editor").await;
    let (_, listed) = app
        .get(
            &format!("/workspaces/{}/api-keys", owner.workspace_id),
            &owner.access_token,
        )
        .await;
    let shown = serde_json::to_string(&listed).unwrap();
    assert!(!shown.contains(&key), "the key is shown only once");
    let prefix = listed["items"][0]["prefix"].as_str().unwrap();
    assert!(prefix.len() <= 12 && key.contains(prefix));
    let everything = crate::secrets::dump_all_tables(&app.db).await;
    assert!(!everything.contains(&key) && !everything.contains(PASSWORD));
}

#[tokio::test]
async fn sessions_are_short_lived_hs256_jwts_with_a_refresh_path_and_expired_or_tampered_tokens_are_refused()
 {
    let app = TestApp::spawn().await;
    let owner = app.register("promise2@example.com").await;
    let decode = |part: &str| -> Value {
        serde_json::from_slice(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(part)
                .unwrap(),
        )
        .unwrap()
    };
    let parts: Vec<&str> = owner.access_token.split('.').collect();
    assert_eq!(decode(parts[0])["alg"], "HS256");
    let claims = decode(parts[1]);
    let lifetime = claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap();
    assert_eq!(lifetime, 900, "15 minutes by default");

    let (status, refreshed) = app
        .post(
            "/auth/refresh",
            None,
            json!({"refresh_token": owner.refresh_token}),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        app.get("/me", refreshed["access_token"].as_str().unwrap())
            .await
            .0,
        200
    );

    // Tampered: one claim changed, signature kept.
    let mut forged = claims.clone();
    forged["sub"] = json!(uuid::Uuid::new_v4());
    let forged_part = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(serde_json::to_vec(&forged).unwrap());
    let tampered = format!("{}.{}.{}", parts[0], forged_part, parts[2]);
    assert_eq!(app.get("/me", &tampered).await.0, 401);
    // Expired: correctly signed, past its expiry.
    let mut old = claims;
    old["iat"] = json!(chrono::Utc::now().timestamp() - 2000);
    old["exp"] = json!(chrono::Utc::now().timestamp() - 1000);
    let expired = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &old,
        &jsonwebtoken::EncodingKey::from_secret(JWT_SECRET.as_bytes()),
    )
    .unwrap();
    assert_eq!(app.get("/me", &expired).await.0, 401);
}

#[tokio::test]
async fn roles_are_per_workspace_and_nobody_reads_or_changes_another_workspaces_data() {
    let app = TestApp::spawn().await;
    let (_sim, owner, store_id) = shop(&app, "promise3@example.com", 5).await;
    let viewer = app.member(&owner, "viewer3@example.com", "viewer").await;
    let stranger = app.register("stranger3@example.com").await;
    let (_, products) = app
        .get(
            &format!("/stores/{store_id}/products?limit=1"),
            &owner.access_token,
        )
        .await;
    let product = products["items"][0]["id"].as_str().unwrap().to_string();
    for path in [
        format!("/stores/{store_id}"),
        format!("/stores/{store_id}/products"),
        format!("/products/{product}"),
        format!("/workspaces/{}/settings", owner.workspace_id),
    ] {
        let (status, body) = app.get(&path, &stranger.access_token).await;
        assert_eq!((status, error_code(&body)), (404, "not_found"), "{path}");
        assert_eq!(app.get(&path, &viewer.access_token).await.0, 200, "{path}");
    }
    let (status, _) = app
        .post(
            &format!("/products/{product}/versions"),
            Some(&stranger.access_token),
            json!({"store_view": "all", "fields": {"name": "Mine now"}}),
        )
        .await;
    assert_eq!(status, 404);
    // A viewer reads but does not change.
    let (status, _) = app
        .post(
            &format!("/products/{product}/versions"),
            Some(&viewer.access_token),
            json!({"store_view": "all", "fields": {"name": "Viewer's name"}}),
        )
        .await;
    assert_eq!(status, 403);
}

#[tokio::test]
async fn connection_secrets_are_encrypted_and_disconnecting_deletes_the_tokens_at_once_and_the_rest_30_days_later()
 {
    let app = TestApp::spawn_with(&[("CATALOGD_RETENTION__SWEEP_IN_SERVE", "false")]).await;
    let (sim, owner, store_id) = shop(&app, "promise4@example.com", 3).await;
    let credentials = sim.credentials();
    let everything = crate::secrets::dump_all_tables(&app.db).await;
    for secret in [
        &credentials.consumer_secret,
        &credentials.access_token_secret,
    ] {
        assert!(!everything.contains(secret.as_str()), "sealed at rest");
    }
    let (status, _) = app
        .call(
            Method::DELETE,
            &format!("/stores/{store_id}"),
            Some(&owner.access_token),
            None,
        )
        .await;
    assert_eq!(status, 200);
    let sealed: Option<Vec<u8>> = sqlx::query_scalar("SELECT credentials FROM stores")
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert!(sealed.is_none(), "tokens deleted at once");
    sqlx::query("UPDATE stores SET disconnected_at = now() - interval '29 days'")
        .execute(&app.db)
        .await
        .unwrap();
    assert_eq!(catalogd(&app, &["retention", "--json"])["stores_purged"], 0);
    sqlx::query("UPDATE stores SET disconnected_at = now() - interval '31 days'")
        .execute(&app.db)
        .await
        .unwrap();
    assert_eq!(catalogd(&app, &["retention", "--json"])["stores_purged"], 1);
    let (_, store) = app
        .get(&format!("/stores/{store_id}"), &owner.access_token)
        .await;
    assert_eq!(store["base_url"], "");
}

#[tokio::test]
async fn product_data_and_every_version_are_kept_and_support_review_and_rollback() {
    let app = TestApp::spawn().await;
    let (_sim, owner, store_id) = shop(&app, "promise5@example.com", 4).await;
    let (_, products) = app
        .get(
            &format!("/stores/{store_id}/products?limit=1"),
            &owner.access_token,
        )
        .await;
    let product = products["items"][0]["id"].as_str().unwrap().to_string();
    let (_, history) = app
        .get(
            &format!("/products/{product}/versions"),
            &owner.access_token,
        )
        .await;
    let original = history["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["store_view"] == "all")
        .unwrap()
        .clone();
    let edit = app
        .approved_edit(
            &owner.access_token,
            &product,
            json!({"store_view": "all", "fields": {"meta_title": "Reviewed title"}}),
        )
        .await;
    job(
        &app,
        &owner,
        &format!("/stores/{store_id}/push"),
        json!({"all_approved": true}),
    )
    .await;
    let (status, rollback) = app
        .post(
            &format!("/products/{product}/rollback"),
            Some(&owner.access_token),
            json!({"version_id": original["id"]}),
        )
        .await;
    assert_eq!(status, 201, "{rollback}");
    assert_eq!(rollback["content"], original["content"]);
    // Nothing was overwritten: the original, the edit and the rollback are all there.
    let (_, history) = app
        .get(
            &format!("/products/{product}/versions?store_view=all"),
            &owner.access_token,
        )
        .await;
    let ids: Vec<&Value> = history["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| &v["id"])
        .collect();
    for id in [&original["id"], &json!(edit), &rollback["id"]] {
        assert!(ids.contains(&id), "{id} kept");
    }
}

#[tokio::test]
async fn media_and_export_files_live_under_a_workspace_prefix_and_are_handed_out_only_through_expiring_links_to_members()
 {
    let app = TestApp::spawn().await;
    let (_sim, owner, store_id) = shop(&app, "promise6@example.com", 5).await;
    let stranger = app.register("stranger6@example.com").await;
    job(
        &app,
        &owner,
        &format!("/stores/{store_id}/media"),
        json!({}),
    )
    .await;
    let started = job(
        &app,
        &owner,
        &format!("/stores/{store_id}/exports"),
        json!({"format": "magento_csv"}),
    )
    .await;
    let keys: Vec<String> = sqlx::query_scalar(
        "SELECT object_key FROM media UNION ALL SELECT object_key FROM exports WHERE object_key IS NOT NULL",
    )
    .fetch_all(&app.db)
    .await
    .unwrap();
    assert!(keys.len() > 1);
    for key in &keys {
        assert!(key.starts_with(&owner.workspace_id.to_string()), "{key}");
    }
    let path = format!("/exports/{}", started["export_id"].as_str().unwrap());
    assert_eq!(app.get(&path, &stranger.access_token).await.0, 404);
    let (_, record) = app.get(&path, &owner.access_token).await;
    let url = record["download_url"].as_str().unwrap();
    let expires: chrono::DateTime<chrono::Utc> =
        record["expires_at"].as_str().unwrap().parse().unwrap();
    let ttl = expires - chrono::Utc::now();
    assert!(ttl <= chrono::Duration::minutes(15) && ttl > chrono::Duration::minutes(14));
    assert_eq!(reqwest::get(url).await.unwrap().status(), 200);
    let tampered = url.replace("signature=", "signature=00");
    assert_eq!(reqwest::get(&tampered).await.unwrap().status(), 403);
}

#[tokio::test]
async fn ai_providers_receive_only_the_minimum_fields_asked_not_to_store_them_and_nothing_when_ai_processing_is_off()
 {
    let fake = FakeServer::start().await;
    let base = fake.base_url();
    let app = TestApp::spawn_with(&[
        ("CATALOGD_AI__PROVIDERS__OPENAI__KIND", "openai"),
        ("CATALOGD_AI__PROVIDERS__OPENAI__BASE_URL", &base),
        ("CATALOGD_AI__PROVIDERS__OPENAI__API_KEY", "sk-fake-key"),
        ("CATALOGD_AI__PROVIDERS__OPENAI__MODEL", "gpt-fake"),
    ])
    .await;
    let (_sim, owner, store_id) = shop(&app, "promise7@example.com", 6).await;
    let enrich = json!({"provider": "openai", "fields": ["meta_title", "description"]});
    job(
        &app,
        &owner,
        &format!("/stores/{store_id}/enrich"),
        enrich.clone(),
    )
    .await;
    let sent = fake.generation_requests();
    assert!(!sent.is_empty());
    for request in &sent {
        let body = request.body.to_string().to_lowercase();
        assert_eq!(request.body["store"], false, "asked not to store");
        for forbidden in [
            "\"price\"",
            "\"cost\"",
            "\"qty\"",
            "stock_item",
            "customer",
            "api_key",
        ] {
            assert!(!body.contains(forbidden), "{forbidden} sent: {body}");
        }
    }
    let (status, _) = app
        .call(
            Method::PUT,
            &format!("/workspaces/{}/settings", owner.workspace_id),
            Some(&owner.access_token),
            Some(json!({"ai_processing": false})),
        )
        .await;
    assert_eq!(status, 200);
    let before = fake.request_count();
    let (status, refused) = app
        .post(
            &format!("/stores/{store_id}/enrich"),
            Some(&owner.access_token),
            enrich,
        )
        .await;
    assert!(
        status == 409 || status == 422 || status == 403,
        "{status} {refused}"
    );
    assert_eq!(fake.request_count(), before, "nothing sent");
}

#[tokio::test]
async fn job_logs_request_logs_and_usage_rows_are_kept_only_for_their_configured_periods() {
    let app = TestApp::spawn_with(&[("CATALOGD_RETENTION__SWEEP_IN_SERVE", "false")]).await;
    let (_sim, owner, _store_id) = shop(&app, "promise8@example.com", 3).await;
    let exec = |sql: &'static str| sqlx::query(sql).execute(&app.db);
    exec("UPDATE job_logs SET created_at = now() - interval '31 days'")
        .await
        .unwrap();
    exec("INSERT INTO audit_log (workspace_id, action, client_addr, created_at) SELECT id, 'test.old', '198.51.100.1', now() - interval '91 days' FROM workspaces")
        .await
        .unwrap();
    sqlx::query(
        "INSERT INTO ai_usage (workspace_id, provider, model, day, requests, input_tokens, output_tokens)
         VALUES ($1, 'rules', 'templates', (now() - interval '91 days')::date, 1, 1, 1)",
    )
    .bind(owner.workspace_id)
    .execute(&app.db)
    .await
    .unwrap();
    let report = catalogd(&app, &["retention", "--json"]);
    assert!(report["job_log_lines"].as_u64().unwrap() > 0, "{report}");
    assert!(
        report["audit_addresses_forgotten"].as_u64().unwrap() > 0,
        "{report}"
    );
    assert_eq!(report["usage_days_aggregated"], 1, "{report}");
    let left: i64 = sqlx::query_scalar(
        "SELECT (SELECT count(*) FROM job_logs WHERE created_at < now() - interval '30 days')
              + (SELECT count(*) FROM audit_log WHERE client_addr IS NOT NULL AND created_at < now() - interval '90 days')
              + (SELECT count(*) FROM ai_usage WHERE day < now() - interval '90 days')",
    )
    .fetch_one(&app.db)
    .await
    .unwrap();
    assert_eq!(left, 0);
}

#[tokio::test]
async fn users_can_export_all_their_data_and_delete_their_account_personal_data_at_once_the_rest_within_30_days()
 {
    let app = TestApp::spawn_with(&[("CATALOGD_RETENTION__SWEEP_IN_SERVE", "false")]).await;
    let (_sim, owner, _store_id) = shop(&app, "promise9@example.com", 3).await;
    let response = app
        .client
        .get(app.url("/me/export"))
        .bearer_auth(&owner.access_token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(
        response.bytes().await.unwrap().to_vec(),
    ))
    .unwrap();
    let mut account = String::new();
    std::io::Read::read_to_string(&mut archive.by_name("account.json").unwrap(), &mut account)
        .unwrap();
    assert!(account.contains("promise9@example.com"));
    job(
        &app,
        &owner,
        &format!("/workspaces/{}/exports", owner.workspace_id),
        json!({"format": "workspace_archive"}),
    )
    .await;

    let (status, _) = app
        .call(
            Method::DELETE,
            "/me",
            Some(&owner.access_token),
            Some(json!({"password": PASSWORD})),
        )
        .await;
    assert_eq!(status, 200);
    let users: i64 = sqlx::query_scalar("SELECT count(*) FROM users WHERE id = $1")
        .bind(owner.user_id)
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert_eq!(users, 0, "personal data at once");
    assert_eq!(
        catalogd(&app, &["retention", "--json"])["workspaces_deleted"],
        1
    );
    let products: i64 = sqlx::query_scalar("SELECT count(*) FROM products")
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert_eq!(products, 0, "workspace content by the sweep");
}

#[tokio::test]
async fn two_factor_login_is_optional_and_login_attempts_are_rate_limited() {
    let app = TestApp::spawn().await;
    let owner = app.register("promise10@example.com").await;
    let (_, me) = app.get("/me", &owner.access_token).await;
    assert_eq!(me["totp_enabled"], false, "optional: off until switched on");
    let (status, enrolment) = app
        .post("/me/totp", Some(&owner.access_token), json!({}))
        .await;
    assert_eq!(status, 201, "{enrolment}");
    let login = json!({"email": "promise10@example.com", "password": PASSWORD});
    assert_eq!(
        app.post("/auth/login", None, login.clone()).await.0,
        200,
        "not on before a code confirms it"
    );
    let mut limited = false;
    for _ in 0..40 {
        let (status, body) = app
            .post(
                "/auth/login",
                None,
                json!({"email": "promise10@example.com", "password": "not the password"}),
            )
            .await;
        if status == 429 {
            assert_eq!(error_code(&body), "rate_limited");
            limited = true;
            break;
        }
        assert_eq!(status, 401);
    }
    assert!(limited, "login attempts are rate limited");
}

#[tokio::test]
async fn security_relevant_actions_are_written_to_the_workspace_audit_log() {
    let app = TestApp::spawn().await;
    let (_sim, owner, store_id) = shop(&app, "promise11@example.com", 5).await;
    let leaving = app.member(&owner, "leaving11@example.com", "editor").await;
    let token = owner.access_token.as_str();
    app.post(
        "/auth/login",
        None,
        json!({"email": "promise11@example.com", "password": PASSWORD}),
    )
    .await;
    let key = app
        .post(
            &format!("/workspaces/{}/api-keys", owner.workspace_id),
            Some(token),
            json!({"name": "k", "role": "viewer"}),
        )
        .await
        .1;
    app.call(
        Method::DELETE,
        &format!(
            "/workspaces/{}/api-keys/{}",
            owner.workspace_id,
            key["id"].as_str().unwrap()
        ),
        Some(token),
        None,
    )
    .await;
    let (_, products) = app
        .get(&format!("/stores/{store_id}/products?limit=1"), token)
        .await;
    let product = products["items"][0]["id"].as_str().unwrap().to_string();
    app.approved_edit(
        token,
        &product,
        json!({"store_view": "all", "fields": {"meta_title": "Logged"}}),
    )
    .await;
    job(
        &app,
        &owner,
        &format!("/stores/{store_id}/push"),
        json!({"all_approved": true}),
    )
    .await;
    let export = job(
        &app,
        &owner,
        &format!("/stores/{store_id}/exports"),
        json!({"format": "magento_csv"}),
    )
    .await;
    let (_, record) = app
        .get(
            &format!("/exports/{}", export["export_id"].as_str().unwrap()),
            token,
        )
        .await;
    reqwest::get(record["download_url"].as_str().unwrap())
        .await
        .unwrap();
    app.call(
        Method::DELETE,
        "/me",
        Some(&leaving.access_token),
        Some(json!({"password": PASSWORD})),
    )
    .await;
    app.call(
        Method::DELETE,
        &format!("/stores/{store_id}"),
        Some(token),
        None,
    )
    .await;

    let (_, log) = app
        .get(
            &format!("/workspaces/{}/audit-log?limit=200", owner.workspace_id),
            token,
        )
        .await;
    let actions: Vec<&str> = log["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["action"].as_str())
        .collect();
    for action in [
        "auth.login",
        "api_key.created",
        "api_key.revoked",
        "store.connected",
        "store.disconnected",
        "proposal.approved",
        "store.push_started",
        "file.downloaded",
        "account.deleted",
    ] {
        assert!(
            actions.contains(&action),
            "{action} missing from {actions:?}"
        );
    }
    // Read-only through the API.
    let (status, _) = app
        .call(
            Method::DELETE,
            &format!("/workspaces/{}/audit-log", owner.workspace_id),
            Some(token),
            None,
        )
        .await;
    assert_eq!(status, 405);
}
