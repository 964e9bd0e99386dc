//! Where a product save puts each value: Magento's attribute scopes, and the interface
//! attributes a save takes only as the product's own fields.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::catalog::SimProduct;

/// An attribute's scope (`catalog_eav_attribute.is_global`), as
/// `GET /V1/products/attributes/{code}` reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttributeScope {
    /// One value for every store view: a save in a store view writes the default value
    /// (`app/code/Magento/Catalog/Model/ResourceModel/AttributePersistor.php::getScopeValue`
    /// falls back to the default scope for `isScopeGlobal()`).
    Global,
    /// One value per website: a save in a store view writes every store view of its website
    /// (`app/code/Magento/Catalog/Model/ResourceModel/Attribute/ConditionBuilder.php`,
    /// `buildNewAttributesWebsiteScope` / `buildExistingAttributeWebsiteScope`).
    Website,
    /// One value per store view.
    Store,
}

impl AttributeScope {
    pub fn as_str(self) -> &'static str {
        match self {
            AttributeScope::Global => "global",
            AttributeScope::Website => "website",
            AttributeScope::Store => "store",
        }
    }

    pub fn parse(value: &str) -> Option<AttributeScope> {
        match value {
            "global" => Some(AttributeScope::Global),
            "website" => Some(AttributeScope::Website),
            "store" => Some(AttributeScope::Store),
            _ => None,
        }
    }
}

/// `ProductInterface`'s own fields (`$interfaceAttributes` of
/// `app/code/Magento/Catalog/Model/Product.php`). `getCustomAttributesCodes` subtracts them,
/// so `lib/internal/Magento/Framework/Model/AbstractExtensibleModel.php::filterCustomAttributes`
/// drops them from `custom_attributes` without an error: a save carrying
/// `{"attribute_code": "name", …}` changes nothing.
pub const INTERFACE_ATTRIBUTES: &[&str] = &[
    "sku",
    "name",
    "price",
    "weight",
    "status",
    "visibility",
    "attribute_set_id",
    "type_id",
    "created_at",
    "updated_at",
    "media_gallery",
    "tier_price",
];

/// Writes `value` for `code` as a save in `view` (`None`: the default values, `/rest/all`)
/// does under the attribute's `scope`. `website_views` are the store views of `view`'s
/// website. A value equal to what the view shows creates no store-view value; `null`
/// removes the scope's value ("Use Default Value").
pub fn write(
    product: &mut SimProduct,
    view: Option<&str>,
    scope: AttributeScope,
    website_views: &[String],
    code: String,
    value: Value,
) {
    let view = match (view, scope) {
        (None, _) | (Some(_), AttributeScope::Global) => None,
        (Some(v), _) => Some(v),
    };
    let Some(view) = view else {
        set(&mut product.defaults, code, value);
        return;
    };
    let targets: Vec<String> = match scope {
        AttributeScope::Website => website_views.to_vec(),
        _ => vec![view.to_string()],
    };
    if !value.is_null() && product.value(Some(view), &code) == Some(&value) {
        return;
    }
    for target in targets {
        let overrides = product.views.entry(target).or_default();
        set(overrides, code.clone(), value.clone());
    }
}

fn set(values: &mut BTreeMap<String, Value>, code: String, value: Value) {
    if value.is_null() {
        values.remove(&code);
    } else {
        values.insert(code, value);
    }
}
