//! The `rules` provider: offline and deterministic, built from templates over the product's
//! allowed attributes. The zero-config default: good enough for meta titles, meta
//! descriptions, keywords, short descriptions and alt texts, in the store view's language.

use super::{Generated, GenerationInput, Usage};
use crate::audits::html;

pub const PROVIDER: &str = "rules";
pub const MODEL: &str = "templates";
/// Bumped whenever a template changes, so proposals say which templates made them.
pub const PROMPT_VERSION: &str = "rules-2026-11";

const META_TITLE_MAX: usize = 60;
const META_DESCRIPTION_MIN: usize = 50;
const META_DESCRIPTION_MAX: usize = 160;

/// Words in each language the templates need.
struct Phrases {
    /// Appended to a meta description that would be too short.
    pitch: &'static str,
    /// Opens a description: "{name}: {pitch}".
    discover: &'static str,
    /// Alt text: "{name}, image {n}".
    image: &'static str,
}

fn phrases(language: &str) -> Phrases {
    match language {
        "fr" => Phrases {
            pitch: "Livraison rapide et retours gratuits.",
            discover: "Découvrez",
            image: "image",
        },
        "de" => Phrases {
            pitch: "Schneller Versand und kostenlose Rückgabe.",
            discover: "Entdecken Sie",
            image: "Bild",
        },
        "es" => Phrases {
            pitch: "Envío rápido y devoluciones gratuitas.",
            discover: "Descubre",
            image: "imagen",
        },
        "it" => Phrases {
            pitch: "Spedizione rapida e resi gratuiti.",
            discover: "Scopri",
            image: "immagine",
        },
        "nl" => Phrases {
            pitch: "Snelle levering en gratis retourneren.",
            discover: "Ontdek",
            image: "afbeelding",
        },
        _ => Phrases {
            pitch: "Fast delivery and free returns.",
            discover: "Discover",
            image: "image",
        },
    }
}

/// Generates the requested fields; a field the input cannot support is left out.
pub fn generate(input: &GenerationInput) -> Generated {
    let p = phrases(&input.language);
    let name = input.name.trim();
    let text = input
        .description
        .as_deref()
        .map(|d| html::scan(d).text)
        .unwrap_or_default();
    let first_sentence = first_sentence(&text);
    let mut out = Generated::default();
    for field in &input.fields {
        let value = match field.as_str() {
            "meta_title" if !name.is_empty() => Some(truncate_words(name, META_TITLE_MAX)),
            "meta_description" if !name.is_empty() => {
                Some(meta_description(name, &first_sentence, &p))
            }
            "meta_keyword" if !name.is_empty() => Some(keywords(name)),
            "short_description" if !name.is_empty() => {
                Some(if first_sentence.chars().count() >= 20 {
                    truncate_words(&first_sentence, 255)
                } else {
                    format!("{name}. {}", p.pitch)
                })
            }
            "description" if !name.is_empty() && text.chars().count() < 80 => Some(format!(
                "<p>{} {}. {}</p>",
                p.discover,
                escape(name),
                escape(p.pitch)
            )),
            _ => None,
        };
        if let Some(value) = value {
            out.fields.insert(field.clone(), value);
        }
    }
    if input.fields.iter().any(|f| f == "alt_text") && !name.is_empty() {
        for (entry_id, position) in &input.images {
            out.alt_texts.push((
                *entry_id,
                truncate_words(&format!("{name}, {} {position}", p.image), 255),
            ));
        }
    }
    let input_chars = name.len() + text.len();
    let output_chars: usize = out.fields.values().map(String::len).sum::<usize>()
        + out.alt_texts.iter().map(|(_, t)| t.len()).sum::<usize>();
    out.usage = Usage {
        input_tokens: estimate_tokens(input_chars),
        output_tokens: estimate_tokens(output_chars),
    };
    out
}

/// About four characters per token, as providers count English text.
pub fn estimate_tokens(chars: usize) -> u64 {
    chars.div_ceil(4) as u64
}

fn meta_description(name: &str, sentence: &str, p: &Phrases) -> String {
    let mut text = if sentence.is_empty() {
        format!("{name}. {}", p.pitch)
    } else {
        format!("{name}: {sentence}")
    };
    if text.chars().count() < META_DESCRIPTION_MIN {
        text = format!("{text} {}", p.pitch);
    }
    truncate_words(&text, META_DESCRIPTION_MAX)
}

fn keywords(name: &str) -> String {
    let mut seen: Vec<String> = Vec::new();
    for word in name.split(|c: char| !c.is_alphanumeric()) {
        let word = word.to_lowercase();
        if word.chars().count() > 2 && !word.chars().all(char::is_numeric) && !seen.contains(&word)
        {
            seen.push(word);
        }
    }
    seen.truncate(8);
    seen.join(", ")
}

fn first_sentence(text: &str) -> String {
    let end = text
        .char_indices()
        .find(|(i, c)| matches!(c, '.' | '!' | '?') && text[i + 1..].starts_with(' '))
        .map(|(i, c)| i + c.len_utf8())
        .unwrap_or(text.len());
    text[..end].trim().to_string()
}

/// At most `max` characters, cut at a word boundary (or hard, for one long word).
fn truncate_words(text: &str, max: usize) -> String {
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

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(
        language: &str,
        name: &str,
        description: Option<&str>,
        fields: &[&str],
    ) -> GenerationInput {
        GenerationInput {
            language: language.into(),
            name: name.into(),
            description: description.map(String::from),
            fields: fields.iter().map(|f| f.to_string()).collect(),
            images: vec![(7, 1), (8, 2)],
        }
    }

    #[test]
    fn meta_fields_keep_search_engine_limits() {
        let long =
            "Premium Organic Cotton Relaxed Fit Crew Neck T-Shirt With Reinforced Seams In Navy";
        let out = generate(&input(
            "en",
            long,
            Some("<p>Soft organic cotton that keeps its shape. Machine washable.</p>"),
            &[
                "meta_title",
                "meta_description",
                "meta_keyword",
                "short_description",
            ],
        ));
        let title = &out.fields["meta_title"];
        assert!(title.chars().count() <= 60, "{title}");
        assert!(long.starts_with(title.as_str()));
        let description = &out.fields["meta_description"];
        let n = description.chars().count();
        assert!((50..=160).contains(&n), "{n}: {description}");
        assert!(description.contains("Soft organic cotton that keeps its shape."));
        assert!(!out.fields["meta_keyword"].contains("premium, premium"));
        assert_eq!(
            out.fields["short_description"],
            "Soft organic cotton that keeps its shape."
        );
        assert!(out.usage.input_tokens > 0 && out.usage.output_tokens > 0);
    }

    #[test]
    fn store_views_get_their_language_and_output_is_deterministic() {
        let fr = input("fr", "Tasse rouge", None, &["meta_description", "alt_text"]);
        let out = generate(&fr);
        assert!(
            out.fields["meta_description"].contains("Livraison rapide"),
            "{out:?}"
        );
        assert_eq!(
            out.alt_texts,
            [
                (7, "Tasse rouge, image 1".to_string()),
                (8, "Tasse rouge, image 2".to_string())
            ]
        );
        assert_eq!(generate(&fr), out);
        let de = generate(&input("de", "Rote Tasse", None, &["alt_text"]));
        assert_eq!(de.alt_texts[0].1, "Rote Tasse, Bild 1");
    }

    #[test]
    fn descriptions_are_written_only_when_thin_and_stay_safe_html() {
        let thin = generate(&input(
            "en",
            "Mug <Special> & Co",
            Some("Nice."),
            &["description"],
        ));
        let html = &thin.fields["description"];
        assert_eq!(
            html,
            "<p>Discover Mug &lt;Special&gt; &amp; Co. Fast delivery and free returns.</p>"
        );
        assert!(crate::audits::html::scan(html).broken_parts.is_empty());
        let rich = "<p>A long and careful description of this mug, written by someone who knows it well.</p>";
        assert!(
            generate(&input("en", "Mug", Some(rich), &["description"]))
                .fields
                .is_empty()
        );
        assert!(
            generate(&input("en", " ", None, &["meta_title"]))
                .fields
                .is_empty()
        );
    }

    #[test]
    fn truncation_respects_characters_and_words() {
        assert_eq!(truncate_words("short", 60), "short");
        assert_eq!(truncate_words("one two three", 9), "one two");
        assert_eq!(truncate_words("ééééééééééé", 5), "ééééé");
        assert_eq!(first_sentence("Hi there. Next one."), "Hi there.");
        assert_eq!(first_sentence("v1.5 is out"), "v1.5 is out");
    }
}
