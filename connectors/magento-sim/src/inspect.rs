//! Test and benchmark hooks, not part of Magento: what the store received, for a simulator
//! running in its own process (`GET /__sim/stats`, `GET /__sim/writes`).

use std::sync::Arc;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::Inner;
use crate::server::magento_error;

pub(crate) fn answer(inner: &Arc<Inner>, what: &str) -> Response {
    match what {
        "stats" => {
            let stats = inner.stats.lock().expect("stats").clone();
            let writes = inner.writes.lock().expect("writes").len();
            axum::Json(json!({
                "requests": stats.total,
                "write_requests": stats.write_requests,
                "writes": writes,
                "max_in_flight": stats.max_in_flight,
                "max_per_second": stats.max_per_second(),
            }))
            .into_response()
        }
        "writes" => axum::Json(json!(*inner.writes.lock().expect("writes"))).into_response(),
        _ => magento_error(
            StatusCode::NOT_FOUND,
            "Request does not match any route.",
            serde_json::Value::Null,
        ),
    }
}
