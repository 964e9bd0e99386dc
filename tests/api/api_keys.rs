use reqwest::Method;
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::helpers::{TestApp, error_code};

#[tokio::test]
async fn api_key_works_until_revoked_and_is_never_stored_in_plain_text() {
    let app = TestApp::spawn().await;
    let owner = app.register("owner@example.com").await;
    let keys_path = format!("/workspaces/{}/api-keys", owner.workspace_id);
    let (status, created) = app
        .post(
            &keys_path,
            Some(&owner.access_token),
            json!({"name": "ci", "role": "admin"}),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    let key = created["key"].as_str().unwrap();
    let prefix = created["prefix"].as_str().unwrap();
    assert!(key.starts_with(&format!("cmk_{prefix}_")), "{key}");
    assert_eq!(created["role"], "admin");

    // The key authenticates as the workspace with its role.
    let (status, settings) = app
        .get(&format!("/workspaces/{}/settings", owner.workspace_id), key)
        .await;
    assert_eq!(status, 200, "{settings}");
    let (status, list) = app.get("/workspaces", key).await;
    assert_eq!(status, 200);
    assert_eq!(list["items"][0]["id"], owner.workspace_id.to_string());
    assert_eq!(list["items"][0]["role"], "admin");
    // A key is not a person.
    let (status, body) = app.get("/me", key).await;
    assert_eq!(status, 403, "{body}");

    // Listing shows the prefix, never the key; last use is tracked.
    let (_, listed) = app.get(&keys_path, &owner.access_token).await;
    let text = listed.to_string();
    assert!(!text.contains(key));
    assert_eq!(listed["items"][0]["prefix"], prefix);
    assert!(listed["items"][0]["last_used_at"].is_string(), "{listed}");

    // The table holds only the prefix and a SHA-256 of the key.
    let dump: String = sqlx::query_scalar("SELECT string_agg(t::text, '\n') FROM api_keys t")
        .fetch_one(&app.db)
        .await
        .unwrap();
    let secret_part = key.rsplit('_').next().unwrap();
    assert!(
        !dump.contains(secret_part),
        "the key's secret is stored in plain text"
    );
    let stored: Vec<u8> = sqlx::query_scalar("SELECT key_hash FROM api_keys")
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert_eq!(stored, Sha256::digest(key.as_bytes()).to_vec());

    // Revoked: refused at once, and both events are audit-logged.
    let id = created["id"].as_str().unwrap();
    let (status, revoked) = app
        .call(
            reqwest::Method::DELETE,
            &format!("{keys_path}/{id}"),
            Some(&owner.access_token),
            None,
        )
        .await;
    assert_eq!(status, 200, "{revoked}");
    assert!(revoked["revoked_at"].is_string());
    let (status, body) = app
        .get(&format!("/workspaces/{}/settings", owner.workspace_id), key)
        .await;
    assert_eq!(status, 401, "{body}");
    assert_eq!(error_code(&body), "unauthorized");
    let actions: Vec<String> = sqlx::query_scalar(
        "SELECT action FROM audit_log WHERE action LIKE 'api_key.%' ORDER BY id",
    )
    .fetch_all(&app.db)
    .await
    .unwrap();
    assert_eq!(actions, ["api_key.created", "api_key.revoked"]);
}

#[tokio::test]
async fn revoking_by_body_works_too() {
    let app = TestApp::spawn().await;
    let owner = app.register("o2@example.com").await;
    let keys_path = format!("/workspaces/{}/api-keys", owner.workspace_id);
    let (_, created) = app
        .post(
            &keys_path,
            Some(&owner.access_token),
            json!({"name": "x", "role": "viewer"}),
        )
        .await;
    let (status, _) = app
        .call(
            reqwest::Method::DELETE,
            &keys_path,
            Some(&owner.access_token),
            Some(json!({"id": created["id"]})),
        )
        .await;
    assert_eq!(status, 200);
    let (status, _) = app
        .get("/workspaces", created["key"].as_str().unwrap())
        .await;
    assert_eq!(status, 401);
}

#[tokio::test]
async fn a_forged_key_with_a_real_prefix_is_refused() {
    let app = TestApp::spawn().await;
    let owner = app.register("o3@example.com").await;
    let key = app.api_key(&owner, "admin").await;
    let (prefix_part, _) = key.rsplit_once('_').unwrap();
    let forged = format!("{prefix_part}_{}", "A".repeat(40));
    let (status, _) = app.get("/workspaces", &forged).await;
    assert_eq!(status, 401);
}

#[tokio::test]
async fn viewers_cannot_create_keys_or_members() {
    let app = TestApp::spawn().await;
    let owner = app.register("boss@example.com").await;
    let viewer = app.member(&owner, "viewer@example.com", "viewer").await;
    app.register("newbie@example.com").await;
    let ws = owner.workspace_id;

    let (status, body) = app
        .post(
            &format!("/workspaces/{ws}/api-keys"),
            Some(&viewer.access_token),
            json!({"name": "k", "role": "viewer"}),
        )
        .await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(error_code(&body), "forbidden");
    let (status, _) = app
        .post(
            &format!("/workspaces/{ws}/members"),
            Some(&viewer.access_token),
            json!({"email": "newbie@example.com", "role": "viewer"}),
        )
        .await;
    assert_eq!(status, 403);
    // A viewer can still read.
    let (status, _) = app
        .get(&format!("/workspaces/{ws}/settings"), &viewer.access_token)
        .await;
    assert_eq!(status, 200);

    // A viewer-role API key is held to the same rules.
    let viewer_key = app.api_key(&owner, "viewer").await;
    let (status, _) = app
        .post(
            &format!("/workspaces/{ws}/api-keys"),
            Some(&viewer_key),
            json!({"name": "k", "role": "viewer"}),
        )
        .await;
    assert_eq!(status, 403);

    // Nothing was created by the refused calls.
    let keys: i64 = sqlx::query_scalar("SELECT count(*) FROM api_keys")
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert_eq!(keys, 1);
    let members: i64 =
        sqlx::query_scalar("SELECT count(*) FROM memberships WHERE workspace_id = $1")
            .bind(ws)
            .fetch_one(&app.db)
            .await
            .unwrap();
    assert_eq!(members, 2);
}

#[tokio::test]
async fn admins_cannot_grant_ownership_and_members_are_audit_logged() {
    let app = TestApp::spawn().await;
    let owner = app.register("own@example.com").await;
    let admin = app.member(&owner, "adm@example.com", "admin").await;
    let third = app.register("third@example.com").await;
    let ws = owner.workspace_id;
    let (status, _) = app
        .post(
            &format!("/workspaces/{ws}/members"),
            Some(&admin.access_token),
            json!({"email": "third@example.com", "role": "owner"}),
        )
        .await;
    assert_eq!(status, 403);
    let (status, _) = app
        .post(
            &format!("/workspaces/{ws}/api-keys"),
            Some(&admin.access_token),
            json!({"name": "k", "role": "owner"}),
        )
        .await;
    assert_eq!(status, 403);
    app.invite_and_accept(ws, &admin, &third, "third@example.com", "reviewer")
        .await;
    let (status, dup) = app
        .post(
            &format!("/workspaces/{ws}/members"),
            Some(&admin.access_token),
            json!({"email": "third@example.com", "role": "viewer"}),
        )
        .await;
    assert_eq!(status, 409, "{dup}");

    let (_, log) = app
        .get(&format!("/workspaces/{ws}/audit-log"), &owner.access_token)
        .await;
    let entries = |action: &str| -> Vec<serde_json::Value> {
        log["items"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["action"] == action)
            .cloned()
            .collect()
    };
    // Each member was invited by someone and added when they accepted.
    let invited = entries("member.invited");
    assert_eq!(invited.len(), 2);
    assert_eq!(invited[0]["actor_email"], "adm@example.com");
    assert_eq!(invited[0]["details"]["role"], "reviewer");
    let added = entries("member.added");
    assert_eq!(added.len(), 2);
    assert_eq!(added[0]["actor_email"], "third@example.com");
    assert_eq!(added[0]["details"]["role"], "reviewer");
    let (_, members) = app
        .get(&format!("/workspaces/{ws}/members"), &admin.access_token)
        .await;
    assert_eq!(members["items"].as_array().unwrap().len(), 3);
}

/// A leaked key must not mint keys that outlive its own revocation: key management takes a
/// person's session, whatever the key's role.
#[tokio::test]
async fn api_keys_cannot_list_create_or_revoke_api_keys() {
    let app = TestApp::spawn().await;
    let owner = app.register("keys@example.com").await;
    let ws = owner.workspace_id;
    let keys_path = format!("/workspaces/{ws}/api-keys");
    let owner_key = app.api_key(&owner, "owner").await;
    let admin_key = app.api_key(&owner, "admin").await;
    let (_, listed) = app.get(&keys_path, &owner.access_token).await;
    let admin_key_id = listed["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["role"] == "admin")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();

    for key in [&owner_key, &admin_key] {
        let (status, body) = app.get(&keys_path, key).await;
        assert_eq!((status, error_code(&body)), (403, "forbidden"), "{body}");
        let (status, body) = app
            .post(
                &keys_path,
                Some(key),
                json!({"name": "minted", "role": "viewer"}),
            )
            .await;
        assert_eq!((status, error_code(&body)), (403, "forbidden"), "{body}");
        let (status, body) = app
            .call(
                Method::DELETE,
                &format!("{keys_path}/{admin_key_id}"),
                Some(key),
                None,
            )
            .await;
        assert_eq!((status, error_code(&body)), (403, "forbidden"), "{body}");
        let (status, body) = app
            .call(
                Method::DELETE,
                &keys_path,
                Some(key),
                Some(json!({"id": admin_key_id})),
            )
            .await;
        assert_eq!((status, error_code(&body)), (403, "forbidden"), "{body}");
    }
    // Nothing was minted or revoked, and the keys still work for their own work.
    let (count, revoked): (i64, i64) =
        sqlx::query_as("SELECT count(*), count(revoked_at) FROM api_keys WHERE workspace_id = $1")
            .bind(ws)
            .fetch_one(&app.db)
            .await
            .unwrap();
    assert_eq!((count, revoked), (2, 0));
    let (status, _) = app
        .get(&format!("/workspaces/{ws}/stores"), &admin_key)
        .await;
    assert_eq!(status, 200);

    // A person's session manages them as before.
    let (status, body) = app
        .call(
            Method::DELETE,
            &format!("{keys_path}/{admin_key_id}"),
            Some(&owner.access_token),
            None,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (status, _) = app
        .get(&format!("/workspaces/{ws}/stores"), &admin_key)
        .await;
    assert_eq!(status, 401);
}
