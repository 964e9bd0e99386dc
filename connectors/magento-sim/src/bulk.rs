//! The asynchronous web API (REFERENCE §5): `/rest[/<code>]/async[/bulk]/V1/…` accepts
//! operations, answers with a bulk uuid, and `/V1/bulk/{uuid}/…` reports each operation's
//! status. Operations run through the same save logic as the synchronous API, in the store
//! view the queue gives them ([`crate::QueueMode`]): with MySQL's queue always `default`,
//! with AMQP the URL's.

use std::sync::Arc;

use axum::body::Bytes;
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use rand::Rng;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::server::{magento_error, save_product};
use crate::{Inner, RecordedWrite};

/// Magento's operation statuses (4 is "open": operations here run before the answer, so none
/// is ever open).
pub const COMPLETE: i64 = 1;
pub const FAILED_RETRIABLE: i64 = 2;
pub const FAILED_NOT_RETRIABLE: i64 = 3;
pub const REJECTED: i64 = 5;

#[derive(Debug, Clone)]
pub struct Operation {
    pub id: i64,
    pub topic: String,
    pub status: i64,
    pub result_message: Option<String>,
    pub data: Value,
}

fn uuid(inner: &Inner) -> String {
    let mut rng = inner.rng.lock().expect("rng");
    let hex: String = (0..32)
        .map(|_| char::from_digit(rng.random_range(0..16), 16).unwrap_or('0'))
        .collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    )
}

#[allow(clippy::too_many_arguments)]
pub fn submit(
    inner: &Arc<Inner>,
    method: &Method,
    path: &str,
    store_code: Option<String>,
    view: Option<String>,
    route: &[&str],
    bulk: bool,
    body: &Bytes,
) -> Response {
    let Ok(body) = serde_json::from_slice::<Value>(body) else {
        return magento_error(
            StatusCode::BAD_REQUEST,
            "Decoding error: syntax error",
            Value::Null,
        );
    };
    // Bulk takes an array of request bodies; the single async API takes one.
    let requests: Vec<Value> = match (bulk, body) {
        (true, Value::Array(items)) => items,
        (true, _) => {
            return magento_error(
                StatusCode::BAD_REQUEST,
                "Request body must be an array",
                Value::Null,
            );
        }
        (false, one) => vec![one],
    };
    let topic = format!(
        "async.magento.catalog.api.productrepositoryinterface.save.{}",
        method.as_str().to_lowercase()
    );
    let supported = matches!(
        (method.as_str(), route),
        (
            "PUT" | "POST",
            ["products"] | ["products", "bySku"] | ["products", _]
        )
    );
    if !supported {
        return magento_error(
            StatusCode::NOT_FOUND,
            "Request does not match any route.",
            Value::Null,
        );
    }
    // The consumer saves in the store view the queue carries, not necessarily the URL's.
    let view = match inner.config.queue_mode {
        // The default store view is the first (store id 1).
        crate::QueueMode::Mysql => inner.config.store_views.first().cloned(),
        crate::QueueMode::Amqp => view,
    };
    let bulk_uuid = uuid(inner);
    let mut items = Vec::new();
    let mut operations = Vec::new();
    for (id, request) in requests.into_iter().enumerate() {
        let id = id as i64;
        let data_hash = hex(&Sha256::digest(request.to_string().as_bytes()));
        inner.record_write(RecordedWrite {
            method: method.to_string(),
            path: path.to_string(),
            store_code: store_code.clone(),
            body: request.clone(),
        });
        let url_sku = match route {
            ["products", sku] if *sku != "bySku" => Some(sku.to_string()),
            _ => None,
        };
        let answer = save_product(inner, view.as_deref(), url_sku, request.clone());
        let status = answer.status();
        let (status, message) = if status.is_success() {
            (COMPLETE, None)
        } else if status.is_server_error() {
            (
                FAILED_RETRIABLE,
                Some("Service temporarily unavailable".to_string()),
            )
        } else {
            (
                FAILED_NOT_RETRIABLE,
                Some(format!(
                    "the operation was rejected (HTTP {})",
                    status.as_u16()
                )),
            )
        };
        items.push(json!({"id": id, "data_hash": data_hash, "status": "accepted"}));
        operations.push(Operation {
            id,
            topic: topic.clone(),
            status,
            result_message: message,
            data: request,
        });
    }
    inner
        .bulks
        .lock()
        .expect("bulks")
        .insert(bulk_uuid.clone(), operations);
    axum::Json(json!({"bulk_uuid": bulk_uuid, "request_items": items, "errors": false}))
        .into_response()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

pub fn status(inner: &Arc<Inner>, uuid: &str, detailed: bool) -> Response {
    let bulks = inner.bulks.lock().expect("bulks");
    let Some(operations) = bulks.get(uuid) else {
        return magento_error(
            StatusCode::NOT_FOUND,
            "Bulk uuid %bulkUuid not exist",
            json!({"bulkUuid": uuid}),
        );
    };
    let list: Vec<Value> = operations
        .iter()
        .map(|op| {
            let mut entry = json!({"id": op.id, "bulk_uuid": uuid, "topic_name": op.topic, "status": op.status,
                                   "result_message": op.result_message, "error_code": null});
            if detailed {
                entry["serialized_data"] = json!(op.data.to_string());
                entry["result_serialized_data"] = Value::Null;
            }
            entry
        })
        .collect();
    axum::Json(
        json!({"bulk_id": uuid, "bulk_uuid": uuid, "description": "Topic async.magento.catalog",
        "start_time": crate::catalog::format_time(inner.now()), "user_id": 1, "user_type": 1,
        "operation_count": operations.len(), "operations_list": list}),
    )
    .into_response()
}

pub fn count(inner: &Arc<Inner>, uuid: &str, wanted: &str) -> Response {
    let Ok(wanted) = wanted.parse::<i64>() else {
        return magento_error(
            StatusCode::BAD_REQUEST,
            "status must be a number",
            Value::Null,
        );
    };
    if !(COMPLETE..=REJECTED).contains(&wanted) {
        return magento_error(
            StatusCode::BAD_REQUEST,
            "unknown operation status",
            Value::Null,
        );
    }
    let bulks = inner.bulks.lock().expect("bulks");
    let Some(operations) = bulks.get(uuid) else {
        return magento_error(
            StatusCode::NOT_FOUND,
            "Bulk uuid %bulkUuid not exist",
            json!({"bulkUuid": uuid}),
        );
    };
    axum::Json(json!(
        operations.iter().filter(|op| op.status == wanted).count()
    ))
    .into_response()
}
