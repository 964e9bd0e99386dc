//! Product media gallery entries (REFERENCE §3).

use serde::Serialize;
use serde_json::{Map, Value};

use super::lenient::{Fields, FromMagento, lenient_deserialize};

/// One image or video of a product. Label, position and disabled are
/// per store view; roles (`types`) are store-scoped attribute values.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct MediaGalleryEntry {
    /// Absent for new uploads; required (in the body) for updates.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<i64>,
    /// `image` or `external-video`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub position: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub disabled: Option<bool>,
    /// Roles: `image`, `small_image`, `thumbnail`, `swatch_image`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub types: Option<Vec<String>>,
    /// Path below `catalog/product`, e.g. `/r/e/red-tee.jpg`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    /// Upload payload (input only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub content: Option<ImageContent>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub extension_attributes: Option<Value>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl FromMagento for MediaGalleryEntry {
    fn from_fields(fields: &mut Fields<'_>) -> Self {
        MediaGalleryEntry {
            id: fields.int("id"),
            media_type: fields.string("media_type"),
            label: fields.string("label"),
            position: fields.int("position"),
            disabled: fields.bool("disabled"),
            types: fields.string_list("types"),
            file: fields.string("file"),
            content: fields.object("content"),
            extension_attributes: fields.raw("extension_attributes"),
            extra: fields.rest(),
        }
    }
}

impl MediaGalleryEntry {
    /// A new image upload. Magento checks that `mime_type` matches the bytes
    /// (jpeg, png, gif) and that `file_name` has no `\ / ? * : " ; < > ( ) | { }`.
    pub fn new_image(
        base64_data: String,
        mime_type: impl Into<String>,
        file_name: impl Into<String>,
        label: Option<String>,
        types: Vec<String>,
    ) -> Self {
        MediaGalleryEntry {
            media_type: Some("image".to_owned()),
            label,
            disabled: Some(false),
            types: Some(types),
            content: Some(ImageContent {
                base64_encoded_data: base64_data,
                mime_type: mime_type.into(),
                name: file_name.into(),
                extra: Map::new(),
            }),
            ..MediaGalleryEntry::default()
        }
    }
}

/// `content` of an upload.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ImageContent {
    pub base64_encoded_data: String,
    #[serde(rename = "type")]
    pub mime_type: String,
    pub name: String,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl FromMagento for ImageContent {
    fn from_fields(fields: &mut Fields<'_>) -> Self {
        ImageContent {
            base64_encoded_data: fields.string("base64_encoded_data").unwrap_or_default(),
            mime_type: fields.string("type").unwrap_or_default(),
            name: fields.string("name").unwrap_or_default(),
            extra: fields.rest(),
        }
    }
}

lenient_deserialize!(MediaGalleryEntry, ImageContent);

/// A gallery `file` as a path below `catalog/product/` (`r/e/red-tee.jpg`), when it is one.
/// Magento names uploads with letters, digits, `_`, `-` and one `.`
/// (`lib/internal/Magento/Framework/File/Uploader.php`, `getCorrectFileName`) inside
/// dispersion directories (`getDispersionPath`: `/r/e/`), so anything else — `..`, `?`, `#`,
/// `%`, `:`, `\`, an empty segment — did not come from Magento's uploader, and in a URL or a
/// file name it could lead out of the media directory.
pub fn gallery_path(file: &str) -> Option<&str> {
    let path = file.strip_prefix('/').unwrap_or(file);
    let segments_ok = path
        .split('/')
        .all(|segment| !segment.is_empty() && segment != "." && segment != "..");
    let characters_ok = path
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '/'));
    (!path.is_empty() && path.len() <= 1024 && segments_ok && characters_ok).then_some(path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn upload_bodies_use_magentos_field_names() {
        let entry = MediaGalleryEntry::new_image(
            "AAAA".to_owned(),
            "image/jpeg",
            "tee.jpg",
            Some("Alt".to_owned()),
            vec!["image".to_owned()],
        );
        assert_eq!(
            serde_json::to_value(&entry).expect("serialises"),
            json!({"media_type":"image","label":"Alt","disabled":false,"types":["image"],
                   "content":{"base64_encoded_data":"AAAA","type":"image/jpeg","name":"tee.jpg"}})
        );
    }

    #[test]
    fn ids_may_be_strings() {
        let entry = MediaGalleryEntry::from_value(json!({"id": "3418", "disabled": 0}));
        assert!(entry.is_clean());
        assert_eq!(entry.value.id, Some(3418));
        assert_eq!(entry.value.disabled, Some(false));
    }

    #[test]
    fn gallery_paths_stay_under_the_media_directory() {
        assert_eq!(
            gallery_path("/r/e/red-tee_1.jpg"),
            Some("r/e/red-tee_1.jpg")
        );
        assert_eq!(gallery_path("m/b/MB01.PNG"), Some("m/b/MB01.PNG"));
        for hostile in [
            "",
            "/",
            "/../../../etc/passwd",
            "/r/e/../../x.jpg",
            "/r/./x.jpg",
            "/r//x.jpg",
            "//evil.example/x.jpg",
            "/r/e/x.jpg?sig=1",
            "/r/e/x.jpg#frag",
            "/r/e/%2e%2e/x.jpg",
            "http://169.254.169.254/latest",
            "/r/e/x:80.jpg",
            "\\r\\e\\x.jpg",
            "/r/e/red tee.jpg",
            "/r/e/caf\u{e9}.jpg",
        ] {
            assert_eq!(gallery_path(hostile), None, "{hostile:?}");
        }
    }
}
