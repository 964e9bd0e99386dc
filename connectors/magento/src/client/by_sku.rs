//! Many products of one scope in one request: `GET /V1/products` with a `sku in (…)` filter.
//!
//! Magento renders `in` as SQL `IN(…)` after splitting a string value at every comma, with no
//! escape and no trimming (`lib/internal/Magento/Framework/DB/Adapter/Pdo/Mysql.php`,
//! `prepareSqlCondition`: `if (($key == 'in' || $key == 'nin') && is_string($value)) $value =
//! explode(',', $value);`, reached from `Framework/Api/SearchCriteria/CollectionProcessor/
//! FilterProcessor.php` through the collection's `addFieldToFilter`). A SKU with a comma
//! therefore cannot travel in a list: it is read alone ([`MagentoClient::get_product`], whose
//! `sku eq` search needs no splitting). Spaces, slashes and every other character travel as
//! they are, percent-encoded in the query. MySQL compares SKUs case-insensitively, so an item
//! is matched to the SKU asked for exactly first, then ignoring case, as a path read would.

use std::collections::HashMap;

use super::{Call, MagentoClient, decode};
use crate::error::MagentoError;
use crate::models::{Parsed, Product};
use crate::oauth::percent::rawurlencode;
use crate::scope::{Route, StoreScope};
use crate::search::{Filter, SearchCriteria};

/// SKUs in one list: within the page size every Magento version accepts (300 when the input
/// limits are on).
pub const MAX_SKUS_PER_LIST: usize = 100;
/// The list's encoded length: the request line must stay well inside the 8 KiB a web server
/// in front of Magento accepts by default (nginx `large_client_header_buffers`).
pub const MAX_LIST_BYTES: usize = 4000;

/// Whether `sku` can be one value of an `in` list (Magento splits the list at every comma).
pub fn travels_in_list(sku: &str) -> bool {
    !sku.is_empty() && !sku.contains(',')
}

/// SKUs split into lists that each fit one request, and those that must be read alone, both in
/// the order given.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct SkuLists<'a> {
    pub lists: Vec<Vec<&'a str>>,
    pub alone: Vec<&'a str>,
}

pub fn sku_lists<'a>(skus: impl IntoIterator<Item = &'a str>) -> SkuLists<'a> {
    let mut out = SkuLists::default();
    let mut list: Vec<&str> = Vec::new();
    let mut bytes = 0;
    for sku in skus {
        if !travels_in_list(sku) {
            out.alone.push(sku);
            continue;
        }
        // The comma between values is encoded too (`%2C`).
        let cost = rawurlencode(sku).len() + 3;
        if !list.is_empty() && (list.len() == MAX_SKUS_PER_LIST || bytes + cost > MAX_LIST_BYTES) {
            out.lists.push(std::mem::take(&mut list));
            bytes = 0;
        }
        list.push(sku);
        bytes += cost;
    }
    if !list.is_empty() {
        out.lists.push(list);
    }
    out
}

impl MagentoClient {
    /// The call behind [`MagentoClient::get_products_by_sku`].
    pub fn products_by_sku_call(scope: &StoreScope, skus: &[&str]) -> Result<Call, MagentoError> {
        if let Some(sku) = skus.iter().find(|sku| !travels_in_list(sku)) {
            return Err(MagentoError::InvalidRequest(format!(
                "SKU {sku:?} cannot be part of an `in` list"
            )));
        }
        let size = u32::try_from(skus.len().max(1))
            .map_err(|_| MagentoError::InvalidRequest("too many SKUs for one list".into()))?;
        let criteria = SearchCriteria::new()
            .any_of([Filter::in_list("sku", skus.iter().copied())])
            .page_size(size)
            .current_page(1);
        Ok(Call::get(scope.clone(), Route::new().lit("products"))
            .with_query(criteria.to_query_pairs()))
    }

    /// The products of `scope` whose SKUs are `skus` (each one that travels in a list; see
    /// [`sku_lists`]), in one request; a SKU the store does not have is absent from the map.
    pub async fn get_products_by_sku(
        &self,
        scope: &StoreScope,
        skus: &[&str],
    ) -> Result<HashMap<String, Parsed<Product>>, MagentoError> {
        if skus.is_empty() {
            return Ok(HashMap::new());
        }
        let body = self.send(&Self::products_by_sku_call(scope, skus)?).await?;
        let page = decode::page::<Product>(&body, 1)?;
        Ok(match_skus(page.items, skus))
    }
}

/// Each SKU asked for with the item that is it: the exact match, else the one equal ignoring
/// case (MySQL's collation found it).
fn match_skus(items: Vec<Parsed<Product>>, skus: &[&str]) -> HashMap<String, Parsed<Product>> {
    let mut by_sku: HashMap<String, Parsed<Product>> = HashMap::new();
    let mut by_lower: HashMap<String, String> = HashMap::new();
    for item in items {
        let Some(sku) = item.value.sku.clone() else {
            continue;
        };
        by_lower.entry(sku.to_lowercase()).or_insert(sku.clone());
        by_sku.insert(sku, item);
    }
    let mut out = HashMap::new();
    for &wanted in skus {
        let found = if by_sku.contains_key(wanted) {
            Some(wanted.to_string())
        } else {
            by_lower.get(&wanted.to_lowercase()).cloned()
        };
        if let Some(item) = found.and_then(|sku| by_sku.get(&sku)) {
            out.insert(wanted.to_string(), item.clone());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::ProductPage;

    #[test]
    fn commas_cannot_travel_in_a_list_anything_else_can() {
        assert!(travels_in_list("A/B C+D%"));
        assert!(!travels_in_list("A,B"));
        assert!(!travels_in_list(""));
        let lists = sku_lists(["A", "B,C", "D E", "F/G"]);
        assert_eq!(lists.lists, vec![vec!["A", "D E", "F/G"]]);
        assert_eq!(lists.alone, vec!["B,C"]);
    }

    #[test]
    fn lists_stay_within_count_and_length() {
        let many: Vec<String> = (0..250).map(|i| format!("S{i}")).collect();
        let lists = sku_lists(many.iter().map(String::as_str));
        assert_eq!(
            lists.lists.iter().map(Vec::len).collect::<Vec<_>>(),
            [100, 100, 50]
        );
        let long: Vec<String> = (0..80).map(|i| format!("{i:0>60}")).collect();
        let lists = sku_lists(long.iter().map(String::as_str));
        assert!(lists.lists.len() > 1);
        for list in &lists.lists {
            let encoded = rawurlencode(list.join(","));
            assert!(encoded.len() <= MAX_LIST_BYTES, "{}", encoded.len());
        }
    }

    #[test]
    fn the_call_is_one_comma_joined_in_filter_as_large_as_the_list() {
        let call =
            MagentoClient::products_by_sku_call(&StoreScope::All, &["A 1", "B/2"]).expect("a call");
        let query = call.path_and_query();
        assert!(query.starts_with("rest/all/V1/products?"), "{query}");
        assert!(query.contains("%5Bvalue%5D=A%201%2CB%2F2&"), "{query}");
        assert!(query.contains("%5Bcondition_type%5D=in&"), "{query}");
        assert!(query.contains("pageSize%5D=2&"), "{query}");
        assert!(MagentoClient::products_by_sku_call(&StoreScope::All, &["A,B"]).is_err());
    }

    #[test]
    fn items_match_exactly_first_then_ignoring_case() {
        let body = br#"{"items":[{"sku":"a-1","name":"lower"},{"sku":"B-2"},{"sku":"A-1","name":"upper"}],"total_count":3}"#;
        let page = ProductPage::parse(body, 1).expect("page");
        let found = match_skus(page.items, &["A-1", "b-2", "C-3"]);
        assert_eq!(found["A-1"].value.name.as_deref(), Some("upper"));
        assert_eq!(found["b-2"].value.sku.as_deref(), Some("B-2"));
        assert!(!found.contains_key("C-3"));
    }
}
