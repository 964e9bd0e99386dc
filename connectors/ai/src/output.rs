//! The model's answer: a JSON object with one string per task, checked against the request.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::request::Task;
use crate::text::truncate_words;

/// Reads the JSON object out of `text` (a bare object, or one inside a Markdown code fence)
/// and checks that every task has a non-empty string. Over-long answers are cut at a word
/// boundary to the task's limit.
pub fn parse_fields(tasks: &[Task], text: &str) -> Result<BTreeMap<String, String>, String> {
    let trimmed = text.trim();
    let unfenced = trimmed
        .strip_prefix("```json")
        .or_else(|| trimmed.strip_prefix("```"))
        .and_then(|t| t.strip_suffix("```"))
        .unwrap_or(trimmed)
        .trim();
    let value: Value =
        serde_json::from_str(unfenced).map_err(|e| format!("not valid JSON ({e})"))?;
    fields_from_value(tasks, &value)
}

pub fn fields_from_value(
    tasks: &[Task],
    value: &Value,
) -> Result<BTreeMap<String, String>, String> {
    let object = value
        .as_object()
        .ok_or_else(|| "the answer is not a JSON object".to_string())?;
    let mut fields = BTreeMap::new();
    for task in tasks {
        let text = object
            .get(task.field())
            .and_then(Value::as_str)
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| format!("the answer has no string {:?}", task.field()))?;
        let text = if *task == Task::Description {
            text.to_string()
        } else {
            truncate_words(text, task.max_chars())
        };
        fields.insert(task.field().to_string(), text);
    }
    Ok(fields)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::request::RequestBuilder;

    #[test]
    fn answers_are_checked_against_the_tasks() {
        let request = RequestBuilder::text("en", &[Task::MetaTitle]).build();
        let r = request.tasks();
        assert_eq!(
            parse_fields(r, "```json\n{\"meta_title\": \"Red mug\"}\n```").unwrap()["meta_title"],
            "Red mug"
        );
        assert!(parse_fields(r, "{\"meta_title\": \"Red").is_err());
        assert!(parse_fields(r, "{\"title\": \"Red mug\"}").is_err());
        assert!(parse_fields(r, "[1]").is_err());
        let long = format!("{{\"meta_title\": \"{}\"}}", "word ".repeat(30));
        assert!(
            parse_fields(r, &long).unwrap()["meta_title"]
                .chars()
                .count()
                <= 60
        );
    }
}
