//! What changed between two contents: per field added, removed or changed, with a word-level
//! diff for long text and HTML; per media entry (by entry id) which of its parts changed.

use std::collections::BTreeSet;
use std::time::Duration;

use serde::Serialize;
use serde_json::{Value, json};
use similar::{Algorithm, ChangeTag, TextDiff};
use utoipa::ToSchema;

use super::content::{Content, MediaItem};

/// Text longer than this (in characters) gets a word-level diff.
const LONG_TEXT_CHARS: usize = 80;
/// A word diff of pathological input gives up being minimal after this long.
const WORD_DIFF_TIMEOUT: Duration = Duration::from_millis(200);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ChangeKind {
    Added,
    Removed,
    Changed,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize, ToSchema)]
pub struct FieldChange {
    pub field: String,
    pub change: ChangeKind,
    pub from: Option<String>,
    pub to: Option<String>,
    /// For a changed long or HTML value: the new text as runs of kept, inserted and deleted
    /// words (HTML tags count as words). Joining `equal` and `delete` gives `from`; `equal`
    /// and `insert` gives `to`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub words: Option<Vec<Segment>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SegmentOp {
    Equal,
    Insert,
    Delete,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize, ToSchema)]
pub struct Segment {
    pub op: SegmentOp,
    pub text: String,
}

/// A value before and after.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize, ToSchema)]
pub struct ValueChange {
    #[schema(value_type = Object)]
    pub from: Value,
    #[schema(value_type = Object)]
    pub to: Value,
}

/// One gallery entry's changes; parts that did not change are absent.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize, ToSchema)]
pub struct MediaChange {
    pub entry_id: i64,
    pub change: ChangeKind,
    /// The entry's file (the new one when it changed).
    pub file: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub label: Option<ValueChange>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub position: Option<ValueChange>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub disabled: Option<ValueChange>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub roles: Option<ValueChange>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file_change: Option<ValueChange>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, ToSchema)]
pub struct ContentDiff {
    /// Changed fields in field-name order; unchanged fields are not listed.
    pub fields: Vec<FieldChange>,
    /// Changed gallery entries in entry-id order.
    pub media: Vec<MediaChange>,
}

impl ContentDiff {
    pub fn is_empty(&self) -> bool {
        self.fields.is_empty() && self.media.is_empty()
    }
}

pub fn diff(from: &Content, to: &Content) -> ContentDiff {
    let names: BTreeSet<&String> = from.fields.keys().chain(to.fields.keys()).collect();
    let fields = names
        .into_iter()
        .filter_map(|name| field_change(name, from.fields.get(name), to.fields.get(name)))
        .collect();
    let ids: BTreeSet<i64> = from
        .media
        .iter()
        .chain(&to.media)
        .map(|m| m.entry_id)
        .collect();
    let media = ids
        .into_iter()
        .filter_map(|id| {
            media_change(
                from.media.iter().find(|m| m.entry_id == id),
                to.media.iter().find(|m| m.entry_id == id),
            )
        })
        .collect();
    ContentDiff { fields, media }
}

fn field_change(name: &str, from: Option<&String>, to: Option<&String>) -> Option<FieldChange> {
    let (change, words) = match (from, to) {
        (None, None) => return None,
        (Some(a), Some(b)) if a == b => return None,
        (None, Some(_)) => (ChangeKind::Added, None),
        (Some(_), None) => (ChangeKind::Removed, None),
        (Some(a), Some(b)) => (
            ChangeKind::Changed,
            (wants_word_diff(a) || wants_word_diff(b)).then(|| word_diff(a, b)),
        ),
    };
    Some(FieldChange {
        field: name.to_string(),
        change,
        from: from.cloned(),
        to: to.cloned(),
        words,
    })
}

fn wants_word_diff(text: &str) -> bool {
    text.chars().count() > LONG_TEXT_CHARS || looks_like_html(text)
}

/// Whether the text holds at least one HTML tag.
fn looks_like_html(text: &str) -> bool {
    text.match_indices('<')
        .any(|(i, _)| tag_len(&text[i..]).is_some())
}

/// Splits text into words, whitespace runs, HTML tags and single punctuation marks. Each
/// ideograph or kana is a word of its own, since those scripts do not separate words by spaces.
fn tokens(text: &str) -> Vec<&str> {
    #[derive(PartialEq)]
    enum Class {
        Space,
        Word,
        Single,
    }
    let class = |c: char| {
        if c.is_whitespace() {
            Class::Space
        } else if is_ideographic(c) {
            Class::Single
        } else if c.is_alphanumeric() || c == '_' {
            Class::Word
        } else {
            Class::Single
        }
    };
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(first) = rest.chars().next() {
        let len = if let Some(tag) = tag_len(rest) {
            tag
        } else {
            let kind = class(first);
            if kind == Class::Single {
                first.len_utf8()
            } else {
                rest.char_indices()
                    .find(|(_, c)| class(*c) != kind)
                    .map(|(i, _)| i)
                    .unwrap_or(rest.len())
            }
        };
        out.push(&rest[..len]);
        rest = &rest[len..];
    }
    out
}

/// The length of the HTML tag `rest` starts with: `<` and a name, `/` or `!`, up to the
/// first `>` with no other `<` before it.
fn tag_len(rest: &str) -> Option<usize> {
    let after = rest.strip_prefix('<')?;
    if !after.starts_with(|c: char| c.is_ascii_alphabetic() || c == '/' || c == '!') {
        return None;
    }
    let close = after.find('>')?;
    (!after[..close].contains('<')).then_some(close + 2)
}

fn is_ideographic(c: char) -> bool {
    matches!(c as u32,
        0x3040..=0x30FF      // hiragana, katakana
        | 0x3400..=0x4DBF    // CJK extension A
        | 0x4E00..=0x9FFF    // CJK unified ideographs
        | 0xF900..=0xFAFF    // CJK compatibility ideographs
        | 0x20000..=0x2FFFF) // CJK extensions B–F
}

/// A word-level diff of `from` → `to` as runs of equal, deleted and inserted text. Within a
/// changed stretch the deletion comes before the insertion, and a lone space between two
/// changes joins them, so "Soft cotton" → "Warm wool" reads as one replacement.
pub fn word_diff(from: &str, to: &str) -> Vec<Segment> {
    let old = tokens(from);
    let new = tokens(to);
    let text_diff = TextDiff::configure()
        .algorithm(Algorithm::Patience)
        .timeout(WORD_DIFF_TIMEOUT)
        .diff_slices(&old, &new);
    let mut changes: Vec<(ChangeTag, &str)> = text_diff
        .iter_all_changes()
        .map(|c| (c.tag(), c.value()))
        .collect();
    // Whitespace kept between two changes becomes part of the change.
    let mut i = 1;
    while i + 1 < changes.len() {
        let (tag, text) = changes[i];
        if tag == ChangeTag::Equal
            && text.chars().all(char::is_whitespace)
            && changes[i - 1].0 != ChangeTag::Equal
            && changes[i + 1].0 != ChangeTag::Equal
        {
            changes[i] = (ChangeTag::Delete, text);
            changes.insert(i + 1, (ChangeTag::Insert, text));
            i += 2;
        } else {
            i += 1;
        }
    }

    let mut segments: Vec<Segment> = Vec::new();
    let mut deleted = String::new();
    let mut inserted = String::new();
    let flush = |segments: &mut Vec<Segment>, deleted: &mut String, inserted: &mut String| {
        if !deleted.is_empty() {
            segments.push(Segment {
                op: SegmentOp::Delete,
                text: std::mem::take(deleted),
            });
        }
        if !inserted.is_empty() {
            segments.push(Segment {
                op: SegmentOp::Insert,
                text: std::mem::take(inserted),
            });
        }
    };
    for (tag, text) in changes {
        match tag {
            ChangeTag::Delete => deleted.push_str(text),
            ChangeTag::Insert => inserted.push_str(text),
            ChangeTag::Equal => {
                flush(&mut segments, &mut deleted, &mut inserted);
                match segments.last_mut() {
                    Some(last) if last.op == SegmentOp::Equal => last.text.push_str(text),
                    _ => segments.push(Segment {
                        op: SegmentOp::Equal,
                        text: text.to_string(),
                    }),
                }
            }
        }
    }
    flush(&mut segments, &mut deleted, &mut inserted);
    segments
}

fn media_change(from: Option<&MediaItem>, to: Option<&MediaItem>) -> Option<MediaChange> {
    let change = match (from, to) {
        (None, None) => return None,
        (Some(a), Some(b)) if a == b => return None,
        (None, Some(_)) => ChangeKind::Added,
        (Some(_), None) => ChangeKind::Removed,
        (Some(_), Some(_)) => ChangeKind::Changed,
    };
    let item = to.or(from)?;
    let part = |get: fn(&MediaItem) -> Value| {
        let a = from.map(get).unwrap_or(Value::Null);
        let b = to.map(get).unwrap_or(Value::Null);
        (a != b).then_some(ValueChange { from: a, to: b })
    };
    Some(MediaChange {
        entry_id: item.entry_id,
        change,
        file: item.file.clone(),
        label: part(|m| json!(m.label)),
        position: part(|m| json!(m.position)),
        disabled: part(|m| json!(m.disabled)),
        roles: part(|m| json!(m.roles)),
        file_change: if change == ChangeKind::Changed {
            part(|m| json!(m.file))
        } else {
            None
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rebuild(segments: &[Segment], keep: SegmentOp) -> String {
        segments
            .iter()
            .filter(|s| s.op == SegmentOp::Equal || s.op == keep)
            .map(|s| s.text.as_str())
            .collect()
    }

    fn seg(op: SegmentOp, text: &str) -> Segment {
        Segment {
            op,
            text: text.into(),
        }
    }

    #[test]
    fn tokens_keep_tags_words_and_ideographs_apart() {
        assert_eq!(
            tokens("<p class=\"x\">Soft, café-au-lait</p>"),
            [
                "<p class=\"x\">",
                "Soft",
                ",",
                " ",
                "café",
                "-",
                "au",
                "-",
                "lait",
                "</p>"
            ]
        );
        assert_eq!(
            tokens("柔らかいT恤 ok"),
            ["柔", "ら", "か", "い", "T", "恤", " ", "ok"]
        );
        assert_eq!(
            tokens("a < b > c"),
            ["a", " ", "<", " ", "b", " ", ">", " ", "c"]
        );
        assert_eq!(tokens("1<2<b>x"), ["1", "<", "2", "<b>", "x"]);
        assert_eq!(tokens(""), Vec::<&str>::new());
    }

    #[test]
    fn word_diff_groups_changes_and_rebuilds_both_sides() {
        let from = "<p>Soft cotton tee for everyday wear.</p>";
        let to = "<p>Warm wool tee for everyday wear, now <b>organic</b>.</p>";
        let segments = word_diff(from, to);
        assert_eq!(rebuild(&segments, SegmentOp::Delete), from);
        assert_eq!(rebuild(&segments, SegmentOp::Insert), to);
        assert_eq!(segments[0], seg(SegmentOp::Equal, "<p>"));
        assert_eq!(segments[1], seg(SegmentOp::Delete, "Soft cotton"));
        assert_eq!(segments[2], seg(SegmentOp::Insert, "Warm wool"));
        assert_eq!(segments[3], seg(SegmentOp::Equal, " tee for everyday wear"));
        assert!(segments.contains(&seg(SegmentOp::Insert, ", now <b>organic</b>")));
    }

    #[test]
    fn word_diff_handles_unicode() {
        let from = "Ein weiches T-Shirt – schön für den Sommer 🌞 日本製の綿";
        let to = "Ein weiches T-Shirt – ideal für den Sommer 🌞 日本製の麻";
        let segments = word_diff(from, to);
        assert_eq!(rebuild(&segments, SegmentOp::Delete), from);
        assert_eq!(rebuild(&segments, SegmentOp::Insert), to);
        assert!(segments.contains(&seg(SegmentOp::Delete, "schön")));
        assert!(segments.contains(&seg(SegmentOp::Insert, "ideal")));
        assert!(segments.contains(&seg(SegmentOp::Delete, "綿")));
        assert!(segments.contains(&seg(SegmentOp::Insert, "麻")));
    }

    #[test]
    fn fields_are_added_removed_and_changed() {
        let mut a = Content::default();
        let mut b = Content::default();
        a.fields.insert("name".into(), "Tee".into());
        a.fields.insert("meta_title".into(), "Old".into());
        a.fields.insert("url_key".into(), "tee".into());
        b.fields.insert("name".into(), "Red tee".into());
        b.fields.insert("description".into(), "New".into());
        b.fields.insert("url_key".into(), "tee".into());
        let d = diff(&a, &b);
        let kinds: Vec<(&str, ChangeKind)> = d
            .fields
            .iter()
            .map(|f| (f.field.as_str(), f.change))
            .collect();
        assert_eq!(
            kinds,
            [
                ("description", ChangeKind::Added),
                ("meta_title", ChangeKind::Removed),
                ("name", ChangeKind::Changed)
            ]
        );
        // Short plain text has no word diff.
        assert!(d.fields[2].words.is_none());
        assert!(diff(&a, &a).is_empty());
    }

    #[test]
    fn media_changes_are_reported_by_entry() {
        let item = |id, label: &str, position| MediaItem {
            entry_id: id,
            file: format!("/{id}.jpg"),
            label: Some(label.into()),
            position: Some(position),
            disabled: false,
            roles: vec![],
        };
        let a = Content {
            fields: Default::default(),
            media: vec![item(1, "front", 1), item(2, "back", 2)],
        };
        let b = Content {
            fields: Default::default(),
            media: vec![
                item(2, "back", 1),
                item(1, "Front view", 1),
                item(3, "side", 3),
            ],
        };
        let d = diff(&a, &b);
        assert_eq!(d.media.len(), 3);
        assert_eq!(d.media[0].entry_id, 1);
        assert_eq!(
            d.media[0].label,
            Some(ValueChange {
                from: json!("front"),
                to: json!("Front view")
            })
        );
        assert!(d.media[0].position.is_none());
        assert_eq!(d.media[1].change, ChangeKind::Changed);
        assert_eq!(
            d.media[1].position,
            Some(ValueChange {
                from: json!(2),
                to: json!(1)
            })
        );
        assert!(d.media[1].label.is_none());
        assert_eq!(d.media[2].change, ChangeKind::Added);
    }
}
