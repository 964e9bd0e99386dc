//! URL keys: present and shaped the way Magento writes them (lowercase words joined by `-`).

use serde_json::json;

use super::{Finding, RuleId, ScopeView, owned_value};

pub(super) fn check(view: &ScopeView<'_>, out: &mut Vec<Finding>) {
    let Some(key) = owned_value(view, "url_key") else {
        return;
    };
    if key.trim().is_empty() {
        out.push(Finding::new(
            RuleId::MissingUrlKey,
            "url_key",
            "url key is missing",
            json!({}),
        ));
    } else if !is_slug(key) {
        out.push(Finding::new(
            RuleId::UrlKeyNotSlug,
            "url_key",
            format!("url key {key:?} is not lowercase letters and digits joined by hyphens"),
            json!({"url_key": key, "suggestion": slugify(key)}),
        ));
    }
}

fn is_slug(key: &str) -> bool {
    !key.is_empty()
        && key.split('-').all(|part| {
            !part.is_empty()
                && part
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        })
}

/// What the key would be as a slug (a hint for whoever fixes it).
fn slugify(text: &str) -> String {
    let mut out = String::new();
    for c in text.to_lowercase().chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c);
        } else if !out.is_empty() && !out.ends_with('-') {
            out.push('-');
        }
    }
    out.trim_end_matches('-').to_string()
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use super::*;

    #[test]
    fn slugs() {
        assert!(is_slug("classic-red-tee-12"));
        for bad in [
            "",
            "Classic-Red",
            "classic red",
            "-tee",
            "tee-",
            "tee--red",
            "écharpe",
            "tee_red",
            "tee/red",
        ] {
            assert!(!is_slug(bad), "{bad}");
        }
        assert_eq!(slugify("Classic Red Tee 12 Key"), "classic-red-tee-12-key");
    }

    #[test]
    fn findings() {
        let mut c = good();
        c.fields.insert("url_key".into(), "Classic Red Tee".into());
        let found = run("all", &c, &c);
        assert_eq!(rules(&found), [(RuleId::UrlKeyNotSlug, "url_key".into())]);
        assert_eq!(found[0].detail["suggestion"], "classic-red-tee");
        c.fields.remove("url_key");
        assert_eq!(
            rules(&run("all", &c, &c)),
            [(RuleId::MissingUrlKey, "url_key".into())]
        );
        // A view that does not override the key has nothing to report.
        assert_eq!(run("fr", &content(&[]), &c), []);
    }
}
