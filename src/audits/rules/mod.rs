//! The audit rules: each a small function over one product's content in one scope, returning
//! findings. Which rules run and their thresholds are workspace settings ([`AuditConfig`]).
//!
//! A finding belongs to the scope that owns the value: a default value a store view inherits
//! is reported once, at `all`, because fixing it there fixes every view. Rules about a store
//! view as such (untranslated text, its own overrides) report at the view.

mod html_rules;
mod media;
mod merchandising;
mod meta;
mod text;
mod translation;
mod url_key;

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

pub use translation::language_of;

use crate::catalog::content::Content;

/// Every rule, by its stable id (the API, findings and settings use these names).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum RuleId {
    MissingDescription,
    DescriptionTooShort,
    MissingShortDescription,
    ShortDescriptionTooShort,
    MissingMetaTitle,
    MetaTitleTooLong,
    MissingMetaDescription,
    MetaDescriptionLength,
    KeywordStuffing,
    DuplicateName,
    MissingUrlKey,
    UrlKeyNotSlug,
    NoImages,
    ImageTooSmall,
    MissingAltText,
    Untranslated,
    UnsafeHtml,
    BrokenHtml,
    PlaceholderText,
    PriceZero,
    NoCategory,
}

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    Error,
    Warning,
    Info,
}

impl Severity {
    /// Points a finding takes off its product's score (which starts at 100).
    pub fn penalty(self) -> i32 {
        match self {
            Severity::Error => 20,
            Severity::Warning => 8,
            Severity::Info => 2,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Error => "error",
            Severity::Warning => "warning",
            Severity::Info => "info",
        }
    }
}

impl RuleId {
    pub const ALL: &'static [RuleId] = &[
        RuleId::MissingDescription,
        RuleId::DescriptionTooShort,
        RuleId::MissingShortDescription,
        RuleId::ShortDescriptionTooShort,
        RuleId::MissingMetaTitle,
        RuleId::MetaTitleTooLong,
        RuleId::MissingMetaDescription,
        RuleId::MetaDescriptionLength,
        RuleId::KeywordStuffing,
        RuleId::DuplicateName,
        RuleId::MissingUrlKey,
        RuleId::UrlKeyNotSlug,
        RuleId::NoImages,
        RuleId::ImageTooSmall,
        RuleId::MissingAltText,
        RuleId::Untranslated,
        RuleId::UnsafeHtml,
        RuleId::BrokenHtml,
        RuleId::PlaceholderText,
        RuleId::PriceZero,
        RuleId::NoCategory,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            RuleId::MissingDescription => "missing_description",
            RuleId::DescriptionTooShort => "description_too_short",
            RuleId::MissingShortDescription => "missing_short_description",
            RuleId::ShortDescriptionTooShort => "short_description_too_short",
            RuleId::MissingMetaTitle => "missing_meta_title",
            RuleId::MetaTitleTooLong => "meta_title_too_long",
            RuleId::MissingMetaDescription => "missing_meta_description",
            RuleId::MetaDescriptionLength => "meta_description_length",
            RuleId::KeywordStuffing => "keyword_stuffing",
            RuleId::DuplicateName => "duplicate_name",
            RuleId::MissingUrlKey => "missing_url_key",
            RuleId::UrlKeyNotSlug => "url_key_not_slug",
            RuleId::NoImages => "no_images",
            RuleId::ImageTooSmall => "image_too_small",
            RuleId::MissingAltText => "missing_alt_text",
            RuleId::Untranslated => "untranslated",
            RuleId::UnsafeHtml => "unsafe_html",
            RuleId::BrokenHtml => "broken_html",
            RuleId::PlaceholderText => "placeholder_text",
            RuleId::PriceZero => "price_zero",
            RuleId::NoCategory => "no_category",
        }
    }

    pub fn parse(name: &str) -> Option<RuleId> {
        RuleId::ALL.iter().copied().find(|r| r.as_str() == name)
    }

    pub fn severity(self) -> Severity {
        match self {
            RuleId::MissingDescription
            | RuleId::DuplicateName
            | RuleId::MissingUrlKey
            | RuleId::UrlKeyNotSlug
            | RuleId::NoImages
            | RuleId::UnsafeHtml
            | RuleId::PlaceholderText
            | RuleId::PriceZero => Severity::Error,
            RuleId::MissingShortDescription | RuleId::ShortDescriptionTooShort => Severity::Info,
            _ => Severity::Warning,
        }
    }
}

/// Thresholds and switches, from the workspace settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct AuditConfig {
    pub disabled: BTreeSet<RuleId>,
    /// Fewest visible characters (HTML removed) of a description.
    pub description_min_chars: usize,
    pub short_description_min_chars: usize,
    pub meta_title_max_chars: usize,
    pub meta_description_min_chars: usize,
    pub meta_description_max_chars: usize,
    /// Most comma-separated meta keywords before the list counts as stuffing.
    pub meta_keywords_max: usize,
    /// Fewest pixels on an image's shorter side (checked once images are mirrored).
    pub image_min_pixels: u32,
}

impl Default for AuditConfig {
    fn default() -> Self {
        AuditConfig {
            disabled: BTreeSet::new(),
            description_min_chars: 80,
            short_description_min_chars: 10,
            meta_title_max_chars: 60,
            meta_description_min_chars: 50,
            meta_description_max_chars: 160,
            meta_keywords_max: 10,
            image_min_pixels: 500,
        }
    }
}

impl AuditConfig {
    pub fn enabled(&self, rule: RuleId) -> bool {
        !self.disabled.contains(&rule)
    }
}

/// One problem found in one scope of one product.
#[derive(Debug, Clone, PartialEq)]
pub struct Finding {
    pub rule: RuleId,
    /// The content field, `media.<entry id>`, or a product attribute (`price`, `category_ids`).
    pub field: String,
    pub message: String,
    /// Machine-readable facts (lengths, limits, the offending parts).
    pub detail: Value,
}

impl Finding {
    pub fn new(rule: RuleId, field: &str, message: impl Into<String>, detail: Value) -> Finding {
        Finding {
            rule,
            field: field.to_string(),
            message: message.into(),
            detail,
        }
    }
}

/// What one scope of a product looks like to the rules.
pub struct ScopeView<'a> {
    /// `all` or the store view code.
    pub scope: &'a str,
    /// The values this scope owns: every default value at `all`, only the overrides at a view.
    pub owned: &'a Content,
    /// The default-scope content (equal to `owned` at `all`).
    pub default: &'a Content,
    /// The language of this scope and of the default scope (`fr`, `en`), when known.
    pub language: Option<&'a str>,
    pub default_language: Option<&'a str>,
    /// (entry id, width, height) of the product's mirrored pictures.
    pub image_sizes: &'a [(i64, u32, u32)],
}

impl ScopeView<'_> {
    pub fn is_default(&self) -> bool {
        self.scope == crate::catalog::content::DEFAULT_SCOPE
    }
}

/// Product facts outside the content: the platform's attributes and type.
pub struct ProductFacts<'a> {
    pub type_id: Option<&'a str>,
    pub attributes: &'a Value,
}

/// Runs every enabled per-scope rule; duplicate names need the whole store and are found by
/// the engine.
pub fn evaluate_scope(view: &ScopeView<'_>, config: &AuditConfig, out: &mut Vec<Finding>) {
    let start = out.len();
    text::check(view, config, out);
    meta::check(view, config, out);
    url_key::check(view, out);
    html_rules::check(view, out);
    media::check(view, config, out);
    translation::check(view, out);
    let mut i = start;
    while i < out.len() {
        if config.enabled(out[i].rule) {
            i += 1;
        } else {
            out.swap_remove(i);
        }
    }
}

/// Runs the rules about the product as a whole (default scope only).
pub fn evaluate_product(facts: &ProductFacts<'_>, config: &AuditConfig, out: &mut Vec<Finding>) {
    let start = out.len();
    merchandising::check(facts, out);
    let mut i = start;
    while i < out.len() {
        if config.enabled(out[i].rule) {
            i += 1;
        } else {
            out.swap_remove(i);
        }
    }
}

/// A field's owned value, `None` when the scope does not own it. At `all` a field that is
/// absent is owned as missing (`Some("")`): the default scope is where it should be.
fn owned_value<'a>(view: &'a ScopeView<'_>, field: &str) -> Option<&'a str> {
    match view.owned.fields.get(field) {
        Some(v) => Some(v.as_str()),
        None if view.is_default() => Some(""),
        None => None,
    }
}

#[cfg(test)]
pub(crate) mod testing {
    use super::*;

    pub fn content(pairs: &[(&str, &str)]) -> Content {
        Content::of_fields(pairs)
    }

    /// The findings of one scope with the default settings.
    pub fn run(scope: &str, owned: &Content, default: &Content) -> Vec<Finding> {
        run_languages(scope, owned, default, Some("en"), Some("en"))
    }

    pub fn run_languages(
        scope: &str,
        owned: &Content,
        default: &Content,
        language: Option<&str>,
        default_language: Option<&str>,
    ) -> Vec<Finding> {
        let view = ScopeView {
            scope,
            owned,
            default,
            language,
            default_language,
            image_sizes: &[],
        };
        let mut out = Vec::new();
        evaluate_scope(&view, &AuditConfig::default(), &mut out);
        out
    }

    pub fn rules(findings: &[Finding]) -> Vec<(RuleId, String)> {
        let mut r: Vec<_> = findings.iter().map(|f| (f.rule, f.field.clone())).collect();
        r.sort();
        r
    }

    /// A default-scope product with every field good.
    pub fn good() -> Content {
        let mut good = good_text();
        good.media.push(crate::catalog::content::MediaItem {
            entry_id: 1,
            file: "/c/l/classic-red-tee.jpg".into(),
            label: Some("Classic Red Tee, front".into()),
            position: Some(1),
            disabled: false,
            roles: vec!["image".into()],
        });
        good
    }

    fn good_text() -> Content {
        content(&[
            ("name", "Classic Red Tee"),
            (
                "description",
                "<p>A classic tee in soft organic cotton, cut for an easy fit that keeps its shape wash after wash.</p>",
            ),
            ("short_description", "Soft organic cotton tee"),
            ("meta_title", "Classic Red Tee"),
            (
                "meta_description",
                "Shop the Classic Red Tee: soft organic cotton, easy fit, free returns.",
            ),
            ("meta_keyword", "tee, red, cotton"),
            ("url_key", "classic-red-tee"),
        ])
    }
}

#[cfg(test)]
mod tests {
    use super::testing::*;
    use super::*;

    #[test]
    fn ids_round_trip_and_have_severities() {
        for rule in RuleId::ALL {
            assert_eq!(RuleId::parse(rule.as_str()), Some(*rule));
            assert_eq!(
                serde_json::to_value(rule).unwrap(),
                Value::String(rule.as_str().into())
            );
        }
        assert_eq!(RuleId::parse("nope"), None);
        assert_eq!(RuleId::UnsafeHtml.severity(), Severity::Error);
    }

    #[test]
    fn a_good_product_has_no_findings_and_disabled_rules_stay_quiet() {
        let good = good();
        assert_eq!(run("all", &good, &good), []);
        let bad = content(&[("name", "X")]);
        let all = run("all", &bad, &bad);
        assert!(all.iter().any(|f| f.rule == RuleId::MissingDescription));
        let mut config = AuditConfig::default();
        config.disabled.insert(RuleId::MissingDescription);
        let view = ScopeView {
            scope: "all",
            owned: &bad,
            default: &bad,
            language: None,
            default_language: None,
            image_sizes: &[],
        };
        let mut out = Vec::new();
        evaluate_scope(&view, &config, &mut out);
        assert!(!out.iter().any(|f| f.rule == RuleId::MissingDescription));
        assert_eq!(out.len(), all.len() - 1);
    }

    #[test]
    fn a_store_view_reports_only_what_it_owns() {
        let default = content(&[("name", "Tee")]);
        // Everything missing at `all` is not repeated at the view that inherits it.
        assert_eq!(run("default", &Content::default(), &default), []);
        // A view that blanks a field owns the gap.
        let blanked = content(&[("description", "")]);
        assert_eq!(
            rules(&run("fr", &blanked, &default)),
            [(RuleId::MissingDescription, "description".into())]
        );
    }
}
