//! The page shell and small pieces every page uses.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use chrono::{DateTime, Utc};
use maud::{DOCTYPE, Markup, html};
use serde::Serialize;
use uuid::Uuid;

use super::assets;
use super::csrf;

/// The workspace a page belongs to, for the header's navigation and switcher.
pub struct Nav<'a> {
    pub workspace_id: Uuid,
    pub workspace_name: &'a str,
    pub role: &'a str,
    /// Every workspace of the person: (id, name).
    pub workspaces: &'a [(Uuid, String)],
    pub csrf: &'a str,
    /// Which section is current: `home`, `stores`, `jobs`, `exports`, `settings`,
    /// `notifications`.
    pub current: &'a str,
    /// The person's unread notices in the workspace.
    pub unread: i64,
}

pub fn page(title: &str, nav: Option<&Nav<'_>>, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                // htmx would inject an inline <style> the CSP refuses, and could evaluate code.
                meta name="htmx-config" content=r#"{"includeIndicatorStyles":false,"allowEval":false,"allowScriptTags":false}"#;
                title { (title) " · catalogd" }
                link rel="stylesheet" href=(assets::path("app.css"));
                script src=(assets::path("htmx.min.js")) defer {}
                script src=(assets::path("app.js")) defer {}
                @if let Some(nav) = nav {
                    meta name="csrf-token" content=(nav.csrf);
                }
            }
            body {
                a.skip href="#main" { "Skip to content" }
                header.top {
                    a.brand href="/" { "catalogd" }
                    @if let Some(nav) = nav {
                        nav aria-label="Sections" {
                            ul {
                                li { a href=(format!("/w/{}", nav.workspace_id)) aria-current=[(nav.current == "home").then_some("page")] { "Home" } }
                                (nav_link(nav, "stores", "Stores"))
                                (nav_link(nav, "jobs", "Jobs"))
                                (nav_link(nav, "exports", "Exports"))
                                @if matches!(nav.role, "owner" | "admin") {
                                    (nav_link(nav, "settings", "Settings"))
                                }
                            }
                        }
                        a #notices-link href=(format!("/w/{}/notifications", nav.workspace_id))
                            aria-current=[(nav.current == "notifications").then_some("page")] {
                            "Notifications"
                            @if nav.unread > 0 {
                                " " span.count { (nav.unread) } span.sr-only { " unread" }
                            }
                        }
                        details.switcher {
                            summary { span.sr-only { "Workspace: " } (nav.workspace_name) " (" (nav.role) ")" }
                            ul aria-label="Workspaces" {
                                @for (id, name) in nav.workspaces {
                                    li { a href=(format!("/w/{id}/stores")) aria-current=[(id == &nav.workspace_id).then_some("true")] { (name) } }
                                }
                                li { a href="/workspaces/new" { "New workspace…" } }
                            }
                        }
                        form.logout method="post" action="/logout" {
                            (csrf_field(nav.csrf))
                            button type="submit" { "Log out" }
                        }
                    }
                }
                main #main tabindex="-1" {
                    h1 { (title) }
                    (body)
                }
            }
        }
    }
}

fn nav_link(nav: &Nav<'_>, section: &str, label: &str) -> Markup {
    let href = format!("/w/{}/{section}", nav.workspace_id);
    html! {
        li { a href=(href) aria-current=[(nav.current == section).then_some("page")] { (label) } }
    }
}

pub fn csrf_field(token: &str) -> Markup {
    html! { input type="hidden" name=(csrf::FIELD) value=(token); }
}

/// A form with one button that POSTs to `action`.
pub fn button_form(action: &str, csrf: &str, label: &str, class: &str) -> Markup {
    html! {
        form.inline method="post" action=(action) {
            (csrf_field(csrf))
            button type="submit" class=(class) { (label) }
        }
    }
}

pub fn render(markup: Markup) -> Response {
    Html(markup.into_string()).into_response()
}

/// An error page (or fragment for htmx requests) with the given status.
pub fn error_page(status: StatusCode, message: &str) -> Response {
    let body = page(
        status.canonical_reason().unwrap_or("Error"),
        None,
        html! {
            p.error role="alert" { (message) }
            p { a href="/" { "Back to the start page" } }
        },
    );
    (status, Html(body.into_string())).into_response()
}

/// The status as a badge: `succeeded`, `failed`, `active`… each has its own colour.
pub fn badge(status: &str) -> Markup {
    html! { span class=(format!("badge badge-{status}")) { (status) } }
}

/// A timestamp shown to the minute, in UTC; `—` when there is none.
pub fn when(at: impl Into<Option<DateTime<Utc>>>) -> String {
    at.into()
        .map(|t| t.format("%Y-%m-%d %H:%M UTC").to_string())
        .unwrap_or_else(|| "—".to_string())
}

/// The name the API gives a value of one of its enums (`succeeded`, `needs_reauth`…), as its
/// JSON answer spells it.
pub fn name<T: Serialize>(value: &T) -> String {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::String(name)) => name,
        _ => String::new(),
    }
}

pub fn text(value: &serde_json::Value) -> &str {
    value.as_str().unwrap_or("")
}

/// A 303 to `location` after a form post.
pub fn see_other(location: &str) -> Response {
    let mut response = axum::response::Redirect::to(location).into_response();
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}
