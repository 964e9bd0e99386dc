//! Meta title, meta description and meta keywords: what search results show.

use std::collections::BTreeMap;

use serde_json::json;

use super::{AuditConfig, Finding, RuleId, ScopeView, owned_value};
use crate::audits::html;

pub(super) fn check(view: &ScopeView<'_>, config: &AuditConfig, out: &mut Vec<Finding>) {
    if let Some(title) = owned_value(view, "meta_title") {
        let chars = html::decode_entities(title.trim()).chars().count();
        if chars == 0 {
            out.push(Finding::new(
                RuleId::MissingMetaTitle,
                "meta_title",
                "meta title is missing",
                json!({}),
            ));
        } else if chars > config.meta_title_max_chars {
            out.push(Finding::new(
                RuleId::MetaTitleTooLong,
                "meta_title",
                format!(
                    "meta title has {chars} characters; search results cut it after {}",
                    config.meta_title_max_chars
                ),
                json!({"length": chars, "max": config.meta_title_max_chars}),
            ));
        }
    }
    if let Some(description) = owned_value(view, "meta_description") {
        let chars = html::decode_entities(description.trim()).chars().count();
        let (min, max) = (
            config.meta_description_min_chars,
            config.meta_description_max_chars,
        );
        if chars == 0 {
            out.push(Finding::new(
                RuleId::MissingMetaDescription,
                "meta_description",
                "meta description is missing",
                json!({}),
            ));
        } else if chars < min || chars > max {
            out.push(Finding::new(
                RuleId::MetaDescriptionLength,
                "meta_description",
                format!("meta description has {chars} characters; {min}–{max} work best"),
                json!({"length": chars, "min": min, "max": max}),
            ));
        }
    }
    if let Some(finding) = view
        .owned
        .fields
        .get("meta_keyword")
        .and_then(|keywords| stuffing(keywords, config.meta_keywords_max))
    {
        out.push(finding);
    }
}

/// Repeated keywords, or more of them than anyone searches for.
fn stuffing(keywords: &str, max: usize) -> Option<Finding> {
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    let mut total = 0;
    for keyword in keywords.split([',', ';']) {
        let keyword = keyword.split_whitespace().collect::<Vec<_>>().join(" ");
        if keyword.is_empty() {
            continue;
        }
        total += 1;
        *counts.entry(keyword.to_lowercase()).or_default() += 1;
    }
    let repeated: Vec<&String> = counts
        .iter()
        .filter(|(_, n)| **n > 1)
        .map(|(k, _)| k)
        .collect();
    if repeated.is_empty() && total <= max {
        return None;
    }
    let message = if repeated.is_empty() {
        format!("meta keywords list {total} keywords; at most {max} are useful")
    } else {
        format!(
            "meta keywords repeat {}",
            repeated
                .iter()
                .map(|k| format!("{k:?}"))
                .collect::<Vec<_>>()
                .join(", ")
        )
    };
    Some(Finding::new(
        RuleId::KeywordStuffing,
        "meta_keyword",
        message,
        json!({"keywords": total, "max": max, "repeated": repeated}),
    ))
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use super::*;

    fn with(field: &str, value: &str) -> Vec<(RuleId, String)> {
        let mut c = good();
        c.fields.insert(field.into(), value.into());
        rules(&run("all", &c, &c))
    }

    #[test]
    fn meta_title_missing_or_too_long() {
        assert_eq!(
            with("meta_title", "  "),
            [(RuleId::MissingMetaTitle, "meta_title".into())]
        );
        assert_eq!(with("meta_title", &"a".repeat(60)), []);
        assert_eq!(
            with("meta_title", &"a".repeat(61)),
            [(RuleId::MetaTitleTooLong, "meta_title".into())]
        );
        // Sixty characters of accented text is still sixty.
        assert_eq!(with("meta_title", &"é".repeat(60)), []);
        assert_eq!(with("meta_title", "Tee &amp; shorts"), []);
    }

    #[test]
    fn meta_description_outside_its_window() {
        assert_eq!(
            with("meta_description", ""),
            [(RuleId::MissingMetaDescription, "meta_description".into())]
        );
        assert_eq!(
            with("meta_description", "Too short."),
            [(RuleId::MetaDescriptionLength, "meta_description".into())]
        );
        assert_eq!(
            with("meta_description", &"ü".repeat(161)),
            [(RuleId::MetaDescriptionLength, "meta_description".into())]
        );
        assert_eq!(with("meta_description", &"ü".repeat(160)), []);
    }

    #[test]
    fn keyword_stuffing() {
        assert!(stuffing("tee, red, cotton", 10).is_none());
        assert!(stuffing("", 10).is_none());
        let repeated = stuffing("tee, Tee , red,  tee", 10).unwrap();
        assert_eq!(repeated.detail["repeated"], json!(["tee"]));
        let many = stuffing(
            &(1..=11)
                .map(|i| format!("k{i}"))
                .collect::<Vec<_>>()
                .join(","),
            10,
        )
        .unwrap();
        assert_eq!(many.detail["keywords"], 11);
        assert_eq!(
            with("meta_keyword", "mug; mug; cheap mug"),
            [(RuleId::KeywordStuffing, "meta_keyword".into())]
        );
    }
}
