//! Static files compiled into the binary, served under a content-hashed path so they can be
//! cached for a year: a new build with changed files gets a new path.

use std::sync::LazyLock;

use axum::Router;
use axum::extract::Path;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

use crate::state::AppState;

struct Asset {
    name: &'static str,
    content_type: &'static str,
    body: &'static [u8],
}

const ASSETS: &[Asset] = &[
    Asset {
        name: "app.css",
        content_type: "text/css; charset=utf-8",
        body: include_bytes!("../../static/app.css"),
    },
    Asset {
        name: "app.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("../../static/app.js"),
    },
    Asset {
        name: "htmx.min.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("../../static/htmx-2.0.11.min.js"),
    },
];

/// The first 16 hex digits of SHA-256 over every asset: the path segment that busts caches.
static VERSION: LazyLock<String> = LazyLock::new(|| {
    let mut hash = Sha256::new();
    for asset in ASSETS {
        hash.update(asset.name.as_bytes());
        hash.update([0]);
        hash.update(asset.body);
    }
    hex::encode(hash.finalize())[..16].to_string()
});

/// The URL path of a static file, e.g. `/static/3f2a…/app.css`.
pub fn path(name: &str) -> String {
    format!("/static/{}/{name}", *VERSION)
}

pub fn router() -> Router<AppState> {
    Router::new().route("/static/{version}/{name}", axum::routing::get(serve))
}

async fn serve(Path((version, name)): Path<(String, String)>) -> Response {
    let asset = ASSETS.iter().find(|a| a.name == name);
    match asset {
        Some(asset) if version == *VERSION => (
            [
                (
                    header::CONTENT_TYPE,
                    HeaderValue::from_static(asset.content_type),
                ),
                (
                    header::CACHE_CONTROL,
                    HeaderValue::from_static("public, max-age=31536000, immutable"),
                ),
            ],
            asset.body,
        )
            .into_response(),
        _ => (StatusCode::NOT_FOUND, "not found").into_response(),
    }
}
