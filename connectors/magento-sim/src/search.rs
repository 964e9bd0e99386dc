//! `searchCriteria` as Magento reads it: filter groups (AND of ORs), sort orders, paging.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::catalog::{SimProduct, format_time};

#[derive(Debug, Clone, Default)]
pub struct Filter {
    pub field: String,
    pub value: String,
    pub condition: String,
}

#[derive(Debug, Clone, Default)]
pub struct Criteria {
    pub groups: Vec<Vec<Filter>>,
    pub sort: Vec<(String, bool)>,
    pub page_size: Option<u64>,
    pub current_page: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum CriteriaError {
    #[error("\"%fieldName\" is required. Enter and try again.")]
    Missing,
    #[error("Sort order direction must be ASC or DESC")]
    Direction,
}

/// Splits `searchCriteria[filter_groups][0][filters][1][field]` into its bracketed parts.
fn parts(key: &str) -> Option<Vec<String>> {
    let (head, mut rest) = key.split_once('[').map(|(h, r)| (h, format!("[{r}")))?;
    if head != "searchCriteria" && head != "search_criteria" {
        return None;
    }
    let mut out = Vec::new();
    while let Some(stripped) = rest.strip_prefix('[') {
        let (part, tail) = stripped.split_once(']')?;
        out.push(part.to_string());
        rest = tail.to_string();
    }
    Some(out)
}

fn canon(name: &str) -> String {
    match name {
        "filterGroups" => "filter_groups".into(),
        "sortOrders" => "sort_orders".into(),
        "conditionType" => "condition_type".into(),
        "pageSize" | "page_size" => "page_size".into(),
        "currentPage" | "current_page" => "current_page".into(),
        other => other.to_string(),
    }
}

pub fn parse(params: &BTreeMap<String, String>) -> Result<Criteria, CriteriaError> {
    let mut groups: BTreeMap<u64, BTreeMap<u64, Filter>> = BTreeMap::new();
    let mut sorts: BTreeMap<u64, (String, bool)> = BTreeMap::new();
    let mut criteria = Criteria {
        current_page: 1,
        ..Criteria::default()
    };
    let mut any = false;
    for (key, value) in params {
        let Some(parts) = parts(key) else { continue };
        any = true;
        let parts: Vec<String> = parts.iter().map(|p| canon(p)).collect();
        match parts.as_slice() {
            [g, gi, f, fi, attr] if g == "filter_groups" && f == "filters" => {
                let (Ok(gi), Ok(fi)) = (gi.parse::<u64>(), fi.parse::<u64>()) else {
                    continue;
                };
                let filter = groups.entry(gi).or_default().entry(fi).or_default();
                match attr.as_str() {
                    "field" => filter.field = value.clone(),
                    "value" => filter.value = value.clone(),
                    "condition_type" => filter.condition = value.to_lowercase(),
                    _ => {}
                }
            }
            [s, si, attr] if s == "sort_orders" => {
                let Ok(si) = si.parse::<u64>() else { continue };
                let entry = sorts.entry(si).or_insert_with(|| (String::new(), true));
                match attr.as_str() {
                    "field" => entry.0 = value.clone(),
                    "direction" => match value.to_ascii_uppercase().as_str() {
                        "ASC" => entry.1 = true,
                        "DESC" => entry.1 = false,
                        _ => return Err(CriteriaError::Direction),
                    },
                    _ => {}
                }
            }
            [p] if p == "page_size" => criteria.page_size = value.parse().ok(),
            [p] if p == "current_page" => {
                criteria.current_page = value.parse::<u64>().unwrap_or(1).max(1)
            }
            _ => {}
        }
    }
    if !any {
        return Err(CriteriaError::Missing);
    }
    criteria.groups = groups
        .into_values()
        .map(|g| {
            g.into_values()
                .filter(|f| !f.field.is_empty())
                .map(|mut f| {
                    if f.condition.is_empty() {
                        f.condition = "eq".into();
                    }
                    f
                })
                .collect()
        })
        .filter(|g: &Vec<Filter>| !g.is_empty())
        .collect();
    criteria.sort = sorts.into_values().filter(|(f, _)| !f.is_empty()).collect();
    Ok(criteria)
}

/// The text a filter compares against, as Magento's collection would.
fn field_text(product: &SimProduct, view: Option<&str>, field: &str) -> Option<String> {
    match field {
        "entity_id" | "id" => Some(product.id.to_string()),
        "sku" => Some(product.sku.clone()),
        "type_id" => Some(product.type_id.clone()),
        "status" => Some(product.status.to_string()),
        "visibility" => Some(product.visibility.to_string()),
        "price" => Some(product.price.to_string()),
        "updated_at" => Some(format_time(product.updated_at)),
        "created_at" => Some(format_time(product.created_at)),
        other => product.value(view, other).map(|v| match v {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        }),
    }
}

fn compare(a: &str, b: &str) -> std::cmp::Ordering {
    match (a.parse::<f64>(), b.parse::<f64>()) {
        (Ok(x), Ok(y)) => x.partial_cmp(&y).unwrap_or(std::cmp::Ordering::Equal),
        _ => a.cmp(b),
    }
}

fn like(value: &str, pattern: &str) -> bool {
    let lower = value.to_lowercase();
    let parts: Vec<String> = pattern
        .to_lowercase()
        .split('%')
        .map(String::from)
        .collect();
    let mut pos = 0;
    for (i, part) in parts.iter().enumerate() {
        if part.is_empty() {
            continue;
        }
        match lower[pos..].find(part.as_str()) {
            Some(found) if i > 0 || found == 0 => pos += found + part.len(),
            _ => return false,
        }
    }
    parts
        .last()
        .is_none_or(|p| p.is_empty() || lower.ends_with(p.as_str()))
}

fn matches(product: &SimProduct, view: Option<&str>, filter: &Filter) -> bool {
    let actual = field_text(product, view, &filter.field);
    let v = filter.value.as_str();
    // Magento splits an `in`/`nin` string at every comma, with no escape and no trimming
    // (`lib/internal/Magento/Framework/DB/Adapter/Pdo/Mysql.php`, `prepareSqlCondition`).
    let list = || v.split(',').collect::<Vec<_>>();
    use std::cmp::Ordering::*;
    match (filter.condition.as_str(), actual.as_deref()) {
        ("null", a) => a.is_none(),
        ("notnull", a) => a.is_some(),
        (_, None) => false,
        ("eq", Some(a)) => compare(a, v) == Equal,
        ("neq", Some(a)) => compare(a, v) != Equal,
        ("gt", Some(a)) => compare(a, v) == Greater,
        ("gteq" | "moreq" | "from", Some(a)) => compare(a, v) != Less,
        ("lt", Some(a)) => compare(a, v) == Less,
        ("lteq" | "to", Some(a)) => compare(a, v) != Greater,
        ("like", Some(a)) => like(a, v),
        ("nlike", Some(a)) => !like(a, v),
        ("in", Some(a)) => list().iter().any(|x| compare(a, x) == Equal),
        ("nin", Some(a)) => !list().iter().any(|x| compare(a, x) == Equal),
        ("finset", Some(a)) => a.split(',').any(|x| x == v),
        ("nfinset", Some(a)) => !a.split(',').any(|x| x == v),
        _ => false,
    }
}

/// The SKUs a search is confined to, when one filter group is a lone `sku` `eq` or `in` whose
/// values are all plain text: every match is then among the products with exactly those SKUs,
/// so they can be looked up instead of scanning the catalog (as MySQL uses the SKU's index).
/// A value that reads as a number compares numerically ([`compare`]), so it keeps the scan.
pub fn sku_keys(criteria: &Criteria) -> Option<Vec<&str>> {
    criteria
        .groups
        .iter()
        .find_map(|group| match group.as_slice() {
            [f] if f.field == "sku" && (f.condition == "eq" || f.condition == "in") => {
                let values: Vec<&str> = if f.condition == "in" {
                    f.value.split(',').collect()
                } else {
                    vec![f.value.as_str()]
                };
                values
                    .iter()
                    .all(|v| v.parse::<f64>().is_err())
                    .then_some(values)
            }
            _ => None,
        })
}

/// The ids of matching products, sorted.
pub fn select<'a>(
    products: impl Iterator<Item = &'a SimProduct>,
    view: Option<&str>,
    criteria: &Criteria,
) -> Vec<&'a SimProduct> {
    let mut hits: Vec<&SimProduct> = products
        .filter(|p| {
            criteria
                .groups
                .iter()
                .all(|g| g.iter().any(|f| matches(p, view, f)))
        })
        .collect();
    // The catalog is kept in id order, so the usual `entity_id ASC` needs no sorting.
    let by_id_ascending = matches!(criteria.sort.as_slice(), [(field, true)] if field == "entity_id" || field == "id");
    if !criteria.sort.is_empty() && !by_id_ascending {
        hits.sort_by(|a, b| {
            for (field, asc) in &criteria.sort {
                let x = field_text(a, view, field).unwrap_or_default();
                let y = field_text(b, view, field).unwrap_or_default();
                let ord = compare(&x, &y);
                if ord != std::cmp::Ordering::Equal {
                    return if *asc { ord } else { ord.reverse() };
                }
            }
            a.id.cmp(&b.id)
        });
    }
    hits
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn reads_groups_sorts_and_paging_in_both_spellings() {
        let c = parse(&params(&[
            ("searchCriteria[filter_groups][0][filters][0][field]", "sku"),
            ("searchCriteria[filter_groups][0][filters][0][value]", "A%"),
            (
                "searchCriteria[filter_groups][0][filters][0][condition_type]",
                "like",
            ),
            (
                "searchCriteria[filterGroups][1][filters][0][field]",
                "updated_at",
            ),
            (
                "searchCriteria[filterGroups][1][filters][0][value]",
                "2024-01-01 00:00:00",
            ),
            (
                "searchCriteria[filterGroups][1][filters][0][conditionType]",
                "gteq",
            ),
            ("searchCriteria[sortOrders][0][field]", "entity_id"),
            ("searchCriteria[sortOrders][0][direction]", "desc"),
            ("searchCriteria[pageSize]", "300"),
            ("searchCriteria[currentPage]", "0"),
        ]))
        .unwrap();
        assert_eq!(c.groups.len(), 2);
        assert_eq!(c.groups[1][0].condition, "gteq");
        assert_eq!(c.sort, [("entity_id".to_string(), false)]);
        assert_eq!(c.page_size, Some(300));
        assert_eq!(c.current_page, 1);
    }

    fn sku_filter(condition: &str, value: &str) -> Filter {
        Filter {
            field: "sku".into(),
            value: value.into(),
            condition: condition.into(),
        }
    }

    #[test]
    fn a_lone_plain_sku_list_is_looked_up_and_anything_else_scanned() {
        let criteria = |groups: Vec<Vec<Filter>>| Criteria {
            groups,
            ..Criteria::default()
        };
        let status = Filter {
            field: "status".into(),
            value: "1".into(),
            condition: "eq".into(),
        };
        let plain = criteria(vec![
            vec![status.clone()],
            vec![sku_filter("in", "A-1,b 2")],
        ]);
        assert_eq!(sku_keys(&plain), Some(vec!["A-1", "b 2"]));
        assert_eq!(
            sku_keys(&criteria(vec![vec![sku_filter("eq", "A,1")]])),
            Some(vec!["A,1"]),
            "eq takes the whole value"
        );
        // "1" also matches a SKU "1.0" (compared as numbers): no lookup can say so.
        assert_eq!(
            sku_keys(&criteria(vec![vec![sku_filter("in", "A-1,1")]])),
            None
        );
        assert_eq!(
            sku_keys(&criteria(vec![vec![sku_filter("in", "A"), status]])),
            None,
            "an OR with another filter reaches beyond the SKUs"
        );
        assert_eq!(
            sku_keys(&criteria(vec![vec![sku_filter("like", "A%")]])),
            None
        );
    }

    #[test]
    fn missing_criteria_and_bad_direction_are_errors() {
        assert!(matches!(
            parse(&params(&[("fields", "items")])),
            Err(CriteriaError::Missing)
        ));
        assert!(matches!(
            parse(&params(&[(
                "searchCriteria[sortOrders][0][direction]",
                "UP"
            )])),
            Err(CriteriaError::Direction)
        ));
    }

    #[test]
    fn like_patterns() {
        assert!(like("Red Tee", "red%"));
        assert!(like("Red Tee", "%tee"));
        assert!(like("Red Tee", "%d t%"));
        assert!(!like("Red Tee", "tee%"));
    }
}
