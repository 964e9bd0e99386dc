//! OpenAI's Chat Completions and Responses APIs, and OpenAI-compatible servers.
//!
//! Requests to OpenAI set `store: false` (neither API keeps the conversation) and ask for a
//! strict JSON schema answer; pictures go as `data:` URLs at `detail: low`. Compatible servers
//! (Ollama, vLLM, LM Studio) get plain Chat Completions with `max_tokens`.

use base64::Engine;
use serde_json::{Value, json};

use crate::http::{Answer, HttpProvider, Repair};
use crate::prompts::Rendered;
use crate::request::Request;

const SCHEMA_NAME: &str = "product_content";

fn data_url(request: &Request) -> Option<String> {
    request.image().map(|image| {
        format!(
            "data:{};base64,{}",
            image.mime,
            base64::engine::general_purpose::STANDARD.encode(&image.bytes)
        )
    })
}

pub(crate) fn chat_body(
    provider: &HttpProvider,
    request: &Request,
    rendered: &Rendered,
    repair: Option<&Repair>,
    is_openai: bool,
) -> Value {
    let mut content = vec![json!({"type": "text", "text": rendered.user})];
    if let Some(url) = data_url(request) {
        content.push(json!({"type": "image_url", "image_url": {"url": url, "detail": "low"}}));
    }
    let mut messages = vec![
        json!({"role": "system", "content": rendered.system}),
        json!({"role": "user", "content": content}),
    ];
    if let Some(repair) = repair {
        messages.push(json!({"role": "assistant", "content": repair.previous}));
        messages.push(json!({"role": "user", "content": repair.instruction()}));
    }
    let mut body = json!({
        "model": provider.model,
        "messages": messages,
        "response_format": {"type": "json_schema", "json_schema": {
            "name": SCHEMA_NAME, "schema": request.schema(), "strict": true}},
    });
    if is_openai {
        body["store"] = json!(false);
        body["max_completion_tokens"] = json!(provider.max_output_tokens);
    } else {
        body["max_tokens"] = json!(provider.max_output_tokens);
    }
    body
}

pub(crate) fn responses_body(
    provider: &HttpProvider,
    request: &Request,
    rendered: &Rendered,
    repair: Option<&Repair>,
) -> Value {
    let mut content = vec![json!({"type": "input_text", "text": rendered.user})];
    if let Some(url) = data_url(request) {
        content.push(json!({"type": "input_image", "image_url": url, "detail": "low"}));
    }
    let mut input = vec![json!({"role": "user", "content": content})];
    if let Some(repair) = repair {
        input.push(json!({"role": "assistant", "content": repair.previous}));
        input.push(json!({"role": "user", "content": repair.instruction()}));
    }
    json!({
        "model": provider.model,
        "instructions": rendered.system,
        "input": input,
        "store": false,
        "max_output_tokens": provider.max_output_tokens,
        "text": {"format": {"type": "json_schema", "name": SCHEMA_NAME,
            "schema": request.schema(), "strict": true}},
    })
}

pub(crate) fn chat_answer(value: &Value) -> Result<Answer, String> {
    let message = &value["choices"][0]["message"];
    if let Some(refusal) = message["refusal"].as_str() {
        return Err(format!("the model refused: {refusal}"));
    }
    message["content"]
        .as_str()
        .map(|t| Answer::Text(t.to_string()))
        .ok_or_else(|| "the answer has no message content".to_string())
}

pub(crate) fn responses_answer(value: &Value) -> Result<Answer, String> {
    let mut text = String::new();
    for item in value["output"].as_array().into_iter().flatten() {
        for part in item["content"].as_array().into_iter().flatten() {
            match part["type"].as_str() {
                Some("output_text") => text.push_str(part["text"].as_str().unwrap_or_default()),
                Some("refusal") => {
                    return Err(format!(
                        "the model refused: {}",
                        part["refusal"].as_str().unwrap_or_default()
                    ));
                }
                _ => {}
            }
        }
    }
    if text.is_empty() {
        return Err("the answer has no output text".into());
    }
    Ok(Answer::Text(text))
}
