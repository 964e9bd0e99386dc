//! Product media gallery endpoints (REFERENCE §3). The SKU travels in the
//! path here (there is no filter alternative), fully percent-encoded and
//! signed the way Magento normalises it.

use reqwest::Method;
use serde_json::{Value, json};
use tracing::instrument;

use super::{Call, MagentoClient, decode};
use crate::error::MagentoError;
use crate::models::{MediaGalleryEntry, Parsed};
use crate::scope::{Route, StoreScope};

fn media_route(sku: &str) -> Route {
    Route::new().lit("products").value(sku).lit("media")
}

impl MagentoClient {
    /// All gallery entries of a product, with the labels of `scope`.
    #[instrument(skip(self), fields(store = %scope))]
    pub async fn list_media(
        &self,
        scope: &StoreScope,
        sku: &str,
    ) -> Result<Vec<Parsed<MediaGalleryEntry>>, MagentoError> {
        let body = self
            .send(&Call::get(scope.clone(), media_route(sku)))
            .await?;
        decode::list(&body)
    }

    #[instrument(skip(self), fields(store = %scope))]
    pub async fn get_media(
        &self,
        scope: &StoreScope,
        sku: &str,
        entry_id: i64,
    ) -> Result<Parsed<MediaGalleryEntry>, MagentoError> {
        let route = media_route(sku).value(&entry_id.to_string());
        let body = self.send(&Call::get(scope.clone(), route)).await?;
        decode::one(&body)
    }

    /// Uploads a new entry and returns its id. Not retried after the request
    /// may have reached the store: a repeat would add the image twice.
    #[instrument(skip(self, entry), fields(store = %scope))]
    pub async fn create_media(
        &self,
        scope: &StoreScope,
        sku: &str,
        entry: &MediaGalleryEntry,
    ) -> Result<i64, MagentoError> {
        let call = Self::media_create_call(scope, sku, entry)?;
        let body = self.send(&call).await?;
        // Documented answers show both `"3418"` and `3434`.
        match decode::json(&body)? {
            Value::Number(number) => number.as_i64(),
            Value::String(text) => text.trim().parse().ok(),
            _ => None,
        }
        .ok_or_else(|| {
            MagentoError::InvalidResponse("media create did not return an entry id".to_owned())
        })
    }

    pub fn media_create_call(
        scope: &StoreScope,
        sku: &str,
        entry: &MediaGalleryEntry,
    ) -> Result<Call, MagentoError> {
        let entry = serde_json::to_value(entry).map_err(|error| {
            MagentoError::InvalidRequest(format!("entry does not serialise: {error}"))
        })?;
        Ok(Call::new(Method::POST, scope.clone(), media_route(sku))
            .with_body(json!({ "entry": entry })))
    }

    /// Updates metadata (and the file when `content` is set). Magento
    /// matches on the body's `id`, so it is set from `entry_id`. `file` is
    /// never sent: 2.3's `GalleryManagement::update`
    /// (`app/code/Magento/Catalog/Model/Product/Gallery/GalleryManagement.php`)
    /// drops the id of an entry that has one, and the save turns it into a new
    /// gallery entry (magento/magento2#27147).
    #[instrument(skip(self, entry), fields(store = %scope))]
    pub async fn update_media(
        &self,
        scope: &StoreScope,
        sku: &str,
        entry_id: i64,
        entry: &MediaGalleryEntry,
    ) -> Result<bool, MagentoError> {
        let call = Self::media_update_call(scope, sku, entry_id, entry)?;
        let body = self.send(&call).await?;
        decode::typed(&body, "true or false")
    }

    pub fn media_update_call(
        scope: &StoreScope,
        sku: &str,
        entry_id: i64,
        entry: &MediaGalleryEntry,
    ) -> Result<Call, MagentoError> {
        let mut entry = entry.clone();
        entry.id = Some(entry_id);
        entry.file = None;
        let entry = serde_json::to_value(&entry).map_err(|error| {
            MagentoError::InvalidRequest(format!("entry does not serialise: {error}"))
        })?;
        let route = media_route(sku).value(&entry_id.to_string());
        Ok(Call::new(Method::PUT, scope.clone(), route).with_body(json!({ "entry": entry })))
    }

    /// Deletes an entry in every store view. A repeat after a lost answer
    /// yields `NotFound`, which callers may treat as done.
    #[instrument(skip(self), fields(store = %scope))]
    pub async fn delete_media(
        &self,
        scope: &StoreScope,
        sku: &str,
        entry_id: i64,
    ) -> Result<bool, MagentoError> {
        let route = media_route(sku).value(&entry_id.to_string());
        let body = self
            .send(&Call::new(Method::DELETE, scope.clone(), route))
            .await?;
        decode::typed(&body, "true or false")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn media_calls_encode_the_sku_and_carry_the_id() {
        let scope = StoreScope::parse("de").expect("valid");
        let entry = MediaGalleryEntry {
            label: Some("Alt".to_owned()),
            file: Some("/a/b/alt.jpg".to_owned()),
            ..MediaGalleryEntry::default()
        };
        let call = MagentoClient::media_update_call(&scope, "A/B 1", 17, &entry).expect("call");
        assert_eq!(
            call.to_string(),
            "PUT rest/de/V1/products/A%2FB%201/media/17"
        );
        assert_eq!(
            call.body,
            Some(json!({"entry": {"id": 17, "label": "Alt"}})),
            "an update never carries `file`"
        );
        let call = MagentoClient::media_create_call(&scope, "A", &entry).expect("call");
        assert!(!call.idempotent);
    }
}
