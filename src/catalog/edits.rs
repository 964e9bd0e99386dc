//! A person's edit of a product's content in one scope: parsed and checked at the edge, then
//! applied to what the scope shows now.
//!
//! In the default scope a `null` value removes the field. In a store view the edit applies to
//! the view's effective content and the result is stored as overrides again, so `null` there
//! means "use the default value", as in Magento's "Use Default Value".

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer};
use utoipa::ToSchema;

use super::content::{Content, DEFAULT_SCOPE};
use super::versions::effective;
use crate::error::Error;

/// Fields Magento keeps in `varchar(255)`.
const SHORT_FIELDS: &[&str] = &["name", "meta_title", "url_key"];
const SHORT_FIELD_MAX_CHARS: usize = 255;
/// Magento's `text` columns hold 64 KiB.
const LONG_FIELD_MAX_BYTES: usize = 65_535;
const LABEL_MAX_CHARS: usize = 255;
pub const NOTE_MAX_CHARS: usize = 2_000;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MediaLabelEdit {
    /// The gallery entry's id as the store knows it.
    pub entry_id: i64,
    /// The new alt text; `null` clears it.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub label: Option<Option<String>>,
}

/// Tells a `null` (`Some(None)`) from an absent key (`None`, through `default`).
fn present<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Option<String>>, D::Error> {
    Option::<String>::deserialize(d).map(Some)
}

/// A checked edit: field names exist in the store, values are within limits.
#[derive(Debug, Clone, PartialEq)]
pub struct ContentEdit {
    fields: BTreeMap<String, Option<String>>,
    labels: Vec<(i64, Option<String>)>,
}

impl ContentEdit {
    /// `is_field` says whether a field name is content of this store.
    pub fn parse(
        scope: &str,
        fields: BTreeMap<String, Option<String>>,
        media: Vec<MediaLabelEdit>,
        is_field: impl Fn(&str) -> bool,
    ) -> Result<ContentEdit, Error> {
        if fields.is_empty() && media.is_empty() {
            return Err(Error::invalid("fields", "the edit changes nothing"));
        }
        for (field, value) in &fields {
            let at = format!("fields.{field}");
            if !is_field(field) {
                return Err(Error::invalid(
                    at,
                    format!("`{field}` is not a content field of this store"),
                ));
            }
            match value {
                Some(value) => check_value(&at, field, value)?,
                None if field == "name" && scope == DEFAULT_SCOPE => {
                    return Err(Error::invalid(
                        at,
                        "a product needs a name in the default scope",
                    ));
                }
                None => {}
            }
        }
        let mut labels = Vec::with_capacity(media.len());
        for (i, item) in media.into_iter().enumerate() {
            let at = format!("media[{i}].label");
            let label = item
                .label
                .ok_or_else(|| Error::invalid(&at, "label is required (null clears it)"))?;
            if let Some(text) = &label {
                if text.chars().count() > LABEL_MAX_CHARS {
                    return Err(Error::invalid(
                        at,
                        format!("a label is at most {LABEL_MAX_CHARS} characters"),
                    ));
                }
                check_characters(&at, text)?;
            }
            if labels.iter().any(|(id, _)| *id == item.entry_id) {
                return Err(Error::invalid(
                    format!("media[{i}].entry_id"),
                    "each media entry may be edited once",
                ));
            }
            labels.push((item.entry_id, label));
        }
        Ok(ContentEdit { fields, labels })
    }

    /// The content to store for `scope` after this edit, given the default scope's live
    /// content and the scope's own live content (its overrides, for a store view).
    pub fn apply(&self, scope: &str, default: &Content, live: &Content) -> Result<Content, Error> {
        let mut shown = effective(scope, default, live);
        for (field, value) in &self.fields {
            match value {
                Some(value) => {
                    shown.fields.insert(field.clone(), value.clone());
                }
                None => {
                    shown.fields.remove(field);
                }
            }
        }
        for (i, (entry_id, label)) in self.labels.iter().enumerate() {
            let item = shown
                .media
                .iter_mut()
                .find(|m| m.entry_id == *entry_id)
                .ok_or_else(|| {
                    Error::invalid(
                        format!("media[{i}].entry_id"),
                        format!("the product has no media entry {entry_id}"),
                    )
                })?;
            item.label = label.clone();
        }
        Ok(if scope == DEFAULT_SCOPE {
            shown
        } else {
            shown.overrides_of(default)
        })
    }
}

/// Whether storing `proposed` in `scope` would change what the scope shows.
pub fn changes_anything(
    scope: &str,
    default: &Content,
    live: &Content,
    proposed: &Content,
) -> bool {
    effective(scope, default, live).hash() != effective(scope, default, proposed).hash()
}

fn check_value(at: &str, field: &str, value: &str) -> Result<(), Error> {
    if SHORT_FIELDS.contains(&field) {
        if value.chars().count() > SHORT_FIELD_MAX_CHARS {
            return Err(Error::invalid(
                at,
                format!("`{field}` is at most {SHORT_FIELD_MAX_CHARS} characters"),
            ));
        }
    } else if value.len() > LONG_FIELD_MAX_BYTES {
        return Err(Error::invalid(
            at,
            format!("`{field}` is at most {LONG_FIELD_MAX_BYTES} bytes"),
        ));
    }
    if field == "name" && value.trim().is_empty() {
        return Err(Error::invalid(at, "a name cannot be empty"));
    }
    if field == "url_key"
        && (value.is_empty()
            || !value
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'))
    {
        return Err(Error::invalid(
            at,
            "a url_key is lowercase letters, digits and hyphens",
        ));
    }
    check_characters(at, value)
}

/// Text may hold tabs and line breaks but no other control characters (PostgreSQL cannot
/// store NUL in JSON, and the store would not show the rest).
fn check_characters(at: &str, value: &str) -> Result<(), Error> {
    if value
        .chars()
        .any(|c| c.is_control() && !matches!(c, '\t' | '\n' | '\r'))
    {
        return Err(Error::invalid(at, "control characters are not allowed"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::content::MediaItem;

    fn content(pairs: &[(&str, &str)]) -> Content {
        Content::of_fields(pairs)
    }

    fn edit(scope: &str, pairs: &[(&str, Option<&str>)]) -> ContentEdit {
        ContentEdit::parse(
            scope,
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.map(String::from)))
                .collect(),
            vec![],
            |f| crate::catalog::content::STANDARD_FIELDS.contains(&f),
        )
        .unwrap()
    }

    #[test]
    fn default_scope_edits_set_and_clear_fields() {
        let live = content(&[("name", "Tee"), ("description", "Soft")]);
        let e = edit(
            "all",
            &[("description", None), ("meta_title", Some("Tee!"))],
        );
        let out = e.apply("all", &live, &live).unwrap();
        assert_eq!(out, content(&[("name", "Tee"), ("meta_title", "Tee!")]));
    }

    #[test]
    fn store_view_edits_are_stored_as_overrides() {
        let default = content(&[("name", "Tee"), ("description", "Soft")]);
        let view = content(&[("name", "T-shirt")]);
        // Setting a value equal to the default inherits it; null drops the override.
        let e = edit(
            "fr",
            &[
                ("description", Some("Doux")),
                ("name", None),
                ("meta_title", Some("Tee")),
            ],
        );
        let out = e.apply("fr", &default, &view).unwrap();
        assert_eq!(
            out,
            content(&[("description", "Doux"), ("meta_title", "Tee")])
        );
        let same = edit("fr", &[("name", Some("T-shirt"))]);
        let out = same.apply("fr", &default, &view).unwrap();
        assert!(!changes_anything("fr", &default, &view, &out));
        let inherit = edit("fr", &[("description", None)]);
        let out = inherit.apply("fr", &default, &view).unwrap();
        assert!(!changes_anything("fr", &default, &view, &out));
    }

    #[test]
    fn labels_apply_to_known_entries_only() {
        let mut live = content(&[("name", "Tee")]);
        live.media.push(MediaItem {
            entry_id: 7,
            file: "/t/e/tee.jpg".into(),
            label: Some("old".into()),
            position: Some(1),
            disabled: false,
            roles: vec!["image".into()],
        });
        let parse = |id: i64, label: Option<&str>| {
            ContentEdit::parse(
                "all",
                BTreeMap::new(),
                vec![MediaLabelEdit {
                    entry_id: id,
                    label: Some(label.map(String::from)),
                }],
                |_| true,
            )
            .unwrap()
        };
        let out = parse(7, Some("Red tee, front"))
            .apply("all", &live, &live)
            .unwrap();
        assert_eq!(out.media[0].label.as_deref(), Some("Red tee, front"));
        assert_eq!(out.media[0].roles, ["image"]);
        assert!(parse(8, None).apply("all", &live, &live).is_err());
    }

    #[test]
    fn values_are_checked() {
        let parse = |scope: &str, field: &str, value: Option<&str>| {
            ContentEdit::parse(
                scope,
                BTreeMap::from([(field.to_string(), value.map(String::from))]),
                vec![],
                |f| f != "price",
            )
        };
        assert!(parse("all", "price", Some("1")).is_err());
        assert!(parse("all", "name", None).is_err());
        assert!(parse("fr", "name", None).is_ok());
        assert!(parse("all", "name", Some("  ")).is_err());
        assert!(parse("all", "meta_title", Some(&"é".repeat(255))).is_ok());
        assert!(parse("all", "meta_title", Some(&"é".repeat(256))).is_err());
        assert!(parse("all", "description", Some(&"x".repeat(65_535))).is_ok());
        assert!(parse("all", "description", Some(&"x".repeat(65_536))).is_err());
        assert!(parse("all", "description", Some("a\u{0}b")).is_err());
        assert!(parse("all", "description", Some("line\nbreak\ttab")).is_ok());
        assert!(parse("all", "url_key", Some("red-tee-2")).is_ok());
        assert!(parse("all", "url_key", Some("Red Tee")).is_err());
        assert!(ContentEdit::parse("all", BTreeMap::new(), vec![], |_| true).is_err());
    }
}
