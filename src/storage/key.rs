//! Object keys: every key starts with the workspace it belongs to (`<workspace uuid>/…`), so
//! one workspace's objects share a prefix and a key names its owner.

use std::fmt;

use uuid::Uuid;

use super::StorageError;

/// Longest key accepted (S3 allows 1024 bytes).
const MAX_KEY_BYTES: usize = 1024;

/// A validated key: `<workspace uuid>/<path>`, the path made of non-empty segments of ASCII
/// letters, digits, `-`, `_` and `.`, never `.` or `..`. Safe as a file path under the local
/// store's root and as an S3 key without escaping.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ObjectKey(String);

impl ObjectKey {
    /// The key of `path` under `workspace_id`'s prefix.
    pub fn new(workspace_id: Uuid, path: &str) -> Result<ObjectKey, StorageError> {
        ObjectKey::parse(&format!("{workspace_id}/{path}"))
    }

    /// Checks a whole key, as stored in the database or taken from a download link.
    pub fn parse(key: &str) -> Result<ObjectKey, StorageError> {
        let mut segments = key.split('/');
        let workspace = segments.next().unwrap_or_default();
        let well_formed = key.len() <= MAX_KEY_BYTES
            && Uuid::try_parse(workspace).is_ok_and(|id| id.hyphenated().to_string() == workspace)
            && key.contains('/')
            && segments.all(valid_segment);
        if well_formed {
            Ok(ObjectKey(key.to_string()))
        } else {
            Err(StorageError::InvalidKey)
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The workspace whose prefix holds the key.
    pub fn workspace_id(&self) -> Uuid {
        self.0
            .split('/')
            .next()
            .and_then(|w| w.parse().ok())
            .expect("a parsed key starts with a workspace id")
    }

    /// The last segment: the object's file name.
    pub fn file_name(&self) -> &str {
        self.0.rsplit('/').next().unwrap_or(&self.0)
    }
}

impl fmt::Display for ObjectKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

fn valid_segment(segment: &str) -> bool {
    !segment.is_empty()
        && segment != "."
        && segment != ".."
        && segment
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

/// A "directory" of keys: a workspace's whole prefix, or a folder inside it. Matches whole
/// segments only, so `<ws>/media` never covers `<ws>/media-old/…`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyPrefix(String);

impl KeyPrefix {
    /// Everything a workspace has stored.
    pub fn workspace(workspace_id: Uuid) -> KeyPrefix {
        KeyPrefix(format!("{workspace_id}/"))
    }

    /// The folder `path` (one or more segments) inside a workspace's prefix.
    pub fn folder(workspace_id: Uuid, path: &str) -> Result<KeyPrefix, StorageError> {
        let key = ObjectKey::new(workspace_id, path.trim_end_matches('/'))?;
        Ok(KeyPrefix(format!("{key}/")))
    }

    /// With its trailing `/`.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn contains(&self, key: &ObjectKey) -> bool {
        key.as_str().starts_with(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_stay_inside_their_workspace() {
        let ws = Uuid::nil();
        let key = ObjectKey::new(ws, "exports/a.csv").unwrap();
        assert_eq!(key.as_str(), format!("{ws}/exports/a.csv"));
        assert_eq!(key.workspace_id(), ws);
        assert_eq!(key.file_name(), "a.csv");
        for bad in [
            "../x",
            "a/../b",
            "/etc/passwd",
            "a//b",
            "a b",
            "a\u{0}b",
            "a/./b",
            "a\\b",
            "a%2Fb",
            "",
            "x/",
        ] {
            assert!(ObjectKey::new(ws, bad).is_err(), "{bad:?}");
        }
        assert!(ObjectKey::new(ws, &"a".repeat(1100)).is_err());
    }

    #[test]
    fn whole_keys_must_start_with_a_workspace() {
        assert!(ObjectKey::parse("00000000-0000-0000-0000-000000000000/media/ab").is_ok());
        for bad in [
            "media/ab",
            "00000000-0000-0000-0000-000000000000",
            "00000000000000000000000000000000/media/ab",
            "00000000-0000-0000-0000-00000000000/media/ab",
        ] {
            assert!(ObjectKey::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn prefixes_match_whole_segments() {
        let ws = Uuid::nil();
        let media = KeyPrefix::folder(ws, "media").unwrap();
        assert!(media.contains(&ObjectKey::new(ws, "media/ab").unwrap()));
        assert!(!media.contains(&ObjectKey::new(ws, "media-old/ab").unwrap()));
        assert!(!media.contains(&ObjectKey::new(Uuid::max(), "media/ab").unwrap()));
        assert!(KeyPrefix::workspace(ws).contains(&ObjectKey::new(ws, "media/ab").unwrap()));
        assert!(KeyPrefix::folder(ws, "../x").is_err());
    }
}
