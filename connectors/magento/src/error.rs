//! Errors from Magento calls, with Magento's messages made readable.
//!
//! Magento sends message *templates* (`"The consumer isn't authorized to
//! access %resources."`) plus `parameters`; we fill them in the way its
//! `Phrase` placeholder renderer does (REFERENCE §6). Nothing in here ever
//! holds request headers, so credentials cannot end up in an error.

use std::fmt;
use std::time::Duration;

use serde_json::Value;
use thiserror::Error;

/// A Magento error message with placeholders substituted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MagentoMessage {
    /// The rendered message.
    pub text: String,
    /// The unsubstituted template, when Magento sent one.
    pub template: Option<String>,
    /// Magento's optional non-zero exception `code`.
    pub code: Option<i64>,
    /// Rendered entries of `errors` (aggregated input errors).
    pub errors: Vec<String>,
}

impl MagentoMessage {
    pub fn plain(text: impl Into<String>) -> Self {
        MagentoMessage {
            text: text.into(),
            ..MagentoMessage::default()
        }
    }

    /// What a failed answer says: Magento's REST JSON message, a PHP fatal's messages, or —
    /// for anything else (a proxy's HTML page, an unknown body) — only its shape (content
    /// type and size), so that no remote body is ever repeated to whoever reads the error.
    pub fn from_answer(answer: &egress::ErrorAnswer) -> Self {
        Self::from_body(answer.body()).unwrap_or_else(|| {
            MagentoMessage::plain(format!("not a Magento message ({})", answer.summary()))
        })
    }

    /// Magento's message in an error body, if the body holds one.
    pub fn from_body(body: &[u8]) -> Option<Self> {
        match serde_json::from_slice::<Value>(body) {
            Ok(Value::Object(map)) => {
                if let Some(Value::String(template)) = map.get("message") {
                    let errors = match map.get("errors") {
                        Some(Value::Array(items)) => items
                            .iter()
                            .filter_map(render_error_entry)
                            .map(|error| bounded(&error))
                            .collect(),
                        _ => Vec::new(),
                    };
                    return Some(MagentoMessage {
                        text: bounded(&render_template(template, map.get("parameters"))),
                        template: Some(bounded(template)),
                        code: map
                            .get("code")
                            .and_then(Value::as_i64)
                            .filter(|code| *code != 0),
                        errors,
                    });
                }
                // PHP fatals: {"messages":{"error":[{"code":500,"message":"…"}]}}
                if let Some(Value::Array(entries)) =
                    map.get("messages").and_then(|m| m.get("error"))
                {
                    let texts: Vec<String> = entries
                        .iter()
                        .filter_map(|entry| {
                            entry
                                .get("message")
                                .and_then(Value::as_str)
                                .map(str::to_owned)
                        })
                        .collect();
                    if !texts.is_empty() {
                        return Some(MagentoMessage::plain(bounded(&texts.join("; "))));
                    }
                }
                None
            }
            _ => None,
        }
    }

    /// Whether any part of the message contains `needle`.
    pub fn mentions(&self, needle: &str) -> bool {
        self.text.contains(needle) || self.errors.iter().any(|error| error.contains(needle))
    }
}

impl fmt::Display for MagentoMessage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)?;
        for error in &self.errors {
            write!(f, "; {error}")?;
        }
        Ok(())
    }
}

fn render_error_entry(entry: &Value) -> Option<String> {
    let template = entry.get("message")?.as_str()?;
    Some(render_template(template, entry.get("parameters")))
}

/// Messages are kept to this many characters: a store writes them, and they end up in job
/// logs and store status.
const MAX_MESSAGE_CHARS: usize = 500;

fn bounded(text: &str) -> String {
    let mut chars = text.chars();
    let mut short: String = chars.by_ref().take(MAX_MESSAGE_CHARS).collect();
    if chars.next().is_some() {
        short.push('…');
    }
    short
}

/// Magento's `Phrase\Renderer\Placeholder`: list parameters become `%1`,
/// `%2`… (1-based), named ones `%name`; replacement is PHP `strtr` (longest
/// placeholder first, replaced text never rescanned).
pub(crate) fn render_template(template: &str, parameters: Option<&Value>) -> String {
    let placeholders: Vec<(String, String)> = match parameters {
        Some(Value::Array(values)) => values
            .iter()
            .enumerate()
            .map(|(index, value)| (format!("%{}", index + 1), parameter_text(value)))
            .collect(),
        Some(Value::Object(map)) => map
            .iter()
            .map(|(key, value)| {
                // PHP turns numeric-string keys into integers, which become
                // 1-based placeholders.
                let placeholder = match key.parse::<u64>() {
                    Ok(index) if index.to_string() == *key => format!("%{}", index + 1),
                    _ => format!("%{key}"),
                };
                (placeholder, parameter_text(value))
            })
            .collect(),
        _ => return template.to_owned(),
    };
    strtr(template, &placeholders)
}

fn parameter_text(value: &Value) -> String {
    match value {
        Value::String(text) => text.clone(),
        Value::Number(number) => number.to_string(),
        Value::Bool(true) => "1".to_owned(),
        Value::Bool(false) | Value::Null => String::new(),
        other => other.to_string(),
    }
}

fn strtr(text: &str, pairs: &[(String, String)]) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(position) = rest.find('%') {
        out.push_str(&rest[..position]);
        let tail = &rest[position..];
        let longest = pairs
            .iter()
            .filter(|(placeholder, _)| tail.starts_with(placeholder.as_str()))
            .max_by_key(|(placeholder, _)| placeholder.len());
        match longest {
            Some((placeholder, replacement)) => {
                out.push_str(replacement);
                rest = &tail[placeholder.len()..];
            }
            None => {
                out.push('%');
                rest = &tail[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// Why a Magento call failed.
#[derive(Debug, Error)]
pub enum MagentoError {
    /// 401: bad signature, revoked or reauthorised integration, or a missing API permission
    /// ([`MagentoError::missing_permission`] tells the last apart). Never retried.
    #[error("Magento refused the call (HTTP 401): {message}")]
    Unauthorized { message: MagentoMessage },
    /// 404: unknown SKU, entry, route…
    #[error("not found (HTTP 404): {message}")]
    NotFound { message: MagentoMessage },
    /// Other 4xx: invalid input, URL key conflicts, unsupported values…
    #[error("Magento rejected the request (HTTP {status}): {message}")]
    Rejected {
        status: u16,
        message: MagentoMessage,
    },
    /// 429 that outlasted the retry policy.
    #[error("Magento is rate limiting (HTTP 429){}: {message}", retry_after_text(*.retry_after))]
    RateLimited {
        retry_after: Option<Duration>,
        message: MagentoMessage,
    },
    /// 5xx that outlasted the retry policy.
    #[error("Magento server error (HTTP {status}): {message}")]
    Server {
        status: u16,
        message: MagentoMessage,
    },
    #[error("no answer from Magento within {0:?}")]
    Timeout(Duration),
    #[error("could not reach Magento: {0}")]
    Connection(String),
    /// The egress policy refused the store's address: nothing was sent.
    #[error("{0}")]
    Refused(egress::Refusal),
    /// An answer larger than the client reads (a store streaming without end).
    #[error("the {what} is larger than {max_bytes} bytes; reading stopped there")]
    TooLarge {
        what: &'static str,
        max_bytes: usize,
    },
    /// A 2xx body that is not what the endpoint returns.
    #[error("unexpected response from Magento: {0}")]
    InvalidResponse(String),
    /// The call was not sent: the input cannot form a valid request.
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    #[error("invalid client configuration: {0}")]
    InvalidConfig(String),
}

fn retry_after_text(retry_after: Option<Duration>) -> String {
    retry_after
        .map(|delay| format!(", retry after {}s", delay.as_secs()))
        .unwrap_or_default()
}

/// The template of Magento's ACL refusal, raised by
/// `app/code/Magento/Webapi/Controller/Rest/RequestValidator.php::checkPermissions` once the
/// OAuth credentials were accepted, with the route's resources (from the module's
/// `etc/webapi.xml`) as `%resources`; `lib/internal/Magento/Framework/Webapi/ErrorProcessor.php`
/// answers it as a 401 like a rejected token. Rejected credentials carry their own messages
/// (`app/code/Magento/Integration/Model/Oauth/Token/Provider.php`: "Specified token does not
/// exist", "A consumer having the specified key does not exist"…).
pub const ACL_REFUSAL: &str = "The consumer isn't authorized to access %resources.";

/// The template of Magento's refusal of a page larger than the store allows.
pub const MAX_PAGE_SIZE: &str = "Maximum SearchCriteria pageSize is %max";

/// Magento's message for a signature it computed differently
/// (`lib/internal/Magento/Framework/Oauth/Oauth.php::_validateSignature`).
pub const INVALID_SIGNATURE: &str = "The signature is invalid. Verify and try again.";

impl MagentoError {
    /// The store's credentials no longer work: mark it `needs_reauth`. A missing API
    /// permission is not that: the integration works, it lacks one grant. A signature the store calls invalid after both base-string rules were tried fails that
    /// call alone: the token was found, so the store is still connected.
    pub fn is_needs_reauth(&self) -> bool {
        matches!(self, MagentoError::Unauthorized { .. })
            && self.missing_permission().is_none()
            && !self.is_invalid_signature()
    }

    /// The ACL resources (comma-separated, as Magento lists them) a 401 says the integration
    /// is not granted; `None` for any other error.
    pub fn missing_permission(&self) -> Option<&str> {
        let MagentoError::Unauthorized { message } = self else {
            return None;
        };
        if message.template.as_deref() != Some(ACL_REFUSAL) {
            return None;
        }
        message
            .text
            .strip_prefix("The consumer isn't authorized to access ")
            .and_then(|rest| rest.strip_suffix('.'))
            .map(str::trim)
            .filter(|resources| !resources.is_empty())
    }

    /// The largest `searchCriteria[pageSize]` the store accepts, when it refused a larger one:
    /// 400 "Maximum SearchCriteria pageSize is %max" from
    /// `lib/internal/Magento/Framework/Webapi/Validator/SearchCriteriaValidator.php`, whose
    /// maximum is the store's `webapi/validation/maximum_page_size` once input limiting is on.
    pub fn max_page_size(&self) -> Option<u32> {
        let MagentoError::Rejected {
            status: 400,
            message,
        } = self
        else {
            return None;
        };
        if message.template.as_deref() != Some(MAX_PAGE_SIZE) {
            return None;
        }
        message
            .text
            .strip_prefix("Maximum SearchCriteria pageSize is ")?
            .trim()
            .trim_end_matches('.')
            .parse::<u32>()
            .ok()
            .filter(|max| *max > 0)
    }

    /// Magento computed another signature for the call: with a store on the other release's
    /// path normalisation, the credentials may still be right.
    pub fn is_invalid_signature(&self) -> bool {
        matches!(self, MagentoError::Unauthorized { message } if message.text == INVALID_SIGNATURE)
    }

    pub fn is_not_found(&self) -> bool {
        matches!(self, MagentoError::NotFound { .. })
    }

    /// The HTTP status Magento answered with, if it answered.
    pub fn status(&self) -> Option<u16> {
        match self {
            MagentoError::Unauthorized { .. } => Some(401),
            MagentoError::NotFound { .. } => Some(404),
            MagentoError::RateLimited { .. } => Some(429),
            MagentoError::Rejected { status, .. } | MagentoError::Server { status, .. } => {
                Some(*status)
            }
            _ => None,
        }
    }

    /// Magento's message, when it sent one.
    pub fn magento_message(&self) -> Option<&MagentoMessage> {
        match self {
            MagentoError::Unauthorized { message }
            | MagentoError::NotFound { message }
            | MagentoError::Rejected { message, .. }
            | MagentoError::RateLimited { message, .. }
            | MagentoError::Server { message, .. } => Some(message),
            _ => None,
        }
    }

    /// Maps a non-2xx answer.
    pub(crate) fn from_status(
        status: u16,
        message: MagentoMessage,
        retry_after: Option<Duration>,
    ) -> Self {
        match status {
            401 => MagentoError::Unauthorized { message },
            404 => MagentoError::NotFound { message },
            429 => MagentoError::RateLimited {
                retry_after,
                message,
            },
            500..=599 => MagentoError::Server { status, message },
            _ => MagentoError::Rejected { status, message },
        }
    }

    /// Magento's `TemporaryCouldNotSaveException` (deadlock, lock wait,
    /// lost DB connection) arrives as a 400 but means "try again"
    /// (REFERENCE §2.4): the transaction was rolled back.
    pub fn is_temporary_database_error(&self) -> bool {
        match self {
            MagentoError::Rejected {
                status: 400,
                message,
            } => {
                message.mentions("Database deadlock found")
                    || message.mentions("Database lock wait timeout exceeded")
                    || message.mentions("Database connection error")
            }
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn named_parameters_are_filled_in() {
        let body = br#"{"message":"The consumer isn't authorized to access %resources.","parameters":{"resources":"Magento_Catalog::products"}}"#;
        let message = MagentoMessage::from_body(body).expect("a Magento message");
        assert_eq!(
            message.text,
            "The consumer isn't authorized to access Magento_Catalog::products."
        );
        assert_eq!(
            message.template.as_deref(),
            Some("The consumer isn't authorized to access %resources.")
        );
    }

    #[test]
    fn positional_parameters_are_one_based_and_longest_first() {
        let params = json!(["a", "b", "c", "d", "e", "f", "g", "h", "i", "j", "k"]);
        assert_eq!(render_template("%1-%10-%11-%2%", Some(&params)), "a-j-k-b%");
        assert_eq!(
            render_template(
                "\"%fieldName\" is required.",
                Some(&json!({"fieldName": "searchCriteria"}))
            ),
            "\"searchCriteria\" is required."
        );
        // strtr does not rescan replaced text.
        assert_eq!(render_template("%1", Some(&json!(["%2", "x"]))), "%2");
        assert_eq!(
            render_template("%names", Some(&json!({"name": "sku"}))),
            "skus"
        );
    }

    #[test]
    fn aggregated_errors_and_php_fatals() {
        let body = br#"{"message":"One or more input exceptions have occurred.","errors":[{"message":"\"%fieldName\" is required.","parameters":{"fieldName":"sku"}}]}"#;
        let message = MagentoMessage::from_body(body).expect("a Magento message");
        assert_eq!(message.errors, vec!["\"sku\" is required.".to_owned()]);
        assert_eq!(
            message.to_string(),
            "One or more input exceptions have occurred.; \"sku\" is required."
        );
        let fatal =
            br#"{"messages":{"error":[{"code":500,"message":"Allowed memory size exhausted"}]}}"#;
        assert_eq!(
            MagentoMessage::from_body(fatal)
                .expect("PHP's messages")
                .text,
            "Allowed memory size exhausted"
        );
    }

    fn answer(status: u16, content_type: Option<&str>, body: &[u8]) -> egress::ErrorAnswer {
        egress::ErrorAnswer::new(
            reqwest::StatusCode::from_u16(status).expect("a status"),
            content_type.map(str::to_owned),
            bytes::Bytes::copy_from_slice(body),
        )
    }

    fn from_status(status: u16, body: &[u8]) -> MagentoError {
        let message = MagentoMessage::from_answer(&answer(status, None, body));
        MagentoError::from_status(status, message, None)
    }

    #[test]
    fn other_bodies_are_described_never_repeated() {
        let body = format!("<html>\n<body>{}</body></html>", "internal ".repeat(100));
        assert_eq!(MagentoMessage::from_body(body.as_bytes()), None);
        let message = MagentoMessage::from_answer(&answer(
            502,
            Some("text/html; charset=UTF-8"),
            body.as_bytes(),
        ));
        assert_eq!(
            message.text,
            format!("not a Magento message (text/html, {} bytes)", body.len())
        );
        assert_eq!(
            MagentoMessage::from_answer(&answer(500, None, b"")).text,
            "not a Magento message (no content type, empty)"
        );
        // A JSON string or a JSON object without Magento's fields is not a message either.
        let message = MagentoMessage::from_answer(&answer(500, None, br#""secret data""#));
        assert!(!message.text.contains("secret"), "{}", message.text);
        let message = MagentoMessage::from_answer(&answer(500, None, br#"{"token":"secret"}"#));
        assert!(!message.text.contains("secret"), "{}", message.text);
    }

    #[test]
    fn long_messages_are_cut() {
        let body = serde_json::to_vec(&json!({"message": "m".repeat(5000)})).unwrap();
        let message = MagentoMessage::from_body(&body).expect("a message");
        assert_eq!(message.text.chars().count(), MAX_MESSAGE_CHARS + 1);
    }

    #[test]
    fn an_acl_refusal_names_the_resource_and_is_no_reauthorisation() {
        let refusal = from_status(
            401,
            br#"{"message":"The consumer isn't authorized to access %resources.","parameters":{"resources":"Magento_AsynchronousOperations::system_magento_logging_bulk_operations"}}"#,
        );
        assert_eq!(
            refusal.missing_permission(),
            Some("Magento_AsynchronousOperations::system_magento_logging_bulk_operations")
        );
        assert!(!refusal.is_needs_reauth());
        let dead = from_status(401, br#"{"message":"Specified token does not exist"}"#);
        assert_eq!(dead.missing_permission(), None);
        assert!(dead.is_needs_reauth());
        // The same words as plain text (a proxy, a module) are not Magento's refusal.
        let plain = from_status(
            401,
            br#"{"message":"The consumer isn't authorized to access Magento_Catalog::products."}"#,
        );
        assert_eq!(plain.missing_permission(), None);
        let signature = from_status(
            401,
            br#"{"message":"The signature is invalid. Verify and try again."}"#,
        );
        assert!(signature.is_invalid_signature() && !signature.is_needs_reauth());
    }

    #[test]
    fn a_page_size_refusal_carries_the_stores_maximum() {
        let refusal = from_status(
            400,
            br#"{"message":"Maximum SearchCriteria pageSize is %max","parameters":{"max":100}}"#,
        );
        assert_eq!(refusal.max_page_size(), Some(100));
        for body in [
            br#"{"message":"Maximum SearchCriteria pageSize is %max","parameters":{"max":0}}"#.as_slice(),
            br#"{"message":"Maximum SearchCriteria pageSize is %max"}"#,
            br#"{"message":"Maximum SearchCriteria pageSize is 100"}"#,
            br#"{"message":"Maximum SearchCriteria pageSize is %max","parameters":{"max":"99999999999999"}}"#,
        ] {
            assert_eq!(from_status(400, body).max_page_size(), None);
        }
    }

    #[test]
    fn statuses_map_to_kinds() {
        assert!(from_status(401, b"{}").is_needs_reauth());
        assert!(from_status(404, b"{}").is_not_found());
        assert!(matches!(
            from_status(503, b""),
            MagentoError::Server { status: 503, .. }
        ));
        let deadlock = from_status(
            400,
            br#"{"message":"Database deadlock found when trying to get lock"}"#,
        );
        assert!(deadlock.is_temporary_database_error());
        assert!(
            !from_status(
                400,
                br#"{"message":"URL key for specified store already exists."}"#,
            )
            .is_temporary_database_error()
        );
    }
}
