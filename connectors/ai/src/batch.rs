//! Batch APIs for scheduled runs: OpenAI Batch (a JSONL file of requests, then a batch over
//! it) and Anthropic Message Batches. [`BatchHandle`] is plain data, so a job can keep it in
//! its checkpoint and poll the same batch again after a restart; it holds what results are
//! read with (each item's tasks and prompt version), never product data.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::error::AiError;
use crate::http::{Dialect, HttpProvider, fields_of};
use crate::provider::{Generation, Usage};
use crate::request::{Request, RequestBuilder, Task};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchItem {
    pub tasks: Vec<Task>,
    pub prompt_version: String,
}

/// A submitted batch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchHandle {
    /// The provider's batch id.
    pub id: String,
    /// `openai` or `anthropic`.
    pub api: String,
    pub model: String,
    pub items: BTreeMap<String, BatchItem>,
}

/// Where a batch is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BatchPoll {
    /// Still running; `status` is the provider's word for it.
    Pending { status: String },
    /// Ended: each submitted item's result by custom id (items without one get an error).
    Done(BTreeMap<String, Result<Generation, AiError>>),
}

fn valid_custom_id(id: &str) -> bool {
    (1..=64).contains(&id.len())
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

pub(crate) async fn submit(
    provider: &HttpProvider,
    items: &[(String, Request)],
) -> Result<BatchHandle, AiError> {
    if items.is_empty() {
        return Err(AiError::Batch("a batch needs at least one request".into()));
    }
    let mut handle_items = BTreeMap::new();
    let mut bodies = Vec::with_capacity(items.len());
    for (custom_id, request) in items {
        if !valid_custom_id(custom_id) || handle_items.contains_key(custom_id) {
            return Err(AiError::Batch(format!(
                "invalid or repeated custom id {custom_id:?}"
            )));
        }
        let rendered = provider.prompts.render(request);
        bodies.push((custom_id.clone(), provider.body(request, &rendered, None)));
        handle_items.insert(
            custom_id.clone(),
            BatchItem {
                tasks: request.tasks().to_vec(),
                prompt_version: rendered.version,
            },
        );
    }
    let base = &provider.base_url;
    let id = match provider.dialect {
        Dialect::Anthropic => {
            let requests: Vec<Value> = bodies
                .into_iter()
                .map(|(custom_id, params)| json!({"custom_id": custom_id, "params": params}))
                .collect();
            let body = json!({"requests": requests});
            let url = format!("{base}/messages/batches");
            let (value, _) = provider
                .send(1, || provider.client.post(&url).json(&body))
                .await?;
            value["id"].as_str().map(String::from)
        }
        Dialect::OpenAiChat | Dialect::OpenAiResponses => {
            let endpoint = format!("/v1{}", provider.endpoint());
            let mut jsonl = String::new();
            for (custom_id, body) in bodies {
                jsonl.push_str(
                    &json!({"custom_id": custom_id, "method": "POST", "url": endpoint, "body": body})
                        .to_string(),
                );
                jsonl.push('\n');
            }
            let files = format!("{base}/files");
            let (file, _) = provider
                .send(1, || {
                    let part = reqwest::multipart::Part::bytes(jsonl.clone().into_bytes())
                        .file_name("batch.jsonl")
                        .mime_str("application/jsonl")
                        .expect("a valid MIME type");
                    let form = reqwest::multipart::Form::new()
                        .text("purpose", "batch")
                        .part("file", part);
                    provider.client.post(&files).multipart(form)
                })
                .await?;
            let file_id = file["id"]
                .as_str()
                .ok_or_else(|| AiError::Batch("the file upload returned no id".into()))?
                .to_string();
            let body = json!({"input_file_id": file_id, "endpoint": endpoint,
                              "completion_window": "24h"});
            let url = format!("{base}/batches");
            let (value, _) = provider
                .send(1, || provider.client.post(&url).json(&body))
                .await?;
            value["id"].as_str().map(String::from)
        }
        Dialect::Compatible => return Err(AiError::Unsupported("batches")),
    };
    let id = id.ok_or_else(|| AiError::Batch("the provider returned no batch id".into()))?;
    Ok(BatchHandle {
        id,
        api: match provider.dialect {
            Dialect::Anthropic => "anthropic".into(),
            _ => "openai".into(),
        },
        model: provider.model.clone(),
        items: handle_items,
    })
}

pub(crate) async fn poll(
    provider: &HttpProvider,
    handle: &BatchHandle,
) -> Result<BatchPoll, AiError> {
    let base = &provider.base_url;
    let lines = match provider.dialect {
        Dialect::Anthropic => {
            let url = format!("{base}/messages/batches/{}", handle.id);
            let (batch, _) = provider.send(1, || provider.client.get(&url)).await?;
            let status = batch["processing_status"].as_str().unwrap_or("unknown");
            if status != "ended" {
                return Ok(BatchPoll::Pending {
                    status: status.to_string(),
                });
            }
            let results = batch["results_url"]
                .as_str()
                .ok_or_else(|| AiError::Batch("an ended batch without results_url".into()))?
                .to_string();
            fetch_lines(provider, &results).await?
        }
        Dialect::OpenAiChat | Dialect::OpenAiResponses => {
            let url = format!("{base}/batches/{}", handle.id);
            let (batch, _) = provider.send(1, || provider.client.get(&url)).await?;
            let status = batch["status"].as_str().unwrap_or("unknown");
            match status {
                "completed" | "expired" | "cancelled" => {}
                "failed" => {
                    return Err(AiError::Batch(format!(
                        "the batch failed: {}",
                        batch["errors"]["data"][0]["message"]
                            .as_str()
                            .unwrap_or("no reason given")
                    )));
                }
                other => {
                    return Ok(BatchPoll::Pending {
                        status: other.to_string(),
                    });
                }
            }
            let mut lines = Vec::new();
            for key in ["output_file_id", "error_file_id"] {
                if let Some(file) = batch[key].as_str() {
                    lines.extend(
                        fetch_lines(provider, &format!("{base}/files/{file}/content")).await?,
                    );
                }
            }
            lines
        }
        Dialect::Compatible => return Err(AiError::Unsupported("batches")),
    };
    let mut results = BTreeMap::new();
    for line in lines {
        let Some(custom_id) = line["custom_id"].as_str() else {
            continue;
        };
        let Some(item) = handle.items.get(custom_id) else {
            continue;
        };
        results.insert(
            custom_id.to_string(),
            read_result(provider, handle, item, &line),
        );
    }
    for custom_id in handle.items.keys() {
        results.entry(custom_id.clone()).or_insert_with(|| {
            Err(AiError::Batch(
                "the batch returned no result for this item".into(),
            ))
        });
    }
    Ok(BatchPoll::Done(results))
}

/// The largest batch results file read: a chunk of a thousand products' answers.
const RESULTS_LIMIT: egress::BodyLimit =
    egress::BodyLimit::new("batch results file", 64 * 1024 * 1024);

async fn fetch_lines(provider: &HttpProvider, url: &str) -> Result<Vec<Value>, AiError> {
    let permit = provider.limiter.acquire(1).await;
    let response = provider
        .client
        .send(provider.authorise(provider.client.get(url)))
        .await
        .map_err(|e| match e {
            egress::SendError::Refused(refusal) => AiError::Config(format!("base_url: {refusal}")),
            other => AiError::Unavailable(format!("batch results: {other}")),
        })?;
    drop(permit);
    if !response.status().is_success() {
        return Err(AiError::Unavailable(format!(
            "batch results answered {}",
            response.error_answer().await
        )));
    }
    let text = response
        .text(RESULTS_LIMIT)
        .await
        .map_err(|e| AiError::Unavailable(format!("batch results: {e}")))?;
    Ok(text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect())
}

fn read_result(
    provider: &HttpProvider,
    handle: &BatchHandle,
    item: &BatchItem,
    line: &Value,
) -> Result<Generation, AiError> {
    let body = match provider.dialect {
        Dialect::Anthropic => {
            let result = &line["result"];
            if result["type"] != "succeeded" {
                return Err(AiError::Refused {
                    status: 400,
                    message: result["error"]["error"]["message"]
                        .as_str()
                        .unwrap_or(result["type"].as_str().unwrap_or("no result"))
                        .to_string(),
                });
            }
            result["message"].clone()
        }
        _ => {
            let response = &line["response"];
            let status = response["status_code"].as_u64().unwrap_or(0);
            if status != 200 {
                return Err(AiError::Refused {
                    status: status as u16,
                    message: response["body"]["error"]["message"]
                        .as_str()
                        .or(line["error"]["message"].as_str())
                        .unwrap_or("no result")
                        .to_string(),
                });
            }
            response["body"].clone()
        }
    };
    let u = &body["usage"];
    let usage = Usage {
        input_tokens: u["input_tokens"]
            .as_u64()
            .or(u["prompt_tokens"].as_u64())
            .unwrap_or(0),
        output_tokens: u["output_tokens"]
            .as_u64()
            .or(u["completion_tokens"].as_u64())
            .unwrap_or(0),
    };
    // Results are read against the tasks recorded at submission.
    let request = RequestBuilder::text("en", &item.tasks).build();
    let request = if item.tasks == [Task::AltText] {
        RequestBuilder::alt_text("en").build()
    } else {
        request
    };
    let answer = provider
        .answer(&body)
        .map_err(|message| AiError::InvalidOutput { message, usage })?;
    let fields = fields_of(&request, &answer)
        .map_err(|message| AiError::InvalidOutput { message, usage })?;
    Ok(Generation {
        fields,
        usage,
        model: handle.model.clone(),
        prompt_version: item.prompt_version.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handles_survive_a_round_trip_through_json() {
        let handle = BatchHandle {
            id: "batch_1".into(),
            api: "openai".into(),
            model: "gpt-x".into(),
            items: BTreeMap::from([(
                "p1_0_t".to_string(),
                BatchItem {
                    tasks: vec![Task::MetaTitle],
                    prompt_version: "system.v1,meta_title.v1".into(),
                },
            )]),
        };
        let json = serde_json::to_string(&handle).unwrap();
        assert_eq!(serde_json::from_str::<BatchHandle>(&json).unwrap(), handle);
        assert!(valid_custom_id("0190abcdef_12_a345"));
        assert!(!valid_custom_id("has space"));
        assert!(!valid_custom_id(&"x".repeat(65)));
    }
}
