//! What pushing one approved proposal means, decided from three states of one scope: the
//! base (what the store showed when the proposal was made), the proposal, and the store now.
//!
//! For each field and gallery entry the proposal changes: the store already shows the
//! proposed value → nothing to write (a repeated push, or someone made the same change);
//! the store still shows the base value → write it; anything else → someone changed it in
//! the store meanwhile, and the proposal is a conflict: nothing of it is written.

use std::collections::BTreeSet;

use serde::Serialize;
use utoipa::ToSchema;

use crate::catalog::content::{Content, MediaItem};
use crate::connector::magento::ContentWrites;

/// The three states of one changed field or label.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct ConflictField {
    /// A content field, or `media.<entry id>.label`.
    pub field: String,
    pub base: Option<String>,
    /// What the store shows now.
    pub store: Option<String>,
    pub proposal: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Plan {
    /// The store already shows everything the proposal changes.
    AlreadyApplied,
    Conflict(Vec<ConflictField>),
    Write(ContentWrites),
}

pub struct Scopes<'a> {
    /// `true` for a store view: a value the proposal stops overriding is written as "use the
    /// default value" (null), not as a copy of the default.
    pub is_view: bool,
    /// Effective contents (what the scope shows).
    pub base: &'a Content,
    pub proposal: &'a Content,
    pub store: &'a Content,
    /// For a store view, the proposal as stored: only its overrides.
    pub proposal_owned: &'a Content,
}

pub fn plan(s: &Scopes<'_>) -> Plan {
    let mut conflicts = Vec::new();
    let mut writes = ContentWrites::default();
    let fields: BTreeSet<&String> = s
        .base
        .fields
        .keys()
        .chain(s.proposal.fields.keys())
        .collect();
    for field in fields {
        let base = s.base.fields.get(field);
        let proposed = s.proposal.fields.get(field);
        if base == proposed {
            continue;
        }
        let now = s.store.fields.get(field);
        if now == proposed {
            continue;
        }
        if now != base {
            conflicts.push(ConflictField {
                field: field.clone(),
                base: base.cloned(),
                store: now.cloned(),
                proposal: proposed.cloned(),
            });
            continue;
        }
        let value = if s.is_view && !s.proposal_owned.fields.contains_key(field) {
            None
        } else {
            proposed.cloned()
        };
        writes.fields.insert(field.clone(), value);
    }
    for proposed in &s.proposal.media {
        let label = |c: &Content| media(c, proposed.entry_id).map(|m| m.label.clone());
        let base = label(s.base);
        if base.as_ref() == Some(&proposed.label) {
            continue;
        }
        let now = label(s.store);
        if now.as_ref() == Some(&proposed.label) {
            continue;
        }
        let Some(current) = media(s.store, proposed.entry_id) else {
            // The image is gone from the store: nothing to label.
            conflicts.push(ConflictField {
                field: format!("media.{}.label", proposed.entry_id),
                base: base.flatten(),
                store: None,
                proposal: proposed.label.clone(),
            });
            continue;
        };
        if now != base {
            conflicts.push(ConflictField {
                field: format!("media.{}.label", proposed.entry_id),
                base: base.flatten(),
                store: now.flatten(),
                proposal: proposed.label.clone(),
            });
            continue;
        }
        // Only the label changes; position, roles and the file stay as the store has them.
        writes.media.push(MediaItem {
            label: proposed.label.clone(),
            ..current.clone()
        });
    }
    if !conflicts.is_empty() {
        Plan::Conflict(conflicts)
    } else if writes.is_empty() {
        Plan::AlreadyApplied
    } else {
        Plan::Write(writes)
    }
}

fn media(content: &Content, entry_id: i64) -> Option<&MediaItem> {
    content.media.iter().find(|m| m.entry_id == entry_id)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn content(pairs: &[(&str, &str)]) -> Content {
        Content::of_fields(pairs)
    }

    fn image(id: i64, label: Option<&str>) -> MediaItem {
        MediaItem {
            entry_id: id,
            file: format!("/t/{id}.jpg"),
            label: label.map(String::from),
            position: Some(id),
            disabled: false,
            roles: vec!["image".into()],
        }
    }

    fn default_scope<'a>(
        base: &'a Content,
        proposal: &'a Content,
        store: &'a Content,
    ) -> Scopes<'a> {
        Scopes {
            is_view: false,
            base,
            proposal,
            store,
            proposal_owned: proposal,
        }
    }

    #[test]
    fn only_changed_fields_are_written() {
        let base = content(&[
            ("name", "Tee"),
            ("description", "Old"),
            ("meta_title", "Tee"),
        ]);
        let proposal = content(&[
            ("name", "Tee"),
            ("description", "New"),
            ("meta_title", "Tee"),
        ]);
        let Plan::Write(w) = plan(&default_scope(&base, &proposal, &base)) else {
            panic!("expected a write");
        };
        assert_eq!(w.fields.len(), 1);
        assert_eq!(w.fields["description"], Some("New".into()));
        assert!(w.media.is_empty());
    }

    #[test]
    fn a_change_in_the_store_meanwhile_is_a_conflict_with_three_values() {
        let base = content(&[("description", "Old"), ("name", "Tee")]);
        let proposal = content(&[("description", "New"), ("name", "Better tee")]);
        let store = content(&[("description", "Edited in Magento"), ("name", "Tee")]);
        assert_eq!(
            plan(&default_scope(&base, &proposal, &store)),
            Plan::Conflict(vec![ConflictField {
                field: "description".into(),
                base: Some("Old".into()),
                store: Some("Edited in Magento".into()),
                proposal: Some("New".into()),
            }]),
            "nothing of a conflicting proposal is written, not even its other fields"
        );
        // A store change to a field the proposal leaves alone is no conflict.
        let elsewhere = content(&[("description", "Old"), ("name", "Tee"), ("meta_title", "X")]);
        assert!(matches!(
            plan(&default_scope(&base, &proposal, &elsewhere)),
            Plan::Write(_)
        ));
    }

    #[test]
    fn a_repeated_push_writes_nothing() {
        let base = content(&[("description", "Old")]);
        let proposal = content(&[("description", "New")]);
        assert_eq!(
            plan(&default_scope(&base, &proposal, &proposal)),
            Plan::AlreadyApplied
        );
    }

    #[test]
    fn a_store_view_that_stops_overriding_asks_for_the_default_again() {
        let base = content(&[("name", "T-shirt"), ("description", "Soft")]);
        let proposal = content(&[("name", "Tee"), ("description", "Soft")]);
        let owned = content(&[]);
        let Plan::Write(w) = plan(&Scopes {
            is_view: true,
            base: &base,
            proposal: &proposal,
            store: &base,
            proposal_owned: &owned,
        }) else {
            panic!("expected a write");
        };
        assert_eq!(w.fields["name"], None);
    }

    #[test]
    fn labels_update_the_existing_entry_only() {
        let mut base = content(&[]);
        base.media = vec![image(7, None), image(8, Some("Back"))];
        let mut proposal = base.clone();
        proposal.media[0].label = Some("Red tee, front".into());
        let mut store = base.clone();
        store.media[0].position = Some(3);
        let Plan::Write(w) = plan(&default_scope(&base, &proposal, &store)) else {
            panic!("expected a write");
        };
        assert!(w.fields.is_empty());
        assert_eq!(w.media.len(), 1);
        assert_eq!(w.media[0].entry_id, 7);
        assert_eq!(w.media[0].label.as_deref(), Some("Red tee, front"));
        assert_eq!(w.media[0].position, Some(3), "the store's position is kept");

        let mut relabelled = base.clone();
        relabelled.media[0].label = Some("Someone else's alt".into());
        assert!(matches!(
            plan(&default_scope(&base, &proposal, &relabelled)),
            Plan::Conflict(c) if c[0].field == "media.7.label"
        ));
        let mut deleted = base.clone();
        deleted.media.remove(0);
        assert!(matches!(
            plan(&default_scope(&base, &proposal, &deleted)),
            Plan::Conflict(_)
        ));
    }
}
