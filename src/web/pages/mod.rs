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
use serde::de::DeserializeOwned;
use serde_json::Value;
use uuid::Uuid;

use super::api::{Answer, InternalApi};
use super::layout::{self, Nav};
use super::session::WebUser;
use crate::auth::Role;
use crate::http::routes::me::MeResponse;
use crate::http::routes::notifications::NoticeList;
use crate::pagination::Page;
use crate::state::AppState;
use crate::stores::StoreResponse;

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
    pub role: Role,
    pub all: Vec<(Uuid, String)>,
    /// The person's unread notices here, for the header.
    pub unread: i64,
}

impl Workspace {
    /// The workspace from the person's memberships; another workspace is "not found".
    pub async fn load(api: &InternalApi, user: &WebUser, id: Uuid) -> Result<Workspace, Response> {
        let me: MeResponse = call(api, user, Method::GET, "/me", None).await?;
        let this = me
            .workspaces
            .iter()
            .find(|w| w.id == id)
            .ok_or_else(|| layout::error_page(StatusCode::NOT_FOUND, "workspace not found"))?;
        let (name, role) = (this.name.clone(), this.role);
        let notices: NoticeList = call(
            api,
            user,
            Method::GET,
            &format!("/workspaces/{id}/notifications?unread=true&limit=1"),
            None,
        )
        .await?;
        Ok(Workspace {
            id,
            name,
            role,
            all: me.workspaces.into_iter().map(|w| (w.id, w.name)).collect(),
            unread: notices.unread_count,
        })
    }

    /// A page of this workspace: its navigation (with `current` marked) around `body`.
    pub fn page(&self, user: &WebUser, current: &str, title: &str, body: maud::Markup) -> Response {
        layout::render(layout::page(title, Some(&self.nav(user, current)), body))
    }

    pub fn nav<'a>(&'a self, user: &'a WebUser, current: &'a str) -> Nav<'a> {
        Nav {
            workspace_id: self.id,
            workspace_name: &self.name,
            role: self.role.as_str(),
            workspaces: &self.all,
            csrf: &user.csrf,
            current,
            unread: self.unread,
        }
    }

    /// Sync, audit, enrich, edit content, create exports.
    pub fn can_edit(&self) -> bool {
        matches!(self.role, Role::Owner | Role::Admin | Role::Editor)
    }

    /// Approve, reject, push.
    pub fn can_review(&self) -> bool {
        matches!(self.role, Role::Owner | Role::Admin | Role::Reviewer)
    }

    /// Store connections and schedules.
    pub fn can_administer(&self) -> bool {
        matches!(self.role, Role::Owner | Role::Admin)
    }
}

/// Posts `body` to the API for a page before sign-in (no session). An answer, error answers
/// included, is the page's to show; a call that could not be made is the internal-error page.
pub async fn post_anonymous<T: DeserializeOwned>(
    api: &InternalApi,
    parts: &axum::http::request::Parts,
    path: &str,
    body: Value,
) -> Result<Answer<T>, Response> {
    let origin = crate::web::session::request_origin(parts);
    api.call(None, &origin, Method::POST, path, Some(body))
        .await
        .map_err(|e| {
            tracing::error!(error = ?e, path, "internal API call failed");
            layout::error_page(StatusCode::INTERNAL_SERVER_ERROR, "internal error")
        })
}

/// Calls the API as `user` and reads its answer as `T`, the handler's response type; an error
/// answer becomes an error page with the API's status.
pub async fn call<T: DeserializeOwned>(
    api: &InternalApi,
    user: &WebUser,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> Result<T, Response> {
    let answer = api
        .call(Some(&user.caller), &user.origin, method, path, body)
        .await
        .map_err(|e| {
            tracing::error!(error = ?e, "internal API call failed");
            layout::error_page(StatusCode::INTERNAL_SERVER_ERROR, "internal error")
        })?;
    let message = answer.message();
    answer
        .body
        .map_err(|_| layout::error_page(answer.status, &message))
}

/// A list the API answers to `user`: a page of `T`s and the cursor of the next page.
pub async fn get_list<T: DeserializeOwned>(
    api: &InternalApi,
    user: &WebUser,
    path: &str,
) -> Result<Page<T>, Response> {
    call(api, user, Method::GET, path, None).await
}

/// The store `id` when it belongs to the page's workspace `ws`; else the not-found page.
pub async fn load_store(
    api: &InternalApi,
    user: &WebUser,
    ws: Uuid,
    id: Uuid,
) -> Result<StoreResponse, Response> {
    let store: StoreResponse = call(api, user, Method::GET, &format!("/stores/{id}"), None).await?;
    in_workspace(store.workspace_id, ws, "store")?;
    Ok(store)
}

/// A resource outside the page's workspace, answered like a missing one.
pub struct NotFound(String);

impl From<NotFound> for Response {
    fn from(NotFound(what): NotFound) -> Response {
        layout::error_page(StatusCode::NOT_FOUND, &format!("{what} not found"))
    }
}

/// Checks that a resource the API returned belongs to the workspace in the page's path.
pub fn in_workspace(workspace_id: Uuid, ws: Uuid, what: &str) -> Result<(), NotFound> {
    if workspace_id == ws {
        Ok(())
    } else {
        Err(NotFound(what.to_string()))
    }
}
