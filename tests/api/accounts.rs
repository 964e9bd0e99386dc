use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use serde_json::json;

use crate::helpers::{JWT_SECRET, PASSWORD, TestApp, assert_rate_limited, error_code};

#[tokio::test]
async fn register_login_refresh_and_me() {
    let app = TestApp::spawn().await;
    let (status, body) = app
        .post(
            "/auth/register",
            None,
            json!({"email": "ana@example.com", "password": PASSWORD, "name": "Ana", "workspace_name": "Ana's shop"}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["user"]["email"], "ana@example.com");
    assert_eq!(body["user"]["name"], "Ana");
    assert_eq!(body["workspace"]["name"], "Ana's shop");
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 900);
    let workspace_id = body["workspace"]["id"].as_str().unwrap().to_string();

    let (status, login) = app
        .post(
            "/auth/login",
            None,
            json!({"email": "ANA@example.com", "password": PASSWORD}),
        )
        .await;
    assert_eq!(status, 200, "{login}");
    let access = login["access_token"].as_str().unwrap();

    let (status, me) = app.get("/me", access).await;
    assert_eq!(status, 200, "{me}");
    assert_eq!(me["email"], "ana@example.com");
    assert_eq!(
        me["workspaces"],
        json!([{"id": workspace_id, "name": "Ana's shop", "role": "owner"}])
    );

    let (status, refreshed) = app
        .post(
            "/auth/refresh",
            None,
            json!({"refresh_token": login["refresh_token"]}),
        )
        .await;
    assert_eq!(status, 200, "{refreshed}");
    assert_ne!(refreshed["refresh_token"], login["refresh_token"]);
    let (status, _) = app
        .get("/me", refreshed["access_token"].as_str().unwrap())
        .await;
    assert_eq!(status, 200);

    // The password is stored only as a bcrypt hash.
    let hash: String = sqlx::query_scalar("SELECT password_hash FROM users")
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert!(hash.starts_with("$2b$"), "{hash}");
    assert!(!hash.contains(PASSWORD));
}

#[tokio::test]
async fn wrong_password_and_unknown_account_are_refused_alike() {
    let app = TestApp::spawn().await;
    app.register("ben@example.com").await;
    let (status, wrong) = app
        .post(
            "/auth/login",
            None,
            json!({"email": "ben@example.com", "password": "not the password"}),
        )
        .await;
    assert_eq!(status, 401);
    assert_eq!(error_code(&wrong), "unauthorized");
    let (status, unknown) = app
        .post(
            "/auth/login",
            None,
            json!({"email": "nobody@example.com", "password": "whatever123"}),
        )
        .await;
    assert_eq!(status, 401);
    assert_eq!(
        wrong, unknown,
        "the answer must not reveal which accounts exist"
    );
}

#[tokio::test]
async fn registration_validates_its_input() {
    let app = TestApp::spawn().await;
    let base =
        json!({"email": "c@example.com", "password": PASSWORD, "name": "C", "workspace_name": "W"});
    for (field, value) in [
        ("email", json!("not-an-email")),
        ("password", json!("short")),
        ("name", json!("  ")),
        ("workspace_name", json!("")),
    ] {
        let mut body = base.clone();
        body[field] = value;
        let (status, answer) = app.post("/auth/register", None, body).await;
        assert_eq!(status, 422, "{field}: {answer}");
        assert_eq!(answer["error"]["field"], field);
    }
    app.register("c@example.com").await;
    let (status, dup) = app.post("/auth/register", None, base).await;
    assert_eq!(status, 409, "{dup}");
    assert_eq!(error_code(&dup), "conflict");
}

fn forge(claims: serde_json::Value, secret: &[u8]) -> String {
    let header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
    jsonwebtoken::encode(
        &header,
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(secret),
    )
    .unwrap()
}

#[tokio::test]
async fn expired_tampered_foreign_and_unsigned_tokens_are_refused() {
    let app = TestApp::spawn().await;
    let user = app.register("dan@example.com").await;
    let (status, _) = app.get("/me", &user.access_token).await;
    assert_eq!(status, 200);

    let sid: uuid::Uuid = sqlx::query_scalar("SELECT id FROM sessions")
        .fetch_one(&app.db)
        .await
        .unwrap();
    let now = chrono::Utc::now().timestamp();
    let claims = |exp: i64| json!({"sub": user.user_id, "sid": sid, "iat": now - 1000, "exp": exp, "jti": uuid::Uuid::new_v4()});

    // Control: a token we forge with the right key and a future expiry works, so the refusals below are about the defect.
    let (status, _) = app
        .get("/me", &forge(claims(now + 60), JWT_SECRET.as_bytes()))
        .await;
    assert_eq!(status, 200);

    let expired = forge(claims(now - 1), JWT_SECRET.as_bytes());
    let foreign = forge(
        claims(now + 60),
        b"some-other-secret-that-is-also-long-enough!!",
    );
    let mut tampered = user.access_token.clone();
    let last = tampered.pop().unwrap();
    tampered.push(if last == 'A' { 'B' } else { 'A' });
    let payload = B64URL.encode(serde_json::to_vec(&claims(now + 60)).unwrap());
    let unsigned = format!(
        "{}.{}.",
        B64URL.encode(br#"{"alg":"none","typ":"JWT"}"#),
        payload
    );
    let mut swapped_payload: Vec<&str> = user.access_token.split('.').collect();
    swapped_payload[1] = &payload;
    let swapped = swapped_payload.join(".");

    for (name, token) in [
        ("expired", expired),
        ("foreign key", foreign),
        ("tampered", tampered),
        ("alg none", unsigned),
        ("payload swapped", swapped),
        ("garbage", "abc".into()),
    ] {
        let (status, body) = app.get("/me", &token).await;
        assert_eq!(status, 401, "{name}: {body}");
        assert_eq!(error_code(&body), "unauthorized");
    }
    let (status, body) = app.call(reqwest::Method::GET, "/me", None, None).await;
    assert_eq!(status, 401, "{body}");
}

#[tokio::test]
async fn refresh_token_reuse_revokes_the_whole_chain() {
    let app = TestApp::spawn().await;
    let user = app.register("eve@example.com").await;
    let (status, second) = app
        .post(
            "/auth/refresh",
            None,
            json!({"refresh_token": user.refresh_token}),
        )
        .await;
    assert_eq!(status, 200);
    let second_refresh = second["refresh_token"].as_str().unwrap();
    let second_access = second["access_token"].as_str().unwrap();

    // Someone replays the first token: refused, and the session ends for everybody.
    let (status, body) = app
        .post(
            "/auth/refresh",
            None,
            json!({"refresh_token": user.refresh_token}),
        )
        .await;
    assert_eq!(status, 401, "{body}");
    let (status, _) = app
        .post(
            "/auth/refresh",
            None,
            json!({"refresh_token": second_refresh}),
        )
        .await;
    assert_eq!(
        status, 401,
        "the newest token of a revoked chain must fail too"
    );
    let (status, _) = app.get("/me", second_access).await;
    assert_eq!(
        status, 401,
        "access tokens of a revoked session must stop working"
    );

    // A fresh login still works, and the reuse is in the audit log.
    let (status, _) = app
        .post(
            "/auth/login",
            None,
            json!({"email": "eve@example.com", "password": PASSWORD}),
        )
        .await;
    assert_eq!(status, 200);
    let reuse: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM audit_log WHERE action = 'auth.refresh_token_reused'",
    )
    .fetch_one(&app.db)
    .await
    .unwrap();
    assert_eq!(reuse, 1);

    // Refresh tokens are stored only as hashes.
    let plain: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM refresh_tokens WHERE encode(token_hash, 'escape') LIKE '%crt_%'",
    )
    .fetch_one(&app.db)
    .await
    .unwrap();
    assert_eq!(plain, 0);
}

#[tokio::test]
async fn login_attempts_are_rate_limited_per_account() {
    let app =
        TestApp::spawn_with(&[("CATALOGD_AUTH__LOGIN_ATTEMPTS_PER_MINUTE_PER_ACCOUNT", "3")]).await;
    app.register("fay@example.com").await;
    for _ in 0..3 {
        let (status, _) = app
            .post(
                "/auth/login",
                None,
                json!({"email": "fay@example.com", "password": "wrong-password"}),
            )
            .await;
        assert_eq!(status, 401);
    }
    assert_rate_limited(
        &app,
        "/auth/login",
        json!({"email": "fay@example.com", "password": PASSWORD}),
    )
    .await;
    // Another account from the same address is not locked out by this one.
    app.register("gus@example.com").await;
    let (status, _) = app
        .post(
            "/auth/login",
            None,
            json!({"email": "gus@example.com", "password": PASSWORD}),
        )
        .await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn logins_and_failures_are_audit_logged() {
    let app = TestApp::spawn().await;
    let user = app.register("hal@example.com").await;
    app.post(
        "/auth/login",
        None,
        json!({"email": "hal@example.com", "password": "wrong-password"}),
    )
    .await;
    app.post(
        "/auth/login",
        None,
        json!({"email": "hal@example.com", "password": PASSWORD}),
    )
    .await;
    let (status, log) = app
        .get(
            &format!("/workspaces/{}/audit-log", user.workspace_id),
            &user.access_token,
        )
        .await;
    assert_eq!(status, 200, "{log}");
    let actions: Vec<&str> = log["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions,
        ["auth.login", "auth.login_failed", "user.registered"]
    );
    assert_eq!(log["items"][0]["client_addr"], "127.0.0.1");

    // Entries cannot be edited, not even with direct SQL.
    let edit = sqlx::query("UPDATE audit_log SET action = 'nothing'")
        .execute(&app.db)
        .await;
    assert!(edit.is_err());
}

#[tokio::test]
async fn workspaces_can_be_created_and_listed_with_pagination() {
    let app = TestApp::spawn().await;
    let user = app.register("ida@example.com").await;
    for i in 0..3 {
        let (status, body) = app
            .post(
                "/workspaces",
                Some(&user.access_token),
                json!({"name": format!("extra {i}")}),
            )
            .await;
        assert_eq!(status, 201, "{body}");
        assert_eq!(body["role"], "owner");
    }
    let (status, page1) = app.get("/workspaces?limit=3", &user.access_token).await;
    assert_eq!(status, 200);
    assert_eq!(page1["items"].as_array().unwrap().len(), 3);
    let cursor = page1["next_cursor"].as_str().unwrap();
    let (_, page2) = app
        .get(
            &format!("/workspaces?limit=3&cursor={cursor}"),
            &user.access_token,
        )
        .await;
    assert_eq!(page2["items"].as_array().unwrap().len(), 1);
    assert!(page2["next_cursor"].is_null());
    let (status, bad) = app
        .get("/workspaces?cursor=nonsense", &user.access_token)
        .await;
    assert_eq!(status, 422, "{bad}");
}

#[tokio::test]
async fn settings_are_read_and_partially_updated_by_admins_only() {
    let app = TestApp::spawn().await;
    let owner = app.register("jo@example.com").await;
    let path = format!("/workspaces/{}/settings", owner.workspace_id);
    let (status, settings) = app.get(&path, &owner.access_token).await;
    assert_eq!(status, 200);
    assert_eq!(settings["ai_processing"], true);
    assert_eq!(settings["four_eyes"], false);
    let (status, updated) = app
        .call(
            reqwest::Method::PUT,
            &path,
            Some(&owner.access_token),
            Some(json!({"four_eyes": true})),
        )
        .await;
    assert_eq!(status, 200, "{updated}");
    assert_eq!(updated["four_eyes"], true);
    assert_eq!(updated["ai_processing"], true);
    let (status, bad) = app
        .call(
            reqwest::Method::PUT,
            &path,
            Some(&owner.access_token),
            Some(json!({"no_such_setting": 1})),
        )
        .await;
    assert_eq!(status, 422, "{bad}");

    let editor = app.member(&owner, "kim@example.com", "editor").await;
    let (status, _) = app.get(&path, &editor.access_token).await;
    assert_eq!(status, 200);
    let (status, _) = app
        .call(
            reqwest::Method::PUT,
            &path,
            Some(&editor.access_token),
            Some(json!({"four_eyes": false})),
        )
        .await;
    assert_eq!(status, 403);
}
