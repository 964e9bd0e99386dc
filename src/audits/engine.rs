//! Evaluates one product, all its scopes, into scoped findings and a score.

use serde_json::Value;

use super::rules::{self, AuditConfig, Finding, ProductFacts, ScopeView, language_of};
use crate::catalog::content::{Content, DEFAULT_SCOPE};
use crate::stores::StoreView;

/// The store's scopes and their languages, computed once per run.
pub struct StoreScopes {
    /// Store view code → language (`fr`), when the view's locale is known.
    languages: Vec<(String, Option<String>)>,
    /// The language of the default values: that of the store's default view.
    default_language: Option<String>,
}

impl StoreScopes {
    pub fn new(views: &[StoreView]) -> StoreScopes {
        let languages: Vec<(String, Option<String>)> = views
            .iter()
            .map(|v| (v.code.clone(), v.locale.as_deref().and_then(language_of)))
            .collect();
        // Magento's default values are what the default store view shows; without a view
        // called `default`, the lowest id stands in.
        let default_language = views
            .iter()
            .find(|v| v.code == "default")
            .or_else(|| views.iter().min_by_key(|v| v.id))
            .and_then(|v| v.locale.as_deref().and_then(language_of));
        StoreScopes {
            languages,
            default_language,
        }
    }

    /// The language to write `scope` in: the view's, else the default values', else English.
    pub fn language_or_default(&self, scope: &str) -> String {
        let language = if scope == DEFAULT_SCOPE {
            self.default_language.as_deref()
        } else {
            self.language(scope).or(self.default_language.as_deref())
        };
        language.unwrap_or("en").to_string()
    }

    fn language(&self, scope: &str) -> Option<&str> {
        self.languages
            .iter()
            .find(|(code, _)| code == scope)
            .and_then(|(_, l)| l.as_deref())
    }
}

/// A product as the run reads it: its facts and the live content of each scope it has.
pub struct ProductUnderAudit {
    pub type_id: Option<String>,
    pub attributes: Value,
    /// `(scope, content)`; `all` first when present.
    pub scopes: Vec<(String, Content)>,
    /// (entry id, width, height) of mirrored pictures.
    pub image_sizes: Vec<(i64, u32, u32)>,
}

/// A finding with the scope it belongs to.
#[derive(Debug, Clone, PartialEq)]
pub struct ScopedFinding {
    pub store_view: String,
    pub finding: Finding,
}

pub fn evaluate(
    product: &ProductUnderAudit,
    scopes: &StoreScopes,
    config: &AuditConfig,
) -> Vec<ScopedFinding> {
    let empty = Content::default();
    let default = product
        .scopes
        .iter()
        .find(|(scope, _)| scope == DEFAULT_SCOPE)
        .map_or(&empty, |(_, c)| c);
    let mut out = Vec::new();
    let mut found = Vec::new();
    rules::evaluate_product(
        &ProductFacts {
            type_id: product.type_id.as_deref(),
            attributes: &product.attributes,
        },
        config,
        &mut found,
    );
    tag(&mut out, DEFAULT_SCOPE, &mut found);
    rules::evaluate_scope(
        &ScopeView {
            scope: DEFAULT_SCOPE,
            owned: default,
            default,
            language: scopes.default_language.as_deref(),
            default_language: scopes.default_language.as_deref(),
            image_sizes: &product.image_sizes,
        },
        config,
        &mut found,
    );
    tag(&mut out, DEFAULT_SCOPE, &mut found);
    // Every store view is audited, including those that override nothing: they may still
    // show text in the wrong language.
    for (code, _) in &scopes.languages {
        let owned = product
            .scopes
            .iter()
            .find(|(scope, _)| scope == code)
            .map_or(&empty, |(_, c)| c);
        rules::evaluate_scope(
            &ScopeView {
                scope: code,
                owned,
                default,
                language: scopes.language(code),
                default_language: scopes.default_language.as_deref(),
                image_sizes: &product.image_sizes,
            },
            config,
            &mut found,
        );
        tag(&mut out, code, &mut found);
    }
    out
}

fn tag(out: &mut Vec<ScopedFinding>, scope: &str, found: &mut Vec<Finding>) {
    out.extend(found.drain(..).map(|finding| ScopedFinding {
        store_view: scope.to_string(),
        finding,
    }));
}

/// 100 less each finding's penalty, never below 0.
pub fn score(findings: &[ScopedFinding]) -> i16 {
    let penalty: i32 = findings
        .iter()
        .map(|f| f.finding.rule.severity().penalty())
        .sum();
    (100 - penalty).max(0) as i16
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audits::rules::RuleId;
    use serde_json::json;

    fn view(code: &str, id: i64, locale: &str) -> StoreView {
        StoreView {
            code: code.into(),
            id,
            name: code.into(),
            website_id: 1,
            locale: Some(locale.into()),
            base_url: None,
            base_media_url: None,
            currency: None,
        }
    }

    #[test]
    fn findings_land_in_the_scope_that_owns_the_value() {
        let scopes = StoreScopes::new(&[view("default", 1, "en_US"), view("fr", 2, "fr_FR")]);
        let mut default = Content::default();
        default.fields.insert("name".into(), "Tee".into());
        let mut french = Content::default();
        french.fields.insert("name".into(), "T-shirt".into());
        french.fields.insert("meta_title".into(), "x".repeat(70));
        let product = ProductUnderAudit {
            type_id: Some("simple".into()),
            attributes: json!({"price": 0, "status": "enabled", "visibility": 4, "category_ids": ["3"]}),
            scopes: vec![("all".into(), default), ("fr".into(), french)],
            image_sizes: Vec::new(),
        };
        let found = evaluate(&product, &scopes, &AuditConfig::default());
        let at = |scope: &str| {
            let mut r: Vec<RuleId> = found
                .iter()
                .filter(|f| f.store_view == scope)
                .map(|f| f.finding.rule)
                .collect();
            r.sort();
            r
        };
        assert_eq!(
            at("all"),
            [
                RuleId::MissingDescription,
                RuleId::MissingShortDescription,
                RuleId::MissingMetaTitle,
                RuleId::MissingMetaDescription,
                RuleId::MissingUrlKey,
                RuleId::NoImages,
                RuleId::PriceZero,
            ]
        );
        assert_eq!(at("default"), []);
        // The French view translated its name; missing defaults have nothing to translate.
        assert_eq!(at("fr"), [RuleId::MetaTitleTooLong]);
        // Four errors, three warnings and an info: 100 - 80 - 24 - 2 is below zero.
        assert_eq!(score(&found), 0);
        let fr_only: Vec<ScopedFinding> =
            found.into_iter().filter(|f| f.store_view == "fr").collect();
        assert_eq!(score(&fr_only), 92);
    }

    #[test]
    fn scores_stop_at_zero() {
        let many: Vec<ScopedFinding> = (0..10)
            .map(|_| ScopedFinding {
                store_view: "all".into(),
                finding: Finding::new(RuleId::UnsafeHtml, "description", "x", json!({})),
            })
            .collect();
        assert_eq!(score(&many), 0);
        assert_eq!(score(&[]), 100);
    }
}
