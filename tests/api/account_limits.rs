//! Limits on guessing and on costly anonymous calls: the login budget per account whatever
//! the spelling of its address, wrong two-factor codes, registrations per address, the client
//! address behind a proxy, and deleting an account only with its password.

use catalogd::auth::totp;
use reqwest::Method;
use serde_json::json;

use crate::helpers::{PASSWORD, TestApp, assert_rate_limited, error_code};
use crate::privacy::{enable_totp, login, now};

/// A six-digit code no step around now accepts.
fn wrong_code(secret: &[u8]) -> String {
    let near: Vec<String> = (-2..=3)
        .map(|k| totp::code_at(secret, now() + k * totp::STEP_SECS))
        .collect();
    (0..)
        .map(|n: u32| format!("{:06}", (n * 7919) % 1_000_000))
        .find(|code| !near.contains(code))
        .expect("a code outside the window")
}

#[tokio::test]
async fn every_spelling_of_an_address_spends_the_same_login_budget() {
    let app =
        TestApp::spawn_with(&[("CATALOGD_AUTH__LOGIN_ATTEMPTS_PER_MINUTE_PER_ACCOUNT", "3")]).await;
    app.register("ida@example.com").await;
    for email in ["ida@example.com", " ida@example.com", "IDA@example.com "] {
        let (status, body) = login(&app, email, "wrong-password", None).await;
        assert_eq!(status, 401, "{email:?}: {body}");
    }
    let (status, body) = login(&app, "\tIda@Example.com", PASSWORD, None).await;
    assert_eq!((status, error_code(&body)), (429, "rate_limited"), "{body}");
    // Another account is not locked out by this one.
    app.register("jon@example.com").await;
    assert_eq!(login(&app, "jon@example.com", PASSWORD, None).await.0, 200);
}

#[tokio::test]
async fn wrong_two_factor_codes_have_their_own_limit_per_account() {
    let app = TestApp::spawn_with(&[
        ("CATALOGD_AUTH__TOTP_FAILURES_PER_HOUR_PER_ACCOUNT", "3"),
        (
            "CATALOGD_AUTH__LOGIN_ATTEMPTS_PER_MINUTE_PER_ACCOUNT",
            "100",
        ),
    ])
    .await;
    let who = app.register("guess@example.com").await;
    let (secret, recovery) = enable_totp(&app, &who).await;
    let email = "guess@example.com";
    for _ in 0..3 {
        let (status, body) = login(&app, email, PASSWORD, Some(&wrong_code(&secret))).await;
        assert_eq!(
            (status, error_code(&body)),
            (401, "totp_required"),
            "{body}"
        );
    }
    // From the fourth on, even the right code and a recovery code wait: guessing stops here.
    let right = totp::code_at(&secret, now() + totp::STEP_SECS);
    let (status, body) = login(&app, email, PASSWORD, Some(&right)).await;
    assert_eq!((status, error_code(&body)), (429, "rate_limited"), "{body}");
    let (status, _) = login(&app, email, PASSWORD, Some(&recovery[0])).await;
    assert_eq!(status, 429);
    // A login without a code is the normal first step and is not a failure.
    let (status, body) = login(&app, email, PASSWORD, None).await;
    assert_eq!((status, error_code(&body)), (401, "totp_required"));
    // The count lives in the database (every process shares it) and ends with its hour.
    let (failures, _): (i32, chrono::DateTime<chrono::Utc>) =
        sqlx::query_as("SELECT totp_failures, totp_failures_since FROM users WHERE id = $1")
            .bind(who.user_id)
            .fetch_one(&app.db)
            .await
            .unwrap();
    assert_eq!(failures, 3);
    sqlx::query(
        "UPDATE users SET totp_failures_since = now() - interval '61 minutes' WHERE id = $1",
    )
    .bind(who.user_id)
    .execute(&app.db)
    .await
    .unwrap();
    let (status, body) = login(&app, email, PASSWORD, Some(&right)).await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test]
async fn registrations_are_rate_limited_per_client_address() {
    let app =
        TestApp::spawn_with(&[("CATALOGD_AUTH__REGISTRATIONS_PER_MINUTE_PER_CLIENT", "2")]).await;
    app.register("reg1@example.com").await;
    app.register("reg2@example.com").await;
    assert_rate_limited(
        &app,
        "/auth/register",
        json!({"email": "reg3@example.com", "password": PASSWORD, "name": "Three",
               "workspace_name": "Three's shop"}),
    )
    .await;
    let users: i64 = sqlx::query_scalar("SELECT count(*) FROM users")
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert_eq!(users, 2);
}

#[tokio::test]
async fn behind_a_proxy_the_client_is_the_rightmost_forwarded_address() {
    let app = TestApp::spawn_with(&[
        ("CATALOGD_HTTP__TRUST_FORWARDED_FOR", "true"),
        ("CATALOGD_AUTH__LOGIN_ATTEMPTS_PER_MINUTE_PER_CLIENT", "2"),
        (
            "CATALOGD_AUTH__LOGIN_ATTEMPTS_PER_MINUTE_PER_ACCOUNT",
            "100",
        ),
    ])
    .await;
    let user = app.register("kai@example.com").await;
    let attempt = |forwarded: &'static str, password: &'static str| {
        app.client
            .post(app.url("/auth/login"))
            .header("x-forwarded-for", forwarded)
            .json(&json!({"email": "kai@example.com", "password": password}))
            .send()
    };
    // The client writes a new address of its own each time; the proxy appends the one it saw.
    for forwarded in ["10.0.0.1, 198.51.100.7", "10.0.0.2, 198.51.100.7"] {
        let status = attempt(forwarded, "wrong-password").await.unwrap().status();
        assert_eq!(status, 401);
    }
    let status = attempt("10.0.0.3, 198.51.100.7", PASSWORD)
        .await
        .unwrap()
        .status();
    assert_eq!(status, 429, "a written address gets no fresh budget");
    // Someone else behind the same proxy is not locked out, and is the one logged.
    let status = attempt("198.51.100.8", PASSWORD).await.unwrap().status();
    assert_eq!(status, 200);
    let (_, log) = app
        .get(
            &format!("/workspaces/{}/audit-log", user.workspace_id),
            &user.access_token,
        )
        .await;
    assert_eq!(log["items"][0]["action"], "auth.login", "{log}");
    assert_eq!(log["items"][0]["client_addr"], "198.51.100.8", "{log}");
    assert_eq!(log["items"][1]["client_addr"], "198.51.100.7", "{log}");
}

#[tokio::test]
async fn deleting_the_account_needs_its_password_and_two_factor_code() {
    let app = TestApp::spawn().await;
    let who = app.register("leo@example.com").await;
    let token = Some(who.access_token.as_str());
    let still_there = |app: &TestApp| {
        let db = app.db.clone();
        async move {
            sqlx::query_scalar::<_, i64>("SELECT count(*) FROM users WHERE id = $1")
                .bind(who.user_id)
                .fetch_one(&db)
                .await
                .unwrap()
                == 1
        }
    };
    let (status, body) = app.call(Method::DELETE, "/me", token, None).await;
    assert!((400..500).contains(&status), "{status} {body}");
    let (status, body) = app
        .call(Method::DELETE, "/me", token, Some(json!({})))
        .await;
    assert_eq!(status, 422, "{body}");
    let (status, body) = app
        .call(
            Method::DELETE,
            "/me",
            token,
            Some(json!({"password": "not the password"})),
        )
        .await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["error"]["field"], "password", "{body}");
    assert!(still_there(&app).await);

    let (secret, _) = enable_totp(&app, &who).await;
    let (status, body) = app
        .call(
            Method::DELETE,
            "/me",
            token,
            Some(json!({"password": PASSWORD})),
        )
        .await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["error"]["field"], "totp_code", "{body}");
    let (status, body) = app
        .call(
            Method::DELETE,
            "/me",
            token,
            Some(json!({"password": PASSWORD, "totp_code": wrong_code(&secret)})),
        )
        .await;
    assert_eq!(status, 422, "{body}");
    assert!(still_there(&app).await);

    let code = totp::code_at(&secret, now() + totp::STEP_SECS);
    let (status, body) = app
        .call(
            Method::DELETE,
            "/me",
            token,
            Some(json!({"password": PASSWORD, "totp_code": code})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert!(!still_there(&app).await);
}
