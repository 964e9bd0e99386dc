//! Anthropic's Messages API: `x-api-key`, `anthropic-version`, `max_tokens`; the answer's
//! structure is enforced by a forced tool call whose input schema is the request's schema.

use base64::Engine;
use serde_json::{Value, json};

use crate::http::{Answer, HttpProvider, Repair};
use crate::prompts::Rendered;
use crate::request::Request;

pub const VERSION: &str = "2023-06-01";
const TOOL: &str = "product_content";

pub(crate) fn messages_body(
    provider: &HttpProvider,
    request: &Request,
    rendered: &Rendered,
    repair: Option<&Repair>,
) -> Value {
    let mut content = Vec::new();
    if let Some(image) = request.image() {
        content.push(json!({"type": "image", "source": {"type": "base64",
            "media_type": image.mime,
            "data": base64::engine::general_purpose::STANDARD.encode(&image.bytes)}}));
    }
    content.push(json!({"type": "text", "text": rendered.user}));
    let mut messages = vec![json!({"role": "user", "content": content})];
    if let Some(repair) = repair {
        messages.push(json!({"role": "assistant", "content": repair.previous}));
        messages.push(json!({"role": "user", "content": repair.instruction()}));
    }
    json!({
        "model": provider.model,
        "max_tokens": provider.max_output_tokens,
        "system": rendered.system,
        "messages": messages,
        "tools": [{"name": TOOL, "description": "Records the generated product content.",
                   "input_schema": request.schema()}],
        "tool_choice": {"type": "tool", "name": TOOL},
    })
}

pub(crate) fn messages_answer(value: &Value) -> Result<Answer, String> {
    let blocks = value["content"]
        .as_array()
        .ok_or_else(|| "the answer has no content".to_string())?;
    if let Some(tool) = blocks
        .iter()
        .find(|b| b["type"] == "tool_use" && b["name"] == TOOL)
    {
        return Ok(Answer::Json(tool["input"].clone()));
    }
    let text: String = blocks
        .iter()
        .filter(|b| b["type"] == "text")
        .filter_map(|b| b["text"].as_str())
        .collect();
    if text.is_empty() {
        return Err("the answer has neither the tool call nor text".into());
    }
    Ok(Answer::Text(text))
}
