//! Unsafe and broken HTML in the fields that hold markup.

use serde_json::json;

use super::{Finding, RuleId, ScopeView};
use crate::audits::html;

/// Fields Magento renders as HTML.
const HTML_FIELDS: &[&str] = &["description", "short_description"];

pub(super) fn check(view: &ScopeView<'_>, out: &mut Vec<Finding>) {
    for field in HTML_FIELDS {
        let Some(value) = view.owned.fields.get(*field) else {
            continue;
        };
        let report = html::scan(value);
        if !report.unsafe_parts.is_empty() {
            out.push(Finding::new(
                RuleId::UnsafeHtml,
                field,
                format!(
                    "{} contains unsafe HTML: {}",
                    field.replace('_', " "),
                    report.unsafe_parts.join("; ")
                ),
                json!({"problems": report.unsafe_parts}),
            ));
        }
        if !report.broken_parts.is_empty() {
            out.push(Finding::new(
                RuleId::BrokenHtml,
                field,
                format!(
                    "{} has broken HTML: {}",
                    field.replace('_', " "),
                    report.broken_parts.join("; ")
                ),
                json!({"problems": report.broken_parts}),
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use super::*;

    #[test]
    fn unsafe_and_broken_markup_are_separate_findings() {
        let mut c = good();
        c.fields.insert(
            "description".into(),
            "<p onclick=\"track()\">A long enough description of a soft cotton tee that fits well and keeps its shape.<script>alert(1)</script><p>Unclosed".into(),
        );
        let found = run("all", &c, &c);
        assert_eq!(
            rules(&found),
            [
                (RuleId::UnsafeHtml, "description".into()),
                (RuleId::BrokenHtml, "description".into())
            ]
        );
        let unsafe_finding = found.iter().find(|f| f.rule == RuleId::UnsafeHtml).unwrap();
        assert_eq!(
            unsafe_finding.detail["problems"].as_array().unwrap().len(),
            2
        );
    }

    #[test]
    fn images_without_alt_in_short_descriptions() {
        let mut c = good();
        c.fields.insert(
            "short_description".into(),
            "Soft cotton tee <img src=\"x.png\">".into(),
        );
        assert_eq!(
            rules(&run("all", &c, &c)),
            [(RuleId::BrokenHtml, "short_description".into())]
        );
    }

    #[test]
    fn plain_text_fields_are_not_read_as_html() {
        let mut c = good();
        c.fields.insert("meta_title".into(), "Tee <3".into());
        assert_eq!(run("all", &c, &c), []);
    }
}
