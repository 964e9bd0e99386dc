//! The one error type every handler returns, and its JSON shape.
//!
//! `{"error": {"code": "...", "message": "..."}}`: `code` is stable and machine-readable,
//! `message` is for people. Internal errors are logged with their cause and answered with
//! a generic message, so nothing about the database or a secret leaks to a client.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::error::Error;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// What the domain answered; its kind decides the status and `code`.
    #[error(transparent)]
    Domain(#[from] Error),
    #[error("request body is larger than {0} bytes")]
    PayloadTooLarge(usize),
    #[error("request body must be JSON (Content-Type: application/json)")]
    UnsupportedMediaType,
}

#[derive(Serialize, Deserialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ErrorDetail {
    /// Stable machine-readable code, e.g. `not_found`, `invalid_request`.
    pub code: String,
    pub message: String,
    /// The request field at fault, when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

impl ApiError {
    pub fn status(&self) -> StatusCode {
        let domain = match self {
            ApiError::Domain(domain) => domain,
            ApiError::PayloadTooLarge(_) => return StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::UnsupportedMediaType => return StatusCode::UNSUPPORTED_MEDIA_TYPE,
        };
        match domain {
            Error::Malformed(_) => StatusCode::BAD_REQUEST,
            Error::Invalid { .. } | Error::NoChange(_) => StatusCode::UNPROCESSABLE_ENTITY,
            Error::Unauthenticated(_) | Error::TwoFactorRequired => StatusCode::UNAUTHORIZED,
            Error::Forbidden(_) | Error::TwoFactorSetupRequired => StatusCode::FORBIDDEN,
            Error::NotFound(_) => StatusCode::NOT_FOUND,
            Error::Conflict(_) => StatusCode::CONFLICT,
            Error::TooManyAttempts { .. } => StatusCode::TOO_MANY_REQUESTS,
            Error::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Error::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    pub fn code(&self) -> &'static str {
        let domain = match self {
            ApiError::Domain(domain) => domain,
            ApiError::PayloadTooLarge(_) => return "payload_too_large",
            ApiError::UnsupportedMediaType => return "unsupported_media_type",
        };
        match domain {
            Error::Malformed(_) => "bad_request",
            Error::Invalid { .. } => "invalid_request",
            Error::Unauthenticated(_) => "unauthorized",
            Error::Forbidden(_) => "forbidden",
            Error::NotFound(_) => "not_found",
            Error::Conflict(_) => "conflict",
            Error::NoChange(_) => "no_change",
            Error::TooManyAttempts { .. } => "rate_limited",
            Error::TwoFactorRequired => "totp_required",
            Error::TwoFactorSetupRequired => "totp_setup_required",
            Error::Unavailable(_) => "unavailable",
            Error::Internal(_) => "internal",
        }
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(err: sqlx::Error) -> Self {
        ApiError::Domain(err.into())
    }
}

impl From<anyhow::Error> for ApiError {
    fn from(err: anyhow::Error) -> Self {
        ApiError::Domain(Error::Internal(err))
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if let ApiError::Domain(Error::Internal(err)) = &self {
            tracing::error!(error = ?err, "request failed");
        }
        let status = self.status();
        let field = match &self {
            ApiError::Domain(Error::Invalid { field, .. }) => field.clone(),
            _ => None,
        };
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code().to_string(),
                message: self.to_string(),
                field,
            },
        };
        let mut response = (status, Json(body)).into_response();
        match self {
            ApiError::Domain(Error::TooManyAttempts { retry_after_secs }) => {
                response.headers_mut().insert(
                    header::RETRY_AFTER,
                    HeaderValue::from(retry_after_secs.max(1)),
                );
            }
            ApiError::Domain(Error::Unavailable(_)) => {
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from(1));
            }
            _ => {}
        }
        response
    }
}

pub type ApiResult<T> = Result<T, ApiError>;
