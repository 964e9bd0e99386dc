//! Product attributes and the category tree, consistent with the generated catalog
//! (categories 3–12 under "Default Category").

use std::collections::BTreeMap;

use serde_json::{Value, json};

use crate::scopes::AttributeScope;
use crate::search::Criteria;

const NOUN_CATEGORIES: &[&str] = &[
    "Tees",
    "Hoodies",
    "Jackets",
    "Sneakers",
    "Backpacks",
    "Mugs",
    "Lamps",
    "Scarves",
    "Watches",
    "Bottles",
];

/// (code, frontend input, label, scope): a store's attributes as Magento installs them.
const ATTRIBUTES: &[(&str, &str, &str, &str)] = &[
    ("name", "text", "Product Name", "store"),
    ("description", "textarea", "Description", "store"),
    (
        "short_description",
        "textarea",
        "Short Description",
        "store",
    ),
    ("meta_title", "text", "Meta Title", "store"),
    ("meta_keyword", "textarea", "Meta Keywords", "store"),
    ("meta_description", "textarea", "Meta Description", "store"),
    ("url_key", "text", "URL Key", "store"),
    ("category_ids", "categories", "Categories", "global"),
    ("tax_class_id", "select", "Tax Class", "website"),
];

fn options(code: &str) -> Vec<Value> {
    match code {
        "tax_class_id" => vec![
            json!({"label": "None", "value": "0"}),
            json!({"label": "Taxable Goods", "value": "2"}),
        ],
        _ => Vec::new(),
    }
}

/// The scope of `code`: the store's own setting in `scopes` (an admin may change it), else
/// Magento's; attributes the store does not know are store-scoped.
pub fn scope_of(code: &str, scopes: &BTreeMap<String, AttributeScope>) -> AttributeScope {
    scopes.get(code).copied().unwrap_or_else(|| {
        ATTRIBUTES
            .iter()
            .find(|a| a.0 == code)
            .and_then(|a| AttributeScope::parse(a.3))
            .unwrap_or(AttributeScope::Store)
    })
}

/// `GET /V1/products/attributes/{code}`: Magento's attributes, and those `scopes` adds (text
/// attributes a merchant created).
pub fn attribute(code: &str, scopes: &BTreeMap<String, AttributeScope>) -> Option<Value> {
    let (index, (code, input, label)) =
        match ATTRIBUTES.iter().enumerate().find(|(_, a)| a.0 == code) {
            Some((index, a)) => (index, (a.0, a.1, a.2.to_string())),
            None => {
                let index = scopes.keys().position(|c| c == code)?;
                let code = scopes.get_key_value(code)?.0.as_str();
                (
                    ATTRIBUTES.len() + index,
                    (code, "text", code.replace('_', " ")),
                )
            }
        };
    Some(json!({
        "attribute_id": 70 + index,
        "attribute_code": code,
        "frontend_input": input,
        "default_frontend_label": label,
        "frontend_labels": [],
        "is_required": code == "name",
        "is_user_defined": index >= ATTRIBUTES.len(),
        "scope": scope_of(code, scopes).as_str(),
        "options": options(code),
    }))
}

pub fn attribute_options(code: &str, scopes: &BTreeMap<String, AttributeScope>) -> Option<Value> {
    attribute(code, scopes).map(|_| json!(options(code)))
}

/// `GET /V1/products/attributes?searchCriteria…`: the attributes whose `attribute_code`
/// passes the criteria's `eq` / `in` filters (other fields and conditions are not filtered on).
pub fn attribute_list(scopes: &BTreeMap<String, AttributeScope>, criteria: &Criteria) -> Value {
    let passes = |code: &str| {
        criteria.groups.iter().all(|group| {
            group
                .iter()
                .any(|f| match (f.field.as_str(), f.condition.as_str()) {
                    ("attribute_code", "" | "eq") => f.value == code,
                    ("attribute_code", "in") => f.value.split(',').any(|v| v.trim() == code),
                    _ => true,
                })
        })
    };
    let codes = ATTRIBUTES.iter().map(|a| a.0).chain(
        scopes
            .keys()
            .map(String::as_str)
            .filter(|c| !ATTRIBUTES.iter().any(|a| a.0 == *c)),
    );
    let items: Vec<Value> = codes
        .filter(|c| passes(c))
        .filter_map(|c| attribute(c, scopes))
        .collect();
    json!({"items": items, "search_criteria": {"filter_groups": []}, "total_count": items.len()})
}

fn category(id: i64) -> Option<Value> {
    let (parent, name, level) = match id {
        1 => (0, "Root Catalog".to_string(), 0),
        2 => (1, "Default Category".to_string(), 1),
        3..=12 => (2, NOUN_CATEGORIES[(id - 3) as usize].to_string(), 2),
        _ => return None,
    };
    let path = match id {
        1 => "1".to_string(),
        2 => "1/2".to_string(),
        _ => format!("1/2/{id}"),
    };
    Some(
        json!({"id": id, "parent_id": parent, "name": name, "is_active": true, "position": id, "level": level,
                "path": path, "children": children(id).iter().map(i64::to_string).collect::<Vec<_>>().join(","),
                "include_in_menu": true}),
    )
}

fn children(id: i64) -> Vec<i64> {
    match id {
        1 => vec![2],
        2 => (3..=12).collect(),
        _ => Vec::new(),
    }
}

pub fn category_json(id: i64) -> Option<Value> {
    category(id)
}

/// `GET /V1/categories`: the tree from the root.
pub fn tree() -> Value {
    fn node(id: i64) -> Value {
        let mut n = category(id).unwrap_or(Value::Null);
        let kids: Vec<Value> = children(id).into_iter().map(node).collect();
        n["product_count"] = json!(0);
        n["children_data"] = json!(kids);
        n
    }
    node(1)
}

pub fn category_list() -> Value {
    let items: Vec<Value> = (1..=12).filter_map(category).collect();
    json!({"items": items, "search_criteria": {"filter_groups": []}, "total_count": 12})
}
