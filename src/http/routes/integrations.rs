//! Magento's side of the integration handshake: the Callback URL and the Identity Link URL.
//! Unauthenticated by design (Magento calls them), keyed by the store's unguessable token.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::Error;
use crate::http::access::ClientAddr;
use crate::http::error::{ApiResult, ErrorBody};
use crate::http::extract::ApiQuery;
use crate::state::AppState;
use crate::stores::{self, StoreStatus, handshake};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(callback))
        .routes(routes!(identity))
}

#[derive(Serialize, ToSchema)]
pub struct CallbackAccepted {
    pub status: &'static str,
}

/// Magento posts the integration's consumer key, consumer secret and verifier here
/// (form-encoded). Answers at once; the token exchange runs afterwards.
#[utoipa::path(post, path = "/integrations/magento/{token}/callback", tag = "magento",
    params(("token" = String, Path, description = "the store's link token")),
    request_body(content_type = "application/x-www-form-urlencoded", description = "oauth_consumer_key, oauth_consumer_secret, store_base_url, oauth_verifier"),
    responses((status = 200, body = CallbackAccepted), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody),
        (status = 422, body = ErrorBody)))]
async fn callback(
    State(state): State<AppState>,
    ClientAddr(addr): ClientAddr,
    Path(token): Path<String>,
    body: Bytes,
) -> ApiResult<axum::Json<CallbackAccepted>> {
    if token.len() > 64 {
        return Err(Error::NotFound("integration").into());
    }
    let form = handshake::CallbackForm::parse(&body)?;
    let store_id = handshake::accept_callback(&state, &token, form, addr).await?;
    tokio::spawn(handshake::complete(state.clone(), store_id));
    Ok(axum::Json(CallbackAccepted { status: "accepted" }))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct IdentityParams {
    pub oauth_consumer_key: Option<String>,
    /// Magento's admin URL to send the popup back to.
    pub success_call_back: Option<String>,
}

/// The Identity Link URL Magento opens in a popup. Sends the popup back to Magento's
/// `success_call_back` when it is on the host Magento itself reported in a verified handshake;
/// otherwise shows the status (and, while the token exchange runs, looks again shortly).
#[utoipa::path(get, path = "/integrations/magento/{token}/identity", tag = "magento",
    params(("token" = String, Path, description = "the store's link token"), IdentityParams),
    responses((status = 302, description = "back to Magento"), (status = 200, content_type = "text/html"),
        (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn identity(
    State(state): State<AppState>,
    Path(token): Path<String>,
    ApiQuery(params): ApiQuery<IdentityParams>,
) -> ApiResult<Response> {
    let store: Option<(Option<String>, StoreStatus, String, bool)> = sqlx::query_as(
        "SELECT magento_store_url, status, name, handshake_started_at IS NOT NULL FROM stores
         WHERE link_token_hash = $1 AND status <> 'disconnected'",
    )
    .bind(stores::hash_link_token(&token))
    .fetch_optional(&state.db)
    .await?;
    let (magento_url, status, name, exchanging) = store.ok_or(Error::NotFound("integration"))?;
    let mut refresh = false;
    if let Some(back) = params.success_call_back.as_deref() {
        // Only back to Magento, and only to the host it reported in a post whose token
        // exchange succeeded: never to a URL a tenant typed (the store's base URL), so this is
        // no open redirect. Magento opens this popup right after its post (Magento_Integration's
        // view/adminhtml/web/js/integration.js, `invokePopup`), usually before the exchange is done.
        let verified_host = magento_url
            .as_deref()
            .and_then(|u| url::Url::parse(u).ok()?.host_str().map(str::to_owned));
        let target = url::Url::parse(back)
            .ok()
            .filter(|u| matches!(u.scheme(), "http" | "https"))
            .filter(|u| u.host_str().is_some() && u.host_str() == verified_host.as_deref());
        match target {
            Some(target) if !exchanging => {
                return Ok(
                    (StatusCode::FOUND, [(header::LOCATION, target.to_string())]).into_response(),
                );
            }
            _ if exchanging => refresh = true,
            _ => {
                return Err(Error::invalid(
                    "success_call_back",
                    "success_call_back must point at the Magento store that connected through this integration",
                ).into());
            }
        }
    }
    let status_text = match status {
        _ if exchanging => "exchanging tokens with Magento",
        StoreStatus::Active => "connected",
        StoreStatus::Pending => "waiting for Magento",
        StoreStatus::Failed | StoreStatus::NeedsReauth => {
            "not connected: click Reauthorize in Magento"
        }
        StoreStatus::Disconnected => "disconnected",
    };
    let page = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">{}<title>catalogd</title></head>\
         <body><main><h1>catalogd</h1><p>{}: {}.</p><p>{}</p></main></body></html>",
        if refresh {
            "<meta http-equiv=\"refresh\" content=\"2\">"
        } else {
            ""
        },
        html_escape(&name),
        status_text,
        if refresh {
            "This window goes back to Magento once the connection is made."
        } else {
            "You can close this window."
        }
    );
    Ok(Html(page).into_response())
}

fn html_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}
