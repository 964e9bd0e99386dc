//! Product attributes and their options (REFERENCE §4).

use super::lenient::magento_model;

magento_model! {
    /// `GET /V1/products/attributes/{code}`.
    pub struct Attribute {
        attribute_id: i64 => int,
        attribute_code: String => string,
        /// `text`, `textarea`, `select`, `multiselect`, `price`, `media_image`…
        frontend_input: String => string,
        backend_type: String => string,
        is_required: bool => bool,
        is_user_defined: bool => bool,
        /// `global`, `website` or `store`: where a value written through a
        /// store-view URL lands.
        scope: String => string,
        default_frontend_label: String => string,
        frontend_labels: Vec<FrontendLabel> => list,
        options: Vec<AttributeOption> => list,
    }
}

magento_model! {
    /// A label of an attribute for one store view.
    pub struct FrontendLabel {
        store_id: i64 => int,
        label: String => string,
    }
}

magento_model! {
    /// A select/multiselect option: `value` is the option id as a string
    /// (empty for the "no value" entry).
    pub struct AttributeOption {
        label: String => string,
        value: String => string,
        is_default: bool => bool,
        sort_order: i64 => int,
    }
}

impl Attribute {
    /// The option id for a label (case-sensitive, as Magento stores it).
    pub fn option_value(&self, label: &str) -> Option<&str> {
        self.options
            .as_ref()?
            .iter()
            .find(|option| option.label.as_deref() == Some(label))
            .and_then(|option| option.value.as_deref())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::FromMagento;
    use serde_json::json;

    #[test]
    fn option_values_may_be_numbers() {
        let parsed = Attribute::from_value(json!({
            "attribute_code": "color", "scope": "global", "is_required": false,
            "options": [{"label": " ", "value": ""}, {"label": "Red", "value": 5}]
        }));
        assert!(parsed.is_clean(), "{:?}", parsed.warnings);
        assert_eq!(parsed.value.option_value("Red"), Some("5"));
    }
}
