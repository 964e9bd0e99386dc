//! What a store view can be given, decided before a change is proposed, approved or sent.
//!
//! Two of Magento's rules make a store-view write impossible as asked:
//! - a global attribute has one value for every store view; saved in a store view it becomes
//!   the default value (`app/code/Magento/Catalog/Model/ResourceModel/AttributePersistor.php`,
//!   `getScopeValue`). Such a change is refused; a website-scoped one goes to every store view
//!   of the website (`…/ResourceModel/Attribute/ConditionBuilder.php`) and is announced.
//! - an interface attribute (`name`…) is not a custom attribute
//!   (`app/code/Magento/Catalog/Model/Product.php::getCustomAttributesCodes` subtracts
//!   `$interfaceAttributes`), so REST cannot give it back "Use Default Value" in a store view.
//!   Setting it back to inherit is refused, unless the reviewer approved writing the default
//!   value as the view's own value (`explicit_default_values`).

use crate::catalog::content::Content;
use crate::connector::AttributeScope;
use crate::connector::magento::is_interface_attribute;
use crate::stores::StoreView;
use crate::stores::attribute_scopes::Scopes;

/// What a change of one store view does to each field.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct ViewChange {
    /// Fields given a value of the view's own.
    pub set: Vec<String>,
    /// Fields set back to the default value ("Use Default Value").
    pub reset: Vec<String>,
}

impl ViewChange {
    /// The change from a view's own values `live` to `proposed` (both stored as overrides).
    pub fn between(live: &Content, proposed: &Content) -> ViewChange {
        ViewChange {
            set: proposed
                .fields
                .iter()
                .filter(|(k, v)| live.fields.get(*k) != Some(*v))
                .map(|(k, _)| k.clone())
                .collect(),
            reset: live
                .fields
                .keys()
                .filter(|k| !proposed.fields.contains_key(*k))
                .cloned()
                .collect(),
        }
    }
}

/// Why a change cannot go to the store as asked, and what it does besides.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Checked {
    pub refusals: Vec<String>,
    pub warnings: Vec<String>,
    /// Reset fields to write as the view's own value, equal to the default.
    pub explicit_defaults: Vec<String>,
}

impl Checked {
    pub fn refusal(&self) -> Option<String> {
        (!self.refusals.is_empty()).then(|| self.refusals.join("; "))
    }
}

/// Checks a change of store view `view` (one of `views`, the store's) against the store's
/// attribute scopes (attributes whose scope is not known pass; the push's read-back is their
/// check).
pub fn check(
    views: &[StoreView],
    scopes: &Scopes,
    view: &str,
    change: &ViewChange,
    explicit_defaults: bool,
) -> Checked {
    let mut checked = Checked::default();
    for field in &change.set {
        match scopes.get(field) {
            Some(AttributeScope::Global) => checked.refusals.push(format!(
                "`{field}` is a global attribute in this store: Magento keeps one value for every store view, so a value for store view {view} would replace the default value; change it in the default scope (all) instead"
            )),
            Some(AttributeScope::Website) => checked.warnings.push(format!(
                "`{field}` is a website-scoped attribute in this store: Magento writes it to every store view of the website ({})",
                website_views(views, view).join(", ")
            )),
            _ => {}
        }
    }
    for field in change.reset.iter().filter(|f| is_interface_attribute(f)) {
        if explicit_defaults {
            checked.warnings.push(format!(
                "`{field}` is written to store view {view} as its own value, equal to the default value: Magento's REST API cannot set it back to \"Use Default Value\", so the view will not follow later changes of the default"
            ));
            checked.explicit_defaults.push(field.clone());
        } else {
            checked.refusals.push(format!(
                "`{field}` cannot be set back to \"Use Default Value\" in store view {view}: Magento takes `{field}` only as a product field, not a custom attribute, and an empty product field fails its required check; approve with explicit_default_values: true to write the default value as the view's own value instead"
            ));
        }
    }
    checked
}

/// The store views sharing `view`'s website, `view` among them.
fn website_views(views: &[StoreView], view: &str) -> Vec<String> {
    let website = views.iter().find(|v| v.code == view).map(|v| v.website_id);
    let views: Vec<String> = views
        .iter()
        .filter(|v| Some(v.website_id) == website)
        .map(|v| v.code.clone())
        .collect();
    if views.is_empty() {
        vec![view.to_string()]
    } else {
        views
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn content(pairs: &[(&str, &str)]) -> Content {
        Content::of_fields(pairs)
    }

    #[test]
    fn a_change_names_what_it_sets_and_what_it_resets() {
        let live = content(&[("name", "T-shirt"), ("description", "Doux")]);
        let proposed = content(&[("description", "Très doux"), ("meta_title", "Titre")]);
        assert_eq!(
            ViewChange::between(&live, &proposed),
            ViewChange {
                set: vec!["description".into(), "meta_title".into()],
                reset: vec!["name".into()],
            }
        );
    }

    fn views() -> Vec<StoreView> {
        let view = |code: &str, id, website_id| StoreView {
            code: code.into(),
            id,
            name: code.into(),
            website_id,
            locale: None,
            base_url: None,
            base_media_url: None,
            currency: None,
        };
        vec![view("default", 1, 1), view("fr", 2, 1), view("us", 3, 2)]
    }

    #[test]
    fn global_attributes_are_refused_and_website_ones_announced() {
        let scopes: Scopes = [
            ("material".to_string(), AttributeScope::Global),
            ("tax_note".to_string(), AttributeScope::Website),
            ("description".to_string(), AttributeScope::Store),
        ]
        .into_iter()
        .collect();
        let change = ViewChange {
            set: vec![
                "material".into(),
                "tax_note".into(),
                "description".into(),
                "unknown".into(),
            ],
            reset: vec![],
        };
        let checked = check(&views(), &scopes, "fr", &change, false);
        assert_eq!(checked.refusals.len(), 1);
        assert!(checked.refusals[0].contains("`material` is a global attribute"));
        assert_eq!(checked.warnings.len(), 1);
        assert!(
            checked.warnings[0].contains("every store view of the website (default, fr)"),
            "{:?}",
            checked.warnings
        );
    }

    #[test]
    fn an_interface_attribute_goes_back_to_the_default_only_as_an_explicit_value() {
        let change = ViewChange {
            set: vec![],
            reset: vec!["name".into(), "description".into()],
        };
        let refused = check(&views(), &Scopes::new(), "fr", &change, false);
        assert!(
            refused
                .refusal()
                .unwrap()
                .contains("explicit_default_values: true"),
            "{refused:?}"
        );
        let explicit = check(&views(), &Scopes::new(), "fr", &change, true);
        assert_eq!(explicit.refusal(), None);
        assert_eq!(explicit.explicit_defaults, vec!["name".to_string()]);
        assert!(explicit.warnings[0].contains("equal to the default value"));
    }
}
