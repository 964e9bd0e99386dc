//! Magento's import CSV for catalogd's content: the writer lives in the Magento connector
//! (`magento::import`); this is how our content model reads to it.

pub use magento::import::{
    COLUMNS, EMPTY_VALUE, Image, ImportContent, Issue, Writer, importable_path,
};

use crate::catalog::content::Content;

impl ImportContent for Content {
    fn field(&self, name: &str) -> Option<&str> {
        self.fields.get(name).map(String::as_str)
    }

    fn is_empty(&self) -> bool {
        self.fields.is_empty() && self.media.is_empty()
    }

    fn images(&self) -> Vec<Image<'_>> {
        self.media
            .iter()
            .map(|m| Image {
                entry_id: m.entry_id,
                file: &m.file,
                label: m.label.as_deref(),
                position: m.position,
                disabled: m.disabled,
                roles: &m.roles,
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::content::MediaItem;

    #[test]
    fn our_content_reads_to_the_writer_as_it_is() {
        let mut content = Content::default();
        content.fields.insert("name".into(), "Tee".into());
        content.media.push(MediaItem {
            entry_id: 4,
            file: "/t/e/tee.jpg".into(),
            label: Some("Front".into()),
            position: Some(1),
            disabled: false,
            roles: vec!["image".into()],
        });
        assert_eq!(content.field("name"), Some("Tee"));
        assert_eq!(content.field("description"), None);
        assert!(!content.is_empty());
        assert!(Content::default().is_empty());
        let images = content.images();
        assert_eq!(images.len(), 1);
        assert_eq!(images[0].file, "/t/e/tee.jpg");
        assert_eq!(images[0].label, Some("Front"));
        assert_eq!(images[0].roles, ["image".to_string()]);

        let mut writer = Writer::new(Vec::new()).unwrap();
        writer.product("TS-1", &content, &[]).unwrap();
        let text = String::from_utf8(writer.finish().unwrap()).unwrap();
        assert!(text.lines().nth(1).unwrap().starts_with("TS-1,,Tee,"));
    }
}
