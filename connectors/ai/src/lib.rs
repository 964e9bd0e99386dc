//! AI providers for catalogd behind one [`Provider`] trait.
//!
//! - [`openai`]: OpenAI's Chat Completions and Responses APIs (`store: false`), and any
//!   OpenAI-compatible endpoint (Ollama, vLLM, LM Studio) at its own base URL.
//! - [`anthropic`]: Anthropic's Messages API.
//! - [`rules`]: offline, deterministic templates; the zero-config default.
//!
//! A provider only ever sees a [`Request`], which a [`RequestBuilder`] fills from an explicit
//! allow-list per [`Task`]: there is no way to hand it a price, a stock level or a note.
//! Every HTTP provider sends through a [`Limiter`] (requests and tokens per minute, maximum
//! concurrency, and what the provider reports in its rate-limit headers) and retries 429s,
//! 5xx and timeouts; scheduled runs can use the providers' batch APIs ([`batch`]).

pub mod anthropic;
pub mod batch;
pub mod error;
#[cfg(feature = "fake")]
pub mod fake;
mod http;
pub mod limiter;
pub mod openai;
mod output;
pub mod prompts;
pub mod provider;
pub mod request;
pub mod rules;
pub mod text;

pub use batch::{BatchHandle, BatchPoll};
pub use error::AiError;
pub use limiter::{LimitConfig, Limiter, parse_go_duration};
pub use prompts::Prompts;
pub use provider::{
    Generation, OpenAiApi, Provider, ProviderConfig, ProviderKind, RetryPolicy, Usage, build,
};
pub use request::{Image, Input, Request, RequestBuilder, Task};
