//! Jobs: the workspace's list and one job with a live progress bar and its log.

use axum::extract::Path;
use axum::extract::State;
use axum::http::Method;
use axum::response::Response;
use axum::routing::{get, post};
use axum::{Extension, Router};
use maud::{Markup, html};
use serde::de::IgnoredAny;
use uuid::Uuid;

use super::{Workspace, call, get_list};
use crate::auth::roles::Capability;
use crate::jobs::JobResponse;
use crate::state::AppState;
use crate::web::api::InternalApi;
use crate::web::layout::{badge, button_form, name, render, see_other, when};
use crate::web::session::WebUser;
use crate::web::table::Table;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/w/{ws}/jobs", get(list))
        .route("/w/{ws}/jobs/{id}", get(show))
        .route("/w/{ws}/jobs/{id}/progress", get(progress_fragment))
        .route("/w/{ws}/jobs/{id}/cancel", post(cancel))
}

async fn list(
    Extension(api): Extension<InternalApi>,
    user: WebUser,
    Path(ws): Path<Uuid>,
) -> Result<Response, Response> {
    let workspace = Workspace::load(&api, &user, ws).await?;
    let items = get_list::<JobResponse>(&api, &user, &format!("/workspaces/{ws}/jobs?limit=50"))
        .await?
        .items;
    let body = html! {
        @if items.is_empty() {
            p { "No jobs yet." }
        } @else {
            (Table::new("Jobs, newest first", &["Job", "Status", "Progress", "Started", "Finished"]).rows(&items, |job| html! {
                td { a href=(format!("/w/{ws}/jobs/{}", job.id)) { (job.kind.as_str()) } }
                td { (badge(&name(&job.status))) }
                td { (progress_text(job)) }
                td { (when(job.started_at)) }
                td { (when(job.finished_at)) }
            }))
        }
    };
    Ok(workspace.page(&user, "jobs", "Jobs", body))
}

fn progress_text(job: &JobResponse) -> String {
    let done = job.progress.done;
    match job.progress.total {
        Some(total) => format!("{done} of {total}"),
        None => format!("{done}"),
    }
}

/// Status, progress bar, counters and log; polls itself every second until the job finishes.
/// `cancel` is the CSRF token when the person may stop the job.
fn progress_markup(ws: Uuid, job: &JobResponse, cancel: Option<&str>) -> Markup {
    let id = job.id;
    let running = !job.status.is_finished();
    let done = job.progress.done;
    let total = job.progress.total;
    let max = total.unwrap_or(done.max(1)).max(1);
    let shown_done = if running { done } else { max.max(done) };
    html! {
        div #job-progress
            hx-get=[running.then(|| format!("/w/{ws}/jobs/{id}/progress"))]
            hx-trigger=[running.then_some("every 1s")]
            hx-swap=[running.then_some("outerHTML")] {
            p aria-live="polite" { "Status: " span #job-status data-status=(name(&job.status)) { (badge(&name(&job.status))) } }
            label for="job-bar" { "Progress: " (progress_text(job)) }
            progress #job-bar max=(max) value=(shown_done) { (progress_text(job)) }
            @if let (true, Some(csrf)) = (running && !job.cancel_requested, cancel) {
                (button_form(&format!("/w/{ws}/jobs/{id}/cancel"), csrf, "Cancel job", "reject"))
            }
            @if job.cancel_requested && running { p { "Stopping at the next checkpoint…" } }
            @if let Some(error) = &job.error { p.error role="alert" { (error) } }
            @if let Some(counters) = job.counters.as_object().filter(|c| !c.is_empty()) {
                dl.facts {
                    @for (name, value) in counters {
                        dt { (name) } dd { (value.to_string()) }
                    }
                }
            }
            h2 { "Log" }
            ol.log {
                @for line in &job.log {
                    li class=(format!("log-{}", line.level)) {
                        time { (when(line.at)) } " " (line.message)
                    }
                }
            }
        }
    }
}

async fn show(
    Extension(api): Extension<InternalApi>,
    user: WebUser,
    Path((ws, id)): Path<(Uuid, Uuid)>,
) -> Result<Response, Response> {
    let workspace = Workspace::load(&api, &user, ws).await?;
    let job: JobResponse = call(&api, &user, Method::GET, &format!("/jobs/{id}"), None).await?;
    let title = format!("Job: {}", job.kind.as_str());
    let body = html! {
        @if let Some(store) = job.store_id {
            p { a href=(format!("/w/{ws}/stores/{store}")) { "Back to the store" } }
        }
        (progress_markup(ws, &job, workspace.can_edit().then_some(user.csrf.as_str())))
    };
    Ok(workspace.page(&user, "jobs", &title, body))
}

async fn progress_fragment(
    State(state): State<AppState>,
    Extension(api): Extension<InternalApi>,
    user: WebUser,
    Path((ws, id)): Path<(Uuid, Uuid)>,
) -> Result<Response, Response> {
    let job: JobResponse = call(&api, &user, Method::GET, &format!("/jobs/{id}"), None).await?;
    // One query rather than the whole workspace: this answers a poll every second.
    let can_edit = matches!(
        user.caller.role_in(&state.db, ws).await,
        Ok(Some(role)) if role.allows(Capability::Edit)
    );
    Ok(render(progress_markup(
        ws,
        &job,
        can_edit.then_some(user.csrf.as_str()),
    )))
}

async fn cancel(
    Extension(api): Extension<InternalApi>,
    user: WebUser,
    Path((ws, id)): Path<(Uuid, Uuid)>,
) -> Result<Response, Response> {
    call::<IgnoredAny>(
        &api,
        &user,
        Method::POST,
        &format!("/jobs/{id}/cancel"),
        None,
    )
    .await?;
    Ok(see_other(&format!("/w/{ws}/jobs/{id}")))
}
