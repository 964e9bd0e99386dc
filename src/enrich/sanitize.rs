//! Generated text is untrusted: HTML fields keep only simple, harmless markup; every other
//! field becomes plain text.

use std::collections::HashSet;

/// Tags a generated description may keep; no attributes at all.
const HTML_TAGS: &[&str] = &["p", "br", "ul", "ol", "li", "strong", "em", "b", "i"];

/// The value to store for `field` from a provider's `value`.
pub fn clean(field: &str, value: &str) -> String {
    match field {
        "description" | "short_description" => html(value),
        _ => ai::text::html_to_text(value),
    }
}

fn html(value: &str) -> String {
    ammonia::Builder::empty()
        .add_tags(HTML_TAGS)
        .clean_content_tags(HashSet::from(["script", "style"]))
        .clean(value)
        .to_string()
        .trim()
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn html_keeps_only_the_allow_list() {
        assert_eq!(
            clean(
                "description",
                "<p onclick=\"steal()\">Made <strong>to last</strong>.</p><script>alert(1)</script><img src=x onerror=y><a href=\"javascript:x\">link</a>"
            ),
            "<p>Made <strong>to last</strong>.</p>link"
        );
        assert_eq!(
            clean("description", "<p>Mug &lt;Special&gt; &amp; Co.</p>"),
            "<p>Mug &lt;Special&gt; &amp; Co.</p>"
        );
    }

    #[test]
    fn other_fields_become_plain_text() {
        assert_eq!(clean("meta_title", "<b>Red</b>  mug"), "Red mug");
        assert_eq!(clean("alt_text", "A mug &amp; saucer"), "A mug & saucer");
    }
}
