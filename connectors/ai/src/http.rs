//! The HTTP providers' common part: sending through the limiter, retrying, classifying
//! errors, and the one repair retry for an answer that is not the JSON asked for.

use std::sync::Arc;
use std::time::Duration;

use reqwest::StatusCode;
use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;

use crate::batch::{BatchHandle, BatchPoll};
use crate::error::AiError;
use crate::limiter::{Limiter, retry_after};
use crate::output::{fields_from_value, parse_fields};
use crate::prompts::{Prompts, Rendered};
use crate::provider::{Generation, Provider, ProviderConfig, ProviderKind, RetryPolicy, Usage};
use crate::request::Request;
use crate::{anthropic, openai};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    OpenAiChat,
    OpenAiResponses,
    Anthropic,
    /// Chat Completions at any base URL (Ollama, vLLM, LM Studio): no `store`, `max_tokens`.
    Compatible,
}

/// What the model answered: text to parse, or JSON already parsed (a tool call).
#[derive(Debug, Clone, PartialEq)]
pub enum Answer {
    Text(String),
    Json(Value),
}

impl Answer {
    pub fn as_text(&self) -> String {
        match self {
            Answer::Text(t) => t.clone(),
            Answer::Json(v) => v.to_string(),
        }
    }
}

/// The previous, invalid answer and what was wrong with it.
#[derive(Debug, Clone)]
pub struct Repair {
    pub previous: String,
    pub problem: String,
}

impl Repair {
    pub fn instruction(&self) -> String {
        format!(
            "Your answer could not be used: {}. Answer again with only the JSON object, \
             with exactly the keys asked for and string values.",
            self.problem
        )
    }
}

pub struct HttpProvider {
    name: String,
    pub(crate) dialect: Dialect,
    pub(crate) base_url: String,
    pub(crate) model: String,
    api_key: Option<SecretString>,
    pub(crate) client: egress::HttpClient,
    pub(crate) limiter: Arc<Limiter>,
    pub(crate) prompts: Arc<Prompts>,
    retry: RetryPolicy,
    pub(crate) max_output_tokens: u32,
}

impl std::fmt::Debug for HttpProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpProvider")
            .field("name", &self.name)
            .field("dialect", &self.dialect)
            .field("base_url", &self.base_url)
            .field("model", &self.model)
            .field("api_key", &self.api_key.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

/// A provider's failure answer, classified.
enum Failure {
    /// Try again after the wait (429 with its retry-after, 5xx, timeouts).
    Retry(String, Option<Duration>),
    Final(AiError),
}

impl HttpProvider {
    pub fn new(
        name: &str,
        dialect: Dialect,
        base_url: String,
        model: String,
        config: ProviderConfig,
        prompts: Arc<Prompts>,
    ) -> Result<HttpProvider, AiError> {
        let client = config
            .egress
            .client()
            .timeout(config.timeout)
            .connect_timeout(config.timeout.min(Duration::from_secs(10)))
            .build()
            .map_err(|e| AiError::Config(format!("HTTP client: {e}")))?;
        Ok(HttpProvider {
            name: name.to_string(),
            dialect,
            base_url,
            model,
            api_key: config.api_key,
            client,
            limiter: Arc::new(Limiter::new(config.limits)),
            prompts,
            retry: config.retry,
            max_output_tokens: config.max_output_tokens,
        })
    }

    pub(crate) fn authorise(&self, request: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        let key = self.api_key.as_ref().map(|k| k.expose_secret().to_string());
        match (self.dialect, key) {
            (Dialect::Anthropic, key) => {
                let request = request.header("anthropic-version", anthropic::VERSION);
                match key {
                    Some(key) => request.header("x-api-key", key),
                    None => request,
                }
            }
            (_, Some(key)) => request.bearer_auth(key),
            (_, None) => request,
        }
    }

    /// Sends one request through the limiter, with retries; returns the JSON answer.
    /// `send` builds the HTTP request afresh for each attempt.
    pub(crate) async fn send(
        &self,
        estimate: u64,
        send: impl Fn() -> reqwest::RequestBuilder,
    ) -> Result<(Value, Usage), AiError> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let mut permit = Some(self.limiter.acquire(estimate).await);
            let result = self.client.send(self.authorise(send())).await;
            let failure = match result {
                Err(egress::SendError::Refused(refusal)) => {
                    return Err(AiError::Config(format!("base_url: {refusal}")));
                }
                Err(egress::SendError::Timeout) => Failure::Retry("timed out".into(), None),
                Err(e) => Failure::Retry(format!("could not reach the provider: {e}"), None),
                Ok(response) => {
                    self.limiter.observe(response.headers());
                    let status = response.status();
                    let headers = response.headers().clone();
                    if status.is_success() {
                        let read = response.bytes(ANSWER_LIMIT).await;
                        permit.take();
                        let body = read.map_err(|e| match e {
                            egress::ReadError::TooLarge { .. } => {
                                AiError::Unavailable(e.to_string())
                            }
                            other => AiError::Unavailable(format!(
                                "the provider's answer broke off: {other}"
                            )),
                        })?;
                        let value: Value = serde_json::from_slice(&body).map_err(|e| {
                            AiError::Unavailable(format!(
                                "the provider's answer is not JSON (line {}, column {})",
                                e.line(),
                                e.column()
                            ))
                        })?;
                        let usage = self.usage_of(&value);
                        self.limiter.succeeded();
                        self.limiter.charge_tokens(estimate, usage.total()).await;
                        return Ok((value, usage));
                    }
                    let answer = response.error_answer().await;
                    permit.take();
                    classify(status, &headers, &answer)
                }
            };
            // No slot is held through a backoff.
            drop(permit);
            match failure {
                Failure::Final(error) => return Err(error),
                Failure::Retry(message, wait) => {
                    if let Some(wait) = wait {
                        self.limiter.throttled(wait);
                    }
                    if attempt >= self.retry.max_attempts {
                        return Err(AiError::Unavailable(format!(
                            "{message} (after {attempt} attempts)"
                        )));
                    }
                    tracing::debug!(provider = %self.name, attempt, %message, "retrying");
                    if wait.is_none() {
                        tokio::time::sleep(backoff(self.retry.base_delay, attempt)).await;
                    }
                }
            }
        }
    }

    fn usage_of(&self, value: &Value) -> Usage {
        let u = &value["usage"];
        let n = |v: &Value| v.as_u64().unwrap_or(0);
        match self.dialect {
            Dialect::Anthropic | Dialect::OpenAiResponses => Usage {
                input_tokens: n(&u["input_tokens"]),
                output_tokens: n(&u["output_tokens"]),
            },
            Dialect::OpenAiChat | Dialect::Compatible => Usage {
                input_tokens: n(&u["prompt_tokens"]),
                output_tokens: n(&u["completion_tokens"]),
            },
        }
    }

    pub(crate) fn endpoint(&self) -> &'static str {
        match self.dialect {
            Dialect::OpenAiChat | Dialect::Compatible => "/chat/completions",
            Dialect::OpenAiResponses => "/responses",
            Dialect::Anthropic => "/messages",
        }
    }

    /// The request body for `request` in this provider's dialect.
    pub(crate) fn body(
        &self,
        request: &Request,
        rendered: &Rendered,
        repair: Option<&Repair>,
    ) -> Value {
        match self.dialect {
            Dialect::OpenAiChat => openai::chat_body(self, request, rendered, repair, true),
            Dialect::Compatible => openai::chat_body(self, request, rendered, repair, false),
            Dialect::OpenAiResponses => openai::responses_body(self, request, rendered, repair),
            Dialect::Anthropic => anthropic::messages_body(self, request, rendered, repair),
        }
    }

    /// The model's answer inside a provider response.
    pub(crate) fn answer(&self, value: &Value) -> Result<Answer, String> {
        match self.dialect {
            Dialect::OpenAiChat | Dialect::Compatible => openai::chat_answer(value),
            Dialect::OpenAiResponses => openai::responses_answer(value),
            Dialect::Anthropic => anthropic::messages_answer(value),
        }
    }

    async fn call(
        &self,
        request: &Request,
        rendered: &Rendered,
        repair: Option<&Repair>,
    ) -> Result<(Answer, Usage), AiError> {
        let body = self.body(request, rendered, repair);
        let estimate = request.estimate_input_tokens(rendered.system.len() + rendered.user.len())
            + u64::from(self.max_output_tokens);
        let url = format!("{}{}", self.base_url, self.endpoint());
        let (value, usage) = self
            .send(estimate, || self.client.post(&url).json(&body))
            .await?;
        let answer = self
            .answer(&value)
            .map_err(|problem| AiError::InvalidOutput {
                message: problem,
                usage,
            })?;
        Ok((answer, usage))
    }
}

/// The largest answer read from a provider: a generation is a few kilobytes.
pub(crate) const ANSWER_LIMIT: egress::BodyLimit =
    egress::BodyLimit::new("provider's answer", 4 * 1024 * 1024);

/// Sorts a failed HTTP answer into retry (with the provider's wait) or a final error.
fn classify(
    status: StatusCode,
    headers: &reqwest::header::HeaderMap,
    answer: &egress::ErrorAnswer,
) -> Failure {
    let text = String::from_utf8_lossy(answer.body());
    let body: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
    let message = error_message(&body, answer);
    if status == StatusCode::TOO_MANY_REQUESTS {
        if is_spend_limit(&body, &text) {
            return Failure::Final(AiError::SpendLimit(message));
        }
        let wait = retry_after(headers, chrono::Utc::now()).unwrap_or(Duration::from_secs(1));
        return Failure::Retry(format!("rate limited: {message}"), Some(wait));
    }
    if status.is_server_error() || status == StatusCode::REQUEST_TIMEOUT {
        return Failure::Retry(format!("{status}: {message}"), None);
    }
    Failure::Final(AiError::Refused {
        status: status.as_u16(),
        message,
    })
}

/// OpenAI's `insufficient_quota` and Anthropic's `enforced_spend_limit_reached`.
fn is_spend_limit(body: &Value, text: &str) -> bool {
    const MARKERS: &[&str] = &["insufficient_quota", "enforced_spend_limit_reached"];
    let error = &body["error"];
    [&error["type"], &error["code"], &body["type"]]
        .iter()
        .filter_map(|v| v.as_str())
        .any(|v| MARKERS.contains(&v))
        || MARKERS.iter().any(|m| text.contains(m))
}

/// The provider's own error message, or only the answer's shape: a body that is not the
/// provider's error JSON is not repeated.
fn error_message(body: &Value, answer: &egress::ErrorAnswer) -> String {
    match body["error"]["message"].as_str() {
        Some(message) => message.chars().take(500).collect(),
        None => format!("not a provider error message ({})", answer.summary()),
    }
}

/// Exponential backoff with ±25 % jitter, capped at 30 s.
fn backoff(base: Duration, attempt: u32) -> Duration {
    let exp = base.saturating_mul(1u32 << attempt.saturating_sub(1).min(10));
    let capped = exp.min(Duration::from_secs(30));
    capped.mul_f64(0.75 + rand::random::<f64>() * 0.5)
}

#[async_trait::async_trait]
impl Provider for HttpProvider {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> ProviderKind {
        match self.dialect {
            Dialect::OpenAiChat | Dialect::OpenAiResponses => ProviderKind::Openai,
            Dialect::Anthropic => ProviderKind::Anthropic,
            Dialect::Compatible => ProviderKind::OpenaiCompatible,
        }
    }

    fn model(&self) -> &str {
        &self.model
    }

    async fn generate(&self, request: &Request) -> Result<Generation, AiError> {
        if request.tasks().is_empty() {
            return Ok(Generation {
                model: self.model.clone(),
                ..Generation::default()
            });
        }
        let rendered = self.prompts.render(request);
        let (answer, usage) = self.call(request, &rendered, None).await?;
        let problem = match fields_of(request, &answer) {
            Ok(fields) => {
                return Ok(Generation {
                    fields,
                    usage,
                    model: self.model.clone(),
                    prompt_version: rendered.version,
                });
            }
            Err(problem) => problem,
        };
        tracing::debug!(provider = %self.name, %problem, "repairing an invalid answer");
        let repair = Repair {
            previous: answer.as_text(),
            problem,
        };
        let (answer, second) = self
            .call(request, &rendered, Some(&repair))
            .await
            .map_err(|e| match e {
                AiError::InvalidOutput { message, usage: u } => AiError::InvalidOutput {
                    message,
                    usage: usage + u,
                },
                other => other,
            })?;
        let usage = usage + second;
        let fields = fields_of(request, &answer)
            .map_err(|message| AiError::InvalidOutput { message, usage })?;
        Ok(Generation {
            fields,
            usage,
            model: self.model.clone(),
            prompt_version: rendered.version,
        })
    }

    fn supports_batch(&self) -> bool {
        matches!(
            self.dialect,
            Dialect::OpenAiChat | Dialect::OpenAiResponses | Dialect::Anthropic
        )
    }

    async fn submit_batch(&self, items: &[(String, Request)]) -> Result<BatchHandle, AiError> {
        crate::batch::submit(self, items).await
    }

    async fn poll_batch(&self, handle: &BatchHandle) -> Result<BatchPoll, AiError> {
        crate::batch::poll(self, handle).await
    }
}

pub(crate) fn fields_of(
    request: &Request,
    answer: &Answer,
) -> Result<std::collections::BTreeMap<String, String>, String> {
    match answer {
        Answer::Text(text) => parse_fields(request.tasks(), text),
        Answer::Json(value) => fields_from_value(request.tasks(), value),
    }
}
