//! The session cookie: the API's access token (JWT) and refresh token, in HttpOnly cookies.
//!
//! [`resolve`] runs before every page: it verifies the access token exactly as the API does
//! (signature, expiry, live session) and, when it has expired, rotates the refresh token and
//! sets fresh cookies on the answer. Pages then take a [`WebUser`].

use std::collections::HashMap;
use std::sync::LazyLock;
use std::time::{Duration, Instant};

use axum::extract::{ConnectInfo, FromRequestParts, Request, State};
use axum::http::header::{AUTHORIZATION, COOKIE, SET_COOKIE};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use uuid::Uuid;

use super::api::Origin;
use crate::accounts::sessions;
use crate::auth::Caller;
use crate::auth::caller::Principal;
use crate::http::routes::auth::TokenResponse;
use crate::state::AppState;

pub const ACCESS_COOKIE: &str = "catalogd_session";
pub const REFRESH_COOKIE: &str = "catalogd_refresh";
/// A random value for forms shown before signing in (double-submit CSRF token).
pub const PRE_SESSION_COOKIE: &str = "catalogd_presession";

/// The value of cookie `name`, if the request carries it.
pub fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_string())
        .filter(|v| !v.is_empty())
}

/// A `Set-Cookie` value: HttpOnly, SameSite=Lax, Secure when the daemon is served over TLS.
pub fn set_cookie(state: &AppState, name: &str, value: &str, max_age_secs: u64) -> HeaderValue {
    let secure = if state.settings.public_url.starts_with("https://") {
        "; Secure"
    } else {
        ""
    };
    HeaderValue::from_str(&format!(
        "{name}={value}; Path=/; Max-Age={max_age_secs}; HttpOnly; SameSite=Lax{secure}"
    ))
    .expect("cookie values are ASCII tokens")
}

pub fn clear_cookie(state: &AppState, name: &str) -> HeaderValue {
    set_cookie(state, name, "", 0)
}

/// The cookies that start a session from the API's token answer.
pub fn session_cookies(state: &AppState, tokens: &TokenResponse) -> Vec<HeaderValue> {
    let ttl = state.settings.auth.refresh_token_ttl_secs;
    vec![
        set_cookie(state, ACCESS_COOKIE, &tokens.access_token, ttl),
        set_cookie(state, REFRESH_COOKIE, &tokens.refresh_token, ttl),
    ]
}

/// Resolves the session cookie into a [`Caller`] in the request's extensions.
pub async fn resolve(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let (mut parts, body) = request.into_parts();
    let mut set_cookies = Vec::new();
    let access = cookie(&parts.headers, ACCESS_COOKIE);
    let mut signed_in = false;
    if let Some(token) = access
        && let Ok(bearer) = HeaderValue::from_str(&format!("Bearer {token}"))
    {
        // The API's own authentication: signature, expiry, and that the session is live.
        let saved = parts.headers.insert(AUTHORIZATION, bearer);
        let resolved = Caller::from_request_parts(&mut parts, &state).await;
        parts.headers.remove(AUTHORIZATION);
        if let Some(saved) = saved {
            parts.headers.insert(AUTHORIZATION, saved);
        }
        signed_in = matches!(
            resolved,
            Ok(Caller {
                principal: Principal::User { .. },
                ..
            })
        );
        if !signed_in {
            parts.extensions.remove::<Caller>();
        }
    }
    if !signed_in && let Some(refresh) = cookie(&parts.headers, REFRESH_COOKIE) {
        match refresh_session(&state, &refresh).await {
            Some(rotated) => {
                let ttl = state.settings.auth.refresh_token_ttl_secs;
                set_cookies.push(set_cookie(&state, ACCESS_COOKIE, &rotated.access, ttl));
                set_cookies.push(set_cookie(&state, REFRESH_COOKIE, &rotated.refresh, ttl));
                let client_addr = parts
                    .extensions
                    .get::<ConnectInfo<std::net::SocketAddr>>()
                    .map(|c| c.0.ip());
                parts.extensions.insert(Caller {
                    principal: Principal::User {
                        user_id: rotated.user_id,
                        session_id: rotated.session_id,
                    },
                    client_addr,
                });
            }
            None => {
                set_cookies.push(clear_cookie(&state, ACCESS_COOKIE));
                set_cookies.push(clear_cookie(&state, REFRESH_COOKIE));
            }
        }
    }
    let mut response = next.run(Request::from_parts(parts, body)).await;
    for value in set_cookies {
        response.headers_mut().append(SET_COOKIE, value);
    }
    response
}

/// A refresh done for one request, kept briefly for the others that arrive with the same
/// refresh token.
#[derive(Clone)]
struct Rotated {
    at: Instant,
    user_id: Uuid,
    session_id: Uuid,
    access: String,
    refresh: String,
}

/// How long a rotation is shared with concurrent requests that carried the same cookie.
const SHARED_ROTATION: Duration = Duration::from_secs(10);

/// Recent rotations by the SHA-256 of the refresh token they used.
static RECENT_ROTATIONS: LazyLock<tokio::sync::Mutex<HashMap<Vec<u8>, Rotated>>> =
    LazyLock::new(Default::default);

/// Rotates the refresh token into new tokens. A browser sends several requests at once (a page
/// and its htmx polls) with the same expired cookie; rotating for each would look like refresh
/// token reuse and end the session, so a rotation is shared for a few seconds with the
/// requests of this process that carried the same token. A token presented again later is
/// still reuse, and revokes the session.
async fn refresh_session(state: &AppState, refresh: &str) -> Option<Rotated> {
    let key = crate::auth::tokens::hash_token(refresh);
    let mut recent = RECENT_ROTATIONS.lock().await;
    recent.retain(|_, r| r.at.elapsed() < SHARED_ROTATION);
    if let Some(rotated) = recent.get(&key) {
        return Some(rotated.clone());
    }
    let ttl = state.settings.auth.refresh_token_ttl_secs;
    let (user_id, session) = sessions::rotate(&state.db, refresh, ttl).await.ok()?;
    let access_ttl = state.settings.auth.access_token_ttl_secs;
    let access = match state.jwt.issue(user_id, session.session_id, access_ttl) {
        Ok(access) => access,
        Err(e) => {
            tracing::error!(error = ?e, "could not issue an access token");
            return None;
        }
    };
    let rotated = Rotated {
        at: Instant::now(),
        user_id,
        session_id: session.session_id,
        access,
        refresh: session.refresh_token,
    };
    recent.insert(key, rotated.clone());
    Some(rotated)
}

/// A signed-in person. Pages that need one redirect to the login page otherwise.
#[derive(Clone)]
pub struct WebUser {
    pub caller: Caller,
    pub user_id: Uuid,
    pub session_id: Uuid,
    /// This session's CSRF token, for forms and htmx requests.
    pub csrf: String,
    pub origin: Origin,
}

pub fn request_origin(parts: &Parts) -> Origin {
    Origin {
        connect: parts
            .extensions
            .get::<ConnectInfo<std::net::SocketAddr>>()
            .copied(),
        user_agent: parts.headers.get(axum::http::header::USER_AGENT).cloned(),
        forwarded_for: forwarded_for(&parts.headers),
    }
}

/// Every `X-Forwarded-For` header as one list, in order, so the API reads the same hops.
fn forwarded_for(headers: &axum::http::HeaderMap) -> Option<axum::http::HeaderValue> {
    let values: Vec<&[u8]> = headers
        .get_all("x-forwarded-for")
        .iter()
        .map(|v| v.as_bytes())
        .collect();
    if values.is_empty() {
        return None;
    }
    axum::http::HeaderValue::from_bytes(&values.join(&b", "[..])).ok()
}

/// Sends the browser to the login page (through htmx's redirect header for partial requests).
pub struct ToLogin {
    htmx: bool,
}

impl IntoResponse for ToLogin {
    fn into_response(self) -> Response {
        if self.htmx {
            (StatusCode::UNAUTHORIZED, [("hx-redirect", "/login")]).into_response()
        } else {
            Redirect::to("/login").into_response()
        }
    }
}

impl FromRequestParts<AppState> for WebUser {
    type Rejection = ToLogin;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let htmx = parts.headers.contains_key("hx-request");
        match parts.extensions.get::<Caller>() {
            Some(
                caller @ Caller {
                    principal:
                        Principal::User {
                            user_id,
                            session_id,
                        },
                    ..
                },
            ) => Ok(WebUser {
                caller: caller.clone(),
                user_id: *user_id,
                session_id: *session_id,
                csrf: super::csrf::session_token(state, *session_id),
                origin: request_origin(parts),
            }),
            _ => Err(ToLogin { htmx }),
        }
    }
}
