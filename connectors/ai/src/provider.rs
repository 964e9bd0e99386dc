//! The [`Provider`] trait and how a configured provider is built.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use secrecy::SecretString;
use serde::{Deserialize, Serialize};

use crate::batch::{BatchHandle, BatchPoll};
use crate::error::AiError;
use crate::http::{Dialect, HttpProvider};
use crate::limiter::LimitConfig;
use crate::prompts::Prompts;
use crate::request::Request;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProviderKind {
    Openai,
    Anthropic,
    OpenaiCompatible,
    Rules,
}

impl ProviderKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ProviderKind::Openai => "openai",
            ProviderKind::Anthropic => "anthropic",
            ProviderKind::OpenaiCompatible => "openai_compatible",
            ProviderKind::Rules => "rules",
        }
    }
}

/// Which OpenAI API a provider of kind `openai` calls.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OpenAiApi {
    #[default]
    Chat,
    Responses,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    pub input_tokens: u64,
    pub output_tokens: u64,
}

impl Usage {
    pub fn total(self) -> u64 {
        self.input_tokens + self.output_tokens
    }
}

impl std::ops::Add for Usage {
    type Output = Usage;
    fn add(self, other: Usage) -> Usage {
        Usage {
            input_tokens: self.input_tokens + other.input_tokens,
            output_tokens: self.output_tokens + other.output_tokens,
        }
    }
}

/// A provider's answer to one request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Generation {
    /// By field (`meta_title`, `alt_text`…); plain text, or HTML for descriptions.
    pub fields: BTreeMap<String, String>,
    pub usage: Usage,
    pub model: String,
    /// The prompt templates used (`system.v1,meta_title.v1`), or the rules' version.
    pub prompt_version: String,
}

/// How often and how patiently a failing request is tried again.
#[derive(Debug, Clone, PartialEq)]
pub struct RetryPolicy {
    /// Attempts per request, the first included (429s, 5xx and timeouts are retried).
    pub max_attempts: u32,
    /// First backoff after a 5xx or a timeout; doubles each time, with jitter.
    pub base_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 5,
            base_delay: Duration::from_millis(500),
        }
    }
}

/// One configured provider.
#[derive(Debug, Clone)]
pub struct ProviderConfig {
    pub kind: ProviderKind,
    /// API base including the version, e.g. `https://api.openai.com/v1`.
    pub base_url: Option<String>,
    pub api_key: Option<SecretString>,
    pub model: Option<String>,
    pub limits: LimitConfig,
    pub timeout: Duration,
    pub retry: RetryPolicy,
    pub api: OpenAiApi,
    pub max_output_tokens: u32,
    /// Where requests may go (public addresses only unless ranges are allowed): a
    /// `base_url` on this machine or the local network needs its range allowed.
    pub egress: egress::Policy,
}

impl ProviderConfig {
    pub fn new(kind: ProviderKind) -> ProviderConfig {
        ProviderConfig {
            kind,
            base_url: None,
            api_key: None,
            model: None,
            limits: LimitConfig::default(),
            timeout: Duration::from_secs(60),
            retry: RetryPolicy::default(),
            api: OpenAiApi::default(),
            max_output_tokens: 1024,
            egress: egress::Policy::public_only(),
        }
    }
}

/// An AI provider. Everything it is given is a [`Request`] (allow-listed inputs only).
#[async_trait::async_trait]
pub trait Provider: Send + Sync + std::fmt::Debug {
    /// The configured name (`rules`, `openai`, `local-llama`…).
    fn name(&self) -> &str;
    fn kind(&self) -> ProviderKind;
    fn model(&self) -> &str;
    /// Whether requests leave this machine (false for `rules`).
    fn is_remote(&self) -> bool {
        self.kind() != ProviderKind::Rules
    }
    /// Generates the request's fields, retrying what can be retried and repairing an invalid
    /// JSON answer once.
    async fn generate(&self, request: &Request) -> Result<Generation, AiError>;
    /// Whether [`Provider::submit_batch`] works.
    fn supports_batch(&self) -> bool {
        false
    }
    /// Submits `(custom id, request)` pairs as one batch. Custom ids: `[A-Za-z0-9_-]{1,64}`.
    async fn submit_batch(&self, _items: &[(String, Request)]) -> Result<BatchHandle, AiError> {
        Err(AiError::Unsupported("batches"))
    }
    /// Where a batch is; when it has ended, each item's result by custom id.
    async fn poll_batch(&self, _handle: &BatchHandle) -> Result<BatchPoll, AiError> {
        Err(AiError::Unsupported("batches"))
    }
}

/// Builds the provider `name` from its configuration.
pub fn build(
    name: &str,
    config: ProviderConfig,
    prompts: Arc<Prompts>,
) -> Result<Arc<dyn Provider>, AiError> {
    let missing = |what: &str| AiError::Config(format!("provider {name:?} needs {what}"));
    let dialect = match (config.kind, config.api) {
        (ProviderKind::Rules, _) => return Ok(Arc::new(crate::rules::RulesProvider::new(name))),
        (ProviderKind::Openai, OpenAiApi::Chat) => Dialect::OpenAiChat,
        (ProviderKind::Openai, OpenAiApi::Responses) => Dialect::OpenAiResponses,
        (ProviderKind::Anthropic, _) => Dialect::Anthropic,
        (ProviderKind::OpenaiCompatible, _) => Dialect::Compatible,
    };
    let base_url = match (config.kind, &config.base_url) {
        (_, Some(url)) if !url.trim().is_empty() => url.trim().trim_end_matches('/').to_string(),
        (ProviderKind::Openai, _) => "https://api.openai.com/v1".to_string(),
        (ProviderKind::Anthropic, _) => "https://api.anthropic.com/v1".to_string(),
        _ => return Err(missing("a base_url")),
    };
    if !(base_url.starts_with("http://") || base_url.starts_with("https://")) {
        return Err(AiError::Config(format!(
            "provider {name:?}: base_url must be an http(s) URL"
        )));
    }
    let model = config
        .model
        .clone()
        .filter(|m| !m.trim().is_empty())
        .ok_or_else(|| missing("a model"))?;
    let needs_key = matches!(config.kind, ProviderKind::Openai | ProviderKind::Anthropic);
    if needs_key && config.api_key.is_none() {
        return Err(missing("an api_key"));
    }
    Ok(Arc::new(HttpProvider::new(
        name, dialect, base_url, model, config, prompts,
    )?))
}
