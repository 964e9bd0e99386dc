//! Data minimisation by construction: what a provider may receive for each task.
//!
//! A [`Request`] can only be made by a [`RequestBuilder`], and the builder has a setter for
//! each input some task is allowed to send — the product name, its existing description (as
//! plain text), attributes the store marked descriptive, category names, and the picture —
//! and nothing else. A setter whose input none of the request's tasks allows drops the value.
//! Prices, stock, costs, customer data, credentials and internal notes have no setter, so no
//! caller can send them, by mistake or otherwise.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::text::{estimate_tokens, html_to_text};

/// One piece of generated content.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Task {
    Description,
    ShortDescription,
    MetaTitle,
    MetaDescription,
    MetaKeyword,
    /// The alt text of one picture (a vision request).
    AltText,
}

/// Inputs a task may send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Input {
    Name,
    Description,
    /// Attributes the store marked as descriptive content (material, colour…).
    DescriptiveAttributes,
    Categories,
    Image,
}

impl Task {
    pub const ALL: &'static [Task] = &[
        Task::Description,
        Task::ShortDescription,
        Task::MetaTitle,
        Task::MetaDescription,
        Task::MetaKeyword,
        Task::AltText,
    ];

    /// The content field the task writes.
    pub fn field(self) -> &'static str {
        match self {
            Task::Description => "description",
            Task::ShortDescription => "short_description",
            Task::MetaTitle => "meta_title",
            Task::MetaDescription => "meta_description",
            Task::MetaKeyword => "meta_keyword",
            Task::AltText => "alt_text",
        }
    }

    pub fn parse(field: &str) -> Option<Task> {
        Task::ALL.iter().copied().find(|t| t.field() == field)
    }

    /// The allow-list: everything this task may send to a provider.
    pub fn allowed(self) -> &'static [Input] {
        use Input::*;
        match self {
            Task::Description => &[Name, Description, DescriptiveAttributes, Categories],
            Task::ShortDescription => &[Name, Description, DescriptiveAttributes],
            Task::MetaTitle => &[Name, Description, DescriptiveAttributes, Categories],
            Task::MetaDescription => &[Name, Description, DescriptiveAttributes, Categories],
            Task::MetaKeyword => &[Name, DescriptiveAttributes, Categories],
            Task::AltText => &[Name, Image],
        }
    }

    /// The longest acceptable answer, in characters (search engines cut meta fields).
    pub fn max_chars(self) -> usize {
        match self {
            Task::MetaTitle => 60,
            Task::MetaDescription => 160,
            Task::MetaKeyword => 255,
            Task::ShortDescription => 255,
            Task::AltText => 125,
            Task::Description => 4000,
        }
    }

    /// Whether the answer is HTML (sanitised by the caller before it is stored).
    pub fn is_html(self) -> bool {
        matches!(self, Task::Description | Task::ShortDescription)
    }
}

/// A picture for a vision request: the mirrored file's bytes and type, and its position.
#[derive(Clone, PartialEq, Eq)]
pub struct Image {
    pub bytes: Vec<u8>,
    /// `image/jpeg`, `image/png`…
    pub mime: String,
    pub position: i64,
}

impl std::fmt::Debug for Image {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Image")
            .field("bytes", &self.bytes.len())
            .field("mime", &self.mime)
            .field("position", &self.position)
            .finish()
    }
}

/// Attribute codes that are never descriptive, whatever a store calls content: a store that
/// marks `cost` as a content attribute still does not get it sent.
const NEVER_SENT: &[&str] = &[
    "price", "cost", "stock", "qty", "quantity", "tax", "customer", "password", "secret", "token",
    "key", "note", "internal", "margin", "supplier", "email",
];

fn is_never_sent(code: &str) -> bool {
    let code = code.to_ascii_lowercase();
    NEVER_SENT.iter().any(|w| code.contains(w))
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Inputs {
    name: Option<String>,
    description: Option<String>,
    attributes: BTreeMap<String, String>,
    categories: Vec<String>,
    image: Option<Image>,
}

/// The only way to make a [`Request`]; see the module documentation.
#[derive(Debug, Clone)]
pub struct RequestBuilder {
    tasks: Vec<Task>,
    language: String,
    inputs: Inputs,
}

impl RequestBuilder {
    /// A request for text fields in `language` (`en`, `fr`…). Alt text has its own request.
    pub fn text(language: &str, tasks: &[Task]) -> RequestBuilder {
        let mut tasks: Vec<Task> = tasks
            .iter()
            .copied()
            .filter(|t| *t != Task::AltText)
            .collect();
        tasks.sort();
        tasks.dedup();
        RequestBuilder {
            tasks,
            language: language.to_string(),
            inputs: Inputs::default(),
        }
    }

    /// A request for one picture's alt text in `language`.
    pub fn alt_text(language: &str) -> RequestBuilder {
        RequestBuilder {
            tasks: vec![Task::AltText],
            language: language.to_string(),
            inputs: Inputs::default(),
        }
    }

    fn allows(&self, input: Input) -> bool {
        self.tasks.iter().any(|t| t.allowed().contains(&input))
    }

    pub fn name(mut self, name: &str) -> Self {
        let name = name.trim();
        if self.allows(Input::Name) && !name.is_empty() {
            self.inputs.name = Some(name.to_string());
        }
        self
    }

    /// The existing description; only its visible text is sent.
    pub fn description(mut self, html: &str) -> Self {
        let text = html_to_text(html);
        if self.allows(Input::Description) && !text.is_empty() {
            self.inputs.description = Some(text);
        }
        self
    }

    /// An attribute the store marked as descriptive content.
    pub fn descriptive_attribute(mut self, code: &str, value: &str) -> Self {
        let value = html_to_text(value);
        if self.allows(Input::DescriptiveAttributes) && !is_never_sent(code) && !value.is_empty() {
            self.inputs.attributes.insert(code.to_string(), value);
        }
        self
    }

    pub fn category(mut self, name: &str) -> Self {
        let name = name.trim();
        if self.allows(Input::Categories) && !name.is_empty() {
            self.inputs.categories.push(name.to_string());
        }
        self
    }

    pub fn image(mut self, image: Image) -> Self {
        if self.allows(Input::Image) {
            self.inputs.image = Some(image);
        }
        self
    }

    pub fn build(self) -> Request {
        Request {
            tasks: self.tasks,
            language: self.language,
            inputs: self.inputs,
        }
    }
}

/// What a provider is asked: tasks, a language, and allow-listed inputs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    tasks: Vec<Task>,
    language: String,
    inputs: Inputs,
}

impl Request {
    pub fn tasks(&self) -> &[Task] {
        &self.tasks
    }

    pub fn language(&self) -> &str {
        &self.language
    }

    pub fn name(&self) -> Option<&str> {
        self.inputs.name.as_deref()
    }

    pub fn description(&self) -> Option<&str> {
        self.inputs.description.as_deref()
    }

    pub fn attributes(&self) -> &BTreeMap<String, String> {
        &self.inputs.attributes
    }

    pub fn categories(&self) -> &[String] {
        &self.inputs.categories
    }

    pub fn image(&self) -> Option<&Image> {
        self.inputs.image.as_ref()
    }

    /// The product facts as the JSON a prompt embeds: exactly the allow-listed inputs.
    pub fn facts(&self) -> Value {
        let mut facts = serde_json::Map::new();
        if let Some(name) = &self.inputs.name {
            facts.insert("name".into(), json!(name));
        }
        if let Some(description) = &self.inputs.description {
            facts.insert("description".into(), json!(description));
        }
        if !self.inputs.attributes.is_empty() {
            facts.insert("attributes".into(), json!(self.inputs.attributes));
        }
        if !self.inputs.categories.is_empty() {
            facts.insert("categories".into(), json!(self.inputs.categories));
        }
        Value::Object(facts)
    }

    /// The JSON schema of the answer: one string per task, with its length limit.
    pub fn schema(&self) -> Value {
        let mut properties = serde_json::Map::new();
        for task in &self.tasks {
            properties.insert(
                task.field().into(),
                json!({"type": "string",
                    "description": format!("at most {} characters", task.max_chars())}),
            );
        }
        json!({
            "type": "object",
            "properties": properties,
            "required": self.tasks.iter().map(|t| t.field()).collect::<Vec<_>>(),
            "additionalProperties": false,
        })
    }

    /// Input tokens before sending (about four characters a token; a picture ~800).
    pub fn estimate_input_tokens(&self, prompt_chars: usize) -> u64 {
        let facts = self.facts().to_string().len();
        estimate_tokens(prompt_chars + facts) + if self.inputs.image.is_some() { 800 } else { 0 }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_task_keeps_only_its_inputs() {
        let image = Image {
            bytes: vec![1, 2, 3],
            mime: "image/png".into(),
            position: 1,
        };
        let alt = RequestBuilder::alt_text("en")
            .name("Mug")
            .description("<p>Secret plans</p>")
            .descriptive_attribute("material", "Clay")
            .category("Kitchen")
            .image(image.clone())
            .build();
        assert_eq!(alt.facts(), json!({"name": "Mug"}));
        assert_eq!(alt.image(), Some(&image));

        let keywords = RequestBuilder::text("en", &[Task::MetaKeyword])
            .name("Mug")
            .description("<p>Long text</p>")
            .image(image)
            .build();
        assert_eq!(keywords.facts(), json!({"name": "Mug"}));
        assert!(keywords.image().is_none());
    }

    #[test]
    fn attributes_that_look_commercial_are_never_sent() {
        let r = RequestBuilder::text("en", &[Task::Description])
            .name("Mug")
            .descriptive_attribute("material", "<b>Clay</b>")
            .descriptive_attribute("cost_price", "3.10")
            .descriptive_attribute("supplier_note", "call Bob")
            .descriptive_attribute("qty_in_stock", "12")
            .build();
        assert_eq!(
            r.facts(),
            json!({"name": "Mug", "attributes": {"material": "Clay"}})
        );
    }

    #[test]
    fn alt_text_is_never_part_of_a_text_request_and_schema_names_limits() {
        let r =
            RequestBuilder::text("fr", &[Task::MetaTitle, Task::AltText, Task::MetaTitle]).build();
        assert_eq!(r.tasks(), [Task::MetaTitle]);
        assert_eq!(
            r.schema()["properties"]["meta_title"]["description"],
            "at most 60 characters"
        );
        assert_eq!(r.schema()["required"], json!(["meta_title"]));
    }
}
