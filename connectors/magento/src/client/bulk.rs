//! Asynchronous and bulk endpoints (REFERENCE §5).
//!
//! Submissions are answered with 202 and a bulk UUID; the work happens
//! later in Magento's `async.operations.all` consumer, whose progress the
//! status calls report. A submission is not idempotent (a repeat schedules
//! the work twice), so it is only retried when it surely did not arrive.

use reqwest::Method;
use serde_json::Value;
use tracing::instrument;

use super::{Call, MagentoClient, decode};
use crate::error::MagentoError;
use crate::models::{BulkAccepted, BulkStatus, OperationStatus, Parsed, Product};
use crate::scope::{Api, Route, StoreScope};

use super::products::product_save_body;

impl MagentoClient {
    /// `<method> /rest/<sc>/async/bulk/V1/<route>` with one body per item.
    /// Path parameters are literal placeholders such as `bySku`.
    #[instrument(skip(self, items), fields(store = %scope, items = items.len()))]
    pub async fn submit_bulk(
        &self,
        scope: &StoreScope,
        method: Method,
        route: Route,
        items: Vec<Value>,
    ) -> Result<Parsed<BulkAccepted>, MagentoError> {
        let call = Call::new(method, scope.clone(), route)
            .with_api(Api::AsyncBulk)
            .with_body(Value::Array(items))
            .idempotent(false);
        decode::one(&self.send(&call).await?)
    }

    /// `<method> /rest/<sc>/async/V1/<route>` with a single body.
    #[instrument(skip(self, body), fields(store = %scope))]
    pub async fn submit_async(
        &self,
        scope: &StoreScope,
        method: Method,
        route: Route,
        body: Value,
    ) -> Result<Parsed<BulkAccepted>, MagentoError> {
        let call = Call::new(method, scope.clone(), route)
            .with_api(Api::Async)
            .with_body(body)
            .idempotent(false);
        decode::one(&self.send(&call).await?)
    }

    /// Saves many products at once in `scope`:
    /// `PUT /rest/<sc>/async/bulk/V1/products/bySku`.
    pub async fn bulk_put_products(
        &self,
        scope: &StoreScope,
        products: &[(String, Product)],
    ) -> Result<Parsed<BulkAccepted>, MagentoError> {
        let items = products
            .iter()
            .map(|(sku, product)| product_save_body(sku, product))
            .collect::<Result<Vec<_>, _>>()?;
        self.submit_bulk(
            scope,
            Method::PUT,
            Route::new().lit("products/bySku"),
            items,
        )
        .await
    }

    /// `GET /V1/bulk/{uuid}/status`.
    pub async fn bulk_status(&self, bulk_uuid: &str) -> Result<Parsed<BulkStatus>, MagentoError> {
        let route = Route::new().lit("bulk").value(bulk_uuid).lit("status");
        decode::one(
            &self
                .send(&Call::get(StoreScope::DefaultStoreView, route))
                .await?,
        )
    }

    /// `GET /V1/bulk/{uuid}/detailed-status` (adds topic and data per operation).
    pub async fn bulk_detailed_status(
        &self,
        bulk_uuid: &str,
    ) -> Result<Parsed<BulkStatus>, MagentoError> {
        let route = Route::new()
            .lit("bulk")
            .value(bulk_uuid)
            .lit("detailed-status");
        decode::one(
            &self
                .send(&Call::get(StoreScope::DefaultStoreView, route))
                .await?,
        )
    }

    /// `GET /V1/bulk/{uuid}/operation-status/{status}`: how many operations
    /// are in that status.
    pub async fn bulk_operation_count(
        &self,
        bulk_uuid: &str,
        status: OperationStatus,
    ) -> Result<u64, MagentoError> {
        let route = Route::new()
            .lit("bulk")
            .value(bulk_uuid)
            .lit("operation-status")
            .value(&status.code().to_string());
        let body = self
            .send(&Call::get(StoreScope::DefaultStoreView, route))
            .await?;
        decode::typed(&body, "an operation count")
    }
}
