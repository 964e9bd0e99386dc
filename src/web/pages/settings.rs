//! Workspace settings: members and roles, API keys (the key is shown once), AI processing and
//! budgets; and the workspace's audit log.

use axum::extract::Path;
use axum::http::{Method, StatusCode};
use axum::response::Response;
use axum::routing::{get, post};
use axum::{Extension, Form, Router};
use maud::{Markup, html};
use serde::Deserialize;
use serde::de::IgnoredAny;
use serde_json::{Value, json};
use uuid::Uuid;

use super::{Workspace, call};
use crate::accounts::settings::WorkspaceSettings;
use crate::accounts::workspaces::{ApiKeyInfo, Member};
use crate::audit_log::AuditRecord;
use crate::http::routes::members::InvitationList;
use crate::http::routes::workspaces::CreatedApiKey;
use crate::pagination::Page;
use crate::state::AppState;
use crate::web::api::InternalApi;
use crate::web::layout::{self, button_form, csrf_field, when};
use crate::web::session::WebUser;
use crate::web::table::Table;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/w/{ws}/settings", get(show).post(save))
        .route("/w/{ws}/settings/members", post(invite_member))
        .route(
            "/w/{ws}/settings/members/{user}/remove",
            post(remove_member),
        )
        .route(
            "/w/{ws}/settings/invitations/{id}/revoke",
            post(revoke_invitation),
        )
        .route("/w/{ws}/settings/api-keys", post(create_key))
        .route("/w/{ws}/settings/api-keys/{key}/revoke", post(revoke_key))
        .route("/w/{ws}/audit-log", get(audit_log))
}

const ROLES: &[&str] = &["viewer", "reviewer", "editor", "admin", "owner"];

fn role_select(id: &str) -> Markup {
    html! {
        select id=(id) name="role" {
            @for r in ROLES { option value=(r) selected[*r == "viewer"] { (r) } }
        }
    }
}

async fn settings_page(
    api: &InternalApi,
    user: &WebUser,
    workspace: &Workspace,
    new_key: Option<&CreatedApiKey>,
) -> Result<Response, Response> {
    let ws = workspace.id;
    if !workspace.can_administer() {
        return Err(layout::error_page(
            StatusCode::FORBIDDEN,
            "your role in this workspace does not allow this",
        ));
    }
    let members: Page<Member> = call(
        api,
        user,
        Method::GET,
        &format!("/workspaces/{ws}/members?limit=100"),
        None,
    )
    .await?;
    let invitations: InvitationList = call(
        api,
        user,
        Method::GET,
        &format!("/workspaces/{ws}/invitations"),
        None,
    )
    .await?;
    let keys: Page<ApiKeyInfo> = call(
        api,
        user,
        Method::GET,
        &format!("/workspaces/{ws}/api-keys?limit=100"),
        None,
    )
    .await?;
    let settings: WorkspaceSettings = call(
        api,
        user,
        Method::GET,
        &format!("/workspaces/{ws}/settings"),
        None,
    )
    .await?;
    let body = html! {
        p { a href=(format!("/w/{ws}/audit-log")) { "Audit log" } " · " a href=(format!("/w/{ws}/webhooks")) { "Webhooks" } }
        section aria-labelledby="ai-heading" {
            h2 #ai-heading { "AI processing and budgets" }
            form.card method="post" action=(format!("/w/{ws}/settings")) {
                (csrf_field(&user.csrf))
                label.check for="ai_processing" {
                    input #ai_processing type="checkbox" name="ai_processing" value="on" checked[settings.ai_processing];
                    " AI processing (when off, nothing is sent to any AI provider)"
                }
                label.check for="four_eyes" {
                    input #four_eyes type="checkbox" name="four_eyes" value="on" checked[settings.four_eyes];
                    " Four eyes (nobody approves their own proposal)"
                }
                label for="daily_token_budget" { "Daily token budget (empty: no limit)" }
                input #daily_token_budget type="number" min="0" name="daily_token_budget"
                    value=(settings.daily_token_budget.map(|b| b.to_string()).unwrap_or_default());
                button type="submit" { "Save settings" }
            }
        }
        section aria-labelledby="members-heading" {
            h2 #members-heading { "Members" }
            (Table::new("Members and their roles", &["Name", "Email", "Role", "Since", ""]).rows(&members.items, |m| html! {
                td { (m.name) } td { (m.email) } td { (m.role.as_str()) } td { (when(m.created_at)) }
                td {
                    @if m.user_id != user.user_id {
                        (button_form(&format!("/w/{ws}/settings/members/{}/remove", m.user_id), &user.csrf, "Remove", "danger"))
                    }
                }
            }))
            h3 { "Pending invitations" }
            @let pending = &invitations.items;
            @if pending.is_empty() {
                p #no-invitations { "No invitation is waiting for an answer." }
            } @else {
                (Table::new("Pending invitations", &["Email", "Role", "Invited by", "Expires", ""]).id("invitations").rows(pending, |i| html! {
                    td { (i.email) } td { (i.role.as_str()) } td { (i.invited_by.as_deref().unwrap_or("")) } td { (when(i.expires_at)) }
                    td { (button_form(&format!("/w/{ws}/settings/invitations/{}/revoke", i.id), &user.csrf, "Revoke", "danger")) }
                }))
            }
            form.card method="post" action=(format!("/w/{ws}/settings/members")) {
                (csrf_field(&user.csrf))
                label for="member-email" { "Email to invite (they accept from the mailed link)" }
                input #member-email type="email" name="email" required;
                label for="member-role" { "Role" }
                (role_select("member-role"))
                button type="submit" { "Invite" }
            }
        }
        section aria-labelledby="keys-heading" {
            h2 #keys-heading { "API keys" }
            @if let Some(key) = new_key {
                div.new-key role="status" {
                    p { strong { "Copy this key now: it is shown only once." } }
                    label for="new-key" { "API key " (key.name) " (" (key.role.as_str()) ")" }
                    input #new-key type="text" readonly value=(key.key);
                }
            }
            (Table::new("API keys", &["Name", "Prefix", "Role", "Last used", "State"]).rows(&keys.items, |k| html! {
                td { (k.name) }
                td { code { (k.prefix) } }
                td { (k.role.as_str()) }
                td { (when(k.last_used_at)) }
                td {
                    @if let Some(revoked) = k.revoked_at { "revoked " (when(revoked)) }
                    @else { (button_form(&format!("/w/{ws}/settings/api-keys/{}/revoke", k.id), &user.csrf, "Revoke", "reject")) }
                }
            }))
            form.card method="post" action=(format!("/w/{ws}/settings/api-keys")) {
                (csrf_field(&user.csrf))
                label for="key-name" { "Name" }
                input #key-name type="text" name="name" required;
                label for="key-role" { "Role" }
                (role_select("key-role"))
                button type="submit" { "Create API key" }
            }
        }
    };
    Ok(workspace.page(user, "settings", "Settings", body))
}

async fn show(
    Extension(api): Extension<InternalApi>,
    user: WebUser,
    Path(ws): Path<Uuid>,
) -> Result<Response, Response> {
    let workspace = Workspace::load(&api, &user, ws).await?;
    settings_page(&api, &user, &workspace, None).await
}

#[derive(Deserialize)]
struct SettingsForm {
    #[serde(default)]
    ai_processing: Option<String>,
    #[serde(default)]
    four_eyes: Option<String>,
    #[serde(default)]
    daily_token_budget: String,
}

async fn save(
    Extension(api): Extension<InternalApi>,
    user: WebUser,
    Path(ws): Path<Uuid>,
    Form(form): Form<SettingsForm>,
) -> Result<Response, Response> {
    let budget = match form.daily_token_budget.trim() {
        "" => Value::Null,
        raw => match raw.parse::<u64>() {
            Ok(n) => json!(n),
            Err(_) => {
                return Err(layout::error_page(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "the daily token budget must be a whole number",
                ));
            }
        },
    };
    let body = json!({
        "ai_processing": form.ai_processing.is_some(),
        "four_eyes": form.four_eyes.is_some(),
        "daily_token_budget": budget,
    });
    call::<IgnoredAny>(
        &api,
        &user,
        Method::PUT,
        &format!("/workspaces/{ws}/settings"),
        Some(body),
    )
    .await?;
    Ok(layout::see_other(&format!("/w/{ws}/settings")))
}

#[derive(Deserialize)]
struct MemberForm {
    email: String,
    role: String,
}

async fn invite_member(
    Extension(api): Extension<InternalApi>,
    user: WebUser,
    Path(ws): Path<Uuid>,
    Form(form): Form<MemberForm>,
) -> Result<Response, Response> {
    let body = json!({"email": form.email.trim(), "role": form.role});
    call::<IgnoredAny>(
        &api,
        &user,
        Method::POST,
        &format!("/workspaces/{ws}/members"),
        Some(body),
    )
    .await?;
    Ok(layout::see_other(&format!("/w/{ws}/settings")))
}

/// Deletes what `path` names through the API, then shows the settings page again.
async fn delete_then_back(
    api: &InternalApi,
    user: &WebUser,
    ws: Uuid,
    path: &str,
) -> Result<Response, Response> {
    call::<IgnoredAny>(api, user, Method::DELETE, path, None).await?;
    Ok(layout::see_other(&format!("/w/{ws}/settings")))
}

async fn remove_member(
    Extension(api): Extension<InternalApi>,
    user: WebUser,
    Path((ws, member)): Path<(Uuid, Uuid)>,
) -> Result<Response, Response> {
    delete_then_back(
        &api,
        &user,
        ws,
        &format!("/workspaces/{ws}/members/{member}"),
    )
    .await
}

async fn revoke_invitation(
    Extension(api): Extension<InternalApi>,
    user: WebUser,
    Path((ws, id)): Path<(Uuid, Uuid)>,
) -> Result<Response, Response> {
    delete_then_back(
        &api,
        &user,
        ws,
        &format!("/workspaces/{ws}/invitations/{id}"),
    )
    .await
}

#[derive(Deserialize)]
struct KeyForm {
    name: String,
    role: String,
}

/// Creates a key and shows it on the answer itself: it is never stored or shown again.
async fn create_key(
    Extension(api): Extension<InternalApi>,
    user: WebUser,
    Path(ws): Path<Uuid>,
    Form(form): Form<KeyForm>,
) -> Result<Response, Response> {
    let workspace = Workspace::load(&api, &user, ws).await?;
    let body = json!({"name": form.name, "role": form.role});
    let created: CreatedApiKey = call(
        &api,
        &user,
        Method::POST,
        &format!("/workspaces/{ws}/api-keys"),
        Some(body),
    )
    .await?;
    settings_page(&api, &user, &workspace, Some(&created)).await
}

async fn revoke_key(
    Extension(api): Extension<InternalApi>,
    user: WebUser,
    Path((ws, key)): Path<(Uuid, Uuid)>,
) -> Result<Response, Response> {
    delete_then_back(&api, &user, ws, &format!("/workspaces/{ws}/api-keys/{key}")).await
}

async fn audit_log(
    Extension(api): Extension<InternalApi>,
    user: WebUser,
    Path(ws): Path<Uuid>,
) -> Result<Response, Response> {
    let workspace = Workspace::load(&api, &user, ws).await?;
    let log: Page<AuditRecord> = call(
        &api,
        &user,
        Method::GET,
        &format!("/workspaces/{ws}/audit-log?limit=200"),
        None,
    )
    .await?;
    let body = html! {
        (Table::new("Security-relevant actions, newest first", &["When", "Action", "Who", "Target", "From"]).id("audit-log").rows(&log.items, |e| html! {
            td { (when(e.created_at)) }
            td { code { (e.action) } }
            td { @if let Some(email) = &e.actor_email { (email) } @else if e.actor_api_key_id.is_some() { "API key" } @else { "—" } }
            td { (e.target_type.as_deref().unwrap_or("")) " " (e.target_id.as_deref().unwrap_or("")) }
            td { (e.client_addr.as_deref().unwrap_or("")) }
        }))
    };
    Ok(workspace.page(&user, "settings", "Audit log", body))
}
