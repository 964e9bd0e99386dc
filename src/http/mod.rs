//! The HTTP surface: routes, middleware and the OpenAPI document.

pub mod access;
pub mod error;
pub mod extract;
pub mod metrics;
pub mod routes;

use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderName, HeaderValue, Request, StatusCode, header};
use axum::response::IntoResponse;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_axum::router::OpenApiRouter;

use crate::error::Error;
use crate::state::AppState;
use error::ApiError;
use extract::BodyLimit;

#[derive(OpenApi)]
#[openapi(
    info(title = "catalogd", description = "Keeps Magento 2 product catalogs in good shape."),
    modifiers(&BearerAuth)
)]
struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
        );
    }
}

static REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

pub fn router(state: AppState) -> Router {
    let api = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .merge(routes::auth::router())
        .merge(routes::me::router())
        .merge(routes::workspaces::router())
        .merge(routes::members::router())
        .merge(routes::stores::router())
        .merge(routes::products::router())
        .merge(routes::jobs::router())
        .merge(routes::audits::router())
        .merge(routes::review::router())
        .merge(routes::enrich::router())
        .merge(routes::exports::router())
        .merge(routes::schedules::router())
        .merge(routes::webhooks::router())
        .merge(routes::notifications::router());
    let (api, mut openapi) = OpenApiRouter::new().nest("/api/v1", api).split_for_parts();
    let (ops, ops_doc) = routes::ops::router()
        .merge(routes::integrations::router())
        .split_for_parts();
    openapi.merge(ops_doc);
    let openapi_json = serde_json::to_string(&openapi).expect("OpenAPI document serialises");

    let body_limit = state.settings.http.body_limit_bytes;
    // Browsers ignore HSTS over plain HTTP; behind TLS it pins the site to HTTPS for a year.
    let hsts = state
        .settings
        .public_url
        .starts_with("https://")
        .then(|| HeaderValue::from_static("max-age=31536000; includeSubDomains"));
    let timeout = Duration::from_secs(state.settings.http.request_timeout_secs);

    let web = crate::web::router(
        state.clone(),
        api.clone()
            .layer(axum::Extension(BodyLimit(body_limit)))
            .with_state(state.clone()),
    );
    Router::new()
        .merge(api)
        .merge(ops)
        .merge(web)
        .route(
            "/api/v1/files/{*key}",
            axum::routing::get(routes::exports::download_file),
        )
        .route(
            "/api/v1/openapi.json",
            axum::routing::get(move || async move {
                ([(header::CONTENT_TYPE, "application/json")], openapi_json)
            }),
        )
        .fallback(|| async { ApiError::from(Error::NotFound("route")) })
        .method_not_allowed_fallback(|| async {
            (StatusCode::METHOD_NOT_ALLOWED, ApiError::from(Error::Malformed("method not allowed on this route".into())))
                .into_response()
        })
        .layer(axum::middleware::from_fn(metrics::track))
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(axum::Extension(BodyLimit(body_limit)))
        .layer(TimeoutLayer::with_status_code(StatusCode::REQUEST_TIMEOUT, timeout))
        .layer(CatchPanicLayer::custom(|_| ApiError::from(anyhow::anyhow!("handler panicked")).into_response()))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ))
        .layer(SetResponseHeaderLayer::if_not_present(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY")))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        ))
        // JSON and files need no scripts, styles or frames; pages that do set their own.
        .layer(SetResponseHeaderLayer::if_not_present(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static("default-src 'none'; frame-ancestors 'none'; base-uri 'none'"),
        ))
        .layer(SetResponseHeaderLayer::if_not_present(
            HeaderName::from_static("cross-origin-resource-policy"),
            HeaderValue::from_static("same-origin"),
        ))
        .layer(SetResponseHeaderLayer::if_not_present(
            HeaderName::from_static("permissions-policy"),
            HeaderValue::from_static("camera=(), microphone=(), geolocation=(), payment=()"),
        ))
        // Answers carry tokens and catalog data: no shared or browser cache keeps them.
        .layer(SetResponseHeaderLayer::if_not_present(
            header::CACHE_CONTROL,
            HeaderValue::from_static("no-store"),
        ))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::STRICT_TRANSPORT_SECURITY,
            move |_: &axum::response::Response| hsts.clone(),
        ))
        .layer(PropagateRequestIdLayer::new(REQUEST_ID.clone()))
        .layer(TraceLayer::new_for_http().make_span_with(|req: &Request<_>| {
            let request_id = req
                .headers()
                .get(&REQUEST_ID)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("-");
            tracing::info_span!("http", method = %req.method(), path = %traced_path(req.uri().path()), request_id)
        }))
        .layer(SetRequestIdLayer::new(REQUEST_ID.clone(), MakeRequestUuid))
        .with_state(state)
}

/// The request path as logs show it: a store's link token (the secret in Magento's callback
/// and identity URLs) is replaced, so logs never hand out a way to post credentials.
pub fn traced_path(path: &str) -> std::borrow::Cow<'_, str> {
    const LINK: &str = "/integrations/magento/";
    match path.strip_prefix(LINK) {
        Some(rest) => {
            let tail = rest.find('/').map_or("", |slash| &rest[slash..]);
            format!("{LINK}<token>{tail}").into()
        }
        None => path.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::traced_path;

    #[test]
    fn link_tokens_never_reach_the_logs() {
        assert_eq!(
            traced_path("/integrations/magento/s3cr3tT0ken_-x/callback"),
            "/integrations/magento/<token>/callback"
        );
        assert_eq!(
            traced_path("/integrations/magento/s3cr3tT0ken/identity"),
            "/integrations/magento/<token>/identity"
        );
        assert_eq!(
            traced_path("/integrations/magento/s3cr3tT0ken"),
            "/integrations/magento/<token>"
        );
        assert_eq!(traced_path("/api/v1/stores/1"), "/api/v1/stores/1");
    }
}
