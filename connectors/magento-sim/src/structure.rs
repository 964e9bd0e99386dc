//! Product attributes and the category tree, consistent with the generated catalog
//! (categories 3–12 under "Default Category").

use serde_json::{Value, json};

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

/// (code, frontend input, label, scope)
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

pub fn attribute(code: &str) -> Option<Value> {
    let (index, (code, input, label, scope)) =
        ATTRIBUTES.iter().enumerate().find(|(_, a)| a.0 == code)?;
    Some(json!({
        "attribute_id": 70 + index,
        "attribute_code": code,
        "frontend_input": input,
        "default_frontend_label": label,
        "frontend_labels": [],
        "is_required": *code == "name",
        "is_user_defined": false,
        "scope": scope,
        "options": options(code),
    }))
}

pub fn attribute_options(code: &str) -> Option<Value> {
    attribute(code).map(|_| json!(options(code)))
}

pub fn attribute_list() -> Value {
    let items: Vec<Value> = ATTRIBUTES.iter().filter_map(|a| attribute(a.0)).collect();
    json!({"items": items, "search_criteria": {"filter_groups": []}, "total_count": ATTRIBUTES.len()})
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
