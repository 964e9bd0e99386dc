//! A JSON body extractor whose rejections speak the API's error shape.

use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, Request};
use axum::http::StatusCode;
use serde::de::DeserializeOwned;

use super::error::ApiError;
use crate::error::Error;

/// Like `axum::Json`, but malformed, mistyped, unknown-field and oversized bodies answer
/// with `{"error": …}` and a 4xx.
pub struct ApiJson<T>(pub T);

impl<S, T> FromRequest<S> for ApiJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let limit = req
            .extensions()
            .get::<BodyLimit>()
            .map(|l| l.0)
            .unwrap_or_default();
        let value = match axum::Json::<serde_json::Value>::from_request(req, state).await {
            Ok(axum::Json(value)) => value,
            Err(rejection) => return Err(map_rejection(rejection, limit)),
        };
        // PostgreSQL text cannot hold NUL: refused here, named, rather than failing a query.
        if let Some(path) = nul_at(&value, String::new()) {
            return Err(Error::Invalid {
                message: format!(
                    "invalid request body: {} must not contain NUL (\\u0000) characters",
                    if path.is_empty() { "text" } else { &path }
                ),
                field: Some(path).filter(|p| !p.is_empty()),
            }
            .into());
        }
        serde_json::from_value(value)
            .map(ApiJson)
            .map_err(|e| Error::Invalid {
                field: None,
                message: format!("invalid request body: {e}"),
            })
            .map_err(Into::into)
    }
}

/// Where the first NUL character is: the dotted path of the value (or key) holding it.
fn nul_at(value: &serde_json::Value, path: String) -> Option<String> {
    let join = |key: &str| {
        if path.is_empty() {
            key.to_string()
        } else {
            format!("{path}.{key}")
        }
    };
    match value {
        serde_json::Value::String(s) => s.contains('\0').then_some(path),
        serde_json::Value::Array(items) => items
            .iter()
            .enumerate()
            .find_map(|(i, item)| nul_at(item, join(&i.to_string()))),
        serde_json::Value::Object(map) => map.iter().find_map(|(k, v)| {
            if k.contains('\0') {
                Some(join(&k.replace('\0', "\\u0000")))
            } else {
                nul_at(v, join(k))
            }
        }),
        _ => None,
    }
}

/// The configured body limit, made visible to the extractor for its error message.
#[derive(Clone, Copy, Default)]
pub struct BodyLimit(pub usize);

fn map_rejection(rejection: JsonRejection, limit: usize) -> ApiError {
    match rejection {
        JsonRejection::JsonDataError(e) => Error::Invalid {
            field: None,
            message: format!("invalid request body: {}", e.body_text()),
        }
        .into(),
        JsonRejection::JsonSyntaxError(e) => {
            Error::Malformed(format!("malformed JSON: {}", e.body_text())).into()
        }
        JsonRejection::MissingJsonContentType(_) => ApiError::UnsupportedMediaType,
        JsonRejection::BytesRejection(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            ApiError::PayloadTooLarge(limit)
        }
        other => Error::Malformed(format!("unreadable request body: {}", other.body_text())).into(),
    }
}

/// Like `axum::extract::Query`, with the API's error shape for bad parameters.
pub struct ApiQuery<T>(pub T);

impl<S, T> axum::extract::FromRequestParts<S> for ApiQuery<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, Self::Rejection> {
        let query = parts.uri.query().unwrap_or_default();
        if query.to_ascii_lowercase().contains("%00") {
            return Err(Error::Invalid {
                field: None,
                message: "query parameters must not contain NUL (%00) characters".into(),
            }
            .into());
        }
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Query(v)| ApiQuery(v))
            .map_err(|e| Error::Malformed(format!("invalid query parameters: {}", e.body_text())))
            .map_err(Into::into)
    }
}

/// An optional JSON body: no body (and no JSON content type) gives `None`.
impl<S, T> axum::extract::OptionalFromRequest<S> for ApiJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Option<Self>, Self::Rejection> {
        let headers = req.headers();
        let has_type = headers.contains_key(axum::http::header::CONTENT_TYPE);
        let declared_length = headers
            .get(axum::http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        let has_body = declared_length.is_some_and(|n| n > 0)
            || headers.contains_key(axum::http::header::TRANSFER_ENCODING);
        // No body at all means "no options"; a body without a JSON type is refused (415), never ignored.
        if !has_type && !has_body {
            return Ok(None);
        }
        <ApiJson<T> as FromRequest<S>>::from_request(req, state)
            .await
            .map(Some)
    }
}
