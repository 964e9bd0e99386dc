//! The workspace's home page (what needs attention) and the notification list.

use axum::extract::Path;
use axum::http::Method;
use axum::response::Response;
use axum::routing::{get, post};
use axum::{Extension, Form, Router};
use maud::{Markup, html};
use serde::de::IgnoredAny;
use serde_json::json;
use uuid::Uuid;

use super::{Workspace, call};
use crate::http::routes::notifications::NoticeList;
use crate::notify::attention::Attention;
use crate::notify::notices::Notice;
use crate::state::AppState;
use crate::web::api::InternalApi;
use crate::web::layout::{badge, csrf_field, see_other, when};
use crate::web::session::WebUser;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/w/{ws}", get(home))
        .route("/w/{ws}/notifications", get(notices))
        .route("/w/{ws}/notifications/read", post(mark_read))
}

/// "3 h", "2 d": how long something has waited.
pub fn age(secs: i64) -> String {
    match secs.max(0) {
        s if s < 60 => format!("{s} s"),
        s if s < 3600 => format!("{} min", s / 60),
        s if s < 2 * 86_400 => format!("{} h", s / 3600),
        s => format!("{} d", s / 86_400),
    }
}

fn number(value: Option<u64>) -> String {
    value.map_or_else(|| "—".into(), |n| n.to_string())
}

async fn home(
    Extension(api): Extension<InternalApi>,
    user: WebUser,
    Path(ws): Path<Uuid>,
) -> Result<Response, Response> {
    let workspace = Workspace::load(&api, &user, ws).await?;
    let a: Attention = call(
        &api,
        &user,
        Method::GET,
        &format!("/workspaces/{ws}/attention"),
        None,
    )
    .await?;
    let (proposals, failed, stores, runs) = (
        &a.proposals_waiting,
        &a.failed_jobs,
        &a.stores_needing_action,
        &a.scheduled_runs,
    );
    let budget = &a.budget;
    let body = html! {
        section #attention-proposals aria-labelledby="h-proposals" {
            h2 #h-proposals { "Proposals waiting for review" }
            @if proposals.is_empty() { p { "Nothing waits for review." } }
            @else {
                table {
                    thead { tr { th scope="col" { "Store" } th scope="col" { "Waiting" } th scope="col" { "Oldest waits for" } } }
                    tbody {
                        @for p in proposals {
                            tr {
                                td { a href=(format!("/w/{ws}/stores/{}/review", p.store_id)) { (p.store_name) } }
                                td.proposals { (p.proposals) }
                                td { (age(p.oldest_age_secs)) }
                            }
                        }
                    }
                }
            }
        }
        section #attention-failed aria-labelledby="h-failed" {
            h2 #h-failed { "Jobs failed in the last day" }
            @if failed.is_empty() { p { "No job failed." } }
            @else {
                ul {
                    @for j in failed {
                        li {
                            a href=(format!("/w/{ws}/jobs/{}", j.job_id)) { (j.kind) }
                            @if let Some(store) = &j.store_name { " of " (store) }
                            " at " (when(j.finished_at)) ": " (j.error.as_deref().unwrap_or(""))
                        }
                    }
                }
            }
        }
        section #attention-stores aria-labelledby="h-stores" {
            h2 #h-stores { "Stores that need you" }
            @if stores.is_empty() { p { "Every store is connected with the permissions it needs." } }
            @else {
                ul {
                    @for s in stores {
                        li {
                            a href=(format!("/w/{ws}/stores/{}", s.store_id)) { (s.store_name) }
                            " " (badge(&s.status))
                            @if let Some(detail) = &s.status_detail { " " (detail) }
                            @if !s.missing_permissions.is_empty() { " — grant in Magento: " code { (s.missing_permissions.join(", ")) } }
                        }
                    }
                }
            }
        }
        section #attention-runs aria-labelledby="h-runs" {
            h2 #h-runs { "Scheduled runs" }
            @if runs.is_empty() { p { "No store has a schedule." } }
            @else {
                table {
                    thead { tr { th scope="col" { "Store" } th scope="col" { "Last run" } th scope="col" { "Next run" } } }
                    tbody {
                        @for r in runs {
                            tr {
                                td { a href=(format!("/w/{ws}/stores/{}", r.store_id)) { (r.store_name) } }
                                td {
                                    (when(r.last_run_at))
                                    @if let Some(status) = &r.last_status { " " (badge(status)) }
                                    @if let Some(summary) = &r.last_summary { br; small { (summary) } }
                                }
                                td { @if r.enabled { (when(r.next_run_at)) } @else { "paused" } }
                            }
                        }
                    }
                }
            }
        }
        section #attention-budget aria-labelledby="h-budget" {
            h2 #h-budget { "AI budget today" }
            p {
                @match budget.left_today {
                    Some(left) => { (left) " tokens left of " (number(budget.daily_token_budget)) " (" (budget.used_today) " used today, UTC)." }
                    None => { "No daily budget; " (budget.used_today) " tokens used today (UTC)." }
                }
            }
        }
    };
    Ok(workspace.page(
        &user,
        "home",
        &format!("{} — what needs attention", workspace.name),
        body,
    ))
}

fn notice_row(ws: Uuid, n: &Notice, csrf: &str) -> Markup {
    let unread = n.read_at.is_none();
    html! {
        li class=(if unread { "notice unread" } else { "notice" }) {
            a href=(n.url) { (n.summary) }
            " " small { code { (n.kind) } " · " (when(n.created_at)) }
            @if unread {
                form.inline method="post" action=(format!("/w/{ws}/notifications/read")) {
                    (csrf_field(csrf))
                    input type="hidden" name="event_id" value=(n.event_id);
                    button type="submit" { "Mark read" }
                }
            }
        }
    }
}

async fn notices(
    Extension(api): Extension<InternalApi>,
    user: WebUser,
    Path(ws): Path<Uuid>,
) -> Result<Response, Response> {
    let workspace = Workspace::load(&api, &user, ws).await?;
    let listed: NoticeList = call(
        &api,
        &user,
        Method::GET,
        &format!("/workspaces/{ws}/notifications?limit=100"),
        None,
    )
    .await?;
    let body = html! {
        p { (listed.unread_count) " unread. "
            a href=(format!("/w/{ws}/notifications/preferences")) { "Choose what you get by mail" } }
        @if listed.unread_count > 0 {
            form.inline method="post" action=(format!("/w/{ws}/notifications/read")) {
                (csrf_field(&user.csrf))
                button type="submit" #mark-all-read { "Mark all read" }
            }
        }
        @if listed.items.is_empty() { p { "No notifications yet." } }
        ul #notices { @for n in &listed.items { (notice_row(ws, n, &user.csrf)) } }
    };
    Ok(workspace.page(&user, "notifications", "Notifications", body))
}

async fn mark_read(
    Extension(api): Extension<InternalApi>,
    user: WebUser,
    Path(ws): Path<Uuid>,
    Form(fields): Form<Vec<(String, String)>>,
) -> Result<Response, Response> {
    let ids: Vec<&str> = fields
        .iter()
        .filter(|(k, _)| k == "event_id")
        .map(|(_, v)| v.as_str())
        .collect();
    let body = if ids.is_empty() {
        json!({})
    } else {
        json!({"event_ids": ids})
    };
    call::<IgnoredAny>(
        &api,
        &user,
        Method::POST,
        &format!("/workspaces/{ws}/notifications/read"),
        Some(body),
    )
    .await?;
    Ok(see_other(&format!("/w/{ws}/notifications")))
}

#[cfg(test)]
mod tests {
    #[test]
    fn ages_read_as_people_say_them() {
        assert_eq!(super::age(5), "5 s");
        assert_eq!(super::age(125), "2 min");
        assert_eq!(super::age(3 * 3600 + 5), "3 h");
        assert_eq!(super::age(3 * 86_400), "3 d");
        assert_eq!(super::age(-4), "0 s");
    }
}
