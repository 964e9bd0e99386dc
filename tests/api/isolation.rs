use reqwest::Method;
use serde_json::json;

use crate::helpers::{TestApp, error_code};

#[tokio::test]
async fn one_workspace_cannot_see_or_change_another() {
    let app = TestApp::spawn().await;
    let a = app.register("a@example.com").await;
    let b = app.register("b@example.com").await;
    let b_key = app.api_key(&b, "admin").await;
    let a_key = app.api_key(&a, "owner").await;
    let b_key_id: uuid::Uuid =
        sqlx::query_scalar("SELECT id FROM api_keys WHERE workspace_id = $1")
            .bind(b.workspace_id)
            .fetch_one(&app.db)
            .await
            .unwrap();
    let ws_b = b.workspace_id;
    let missing = uuid::Uuid::new_v4();

    let probes: Vec<(Method, String, Option<serde_json::Value>)> = vec![
        (Method::GET, format!("/workspaces/{ws_b}/settings"), None),
        (
            Method::PUT,
            format!("/workspaces/{ws_b}/settings"),
            Some(json!({"ai_processing": false})),
        ),
        (Method::GET, format!("/workspaces/{ws_b}/members"), None),
        (
            Method::POST,
            format!("/workspaces/{ws_b}/members"),
            Some(json!({"email": "a@example.com", "role": "owner"})),
        ),
        (Method::GET, format!("/workspaces/{ws_b}/api-keys"), None),
        (
            Method::POST,
            format!("/workspaces/{ws_b}/api-keys"),
            Some(json!({"name": "x", "role": "owner"})),
        ),
        (
            Method::DELETE,
            format!("/workspaces/{ws_b}/api-keys/{b_key_id}"),
            None,
        ),
        (Method::GET, format!("/workspaces/{ws_b}/audit-log"), None),
        // B's key id through A's own workspace path.
        (
            Method::DELETE,
            format!("/workspaces/{}/api-keys/{b_key_id}", a.workspace_id),
            None,
        ),
    ];
    for token in [a.access_token.as_str(), a_key.as_str()] {
        for (method, path, body) in &probes {
            let (status, answer) = app
                .call(method.clone(), path, Some(token), body.clone())
                .await;
            assert_eq!(status, 404, "{method} {path}: {answer}");
            assert_eq!(error_code(&answer), "not_found");
        }
        // A foreign workspace answers exactly like one that does not exist.
        let (_, foreign) = app
            .get(&format!("/workspaces/{ws_b}/settings"), token)
            .await;
        let (_, absent) = app
            .get(&format!("/workspaces/{missing}/settings"), token)
            .await;
        assert_eq!(foreign, absent);
    }

    // Nothing of B changed, and B's key still works.
    let (_, settings) = app
        .get(&format!("/workspaces/{ws_b}/settings"), &b.access_token)
        .await;
    assert_eq!(settings["ai_processing"], true);
    let (status, _) = app
        .get(&format!("/workspaces/{ws_b}/settings"), &b_key)
        .await;
    assert_eq!(status, 200);
    let members: i64 =
        sqlx::query_scalar("SELECT count(*) FROM memberships WHERE workspace_id = $1")
            .bind(ws_b)
            .fetch_one(&app.db)
            .await
            .unwrap();
    assert_eq!(members, 1);
    let (_, me) = app.get("/me", &a.access_token).await;
    assert_eq!(me["workspaces"].as_array().unwrap().len(), 1);
}
