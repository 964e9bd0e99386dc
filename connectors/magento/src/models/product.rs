//! `ProductInterface` (REFERENCE §2.2) and its parts.

use chrono::{DateTime, NaiveDateTime, Utc};
use serde::Serialize;
use serde_json::{Map, Value};

use super::lenient::{Fields, FromMagento, lenient_deserialize};
use super::media::MediaGalleryEntry;

/// A catalog product as the REST API shows it. Every field is optional
/// because list answers, store scopes and plugins all omit different ones.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Product {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sku: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attribute_set_id: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub price: Option<f64>,
    /// 1 enabled, 2 disabled.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<i64>,
    /// 1 not visible, 2 catalog, 3 search, 4 catalog + search.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub visibility: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub type_id: Option<String>,
    /// `YYYY-MM-DD HH:MM:SS` in UTC, kept verbatim; see [`Product::updated_at_utc`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub created_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub updated_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub weight: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub extension_attributes: Option<ProductExtensionAttributes>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub product_links: Option<Vec<ProductLink>>,
    /// Custom options, kept as Magento sends them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub options: Option<Vec<Value>>,
    /// `None` (omitted) leaves images alone on save; `Some(vec![])` deletes
    /// them all (REFERENCE §2.4).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub media_gallery_entries: Option<Vec<MediaGalleryEntry>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tier_prices: Option<Vec<TierPrice>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub custom_attributes: Option<Vec<CustomAttribute>>,
    /// Unknown fields and values that did not fit their type.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl FromMagento for Product {
    fn from_fields(fields: &mut Fields<'_>) -> Self {
        Product {
            id: fields.int("id"),
            sku: fields.string("sku"),
            name: fields.string("name"),
            attribute_set_id: fields.int("attribute_set_id"),
            price: fields.float("price"),
            status: fields.int("status"),
            visibility: fields.int("visibility"),
            type_id: fields.string("type_id"),
            created_at: fields.string("created_at"),
            updated_at: fields.string("updated_at"),
            weight: fields.float("weight"),
            extension_attributes: fields.object("extension_attributes"),
            product_links: fields.list("product_links"),
            options: fields.raw_list("options"),
            media_gallery_entries: fields.list("media_gallery_entries"),
            tier_prices: fields.list("tier_prices"),
            custom_attributes: fields.list("custom_attributes"),
            extra: fields.rest(),
        }
    }
}

impl Product {
    /// The value of a custom attribute (`description`, `url_key`…).
    pub fn custom_attribute(&self, code: &str) -> Option<&AttributeValue> {
        self.custom_attributes
            .as_ref()?
            .iter()
            .find(|attribute| attribute.attribute_code == code)
            .map(|attribute| &attribute.value)
    }

    /// A custom attribute as text, when it is text (or a number).
    pub fn custom_text(&self, code: &str) -> Option<String> {
        self.custom_attribute(code)
            .and_then(AttributeValue::as_text)
    }

    /// Sets or replaces a custom attribute.
    pub fn set_custom_attribute(&mut self, code: &str, value: AttributeValue) {
        let attributes = self.custom_attributes.get_or_insert_with(Vec::new);
        match attributes
            .iter_mut()
            .find(|attribute| attribute.attribute_code == code)
        {
            Some(existing) => existing.value = value,
            None => attributes.push(CustomAttribute::new(code, value)),
        }
    }

    /// `updated_at` as UTC (Magento stores it in UTC without a zone).
    pub fn updated_at_utc(&self) -> Option<DateTime<Utc>> {
        self.updated_at.as_deref().and_then(parse_magento_datetime)
    }

    pub fn created_at_utc(&self) -> Option<DateTime<Utc>> {
        self.created_at.as_deref().and_then(parse_magento_datetime)
    }

    pub fn is_enabled(&self) -> Option<bool> {
        self.status.map(|status| status == 1)
    }
}

/// `YYYY-MM-DD HH:MM:SS` (UTC) as Magento writes dates.
pub fn parse_magento_datetime(text: &str) -> Option<DateTime<Utc>> {
    NaiveDateTime::parse_from_str(text.trim(), "%Y-%m-%d %H:%M:%S")
        .ok()
        .map(|naive| naive.and_utc())
}

/// One entry of `custom_attributes`.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct CustomAttribute {
    pub attribute_code: String,
    pub value: AttributeValue,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl CustomAttribute {
    pub fn new(attribute_code: impl Into<String>, value: impl Into<AttributeValue>) -> Self {
        CustomAttribute {
            attribute_code: attribute_code.into(),
            value: value.into(),
            extra: Map::new(),
        }
    }
}

impl FromMagento for CustomAttribute {
    /// Without a code the value means nothing.
    fn accepts(object: &Map<String, Value>) -> bool {
        matches!(
            object.get("attribute_code"),
            Some(Value::String(_) | Value::Number(_))
        )
    }

    fn from_fields(fields: &mut Fields<'_>) -> Self {
        let attribute_code = fields.string("attribute_code").unwrap_or_default();
        let value = match fields.raw("value") {
            None => AttributeValue::Other(Value::Null),
            Some(Value::String(text)) => AttributeValue::Text(text),
            Some(Value::Array(items))
                if items
                    .iter()
                    .all(|item| item.is_string() || item.is_number()) =>
            {
                AttributeValue::List(
                    items
                        .into_iter()
                        .map(|item| match item {
                            Value::String(text) => text,
                            other => other.to_string(),
                        })
                        .collect(),
                )
            }
            Some(other) => AttributeValue::Other(other),
        };
        CustomAttribute {
            attribute_code,
            value,
            extra: fields.rest(),
        }
    }
}

/// Custom attribute values: mostly strings (select = option id, multiselect =
/// comma-separated ids), lists for `category_ids`, anything for plugins.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum AttributeValue {
    Text(String),
    List(Vec<String>),
    /// Numbers, booleans, null, objects: kept exactly.
    Other(Value),
}

impl Default for AttributeValue {
    fn default() -> Self {
        AttributeValue::Other(Value::Null)
    }
}

impl AttributeValue {
    pub fn as_text(&self) -> Option<String> {
        match self {
            AttributeValue::Text(text) => Some(text.clone()),
            AttributeValue::Other(Value::Number(number)) => Some(number.to_string()),
            _ => None,
        }
    }

    /// A list, or a comma-separated text split (multiselect values).
    pub fn as_list(&self) -> Vec<String> {
        match self {
            AttributeValue::List(items) => items.clone(),
            AttributeValue::Text(text) if !text.is_empty() => {
                text.split(',').map(|part| part.trim().to_owned()).collect()
            }
            _ => Vec::new(),
        }
    }
}

impl From<&str> for AttributeValue {
    fn from(text: &str) -> Self {
        AttributeValue::Text(text.to_owned())
    }
}

impl From<String> for AttributeValue {
    fn from(text: String) -> Self {
        AttributeValue::Text(text)
    }
}

/// `extension_attributes` of a product.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ProductExtensionAttributes {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub website_ids: Option<Vec<i64>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub category_links: Option<Vec<CategoryLink>>,
    /// Only on single-product loads (REFERENCE §2.1).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stock_item: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub configurable_product_options: Option<Vec<ConfigurableProductOption>>,
    /// Child product ids.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub configurable_product_links: Option<Vec<i64>>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl FromMagento for ProductExtensionAttributes {
    fn from_fields(fields: &mut Fields<'_>) -> Self {
        ProductExtensionAttributes {
            website_ids: fields.int_list("website_ids"),
            category_links: fields.list("category_links"),
            stock_item: fields.raw("stock_item"),
            configurable_product_options: fields.list("configurable_product_options"),
            configurable_product_links: fields.int_list("configurable_product_links"),
            extra: fields.rest(),
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct CategoryLink {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub position: Option<i64>,
    /// A string in Magento's answers.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub category_id: Option<String>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl FromMagento for CategoryLink {
    fn from_fields(fields: &mut Fields<'_>) -> Self {
        CategoryLink {
            position: fields.int("position"),
            category_id: fields.string("category_id"),
            extra: fields.rest(),
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ConfigurableProductOption {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attribute_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub position: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub values: Option<Vec<ConfigurableOptionValue>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub product_id: Option<i64>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl FromMagento for ConfigurableProductOption {
    fn from_fields(fields: &mut Fields<'_>) -> Self {
        ConfigurableProductOption {
            id: fields.int("id"),
            attribute_id: fields.string("attribute_id"),
            label: fields.string("label"),
            position: fields.int("position"),
            values: fields.list("values"),
            product_id: fields.int("product_id"),
            extra: fields.rest(),
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ConfigurableOptionValue {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value_index: Option<i64>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl FromMagento for ConfigurableOptionValue {
    fn from_fields(fields: &mut Fields<'_>) -> Self {
        ConfigurableOptionValue {
            value_index: fields.int("value_index"),
            extra: fields.rest(),
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct TierPrice {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub customer_group_id: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub qty: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<f64>,
    /// `percentage_value`, `website_id`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub extension_attributes: Option<Value>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl FromMagento for TierPrice {
    fn from_fields(fields: &mut Fields<'_>) -> Self {
        TierPrice {
            customer_group_id: fields.int("customer_group_id"),
            qty: fields.float("qty"),
            value: fields.float("value"),
            extension_attributes: fields.raw("extension_attributes"),
            extra: fields.rest(),
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ProductLink {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sku: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub link_type: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub linked_product_sku: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub linked_product_type: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub position: Option<i64>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl FromMagento for ProductLink {
    fn from_fields(fields: &mut Fields<'_>) -> Self {
        ProductLink {
            sku: fields.string("sku"),
            link_type: fields.string("link_type"),
            linked_product_sku: fields.string("linked_product_sku"),
            linked_product_type: fields.string("linked_product_type"),
            position: fields.int("position"),
            extra: fields.rest(),
        }
    }
}

lenient_deserialize!(
    Product,
    CustomAttribute,
    ProductExtensionAttributes,
    CategoryLink,
    ConfigurableProductOption,
    ConfigurableOptionValue,
    TierPrice,
    ProductLink,
);

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn reference_product() -> Value {
        json!({"id":42,"sku":"TS-RED-M","name":"Red tee M","attribute_set_id":4,"price":19.9,"status":1,"visibility":4,
         "type_id":"simple","created_at":"2024-03-01 09:15:00","updated_at":"2024-05-02 12:00:07","weight":0.3,
         "extension_attributes":{"website_ids":[1],"category_links":[{"position":0,"category_id":"5"}],
           "configurable_product_options":[],"configurable_product_links":[]},
         "product_links":[],"options":[],
         "media_gallery_entries":[{"id":17,"media_type":"image","label":null,"position":1,"disabled":false,
           "types":["image","small_image","thumbnail"],"file":"/r/e/red-tee.jpg"}],
         "tier_prices":[],
         "custom_attributes":[{"attribute_code":"url_key","value":"red-tee-m"},
           {"attribute_code":"category_ids","value":["5"]},{"attribute_code":"tax_class_id","value":"2"}]})
    }

    #[test]
    fn reads_the_reference_product_cleanly() {
        let parsed = Product::from_value(reference_product());
        assert!(parsed.is_clean(), "{:?}", parsed.warnings);
        let product = parsed.value;
        assert_eq!(product.sku.as_deref(), Some("TS-RED-M"));
        assert_eq!(product.custom_text("url_key").as_deref(), Some("red-tee-m"));
        assert_eq!(
            product
                .custom_attribute("category_ids")
                .map(AttributeValue::as_list),
            Some(vec!["5".to_owned()])
        );
        let media = product.media_gallery_entries.as_deref().unwrap_or_default();
        assert_eq!(media[0].id, Some(17));
        assert_eq!(
            product
                .updated_at_utc()
                .map(|at| at.to_rfc3339())
                .as_deref(),
            Some("2024-05-02T12:00:07+00:00")
        );
        assert_eq!(product.is_enabled(), Some(true));
    }

    #[test]
    fn round_trips_unknown_fields() {
        let mut input = reference_product();
        input["x_plugin"] = json!({"deep": [1, 2]});
        input["extension_attributes"]["bundle_product_options"] = json!([{"option_id": 1}]);
        let product = Product::from_value(input.clone()).value;
        let output = serde_json::to_value(&product).expect("serialises");
        assert_eq!(output["x_plugin"], input["x_plugin"]);
        assert_eq!(
            output["extension_attributes"]["bundle_product_options"],
            input["extension_attributes"]["bundle_product_options"]
        );
        // Known fields come back equal too (the null label is omitted).
        assert_eq!(output["custom_attributes"], input["custom_attributes"]);
        assert_eq!(
            output["media_gallery_entries"][0]["file"],
            "/r/e/red-tee.jpg"
        );
    }

    #[test]
    fn odd_values_warn_but_keep_the_product() {
        let parsed = Product::from_value(json!({
            "sku": "X", "name": ["Red", "tee"], "price": "n/a", "status": "1",
            "media_gallery_entries": [{"id": "17", "types": "image"}, "garbage"],
            "custom_attributes": {"0": {"attribute_code": "description", "value": "<p>x</p>"}}
        }));
        let product = &parsed.value;
        assert_eq!(product.sku.as_deref(), Some("X"));
        assert_eq!(product.status, Some(1));
        assert_eq!(product.name, None);
        assert_eq!(product.extra.get("name"), Some(&json!(["Red", "tee"])));
        assert_eq!(
            product.custom_text("description").as_deref(),
            Some("<p>x</p>")
        );
        // One bad entry keeps the whole gallery raw: writing back a shorter
        // list would delete images.
        assert_eq!(product.media_gallery_entries, None);
        assert_eq!(
            product.extra.get("media_gallery_entries"),
            Some(&json!([{"id": "17", "types": "image"}, "garbage"]))
        );
        let paths: Vec<&str> = parsed.warnings.iter().map(|w| w.path.as_str()).collect();
        assert_eq!(paths, vec!["name", "price", "media_gallery_entries[1]"]);
    }

    #[test]
    fn set_custom_attribute_replaces_in_place() {
        let mut product = Product::default();
        product.set_custom_attribute("description", "a".into());
        product.set_custom_attribute("description", "b".into());
        assert_eq!(product.custom_attributes.as_ref().map(Vec::len), Some(1));
        assert_eq!(product.custom_text("description").as_deref(), Some("b"));
    }
}
