//! A description of one REST call, independent of sending it: the client
//! turns it into a signed request, and a push dry run can show it as is.

use std::fmt;

use reqwest::Method;
use serde_json::Value;

use crate::query::QueryPairs;
use crate::scope::{Api, Route, StoreScope, rest_path};

/// One Magento REST call.
#[derive(Debug, Clone, PartialEq)]
pub struct Call {
    pub method: Method,
    pub scope: StoreScope,
    pub api: Api,
    pub route: Route,
    pub query: QueryPairs,
    /// Sent as JSON (never signed: Magento only signs form bodies).
    pub body: Option<Value>,
    /// Whether repeating the call is harmless (see `retry`): reads, PUTs of
    /// whole values and DELETEs are; creating an image or a bulk is not.
    pub idempotent: bool,
}

impl Call {
    pub fn new(method: Method, scope: StoreScope, route: Route) -> Self {
        let idempotent = method != Method::POST;
        Call {
            method,
            scope,
            api: Api::Sync,
            route,
            query: QueryPairs::new(),
            body: None,
            idempotent,
        }
    }

    pub fn get(scope: StoreScope, route: Route) -> Self {
        Call::new(Method::GET, scope, route)
    }

    pub fn with_query(mut self, query: QueryPairs) -> Self {
        self.query.extend(query);
        self
    }

    pub fn with_body(mut self, body: Value) -> Self {
        self.body = Some(body);
        self
    }

    pub fn with_api(mut self, api: Api) -> Self {
        self.api = api;
        self
    }

    pub fn idempotent(mut self, idempotent: bool) -> Self {
        self.idempotent = idempotent;
        self
    }

    /// The path relative to the store base URL (`rest/fr/V1/products/…`).
    pub fn path(&self) -> String {
        rest_path(&self.scope, self.api, &self.route)
    }

    /// The path and encoded query, relative to the store base URL.
    pub fn path_and_query(&self) -> String {
        if self.query.is_empty() {
            self.path()
        } else {
            format!("{}?{}", self.path(), self.query.encode())
        }
    }
}

impl fmt::Display for Call {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.method, self.path_and_query())
    }
}
