//! The web UI: server-rendered pages (maud) with htmx for partial updates.
//!
//! Pages live under `/` next to the JSON API. They authenticate with a session cookie holding
//! the same short-lived JWT and refresh token as the API ([`session`]), check a CSRF token and
//! the Origin on every state-changing request ([`csrf`]), and send their own strict
//! Content-Security-Policy (no inline scripts or styles: behaviour lives in `static/app.js`).
//! Actions run through the API's own handlers in-process ([`api`]), so the web UI cannot drift
//! from the API's validation, authorisation and audit logging.

pub mod api;
pub mod assets;
pub mod csrf;
mod layout;
mod pages;
pub mod session;
mod table;

use axum::Router;
use axum::http::{HeaderValue, header};
use tower_http::set_header::SetResponseHeaderLayer;

use crate::config::StorageKind;
use crate::state::AppState;

/// The pages' Content-Security-Policy: only this origin's scripts, styles and images.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// [`CSP`], plus the object store's origin for thumbnails when pictures are served from S3
/// through presigned links.
fn csp(state: &AppState) -> HeaderValue {
    let storage = &state.settings.storage;
    let extra = match storage.kind {
        StorageKind::S3 if !storage.endpoint.is_empty() => url::Url::parse(&storage.endpoint)
            .ok()
            .map(|u| u.origin().ascii_serialization()),
        StorageKind::S3 => Some("https://*.amazonaws.com".to_string()),
        StorageKind::Fs => None,
    };
    let policy = match extra {
        Some(origin) => CSP.replace(
            "img-src 'self' data:",
            &format!("img-src 'self' data: {origin}"),
        ),
        None => CSP.to_string(),
    };
    HeaderValue::from_str(&policy).unwrap_or_else(|_| HeaderValue::from_static(CSP))
}

/// The web UI's routes. `api` is the JSON API's router, called in-process for every action.
pub fn router(state: AppState, api: Router) -> Router<AppState> {
    pages::router()
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            csrf::guard,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            session::resolve,
        ))
        .layer(axum::Extension(api::InternalApi::new(api)))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::CONTENT_SECURITY_POLICY,
            csp(&state),
        ))
        // `no-referrer` (the API's default) would make browsers send `Origin: null` on form
        // posts, defeating the Origin check; same-origin requests keep their Origin.
        .layer(SetResponseHeaderLayer::overriding(
            header::REFERRER_POLICY,
            HeaderValue::from_static("same-origin"),
        ))
        .merge(assets::router())
}
