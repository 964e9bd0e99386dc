//! Store views in another language that still show the default-language text.

use serde_json::json;

use super::{Finding, RuleId, ScopeView};

/// Text fields a store view in another language is expected to translate.
pub const TRANSLATED_FIELDS: &[&str] = &[
    "name",
    "description",
    "short_description",
    "meta_title",
    "meta_description",
];

/// The language part of a Magento locale (`fr_FR` → `fr`, `pt-BR` → `pt`).
pub fn language_of(locale: &str) -> Option<String> {
    let language = locale
        .split(['_', '-'])
        .next()
        .map(|l| l.trim().to_ascii_lowercase())?;
    (!language.is_empty() && language.bytes().all(|b| b.is_ascii_alphabetic())).then_some(language)
}

pub(super) fn check(view: &ScopeView<'_>, out: &mut Vec<Finding>) {
    if view.is_default() {
        return;
    }
    // Without both locales nobody can say the text is in the wrong language.
    let (Some(language), Some(default_language)) = (view.language, view.default_language) else {
        return;
    };
    if language == default_language {
        return;
    }
    for field in TRANSLATED_FIELDS {
        let inherits = !view.owned.fields.contains_key(*field);
        let has_default = view
            .default
            .fields
            .get(*field)
            .is_some_and(|v| !v.trim().is_empty());
        if inherits && has_default {
            out.push(Finding::new(
                RuleId::Untranslated,
                field,
                format!(
                    "{} shows the default ({default_language}) text in a {language} store view",
                    field.replace('_', " ")
                ),
                json!({"language": language, "default_language": default_language}),
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use super::*;

    #[test]
    fn languages_of_locales() {
        assert_eq!(language_of("fr_FR").as_deref(), Some("fr"));
        assert_eq!(language_of("pt-BR").as_deref(), Some("pt"));
        assert_eq!(language_of("EN").as_deref(), Some("en"));
        assert_eq!(language_of(""), None);
        assert_eq!(language_of("12_34"), None);
    }

    #[test]
    fn inherited_text_in_another_language_is_untranslated() {
        let default = content(&[
            ("name", "Red tee"),
            ("description", "Soft cotton"),
            ("meta_title", ""),
        ]);
        let found = run_languages("fr", &content(&[]), &default, Some("fr"), Some("en"));
        assert_eq!(
            rules(&found),
            [
                (RuleId::Untranslated, "description".into()),
                (RuleId::Untranslated, "name".into())
            ]
        );
        // Translated fields, same-language views and unknown locales are fine.
        let french = content(&[
            ("name", "T-shirt rouge"),
            (
                "description",
                "Un t-shirt en coton doux, coupé pour tous les jours et qui garde sa forme au lavage.",
            ),
        ]);
        assert_eq!(
            run_languages("fr", &french, &default, Some("fr"), Some("en")),
            []
        );
        assert_eq!(
            run_languages("uk", &content(&[]), &default, Some("en"), Some("en")),
            []
        );
        assert_eq!(
            run_languages("x", &content(&[]), &default, None, Some("en")),
            []
        );
    }
}
