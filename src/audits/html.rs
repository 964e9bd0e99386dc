//! A strict reading of the HTML that stores keep in descriptions: the visible text (for length
//! rules) and what is broken or unsafe about the markup.
//!
//! Browsers repair anything, so a forgiving HTML5 parser would hide exactly what this is for:
//! store templates paste descriptions into their own markup, where an unclosed `<div>` or a
//! stray `</ul>` breaks the page around it. Every non-void element must be closed explicitly.

/// Elements that must never reach a storefront from product content.
const UNSAFE_ELEMENTS: &[&str] = &[
    "script", "style", "iframe", "frame", "frameset", "object", "embed", "applet", "base", "link",
    "meta", "form",
];

/// Elements without content or end tag.
const VOID_ELEMENTS: &[&str] = &[
    "area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "param", "source",
    "track", "wbr",
];

/// Elements whose content is raw text up to their end tag.
const RAW_TEXT_ELEMENTS: &[&str] = &["script", "style"];

/// Elements after which visible text continues on a new line.
const BLOCK_ELEMENTS: &[&str] = &[
    "p",
    "div",
    "br",
    "li",
    "ul",
    "ol",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "tr",
    "td",
    "th",
    "table",
    "section",
    "article",
    "blockquote",
    "dd",
    "dt",
    "hr",
];

/// Attributes that take a URL, where a script URL runs code.
const URL_ATTRIBUTES: &[&str] = &[
    "href",
    "src",
    "action",
    "formaction",
    "xlink:href",
    "poster",
];

#[derive(Debug, Default, Clone, PartialEq)]
pub struct HtmlReport {
    /// The text a shopper reads: tags removed, entities decoded, whitespace collapsed.
    pub text: String,
    /// What would run code or restyle the page, one line per problem.
    pub unsafe_parts: Vec<String>,
    /// Markup that does not close, closes what was never opened, or images without `alt`.
    pub broken_parts: Vec<String>,
}

pub fn scan(html: &str) -> HtmlReport {
    let mut report = HtmlReport::default();
    let mut text = String::with_capacity(html.len());
    let mut open: Vec<String> = Vec::new();
    let mut rest = html;
    while let Some(lt) = rest.find('<') {
        push_text(&mut text, &rest[..lt]);
        let after = &rest[lt..];
        if let Some(comment) = after.strip_prefix("<!--") {
            match comment.find("-->") {
                Some(end) => rest = &comment[end + 3..],
                None => {
                    report.broken_parts.push("a comment is never closed".into());
                    rest = "";
                }
            }
            continue;
        }
        let Some(tag) = read_tag(after) else {
            // A `<` that starts no tag (`a < b`) is text.
            text.push('<');
            rest = &after[1..];
            continue;
        };
        let Some(tag) = tag else {
            report.broken_parts.push(format!(
                "the tag `{}` is never closed with `>`",
                snippet(after)
            ));
            rest = "";
            continue;
        };
        rest = &after[tag.len..];
        if BLOCK_ELEMENTS.contains(&tag.name.as_str()) {
            text.push(' ');
        }
        if tag.closing {
            close(&mut open, &tag.name, &mut report);
            continue;
        }
        if tag.name.starts_with('!') || tag.name.starts_with('?') {
            continue;
        }
        check_attributes(&tag, &mut report);
        if UNSAFE_ELEMENTS.contains(&tag.name.as_str()) {
            report
                .unsafe_parts
                .push(format!("`<{}>` element", tag.name));
        }
        if tag.name == "img" && !tag.attributes.iter().any(|(name, _)| name == "alt") {
            report
                .broken_parts
                .push("an `<img>` has no alt text".into());
        }
        if RAW_TEXT_ELEMENTS.contains(&tag.name.as_str()) && !tag.self_closing {
            // Script and style content is code, not text: skip to the end tag.
            let end = format!("</{}", tag.name);
            match find_ignore_case(rest, &end) {
                Some(at) => {
                    rest = &rest[at..];
                    open.push(tag.name);
                }
                None => {
                    report
                        .broken_parts
                        .push(format!("`<{}>` is never closed", tag.name));
                    rest = "";
                }
            }
            continue;
        }
        if !tag.self_closing && !VOID_ELEMENTS.contains(&tag.name.as_str()) {
            open.push(tag.name);
        }
    }
    push_text(&mut text, rest);
    for name in open {
        report
            .broken_parts
            .push(format!("`<{name}>` is never closed"));
    }
    report.text = collapse_whitespace(&decode_entities(&text));
    report
}

struct Tag {
    name: String,
    closing: bool,
    self_closing: bool,
    attributes: Vec<(String, String)>,
    /// Bytes from `<` to `>` inclusive.
    len: usize,
}

/// `None`: not a tag at all. `Some(None)`: a tag that never ends.
fn read_tag(s: &str) -> Option<Option<Tag>> {
    let bytes = s.as_bytes();
    let mut i = 1;
    let closing = bytes.get(1) == Some(&b'/');
    if closing {
        i += 1;
    }
    let first = *bytes.get(i)?;
    if !(first.is_ascii_alphabetic() || (!closing && (first == b'!' || first == b'?'))) {
        return None;
    }
    let name_start = i;
    while i < bytes.len() && !bytes[i].is_ascii_whitespace() && bytes[i] != b'>' && bytes[i] != b'/'
    {
        i += 1;
    }
    let name = s[name_start..i].to_ascii_lowercase();
    let mut attributes = Vec::new();
    let mut self_closing = false;
    loop {
        while i < bytes.len() && bytes[i].is_ascii_whitespace() {
            i += 1;
        }
        match bytes.get(i) {
            None => return Some(None),
            Some(b'>') => {
                return Some(Some(Tag {
                    name,
                    closing,
                    self_closing,
                    attributes,
                    len: i + 1,
                }));
            }
            Some(b'/') => {
                self_closing = true;
                i += 1;
            }
            Some(_) => {
                let start = i;
                while i < bytes.len()
                    && !bytes[i].is_ascii_whitespace()
                    && !matches!(bytes[i], b'=' | b'>' | b'/')
                {
                    i += 1;
                }
                let attr = s[start..i].to_ascii_lowercase();
                while i < bytes.len() && bytes[i].is_ascii_whitespace() {
                    i += 1;
                }
                let mut value = String::new();
                if bytes.get(i) == Some(&b'=') {
                    i += 1;
                    while i < bytes.len() && bytes[i].is_ascii_whitespace() {
                        i += 1;
                    }
                    match bytes.get(i) {
                        Some(&q) if q == b'"' || q == b'\'' => {
                            let Some(end) = s[i + 1..].find(q as char) else {
                                return Some(None);
                            };
                            value = s[i + 1..i + 1 + end].to_string();
                            i += end + 2;
                        }
                        _ => {
                            let start = i;
                            while i < bytes.len()
                                && !bytes[i].is_ascii_whitespace()
                                && bytes[i] != b'>'
                            {
                                i += 1;
                            }
                            value = s[start..i].to_string();
                        }
                    }
                }
                self_closing = false;
                attributes.push((attr, value));
            }
        }
    }
}

fn close(open: &mut Vec<String>, name: &str, report: &mut HtmlReport) {
    if VOID_ELEMENTS.contains(&name) {
        return;
    }
    match open.iter().rposition(|n| n == name) {
        Some(at) => {
            for inner in open.drain(at + 1..) {
                report
                    .broken_parts
                    .push(format!("`<{inner}>` is not closed before `</{name}>`"));
            }
            open.pop();
        }
        None => report
            .broken_parts
            .push(format!("`</{name}>` closes nothing that is open")),
    }
}

fn check_attributes(tag: &Tag, report: &mut HtmlReport) {
    for (name, value) in &tag.attributes {
        if name.starts_with("on") && name.len() > 2 {
            report
                .unsafe_parts
                .push(format!("event handler `{name}` on `<{}>`", tag.name));
        } else if URL_ATTRIBUTES.contains(&name.as_str()) && is_script_url(value) {
            report
                .unsafe_parts
                .push(format!("script URL in `{name}` of `<{}>`", tag.name));
        }
    }
}

/// Browsers ignore whitespace and control characters inside a scheme (`java\tscript:`), and
/// entities are decoded before the URL is read.
fn is_script_url(value: &str) -> bool {
    let decoded = decode_entities(value);
    let compact: String = decoded
        .chars()
        .filter(|c| !c.is_whitespace() && !c.is_control())
        .collect::<String>()
        .to_ascii_lowercase();
    compact.starts_with("javascript:")
        || compact.starts_with("vbscript:")
        || compact.starts_with("data:text/html")
}

fn push_text(text: &mut String, piece: &str) {
    text.push_str(piece);
}

fn find_ignore_case(haystack: &str, needle: &str) -> Option<usize> {
    let lower = haystack.to_ascii_lowercase();
    lower.find(&needle.to_ascii_lowercase())
}

fn snippet(s: &str) -> String {
    let cut: String = s.chars().take(30).collect();
    if cut.len() < s.len() {
        format!("{cut}…")
    } else {
        cut
    }
}

fn collapse_whitespace(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Decodes the entities editors produce; an unknown one stays as written.
pub fn decode_entities(s: &str) -> String {
    if !s.contains('&') {
        return s.to_string();
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(amp) = rest.find('&') {
        out.push_str(&rest[..amp]);
        let after = &rest[amp..];
        let decoded = after.find(';').filter(|&end| end <= 12).and_then(|end| {
            let entity = &after[1..end];
            let c = match entity {
                "amp" => Some('&'),
                "lt" => Some('<'),
                "gt" => Some('>'),
                "quot" => Some('"'),
                "apos" => Some('\''),
                "nbsp" => Some(' '),
                _ => entity
                    .strip_prefix("#x")
                    .or_else(|| entity.strip_prefix("#X"))
                    .and_then(|hex| u32::from_str_radix(hex, 16).ok())
                    .or_else(|| entity.strip_prefix('#').and_then(|d| d.parse().ok()))
                    .and_then(char::from_u32),
            };
            c.map(|c| (c, end))
        });
        match decoded {
            Some((c, end)) => {
                out.push(c);
                rest = &after[end + 1..];
            }
            None => {
                out.push('&');
                rest = &after[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clean_markup_has_text_and_no_problems() {
        let r = scan(
            "<p>Soft <strong>cotton</strong> tee.</p><ul><li>Red</li><li>Blue&nbsp;&amp; green</li></ul><br><img src=\"a.png\" alt=\"\"/>",
        );
        assert_eq!(r.text, "Soft cotton tee. Red Blue & green");
        assert!(r.unsafe_parts.is_empty(), "{r:?}");
        assert!(r.broken_parts.is_empty(), "{r:?}");
    }

    #[test]
    fn plain_text_and_empty_strings() {
        assert_eq!(scan("").text, "");
        assert_eq!(scan("a < b and c > d").text, "a < b and c > d");
        let unicode = scan("<p>Écharpe en laine — 日本語 🧣 עברית</p>");
        assert_eq!(unicode.text, "Écharpe en laine — 日本語 🧣 עברית");
        assert!(unicode.broken_parts.is_empty());
    }

    #[test]
    fn scripts_styles_and_frames_are_unsafe_and_not_text() {
        let r = scan(
            "<p>Hi</p><script>alert('<p>')</script><STYLE>p{}</STYLE><iframe src=\"x\"></iframe>",
        );
        assert_eq!(r.text, "Hi");
        assert_eq!(r.unsafe_parts.len(), 3, "{r:?}");
        assert!(r.broken_parts.is_empty(), "{r:?}");
    }

    #[test]
    fn event_handlers_and_script_urls_are_unsafe() {
        let r = scan(
            "<p onclick=\"x()\">a</p><a href=\" java\tscript:alert(1)\">b</a><a href='&#106;avascript:x'>c</a><a href=\"/ok\">d</a>",
        );
        assert_eq!(r.unsafe_parts.len(), 3, "{r:?}");
        assert!(r.unsafe_parts[0].contains("onclick"));
        let harmless = scan("<a href=\"https://example.com/online\" title=\"on\">x</a>");
        assert!(harmless.unsafe_parts.is_empty(), "{harmless:?}");
    }

    #[test]
    fn unclosed_stray_and_misnested_tags_are_broken() {
        assert_eq!(scan("<p>Unclosed").broken_parts, ["`<p>` is never closed"]);
        assert_eq!(
            scan("text</div>").broken_parts,
            ["`</div>` closes nothing that is open"]
        );
        assert_eq!(
            scan("<ul><li>one</ul>").broken_parts,
            ["`<li>` is not closed before `</ul>`"]
        );
        assert_eq!(
            scan("<p class=\"x\"").broken_parts,
            ["the tag `<p class=\"x\"` is never closed with `>`"]
        );
        assert_eq!(
            scan("<img src=\"a.png\">").broken_parts,
            ["an `<img>` has no alt text"]
        );
        assert_eq!(
            scan("<!-- note").broken_parts,
            ["a comment is never closed"]
        );
        assert!(scan("<!-- ok --><p>x</p>").broken_parts.is_empty());
    }

    #[test]
    fn entities_decode_or_stay() {
        assert_eq!(
            decode_entities("a &amp; b &#233; &#xE9; &bogus; &"),
            "a & b é é &bogus; &"
        );
    }
}
