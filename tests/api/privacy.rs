//! The privacy policy's promises about accounts: two-factor login, rectification, account
//! deletion and the retention sweep.

use std::time::Duration;

use catalogd::auth::totp;
use magento_sim::{MagentoSim, SimConfig};
use reqwest::Method;
use serde_json::{Value, json};

use crate::cli::catalogd;
use crate::helpers::{PASSWORD, Registered, TestApp, error_code};

/// RFC 4648 base32 decoding, written apart from the daemon's encoder so the test checks it.
fn decode_base32(text: &str) -> Vec<u8> {
    let mut out = Vec::new();
    let (mut buffer, mut bits) = (0u32, 0);
    for c in text.chars().filter(|c| *c != '=') {
        let value = match c {
            'A'..='Z' => c as u32 - 'A' as u32,
            '2'..='7' => c as u32 - '2' as u32 + 26,
            other => panic!("not base32: {other:?}"),
        };
        buffer = (buffer << 5) | value;
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            out.push((buffer >> bits) as u8);
            buffer &= (1 << bits) - 1;
        }
    }
    out
}

/// These tests sweep through the CLI; the app's own scheduled sweep would race them.
const NO_SCHEDULED_SWEEP: &[(&str, &str)] = &[("CATALOGD_RETENTION__SWEEP_IN_SERVE", "false")];

pub(crate) fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

pub(crate) async fn login(
    app: &TestApp,
    email: &str,
    password: &str,
    totp: Option<&str>,
) -> (u16, Value) {
    let mut body = json!({"email": email, "password": password});
    if let Some(code) = totp {
        body["totp"] = json!(code);
    }
    app.post("/auth/login", None, body).await
}

/// Enrols and confirms two-factor login; returns the secret and the recovery codes.
pub(crate) async fn enable_totp(app: &TestApp, who: &Registered) -> (Vec<u8>, Vec<String>) {
    let (status, enrolment) = app
        .post("/me/totp", Some(&who.access_token), json!({}))
        .await;
    assert_eq!(status, 201, "{enrolment}");
    let secret = decode_base32(enrolment["secret"].as_str().unwrap());
    assert_eq!(secret.len(), totp::SECRET_BYTES);
    let uri = enrolment["otpauth_uri"].as_str().unwrap();
    assert!(uri.starts_with("otpauth://totp/catalogd%3A"), "{uri}");
    assert!(uri.contains(enrolment["secret"].as_str().unwrap()));

    let (status, body) = app
        .post(
            "/me/totp/confirm",
            Some(&who.access_token),
            json!({"code": "000000"}),
        )
        .await;
    // One in a million the zero code is the right one; the wrong-code path is what is tested.
    if status != 200 {
        assert_eq!(status, 422, "{body}");
        let code = totp::code_at(&secret, now());
        let (status, body) = app
            .post(
                "/me/totp/confirm",
                Some(&who.access_token),
                json!({"code": code}),
            )
            .await;
        assert_eq!(status, 200, "{body}");
        let codes: Vec<String> = body["recovery_codes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c.as_str().unwrap().to_string())
            .collect();
        return (secret, codes);
    }
    panic!("the zero code happened to be right; run again");
}

#[tokio::test]
async fn optional_totp_two_factor_login_with_single_use_codes_and_recovery_codes() {
    let app = TestApp::spawn().await;
    let who = app.register("twofactor@example.com").await;
    let (_, me) = app.get("/me", &who.access_token).await;
    assert_eq!(me["totp_enabled"], false);

    let (secret, recovery) = enable_totp(&app, &who).await;
    assert_eq!(recovery.len(), 10);
    let (_, me) = app.get("/me", &who.access_token).await;
    assert_eq!(me["totp_enabled"], true);

    // The secret is stored sealed, never as itself or its base32 form.
    let stored: Vec<u8> = sqlx::query_scalar("SELECT totp_secret FROM users WHERE id = $1")
        .bind(who.user_id)
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert!(!stored.windows(secret.len()).any(|w| w == secret));
    let hashes: Vec<Vec<u8>> =
        sqlx::query_scalar("SELECT code_hash FROM totp_recovery_codes WHERE user_id = $1")
            .bind(who.user_id)
            .fetch_all(&app.db)
            .await
            .unwrap();
    assert_eq!(hashes.len(), 10);
    assert!(
        hashes
            .iter()
            .all(|h| !recovery.iter().any(|c| h == c.as_bytes()))
    );

    let email = "twofactor@example.com";
    let (status, body) = login(&app, email, PASSWORD, None).await;
    assert_eq!((status, error_code(&body)), (401, "totp_required"));
    let (status, body) = login(&app, email, PASSWORD, Some("123456x")).await;
    assert_eq!((status, error_code(&body)), (401, "totp_required"));
    // The password is still checked first: a right code with a wrong password is refused.
    let next = totp::code_at(&secret, now() + totp::STEP_SECS);
    let (status, _) = login(&app, email, "wrong password!", Some(&next)).await;
    assert_eq!(status, 401);

    // The confirmation spent the current step, so the next step's code is the next good one.
    let (status, body) = login(&app, email, PASSWORD, Some(&next)).await;
    assert_eq!(status, 200, "{body}");
    assert!(body["access_token"].is_string());
    let (status, body) = login(&app, email, PASSWORD, Some(&next)).await;
    assert_eq!(
        (status, error_code(&body)),
        (401, "totp_required"),
        "a code works once"
    );

    let (status, body) = login(&app, email, PASSWORD, Some(&recovery[0].to_uppercase())).await;
    assert_eq!(status, 200, "{body}");
    let (status, _) = login(&app, email, PASSWORD, Some(&recovery[0])).await;
    assert_eq!(status, 401, "a recovery code works once");

    // Logins with each factor are in the audit log.
    let (_, log) = app
        .get(
            &format!("/workspaces/{}/audit-log", who.workspace_id),
            &who.access_token,
        )
        .await;
    let factors: Vec<&str> = log["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "auth.login")
        .filter_map(|e| e["details"]["second_factor"].as_str())
        .collect();
    assert_eq!(factors, ["recovery_code", "totp"]);
    assert!(
        log["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["action"] == "auth.totp_enabled")
    );

    // Switching it off needs the password.
    let (status, _) = app
        .call(
            Method::DELETE,
            "/me/totp",
            Some(&who.access_token),
            Some(json!({"password": "not the password"})),
        )
        .await;
    assert_eq!(status, 422);
    let (status, _) = app
        .call(
            Method::DELETE,
            "/me/totp",
            Some(&who.access_token),
            Some(json!({"password": PASSWORD})),
        )
        .await;
    assert_eq!(status, 204);
    let (status, _) = login(&app, email, PASSWORD, None).await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn a_workspace_owner_can_require_two_factor_login_of_every_member() {
    let app = TestApp::spawn().await;
    let owner = app.register("owner@example.com").await;
    let admin = app.member(&owner, "admin@example.com", "admin").await;
    let editor = app.member(&owner, "editor@example.com", "editor").await;
    let key = app.api_key(&owner, "viewer").await;
    let ws = owner.workspace_id;
    let settings = format!("/workspaces/{ws}/settings");
    let stores = format!("/workspaces/{ws}/stores");

    // Only an owner decides, and only once they use it themselves.
    let (status, body) = app
        .call(
            Method::PUT,
            &settings,
            Some(&admin.access_token),
            Some(json!({"require_totp": true})),
        )
        .await;
    assert_eq!((status, error_code(&body)), (403, "forbidden"));
    let (status, body) = app
        .call(
            Method::PUT,
            &settings,
            Some(&owner.access_token),
            Some(json!({"require_totp": true})),
        )
        .await;
    assert_eq!((status, error_code(&body)), (409, "conflict"));
    enable_totp(&app, &owner).await;
    let (status, body) = app
        .call(
            Method::PUT,
            &settings,
            Some(&owner.access_token),
            Some(json!({"require_totp": true})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["require_totp"], true);

    // Members without it are refused everywhere in the workspace until they enrol.
    let (status, body) = app.get(&stores, &editor.access_token).await;
    assert_eq!((status, error_code(&body)), (403, "totp_setup_required"));
    let (status, _) = app.get(&stores, &owner.access_token).await;
    assert_eq!(status, 200);
    // API keys are not people: the setting does not apply to them.
    let (status, _) = app.get(&stores, &key).await;
    assert_eq!(status, 200);
    // The account's export holds that workspace's data too: refused the same way.
    let (status, body) = app.get("/me/export", &editor.access_token).await;
    assert_eq!((status, error_code(&body)), (403, "totp_setup_required"));
    enable_totp(&app, &editor).await;
    let (status, _) = app.get(&stores, &editor.access_token).await;
    assert_eq!(status, 200);
    let (status, _) = app.get("/me/export", &editor.access_token).await;
    assert_eq!(status, 200);
    // While required, a member cannot switch their own second factor off.
    let (status, body) = app
        .call(
            Method::DELETE,
            "/me/totp",
            Some(&editor.access_token),
            Some(json!({"password": PASSWORD})),
        )
        .await;
    assert_eq!((status, error_code(&body)), (409, "conflict"));
}

#[tokio::test]
async fn users_can_rectify_their_name_email_and_password() {
    let app = TestApp::spawn().await;
    let who = app.register("rectify@example.com").await;
    app.register("taken@example.com").await;

    let (status, body) = app
        .call(
            Method::PATCH,
            "/me",
            Some(&who.access_token),
            Some(json!({"name": "Corrected Name"})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["name"], "Corrected Name");

    // The email changes only with the password, and never to someone else's.
    let (status, body) = app
        .call(
            Method::PATCH,
            "/me",
            Some(&who.access_token),
            Some(json!({"email": "new@example.com"})),
        )
        .await;
    assert_eq!(
        (status, body["error"]["field"].as_str()),
        (422, Some("current_password"))
    );
    let (status, body) = app
        .call(
            Method::PATCH,
            "/me",
            Some(&who.access_token),
            Some(json!({"email": "taken@example.com", "current_password": PASSWORD})),
        )
        .await;
    assert_eq!((status, error_code(&body)), (409, "conflict"));
    let (status, body) = app
        .call(
            Method::PATCH,
            "/me",
            Some(&who.access_token),
            Some(json!({"email": "new@example.com", "current_password": PASSWORD})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["email"], "new@example.com");
    assert_eq!(
        login(&app, "rectify@example.com", PASSWORD, None).await.0,
        401
    );
    let (status, second) = login(&app, "new@example.com", PASSWORD, None).await;
    assert_eq!(status, 200);

    // A new password ends every session: both logins' tokens stop working at once.
    let new_password = "a much longer new password";
    let (status, body) = app
        .call(
            Method::PATCH,
            "/me",
            Some(&who.access_token),
            Some(json!({"password": new_password, "current_password": "wrong password!"})),
        )
        .await;
    assert_eq!(status, 422, "{body}");
    let (status, body) = app
        .call(
            Method::PATCH,
            "/me",
            Some(&who.access_token),
            Some(json!({"password": new_password, "current_password": PASSWORD})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["sessions_revoked"], 2);
    for token in [
        who.access_token.as_str(),
        second["access_token"].as_str().unwrap(),
    ] {
        assert_eq!(app.get("/me", token).await.0, 401);
    }
    let (status, _) = app
        .post(
            "/auth/refresh",
            None,
            json!({"refresh_token": who.refresh_token}),
        )
        .await;
    assert_eq!(status, 401);
    let fresh = body["session"]["access_token"].as_str().unwrap();
    assert_eq!(app.get("/me", fresh).await.0, 200);
    assert_eq!(login(&app, "new@example.com", PASSWORD, None).await.0, 401);
    assert_eq!(
        login(&app, "new@example.com", new_password, None).await.0,
        200
    );
}

async fn count(app: &TestApp, sql: &str, id: uuid::Uuid) -> i64 {
    sqlx::query_scalar(sqlx::AssertSqlSafe(sql.to_string()))
        .bind(id)
        .fetch_one(&app.db)
        .await
        .unwrap()
}

#[tokio::test]
async fn deleting_an_account_removes_personal_data_at_once_and_workspace_content_by_the_sweep() {
    let app = TestApp::spawn_with(NO_SCHEDULED_SWEEP).await;
    let sim = MagentoSim::start(SimConfig {
        products: 12,
        ..SimConfig::default()
    })
    .await
    .unwrap();
    let leaving = app.register("leaving@example.com").await;
    let other = app.register("stays@example.com").await;
    // `leaving` also helps in `other`'s workspace, as an admin who made an API key there.
    app.invite_and_accept(
        other.workspace_id,
        &other,
        &leaving,
        "leaving@example.com",
        "admin",
    )
    .await;
    let (status, key) = app
        .post(
            &format!("/workspaces/{}/api-keys", other.workspace_id),
            Some(&leaving.access_token),
            json!({"name": "leaving's key", "role": "editor"}),
        )
        .await;
    assert_eq!(status, 201);
    let key = key["key"].as_str().unwrap().to_string();

    // The workspace `leaving` alone owns has a synced catalog and an export file.
    let store_id = app.connect_store(&leaving, &sim).await;
    app.sync(&leaving, &store_id, "full").await;
    let (_, _) = app
        .run_job(
            &format!("/stores/{store_id}/exports"),
            &leaving.access_token,
            json!({"format": "magento_csv"}),
        )
        .await;
    let objects_dir = app
        .data_dir
        .join("objects")
        .join(leaving.workspace_id.to_string());
    assert!(objects_dir.exists());

    let (status, report) = app
        .call(
            Method::DELETE,
            "/me",
            Some(&leaving.access_token),
            Some(json!({"password": PASSWORD})),
        )
        .await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(
        report["workspaces_scheduled_for_deletion"],
        json!([leaving.workspace_id])
    );
    assert_eq!(report["workspaces_left"], json!([other.workspace_id]));
    assert_eq!(report["api_keys_deleted"], 1);

    // Personal data is gone at once: no row holds the address, the tokens and the key are dead.
    assert_eq!(
        count(
            &app,
            "SELECT count(*) FROM users WHERE id = $1",
            leaving.user_id
        )
        .await,
        0
    );
    assert_eq!(
        count(
            &app,
            "SELECT count(*) FROM sessions WHERE user_id = $1",
            leaving.user_id
        )
        .await,
        0
    );
    assert_eq!(app.get("/me", &leaving.access_token).await.0, 401);
    let (status, _) = app
        .post(
            "/auth/refresh",
            None,
            json!({"refresh_token": leaving.refresh_token}),
        )
        .await;
    assert_eq!(status, 401);
    assert_eq!(
        login(&app, "leaving@example.com", PASSWORD, None).await.0,
        401
    );
    assert_eq!(
        app.get(&format!("/workspaces/{}/stores", other.workspace_id), &key)
            .await
            .0,
        401
    );

    // The other workspace keeps its content; its audit log keeps the entries, not the name.
    let (status, log) = app
        .get(
            &format!("/workspaces/{}/audit-log", other.workspace_id),
            &other.access_token,
        )
        .await;
    assert_eq!(status, 200);
    let entries = log["items"].as_array().unwrap();
    let deleted = entries
        .iter()
        .find(|e| e["action"] == "account.deleted")
        .expect("the deletion is in the workspace's audit log");
    assert!(deleted["actor_user_id"].is_null() && deleted["actor_email"].is_null());
    assert!(entries.iter().any(|e| e["action"] == "api_key.created"));

    // The closed workspace is unreachable until the sweep deletes it with its objects.
    assert_eq!(
        count(
            &app,
            "SELECT count(*) FROM memberships WHERE workspace_id = $1",
            leaving.workspace_id
        )
        .await,
        0
    );
    let swept = catalogd(&app, &["retention", "--json"]);
    assert_eq!(swept["workspaces_deleted"], 1, "{swept}");
    assert!(swept["objects_deleted"].as_u64().unwrap() >= 1, "{swept}");
    assert!(!objects_dir.exists());
    for table in [
        "workspaces WHERE id",
        "products WHERE workspace_id",
        "product_versions WHERE workspace_id",
        "exports WHERE workspace_id",
        "job_runs WHERE workspace_id",
    ] {
        assert_eq!(
            count(
                &app,
                &format!("SELECT count(*) FROM {table} = $1"),
                leaving.workspace_id
            )
            .await,
            0,
            "{table}"
        );
    }
    let (status, _) = app
        .get(
            &format!("/workspaces/{}/stores", other.workspace_id),
            &other.access_token,
        )
        .await;
    assert_eq!(status, 200);
    // Nothing anywhere holds the address any more (the closed workspace was named after it).
    let everything = crate::secrets::dump_all_tables(&app.db).await;
    assert!(
        !everything.contains("leaving@example.com"),
        "{}",
        everything
            .lines()
            .filter(|l| l.contains("leaving@example.com"))
            .collect::<Vec<_>>()
            .join("\n")
    );
    let logged: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM audit_log WHERE action = 'retention.workspace_deleted' AND target_id = $1",
    )
    .bind(leaving.workspace_id.to_string())
    .fetch_one(&app.db)
    .await
    .unwrap();
    assert_eq!(logged, 1);
}

#[tokio::test]
async fn job_logs_request_records_usage_and_disconnected_stores_are_purged_on_schedule() {
    let app = TestApp::spawn_with(NO_SCHEDULED_SWEEP).await;
    let sim = MagentoSim::start(SimConfig {
        products: 3,
        ..SimConfig::default()
    })
    .await
    .unwrap();
    let owner = app.register("retention@example.com").await;
    let ws = owner.workspace_id;
    let store_id = app.connect_store(&owner, &sim).await;
    let job = app.sync(&owner, &store_id, "full").await;
    let job_id: uuid::Uuid = job["id"].as_str().unwrap().parse().unwrap();
    let db = &app.db;
    let exec = |sql: &'static str| async move {
        sqlx::query(sql).execute(db).await.unwrap();
    };

    // Back-date: the sync's log is 31 days old, plus one fresh line; an ended login 100 days
    // ago; audit entries' addresses 100 days old; usage 100 and 10 days old.
    exec("UPDATE job_logs SET created_at = now() - interval '31 days'").await;
    let old_lines = count(
        &app,
        "SELECT count(*) FROM job_logs WHERE job_id = $1",
        job_id,
    )
    .await;
    assert!(old_lines > 0);
    sqlx::query("INSERT INTO job_logs (job_id, level, message) VALUES ($1, 'info', 'fresh')")
        .bind(job_id)
        .execute(db)
        .await
        .unwrap();
    // A second login, ended long ago (the owner's own session stays live).
    let (status, old_login) = login(&app, "retention@example.com", PASSWORD, None).await;
    assert_eq!(status, 200);
    let (status, _) = app
        .post(
            "/auth/refresh",
            None,
            json!({"refresh_token": old_login["refresh_token"]}),
        )
        .await;
    assert_eq!(status, 200);
    let owner_session: uuid::Uuid = sqlx::query_scalar(
        "SELECT s.id FROM sessions s JOIN refresh_tokens t ON t.session_id = s.id
         WHERE t.token_hash = sha256($1::bytea)",
    )
    .bind(owner.refresh_token.as_bytes())
    .fetch_one(db)
    .await
    .unwrap();
    sqlx::query("UPDATE sessions SET created_at = now() - interval '100 days', revoked_at = now() - interval '95 days' WHERE id <> $1")
        .bind(owner_session)
        .execute(db)
        .await
        .unwrap();
    sqlx::query("UPDATE refresh_tokens SET created_at = now() - interval '100 days', expires_at = now() - interval '95 days' WHERE session_id <> $1")
        .bind(owner_session)
        .execute(db)
        .await
        .unwrap();
    exec("INSERT INTO audit_log (workspace_id, action, client_addr, created_at) SELECT id, 'test.old', '203.0.113.9', now() - interval '100 days' FROM workspaces").await;
    sqlx::query(
        "INSERT INTO ai_usage (workspace_id, provider, model, day, requests, input_tokens, output_tokens) VALUES
            ($1, 'rules', 'templates', (now() - interval '100 days')::date, 3, 30, 300),
            ($1, 'rules', 'templates', (now() - interval '101 days')::date, 2, 20, 200),
            ($1, 'rules', 'templates', (now() - interval '10 days')::date, 1, 10, 100)",
    )
    .bind(ws)
    .execute(db)
    .await
    .unwrap();

    // A store disconnected 31 days ago; its catalog stays.
    let (status, _) = app
        .call(
            Method::DELETE,
            &format!("/stores/{store_id}"),
            Some(&owner.access_token),
            None,
        )
        .await;
    assert_eq!(status, 200);
    exec("UPDATE stores SET disconnected_at = now() - interval '31 days'").await;
    let products_before = count(
        &app,
        "SELECT count(*) FROM products WHERE workspace_id = $1",
        ws,
    )
    .await;

    let report = catalogd(&app, &["retention", "--json"]);
    assert_eq!(report["job_log_lines"], old_lines, "{report}");
    assert_eq!(report["usage_days_aggregated"], 2, "{report}");
    assert_eq!(report["stores_purged"], 1, "{report}");
    assert_eq!(report["sessions"], 1, "{report}");
    assert_eq!(report["refresh_tokens"], 2, "{report}");
    assert_eq!(
        count(
            &app,
            "SELECT count(*) FROM sessions WHERE id = $1",
            owner_session
        )
        .await,
        1
    );
    assert!(
        report["audit_addresses_forgotten"].as_u64().unwrap() >= 1,
        "{report}"
    );

    assert_eq!(
        count(
            &app,
            "SELECT count(*) FROM job_logs WHERE job_id = $1",
            job_id
        )
        .await,
        1,
        "the fresh line stays"
    );
    assert_eq!(
        count(&app, "SELECT count(*) FROM audit_log WHERE workspace_id = $1 AND action = 'test.old' AND client_addr IS NOT NULL", ws).await,
        0
    );
    assert_eq!(
        count(
            &app,
            "SELECT count(*) FROM audit_log WHERE workspace_id = $1 AND action = 'test.old'",
            ws
        )
        .await,
        1,
        "the entry itself stays"
    );
    let monthly: Vec<(i64, i64, i64)> = sqlx::query_as(
        "SELECT sum(requests)::bigint, sum(input_tokens)::bigint, sum(output_tokens)::bigint
         FROM ai_usage_monthly WHERE workspace_id = $1",
    )
    .bind(ws)
    .fetch_all(db)
    .await
    .unwrap();
    assert_eq!(monthly, [(5, 50, 500)]);
    assert_eq!(
        count(
            &app,
            "SELECT count(*) FROM ai_usage WHERE workspace_id = $1",
            ws
        )
        .await,
        1
    );
    let (_, store) = app
        .get(&format!("/stores/{store_id}"), &owner.access_token)
        .await;
    assert_eq!(store["base_url"], "", "{store}");
    // Each store view's URLs are the store's URL too; the views themselves stay.
    let views = store["store_views"].as_array().unwrap();
    assert_eq!(views.len(), 3, "{store}");
    for view in views {
        assert!(view["base_url"].is_null(), "{store}");
        assert!(view["base_media_url"].is_null(), "{store}");
        assert!(view["code"].is_string(), "{store}");
    }
    let stored: String =
        sqlx::query_scalar("SELECT store_views::text FROM stores WHERE id = $1::uuid")
            .bind(&store_id)
            .fetch_one(db)
            .await
            .unwrap();
    assert!(!stored.contains("http"), "{stored}");
    assert_eq!(
        count(
            &app,
            "SELECT count(*) FROM products WHERE workspace_id = $1",
            ws
        )
        .await,
        products_before
    );

    // Each workspace-scoped purge is counted in that workspace's audit log.
    let (_, log) = app
        .get(&format!("/workspaces/{ws}/audit-log"), &owner.access_token)
        .await;
    let actions: Vec<&str> = log["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["action"].as_str())
        .collect();
    for action in [
        "retention.job_logs_purged",
        "retention.usage_aggregated",
        "retention.store_connection_purged",
    ] {
        assert!(
            actions.contains(&action),
            "{action} missing from {actions:?}"
        );
    }

    // A second sweep finds nothing left to do.
    let again = catalogd(&app, &["retention", "--json"]);
    for field in [
        "job_log_lines",
        "usage_days_aggregated",
        "stores_purged",
        "workspaces_deleted",
        "audit_addresses_forgotten",
    ] {
        assert_eq!(again[field], 0, "{field}: {again}");
    }
}

#[tokio::test]
async fn the_sweep_runs_once_per_interval_however_many_processes_look() {
    let app = TestApp::spawn_with(NO_SCHEDULED_SWEEP).await;
    assert!(catalogd::retention::claim(&app.db, 24).await.unwrap());
    let claims =
        futures::future::join_all((0..8).map(|_| catalogd::retention::claim(&app.db, 24))).await;
    assert!(claims.iter().all(|c| !c.as_ref().unwrap()), "{claims:?}");

    // Once the interval has passed, eight processes looking at once start one sweep.
    sqlx::query("UPDATE maintenance_runs SET last_started_at = now() - interval '25 hours'")
        .execute(&app.db)
        .await
        .unwrap();
    let claims =
        futures::future::join_all((0..8).map(|_| catalogd::retention::claim(&app.db, 24))).await;
    let won = claims.iter().filter(|c| *c.as_ref().unwrap()).count();
    assert_eq!(won, 1, "{claims:?}");
}

#[tokio::test]
async fn session_signing_keys_rotate_with_a_grace_period_for_issued_tokens() {
    let app = TestApp::spawn().await;
    let data_dir = app.data_dir.join("rotation");
    let run = |args: &[&str], jwt: &str| {
        std::process::Command::new(env!("CARGO_BIN_EXE_catalogd"))
            .args(args)
            .envs(crate::helpers::test_env(&app.db_name, &data_dir))
            .env("CATALOGD_JWT_SECRET", jwt)
            .output()
            .unwrap()
    };
    // A configured key is rotated by the operator, not by the command: it says how.
    let out = run(
        &["rotate-jwt-key"],
        "a configured signing key of at least 32 bytes",
    );
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("CATALOGD_PREVIOUS_JWT_SECRETS"));

    let env = |data_dir: &std::path::Path| {
        let mut env = crate::helpers::test_env(&app.db_name, data_dir);
        env.retain(|(k, _)| k != "CATALOGD_JWT_SECRET");
        env
    };
    let settings = catalogd::config::Settings::load_from(None, env(&data_dir)).unwrap();
    let before = catalogd::secrets::KeyMaterial::load_or_generate(&settings).unwrap();
    let old_keys = catalogd::auth::tokens::JwtKeys::new(&before, 900);
    let user = uuid::Uuid::now_v7();
    let token = old_keys.issue(user, uuid::Uuid::now_v7(), 900).unwrap();

    let out = run(&["rotate-jwt-key", "--json"], "");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let printed: Value = serde_json::from_slice(&out.stdout).unwrap();
    let after = catalogd::secrets::KeyMaterial::load_or_generate(&settings).unwrap();
    assert_eq!(
        printed["key_id"],
        catalogd::auth::tokens::key_id(secrecy::ExposeSecret::expose_secret(&after.jwt_secret))
    );
    assert_eq!(after.previous_jwt_secrets.len(), 1);
    let new_keys = catalogd::auth::tokens::JwtKeys::new(&after, 900);
    assert_eq!(new_keys.verify(&token).map(|c| c.sub), Some(user));
    // With no grace left, the old key's tokens are refused.
    let strict = catalogd::auth::tokens::JwtKeys::new(&after, 0);
    assert!(strict.verify(&token).is_none());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(data_dir.join("jwt.key.previous"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}

#[tokio::test]
async fn every_response_carries_the_security_headers() {
    let app = TestApp::spawn().await;
    for path in [
        "/healthz",
        "/api/v1/openapi.json",
        "/api/v1/me",
        "/api/v1/nowhere",
    ] {
        let response = app.client.get(app.url(path)).send().await.unwrap();
        let headers = response.headers();
        for (name, value) in [
            ("x-content-type-options", "nosniff"),
            ("x-frame-options", "DENY"),
            ("referrer-policy", "no-referrer"),
            ("cache-control", "no-store"),
            ("cross-origin-resource-policy", "same-origin"),
        ] {
            assert_eq!(
                headers.get(name).and_then(|v| v.to_str().ok()),
                Some(value),
                "{name} on {path}"
            );
        }
        let csp = headers["content-security-policy"].to_str().unwrap();
        assert!(csp.contains("default-src 'none'") && csp.contains("frame-ancestors 'none'"));
        assert!(headers.contains_key("x-request-id"));
        // Plain HTTP: HSTS would be ignored by browsers and is not sent.
        assert!(!headers.contains_key("strict-transport-security"));
    }
    let behind_tls =
        TestApp::spawn_with(&[("CATALOGD_PUBLIC_URL", "https://catalog.example.com")]).await;
    let response = behind_tls
        .client
        .get(behind_tls.url("/healthz"))
        .send()
        .await
        .unwrap();
    assert!(
        response.headers()["strict-transport-security"]
            .to_str()
            .unwrap()
            .starts_with("max-age=31536000")
    );
}

fn read_entry(archive: &mut zip::ZipArchive<std::io::Cursor<Vec<u8>>>, name: &str) -> Vec<u8> {
    let mut bytes = Vec::new();
    std::io::Read::read_to_end(
        &mut archive
            .by_name(name)
            .unwrap_or_else(|_| panic!("{name} is in the archive")),
        &mut bytes,
    )
    .unwrap();
    bytes
}

#[tokio::test]
async fn users_can_export_all_their_data_as_json_and_media() {
    use sha2::Digest;

    let app = TestApp::spawn().await;
    let sim = MagentoSim::start(SimConfig {
        products: 9,
        ..SimConfig::default()
    })
    .await
    .unwrap();
    let owner = app.register("portable@example.com").await;
    let admin = app
        .member(&owner, "admin-portable@example.com", "admin")
        .await;
    let ws = owner.workspace_id;
    let token = owner.access_token.as_str();
    let store_id = app.connect_store(&owner, &sim).await;
    app.sync(&owner, &store_id, "full").await;
    let (_, media) = app
        .post(&format!("/stores/{store_id}/media"), Some(token), json!({}))
        .await;
    let job = app
        .wait_for_job(
            token,
            media["job_id"].as_str().unwrap(),
            Duration::from_secs(60),
        )
        .await;
    assert_eq!(job["status"], "succeeded", "{job}");
    let (_, listed) = app
        .get(&format!("/stores/{store_id}/products?limit=1"), token)
        .await;
    let product_id = listed["items"][0]["id"].as_str().unwrap().to_string();
    let (status, _) = app
        .post(
            &format!("/products/{product_id}/versions"),
            Some(token),
            json!({"store_view": "all", "fields": {"meta_title": "Edited for the archive"}}),
        )
        .await;
    assert_eq!(status, 201);

    // Only an owner makes (and downloads) the workspace archive.
    let path = format!("/workspaces/{ws}/exports");
    let (status, _) = app
        .post(
            &path,
            Some(&admin.access_token),
            json!({"format": "workspace_archive"}),
        )
        .await;
    assert_eq!(status, 403);
    let (status, body) = app
        .post(&path, Some(token), json!({"format": "magento_csv"}))
        .await;
    assert_eq!((status, error_code(&body)), (422, "invalid_request"));
    let (started, _) = app
        .run_job(&path, token, json!({"format": "workspace_archive"}))
        .await;
    let export_path = format!("/exports/{}", started["export_id"].as_str().unwrap());
    let (status, _) = app.get(&export_path, &admin.access_token).await;
    assert_eq!(status, 403);
    let (status, record) = app.get(&export_path, token).await;
    assert_eq!(status, 200, "{record}");
    assert_eq!(record["format"], "workspace_archive");
    assert_eq!(record["rows"], 9);
    let bytes = reqwest::get(record["download_url"].as_str().unwrap())
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap()
        .to_vec();
    assert_eq!(record["bytes"], bytes.len());
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(bytes.clone())).unwrap();
    for (name, _) in catalogd::exports::archive::FILES {
        if !name.contains('<') {
            read_entry(&mut archive, name);
        }
    }

    // Every product with every version, as JSON lines.
    let products = String::from_utf8(read_entry(&mut archive, "products.jsonl")).unwrap();
    let products: Vec<Value> = products
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(products.len(), 9);
    let versions_in_db: i64 =
        sqlx::query_scalar("SELECT count(*) FROM product_versions WHERE workspace_id = $1")
            .bind(ws)
            .fetch_one(&app.db)
            .await
            .unwrap();
    let versions_in_archive: usize = products
        .iter()
        .map(|p| p["versions"].as_array().unwrap().len())
        .sum();
    assert_eq!(versions_in_archive as i64, versions_in_db);
    let edited = products
        .iter()
        .find(|p| p["id"] == product_id.as_str())
        .unwrap();
    assert!(
        edited["versions"]
            .as_array()
            .unwrap()
            .iter()
            .any(|v| v["content"]["fields"]["meta_title"] == "Edited for the archive")
    );

    // Stores without their secrets.
    let stores = String::from_utf8(read_entry(&mut archive, "stores.json")).unwrap();
    let credentials = sim.credentials();
    for secret in [
        &credentials.consumer_secret,
        &credentials.access_token_secret,
    ] {
        assert!(!stores.contains(secret.as_str()));
    }
    let stores: Value = serde_json::from_str(&stores).unwrap();
    assert_eq!(stores[0]["id"], store_id.as_str());
    assert!(stores[0].get("credentials").is_none() && stores[0].get("link_token").is_none());
    let workspace: Value =
        serde_json::from_slice(&read_entry(&mut archive, "workspace.json")).unwrap();
    assert_eq!(workspace["members"].as_array().unwrap().len(), 2);

    // Each mirrored picture once, named by its content hash.
    let shas: Vec<String> = sqlx::query_scalar(
        "SELECT DISTINCT encode(sha256, 'hex') FROM media WHERE workspace_id = $1",
    )
    .bind(ws)
    .fetch_all(&app.db)
    .await
    .unwrap();
    assert!(!shas.is_empty());
    for sha in &shas {
        let picture = read_entry(&mut archive, &format!("media/{sha}"));
        assert_eq!(hex::encode(sha2::Sha256::digest(&picture)), *sha);
    }
    assert_no_password_hash(&mut archive);

    // The account's own export: personal data and a link to the workspace's archive.
    let response = app
        .client
        .get(app.url("/me/export"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "application/zip");
    let account_zip = response.bytes().await.unwrap().to_vec();
    let mut account = zip::ZipArchive::new(std::io::Cursor::new(account_zip.clone())).unwrap();
    let me: Value = serde_json::from_slice(&read_entry(&mut account, "account.json")).unwrap();
    assert_eq!(me["email"], "portable@example.com");
    let memberships: Value =
        serde_json::from_slice(&read_entry(&mut account, "memberships.json")).unwrap();
    assert_eq!(memberships[0]["role"], "owner");
    let sessions: Value =
        serde_json::from_slice(&read_entry(&mut account, "sessions.json")).unwrap();
    assert!(!sessions.as_array().unwrap().is_empty());
    let owned: Value =
        serde_json::from_slice(&read_entry(&mut account, "owned_workspaces.json")).unwrap();
    let link = owned[0]["archive"]["link"]["download_url"]
        .as_str()
        .unwrap();
    let again = reqwest::get(link).await.unwrap().bytes().await.unwrap();
    assert_eq!(again.to_vec(), bytes);
    assert_no_password_hash(&mut account);
}

/// No file of the archive, decompressed, holds a bcrypt hash.
fn assert_no_password_hash(archive: &mut zip::ZipArchive<std::io::Cursor<Vec<u8>>>) {
    let names: Vec<String> = archive
        .file_names()
        .map(|n| n.unwrap().into_owned())
        .collect();
    for name in names {
        let text = String::from_utf8_lossy(&read_entry(archive, &name)).into_owned();
        assert!(!text.contains("$2b$") && !text.contains("$2y$"), "{name}");
    }
}
