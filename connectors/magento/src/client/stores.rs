//! Store structure endpoints (REFERENCE §4). They are global, so they go
//! to `/rest/V1/…`.

use super::{Call, MagentoClient, decode};
use crate::error::MagentoError;
use crate::models::{Parsed, StoreConfig, StoreGroup, StoreView, Website};
use crate::query::QueryPairs;
use crate::scope::{Route, StoreScope};

impl MagentoClient {
    /// All store views, the admin store (id 0) included.
    pub async fn store_views(&self) -> Result<Vec<Parsed<StoreView>>, MagentoError> {
        let call = Call::get(
            StoreScope::DefaultStoreView,
            Route::new().lit("store/storeViews"),
        );
        decode::list(&self.send(&call).await?)
    }

    pub async fn store_groups(&self) -> Result<Vec<Parsed<StoreGroup>>, MagentoError> {
        let call = Call::get(
            StoreScope::DefaultStoreView,
            Route::new().lit("store/storeGroups"),
        );
        decode::list(&self.send(&call).await?)
    }

    /// All websites, the admin website (id 0) included.
    pub async fn websites(&self) -> Result<Vec<Parsed<Website>>, MagentoError> {
        let call = Call::get(
            StoreScope::DefaultStoreView,
            Route::new().lit("store/websites"),
        );
        decode::list(&self.send(&call).await?)
    }

    /// Store configs for the given store codes (all store views when empty).
    pub async fn store_configs(
        &self,
        store_codes: &[&str],
    ) -> Result<Vec<Parsed<StoreConfig>>, MagentoError> {
        decode::list(&self.send(&Self::store_configs_call(store_codes)).await?)
    }

    pub fn store_configs_call(store_codes: &[&str]) -> Call {
        let mut query = QueryPairs::new();
        // Indexed keys: repeated `storeCodes[]` collapse to the last one.
        query.push_indexed("storeCodes", store_codes.iter().copied());
        Call::get(
            StoreScope::DefaultStoreView,
            Route::new().lit("store/storeConfigs"),
        )
        .with_query(query)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_config_codes_are_indexed() {
        assert_eq!(
            MagentoClient::store_configs_call(&["default", "fr"]).to_string(),
            "GET rest/V1/store/storeConfigs?storeCodes%5B0%5D=default&storeCodes%5B1%5D=fr"
        );
        assert_eq!(
            MagentoClient::store_configs_call(&[]).to_string(),
            "GET rest/V1/store/storeConfigs"
        );
    }
}
