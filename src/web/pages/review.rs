//! The review queue: each proposal with a word-level diff against what is live, approve,
//! reject or edit-and-approve, bulk approval by filter, and the three sides of a conflict.
//! Keyboard: j/k move, a approves, r rejects, e edits (static/app.js).

use axum::extract::{Path, Query};
use axum::http::Method;
use axum::response::Response;
use axum::routing::{get, post};
use axum::{Extension, Form, Router};
use maud::{Markup, html};
use serde::Deserialize;
use serde::de::IgnoredAny;
use serde_json::{Map, Value, json};
use uuid::Uuid;

use super::{Workspace, call, get_list, load_store};
use crate::catalog::diff::{FieldChange, SegmentOp};
use crate::catalog::versions::VersionState;
use crate::review::ProposalResponse;
use crate::state::AppState;
use crate::web::api::InternalApi;
use crate::web::layout::{self, badge, csrf_field, name, text};
use crate::web::session::WebUser;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/w/{ws}/stores/{id}/review", get(queue))
        .route("/w/{ws}/stores/{id}/review/approve-all", post(approve_all))
        .route(
            "/w/{ws}/stores/{id}/proposals/{proposal}/{decision}",
            post(decide),
        )
}

#[derive(Deserialize, Default)]
struct Filter {
    #[serde(default)]
    state: String,
    #[serde(default)]
    field: String,
}

impl Filter {
    fn query(&self) -> String {
        let mut pairs: Vec<(&str, &str)> = Vec::new();
        if !self.state.is_empty() {
            pairs.push(("state", &self.state));
        }
        if !self.field.is_empty() {
            pairs.push(("field", &self.field));
        }
        serde_urlencoded::to_string(pairs).unwrap_or_default()
    }
}

const STATES: &[&str] = &[
    "proposed", "approved", "conflict", "failed", "rejected", "pushed",
];

fn words(change: &FieldChange) -> Markup {
    html! {
        @match &change.words {
            Some(segments) => {
                p.diff {
                    @for s in segments {
                        @match s.op {
                            SegmentOp::Insert => ins { (s.text) },
                            SegmentOp::Delete => del { (s.text) },
                            SegmentOp::Equal => span { (s.text) },
                        }
                    }
                }
            }
            None => {
                div.side-by-side {
                    div { h4 { "Live" } p { (change.from.as_deref().unwrap_or("")) } }
                    div { h4 { "Proposed" } p { (change.to.as_deref().unwrap_or("")) } }
                }
            }
        }
    }
}

fn conflict(meta: &Value) -> Markup {
    html! {
        @if let Some(fields) = meta["conflict"].as_array() {
            div.conflict role="group" aria-label="Conflict" {
                h4 { "Conflict: the store changed since the proposal was made" }
                table {
                    thead { tr { th scope="col" { "Field" } th scope="col" { "Base" } th scope="col" { "Magento now" } th scope="col" { "Proposal" } } }
                    tbody {
                        @for f in fields {
                            tr { td { (text(&f["field"])) } td { (text(&f["base"])) } td { (text(&f["store"])) } td { (text(&f["proposal"])) } }
                        }
                    }
                }
            }
        }
    }
}

/// Why a push failed: the reason, and for a write the store did not take (or took elsewhere)
/// each field with what was sent and what the store shows.
fn push_failure(meta: &Value) -> Markup {
    html! {
        @if let Some(error) = meta["push_error"].as_str() {
            div.push-failure role="group" aria-label="Push failed" {
                h4 { "Push failed (" (text(&meta["push_error_kind"])) ")" }
                p { (error) }
                @if let Some(fields) = meta["not_applied"].as_array().filter(|f| !f.is_empty()) {
                    table {
                        thead { tr { th scope="col" { "Field" } th scope="col" { "Sent" } th scope="col" { "Magento shows" } } }
                        tbody {
                            @for f in fields {
                                tr { td { (text(&f["field"])) } td { (text(&f["sent"])) } td { (text(&f["store"])) } }
                            }
                        }
                    }
                }
                @if let Some(changes) = meta["changed_elsewhere"].as_array().filter(|c| !c.is_empty()) {
                    table {
                        caption { "Changed where it was not meant to" }
                        thead { tr { th scope="col" { "Scope" } th scope="col" { "Field" } th scope="col" { "Before" } th scope="col" { "After" } } }
                        tbody {
                            @for c in changes {
                                tr { td { (text(&c["scope"])) } td { (text(&c["field"])) } td { (text(&c["before"])) } td { (text(&c["after"])) } }
                            }
                        }
                    }
                }
            }
        }
    }
}

fn proposal_markup(
    ws: Uuid,
    store: Uuid,
    p: &ProposalResponse,
    can_review: bool,
    csrf: &str,
) -> Markup {
    let id = p.id;
    let action = |decision: &str| format!("/w/{ws}/stores/{store}/proposals/{id}/{decision}");
    let changes = &p.changes;
    // What the API lets a reviewer do in each state.
    let approvable = p.state == VersionState::Proposed;
    let rejectable = matches!(
        p.state,
        VersionState::Proposed
            | VersionState::Approved
            | VersionState::Conflict
            | VersionState::Failed
    );
    html! {
        article.proposal tabindex="0" data-id=(id) aria-labelledby=(format!("p-{id}")) {
            h3 #(format!("p-{id}")) { (p.sku) " · " (p.store_view) " " (badge(&name(&p.state))) }
            @for change in changes {
                section.change {
                    h4 { (change.field) }
                    (words(change))
                }
            }
            (conflict(&p.meta))
            (push_failure(&p.meta))
            @if can_review && (approvable || rejectable) {
                div.buttons {
                    @if approvable {
                        form.inline method="post" action=(action("approve")) {
                            (csrf_field(csrf))
                            button.approve type="submit" { "Approve" kbd { "a" } }
                        }
                    }
                    @if rejectable {
                        form.inline method="post" action=(action("reject")) {
                            (csrf_field(csrf))
                            button.reject type="submit" { "Reject" kbd { "r" } }
                        }
                    }
                }
            }
            @if can_review && approvable {
                details.edit {
                    summary { "Edit and approve " kbd { "e" } }
                    form method="post" action=(action("approve")) {
                        (csrf_field(csrf))
                        @for change in changes {
                            @let field = &change.field;
                            label for=(format!("edit-{id}-{field}")) { (field) }
                            textarea id=(format!("edit-{id}-{field}")) name=(format!("field:{field}")) rows="3" { (change.to.as_deref().unwrap_or("")) }
                        }
                        button type="submit" { "Approve with edits" }
                    }
                }
            }
        }
    }
}

async fn queue(
    Extension(api): Extension<InternalApi>,
    user: WebUser,
    Path((ws, id)): Path<(Uuid, Uuid)>,
    Query(filter): Query<Filter>,
) -> Result<Response, Response> {
    let workspace = Workspace::load(&api, &user, ws).await?;
    let store = load_store(&api, &user, ws, id).await?;
    let query = filter.query();
    let items = get_list::<ProposalResponse>(
        &api,
        &user,
        &format!("/stores/{id}/proposals?limit=50&{query}"),
    )
    .await?
    .items;
    let can_review = workspace.can_review();
    let state = if filter.state.is_empty() {
        "proposed"
    } else {
        filter.state.as_str()
    };
    let body = html! {
        p { a href=(format!("/w/{ws}/stores/{id}")) { "Back to " (store.name) } }
        form.filters method="get" action=(format!("/w/{ws}/stores/{id}/review")) {
            label for="state" { "State" }
            select #state name="state" {
                @for s in STATES { option value=(s) selected[*s == state] { (s) } }
            }
            label for="field" { "Changes field" }
            input #field type="text" name="field" value=(filter.field) placeholder="any field";
            button type="submit" { "Filter" }
        }
        @if can_review && state == "proposed" && !items.is_empty() {
            form.inline method="post" action=(format!("/w/{ws}/stores/{id}/review/approve-all?{query}")) {
                (csrf_field(&user.csrf))
                button.approve-all type="submit" { "Approve all matching proposals" }
            }
        }
        p.hint { "Keyboard: " kbd { "j" } " / " kbd { "k" } " move, " kbd { "a" } " approve, " kbd { "r" } " reject, " kbd { "e" } " edit." }
        @if items.is_empty() {
            p #queue-empty { "Nothing to review here." }
        }
        div #queue {
            @for p in &items { (proposal_markup(ws, id, p, can_review, &user.csrf)) }
        }
    };
    let title = format!("Review · {}", store.name);
    Ok(workspace.page(&user, "stores", &title, body))
}

async fn decide(
    Extension(api): Extension<InternalApi>,
    user: WebUser,
    Path((ws, store, proposal, decision)): Path<(Uuid, Uuid, Uuid, String)>,
    Form(form): Form<Vec<(String, String)>>,
) -> Result<Response, Response> {
    let mut fields = Map::new();
    for (name, value) in form {
        if let Some(field) = name.strip_prefix("field:") {
            fields.insert(field.to_string(), json!(value));
        }
    }
    let body = if fields.is_empty() {
        json!({})
    } else {
        json!({"fields": fields})
    };
    let path = match decision.as_str() {
        "approve" => format!("/proposals/{proposal}/approve"),
        "reject" => format!("/proposals/{proposal}/reject"),
        _ => {
            return Err(layout::error_page(
                axum::http::StatusCode::NOT_FOUND,
                "no such decision",
            ));
        }
    };
    call::<IgnoredAny>(&api, &user, Method::POST, &path, Some(body)).await?;
    Ok(layout::see_other(&format!("/w/{ws}/stores/{store}/review")))
}

async fn approve_all(
    Extension(api): Extension<InternalApi>,
    user: WebUser,
    Path((ws, id)): Path<(Uuid, Uuid)>,
    Query(filter): Query<Filter>,
) -> Result<Response, Response> {
    let mut api_filter = json!({});
    if !filter.field.is_empty() {
        api_filter["field"] = json!(filter.field);
    }
    call::<IgnoredAny>(
        &api,
        &user,
        Method::POST,
        &format!("/stores/{id}/proposals/approve"),
        Some(json!({"filter": api_filter})),
    )
    .await?;
    Ok(layout::see_other(&format!("/w/{ws}/stores/{id}/review")))
}
