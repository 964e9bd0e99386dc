//! The domain's error: what went wrong, in the domain's words.
//!
//! Everything below `http/` and `web/` returns this; it knows nothing of status codes or JSON.
//! The edge wraps it in the API's answer (`http::error::ApiError::Domain`), which is the one
//! place each kind gets its status, its stable `code` and its `Retry-After`.

/// A domain failure a caller can act on, or `Internal` for one it cannot.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Input that breaks a rule; `field` names the input at fault when there is one.
    #[error("{message}")]
    Invalid {
        field: Option<String>,
        message: String,
    },
    /// Input that could not be read at all (not a form, not the expected encoding).
    #[error("{0}")]
    Malformed(String),
    /// The caller is not who they need to be: no credentials, or ones that no longer hold.
    #[error("{0}")]
    Unauthenticated(&'static str),
    /// The caller is known but may not do this.
    #[error("{0}")]
    Forbidden(&'static str),
    /// Missing, or another workspace's: existence is not revealed.
    #[error("{0} not found")]
    NotFound(&'static str),
    /// A change that would leave things exactly as they are.
    #[error("no change: {0}")]
    NoChange(&'static str),
    /// The request contradicts what is stored (a duplicate, a state that does not allow it).
    #[error("{0}")]
    Conflict(String),
    /// The account has two-factor login and the attempt carried no code.
    #[error(
        "this account uses two-factor login: send the current code from the authenticator app (or a recovery code) as `totp`"
    )]
    TwoFactorRequired,
    /// The workspace requires two-factor login and the caller has not enabled it.
    #[error("this workspace requires two-factor login: enable it with POST /api/v1/me/totp first")]
    TwoFactorSetupRequired,
    /// Too many attempts in a window; the caller may try again after `retry_after_secs`.
    #[error("too many attempts, retry in {retry_after_secs} s")]
    TooManyAttempts { retry_after_secs: u64 },
    /// A shared resource (the database's connections) is exhausted for now; retry shortly.
    #[error("service unavailable: {0}")]
    Unavailable(&'static str),
    /// A fault of ours: logged with its cause at the edge, never shown to the caller.
    #[error("internal error")]
    Internal(#[from] anyhow::Error),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        Error::Invalid {
            field: Some(field.into()),
            message: message.into(),
        }
    }
}

impl From<sqlx::Error> for Error {
    fn from(err: sqlx::Error) -> Self {
        match err {
            // Every connection busy for the whole acquire timeout: an overload to retry, not a
            // fault of the request.
            sqlx::Error::PoolTimedOut => {
                tracing::warn!("no database connection free within the acquire timeout");
                Error::Unavailable("the database is busy; retry shortly")
            }
            err => Error::Internal(anyhow::Error::new(err)),
        }
    }
}

/// Turns a unique-constraint violation into a conflict with `message`; anything else is
/// handled as any database error.
pub fn on_unique_violation(err: sqlx::Error, constraint: &str, message: &str) -> Error {
    if let sqlx::Error::Database(db) = &err
        && db.constraint() == Some(constraint)
    {
        return Error::Conflict(message.to_string());
    }
    err.into()
}
