//! Stores: the list, connecting one (with the URLs Magento's integration form needs and the
//! live status of the handshake), and a store's page with its schedule and actions.

use axum::extract::Path;
use axum::http::{Method, StatusCode};
use axum::response::Response;
use axum::routing::{get, post};
use axum::{Extension, Form, Router};
use maud::{Markup, html};
use serde::Deserialize;
use serde::de::IgnoredAny;
use serde_json::json;
use uuid::Uuid;

use super::{Workspace, call, get_list, load_store};
use crate::http::routes::audits::AuditStarted;
use crate::http::routes::enrich::EnrichStarted;
use crate::http::routes::exports::ExportStarted;
use crate::http::routes::jobs::JobStarted;
use crate::http::routes::review::PushStarted;
use crate::http::routes::schedules::ScheduleResponse;
use crate::schedules::Step;
use crate::state::AppState;
use crate::stores::{StoreResponse, StoreStatus};
use crate::web::api::InternalApi;
use crate::web::layout::{self, badge, button_form, csrf_field, name, render, when};
use crate::web::session::WebUser;
use crate::web::table::Table;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/w/{ws}/stores", get(list).post(connect))
        .route("/w/{ws}/stores/{id}", get(show))
        .route("/w/{ws}/stores/{id}/status", get(status_fragment))
        .route("/w/{ws}/stores/{id}/schedule", post(set_schedule))
        .route("/w/{ws}/schedule-preview", get(schedule_preview))
        .route("/w/{ws}/stores/{id}/run/{action}", post(run))
        .route(
            "/w/{ws}/stores/{id}/disconnect",
            get(disconnect_page).post(disconnect),
        )
}

async fn list(
    Extension(api): Extension<InternalApi>,
    user: WebUser,
    Path(ws): Path<Uuid>,
) -> Result<Response, Response> {
    let workspace = Workspace::load(&api, &user, ws).await?;
    let items =
        get_list::<StoreResponse>(&api, &user, &format!("/workspaces/{ws}/stores?limit=100"))
            .await?
            .items;
    let body = html! {
        @if items.is_empty() {
            p { "No store is connected yet." }
        } @else {
            (Table::new("Stores", &["Store", "Status", "Base URL", "Last sync"]).rows(&items, |store| html! {
                td { a href=(format!("/w/{ws}/stores/{}", store.id)) { (store.name) } }
                td { (badge(&name(&store.status))) }
                td { (store.base_url) }
                td { (when(store.last_synced_at)) }
            }))
        }
        @if workspace.can_administer() {
            (connect_form(ws, &user.csrf))
        }
    };
    Ok(workspace.page(&user, "stores", "Stores", body))
}

fn connect_form(ws: Uuid, csrf: &str) -> Markup {
    html! {
        section aria-labelledby="connect-heading" {
            h2 #connect-heading { "Connect a store" }
            form.card method="post" action=(format!("/w/{ws}/stores")) {
                (csrf_field(csrf))
                label for="store-name" { "Name" }
                input #store-name type="text" name="name" required;
                label for="base-url" { "Store base URL" }
                input #base-url type="url" name="base_url" required placeholder="https://shop.example.com/";
                fieldset {
                    legend { "Integration credentials (optional)" }
                    p.hint { "Leave these empty to connect through Magento's integration handshake: you get a Callback URL and an Identity Link URL to paste into Magento. Or paste the four values Magento shows after activating an integration." }
                    label for="consumer-key" { "Consumer key" }
                    input #consumer-key type="text" name="consumer_key" autocomplete="off";
                    label for="consumer-secret" { "Consumer secret" }
                    input #consumer-secret type="password" name="consumer_secret" autocomplete="off";
                    label for="access-token" { "Access token" }
                    input #access-token type="text" name="access_token" autocomplete="off";
                    label for="access-token-secret" { "Access token secret" }
                    input #access-token-secret type="password" name="access_token_secret" autocomplete="off";
                }
                button type="submit" { "Connect store" }
            }
        }
    }
}

#[derive(Deserialize)]
struct ConnectForm {
    name: String,
    base_url: String,
    #[serde(default)]
    consumer_key: String,
    #[serde(default)]
    consumer_secret: String,
    #[serde(default)]
    access_token: String,
    #[serde(default)]
    access_token_secret: String,
}

async fn connect(
    Extension(api): Extension<InternalApi>,
    user: WebUser,
    Path(ws): Path<Uuid>,
    Form(form): Form<ConnectForm>,
) -> Result<Response, Response> {
    let mut body = json!({"name": form.name, "base_url": form.base_url});
    let credentials = [
        &form.consumer_key,
        &form.consumer_secret,
        &form.access_token,
        &form.access_token_secret,
    ];
    if credentials.iter().any(|c| !c.trim().is_empty()) {
        body["credentials"] = json!({
            "consumer_key": form.consumer_key, "consumer_secret": form.consumer_secret,
            "access_token": form.access_token, "access_token_secret": form.access_token_secret,
        });
    }
    let store: StoreResponse = call(
        &api,
        &user,
        Method::POST,
        &format!("/workspaces/{ws}/stores"),
        Some(body),
    )
    .await?;
    Ok(layout::see_other(&format!("/w/{ws}/stores/{}", store.id)))
}

/// The connection status; while Magento's handshake is pending it polls itself.
fn status_markup(ws: Uuid, store: &StoreResponse) -> Markup {
    let status = name(&store.status);
    let pending = store.status == StoreStatus::Pending;
    let id = store.id;
    html! {
        div #store-status aria-live="polite"
            hx-get=[pending.then(|| format!("/w/{ws}/stores/{id}/status"))]
            hx-trigger=[pending.then_some("every 2s")]
            hx-swap=[pending.then_some("outerHTML")] {
            p { "Connection: " (badge(&status)) }
            @if let Some(detail) = &store.status_detail { p.hint { (detail) } }
            @let missing = &store.missing_permissions;
            @if !missing.is_empty() {
                div.notice role="alert" {
                    p { "Magento refuses these API resources to catalogd's integration. In Magento's admin, open System → Integrations, edit the integration, and grant them on its API tab:" }
                    ul {
                        @for entry in missing {
                            li { code { (entry.resource) } " — needed by " (entry.step) ", since " (when(entry.since)) }
                        }
                    }
                }
            }
            @if store.push_via_bulk {
                @match store.bulk_keeps_scope {
                    Some(false) => div.notice role="alert" #bulk-scope {
                        p { "Bulk pushes go product by product: Magento's bulk API does not keep store views on this store." }
                        @if let Some(detail) = &store.bulk_scope_detail { p.hint { (detail) } }
                    },
                    Some(true) => p.hint #bulk-scope { "Bulk pushes keep store views. " (store.bulk_scope_detail.as_deref().unwrap_or("")) },
                    None => p.hint #bulk-scope { "Bulk pushes: the first bulk of each store view is a canary of one product, checked before the rest is sent." },
                }
            }
            @if pending {
                p { "Waiting for Magento: in Magento's admin, open System → Integrations → Add New Integration, paste the two URLs below, save, then click Activate." }
            }
        }
    }
}

async fn status_fragment(
    Extension(api): Extension<InternalApi>,
    user: WebUser,
    Path((ws, id)): Path<(Uuid, Uuid)>,
) -> Result<Response, Response> {
    let store = load_store(&api, &user, ws, id).await?;
    Ok(render(status_markup(ws, &store)))
}

async fn show(
    Extension(api): Extension<InternalApi>,
    user: WebUser,
    Path((ws, id)): Path<(Uuid, Uuid)>,
) -> Result<Response, Response> {
    let workspace = Workspace::load(&api, &user, ws).await?;
    let store = load_store(&api, &user, ws, id).await?;
    let schedule = api
        .call::<ScheduleResponse>(
            Some(&user.caller),
            &user.origin,
            Method::GET,
            &format!("/stores/{id}/schedule"),
            None,
        )
        .await
        .ok()
        .and_then(|a| a.body.ok());
    let run = |action: &str, label: &str| {
        button_form(
            &format!("/w/{ws}/stores/{id}/run/{action}"),
            &user.csrf,
            label,
            "action",
        )
    };
    let body = html! {
        (status_markup(ws, &store))
        dl.facts {
            dt { "Base URL" } dd { (store.base_url) }
            dt { "Last sync" } dd #last-sync { (when(store.last_synced_at)) }
            dt { "Last full sync" } dd #last-full-sync {
                (when(store.last_full_sync_at))
                " (a scheduled sync reads every product after " (store.full_sync_every_days) " days)"
            }
            dt { "Store views" } dd {
                @for view in &store.store_views {
                    span.tag { (view.code) }
                }
            }
        }
        @if let (Some(callback), Some(identity), true) = (&store.callback_url, &store.identity_url,
            matches!(store.status, StoreStatus::Pending | StoreStatus::NeedsReauth)) {
            section aria-labelledby="magento-heading" {
                h2 #magento-heading { "Magento integration" }
                label for="callback-url" { "Callback URL" }
                input #callback-url type="text" readonly value=(callback);
                label for="identity-url" { "Identity Link URL" }
                input #identity-url type="text" readonly value=(identity);
            }
        }
        nav.actions aria-label="Store pages" {
            a href=(format!("/w/{ws}/stores/{id}/products")) { "Products" }
            a href=(format!("/w/{ws}/stores/{id}/review")) { "Review queue" }
            a href=(format!("/w/{ws}/stores/{id}/audits")) { "Audits" }
            a href=(format!("/w/{ws}/jobs")) { "Jobs" }
            a href=(format!("/w/{ws}/exports")) { "Exports" }
        }
        section aria-labelledby="actions-heading" {
            h2 #actions-heading { "Actions" }
            div.buttons {
                @if workspace.can_edit() {
                    (run("sync", "Sync now"))
                    (run("media", "Mirror pictures"))
                    (run("audit", "Run audit"))
                    (run("enrich", "Enrich with AI"))
                    (run("export", "Export Magento CSV"))
                }
                @if workspace.can_review() {
                    (run("push", "Push approved"))
                }
                @if !workspace.can_edit() && !workspace.can_review() {
                    p { "Your role can look but not start work." }
                }
            }
        }
        section aria-labelledby="schedule-heading" {
            h2 #schedule-heading { "Schedule" }
            @match &schedule {
                Some(s) => {
                    p #schedule-summary {
                        "Runs " code { (s.cron) } " (" (s.timezone) "): "
                        (s.pipeline.iter().map(|step| step.as_str()).collect::<Vec<_>>().join(" → "))
                        @if !s.enabled { ", paused" } "."
                    }
                    p { "Next runs:" }
                    ul.next-runs { @for t in &s.next_runs { li { (when(*t)) } } }
                }
                None => p { "No schedule: the store syncs only when asked." }
            }
            @if workspace.can_administer() {
                form.card method="post" action=(format!("/w/{ws}/stores/{id}/schedule")) {
                    (csrf_field(&user.csrf))
                    label for="cron" { "Cron expression (minute hour day month weekday)" }
                    input #cron type="text" name="cron" required placeholder="0 3 * * *" aria-describedby="cron-preview"
                        hx-get=(format!("/w/{ws}/schedule-preview")) hx-include="#timezone" hx-target="#cron-preview"
                        hx-trigger="input changed delay:400ms"
                        value=(schedule.as_ref().map(|s| s.cron.as_str()).unwrap_or_default());
                    label for="timezone" { "Time zone" }
                    input #timezone type="text" name="timezone" placeholder="UTC"
                        hx-get=(format!("/w/{ws}/schedule-preview")) hx-include="#cron" hx-target="#cron-preview"
                        hx-trigger="input changed delay:400ms"
                        value=(schedule.as_ref().map_or("UTC", |s| s.timezone.as_str()));
                    div #cron-preview aria-live="polite" {}
                    (pipeline_fields(schedule.as_ref()))
                    label for="full-sync-every-days" { "Read every product at least every (days)" }
                    input #full-sync-every-days type="number" name="full_sync_every_days" min="1" max="365" required
                        value=(store.full_sync_every_days);
                    button type="submit" { "Save schedule" }
                }
            }
        }
    };
    let body = html! {
        (body)
        @if workspace.can_administer() && store.status != StoreStatus::Disconnected {
            section aria-labelledby="disconnect-heading" {
                h2 #disconnect-heading { "Disconnect" }
                p { a href=(format!("/w/{ws}/stores/{id}/disconnect")) { "Disconnect this store…" } }
            }
        }
    };
    Ok(workspace.page(&user, "stores", &store.name, body))
}

/// The schedule's steps as checkboxes, the pipeline's own steps first in their order (a form
/// posts checked boxes in document order, which is the order they run in), then the others;
/// and whether the schedule runs at all.
fn pipeline_fields(schedule: Option<&ScheduleResponse>) -> Markup {
    let stored: Vec<Step> = schedule.map_or_else(|| vec![Step::Sync], |s| s.pipeline.clone());
    let enabled = schedule.is_none_or(|s| s.enabled);
    let others = Step::ALL.into_iter().filter(|s| !stored.contains(s));
    let steps = stored
        .iter()
        .map(|s| (*s, true))
        .chain(others.map(|s| (s, false)));
    html! {
        fieldset #pipeline {
            legend { "Pipeline: the checked steps, in this order, each after the one before succeeded" }
            @for (step, checked) in steps {
                label.check for=(format!("step-{}", step.as_str())) {
                    input id=(format!("step-{}", step.as_str())) type="checkbox" name="pipeline"
                        value=(step.as_str()) checked[checked];
                    (step.label())
                }
            }
        }
        label.check for="schedule-enabled" {
            input #schedule-enabled type="checkbox" name="enabled" value="on" checked[enabled];
            "Enabled (unchecked: paused, nothing runs)"
        }
    }
}

async fn set_schedule(
    Extension(api): Extension<InternalApi>,
    user: WebUser,
    Path((ws, id)): Path<(Uuid, Uuid)>,
    Form(fields): Form<Vec<(String, String)>>,
) -> Result<Response, Response> {
    load_store(&api, &user, ws, id).await?;
    let field = |name: &str| {
        fields
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.trim())
            .unwrap_or("")
    };
    let pipeline: Vec<&str> = fields
        .iter()
        .filter(|(k, _)| k == "pipeline")
        .map(|(_, v)| v.as_str())
        .collect();
    // The form always shows the pipeline and the flag: what it sends is the whole schedule.
    let mut body = json!({
        "cron": field("cron"),
        "pipeline": pipeline,
        "enabled": fields.iter().any(|(k, _)| k == "enabled"),
    });
    if !field("timezone").is_empty() {
        body["timezone"] = json!(field("timezone"));
    }
    if !field("full_sync_every_days").is_empty() {
        // A number the API then checks for its range; anything else is the API's own 422.
        let days = field("full_sync_every_days")
            .parse::<u64>()
            .map_or_else(|_| json!(field("full_sync_every_days")), |d| json!(d));
        call::<IgnoredAny>(
            &api,
            &user,
            Method::PATCH,
            &format!("/stores/{id}"),
            Some(json!({ "full_sync_every_days": days })),
        )
        .await?;
    }
    call::<IgnoredAny>(
        &api,
        &user,
        Method::PUT,
        &format!("/stores/{id}/schedule"),
        Some(body),
    )
    .await?;
    Ok(layout::see_other(&format!("/w/{ws}/stores/{id}")))
}

/// Starts a job on the store and shows its progress.
async fn run(
    Extension(api): Extension<InternalApi>,
    user: WebUser,
    Path((ws, id, action)): Path<(Uuid, Uuid, String)>,
) -> Result<Response, Response> {
    load_store(&api, &user, ws, id).await?;
    let (path, body) = match action.as_str() {
        "sync" => (format!("/stores/{id}/sync"), Some(json!({"mode": "full"}))),
        "media" => (format!("/stores/{id}/media"), None),
        "audit" => (format!("/stores/{id}/audits"), Some(json!({}))),
        "enrich" => (format!("/stores/{id}/enrich"), Some(json!({}))),
        "export" => (
            format!("/stores/{id}/exports"),
            Some(json!({"format": "magento_csv"})),
        ),
        "push" => (
            format!("/stores/{id}/push"),
            Some(json!({"all_approved": true})),
        ),
        _ => return Err(layout::error_page(StatusCode::NOT_FOUND, "no such action")),
    };
    // Each start answers with its own type, which names the job.
    macro_rules! job_of {
        ($answer:ty) => {
            call::<$answer>(&api, &user, Method::POST, &path, body)
                .await?
                .job_id
        };
    }
    let job = match action.as_str() {
        "audit" => job_of!(AuditStarted),
        "enrich" => job_of!(EnrichStarted),
        "export" => job_of!(ExportStarted),
        "push" => job_of!(PushStarted),
        _ => job_of!(JobStarted),
    };
    Ok(layout::see_other(&format!("/w/{ws}/jobs/{job}")))
}

#[derive(Deserialize)]
struct PreviewQuery {
    #[serde(default)]
    cron: String,
    #[serde(default)]
    timezone: String,
}

/// The next five runs of a cron expression in its time zone, as the person types it.
async fn schedule_preview(
    _user: WebUser,
    axum::extract::Query(query): axum::extract::Query<PreviewQuery>,
) -> Response {
    let timezone = match query.timezone.trim() {
        "" => "UTC",
        tz => tz,
    };
    let markup = match crate::schedules::CronSpec::parse(query.cron.trim(), timezone) {
        Ok(spec) => {
            let tz: chrono_tz::Tz = timezone.parse().unwrap_or(chrono_tz::UTC);
            let runs = spec.upcoming(chrono::Utc::now(), 5);
            html! {
                p { "Next runs:" }
                ul.next-runs {
                    @for run in runs {
                        li { (run.with_timezone(&tz).format("%A %-d %B %Y, %H:%M").to_string()) " (" (timezone) ")" }
                    }
                }
            }
        }
        Err(e) => html! { p.error { (e.to_string()) } },
    };
    render(markup)
}

/// Asks before disconnecting: the store's tokens are deleted at once.
async fn disconnect_page(
    Extension(api): Extension<InternalApi>,
    user: WebUser,
    Path((ws, id)): Path<(Uuid, Uuid)>,
) -> Result<Response, Response> {
    let workspace = Workspace::load(&api, &user, ws).await?;
    let store = load_store(&api, &user, ws, id).await?;
    let body = html! {
        p { "Disconnecting deletes the store's access tokens at once; catalogd stops syncing and pushing. Its connection details are purged 30 days later. Products, versions and exports stay." }
        (button_form(&format!("/w/{ws}/stores/{id}/disconnect"), &user.csrf, "Disconnect the store", "reject"))
        p { a href=(format!("/w/{ws}/stores/{id}")) { "Keep it connected" } }
    };
    let title = format!("Disconnect {}?", store.name);
    Ok(workspace.page(&user, "stores", &title, body))
}

async fn disconnect(
    Extension(api): Extension<InternalApi>,
    user: WebUser,
    Path((ws, id)): Path<(Uuid, Uuid)>,
) -> Result<Response, Response> {
    load_store(&api, &user, ws, id).await?;
    call::<IgnoredAny>(&api, &user, Method::DELETE, &format!("/stores/{id}"), None).await?;
    Ok(layout::see_other(&format!("/w/{ws}/stores/{id}")))
}
