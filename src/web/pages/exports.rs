//! Exports: the workspace's import files with their time-limited download links.

use axum::extract::{Path, State};
use axum::http::{Method, StatusCode};
use axum::response::Response;
use axum::routing::get;
use axum::{Extension, Router};
use maud::html;
use uuid::Uuid;

use super::{Workspace, call};
use crate::http::routes::exports::{ExportResponse, visible_to};
use crate::state::AppState;
use crate::web::api::InternalApi;
use crate::web::layout::{self, badge, name, when};
use crate::web::session::WebUser;
use crate::web::table::Table;

pub fn router() -> Router<AppState> {
    Router::new().route("/w/{ws}/exports", get(list))
}

async fn list(
    State(state): State<AppState>,
    Extension(api): Extension<InternalApi>,
    user: WebUser,
    Path(ws): Path<Uuid>,
) -> Result<Response, Response> {
    let workspace = Workspace::load(&api, &user, ws).await?;
    // Membership is checked above; the list is scoped to this workspace, and holds only the
    // formats the person's role may read (every read below would otherwise be refused).
    let formats: Vec<(Uuid, String)> = sqlx::query_as(
        "SELECT id, format FROM exports WHERE workspace_id = $1 ORDER BY created_at DESC LIMIT 50",
    )
    .bind(ws)
    .fetch_all(&state.db)
    .await
    .map_err(|e| {
        tracing::error!(error = ?e, "listing exports failed");
        layout::error_page(StatusCode::INTERNAL_SERVER_ERROR, "internal error")
    })?;
    let ids = formats
        .into_iter()
        .filter(|(_, format)| visible_to(workspace.role, format))
        .map(|(id, _)| id);
    let mut exports = Vec::new();
    for id in ids {
        // Each through the API, which signs a fresh download link and logs the download grant.
        exports.push(
            call::<ExportResponse>(&api, &user, Method::GET, &format!("/exports/{id}"), None)
                .await?,
        );
    }
    let body = html! {
        @if exports.is_empty() {
            p { "No exports yet. Start one from a store's page." }
        } @else {
            (Table::new("Exports, newest first", &["Format", "Status", "Rows", "Size", "Created", "Download"]).rows(&exports, |export| html! {
                td { (export.format) }
                td { (badge(&name(&export.status))) }
                td { (export.rows.map(|r| r.to_string()).unwrap_or_default()) }
                td { (export.bytes.map(|b| format!("{b} bytes")).unwrap_or_default()) }
                td { (when(export.created_at)) }
                td {
                    @match &export.download_url {
                        Some(url) => a.download href=(url) download { "Download " (export.format) }
                        None => "—",
                    }
                    @if let Some(expires) = export.expires_at {
                        br; small { "link valid until " (when(expires)) }
                    }
                }
            }))
        }
    };
    Ok(workspace.page(&user, "exports", "Exports", body))
}
