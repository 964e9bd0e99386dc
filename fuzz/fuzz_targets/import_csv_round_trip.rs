//! Any text in any content field comes back cell for cell when the import CSV is read by an
//! independent CSV reader, in the default row and in a store view's row.

#![no_main]

use libfuzzer_sys::fuzz_target;
use magento::import::{COLUMNS, EMPTY_VALUE, ProductContent, Writer};

const FIELDS: [(&str, &str); 4] = [
    ("name", "name"),
    ("description", "description"),
    ("meta_title", "meta_title"),
    ("meta_keyword", "meta_keywords"),
];

fuzz_target!(|data: &[u8]| {
    // The input is split on 0xFF (never part of UTF-8) into the values.
    let mut parts = data
        .split(|b| *b == 0xFF)
        .map(|p| String::from_utf8_lossy(p).into_owned());
    let sku = parts.next().unwrap_or_default();
    let values: Vec<String> = (0..FIELDS.len())
        .map(|_| parts.next().unwrap_or_default())
        .collect();
    let view_name = parts.next();
    if sku.is_empty() || values.iter().chain(&view_name).any(|v| v == EMPTY_VALUE) {
        return;
    }
    let mut default = ProductContent::default();
    for ((field, _), value) in FIELDS.iter().zip(&values) {
        default.fields.insert(field.to_string(), value.clone());
    }
    let mut views = Vec::new();
    if let Some(name) = &view_name {
        let mut view = ProductContent::default();
        view.fields.insert("name".into(), name.clone());
        views.push(("fr".to_string(), view));
    }
    let mut writer = Writer::new(Vec::new()).unwrap();
    writer.product(&sku, &default, &views).unwrap();
    let bytes = writer.finish().unwrap();

    let rows: Vec<csv::StringRecord> = csv::ReaderBuilder::new()
        .has_headers(false)
        .from_reader(bytes.as_slice())
        .records()
        .map(|r| r.expect("the writer's CSV reads back"))
        .collect();
    assert_eq!(rows.len(), 2 + views.len());
    let column = |name: &str| COLUMNS.iter().position(|c| *c == name).unwrap();
    assert_eq!(&rows[1][column("sku")], sku);
    for ((_, column_name), value) in FIELDS.iter().zip(&values) {
        assert_eq!(&rows[1][column(column_name)], value.as_str());
    }
    if let Some(name) = view_name {
        let expected = if name.is_empty() { EMPTY_VALUE.to_string() } else { name };
        assert_eq!(&rows[2][column("store_view_code")], "fr");
        assert_eq!(&rows[2][column("name")], expected.as_str());
    }
});
