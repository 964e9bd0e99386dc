//! Joining a workspace only by accepting a mailed invitation, the members' own changes (roles,
//! removal, leaving), and the password reset link.

use serde_json::json;

use crate::helpers::{PASSWORD, Registered, TestApp, error_code};

/// Mail queued to `to`, newest first: (subject, text).
async fn mail_to(app: &TestApp, to: &str) -> Vec<(String, String)> {
    sqlx::query_as(
        "SELECT subject, body_text FROM outgoing_mail WHERE recipient = $1
         ORDER BY created_at DESC, id DESC",
    )
    .bind(to)
    .fetch_all(&app.db)
    .await
    .unwrap()
}

async fn is_member(app: &TestApp, ws: uuid::Uuid, user: uuid::Uuid) -> bool {
    sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM memberships WHERE workspace_id = $1 AND user_id = $2)",
    )
    .bind(ws)
    .bind(user)
    .fetch_one(&app.db)
    .await
    .unwrap()
}

#[tokio::test]
async fn an_invitation_answers_alike_for_any_address_and_joins_only_when_accepted() {
    let app = TestApp::spawn().await;
    let owner = app.register("owner@example.com").await;
    let known = app.register("known@example.com").await;
    let ws = owner.workspace_id;
    let invite = |email: &'static str| {
        let app = &app;
        let owner = &owner;
        async move {
            app.post(
                &format!("/workspaces/{ws}/members"),
                Some(&owner.access_token),
                json!({"email": email, "role": "editor"}),
            )
            .await
        }
    };
    let (known_status, known_body) = invite("known@example.com").await;
    let (unknown_status, unknown_body) = invite("nobody-yet@example.com").await;
    assert_eq!((known_status, unknown_status), (202, 202));
    let keys = |body: &serde_json::Value| {
        let mut keys: Vec<String> = body.as_object().unwrap().keys().cloned().collect();
        keys.sort();
        keys
    };
    assert_eq!(keys(&known_body), ["invitation_id"]);
    assert_eq!(keys(&known_body), keys(&unknown_body));
    // Each address got one mail with a link; nobody joined yet.
    for to in ["known@example.com", "nobody-yet@example.com"] {
        let mail = mail_to(&app, to).await;
        assert_eq!(mail.len(), 1, "{mail:?}");
        assert!(mail[0].0.contains("owner@example.com shop"), "{mail:?}");
        assert!(
            mail[0]
                .1
                .contains(&format!("{}/invitations?token=", app.base)),
            "{mail:?}"
        );
    }
    assert!(!is_member(&app, ws, known.user_id).await);

    // The pending invitations are listed to admins, without their tokens.
    let (status, pending) = app
        .get(
            &format!("/workspaces/{ws}/invitations"),
            &owner.access_token,
        )
        .await;
    assert_eq!(status, 200, "{pending}");
    assert_eq!(pending["items"].as_array().unwrap().len(), 2, "{pending}");
    assert!(!pending.to_string().contains("cinv_"));

    // Another account cannot use the link; the invited one can, once.
    let token = app
        .mailed_token("known@example.com", "/invitations?token=")
        .await;
    let other = app.register("other@example.com").await;
    let (status, body) = app
        .post(
            "/invitations/accept",
            Some(&other.access_token),
            json!({"token": token}),
        )
        .await;
    assert_eq!(status, 403, "{body}");
    assert!(!is_member(&app, ws, other.user_id).await);
    let (status, accepted) = app
        .post(
            "/invitations/accept",
            Some(&known.access_token),
            json!({"token": token}),
        )
        .await;
    assert_eq!(status, 200, "{accepted}");
    assert_eq!(accepted["role"], "editor");
    assert_eq!(accepted["workspace_id"], ws.to_string());
    assert!(is_member(&app, ws, known.user_id).await);
    let (status, again) = app
        .post(
            "/invitations/accept",
            Some(&known.access_token),
            json!({"token": token}),
        )
        .await;
    assert_eq!(status, 404, "{again}");
    let (_, log) = app
        .get(&format!("/workspaces/{ws}/audit-log"), &owner.access_token)
        .await;
    let actions: Vec<&str> = log["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["action"].as_str())
        .collect();
    assert!(actions.contains(&"member.invited"), "{actions:?}");
    assert!(actions.contains(&"member.added"), "{actions:?}");

    // The address without an account signs up, then accepts.
    let newcomer = app.register("nobody-yet@example.com").await;
    let token = app
        .mailed_token("nobody-yet@example.com", "/invitations?token=")
        .await;
    let (status, body) = app
        .post(
            "/invitations/accept",
            Some(&newcomer.access_token),
            json!({"token": token}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert!(is_member(&app, ws, newcomer.user_id).await);
}

#[tokio::test]
async fn declined_revoked_replaced_and_expired_links_let_nobody_in() {
    let app = TestApp::spawn().await;
    let owner = app.register("owner@example.com").await;
    let ws = owner.workspace_id;
    let person = app.register("person@example.com").await;
    let invite = || async {
        let (status, body) = app
            .post(
                &format!("/workspaces/{ws}/members"),
                Some(&owner.access_token),
                json!({"email": "person@example.com", "role": "viewer"}),
            )
            .await;
        assert_eq!(status, 202, "{body}");
        let token = app
            .mailed_token("person@example.com", "/invitations?token=")
            .await;
        (body["invitation_id"].as_str().unwrap().to_string(), token)
    };
    let (app_ref, person_ref) = (&app, &person);
    let accept = |token: String| async move {
        app_ref
            .post(
                "/invitations/accept",
                Some(&person_ref.access_token),
                json!({"token": token}),
            )
            .await
    };

    // Declined: with the link alone, no session needed.
    let (_, token) = invite().await;
    let (status, body) = app
        .post("/invitations/decline", None, json!({"token": token}))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(accept(token).await.0, 404);

    // Revoked by an admin.
    let (id, token) = invite().await;
    let (status, body) = app
        .call(
            reqwest::Method::DELETE,
            &format!("/workspaces/{ws}/invitations/{id}"),
            Some(&owner.access_token),
            None,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(accept(token).await.0, 404);

    // Replaced by a newer invitation of the same address.
    let (_, older) = invite().await;
    let (_, newer) = invite().await;
    assert_ne!(older, newer);
    assert_eq!(accept(older).await.0, 404);

    // Expired after seven days.
    sqlx::query("UPDATE invitations SET expires_at = now() - interval '1 second'")
        .execute(&app.db)
        .await
        .unwrap();
    let (status, body) = accept(newer).await;
    assert_eq!(status, 404, "{body}");
    assert_eq!(error_code(&body), "not_found");
    assert!(!is_member(&app, ws, person.user_id).await);

    // A malformed or made-up token is the same "not found".
    for token in ["", "cinv_made_up", &"x".repeat(5000)] {
        let (status, _) = app
            .post("/invitations/decline", None, json!({"token": token}))
            .await;
        assert_eq!(status, 404);
    }
}

#[tokio::test]
async fn roles_change_members_leave_and_the_last_owner_stays() {
    let app = TestApp::spawn().await;
    let owner = app.register("owner@example.com").await;
    let ws = owner.workspace_id;
    let admin = app.member(&owner, "admin@example.com", "admin").await;
    let editor = app.member(&owner, "editor@example.com", "editor").await;
    let stranger = app.register("stranger@example.com").await;
    let member_path = |user: uuid::Uuid| format!("/workspaces/{ws}/members/{user}");
    // `by` changes (a role in `body`) or removes (no body) the member `user`.
    let on_member = |by: &Registered, user: uuid::Uuid, body: Option<serde_json::Value>| {
        let method = if body.is_some() {
            reqwest::Method::PATCH
        } else {
            reqwest::Method::DELETE
        };
        let (path, token) = (member_path(user), by.access_token.clone());
        let app = &app;
        async move { app.call(method, &path, Some(&token), body).await }
    };

    // An admin cannot invite or make owners, nor touch an owner.
    let (status, _) = app
        .post(
            &format!("/workspaces/{ws}/members"),
            Some(&admin.access_token),
            json!({"email": "x@example.com", "role": "owner"}),
        )
        .await;
    assert_eq!(status, 403);
    let (status, _) = on_member(&admin, owner.user_id, Some(json!({"role": "viewer"}))).await;
    assert_eq!(status, 403);
    let (status, _) = on_member(&admin, owner.user_id, None).await;
    assert_eq!(status, 403);
    // An editor removes nobody else.
    let (status, _) = on_member(&editor, admin.user_id, None).await;
    assert_eq!(status, 403);

    // The admin makes the editor a reviewer.
    let (status, changed) =
        on_member(&admin, editor.user_id, Some(json!({"role": "reviewer"}))).await;
    assert_eq!(status, 200, "{changed}");
    assert_eq!(changed["role"], "reviewer");

    // The only owner can neither step down nor leave.
    let (status, body) = on_member(&owner, owner.user_id, Some(json!({"role": "admin"}))).await;
    assert_eq!(status, 409, "{body}");
    let (status, _) = on_member(&owner, owner.user_id, None).await;
    assert_eq!(status, 409);

    // A member leaves; the admin removes another; a stranger's id and another workspace's
    // member are "not found".
    let (status, left) = on_member(&editor, editor.user_id, None).await;
    assert_eq!(status, 200, "{left}");
    assert!(!is_member(&app, ws, editor.user_id).await);
    let (status, _) = on_member(&owner, stranger.user_id, None).await;
    assert_eq!(status, 404);
    let (status, _) = app
        .call(
            reqwest::Method::DELETE,
            &format!(
                "/workspaces/{}/members/{}",
                stranger.workspace_id, stranger.user_id
            ),
            Some(&owner.access_token),
            None,
        )
        .await;
    assert_eq!(status, 404);
    let (status, _) = on_member(&owner, admin.user_id, None).await;
    assert_eq!(status, 200);
    let (_, log) = app
        .get(&format!("/workspaces/{ws}/audit-log"), &owner.access_token)
        .await;
    let actions: Vec<&str> = log["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["action"].as_str())
        .collect();
    for action in ["member.role_changed", "member.left", "member.removed"] {
        assert!(actions.contains(&action), "{action}: {actions:?}");
    }
}

#[tokio::test]
async fn a_password_reset_link_sets_the_password_once_and_ends_every_session() {
    let app = TestApp::spawn().await;
    let user = app.register("forgetful@example.com").await;
    let ask = |email: &'static str| {
        let app = &app;
        async move {
            app.post("/auth/password-reset", None, json!({"email": email}))
                .await
        }
    };
    let (status, known) = ask("forgetful@example.com").await;
    let (other_status, unknown) = ask("nobody@example.com").await;
    assert_eq!((status, other_status), (202, 202));
    assert_eq!(known, unknown, "the answer says nothing about the account");
    assert!(mail_to(&app, "nobody@example.com").await.is_empty());
    let mail = mail_to(&app, "forgetful@example.com").await;
    assert_eq!(mail.len(), 1, "{mail:?}");
    assert!(
        mail[0]
            .1
            .contains(&format!("{}/reset-password?token=", app.base)),
        "{mail:?}"
    );
    let token = app
        .mailed_token("forgetful@example.com", "/reset-password?token=")
        .await;
    let stored: Vec<Vec<u8>> = sqlx::query_scalar("SELECT token_hash FROM password_resets")
        .fetch_all(&app.db)
        .await
        .unwrap();
    assert!(
        stored.iter().all(|h| h != token.as_bytes()),
        "only the hash is kept"
    );

    // A weak password is refused and the link still works.
    let (status, _) = app
        .post(
            "/auth/password-reset/confirm",
            None,
            json!({"token": token, "password": "short"}),
        )
        .await;
    assert_eq!(status, 422);
    let new_password = "a brand new passphrase 42";
    let (status, done) = app
        .post(
            "/auth/password-reset/confirm",
            None,
            json!({"token": token, "password": new_password}),
        )
        .await;
    assert_eq!(status, 200, "{done}");
    assert!(done["sessions_revoked"].as_u64().unwrap() >= 1, "{done}");

    // Every session ended: the old access and refresh tokens are refused.
    let (status, _) = app.get("/me", &user.access_token).await;
    assert_eq!(status, 401);
    let (status, _) = app
        .post(
            "/auth/refresh",
            None,
            json!({"refresh_token": user.refresh_token}),
        )
        .await;
    assert_eq!(status, 401);
    // The new password works, the old one does not.
    let login = |password: &'static str| {
        let app = &app;
        async move {
            app.post(
                "/auth/login",
                None,
                json!({"email": "forgetful@example.com", "password": password}),
            )
            .await
            .0
        }
    };
    assert_eq!(login(PASSWORD).await, 401);
    assert_eq!(login("a brand new passphrase 42").await, 200);
    // The link is used up.
    let (status, body) = app
        .post(
            "/auth/password-reset/confirm",
            None,
            json!({"token": token, "password": "yet another passphrase 43"}),
        )
        .await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["error"]["field"], "token");
    let logged: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM audit_log WHERE action = 'account.password_reset'",
    )
    .fetch_one(&app.db)
    .await
    .unwrap();
    assert!(logged >= 1);

    // A newer link replaces an older one; an expired link does nothing.
    ask("forgetful@example.com").await;
    let older = app
        .mailed_token("forgetful@example.com", "/reset-password?token=")
        .await;
    ask("forgetful@example.com").await;
    let newer = app
        .mailed_token("forgetful@example.com", "/reset-password?token=")
        .await;
    assert_ne!(older, newer);
    let confirm = |token: String| {
        let app = &app;
        async move {
            app.post(
                "/auth/password-reset/confirm",
                None,
                json!({"token": token, "password": "yet another passphrase 43"}),
            )
            .await
            .0
        }
    };
    assert_eq!(confirm(older).await, 422);
    sqlx::query("UPDATE password_resets SET expires_at = now() - interval '1 second'")
        .execute(&app.db)
        .await
        .unwrap();
    assert_eq!(confirm(newer).await, 422);
}
