//! The `rules` provider: offline and deterministic, built from templates over the request's
//! allowed inputs. The zero-config default: good enough for meta titles, meta descriptions,
//! keywords, short descriptions and alt texts, in the store view's language. Nothing leaves
//! the machine.

use crate::error::AiError;
use crate::provider::{Generation, Provider, ProviderKind, Usage};
use crate::request::{Request, Task};
use crate::text::{estimate_tokens, truncate_words};

pub const MODEL: &str = "templates";
/// Bumped whenever a template changes, so proposals say which templates made them.
pub const PROMPT_VERSION: &str = "rules-2026-11";

const META_DESCRIPTION_MIN: usize = 50;

/// Words in each language the templates need.
struct Phrases {
    /// Appended to a meta description that would be too short.
    pitch: &'static str,
    /// Opens a description: "{discover} {name}. {pitch}".
    discover: &'static str,
    /// Alt text: "{name}, {image} {n}".
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

#[derive(Debug, Clone)]
pub struct RulesProvider {
    name: String,
}

impl RulesProvider {
    pub fn new(name: &str) -> RulesProvider {
        RulesProvider {
            name: name.to_string(),
        }
    }
}

#[async_trait::async_trait]
impl Provider for RulesProvider {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> ProviderKind {
        ProviderKind::Rules
    }

    fn model(&self) -> &str {
        MODEL
    }

    async fn generate(&self, request: &Request) -> Result<Generation, AiError> {
        Ok(generate(request))
    }
}

/// Generates the requested fields; a field the input cannot support is left out.
pub fn generate(request: &Request) -> Generation {
    let p = phrases(request.language());
    let name = request.name().unwrap_or_default();
    let text = request.description().unwrap_or_default();
    let first_sentence = first_sentence(text);
    let mut out = Generation {
        model: MODEL.into(),
        prompt_version: PROMPT_VERSION.into(),
        ..Generation::default()
    };
    if name.is_empty() {
        return out;
    }
    for task in request.tasks() {
        let value = match task {
            Task::MetaTitle => Some(truncate_words(name, task.max_chars())),
            Task::MetaDescription => Some(meta_description(name, &first_sentence, &p)),
            Task::MetaKeyword => Some(keywords(name)),
            Task::ShortDescription => Some(if first_sentence.chars().count() >= 20 {
                truncate_words(&first_sentence, task.max_chars())
            } else {
                format!("{name}. {}", p.pitch)
            }),
            Task::Description if text.chars().count() < 80 => Some(format!(
                "<p>{} {}. {}</p>",
                p.discover,
                escape(name),
                escape(p.pitch)
            )),
            Task::Description => None,
            Task::AltText => request.image().map(|image| {
                truncate_words(
                    &format!("{name}, {} {}", p.image, image.position),
                    task.max_chars(),
                )
            }),
        };
        if let Some(value) = value {
            out.fields.insert(task.field().to_string(), value);
        }
    }
    let output_chars: usize = out.fields.values().map(String::len).sum();
    out.usage = Usage {
        input_tokens: estimate_tokens(name.len() + text.len()),
        output_tokens: estimate_tokens(output_chars),
    };
    out
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
    truncate_words(&text, Task::MetaDescription.max_chars())
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

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::request::{Image, RequestBuilder};

    fn text(language: &str, name: &str, description: Option<&str>, tasks: &[Task]) -> Request {
        let mut b = RequestBuilder::text(language, tasks).name(name);
        if let Some(d) = description {
            b = b.description(d);
        }
        b.build()
    }

    fn alt(language: &str, name: &str, position: i64) -> Request {
        RequestBuilder::alt_text(language)
            .name(name)
            .image(Image {
                bytes: Vec::new(),
                mime: String::new(),
                position,
            })
            .build()
    }

    #[test]
    fn meta_fields_keep_search_engine_limits() {
        let long =
            "Premium Organic Cotton Relaxed Fit Crew Neck T-Shirt With Reinforced Seams In Navy";
        let out = generate(&text(
            "en",
            long,
            Some("<p>Soft organic cotton that keeps its shape. Machine washable.</p>"),
            &[
                Task::MetaTitle,
                Task::MetaDescription,
                Task::MetaKeyword,
                Task::ShortDescription,
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
        assert_eq!(out.prompt_version, PROMPT_VERSION);
    }

    #[test]
    fn store_views_get_their_language_and_output_is_deterministic() {
        let fr = text("fr", "Tasse rouge", None, &[Task::MetaDescription]);
        let out = generate(&fr);
        assert!(
            out.fields["meta_description"].contains("Livraison rapide"),
            "{out:?}"
        );
        assert_eq!(generate(&fr), out);
        assert_eq!(
            generate(&alt("fr", "Tasse rouge", 2)).fields["alt_text"],
            "Tasse rouge, image 2"
        );
        assert_eq!(
            generate(&alt("de", "Rote Tasse", 1)).fields["alt_text"],
            "Rote Tasse, Bild 1"
        );
    }

    #[test]
    fn descriptions_are_written_only_when_thin_and_stay_escaped() {
        let thin = generate(&text(
            "en",
            "Mug <Special> & Co",
            Some("Nice."),
            &[Task::Description],
        ));
        assert_eq!(
            thin.fields["description"],
            "<p>Discover Mug &lt;Special&gt; &amp; Co. Fast delivery and free returns.</p>"
        );
        let rich = "<p>A long and careful description of this mug, written by someone who knows it well.</p>";
        assert!(
            generate(&text("en", "Mug", Some(rich), &[Task::Description]))
                .fields
                .is_empty()
        );
        assert!(
            generate(&text("en", " ", None, &[Task::MetaTitle]))
                .fields
                .is_empty()
        );
        assert_eq!(first_sentence("Hi there. Next one."), "Hi there.");
        assert_eq!(first_sentence("v1.5 is out"), "v1.5 is out");
    }
}
