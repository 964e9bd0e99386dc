//! Calls into the JSON API's handlers in-process, as the signed-in person.
//!
//! The request never leaves the process: it is handed to the API's router with the caller
//! already resolved (the API's `Caller` extractor takes it from the request's extensions), so
//! every page action passes the same validation, `Access<R, P>` checks and audit logging as
//! the API itself.

use std::net::SocketAddr;

use anyhow::Context;
use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{HeaderValue, Method, Request, StatusCode, header};
use serde::de::DeserializeOwned;
use serde_json::Value;
use tower::ServiceExt;

use crate::auth::Caller;
use crate::http::error::{ErrorBody, ErrorDetail};

#[derive(Clone)]
pub struct InternalApi(Router);

/// Where a page request came from, passed on so rate limits and the audit log see the person.
#[derive(Clone, Default)]
pub struct Origin {
    pub connect: Option<ConnectInfo<SocketAddr>>,
    pub user_agent: Option<HeaderValue>,
    pub forwarded_for: Option<HeaderValue>,
}

/// The API's answer: its status, and its body read as the handler's response type `T` when
/// the status is a success, otherwise as the API's error body (`None` when it is not one).
#[derive(Debug)]
pub struct Answer<T> {
    pub status: StatusCode,
    pub body: Result<T, Option<ErrorDetail>>,
}

impl<T> Answer<T> {
    pub fn ok(&self) -> bool {
        self.status.is_success()
    }

    /// The API's error message, for showing to the person.
    pub fn message(&self) -> String {
        match &self.body {
            Err(Some(detail)) => detail.message.clone(),
            _ => format!("request failed ({})", self.status),
        }
    }

    pub fn code(&self) -> &str {
        match &self.body {
            Err(Some(detail)) => &detail.code,
            _ => "",
        }
    }
}

impl InternalApi {
    pub fn new(router: Router) -> InternalApi {
        InternalApi(router)
    }

    /// `path` is relative to `/api/v1`, e.g. `/stores/{id}/sync`.
    /// A success answer whose body is not a `T` is an error: the page and the API disagree.
    pub async fn call<T: DeserializeOwned>(
        &self,
        caller: Option<&Caller>,
        origin: &Origin,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> anyhow::Result<Answer<T>> {
        let mut builder = Request::builder()
            .method(method)
            .uri(format!("/api/v1{path}"));
        if let Some(ua) = &origin.user_agent {
            builder = builder.header(header::USER_AGENT, ua);
        }
        if let Some(xff) = &origin.forwarded_for {
            builder = builder.header("x-forwarded-for", xff);
        }
        let body = match body {
            Some(value) => {
                builder = builder.header(header::CONTENT_TYPE, "application/json");
                Body::from(serde_json::to_vec(&value)?)
            }
            None => Body::empty(),
        };
        let mut request = builder.body(body)?;
        if let Some(caller) = caller {
            request.extensions_mut().insert(caller.clone());
        }
        if let Some(connect) = origin.connect {
            request.extensions_mut().insert(connect);
        }
        let response = self.0.clone().oneshot(request).await?;
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX).await?;
        // An empty body (`204 No Content`) reads as JSON's `null`.
        let bytes: &[u8] = if bytes.is_empty() { b"null" } else { &bytes };
        let body = if status.is_success() {
            Ok(serde_json::from_slice(bytes).with_context(|| {
                format!(
                    "the answer to {path} is not a {}",
                    std::any::type_name::<T>()
                )
            })?)
        } else {
            Err(serde_json::from_slice::<ErrorBody>(bytes)
                .map(|b| b.error)
                .ok())
        };
        Ok(Answer { status, body })
    }
}
