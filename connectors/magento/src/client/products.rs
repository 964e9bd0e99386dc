//! Product reads and writes (REFERENCE §2).

use std::num::NonZeroUsize;
use std::sync::Arc;

use futures::stream::{self, BoxStream, StreamExt};
use reqwest::Method;
use serde_json::{Map, Value, json};
use tracing::instrument;

use super::paging::{DecodeOn, PageStreamOptions, Pager, RawPage};
use super::{Call, MagentoClient, decode};
use crate::error::{MagentoError, MagentoMessage};
use crate::models::{Parsed, Product, ProductPage, SearchPage, summarize_raw_page};
use crate::scope::{Route, StoreScope, is_path_safe_sku};
use crate::search::{Filter, SearchCriteria};

impl MagentoClient {
    /// The call behind one page of `GET /V1/products`.
    pub fn product_list_call(scope: &StoreScope, criteria: &SearchCriteria) -> Call {
        Call::get(scope.clone(), Route::new().lit("products")).with_query(criteria.to_query_pairs())
    }

    fn page_options(&self) -> PageStreamOptions {
        PageStreamOptions {
            page_size: None,
            concurrency: NonZeroUsize::new(self.inner.page_concurrency)
                .unwrap_or(NonZeroUsize::MIN),
        }
    }

    /// Every page of products matching `criteria`, in the store view
    /// `scope`, as a stream (see `paging` for when it stops).
    pub fn search_products(
        &self,
        scope: &StoreScope,
        criteria: SearchCriteria,
    ) -> BoxStream<'static, Result<ProductPage, MagentoError>> {
        self.search_products_with(scope, criteria, self.page_options())
    }

    pub fn search_products_with(
        &self,
        scope: &StoreScope,
        criteria: SearchCriteria,
        options: PageStreamOptions,
    ) -> BoxStream<'static, Result<ProductPage, MagentoError>> {
        if let Err(error) = criteria.validate() {
            return stream::once(
                async move { Err(MagentoError::InvalidRequest(error.to_string())) },
            )
            .boxed();
        }
        let template = Call::get(scope.clone(), Route::new().lit("products"));
        let decoder =
            Arc::new(|body: bytes::Bytes, page: u32| ProductPage::parse_with_summary(&body, page));
        Pager::new(
            self.clone(),
            template,
            criteria,
            options,
            decoder,
            DecodeOn::BlockingPool,
        )
        .into_stream()
    }

    /// The same pages as [`MagentoClient::search_products_with`], undecoded:
    /// for measuring download cost apart from parsing.
    pub fn search_products_raw(
        &self,
        scope: &StoreScope,
        criteria: SearchCriteria,
        options: PageStreamOptions,
    ) -> BoxStream<'static, Result<RawPage, MagentoError>> {
        if let Err(error) = criteria.validate() {
            return stream::once(
                async move { Err(MagentoError::InvalidRequest(error.to_string())) },
            )
            .boxed();
        }
        let template = Call::get(scope.clone(), Route::new().lit("products"));
        let decoder = Arc::new(|body: bytes::Bytes, page: u32| {
            let summary = summarize_raw_page(&body)?;
            let raw = RawPage {
                current_page: page,
                total_count: summary.total_count,
                item_count: summary.item_count,
                body,
            };
            Ok((raw, summary))
        });
        Pager::new(
            self.clone(),
            template,
            criteria,
            options,
            decoder,
            DecodeOn::Inline,
        )
        .into_stream()
    }

    /// One page, exactly as `criteria` asks.
    pub async fn search_products_page(
        &self,
        scope: &StoreScope,
        criteria: &SearchCriteria,
    ) -> Result<ProductPage, MagentoError> {
        criteria
            .validate()
            .map_err(|error| MagentoError::InvalidRequest(error.to_string()))?;
        let body = self.send(&Self::product_list_call(scope, criteria)).await?;
        decode::page(&body, criteria.current_page.unwrap_or(1))
    }

    /// One product. SKUs that are not path-safe are looked up with a `sku`
    /// filter instead of `GET /V1/products/{sku}` (REFERENCE §2.3).
    #[instrument(skip(self), fields(store = %scope))]
    pub async fn get_product(
        &self,
        scope: &StoreScope,
        sku: &str,
    ) -> Result<Parsed<Product>, MagentoError> {
        let body = self.send(&Self::product_lookup_call(scope, sku)).await?;
        if is_path_safe_sku(sku) {
            decode::one(&body)
        } else {
            pick_sku(decode::page(&body, 1)?, sku)
        }
    }

    /// The call `get_product` makes: by path, or a `sku` search.
    pub fn product_lookup_call(scope: &StoreScope, sku: &str) -> Call {
        if is_path_safe_sku(sku) {
            Call::get(scope.clone(), Route::new().lit("products").value(sku))
        } else {
            let criteria = SearchCriteria::new()
                .any_of([Filter::eq("sku", sku)])
                .page_size(20)
                .current_page(1);
            Self::product_list_call(scope, &criteria)
        }
    }

    /// Saves a product in `scope`: `StoreScope::All` writes default values,
    /// a store code writes that view's overrides, and
    /// `StoreScope::DefaultStoreView` (`/rest/V1`) writes overrides on the
    /// default store view, *not* defaults (REFERENCE §2.4). Only the fields
    /// set on `product` are sent. PUT is an upsert: an unknown SKU
    /// creates a product. Path-hostile SKUs are saved with
    /// `POST /V1/products`, which also upserts by the body's SKU.
    #[instrument(skip(self, product), fields(store = %scope))]
    pub async fn put_product(
        &self,
        scope: &StoreScope,
        sku: &str,
        product: &Product,
    ) -> Result<Parsed<Product>, MagentoError> {
        let body = product_save_body(sku, product)?;
        let body = self
            .send(&Self::product_save_call(scope, sku, body))
            .await?;
        decode::one(&body)
    }

    /// The call `put_product` makes (for dry runs).
    pub fn product_save_call(scope: &StoreScope, sku: &str, body: Value) -> Call {
        // Entries without an id are new uploads: repeating the call would
        // upload them twice.
        let uploads_media = body
            .pointer("/product/media_gallery_entries")
            .and_then(Value::as_array)
            .is_some_and(|entries| entries.iter().any(|entry| entry.get("id").is_none()));
        let call = if is_path_safe_sku(sku) {
            Call::new(
                Method::PUT,
                scope.clone(),
                Route::new().lit("products").value(sku),
            )
        } else {
            Call::new(Method::POST, scope.clone(), Route::new().lit("products"))
        };
        let idempotent = call.method == Method::PUT && !uploads_media;
        call.with_body(body).idempotent(idempotent)
    }
}

/// `{"product": {…, "sku": sku}, "saveOptions": true}`
pub(crate) fn product_save_body(sku: &str, product: &Product) -> Result<Value, MagentoError> {
    if sku.is_empty() {
        return Err(MagentoError::InvalidRequest(
            "a product needs a SKU".to_owned(),
        ));
    }
    let mut product = match serde_json::to_value(product) {
        Ok(Value::Object(map)) => map,
        Ok(_) => Map::new(),
        Err(error) => {
            return Err(MagentoError::InvalidRequest(format!(
                "product does not serialise: {error}"
            )));
        }
    };
    product.insert("sku".to_owned(), Value::String(sku.to_owned()));
    Ok(json!({"product": Value::Object(product), "saveOptions": true}))
}

/// The item whose SKU is `sku`: exact match first, then the
/// case-insensitive one MySQL's collation would have found by path.
fn pick_sku(page: SearchPage<Product>, sku: &str) -> Result<Parsed<Product>, MagentoError> {
    let mut case_insensitive = None;
    for item in page.items {
        match item.value.sku.as_deref() {
            Some(found) if found == sku => return Ok(item),
            Some(found)
                if case_insensitive.is_none() && found.to_lowercase() == sku.to_lowercase() =>
            {
                case_insensitive = Some(item);
            }
            _ => {}
        }
    }
    case_insensitive.ok_or_else(|| MagentoError::NotFound {
        message: MagentoMessage::plain(
            "The product that was requested doesn't exist. Verify the product and try again.",
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::FromMagento;
    use serde_json::json;

    #[test]
    fn save_calls_pick_put_or_post_by_sku() {
        let scope = StoreScope::parse("fr").expect("valid");
        let body = product_save_body("A-1", &Product::default()).expect("body");
        let call = MagentoClient::product_save_call(&scope, "A-1", body);
        assert_eq!(call.to_string(), "PUT rest/fr/V1/products/A-1");
        assert!(call.idempotent);
        assert_eq!(
            call.body,
            Some(json!({"product": {"sku": "A-1"}, "saveOptions": true}))
        );

        let body = product_save_body("A/1 x", &Product::default()).expect("body");
        let call = MagentoClient::product_save_call(&scope, "A/1 x", body);
        assert_eq!(call.to_string(), "POST rest/fr/V1/products");
        assert!(!call.idempotent);
    }

    #[test]
    fn new_uploads_make_a_save_non_idempotent() {
        let product =
            Product::from_value(json!({"media_gallery_entries": [{"id": 1}, {"file": "x.jpg"}]}))
                .value;
        let body = product_save_body("A", &product).expect("body");
        assert!(!MagentoClient::product_save_call(&StoreScope::All, "A", body).idempotent);
        assert!(product_save_body("", &product).is_err());
    }

    #[test]
    fn sku_lookup_prefers_exact_matches() {
        let body = br#"{"items":[{"sku":"a/b"},{"sku":"A/B"}],"total_count":2}"#;
        let page = ProductPage::parse(body, 1).expect("page");
        let picked = pick_sku(page, "A/B").expect("found");
        assert_eq!(picked.value.sku.as_deref(), Some("A/B"));
        let page =
            ProductPage::parse(br#"{"items":[{"sku":"a/b"}],"total_count":1}"#, 1).expect("page");
        assert_eq!(
            pick_sku(page, "A/B").expect("found").value.sku.as_deref(),
            Some("a/b")
        );
        let page = ProductPage::parse(br#"{"items":[],"total_count":0}"#, 1).expect("page");
        assert!(pick_sku(page, "A/B").expect_err("missing").is_not_found());
    }
}
