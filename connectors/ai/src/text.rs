//! Text helpers: HTML to plain text, truncation at word boundaries, token estimates.

/// The visible text of an HTML fragment: tags dropped, common entities decoded, whitespace
/// collapsed. What a prompt needs from a description, without markup or hidden attributes.
pub fn html_to_text(html: &str) -> String {
    let mut out = String::with_capacity(html.len());
    let mut in_tag = false;
    for c in html.chars() {
        match c {
            '<' => {
                in_tag = true;
                out.push(' ');
            }
            '>' if in_tag => in_tag = false,
            _ if !in_tag => out.push(c),
            _ => {}
        }
    }
    let decoded = out
        .replace("&nbsp;", " ")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&amp;", "&");
    decoded.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// At most `max` characters, cut at a word boundary (or hard, for one long word).
pub fn truncate_words(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_string();
    }
    let cut: String = text.chars().take(max).collect();
    match cut.rfind(' ') {
        Some(space) if space > 0 => cut[..space]
            .trim_end_matches([',', ';', ':', '-', '–'])
            .trim_end()
            .to_string(),
        _ => cut,
    }
}

/// About four characters per token, as providers count European text.
pub fn estimate_tokens(chars: usize) -> u64 {
    chars.div_ceil(4) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn html_becomes_visible_text() {
        assert_eq!(
            html_to_text("<p>Soft &amp; warm</p><ul><li>Wool</li></ul>"),
            "Soft & warm Wool"
        );
        assert_eq!(html_to_text("plain"), "plain");
    }

    #[test]
    fn truncation_respects_characters_and_words() {
        assert_eq!(truncate_words("short", 60), "short");
        assert_eq!(truncate_words("one two three", 9), "one two");
        assert_eq!(truncate_words("ééééééééééé", 5), "ééééé");
    }
}
