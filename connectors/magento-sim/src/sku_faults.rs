//! A storm on some products: every REST request that names one of the failing SKUs — in its
//! path, in a filter value (an `in` list counts each of its values), or as the `sku` of a
//! product it saves — answers 503, as a store whose rows of those products are locked does.
//! Requests about other products are served.

use std::collections::{BTreeMap, HashSet};
use std::sync::Mutex;

use serde_json::Value;

#[derive(Default)]
pub(crate) struct SkuFaults(Mutex<HashSet<String>>);

impl SkuFaults {
    pub fn set(&self, skus: impl IntoIterator<Item = String>) {
        *self.0.lock().expect("sku faults") = skus.into_iter().collect();
    }

    /// Whether the request names a failing SKU.
    pub fn hits(&self, route: &[&str], params: &BTreeMap<String, String>, body: &[u8]) -> bool {
        let failing = self.0.lock().expect("sku faults");
        if failing.is_empty() {
            return false;
        }
        if route.iter().any(|segment| failing.contains(*segment)) {
            return true;
        }
        if params
            .values()
            .any(|value| value.split(',').any(|v| failing.contains(v)))
        {
            return true;
        }
        let Ok(body) = serde_json::from_slice::<Value>(body) else {
            return false;
        };
        let saves = match &body {
            Value::Array(items) => items.iter().collect(),
            one => vec![one],
        };
        saves.into_iter().any(|save| {
            save.pointer("/product/sku")
                .and_then(Value::as_str)
                .is_some_and(|sku| failing.contains(sku))
        })
    }
}
