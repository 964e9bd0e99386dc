//! What can go wrong talking to a provider, sorted by what the caller should do about it.

/// A provider call's failure.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum AiError {
    /// The account's spend limit or quota is exhausted: nothing more will succeed today, so
    /// the whole job stops (never retried).
    #[error("the provider's spend limit is reached: {0}")]
    SpendLimit(String),
    /// The provider refused this request (4xx other than 429): the item fails with its message.
    #[error("the provider refused the request ({status}): {message}")]
    Refused { status: u16, message: String },
    /// Still rate limited, or still failing with 5xx / timeouts, after every attempt.
    #[error("the provider is unavailable: {0}")]
    Unavailable(String),
    /// The model's answer was not the JSON asked for, even after one repair attempt.
    #[error("the model's answer is not valid: {message}")]
    InvalidOutput {
        message: String,
        /// Tokens the attempts used all the same (budgets count them).
        usage: crate::provider::Usage,
    },
    /// A batch could not be submitted, or ended without results.
    #[error("batch: {0}")]
    Batch(String),
    /// The provider is configured wrongly (missing model, key or base URL).
    #[error("provider configuration: {0}")]
    Config(String),
    /// The provider cannot do this (e.g. batches on `rules`).
    #[error("not supported by this provider: {0}")]
    Unsupported(&'static str),
}

impl AiError {
    /// Whether the whole job must stop rather than only this item.
    pub fn is_terminal(&self) -> bool {
        matches!(self, AiError::SpendLimit(_) | AiError::Config(_))
    }

    /// Tokens a failed request used anyway.
    pub fn usage(&self) -> crate::provider::Usage {
        match self {
            AiError::InvalidOutput { usage, .. } => *usage,
            _ => crate::provider::Usage::default(),
        }
    }
}
