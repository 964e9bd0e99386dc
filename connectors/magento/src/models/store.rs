//! Store structure (REFERENCE §4): websites → store groups → store views.

use super::lenient::magento_model;

magento_model! {
    /// `GET /V1/store/storeViews` (includes the admin store, id 0).
    pub struct StoreView {
        id: i64 => int,
        code: String => string,
        name: String => string,
        website_id: i64 => int,
        store_group_id: i64 => int,
        is_active: bool => bool,
    }
}

magento_model! {
    /// `GET /V1/store/storeGroups`.
    pub struct StoreGroup {
        id: i64 => int,
        website_id: i64 => int,
        root_category_id: i64 => int,
        default_store_id: i64 => int,
        name: String => string,
        code: String => string,
    }
}

magento_model! {
    /// `GET /V1/store/websites` (includes the admin website, id 0).
    pub struct Website {
        id: i64 => int,
        code: String => string,
        name: String => string,
        default_group_id: i64 => int,
    }
}

magento_model! {
    /// `GET /V1/store/storeConfigs`: locale, currency and URLs per store view
    /// (the admin store is not listed).
    pub struct StoreConfig {
        id: i64 => int,
        code: String => string,
        website_id: i64 => int,
        locale: String => string,
        base_currency_code: String => string,
        default_display_currency_code: String => string,
        timezone: String => string,
        weight_unit: String => string,
        base_url: String => string,
        base_link_url: String => string,
        base_static_url: String => string,
        /// Image URL = `base_media_url` + `catalog/product` + entry `file`.
        base_media_url: String => string,
        secure_base_url: String => string,
        secure_base_link_url: String => string,
        secure_base_static_url: String => string,
        secure_base_media_url: String => string,
    }
}

impl StoreView {
    /// The admin pseudo-store (id 0, code `admin`) is not a store view a
    /// customer sees.
    pub fn is_admin(&self) -> bool {
        self.id == Some(0)
    }
}

impl StoreConfig {
    /// The public URL of a gallery file such as `/r/e/red-tee.jpg`.
    pub fn product_image_url(&self, file: &str) -> Option<String> {
        let base = self
            .secure_base_media_url
            .as_deref()
            .or(self.base_media_url.as_deref())?;
        let separator = if base.ends_with('/') { "" } else { "/" };
        Some(format!(
            "{base}{separator}catalog/product/{}",
            file.trim_start_matches('/')
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::FromMagento;
    use serde_json::json;

    #[test]
    fn reads_store_views_with_integer_flags() {
        let parsed = StoreView::from_value(
            json!({"id":1,"code":"default","name":"Default Store View","website_id":1,"store_group_id":1,"is_active":1}),
        );
        assert!(parsed.is_clean());
        assert_eq!(parsed.value.is_active, Some(true));
        assert!(!parsed.value.is_admin());
    }

    #[test]
    fn builds_image_urls() {
        let config = StoreConfig::from_value(json!({"base_media_url":"http://shop/media/","secure_base_media_url":"https://shop/media/"})).value;
        assert_eq!(
            config.product_image_url("/r/e/red-tee.jpg").as_deref(),
            Some("https://shop/media/catalog/product/r/e/red-tee.jpg")
        );
    }
}
