//! Notification preferences (per person and workspace) and the page behind a mail's
//! unsubscribe link, which works without signing in.

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, Form, Router};
use maud::html;
use serde::Deserialize;
use serde::de::IgnoredAny;
use serde_json::{Value, json};
use uuid::Uuid;

use super::account::anonymous_page;
use super::{Workspace, call};
use crate::auth::Caller;
use crate::auth::caller::Principal;
use crate::http::routes::notifications::Preferences;
use crate::notify::unsubscribe;
use crate::state::AppState;
use crate::web::api::InternalApi;
use crate::web::csrf;
use crate::web::layout::{self, csrf_field, page, render, see_other};
use crate::web::session::WebUser;

pub fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/w/{ws}/notifications/preferences",
            get(preferences).post(save_preferences),
        )
        .route("/unsubscribe", get(unsubscribe_page).post(unsubscribe))
}

async fn preferences(
    Extension(api): Extension<InternalApi>,
    user: WebUser,
    Path(ws): Path<Uuid>,
) -> Result<Response, Response> {
    let workspace = Workspace::load(&api, &user, ws).await?;
    let answer: Preferences = call(
        &api,
        &user,
        Method::GET,
        &format!("/workspaces/{ws}/notification-preferences"),
        None,
    )
    .await?;
    let items = answer.preferences;
    let body = html! {
        p { "Which events of " strong { (workspace.name) } " you get mail about. Until you choose, your role's default applies." }
        form.card #notification-preferences method="post" action=(format!("/w/{ws}/notifications/preferences")) {
            (csrf_field(&user.csrf))
            table {
                caption.sr-only { "Mail per event kind" }
                thead { tr { th scope="col" { "Event" } th scope="col" { "Mail" } th scope="col" { "Daily digest instead" } th scope="col" { "Default for your role" } } }
                tbody {
                    @for (i, p) in items.iter().enumerate() {
                        @let kind = p.kind.as_str();
                        tr {
                            td { label for=(format!("email-{i}")) { (p.label) } br; code { (kind) } }
                            td { input id=(format!("email-{i}")) type="checkbox" name="email" value=(kind) checked[p.email]; }
                            td {
                                @if kind == "review.ready" {
                                    input id="digest-review-ready" type="checkbox" name="digest" value=(kind)
                                        checked[p.digest] aria-label="Daily digest of proposals waiting";
                                }
                            }
                            td { @if p.default_email { "on" } @else { "off" } }
                        }
                    }
                }
            }
            button type="submit" { "Save" }
        }
    };
    Ok(workspace.page(&user, "notifications", "Notifications", body))
}

/// Checked boxes arrive as `email=<kind>` and `digest=<kind>`; every kind is sent, so an
/// unchecked box turns its mail off.
async fn save_preferences(
    Extension(api): Extension<InternalApi>,
    user: WebUser,
    Path(ws): Path<Uuid>,
    Form(fields): Form<Vec<(String, String)>>,
) -> Result<Response, Response> {
    let checked = |name: &str, kind: &str| fields.iter().any(|(k, v)| k == name && v == kind);
    let choices: Vec<Value> = crate::notify::EventKind::ALL
        .iter()
        .map(|kind| {
            let kind = kind.as_str();
            json!({"kind": kind, "email": checked("email", kind), "digest": checked("digest", kind)})
        })
        .collect();
    call::<IgnoredAny>(
        &api,
        &user,
        Method::PUT,
        &format!("/workspaces/{ws}/notification-preferences"),
        Some(json!({"preferences": choices})),
    )
    .await?;
    Ok(see_other(&format!("/w/{ws}/notifications/preferences")))
}

#[derive(Deserialize)]
struct TokenQuery {
    #[serde(default)]
    token: String,
}

/// What the link would turn off, and a button to do it: a mail scanner that follows links
/// changes nothing.
async fn unsubscribe_page(
    State(state): State<AppState>,
    caller: Option<Extension<Caller>>,
    headers: HeaderMap,
    Query(query): Query<TokenQuery>,
) -> Response {
    let Some(subscription) = unsubscribe::verify(&state.keys, &query.token) else {
        return layout::error_page(
            StatusCode::BAD_REQUEST,
            "This unsubscribe link is not valid (it may have been cut short).",
        );
    };
    let workspace: Option<String> = sqlx::query_scalar("SELECT name FROM workspaces WHERE id = $1")
        .bind(subscription.workspace_id)
        .fetch_optional(&state.db)
        .await
        .ok()
        .flatten();
    let render_form = |token: &str| {
        page(
            "Unsubscribe",
            None,
            html! {
                p { "Stop mails about “" (subscription.kind.label()) "” (" code { (subscription.kind.as_str()) } ")"
                    @if let Some(name) = &workspace { " from the workspace " strong { (name) } } "?" }
                form.card #unsubscribe method="post" action="/unsubscribe" {
                    (csrf_field(token))
                    input type="hidden" name="token" value=(query.token);
                    button type="submit" { "Unsubscribe" }
                }
            },
        )
    };
    // A signed-in visitor's forms carry their session's token; anyone else's the pre-session one.
    match caller.as_ref().map(|Extension(c)| &c.principal) {
        Some(Principal::User { session_id, .. }) => {
            render(render_form(&csrf::session_token(&state, *session_id)))
        }
        _ => anonymous_page(&state, &headers, StatusCode::OK, render_form),
    }
}

#[derive(Deserialize)]
struct UnsubscribeForm {
    #[serde(default)]
    token: String,
}

async fn unsubscribe(State(state): State<AppState>, Form(form): Form<UnsubscribeForm>) -> Response {
    match crate::http::routes::notifications::apply(&state, &form.token).await {
        Ok(subscription) => {
            let base = state.settings.public_base_url();
            render(page(
                "Unsubscribed",
                None,
                html! {
                    p role="status" #unsubscribed { "Done: no more mails about “" (subscription.kind.label()) "” from this workspace." }
                    p { a href=(crate::notify::compose::preferences_url(&base, subscription.workspace_id)) { "Choose what you get" } " (after signing in)." }
                },
            ))
        }
        Err(e) => {
            let status = e.status();
            let message = e.to_string();
            (status, layout::error_page(status, &message)).into_response()
        }
    }
}
