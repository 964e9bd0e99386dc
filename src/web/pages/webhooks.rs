//! Webhooks: register endpoints (the signing secret is shown once), see each endpoint's
//! deliveries with every attempt, redeliver, disable and enable. Admins only.

use axum::extract::Path;
use axum::http::{Method, StatusCode};
use axum::response::Response;
use axum::routing::{get, post};
use axum::{Extension, Form, Router};
use maud::{Markup, html};
use serde::de::IgnoredAny;
use serde_json::json;
use uuid::Uuid;

use super::{Workspace, call, get_list};
use crate::http::routes::webhooks::CreatedWebhook;
use crate::state::AppState;
use crate::web::api::InternalApi;
use crate::web::layout::{self, badge, button_form, csrf_field, when};
use crate::web::session::WebUser;
use crate::web::table::Table;
use crate::webhooks::{Delivery, EVENT_TYPES, Webhook};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/w/{ws}/webhooks", get(list).post(create))
        .route("/w/{ws}/webhooks/{id}", get(detail))
        .route("/w/{ws}/webhooks/{id}/enabled", post(set_enabled))
        .route("/w/{ws}/webhooks/{id}/delete", post(delete))
        .route(
            "/w/{ws}/webhooks/{id}/deliveries/{delivery}/redeliver",
            post(redeliver),
        )
}

const ATTEMPTS: Table = Table {
    id: None,
    caption: "Attempts",
    columns: &[
        "When",
        "Outcome",
        "Status code",
        "Duration",
        "Answer (first KiB)",
    ],
};

async fn admin_workspace(
    api: &InternalApi,
    user: &WebUser,
    ws: Uuid,
) -> Result<Workspace, Response> {
    let workspace = Workspace::load(api, user, ws).await?;
    if !workspace.can_administer() {
        return Err(layout::error_page(
            StatusCode::FORBIDDEN,
            "your role in this workspace does not allow this",
        ));
    }
    Ok(workspace)
}

async fn list_page(
    api: &InternalApi,
    user: &WebUser,
    workspace: &Workspace,
    created: Option<&CreatedWebhook>,
) -> Result<Response, Response> {
    let ws = workspace.id;
    let endpoints = get_list::<Webhook>(api, user, &format!("/workspaces/{ws}/webhooks?limit=100"))
        .await?
        .items;
    let body = html! {
        @if let Some(created) = created {
            div.new-key role="status" {
                p { strong { "Copy this signing secret now: it is shown only once." } }
                label for="new-secret" { "Secret of " (created.webhook.url) }
                input #new-secret type="text" readonly value=(created.secret);
            }
        }
        div.scroll {
            table #webhooks {
                caption.sr-only { "Webhook endpoints" }
                thead { tr { th scope="col" { "URL" } th scope="col" { "Events" } th scope="col" { "State" } th scope="col" { "Created" } } }
                tbody {
                    @for e in &endpoints {
                        tr {
                            td { a href=(format!("/w/{ws}/webhooks/{}", e.id)) { (e.url) }
                                @if !e.description.is_empty() { br; small { (e.description) } } }
                            td { (events_of(e)) }
                            td { (state_of(e)) }
                            td { (when(e.created_at)) }
                        }
                    }
                    @if endpoints.is_empty() { tr { td colspan="4" { "No endpoints yet." } } }
                }
            }
        }
        form.card method="post" action=(format!("/w/{ws}/webhooks")) {
            (csrf_field(&user.csrf))
            label for="webhook-url" { "Endpoint URL" }
            input #webhook-url type="url" name="url" required placeholder="https://example.com/hooks/catalogd";
            fieldset {
                legend { "Events" }
                @for (i, event) in EVENT_TYPES.iter().enumerate() {
                    label.check for=(format!("event-{i}")) {
                        input id=(format!("event-{i}")) type="checkbox" name="events" value=(event);
                        " " code { (event) }
                    }
                }
            }
            label for="webhook-description" { "Description (optional)" }
            input #webhook-description type="text" name="description" maxlength="500";
            button type="submit" { "Add endpoint" }
        }
        p { "Deliveries are signed the Standard Webhooks way: verify " code { "webhook-signature" }
            " with the secret, over " code { "webhook-id" } ", " code { "webhook-timestamp" } " and the body." }
    };
    Ok(workspace.page(user, "settings", "Webhooks", body))
}

fn events_of(endpoint: &Webhook) -> Markup {
    html! {
        @for (i, event) in endpoint.events.iter().enumerate() {
            @if i > 0 { ", " }
            code { (event) }
        }
    }
}

fn state_of(endpoint: &Webhook) -> Markup {
    html! {
        @if endpoint.enabled {
            (badge("active"))
            @if let Some(since) = endpoint.failing_since { " failing since " (when(since)) }
        } @else {
            (badge("disabled"))
            @if let Some(reason) = &endpoint.disabled_reason { " " (reason) }
        }
    }
}

async fn list(
    Extension(api): Extension<InternalApi>,
    user: WebUser,
    Path(ws): Path<Uuid>,
) -> Result<Response, Response> {
    let workspace = admin_workspace(&api, &user, ws).await?;
    list_page(&api, &user, &workspace, None).await
}

/// Registers the endpoint and shows its secret on the answer itself.
async fn create(
    Extension(api): Extension<InternalApi>,
    user: WebUser,
    Path(ws): Path<Uuid>,
    Form(fields): Form<Vec<(String, String)>>,
) -> Result<Response, Response> {
    let workspace = admin_workspace(&api, &user, ws).await?;
    let field = |name: &str| {
        fields
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.trim().to_string())
            .unwrap_or_default()
    };
    let events: Vec<&str> = fields
        .iter()
        .filter(|(k, _)| k == "events")
        .map(|(_, v)| v.as_str())
        .collect();
    let description = field("description");
    let mut body = json!({"url": field("url"), "events": events});
    if !description.is_empty() {
        body["description"] = json!(description);
    }
    let created: CreatedWebhook = call(
        &api,
        &user,
        Method::POST,
        &format!("/workspaces/{ws}/webhooks"),
        Some(body),
    )
    .await?;
    list_page(&api, &user, &workspace, Some(&created)).await
}

async fn detail(
    Extension(api): Extension<InternalApi>,
    user: WebUser,
    Path((ws, id)): Path<(Uuid, Uuid)>,
) -> Result<Response, Response> {
    let workspace = admin_workspace(&api, &user, ws).await?;
    let endpoint: Webhook =
        call(&api, &user, Method::GET, &format!("/webhooks/{id}"), None).await?;
    let deliveries =
        get_list::<Delivery>(&api, &user, &format!("/webhooks/{id}/deliveries?limit=50"))
            .await?
            .items;
    let base = format!("/w/{ws}/webhooks/{id}");
    let enabled = endpoint.enabled;
    let body = html! {
        p { code { (endpoint.url) } " — " (events_of(&endpoint)) " — " (state_of(&endpoint)) }
        div.actions {
            form.inline method="post" action=(format!("{base}/enabled")) {
                (csrf_field(&user.csrf))
                input type="hidden" name="enabled" value=(if enabled { "false" } else { "true" });
                button type="submit" { @if enabled { "Disable" } @else { "Enable" } }
            }
            (button_form(&format!("{base}/delete"), &user.csrf, "Delete endpoint", "reject"))
        }
        h2 { "Deliveries" }
        @if deliveries.is_empty() { p { "Nothing delivered yet." } }
        @for d in &deliveries {
            section.card.delivery {
                h3 { code { (d.event_type) } " " (badge(&d.status)) " " (when(d.created_at)) }
                @if let Some(reason) = &d.given_up_reason { p { (reason) } }
                @if let (true, Some(next)) = (d.status == "pending", d.next_attempt_at) {
                    p { "Next attempt " (when(next)) }
                }
                (ATTEMPTS.rows(&d.attempts, |a| html! {
                    td { (when(a.attempted_at)) }
                    td { (badge(&a.status)) }
                    td { @if let Some(code) = a.response_status { (code) } @else { "—" } }
                    td { (a.duration_ms) " ms" }
                    td { @if let Some(error) = &a.error { (error) " " }
                         code { (a.response_body.as_deref().unwrap_or("")) } }
                }))
                @if enabled {
                    (button_form(&format!("{base}/deliveries/{}/redeliver", d.id), &user.csrf, "Redeliver", ""))
                }
            }
        }
        p { a href=(format!("/w/{ws}/webhooks")) { "All endpoints" } }
    };
    Ok(workspace.page(&user, "settings", "Webhook endpoint", body))
}

#[derive(serde::Deserialize)]
struct EnabledForm {
    enabled: bool,
}

async fn set_enabled(
    Extension(api): Extension<InternalApi>,
    user: WebUser,
    Path((ws, id)): Path<(Uuid, Uuid)>,
    Form(form): Form<EnabledForm>,
) -> Result<Response, Response> {
    call::<IgnoredAny>(
        &api,
        &user,
        Method::PATCH,
        &format!("/webhooks/{id}"),
        Some(json!({"enabled": form.enabled})),
    )
    .await?;
    Ok(layout::see_other(&format!("/w/{ws}/webhooks/{id}")))
}

async fn delete(
    Extension(api): Extension<InternalApi>,
    user: WebUser,
    Path((ws, id)): Path<(Uuid, Uuid)>,
) -> Result<Response, Response> {
    call::<IgnoredAny>(
        &api,
        &user,
        Method::DELETE,
        &format!("/webhooks/{id}"),
        None,
    )
    .await?;
    Ok(layout::see_other(&format!("/w/{ws}/webhooks")))
}

async fn redeliver(
    Extension(api): Extension<InternalApi>,
    user: WebUser,
    Path((ws, id, delivery)): Path<(Uuid, Uuid, Uuid)>,
) -> Result<Response, Response> {
    call::<IgnoredAny>(
        &api,
        &user,
        Method::POST,
        &format!("/webhooks/{id}/deliveries/{delivery}/redeliver"),
        Some(json!({})),
    )
    .await?;
    Ok(layout::see_other(&format!("/w/{ws}/webhooks/{id}")))
}
