//! Whether the store shows what a push sent, and nothing it was not asked to change.
//!
//! Magento answers a save with success in several cases where it kept nothing or wrote
//! elsewhere: an interface attribute inside `custom_attributes` is dropped
//! (`app/code/Magento/Catalog/Model/Product.php::getCustomAttributesCodes`), a global
//! attribute saved in a store view changes the default value
//! (`app/code/Magento/Catalog/Model/ResourceModel/AttributePersistor.php::getScopeValue`), and
//! a bulk operation run by MySQL's queue is saved in the default store view whatever the URL
//! said (`app/code/Magento/AsynchronousOperations/Model/MassConsumerEnvelopeCallback.php`). So
//! a push is done only when the store, read back, shows each written field and label as sent
//! ([`not_applied`]), and the scopes the write had to leave alone show what they showed
//! before ([`changed_elsewhere`]).
//!
//! Everything here is a pure function of what was sent and what was read, so it can judge
//! one product or a whole batch.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::catalog::content::{Content, DEFAULT_SCOPE};

/// What the pushed scope must show once the write is applied.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Expected {
    /// Each written field's value as the scope must show it (`None`: no value).
    pub fields: BTreeMap<String, Option<String>>,
    /// Each relabelled gallery entry's label.
    pub labels: BTreeMap<i64, Option<String>>,
}

impl Expected {
    /// The keys the write touches: field names and `media.<entry id>.label`.
    pub fn keys(&self) -> Vec<String> {
        self.fields
            .keys()
            .cloned()
            .chain(self.labels.keys().map(|id| label_key(*id)))
            .collect()
    }
}

/// A field (or `media.<entry id>.label`) the store does not show as it was sent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct NotApplied {
    pub field: String,
    pub sent: Option<String>,
    /// What the pushed scope shows instead.
    pub store: Option<String>,
}

/// One value of a scope a write must leave alone: the default scope's value, or a store
/// view's own value (`None` while it inherits the default).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Watched {
    pub scope: String,
    pub field: String,
    pub value: Option<String>,
}

/// A value of a scope the write was not meant to touch that changed across it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ChangedElsewhere {
    /// `all` or a store view code.
    pub scope: String,
    pub field: String,
    /// For a store view, its own value (`null`: it inherited the default).
    pub before: Option<String>,
    pub after: Option<String>,
}

/// What the read-back says about one write.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Verdict {
    pub not_applied: Vec<NotApplied>,
    pub changed_elsewhere: Vec<ChangedElsewhere>,
}

impl Verdict {
    pub fn is_clean(&self) -> bool {
        self.not_applied.is_empty() && self.changed_elsewhere.is_empty()
    }

    /// The reason given to people, naming each field with what was sent and what the store
    /// shows.
    pub fn message(&self, scope: &str) -> String {
        let mut parts = Vec::new();
        if !self.not_applied.is_empty() {
            let fields: Vec<String> = self
                .not_applied
                .iter()
                .map(|n| {
                    format!(
                        "{} sent {}, the store shows {}",
                        n.field,
                        shown(&n.sent),
                        shown(&n.store)
                    )
                })
                .collect();
            parts.push(format!(
                "the store did not apply the write to {}: {}",
                scope_name(scope),
                fields.join("; ")
            ));
        }
        if !self.changed_elsewhere.is_empty() {
            parts.push(changed_message(&self.changed_elsewhere));
        }
        parts.join("; and ")
    }
}

/// How a change of other scopes reads in a message.
pub fn changed_message(changes: &[ChangedElsewhere]) -> String {
    let changes: Vec<String> = changes
        .iter()
        .map(|c| {
            let (before, after) = if c.scope == DEFAULT_SCOPE {
                (shown(&c.before), shown(&c.after))
            } else {
                (own(&c.before), own(&c.after))
            };
            format!(
                "{} of {} was {before}, is now {after}",
                c.field,
                scope_name(&c.scope)
            )
        })
        .collect();
    format!(
        "the write changed a scope it was not meant to touch: {}",
        changes.join("; ")
    )
}

fn shown(value: &Option<String>) -> String {
    match value {
        Some(v) => format!("{v:?}"),
        None => "no value".into(),
    }
}

fn own(value: &Option<String>) -> String {
    match value {
        Some(v) => format!("its own {v:?}"),
        None => "inherited from the default".into(),
    }
}

fn scope_name(scope: &str) -> String {
    if scope == DEFAULT_SCOPE {
        "the default values".into()
    } else {
        format!("store view {scope}")
    }
}

pub fn label_key(entry_id: i64) -> String {
    format!("media.{entry_id}.label")
}

/// The value of a field or `media.<entry id>.label` in `content`.
fn value_of(content: &Content, key: &str) -> Option<String> {
    match key
        .strip_prefix("media.")
        .and_then(|rest| rest.strip_suffix(".label"))
        .and_then(|id| id.parse::<i64>().ok())
    {
        Some(id) => content
            .media
            .iter()
            .find(|m| m.entry_id == id)
            .and_then(|m| m.label.clone()),
        None => content.fields.get(key).cloned(),
    }
}

/// Each written field and label whose read-back (`shown`, the pushed scope) differs from what
/// was sent.
pub fn not_applied(expected: &Expected, shown: &Content) -> Vec<NotApplied> {
    let fields = expected.fields.iter().filter_map(|(field, sent)| {
        let store = shown.fields.get(field).cloned();
        (store != *sent).then(|| NotApplied {
            field: field.clone(),
            sent: sent.clone(),
            store,
        })
    });
    let labels = expected.labels.iter().filter_map(|(id, sent)| {
        let entry = shown.media.iter().find(|m| m.entry_id == *id);
        let store = entry.and_then(|m| m.label.clone());
        (entry.is_none() || store != *sent).then(|| NotApplied {
            field: label_key(*id),
            sent: sent.clone(),
            store,
        })
    });
    fields.chain(labels).collect()
}

/// The values of `keys` in `scope`, which must not change: as the default scope shows them, or
/// for a store view its own values (`scope_shows` compared with `default_shows`).
pub fn watched(
    scope: &str,
    keys: &[String],
    scope_shows: &Content,
    default_shows: &Content,
) -> Vec<Watched> {
    keys.iter()
        .map(|key| {
            let value = value_of(scope_shows, key);
            let value = if scope == DEFAULT_SCOPE || value != value_of(default_shows, key) {
                value
            } else {
                None
            };
            Watched {
                scope: scope.to_string(),
                field: key.clone(),
                value,
            }
        })
        .collect()
}

/// The watched values that differ after the write.
pub fn changed_elsewhere(before: &[Watched], after: &[Watched]) -> Vec<ChangedElsewhere> {
    before
        .iter()
        .filter_map(|b| {
            let a = after
                .iter()
                .find(|a| a.scope == b.scope && a.field == b.field)?;
            (a.value != b.value).then(|| ChangedElsewhere {
                scope: b.scope.clone(),
                field: b.field.clone(),
                before: b.value.clone(),
                after: a.value.clone(),
            })
        })
        .collect()
}

/// Judges one write: what the pushed scope shows after it against `expected`, and the watched
/// scopes after against before.
pub fn verify(
    expected: &Expected,
    shown: &Content,
    before: &[Watched],
    after: &[Watched],
) -> Verdict {
    Verdict {
        not_applied: not_applied(expected, shown),
        changed_elsewhere: changed_elsewhere(before, after),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::content::MediaItem;

    fn content(pairs: &[(&str, &str)]) -> Content {
        Content::of_fields(pairs)
    }

    fn expect(pairs: &[(&str, Option<&str>)]) -> Expected {
        Expected {
            fields: pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.map(String::from)))
                .collect(),
            labels: BTreeMap::new(),
        }
    }

    #[test]
    fn a_write_the_store_shows_is_clean() {
        let expected = expect(&[("name", Some("T-shirt")), ("meta_keyword", None)]);
        let shown = content(&[("name", "T-shirt"), ("description", "Doux")]);
        assert!(verify(&expected, &shown, &[], &[]).is_clean());
    }

    #[test]
    fn each_field_the_store_did_not_take_is_named_with_both_values() {
        let expected = expect(&[
            ("name", Some("T-shirt")),
            ("meta_title", Some("Titre")),
            ("meta_keyword", None),
        ]);
        let shown = content(&[
            ("name", "T-shirt rouge"),
            ("meta_title", "Titre"),
            ("meta_keyword", "old"),
        ]);
        let verdict = verify(&expected, &shown, &[], &[]);
        assert_eq!(
            verdict.not_applied,
            vec![
                NotApplied {
                    field: "meta_keyword".into(),
                    sent: None,
                    store: Some("old".into())
                },
                NotApplied {
                    field: "name".into(),
                    sent: Some("T-shirt".into()),
                    store: Some("T-shirt rouge".into())
                },
            ]
        );
        let message = verdict.message("fr");
        assert!(message.contains("store view fr"), "{message}");
        assert!(
            message.contains(r#"name sent "T-shirt", the store shows "T-shirt rouge""#),
            "{message}"
        );
        assert!(
            message.contains("meta_keyword sent no value, the store shows \"old\""),
            "{message}"
        );
    }

    #[test]
    fn labels_are_compared_entry_by_entry() {
        let image = |id, label: Option<&str>| MediaItem {
            entry_id: id,
            file: format!("/{id}.jpg"),
            label: label.map(String::from),
            position: Some(id),
            disabled: false,
            roles: vec![],
        };
        let mut expected = Expected::default();
        expected.labels.insert(7, Some("Vue de face".into()));
        expected.labels.insert(9, Some("Dos".into()));
        let mut shown = Content {
            media: vec![image(7, Some("Front")), image(8, Some("Vue de face"))],
            ..Content::default()
        };
        let verdict = not_applied(&expected, &shown);
        assert_eq!(verdict.len(), 2);
        assert_eq!(verdict[0].field, "media.7.label");
        assert_eq!(verdict[0].store.as_deref(), Some("Front"));
        assert_eq!(verdict[1].field, "media.9.label", "an entry that is gone");
        shown.media[0].label = Some("Vue de face".into());
        shown.media.push(image(9, Some("Dos")));
        assert!(not_applied(&expected, &shown).is_empty());
    }

    #[test]
    fn a_store_view_is_watched_by_its_own_values_and_the_default_by_its_values() {
        let keys = vec!["name".to_string(), "meta_keyword".to_string()];
        let default_before = content(&[("name", "Tee"), ("meta_keyword", "tee")]);
        // A store-view push watches the default values as they are.
        let watched_default = watched("all", &keys, &default_before, &default_before);
        assert_eq!(watched_default[1].value.as_deref(), Some("tee"));

        // A push of default values watches the default store view's own values.
        let view_before = content(&[("name", "Tee"), ("meta_keyword", "tee")]);
        let before = watched("default", &keys, &view_before, &default_before);
        assert_eq!(before[1].value, None, "the view inherits");

        // Applied as meant: the inheriting view follows the new default, and has no value of
        // its own still.
        let default_after = content(&[("name", "Tee"), ("meta_keyword", "shirt")]);
        let after = watched("default", &keys, &default_after, &default_after);
        assert!(changed_elsewhere(&before, &after).is_empty());

        // Saved in the default store view instead: the view gained its own value.
        let view_after = content(&[("name", "Tee"), ("meta_keyword", "shirt")]);
        let after = watched("default", &keys, &view_after, &default_before);
        let changed = changed_elsewhere(&before, &after);
        assert_eq!(
            changed,
            vec![ChangedElsewhere {
                scope: "default".into(),
                field: "meta_keyword".into(),
                before: None,
                after: Some("shirt".into()),
            }]
        );
        let message = changed_message(&changed);
        assert!(
            message.contains(
                r#"meta_keyword of store view default was inherited from the default, is now its own "shirt""#
            ),
            "{message}"
        );
    }
}
