//! Descriptions that are missing or too thin, and placeholder text left in any text field.

use serde_json::json;

use super::{AuditConfig, Finding, RuleId, ScopeView, owned_value};
use crate::audits::html;

/// Text fields where a placeholder would reach shoppers or search engines.
const PLACEHOLDER_FIELDS: &[&str] = &[
    "name",
    "description",
    "short_description",
    "meta_title",
    "meta_description",
];

/// Markers that are placeholders wherever they appear.
const PLACEHOLDER_WORDS: &[&str] = &["lorem", "tbd", "tba", "todo", "asdf", "xxx", "fixme"];

/// Whole texts that are placeholders; "test" inside real copy ("pregnancy test") is not.
const PLACEHOLDER_TEXTS: &[&str] = &[
    "test",
    "testing",
    "test product",
    "test description",
    "placeholder",
    "description",
    "coming soon",
    "n/a",
    "na",
    "-",
    ".",
    "...",
];

pub(super) fn check(view: &ScopeView<'_>, config: &AuditConfig, out: &mut Vec<Finding>) {
    length(
        view,
        "description",
        config.description_min_chars,
        (RuleId::MissingDescription, RuleId::DescriptionTooShort),
        out,
    );
    length(
        view,
        "short_description",
        config.short_description_min_chars,
        (
            RuleId::MissingShortDescription,
            RuleId::ShortDescriptionTooShort,
        ),
        out,
    );
    for field in PLACEHOLDER_FIELDS {
        let Some(value) = view.owned.fields.get(*field) else {
            continue;
        };
        let text = html::scan(value).text;
        if let Some(marker) = placeholder(&text) {
            out.push(Finding::new(
                RuleId::PlaceholderText,
                field,
                format!("{field} contains placeholder text ({marker:?})"),
                json!({"marker": marker}),
            ));
        }
    }
}

fn length(
    view: &ScopeView<'_>,
    field: &str,
    min_chars: usize,
    (missing, short): (RuleId, RuleId),
    out: &mut Vec<Finding>,
) {
    let Some(value) = owned_value(view, field) else {
        return;
    };
    let chars = html::scan(value).text.chars().count();
    if chars == 0 {
        out.push(Finding::new(
            missing,
            field,
            format!("{} is missing", field.replace('_', " ")),
            json!({}),
        ));
    } else if chars < min_chars {
        out.push(Finding::new(
            short,
            field,
            format!(
                "{} has {chars} characters of text; at least {min_chars} are expected",
                field.replace('_', " ")
            ),
            json!({"length": chars, "min": min_chars}),
        ));
    }
}

/// The placeholder marker in `text`, if any.
pub(super) fn placeholder(text: &str) -> Option<String> {
    let lower = text.trim().to_lowercase();
    if lower.is_empty() {
        return None;
    }
    if PLACEHOLDER_TEXTS.contains(&lower.as_str()) {
        return Some(lower);
    }
    lower
        .split(|c: char| !c.is_alphanumeric())
        .find(|word| PLACEHOLDER_WORDS.contains(word))
        .map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use super::*;

    #[test]
    fn missing_and_short_descriptions() {
        let c = content(&[("name", "Tee"), ("short_description", "Soft tee, red")]);
        assert_eq!(
            rules(&run("all", &c, &c))
                .into_iter()
                .filter(|(r, _)| *r == RuleId::MissingDescription)
                .count(),
            1
        );
        let mut short = good();
        short
            .fields
            .insert("description".into(), "<p>Nice <b>tee</b>.</p>".into());
        let found = run("all", &short, &short);
        assert_eq!(
            rules(&found),
            [(RuleId::DescriptionTooShort, "description".into())]
        );
        assert_eq!(found[0].detail, json!({"length": 9, "min": 80}));
        // Markup alone is not text.
        short
            .fields
            .insert("description".into(), "<p> <br/> &nbsp; </p>".into());
        assert_eq!(
            rules(&run("all", &short, &short)),
            [(RuleId::MissingDescription, "description".into())]
        );
    }

    #[test]
    fn length_counts_characters_not_bytes() {
        let mut c = good();
        // 12 characters, 30+ bytes.
        c.fields
            .insert("short_description".into(), "Écharpe 日本語🧣".into());
        assert_eq!(run("all", &c, &c), []);
        c.fields
            .insert("short_description".into(), "日本語🧣".into());
        assert_eq!(
            rules(&run("all", &c, &c)),
            [(RuleId::ShortDescriptionTooShort, "short_description".into())]
        );
    }

    #[test]
    fn placeholders_are_found_without_false_alarms() {
        assert_eq!(placeholder("Lorem ipsum dolor"), Some("lorem".into()));
        assert_eq!(placeholder("Price TBD"), Some("tbd".into()));
        assert_eq!(placeholder("  Test "), Some("test".into()));
        assert_eq!(placeholder("Pregnancy test kit, 2 pack"), None);
        assert_eq!(placeholder("The latest contest winner"), None);
        assert_eq!(placeholder("Taxi todos los días"), None);
        assert_eq!(placeholder(""), None);
        let mut c = good();
        c.fields.insert("meta_title".into(), "TODO".into());
        assert_eq!(
            rules(&run("all", &c, &c)),
            [(RuleId::PlaceholderText, "meta_title".into())]
        );
    }
}
