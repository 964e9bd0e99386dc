//! Odd JSON never panics, never costs a page, and misfits are reported.

use magento::models::{FromMagento, MediaGalleryEntry, StoreConfig};
use magento::{Product, ProductPage};
use proptest::prelude::*;
use serde_json::{Map, Value, json};

/// Any JSON value, nested a few levels.
fn any_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("JSON has no NaN/inf", |f| f.is_finite())
            .prop_map(Value::from),
        "\\PC{0,12}".prop_map(Value::String),
        prop_oneof![
            Just("42"),
            Just("19.90"),
            Just(""),
            Just(" 7 "),
            Just("1e400"),
            Just("0x10")
        ]
        .prop_map(|text| Value::String(text.to_owned())),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map("[a-z_]{1,8}", inner, 0..6)
                .prop_map(|map| Value::Object(map.into_iter().collect())),
        ]
    })
}

const PRODUCT_KEYS: &[&str] = &[
    "id",
    "sku",
    "name",
    "attribute_set_id",
    "price",
    "status",
    "visibility",
    "type_id",
    "created_at",
    "updated_at",
    "weight",
    "extension_attributes",
    "product_links",
    "options",
    "media_gallery_entries",
    "tier_prices",
    "custom_attributes",
];

/// Product-shaped objects: known keys (and some unknown ones) with values
/// of any shape, including plausible nested ones.
fn product_json() -> impl Strategy<Value = Value> {
    let key = prop_oneof![
        4 => prop::sample::select(PRODUCT_KEYS).prop_map(str::to_owned),
        1 => "[a-z_]{1,10}",
    ];
    let nested = prop_oneof![
        any_json(),
        prop::collection::vec(
            prop::collection::btree_map(
                prop::sample::select(
                    &[
                        "id",
                        "file",
                        "types",
                        "label",
                        "disabled",
                        "attribute_code",
                        "value"
                    ][..]
                ),
                any_json(),
                0..5,
            )
            .prop_map(|map| Value::Object(
                map.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()
            )),
            0..4,
        )
        .prop_map(Value::Array),
    ];
    prop::collection::btree_map(key, nested, 0..12)
        .prop_map(|map| Value::Object(map.into_iter().collect()))
}

/// Whether `value` fits the scalar type of `key` without a warning.
fn scalar_fits(key: &str, value: &Value) -> bool {
    match key {
        "sku" | "name" | "type_id" | "created_at" | "updated_at" => {
            matches!(value, Value::Null | Value::String(_) | Value::Number(_))
        }
        _ => true,
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn products_never_panic_and_reparse_to_themselves(input in product_json()) {
        let parsed = Product::from_value(input.clone());
        // What we write back reads as the same product: misfits stay in
        // `extra` and are reported again, nothing is lost or invented.
        let written = serde_json::to_value(&parsed.value).expect("serialises");
        let reparsed = Product::from_value(written);
        prop_assert_eq!(&reparsed.value, &parsed.value);
        prop_assert_eq!(reparsed.warnings.len(), parsed.warnings.len());

        // A string field given an array/object/bool is warned about and kept.
        if let Value::Object(map) = &input {
            for (key, value) in map {
                if !scalar_fits(key, value) {
                    prop_assert!(
                        parsed.warnings.iter().any(|w| w.path == *key),
                        "no warning for {key}: {value}"
                    );
                    prop_assert_eq!(parsed.value.extra.get(key), Some(value));
                }
            }
        }
    }

    #[test]
    fn pages_of_anything_keep_every_item(items in prop::collection::vec(any_json(), 0..8), total in any_json()) {
        let body = serde_json::to_vec(&json!({"items": items.clone(), "total_count": total})).expect("serialises");
        let page = ProductPage::parse(&body, 1).expect("an object page always parses");
        prop_assert_eq!(page.items.len(), items.len());
        for (item, raw) in page.items.iter().zip(&items) {
            if !raw.is_object() {
                prop_assert!(!item.warnings.is_empty());
            }
        }
    }

    #[test]
    fn arbitrary_bytes_are_an_error_not_a_panic(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        let _outcome = ProductPage::parse(&bytes, 1);
    }

    #[test]
    fn other_models_never_panic(input in any_json()) {
        let _entry = MediaGalleryEntry::from_value(input.clone());
        let _config = StoreConfig::from_value(input.clone());
        let _attribute = magento::models::Attribute::from_value(input.clone());
        let _tree = magento::models::CategoryTree::from_value(input.clone());
        let _bulk = magento::models::BulkStatus::from_value(input);
    }
}

#[test]
fn php_empty_arrays_stand_for_empty_objects() {
    let parsed = Product::from_value(
        json!({"sku": "A", "extension_attributes": [], "custom_attributes": {}}),
    );
    assert!(parsed.is_clean(), "{:?}", parsed.warnings);
    assert_eq!(parsed.value.custom_attributes, Some(Vec::new()));
}

#[test]
fn deeply_odd_product_is_still_returned() {
    let mut extra = Map::new();
    extra.insert("weird".to_owned(), json!([[[[{"a": null}]]]]));
    let parsed = Product::from_value(json!({
        "id": "not a number", "sku": 12345, "status": true,
        "extension_attributes": {"website_ids": ["1", "x", 2], "category_links": "5"},
        "tier_prices": [{"qty": "1", "value": "9.5"}],
        "weird": extra["weird"],
    }));
    let product = parsed.value;
    assert_eq!(product.sku.as_deref(), Some("12345"));
    assert_eq!(product.id, None);
    assert_eq!(product.status, None);
    let extension = product.extension_attributes.expect("kept");
    assert_eq!(extension.website_ids, None);
    assert_eq!(
        extension.extra.get("website_ids"),
        Some(&json!(["1", "x", 2]))
    );
    assert_eq!(extension.extra.get("category_links"), Some(&json!("5")));
    assert_eq!(product.tier_prices.expect("kept")[0].value, Some(9.5));
    let paths: Vec<String> = parsed.warnings.into_iter().map(|w| w.path).collect();
    assert_eq!(
        paths,
        vec![
            "id",
            "status",
            "extension_attributes.website_ids[1]",
            "extension_attributes.category_links"
        ]
    );
}
