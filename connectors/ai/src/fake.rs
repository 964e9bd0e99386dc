//! A loopback fake of the OpenAI and Anthropic HTTP APIs (feature `fake`), for tests and
//! benchmarks: Chat Completions, Responses, Messages, Files + Batches and Message Batches.
//!
//! It records every request (time of arrival, path, headers that matter, body), answers each
//! generation with a valid JSON object for the schema it was sent, and can be scripted to
//! answer the next generations with 429s (and headers), spend-limit errors, 5xx, 400s,
//! invalid JSON or any body. With `rpm_limit` it enforces a requests-per-window limit like a
//! provider does, refusing (and counting) every request beyond it.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

/// A scripted answer for the next generation request.
#[derive(Debug, Clone)]
pub enum Scripted {
    /// 429 with these headers (e.g. `retry-after-ms`, `x-ratelimit-reset-requests`).
    RateLimited(Vec<(String, String)>),
    /// 429 `insufficient_quota` (OpenAI paths) / `enforced_spend_limit_reached` (Anthropic).
    SpendLimit,
    ServerError,
    BadRequest(String),
    /// A successful response whose model output is truncated JSON.
    InvalidJson,
    /// This exact body, 200.
    Reply(Value),
}

#[derive(Debug, Clone)]
pub struct FakeConfig {
    /// Refuse requests beyond this many per window, as a provider does.
    pub rpm_limit: Option<(u32, Duration)>,
    /// Added to each answer.
    pub latency: Duration,
    /// Polls of a batch that still find it running.
    pub batch_polls_before_done: u32,
}

impl Default for FakeConfig {
    fn default() -> Self {
        FakeConfig {
            rpm_limit: None,
            latency: Duration::ZERO,
            batch_polls_before_done: 1,
        }
    }
}

/// One request as the fake received it.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub at: Instant,
    pub method: String,
    pub path: String,
    /// `authorization`, `x-api-key`, `anthropic-version`, if sent.
    pub headers: HashMap<String, String>,
    /// The raw body (multipart uploads included).
    pub raw: String,
    pub body: Value,
}

impl Recorded {
    pub fn is_generation(&self) -> bool {
        matches!(
            self.path.as_str(),
            "/v1/chat/completions" | "/v1/responses" | "/v1/messages"
        )
    }
}

struct FakeBatch {
    anthropic: bool,
    polls: u32,
    results: String,
}

struct Shared {
    config: FakeConfig,
    base: String,
    requests: Mutex<Vec<Recorded>>,
    script: Mutex<VecDeque<Scripted>>,
    over_limit: AtomicUsize,
    files: Mutex<HashMap<String, String>>,
    batches: Mutex<HashMap<String, FakeBatch>>,
    next_id: AtomicU64,
}

/// The running fake; stops when dropped.
pub struct FakeServer {
    addr: SocketAddr,
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FakeServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FakeServer {
    pub async fn start() -> FakeServer {
        Self::start_with(FakeConfig::default()).await
    }

    pub async fn start_with(config: FakeConfig) -> FakeServer {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a loopback port");
        let addr = listener.local_addr().expect("an address");
        let shared = Arc::new(Shared {
            config,
            base: format!("http://{addr}/v1"),
            requests: Mutex::new(Vec::new()),
            script: Mutex::new(VecDeque::new()),
            over_limit: AtomicUsize::new(0),
            files: Mutex::new(HashMap::new()),
            batches: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(1),
        });
        let app = Router::new().fallback(handle).with_state(shared.clone());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        FakeServer { addr, shared, task }
    }

    /// `http://127.0.0.1:<port>/v1`, the `base_url` to configure.
    pub fn base_url(&self) -> String {
        self.shared.base.clone()
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Queues answers for the next generation requests (batched ones included).
    pub fn script(&self, answers: impl IntoIterator<Item = Scripted>) {
        self.shared
            .script
            .lock()
            .expect("script lock")
            .extend(answers);
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.shared.requests.lock().expect("requests lock").clone()
    }

    pub fn generation_requests(&self) -> Vec<Recorded> {
        self.requests()
            .into_iter()
            .filter(Recorded::is_generation)
            .collect()
    }

    pub fn request_count(&self) -> usize {
        self.shared.requests.lock().expect("requests lock").len()
    }

    /// Requests refused for exceeding `rpm_limit`.
    pub fn over_limit(&self) -> usize {
        self.shared.over_limit.load(Ordering::Relaxed)
    }

    /// The most requests that arrived within any `window`.
    pub fn max_in_window(&self, window: Duration) -> usize {
        let mut times: Vec<Instant> = self.requests().iter().map(|r| r.at).collect();
        times.sort();
        max_in_window(&times, window)
    }
}

/// The most of `sorted` times within any half-open `window`.
pub fn max_in_window(sorted: &[Instant], window: Duration) -> usize {
    let mut best = 0;
    let mut start = 0;
    for (end, t) in sorted.iter().enumerate() {
        while t.duration_since(sorted[start]) >= window {
            start += 1;
        }
        best = best.max(end - start + 1);
    }
    best
}

fn error(status: StatusCode, anthropic: bool, kind: &str, message: &str) -> Response {
    let body = if anthropic {
        json!({"type": "error", "error": {"type": kind, "message": message}})
    } else {
        json!({"error": {"message": message, "type": kind, "code": kind}})
    };
    (status, axum::Json(body)).into_response()
}

async fn handle(
    State(shared): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let at = Instant::now();
    let path = uri.path().to_string();
    let raw = String::from_utf8_lossy(&body).to_string();
    let json: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let kept = ["authorization", "x-api-key", "anthropic-version"]
        .iter()
        .filter_map(|h| {
            headers
                .get(*h)
                .and_then(|v| v.to_str().ok())
                .map(|v| (h.to_string(), v.to_string()))
        })
        .collect();
    let recent = {
        let mut requests = shared.requests.lock().expect("requests lock");
        requests.push(Recorded {
            at,
            method: method.to_string(),
            path: path.clone(),
            headers: kept,
            raw: raw.clone(),
            body: json.clone(),
        });
        shared.config.rpm_limit.map(|(_, window)| {
            requests
                .iter()
                .rev()
                .take_while(|r| at.duration_since(r.at) < window)
                .count()
        })
    };
    if !shared.config.latency.is_zero() {
        tokio::time::sleep(shared.config.latency).await;
    }
    let anthropic = path.starts_with("/v1/messages");
    if let (Some((limit, _)), Some(recent)) = (shared.config.rpm_limit, recent)
        && recent > limit as usize
    {
        shared.over_limit.fetch_add(1, Ordering::Relaxed);
        let mut response = error(
            StatusCode::TOO_MANY_REQUESTS,
            anthropic,
            "rate_limit_error",
            "requests per minute exceeded",
        );
        response
            .headers_mut()
            .insert("retry-after-ms", "100".parse().expect("a header value"));
        return response;
    }
    match (method.as_str(), path.as_str()) {
        ("POST", "/v1/chat/completions" | "/v1/responses" | "/v1/messages") => {
            let answer = next_answer(&shared);
            generation(&path, &json, &raw, answer)
        }
        ("POST", "/v1/files") => {
            let id = format!("file-{}", shared.next_id.fetch_add(1, Ordering::Relaxed));
            shared
                .files
                .lock()
                .expect("files lock")
                .insert(id.clone(), raw);
            axum::Json(json!({"id": id, "object": "file", "purpose": "batch"})).into_response()
        }
        ("POST", "/v1/batches") => {
            let input = json["input_file_id"].as_str().unwrap_or_default();
            let Some(file) = shared.files.lock().expect("files lock").get(input).cloned() else {
                return error(
                    StatusCode::NOT_FOUND,
                    false,
                    "invalid_request_error",
                    "no such file",
                );
            };
            let mut results = String::new();
            for line in file
                .lines()
                .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            {
                let Some(custom_id) = line["custom_id"].as_str() else {
                    continue;
                };
                let url = line["url"]
                    .as_str()
                    .unwrap_or("/v1/chat/completions")
                    .to_string();
                let body = line["body"].clone();
                let (status, body) =
                    generation_value(&url, &body, &body.to_string(), next_answer(&shared));
                results.push_str(
                    &json!({"id": format!("req_{custom_id}"), "custom_id": custom_id,
                        "response": {"status_code": status, "body": body}, "error": null})
                    .to_string(),
                );
                results.push('\n');
            }
            let id = format!("batch_{}", shared.next_id.fetch_add(1, Ordering::Relaxed));
            shared.batches.lock().expect("batches lock").insert(
                id.clone(),
                FakeBatch {
                    anthropic: false,
                    polls: 0,
                    results,
                },
            );
            axum::Json(json!({"id": id, "object": "batch", "status": "validating"})).into_response()
        }
        ("POST", "/v1/messages/batches") => {
            let mut results = String::new();
            for request in json["requests"].as_array().into_iter().flatten() {
                let custom_id = request["custom_id"].as_str().unwrap_or_default();
                let params = &request["params"];
                let (status, body) = generation_value(
                    "/v1/messages",
                    params,
                    &params.to_string(),
                    next_answer(&shared),
                );
                let result = if status == 200 {
                    json!({"type": "succeeded", "message": body})
                } else {
                    json!({"type": "errored", "error": body})
                };
                results.push_str(&json!({"custom_id": custom_id, "result": result}).to_string());
                results.push('\n');
            }
            let id = format!(
                "msgbatch_{}",
                shared.next_id.fetch_add(1, Ordering::Relaxed)
            );
            shared.batches.lock().expect("batches lock").insert(
                id.clone(),
                FakeBatch {
                    anthropic: true,
                    polls: 0,
                    results,
                },
            );
            axum::Json(
                json!({"id": id, "type": "message_batch", "processing_status": "in_progress"}),
            )
            .into_response()
        }
        ("GET", p) if p.starts_with("/v1/files/") && p.ends_with("/content") => {
            let id = p
                .trim_start_matches("/v1/files/")
                .trim_end_matches("/content");
            match shared.files.lock().expect("files lock").get(id) {
                Some(text) => text.clone().into_response(),
                None => error(
                    StatusCode::NOT_FOUND,
                    false,
                    "invalid_request_error",
                    "no such file",
                ),
            }
        }
        ("GET", p) if p.starts_with("/v1/messages/batches/") && p.ends_with("/results") => {
            let id = p
                .trim_start_matches("/v1/messages/batches/")
                .trim_end_matches("/results");
            match shared.batches.lock().expect("batches lock").get(id) {
                Some(batch) => batch.results.clone().into_response(),
                None => error(
                    StatusCode::NOT_FOUND,
                    true,
                    "not_found_error",
                    "no such batch",
                ),
            }
        }
        ("GET", p) if p.starts_with("/v1/batches/") || p.starts_with("/v1/messages/batches/") => {
            let id = p.rsplit('/').next().unwrap_or_default().to_string();
            let mut batches = shared.batches.lock().expect("batches lock");
            let Some(batch) = batches.get_mut(&id) else {
                return error(
                    StatusCode::NOT_FOUND,
                    anthropic,
                    "not_found_error",
                    "no such batch",
                );
            };
            batch.polls += 1;
            let done = batch.polls > shared.config.batch_polls_before_done;
            if batch.anthropic {
                let mut body = json!({"id": id, "type": "message_batch",
                    "processing_status": if done { "ended" } else { "in_progress" }});
                if done {
                    body["results_url"] =
                        json!(format!("{}/messages/batches/{id}/results", shared.base));
                }
                axum::Json(body).into_response()
            } else if done {
                let file = format!("file-out-{id}");
                let results = batch.results.clone();
                drop(batches);
                shared
                    .files
                    .lock()
                    .expect("files lock")
                    .insert(file.clone(), results);
                axum::Json(json!({"id": id, "object": "batch", "status": "completed",
                    "output_file_id": file, "error_file_id": null}))
                .into_response()
            } else {
                axum::Json(json!({"id": id, "object": "batch", "status": "in_progress"}))
                    .into_response()
            }
        }
        _ => error(
            StatusCode::NOT_FOUND,
            anthropic,
            "not_found_error",
            "no such endpoint",
        ),
    }
}

fn next_answer(shared: &Shared) -> Option<Scripted> {
    shared.script.lock().expect("script lock").pop_front()
}

fn generation(path: &str, body: &Value, raw: &str, answer: Option<Scripted>) -> Response {
    let anthropic = path == "/v1/messages";
    match answer {
        Some(Scripted::RateLimited(headers)) => {
            let mut response = error(
                StatusCode::TOO_MANY_REQUESTS,
                anthropic,
                "rate_limit_error",
                "Rate limit reached for requests",
            );
            for (k, v) in headers {
                if let (Ok(k), Ok(v)) = (
                    axum::http::HeaderName::from_bytes(k.as_bytes()),
                    axum::http::HeaderValue::from_str(&v),
                ) {
                    response.headers_mut().insert(k, v);
                }
            }
            response
        }
        Some(Scripted::SpendLimit) if anthropic => error(
            StatusCode::TOO_MANY_REQUESTS,
            true,
            "enforced_spend_limit_reached",
            "You have reached your specified workspace API usage limits.",
        ),
        Some(Scripted::SpendLimit) => error(
            StatusCode::TOO_MANY_REQUESTS,
            false,
            "insufficient_quota",
            "You exceeded your current quota, please check your plan and billing details.",
        ),
        Some(Scripted::ServerError) => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            anthropic,
            "api_error",
            "The server had an error while processing your request.",
        ),
        Some(Scripted::BadRequest(message)) => error(
            StatusCode::BAD_REQUEST,
            anthropic,
            "invalid_request_error",
            &message,
        ),
        other => {
            let (status, value) = generation_value(path, body, raw, other);
            (
                StatusCode::from_u16(status).expect("a status"),
                axum::Json(value),
            )
                .into_response()
        }
    }
}

/// A successful generation's body (batches use it per line).
fn generation_value(path: &str, body: &Value, raw: &str, answer: Option<Scripted>) -> (u16, Value) {
    let path = path.trim_start_matches("/v1");
    let (schema, tool) = match path {
        "/messages" => (
            body["tools"][0]["input_schema"].clone(),
            body["tools"][0]["name"]
                .as_str()
                .unwrap_or("tool")
                .to_string(),
        ),
        "/responses" => (body["text"]["format"]["schema"].clone(), String::new()),
        _ => (
            body["response_format"]["json_schema"]["schema"].clone(),
            String::new(),
        ),
    };
    let model = body["model"].as_str().unwrap_or("fake").to_string();
    let output = match answer {
        Some(Scripted::Reply(value)) => return (200, value),
        Some(Scripted::InvalidJson) => Err("{\"meta_title\": \"Unfinished".to_string()),
        Some(Scripted::RateLimited(_) | Scripted::SpendLimit) => {
            return (
                429,
                json!({"error": {"message": "rate limited", "type": "rate_limit_error"}}),
            );
        }
        Some(Scripted::ServerError) => {
            return (
                500,
                json!({"error": {"message": "server error", "type": "api_error"}}),
            );
        }
        Some(Scripted::BadRequest(message)) => {
            return (
                400,
                json!({"error": {"message": message, "type": "invalid_request_error"}}),
            );
        }
        None => Ok(fields_for(&schema)),
    };
    let input_tokens = (raw.len() / 4) as u64;
    let output_tokens = 20u64;
    let value = match (path, output) {
        ("/messages", Ok(fields)) => {
            json!({"id": "msg_fake", "type": "message", "role": "assistant",
            "model": model, "content": [{"type": "tool_use", "id": "toolu_fake", "name": tool, "input": fields}],
            "stop_reason": "tool_use", "usage": {"input_tokens": input_tokens, "output_tokens": output_tokens}})
        }
        ("/messages", Err(text)) => {
            json!({"id": "msg_fake", "type": "message", "role": "assistant",
            "model": model, "content": [{"type": "text", "text": text}], "stop_reason": "end_turn",
            "usage": {"input_tokens": input_tokens, "output_tokens": output_tokens}})
        }
        ("/responses", output) => {
            let text = output.map(|f| f.to_string()).unwrap_or_else(|t| t);
            json!({"id": "resp_fake", "object": "response", "status": "completed", "model": model,
                "output": [{"type": "message", "role": "assistant",
                            "content": [{"type": "output_text", "text": text}]}],
                "usage": {"input_tokens": input_tokens, "output_tokens": output_tokens}})
        }
        (_, output) => {
            let text = output.map(|f| f.to_string()).unwrap_or_else(|t| t);
            json!({"id": "chatcmpl-fake", "object": "chat.completion", "model": model,
                "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                             "finish_reason": "stop"}],
                "usage": {"prompt_tokens": input_tokens, "completion_tokens": output_tokens,
                          "total_tokens": input_tokens + output_tokens}})
        }
    };
    (200, value)
}

/// A plausible answer for each required key of the schema. Descriptions carry markup a
/// careful caller must sanitise.
fn fields_for(schema: &Value) -> Value {
    let mut fields = serde_json::Map::new();
    for key in schema["required"].as_array().into_iter().flatten() {
        let key = key.as_str().unwrap_or_default();
        let value = match key {
            "description" => "<p onclick=\"steal()\">A sturdy product, <strong>made to last</strong>.</p><script>alert(1)</script>".to_string(),
            "short_description" => "<p>A sturdy product.</p>".to_string(),
            "meta_title" => "Sturdy product, made to last".to_string(),
            "meta_description" => "A sturdy product made to last, chosen by people who want it to work every day.".to_string(),
            "meta_keyword" => "sturdy, product, durable".to_string(),
            "alt_text" => "The product seen from the front".to_string(),
            other => format!("{other} by the fake model"),
        };
        fields.insert(key.to_string(), json!(value));
    }
    Value::Object(fields)
}
