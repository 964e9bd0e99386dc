//! The integration handshake (REFERENCE §1.2–1.4): after Magento posts the
//! consumer key, secret and verifier to our callback, we trade them for a
//! request token and then an access token.
//!
//! Both steps are one-shot on Magento's side (a second `request` fails with
//! "not a verifier token", a reused request token with "already being
//! used"), so nothing here retries: a failure is reported with a typed
//! [`OAuthProblem`] and recovery is the merchant clicking *Reauthorize*.

use std::time::Duration;

use egress::{BodyLimit, HttpClient, Policy, SendError};
use secrecy::ExposeSecret;
use thiserror::Error;
use tracing::instrument;
use url::Url;

use super::credentials::{ConsumerCredentials, TokenPair};
use super::signature_method::SignatureMethod;
use super::signer::{ProtocolValues, Signer};

/// What Magento said in `oauth_problem=…`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OAuthProblem {
    /// More than `oauth/consumer/expiration_period` (300 s) passed since the
    /// callback POST.
    ConsumerKeyExpired,
    /// `request` was called twice for the same verifier.
    NotAVerifierToken,
    /// The request token was already exchanged.
    TokenAlreadyUsed,
    /// `access` was called with a token that is not a request token.
    NotARequestToken,
    /// Unknown or malformed consumer key.
    UnknownConsumer,
    /// Unknown or malformed token, or one of another consumer.
    UnknownToken,
    /// The verifier does not match the request token.
    VerifierMismatch,
    /// Usually a secret mismatch or the wrong scheme behind a proxy.
    InvalidSignature,
    NonceAlreadyUsed,
    TimestampRefused,
    SignatureMethodUnsupported,
    /// Anything else, verbatim.
    Other(String),
}

impl OAuthProblem {
    /// Maps Magento's messages (`Model/Oauth/Token/Provider.php`,
    /// `Framework/Oauth/Oauth.php`) to variants.
    pub fn parse(message: &str) -> Self {
        let lower = message.to_ascii_lowercase();
        let has = |needle: &str| lower.contains(needle);
        if has("consumer key has expired") {
            OAuthProblem::ConsumerKeyExpired
        } else if has("not a verifier token") {
            OAuthProblem::NotAVerifierToken
        } else if has("already being used") && has("token") {
            OAuthProblem::TokenAlreadyUsed
        } else if has("not a request token") {
            OAuthProblem::NotARequestToken
        } else if has("consumer having the specified key does not exist")
            || has("consumer key is not the correct length")
            || (has("consumer with the id") && has("does not exist"))
        {
            OAuthProblem::UnknownConsumer
        } else if has("specified token does not exist")
            || has("token length is invalid")
            || has("not associated with the specified consumer")
        {
            OAuthProblem::UnknownToken
        } else if has("verifier") {
            OAuthProblem::VerifierMismatch
        } else if has("signature is invalid") {
            OAuthProblem::InvalidSignature
        } else if has("nonce") {
            OAuthProblem::NonceAlreadyUsed
        } else if has("timestamp") {
            OAuthProblem::TimestampRefused
        } else if has("signature method") {
            OAuthProblem::SignatureMethodUnsupported
        } else {
            OAuthProblem::Other(message.to_owned())
        }
    }

    /// Only a new callback (the merchant clicking *Reauthorize*) recovers.
    pub fn needs_reauthorization(&self) -> bool {
        matches!(
            self,
            OAuthProblem::ConsumerKeyExpired
                | OAuthProblem::NotAVerifierToken
                | OAuthProblem::TokenAlreadyUsed
                | OAuthProblem::NotARequestToken
                | OAuthProblem::UnknownConsumer
                | OAuthProblem::UnknownToken
                | OAuthProblem::VerifierMismatch
        )
    }
}

impl std::fmt::Display for OAuthProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let text = match self {
            OAuthProblem::ConsumerKeyExpired => "consumer key has expired",
            OAuthProblem::NotAVerifierToken => "the verifier was already exchanged",
            OAuthProblem::TokenAlreadyUsed => "the request token was already used",
            OAuthProblem::NotARequestToken => "the token is not a request token",
            OAuthProblem::UnknownConsumer => "unknown consumer key",
            OAuthProblem::UnknownToken => "unknown token",
            OAuthProblem::VerifierMismatch => "the verifier does not match",
            OAuthProblem::InvalidSignature => "the signature is invalid",
            OAuthProblem::NonceAlreadyUsed => "the nonce was already used",
            OAuthProblem::TimestampRefused => "the timestamp was refused",
            OAuthProblem::SignatureMethodUnsupported => "the signature method is not supported",
            OAuthProblem::Other(message) => message,
        };
        f.write_str(text)
    }
}

#[derive(Debug, Error)]
pub enum TokenExchangeError {
    #[error("Magento refused the token exchange (HTTP {status}): {problem}")]
    Refused { status: u16, problem: OAuthProblem },
    /// The egress policy refused the store's address: nothing was sent.
    #[error("{0}")]
    Egress(egress::Refusal),
    #[error("invalid store base URL {0:?}")]
    InvalidBaseUrl(String),
    #[error("token exchange request failed: {0}")]
    Transport(String),
    #[error("unexpected token exchange response (HTTP {status}): {detail}")]
    UnexpectedResponse { status: u16, detail: String },
}

impl TokenExchangeError {
    pub fn problem(&self) -> Option<&OAuthProblem> {
        match self {
            TokenExchangeError::Refused { problem, .. } => Some(problem),
            _ => None,
        }
    }
}

/// The largest token answer read: `oauth_token=…&oauth_token_secret=…` is under 100 bytes.
pub const TOKEN_ANSWER_LIMIT: BodyLimit = BodyLimit::new("token answer", 16 * 1024);

/// Runs the token exchange with a chosen HTTP client and signing options.
#[derive(Debug, Clone)]
pub struct TokenExchange {
    http: HttpClient,
    method: SignatureMethod,
    signed_scheme: Option<String>,
}

impl TokenExchange {
    pub fn new(http: HttpClient, method: SignatureMethod) -> Self {
        TokenExchange {
            http,
            method,
            signed_scheme: None,
        }
    }

    /// A client under `policy` with a 30 s timeout: Magento answers these quickly.
    pub fn with_policy(
        policy: &Policy,
        method: SignatureMethod,
    ) -> Result<Self, TokenExchangeError> {
        let http = policy
            .client()
            .timeout(Duration::from_secs(30))
            .build()
            .map_err(|error| TokenExchangeError::Transport(error.to_string()))?;
        Ok(TokenExchange::new(http, method))
    }

    pub fn with_signed_scheme(mut self, scheme: Option<String>) -> Self {
        self.signed_scheme = scheme;
        self
    }

    /// `POST {base}oauth/token/request`, signed with the consumer secret only.
    #[instrument(skip_all, fields(base_url = %base_url))]
    pub async fn request_token(
        &self,
        base_url: &str,
        consumer: &ConsumerCredentials,
    ) -> Result<TokenPair, TokenExchangeError> {
        let url = endpoint(base_url, "oauth/token/request")?;
        let signer = Signer::new(consumer.clone(), None, self.method)
            .with_signed_scheme(self.signed_scheme.clone());
        self.exchange(&url, &signer, ProtocolValues::fresh()).await
    }

    /// `POST {base}oauth/token/access` with the request token and verifier.
    #[instrument(skip_all, fields(base_url = %base_url))]
    pub async fn access_token(
        &self,
        base_url: &str,
        consumer: &ConsumerCredentials,
        request_token: &TokenPair,
        verifier: &str,
    ) -> Result<TokenPair, TokenExchangeError> {
        let url = endpoint(base_url, "oauth/token/access")?;
        let signer = Signer::new(consumer.clone(), Some(request_token.clone()), self.method)
            .with_signed_scheme(self.signed_scheme.clone());
        let values = ProtocolValues {
            verifier: Some(verifier.to_owned()),
            ..ProtocolValues::fresh()
        };
        self.exchange(&url, &signer, values).await
    }

    async fn exchange(
        &self,
        url: &Url,
        signer: &Signer,
        values: ProtocolValues,
    ) -> Result<TokenPair, TokenExchangeError> {
        let header = signer.authorization_header_with("POST", url, &values);
        let request = self
            .http
            .post(url.clone())
            .header(reqwest::header::AUTHORIZATION, header)
            .header(reqwest::header::CONTENT_LENGTH, "0");
        let response = self.http.send(request).await.map_err(|error| match error {
            SendError::Refused(refusal) => TokenExchangeError::Egress(refusal),
            other => TokenExchangeError::Transport(other.to_string()),
        })?;
        let status = response.status().as_u16();
        let content_type = response.content_type().map(str::to_owned);
        let body = response
            .text(TOKEN_ANSWER_LIMIT)
            .await
            .map_err(|error| TokenExchangeError::Transport(error.to_string()))?;
        parse_exchange_response(status, content_type.as_deref(), &body)
    }
}

/// [`TokenExchange::request_token`] with a client under `policy`.
pub async fn request_token(
    policy: &Policy,
    base_url: &str,
    consumer: &ConsumerCredentials,
    method: SignatureMethod,
) -> Result<TokenPair, TokenExchangeError> {
    TokenExchange::with_policy(policy, method)?
        .request_token(base_url, consumer)
        .await
}

/// [`TokenExchange::access_token`] with a client under `policy`.
pub async fn access_token(
    policy: &Policy,
    base_url: &str,
    consumer: &ConsumerCredentials,
    request_token: &TokenPair,
    verifier: &str,
    method: SignatureMethod,
) -> Result<TokenPair, TokenExchangeError> {
    TokenExchange::with_policy(policy, method)?
        .access_token(base_url, consumer, request_token, verifier)
        .await
}

/// `store_base_url` arrives with a trailing slash and possibly `index.php/`;
/// the token routes are relative to it.
fn endpoint(base_url: &str, route: &str) -> Result<Url, TokenExchangeError> {
    let mut base = Url::parse(base_url)
        .map_err(|_| TokenExchangeError::InvalidBaseUrl(base_url.to_owned()))?;
    if !matches!(base.scheme(), "http" | "https") || base.host_str().is_none() {
        return Err(TokenExchangeError::InvalidBaseUrl(base_url.to_owned()));
    }
    if !base.path().ends_with('/') {
        let path = format!("{}/", base.path());
        base.set_path(&path);
    }
    base.set_query(None);
    base.set_fragment(None);
    base.join(route)
        .map_err(|_| TokenExchangeError::InvalidBaseUrl(base_url.to_owned()))
}

/// Bodies are `http_build_query` output: `oauth_token=…&oauth_token_secret=…`
/// or `oauth_problem=…` (with `+` for spaces).
fn parse_exchange_response(
    status: u16,
    content_type: Option<&str>,
    body: &str,
) -> Result<TokenPair, TokenExchangeError> {
    let mut token = None;
    let mut secret = None;
    let mut problem = None;
    for (name, value) in url::form_urlencoded::parse(body.trim().as_bytes()) {
        match name.as_ref() {
            "oauth_token" => token = Some(value.into_owned()),
            "oauth_token_secret" => secret = Some(value.into_owned()),
            "oauth_problem" => problem = Some(value.into_owned()),
            // Magento's 500 answer is `oauth_problem=internal_error&message=…`.
            "message" if problem.as_deref() == Some("internal_error") => {
                problem = Some(format!("internal_error: {value}"));
            }
            _ => {}
        }
    }
    if let Some(problem) = problem {
        // Magento's problems are short sentences; anything longer is not repeated whole.
        let problem: String = problem.chars().take(300).collect();
        return Err(TokenExchangeError::Refused {
            status,
            problem: OAuthProblem::parse(&problem),
        });
    }
    match (token, secret) {
        (Some(token), Some(secret)) if (200..300).contains(&status) && !token.is_empty() => {
            Ok(TokenPair::new(token, secret))
        }
        _ => Err(TokenExchangeError::UnexpectedResponse {
            status,
            detail: describe_unexpected_body(content_type, body),
        }),
    }
}

/// What the answer looked like, never what it said: it may hold half a token, or be
/// whatever the store's address answers.
fn describe_unexpected_body(content_type: Option<&str>, body: &str) -> String {
    if body.contains("oauth_token") {
        return "token response without both oauth_token and oauth_token_secret".to_owned();
    }
    format!(
        "not a token answer ({})",
        egress::summary(content_type, body.len(), false)
    )
}

impl TokenPair {
    /// The token value, for storing after the exchange.
    pub fn token(&self) -> &str {
        self.token.expose_secret()
    }

    /// The token secret, for storing (encrypted) after the exchange.
    pub fn token_secret(&self) -> &str {
        self.token_secret.expose_secret()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_success_bodies() {
        let pair = parse_exchange_response(200, None, "oauth_token=abc&oauth_token_secret=def")
            .expect("token pair");
        assert_eq!(pair.token(), "abc");
        assert_eq!(pair.token_secret(), "def");
    }

    #[test]
    fn parses_magento_problems() {
        let cases = [
            (
                "oauth_problem=Consumer+key+has+expired",
                OAuthProblem::ConsumerKeyExpired,
            ),
            (
                "oauth_problem=Token+is+already+being+used",
                OAuthProblem::TokenAlreadyUsed,
            ),
            (
                "oauth_problem=Cannot+create+request+token+because+consumer+token+is+not+a+verifier+token",
                OAuthProblem::NotAVerifierToken,
            ),
            (
                "oauth_problem=The+signature+is+invalid.+Verify+and+try+again.",
                OAuthProblem::InvalidSignature,
            ),
            (
                "oauth_problem=A+consumer+having+the+specified+key+does+not+exist",
                OAuthProblem::UnknownConsumer,
            ),
            (
                "oauth_problem=Token+verifier+and+verifier+token+do+not+match",
                OAuthProblem::VerifierMismatch,
            ),
        ];
        for (body, expected) in cases {
            match parse_exchange_response(401, None, body) {
                Err(TokenExchangeError::Refused {
                    status: 401,
                    problem,
                }) => assert_eq!(problem, expected),
                other => panic!("{body}: unexpected {other:?}"),
            }
        }
    }

    #[test]
    fn internal_errors_keep_their_message() {
        let error = parse_exchange_response(500, None, "oauth_problem=internal_error&message=boom")
            .expect_err("500 is an error");
        assert_eq!(
            error.problem(),
            Some(&OAuthProblem::Other("internal_error: boom".to_owned()))
        );
    }

    #[test]
    fn half_a_token_answer_is_not_echoed() {
        let error = parse_exchange_response(200, None, "oauth_token=abc").expect_err("incomplete");
        assert!(!error.to_string().contains("abc"));
    }

    #[test]
    fn other_answers_are_described_not_repeated() {
        let body = "<html>ami-id\ninstance-id\niam/security-credentials/admin</html>";
        let error = parse_exchange_response(200, Some("text/html; charset=UTF-8"), body)
            .expect_err("not a token answer");
        assert_eq!(
            error.to_string(),
            format!(
                "unexpected token exchange response (HTTP 200): not a token answer (text/html, {} bytes)",
                body.len()
            )
        );
    }

    #[test]
    fn endpoints_keep_index_php() {
        assert_eq!(
            endpoint("https://shop.example/index.php/", "oauth/token/request")
                .expect("valid base")
                .as_str(),
            "https://shop.example/index.php/oauth/token/request"
        );
        assert_eq!(
            endpoint("https://shop.example/magento", "oauth/token/access")
                .expect("valid base")
                .as_str(),
            "https://shop.example/magento/oauth/token/access"
        );
        assert!(endpoint("ftp://shop.example/", "x").is_err());
    }
}
