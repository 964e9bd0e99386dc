//! Search-result pages: `{"items": […], "search_criteria": {…}, "total_count": N}`.
//!
//! A page is parsed as raw JSON first and then item by item, so one odd
//! product costs a warning, not the page.

use std::collections::hash_map::DefaultHasher;
use std::fmt;
use std::hash::{Hash, Hasher};

use serde::Deserialize;
use serde::de::{self, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::Value;

use super::lenient::{FromMagento, ParseWarning, Parsed, kind, read_object};
use super::product::Product;
use crate::error::MagentoError;

/// One page of a list endpoint, each item parsed leniently.
#[derive(Debug, Clone, PartialEq)]
pub struct SearchPage<T> {
    pub items: Vec<Parsed<T>>,
    /// `None` when Magento sent no usable `total_count`.
    pub total_count: Option<u64>,
    /// The page that was asked for (1-based).
    pub current_page: u32,
    /// Problems with the page envelope itself (not with items).
    pub warnings: Vec<ParseWarning>,
    fingerprint: u64,
}

/// A page of products.
pub type ProductPage = SearchPage<Product>;

/// What the pager needs to know about any page, typed or raw.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct PageSummary {
    pub total_count: Option<u64>,
    pub item_count: usize,
    /// Hash of the items' ids/SKUs in order: two pages with the same
    /// fingerprint are the same page (2.3 stores repeat the last one).
    pub fingerprint: u64,
}

impl<T: FromMagento> SearchPage<T> {
    /// Parses a page body. Fails only when the body is not a JSON object.
    pub fn parse(body: &[u8], current_page: u32) -> Result<Self, MagentoError> {
        Self::parse_with_summary(body, current_page)
            .map(|(page, _)| page)
            .map_err(MagentoError::InvalidResponse)
    }

    pub(crate) fn parse_with_summary(
        body: &[u8],
        current_page: u32,
    ) -> Result<(Self, PageSummary), String> {
        let value: Value =
            serde_json::from_slice(body).map_err(|error| format!("page is not JSON: {error}"))?;
        let Value::Object(mut envelope) = value else {
            return Err("page is not a JSON object".to_owned());
        };
        let mut warnings = Vec::new();
        let total_count = match envelope.remove("total_count") {
            Some(value) => {
                let total = total_of(&value);
                if total.is_none() {
                    warnings.push(ParseWarning {
                        path: "total_count".to_owned(),
                        message: format!("expected a count, found {}", kind(&value)),
                    });
                }
                total
            }
            None => None,
        };
        let raw_items = match envelope.remove("items") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(items)) => items,
            Some(Value::Object(map)) => map.into_iter().map(|(_, item)| item).collect(),
            Some(other) => {
                warnings.push(ParseWarning {
                    path: "items".to_owned(),
                    message: format!("expected a list, found {}", kind(&other)),
                });
                Vec::new()
            }
        };

        let mut hasher = DefaultHasher::new();
        let mut items = Vec::with_capacity(raw_items.len());
        for (index, raw) in raw_items.into_iter().enumerate() {
            ItemKey::of_value(&raw).hash(&mut hasher);
            let mut item_warnings = Vec::new();
            let value = read_object::<T>(raw, &format!("items[{index}]"), &mut item_warnings)
                .unwrap_or_default();
            items.push(Parsed {
                value,
                warnings: item_warnings,
            });
        }
        let summary = PageSummary {
            total_count,
            item_count: items.len(),
            fingerprint: hasher.finish(),
        };
        Ok((
            SearchPage {
                items,
                total_count,
                current_page,
                warnings,
                fingerprint: summary.fingerprint,
            },
            summary,
        ))
    }

    /// A hash of the items' ids/SKUs in order. Callers paging on their own
    /// should stop when a page has the previous page's fingerprint: 2.3
    /// stores answer pages past the end with the last page again.
    pub fn fingerprint(&self) -> u64 {
        self.fingerprint
    }

    /// Items that parsed without any warning.
    pub fn clean_items(&self) -> impl Iterator<Item = &T> {
        self.items
            .iter()
            .filter(|item| item.is_clean())
            .map(|item| &item.value)
    }
}

fn total_of(value: &Value) -> Option<u64> {
    match value {
        Value::Number(number) => number.as_u64(),
        Value::String(text) => text.trim().parse().ok(),
        _ => None,
    }
}

/// The identity of an item for repeat detection: its `id`, else its `sku`.
#[derive(Debug, Default, Hash, PartialEq, Eq)]
struct ItemKey {
    id: Option<String>,
    sku: Option<String>,
}

impl ItemKey {
    fn of_value(value: &Value) -> Self {
        let text = |key: &str| {
            value.get(key).and_then(|field| match field {
                Value::String(text) => Some(text.clone()),
                Value::Number(number) => Some(number.to_string()),
                _ => None,
            })
        };
        ItemKey {
            id: text("id"),
            sku: text("sku"),
        }
    }
}

/// Reads only `total_count` and the items' ids/SKUs from a page body,
/// skipping everything else without building a DOM. Used for raw downloads.
pub(crate) fn summarize_raw_page(body: &[u8]) -> Result<PageSummary, String> {
    let envelope: RawEnvelope = serde_json::from_slice(body)
        .map_err(|error| format!("page is not a JSON object: {error}"))?;
    let mut hasher = DefaultHasher::new();
    for key in &envelope.items {
        key.hash(&mut hasher);
    }
    Ok(PageSummary {
        total_count: envelope.total_count.as_ref().and_then(total_of),
        item_count: envelope.items.len(),
        fingerprint: hasher.finish(),
    })
}

#[derive(Deserialize)]
struct RawEnvelope {
    #[serde(default)]
    total_count: Option<Value>,
    #[serde(default, deserialize_with = "item_keys")]
    items: Vec<ItemKey>,
}

/// `items` as a list of keys; anything that is not a list counts as empty.
fn item_keys<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<ItemKey>, D::Error> {
    struct ItemsVisitor;

    impl<'de> Visitor<'de> for ItemsVisitor {
        type Value = Vec<ItemKey>;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a list of items")
        }

        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
            let mut keys = Vec::new();
            while let Some(key) = seq.next_element::<RawItemKey>()? {
                keys.push(key.0);
            }
            Ok(keys)
        }

        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            let mut keys = Vec::new();
            while let Some((_, key)) = map.next_entry::<IgnoredAny, RawItemKey>()? {
                keys.push(key.0);
            }
            Ok(keys)
        }

        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(Vec::new())
        }

        fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
            Ok(Vec::new())
        }

        fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
            Ok(Vec::new())
        }

        fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
            Ok(Vec::new())
        }

        fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
            Ok(Vec::new())
        }

        fn visit_str<E: de::Error>(self, _: &str) -> Result<Self::Value, E> {
            Ok(Vec::new())
        }
    }

    deserializer.deserialize_any(ItemsVisitor)
}

/// One item reduced to its key; non-objects give an empty key.
struct RawItemKey(ItemKey);

impl<'de> Deserialize<'de> for RawItemKey {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct KeyVisitor;

        impl<'de> Visitor<'de> for KeyVisitor {
            type Value = RawItemKey;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an item")
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut key = ItemKey::default();
                while let Some(name) = map.next_key::<std::borrow::Cow<'de, str>>()? {
                    match name.as_ref() {
                        "id" => key.id = map.next_value::<Scalar>()?.0,
                        "sku" => key.sku = map.next_value::<Scalar>()?.0,
                        _ => {
                            map.next_value::<IgnoredAny>()?;
                        }
                    }
                }
                Ok(RawItemKey(key))
            }

            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(RawItemKey(ItemKey::default()))
            }

            fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(RawItemKey(ItemKey::default()))
            }

            fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
                Ok(RawItemKey(ItemKey::default()))
            }

            fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
                Ok(RawItemKey(ItemKey::default()))
            }

            fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
                Ok(RawItemKey(ItemKey::default()))
            }

            fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
                Ok(RawItemKey(ItemKey::default()))
            }

            fn visit_str<E: de::Error>(self, _: &str) -> Result<Self::Value, E> {
                Ok(RawItemKey(ItemKey::default()))
            }
        }

        deserializer.deserialize_any(KeyVisitor)
    }
}

/// A string or number as text; anything else as `None`.
struct Scalar(Option<String>);

impl<'de> Deserialize<'de> for Scalar {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Ok(Scalar(match Value::deserialize(deserializer)? {
            Value::String(text) => Some(text),
            Value::Number(number) => Some(number.to_string()),
            _ => None,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typed_and_raw_summaries_agree() {
        let body = br#"{"items":[{"id":1,"sku":"A","name":["odd"]},{"id":"2","sku":"B"},"junk"],"total_count":"7","search_criteria":{}}"#;
        let (page, typed) = ProductPage::parse_with_summary(body, 1).expect("object page");
        let raw = summarize_raw_page(body).expect("object page");
        assert_eq!(typed, raw);
        assert_eq!(raw.item_count, 3);
        assert_eq!(raw.total_count, Some(7));
        assert_eq!(page.items.len(), 3);
        assert!(!page.items[0].is_clean());
        assert!(page.items[1].is_clean());
        assert_eq!(page.items[2].warnings[0].path, "items[2]");
        assert_eq!(page.clean_items().count(), 1);
    }

    #[test]
    fn typed_pages_expose_their_fingerprint() {
        let page = |body: &[u8]| ProductPage::parse(body, 1).expect("page").fingerprint();
        let last = br#"{"items":[{"id":5,"sku":"E"}],"total_count":9}"#;
        assert_eq!(page(last), page(last));
        assert_ne!(
            page(last),
            page(br#"{"items":[{"id":6,"sku":"F"}],"total_count":9}"#)
        );
    }

    #[test]
    fn different_items_give_different_fingerprints() {
        let a = summarize_raw_page(br#"{"items":[{"id":1}],"total_count":2}"#).expect("page");
        let b = summarize_raw_page(br#"{"items":[{"id":2}],"total_count":2}"#).expect("page");
        assert_ne!(a.fingerprint, b.fingerprint);
    }

    #[test]
    fn odd_envelopes_do_not_fail() {
        let (page, summary) =
            ProductPage::parse_with_summary(br#"{"items":null,"total_count":[1]}"#, 3)
                .expect("object");
        assert_eq!(summary.item_count, 0);
        assert_eq!(page.total_count, None);
        assert_eq!(page.warnings.len(), 1);
        assert!(ProductPage::parse(b"[1,2]", 1).is_err());
        assert!(ProductPage::parse(b"<html>", 1).is_err());
        assert_eq!(
            summarize_raw_page(br#"{"items":5}"#).map(|s| s.item_count),
            Ok(0)
        );
    }
}
