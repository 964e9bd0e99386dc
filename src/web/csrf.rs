//! Cross-site request forgery protection for every state-changing page request.
//!
//! Two independent checks: the request's `Origin` (or, without one, its `Referer`) must be this
//! site, and it must carry the CSRF token, in the form field `csrf` or the `X-CSRF-Token` header
//! (htmx). A signed-in session's token is an HMAC of the session id under a key derived from
//! the JWT secret, so it needs no storage and dies with the session; before signing in, the
//! token is the random value of a pre-session cookie (double submit).

use axum::body::{Body, to_bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use hmac::{Hmac, Mac};
use secrecy::ExposeSecret;
use sha2::Sha256;
use subtle::ConstantTimeEq;
use uuid::Uuid;

use super::session::{PRE_SESSION_COOKIE, cookie};
use crate::auth::Caller;
use crate::auth::caller::Principal;
use crate::state::AppState;

pub const FIELD: &str = "csrf";
pub const HEADER: &str = "x-csrf-token";

/// Largest form body the guard reads to find the token.
const MAX_FORM_BYTES: usize = 256 * 1024;

fn mac(state: &AppState) -> Hmac<Sha256> {
    // A key of its own, derived from the JWT secret: a CSRF token reveals nothing about it.
    let mut derive = Hmac::<Sha256>::new_from_slice(state.keys.jwt_secret.expose_secret())
        .expect("HMAC takes any key length");
    derive.update(b"catalogd web csrf v1");
    let key = derive.finalize().into_bytes();
    Hmac::<Sha256>::new_from_slice(&key).expect("HMAC takes any key length")
}

/// The CSRF token of a signed-in session.
pub fn session_token(state: &AppState, session_id: Uuid) -> String {
    let mut mac = mac(state);
    mac.update(session_id.as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

/// A fresh random value for the pre-session cookie.
pub fn new_pre_session_token() -> String {
    hex::encode(rand::random::<[u8; 32]>())
}

fn refuse(why: &'static str) -> Response {
    tracing::warn!(
        why,
        "refused a page request without a valid CSRF token or origin"
    );
    (
        StatusCode::FORBIDDEN,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        format!("Forbidden: {why}. Reload the page and try again."),
    )
        .into_response()
}

/// Whether `Origin` (or `Referer`) names this site. Requests with neither come from
/// non-browser clients and rely on the token alone.
fn same_origin(state: &AppState, headers: &HeaderMap) -> bool {
    let claimed = match headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) {
        Some(origin) => Some(origin.to_string()),
        None => headers
            .get(header::REFERER)
            .and_then(|v| v.to_str().ok())
            .and_then(|r| url::Url::parse(r).ok())
            .map(|u| u.origin().ascii_serialization()),
    };
    let Some(claimed) = claimed else {
        return true;
    };
    let public = url::Url::parse(&state.settings.public_base_url())
        .map(|u| u.origin().ascii_serialization())
        .ok();
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .map(|h| {
            let scheme = if state.settings.public_url.starts_with("https://") {
                "https"
            } else {
                "http"
            };
            format!("{scheme}://{h}")
        });
    Some(&claimed) == public.as_ref() || Some(&claimed) == host.as_ref()
}

/// Refuses unsafe requests without this site's origin and a valid token.
pub async fn guard(State(state): State<AppState>, request: Request, next: Next) -> Response {
    if matches!(
        *request.method(),
        Method::GET | Method::HEAD | Method::OPTIONS
    ) {
        return next.run(request).await;
    }
    if !same_origin(&state, request.headers()) {
        return refuse("the request came from another site");
    }
    let expected = match request.extensions().get::<Caller>() {
        Some(Caller {
            principal: Principal::User { session_id, .. },
            ..
        }) => Some(session_token(&state, *session_id)),
        _ => cookie(request.headers(), PRE_SESSION_COOKIE),
    };
    let Some(expected) = expected else {
        return refuse("the form has expired");
    };
    let header_token = request
        .headers()
        .get(HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let (parts, body) = request.into_parts();
    let Ok(bytes) = to_bytes(body, MAX_FORM_BYTES).await else {
        return (StatusCode::PAYLOAD_TOO_LARGE, "form too large").into_response();
    };
    let provided = header_token.or_else(|| {
        serde_urlencoded::from_bytes::<Vec<(String, String)>>(&bytes)
            .ok()
            .and_then(|pairs| pairs.into_iter().find(|(k, _)| k == FIELD).map(|(_, v)| v))
    });
    let valid = provided.is_some_and(|p| bool::from(p.as_bytes().ct_eq(expected.as_bytes())));
    if !valid {
        return refuse("the CSRF token is missing or wrong");
    }
    next.run(Request::from_parts(parts, Body::from(bytes)))
        .await
}
