//! The platform-neutral product content model: the editable fields and media labels of one
//! product in one scope, hashed canonically so an unchanged product writes nothing.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use utoipa::ToSchema;

/// The default scope: values every store view inherits unless it overrides them.
pub const DEFAULT_SCOPE: &str = "all";

/// Fields every product's content has; stores may add more content attributes.
pub const STANDARD_FIELDS: &[&str] = &[
    "name",
    "description",
    "short_description",
    "meta_title",
    "meta_keyword",
    "meta_description",
    "url_key",
];

/// One image's editable part.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct MediaItem {
    /// The platform's id of the gallery entry.
    pub entry_id: i64,
    /// The file path in the store's media directory.
    pub file: String,
    /// Alt text / label.
    pub label: Option<String>,
    pub position: Option<i64>,
    #[serde(default)]
    pub disabled: bool,
    #[serde(default)]
    pub roles: Vec<String>,
}

/// The content of one product in one scope. Field values are text (HTML allowed where the
/// platform allows it); a missing field has no value in that scope.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Content {
    #[serde(default)]
    pub fields: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub media: Vec<MediaItem>,
}

/// Content serialised once: the JSON a version stores and the hash it is compared by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncodedContent {
    pub json: String,
    pub hash: Vec<u8>,
}

impl Content {
    /// SHA-256 over a canonical serialisation (sorted keys, media by entry id).
    pub fn hash(&self) -> Vec<u8> {
        let mut canonical = self.clone();
        canonical.media.sort_by_key(|m| m.entry_id);
        let bytes = serde_json::to_vec(&canonical).expect("content serialises");
        Sha256::digest(bytes).to_vec()
    }

    /// The JSON to store and [`Content::hash`] of it. When the media are already in entry-id
    /// order the stored JSON is the canonical form, so it is hashed as it is instead of being
    /// serialised a second time; a sync encodes every product it reads.
    pub fn encode(&self) -> EncodedContent {
        let json = serde_json::to_string(self).expect("content serialises");
        let hash = if self.media.is_sorted_by_key(|m| m.entry_id) {
            Sha256::digest(json.as_bytes()).to_vec()
        } else {
            self.hash()
        };
        EncodedContent { json, hash }
    }

    /// What a store view shows that differs from the default: the store view's own version.
    /// Values equal to the default are inherited, not copied.
    pub fn overrides_of(&self, default: &Content) -> Content {
        let fields = self
            .fields
            .iter()
            .filter(|(k, v)| default.fields.get(*k) != Some(*v))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let media = self
            .media
            .iter()
            .filter(|m| {
                default
                    .media
                    .iter()
                    .find(|d| d.entry_id == m.entry_id)
                    .is_none_or(|d| {
                        d.label != m.label || d.disabled != m.disabled || d.position != m.position
                    })
            })
            .cloned()
            .collect();
        Content { fields, media }
    }

    /// The effective content of a store view: the default with the view's overrides on top.
    pub fn with_overrides(&self, overrides: &Content) -> Content {
        let mut fields = self.fields.clone();
        for (k, v) in &overrides.fields {
            fields.insert(k.clone(), v.clone());
        }
        let mut media = self.media.clone();
        for o in &overrides.media {
            match media.iter_mut().find(|m| m.entry_id == o.entry_id) {
                Some(m) => *m = o.clone(),
                None => media.push(o.clone()),
            }
        }
        Content { fields, media }
    }

    /// Content with these fields and no media (for tests).
    #[cfg(test)]
    pub fn of_fields(pairs: &[(&str, &str)]) -> Content {
        Content {
            fields: pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            media: vec![],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn content(pairs: &[(&str, &str)]) -> Content {
        Content::of_fields(pairs)
    }

    #[test]
    fn hash_ignores_key_and_media_order() {
        let mut a = content(&[("name", "Tee"), ("description", "Soft")]);
        let mut b = content(&[("description", "Soft"), ("name", "Tee")]);
        let m = |id| MediaItem {
            entry_id: id,
            file: format!("/{id}.jpg"),
            label: None,
            position: Some(id),
            disabled: false,
            roles: vec![],
        };
        a.media = vec![m(1), m(2)];
        b.media = vec![m(2), m(1)];
        assert_eq!(a.hash(), b.hash());
        b.fields.insert("name".into(), "Tee!".into());
        assert_ne!(a.hash(), b.hash());
    }

    #[test]
    fn encoding_hashes_like_hash_and_stores_the_content() {
        let m = |id, position| MediaItem {
            entry_id: id,
            file: format!("/{id}.jpg"),
            label: Some(format!("label {id}")),
            position: Some(position),
            disabled: false,
            roles: vec!["image".into()],
        };
        let mut c = content(&[("name", "Tee"), ("description", "Soft")]);
        for media in [vec![], vec![m(1, 2), m(2, 1)], vec![m(2, 1), m(1, 2)]] {
            c.media = media;
            let encoded = c.encode();
            assert_eq!(encoded.hash, c.hash());
            let back: Content = serde_json::from_str(&encoded.json).unwrap();
            assert_eq!(back, c);
        }
    }

    #[test]
    fn store_views_keep_only_what_differs_and_merge_back() {
        let default = content(&[("name", "Red tee"), ("description", "Soft cotton")]);
        let french = content(&[("name", "T-shirt rouge"), ("description", "Soft cotton")]);
        let overrides = french.overrides_of(&default);
        assert_eq!(overrides, content(&[("name", "T-shirt rouge")]));
        assert_eq!(default.with_overrides(&overrides), french);
        assert_eq!(default.overrides_of(&default), Content::default());
    }
}
