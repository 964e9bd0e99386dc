//! Products shoppers can find but should not: enabled and visible, yet free or in no category.

use serde_json::{Value, json};

use super::{Finding, ProductFacts, RuleId};

/// Magento's "Not Visible Individually".
const NOT_VISIBLE: i64 = 1;

/// Types whose own price is not what shoppers pay (it comes from their children).
const PRICED_BY_CHILDREN: &[&str] = &["configurable", "bundle", "grouped"];

pub(super) fn check(facts: &ProductFacts<'_>, out: &mut Vec<Finding>) {
    if !is_shown(facts.attributes) {
        return;
    }
    let priced_by_children = facts
        .type_id
        .is_some_and(|t| PRICED_BY_CHILDREN.contains(&t));
    if !priced_by_children && number(facts.attributes.get("price")).is_some_and(|p| p <= 0.0) {
        out.push(Finding::new(
            RuleId::PriceZero,
            "price",
            "the product is for sale at a price of 0",
            json!({"price": facts.attributes.get("price")}),
        ));
    }
    let in_category = ["category_ids", "category_links"]
        .iter()
        .any(|key| has_items(facts.attributes.get(*key)));
    if !in_category {
        out.push(Finding::new(
            RuleId::NoCategory,
            "category_ids",
            "the product is in no category, so shoppers browsing cannot find it",
            json!({}),
        ));
    }
}

/// Enabled and visible somewhere; unknown counts as shown (Magento's defaults).
fn is_shown(attributes: &Value) -> bool {
    let enabled = match attributes.get("status") {
        Some(Value::String(s)) => s == "enabled" || s == "1",
        Some(v) => number(Some(v)).is_none_or(|n| n == 1.0),
        None => true,
    };
    let visible = number(attributes.get("visibility")).is_none_or(|v| v as i64 != NOT_VISIBLE);
    enabled && visible
}

/// Magento sends numbers as numbers or as strings.
fn number(value: Option<&Value>) -> Option<f64> {
    match value? {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

fn has_items(value: Option<&Value>) -> bool {
    match value {
        Some(Value::Array(items)) => items.iter().any(|i| match i {
            Value::String(s) => !s.trim().is_empty(),
            Value::Null => false,
            _ => true,
        }),
        // `category_ids` as a comma-separated string.
        Some(Value::String(s)) => s.split(',').any(|p| !p.trim().is_empty()),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn findings(type_id: &str, attributes: Value) -> Vec<RuleId> {
        let mut out = Vec::new();
        check(
            &ProductFacts {
                type_id: Some(type_id),
                attributes: &attributes,
            },
            &mut out,
        );
        out.into_iter().map(|f| f.rule).collect()
    }

    #[test]
    fn shown_products_need_a_price_and_a_category() {
        let ok =
            json!({"price": 19.5, "status": "enabled", "visibility": 4, "category_ids": ["3"]});
        assert_eq!(findings("simple", ok), []);
        assert_eq!(
            findings(
                "simple",
                json!({"price": 0, "status": "enabled", "visibility": 4})
            ),
            [RuleId::PriceZero, RuleId::NoCategory]
        );
        assert_eq!(
            findings(
                "simple",
                json!({"price": "0.00", "category_links": ["4"], "visibility": "4"})
            ),
            [RuleId::PriceZero]
        );
        assert_eq!(
            findings(
                "simple",
                json!({"price": 5, "category_ids": "", "category_links": []})
            ),
            [RuleId::NoCategory]
        );
    }

    #[test]
    fn hidden_disabled_and_child_priced_products_are_exempt() {
        let free = json!({"price": 0, "status": "disabled", "visibility": 4});
        assert_eq!(findings("simple", free), []);
        let invisible = json!({"price": 0, "status": "enabled", "visibility": 1});
        assert_eq!(findings("simple", invisible), []);
        let configurable = json!({"price": 0, "status": 1, "visibility": 4, "category_ids": ["3"]});
        assert_eq!(findings("configurable", configurable), []);
    }
}
