//! Calls into the JSON API's handlers in-process, as the signed-in person.
//!
//! The request never leaves the process: it is handed to the API's router with the caller
//! already resolved (the API's `Caller` extractor takes it from the request's extensions), so
//! every page action passes the same validation, `Access<R, P>` checks and audit logging as
//! the API itself.

use std::net::SocketAddr;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{HeaderValue, Method, Request, StatusCode, header};
use serde_json::Value;
use tower::ServiceExt;

use crate::auth::Caller;

#[derive(Clone)]
pub struct InternalApi(Router);

/// Where a page request came from, passed on so rate limits and the audit log see the person.
#[derive(Clone, Default)]
pub struct Origin {
    pub connect: Option<ConnectInfo<SocketAddr>>,
    pub user_agent: Option<HeaderValue>,
    pub forwarded_for: Option<HeaderValue>,
}

/// The API's answer: its status and JSON body.
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub body: Value,
}

impl Answer {
    pub fn ok(&self) -> bool {
        self.status.is_success()
    }

    /// The API's error message, for showing to the person.
    pub fn message(&self) -> String {
        self.body["error"]["message"]
            .as_str()
            .map(str::to_string)
            .unwrap_or_else(|| format!("request failed ({})", self.status))
    }

    pub fn code(&self) -> &str {
        self.body["error"]["code"].as_str().unwrap_or("")
    }
}

impl InternalApi {
    pub fn new(router: Router) -> InternalApi {
        InternalApi(router)
    }

    /// `path` is relative to `/api/v1`, e.g. `/stores/{id}/sync`.
    pub async fn call(
        &self,
        caller: Option<&Caller>,
        origin: &Origin,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> anyhow::Result<Answer> {
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
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).unwrap_or(Value::Null)
        };
        Ok(Answer { status, body })
    }
}
