//! Attributes and categories (REFERENCE §4).

use super::{Call, MagentoClient, decode};
use crate::error::MagentoError;
use crate::models::{Attribute, AttributeOption, Category, CategoryTree, Parsed, SearchPage};
use crate::query::QueryPairs;
use crate::scope::{Route, StoreScope};
use crate::search::SearchCriteria;

impl MagentoClient {
    /// One attribute with its options (labels of `scope`).
    pub async fn attribute(
        &self,
        scope: &StoreScope,
        code: &str,
    ) -> Result<Parsed<Attribute>, MagentoError> {
        let route = Route::new().lit("products/attributes").value(code);
        decode::one(&self.send(&Call::get(scope.clone(), route)).await?)
    }

    pub async fn attribute_options(
        &self,
        scope: &StoreScope,
        code: &str,
    ) -> Result<Vec<Parsed<AttributeOption>>, MagentoError> {
        let route = Route::new()
            .lit("products/attributes")
            .value(code)
            .lit("options");
        decode::list(&self.send(&Call::get(scope.clone(), route)).await?)
    }

    /// One page of `GET /V1/products/attributes?searchCriteria…`.
    pub async fn search_attributes(
        &self,
        scope: &StoreScope,
        criteria: &SearchCriteria,
    ) -> Result<SearchPage<Attribute>, MagentoError> {
        self.search_page(scope, Route::new().lit("products/attributes"), criteria)
            .await
    }

    /// The category tree below `root_id` (the store's root when `None`).
    pub async fn category_tree(
        &self,
        scope: &StoreScope,
        root_id: Option<i64>,
        depth: Option<u32>,
    ) -> Result<Parsed<CategoryTree>, MagentoError> {
        let mut query = QueryPairs::new();
        if let Some(root_id) = root_id {
            query.push("rootCategoryId", root_id.to_string());
        }
        if let Some(depth) = depth {
            query.push("depth", depth.to_string());
        }
        let call = Call::get(scope.clone(), Route::new().lit("categories")).with_query(query);
        decode::one(&self.send(&call).await?)
    }

    pub async fn category(
        &self,
        scope: &StoreScope,
        id: i64,
    ) -> Result<Parsed<Category>, MagentoError> {
        let route = Route::new().lit("categories").value(&id.to_string());
        decode::one(&self.send(&Call::get(scope.clone(), route)).await?)
    }

    /// One page of `GET /V1/categories/list?searchCriteria…`.
    pub async fn search_categories(
        &self,
        scope: &StoreScope,
        criteria: &SearchCriteria,
    ) -> Result<SearchPage<Category>, MagentoError> {
        self.search_page(scope, Route::new().lit("categories/list"), criteria)
            .await
    }

    async fn search_page<T: crate::models::FromMagento>(
        &self,
        scope: &StoreScope,
        route: Route,
        criteria: &SearchCriteria,
    ) -> Result<SearchPage<T>, MagentoError> {
        criteria
            .validate()
            .map_err(|error| MagentoError::InvalidRequest(error.to_string()))?;
        let call = Call::get(scope.clone(), route).with_query(criteria.to_query_pairs());
        decode::page(&self.send(&call).await?, criteria.current_page.unwrap_or(1))
    }
}
