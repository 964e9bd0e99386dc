//! The pages, one module per area.

mod account;
mod audits;
mod exports;
mod home;
mod jobs;
mod mailed_links;
mod notifications;
mod products;
mod review;
mod settings;
mod stores;
mod webhooks;

use axum::Router;
use axum::http::{Method, StatusCode};
use axum::response::Response;
use serde_json::Value;
use uuid::Uuid;

use super::api::{Answer, InternalApi};
use super::layout::{self, Nav};
use super::session::WebUser;
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .merge(account::router())
        .merge(mailed_links::router())
        .merge(audits::router())
        .merge(stores::router())
        .merge(jobs::router())
        .merge(products::router())
        .merge(review::router())
        .merge(settings::router())
        .merge(exports::router())
        .merge(webhooks::router())
        .merge(notifications::router())
        .merge(home::router())
}

/// What a page inside a workspace knows about it and the person's place in it.
pub struct Workspace {
    pub id: Uuid,
    pub name: String,
    pub role: String,
    pub all: Vec<(Uuid, String)>,
    /// The person's unread notices here, for the header.
    pub unread: i64,
}

impl Workspace {
    /// The workspace from the person's memberships; another workspace is "not found".
    pub async fn load(api: &InternalApi, user: &WebUser, id: Uuid) -> Result<Workspace, Response> {
        let me = call(api, user, Method::GET, "/me", None).await?;
        let items = me.body["workspaces"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let all: Vec<(Uuid, String)> = items
            .iter()
            .filter_map(|w| {
                Some((
                    w["id"].as_str()?.parse().ok()?,
                    w["name"].as_str()?.to_string(),
                ))
            })
            .collect();
        let this = items
            .iter()
            .find(|w| w["id"].as_str() == Some(id.to_string().as_str()))
            .ok_or_else(|| layout::error_page(StatusCode::NOT_FOUND, "workspace not found"))?;
        let unread = call(
            api,
            user,
            Method::GET,
            &format!("/workspaces/{id}/notifications?unread=true&limit=1"),
            None,
        )
        .await?
        .body["unread_count"]
            .as_i64()
            .unwrap_or(0);
        Ok(Workspace {
            id,
            name: layout::text(&this["name"]).to_string(),
            role: layout::text(&this["role"]).to_string(),
            all,
            unread,
        })
    }

    pub fn nav<'a>(&'a self, user: &'a WebUser, current: &'a str) -> Nav<'a> {
        Nav {
            workspace_id: self.id,
            workspace_name: &self.name,
            role: &self.role,
            workspaces: &self.all,
            csrf: &user.csrf,
            current,
            unread: self.unread,
        }
    }

    /// The person's role, as the API named it.
    pub fn role(&self) -> Option<crate::auth::Role> {
        serde_json::from_value(Value::String(self.role.clone())).ok()
    }

    /// Sync, audit, enrich, edit content, create exports.
    pub fn can_edit(&self) -> bool {
        matches!(self.role.as_str(), "owner" | "admin" | "editor")
    }

    /// Approve, reject, push.
    pub fn can_review(&self) -> bool {
        matches!(self.role.as_str(), "owner" | "admin" | "reviewer")
    }

    /// Store connections and schedules.
    pub fn can_administer(&self) -> bool {
        matches!(self.role.as_str(), "owner" | "admin")
    }
}

/// Posts `body` to the API for a page before sign-in (no session). An answer, error answers
/// included, is the page's to show; a call that could not be made is the internal-error page.
pub async fn post_anonymous(
    api: &InternalApi,
    parts: &axum::http::request::Parts,
    path: &str,
    body: Value,
) -> Result<Answer, Response> {
    let origin = crate::web::session::request_origin(parts);
    api.call(None, &origin, Method::POST, path, Some(body))
        .await
        .map_err(|e| {
            tracing::error!(error = ?e, path, "internal API call failed");
            layout::error_page(StatusCode::INTERNAL_SERVER_ERROR, "internal error")
        })
}

/// Calls the API as `user`; an error answer becomes an error page with the API's status.
pub async fn call(
    api: &InternalApi,
    user: &WebUser,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> Result<Answer, Response> {
    let answer = api
        .call(Some(&user.caller), &user.origin, method, path, body)
        .await
        .map_err(|e| {
            tracing::error!(error = ?e, "internal API call failed");
            layout::error_page(StatusCode::INTERNAL_SERVER_ERROR, "internal error")
        })?;
    if answer.ok() {
        Ok(answer)
    } else {
        Err(layout::error_page(answer.status, &answer.message()))
    }
}

/// A list the API answers to `user` (`{"items": […], "next_cursor"}`): its items and the
/// cursor of the next page.
pub async fn get_list(
    api: &InternalApi,
    user: &WebUser,
    path: &str,
) -> Result<(Vec<Value>, Option<String>), Response> {
    let mut answer = call(api, user, Method::GET, path, None).await?;
    let items = match answer.body["items"].take() {
        Value::Array(items) => items,
        _ => Vec::new(),
    };
    let next = answer.body["next_cursor"].as_str().map(str::to_string);
    Ok((items, next))
}

/// The store `id` when it belongs to the page's workspace `ws`; else the not-found page.
pub async fn load_store(
    api: &InternalApi,
    user: &WebUser,
    ws: Uuid,
    id: Uuid,
) -> Result<Value, Response> {
    let store = call(api, user, Method::GET, &format!("/stores/{id}"), None).await?;
    in_workspace(&store.body, ws, "store")?;
    Ok(store.body)
}

/// A resource outside the page's workspace, answered like a missing one.
pub struct NotFound(String);

impl From<NotFound> for Response {
    fn from(NotFound(what): NotFound) -> Response {
        layout::error_page(StatusCode::NOT_FOUND, &format!("{what} not found"))
    }
}

/// Checks that a resource the API returned belongs to the workspace in the page's path.
pub fn in_workspace(body: &Value, ws: Uuid, what: &str) -> Result<(), NotFound> {
    if body["workspace_id"].as_str() == Some(ws.to_string().as_str()) {
        Ok(())
    } else {
        Err(NotFound(what.to_string()))
    }
}
