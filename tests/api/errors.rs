use serde_json::json;

use crate::helpers::{TestApp, error_code};

#[tokio::test]
async fn malformed_bodies_answer_4xx_with_the_error_shape() {
    let app = TestApp::spawn().await;
    let send = |body: &'static str, content_type: &'static str| {
        app.client
            .post(app.url("/auth/register"))
            .header("content-type", content_type)
            .body(body)
            .send()
    };
    let cases = [
        ("{not json", "application/json", 400, "bad_request"),
        (
            r#"{"email": "x@example.com""#,
            "application/json",
            400,
            "bad_request",
        ),
        (
            r#"{"email": 5, "password": "p", "name": "n", "workspace_name": "w"}"#,
            "application/json",
            422,
            "invalid_request",
        ),
        (
            r#"{"email": "a@b.io", "password": "password1", "name": "n", "workspace_name": "w", "admin": true}"#,
            "application/json",
            422,
            "invalid_request",
        ),
        (
            r#"{"email": "a@b.io"}"#,
            "text/plain",
            415,
            "unsupported_media_type",
        ),
        ("", "application/json", 400, "bad_request"),
    ];
    for (body, content_type, expected, code) in cases {
        let res = send(body, content_type).await.unwrap();
        assert_eq!(res.status().as_u16(), expected, "{body}");
        let answer: serde_json::Value = res.json().await.unwrap();
        assert_eq!(error_code(&answer), code, "{body}");
    }
    let users: i64 = sqlx::query_scalar("SELECT count(*) FROM users")
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert_eq!(users, 0);
}

#[tokio::test]
async fn oversized_bodies_are_refused_with_413() {
    let app = TestApp::spawn_with(&[("CATALOGD_HTTP__BODY_LIMIT_BYTES", "1024")]).await;
    let big = "x".repeat(4096);
    let (status, body) = app
        .post(
            "/auth/register",
            None,
            json!({"email": "a@b.io", "password": big, "name": "n", "workspace_name": "w"}),
        )
        .await;
    assert_eq!(status, 413, "{body}");
    assert_eq!(error_code(&body), "payload_too_large");
}

#[tokio::test]
async fn unknown_routes_and_methods_use_the_error_shape() {
    let app = TestApp::spawn().await;
    let user = app.register("r@example.com").await;
    let (status, body) = app.get("/no/such/thing", &user.access_token).await;
    assert_eq!(status, 404);
    assert_eq!(error_code(&body), "not_found");
    let (status, body) = app
        .call(reqwest::Method::PATCH, "/auth/login", None, Some(json!({})))
        .await;
    assert_eq!(status, 405, "{body}");
    error_code(&body);
    let (status, body) = app
        .get("/workspaces/not-a-uuid/settings", &user.access_token)
        .await;
    assert_eq!(status, 404, "{body}");
    let (status, body) = app.get("/workspaces?limit=abc", &user.access_token).await;
    assert_eq!(status, 400, "{body}");
    error_code(&body);
    let res = app
        .client
        .get(app.url("/me"))
        .header("authorization", "Basic Zm9vOmJhcg==")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
}

#[tokio::test]
async fn nul_characters_in_text_are_refused_by_name_not_a_server_error() {
    let app = TestApp::spawn().await;
    let owner = app.register("nul@example.com").await;
    // In a JSON body, at any depth, in a value or a key.
    for body in [
        json!({"name": "a\u{0}b"}),
        json!({"name": "ok", "nested": {"deep": ["x\u{0}"]}}),
        json!({"na\u{0}me": "ok"}),
    ] {
        let (status, answer) = app
            .post("/workspaces", Some(&owner.access_token), body)
            .await;
        assert_eq!((status, error_code(&answer)), (422, "invalid_request"));
        assert!(
            answer["error"]["message"].as_str().unwrap().contains("NUL"),
            "{answer}"
        );
    }
    // In a query string.
    let (status, answer) = app
        .get(
            &format!("/workspaces/{}/jobs?cursor=%00", owner.workspace_id),
            &owner.access_token,
        )
        .await;
    assert_eq!((status, error_code(&answer)), (422, "invalid_request"));
}
