//! The policy-checked HTTP client.

use std::time::Duration;

use reqwest::{IntoUrl, Method};

use crate::body::Response;
use crate::connect::{PeerCheckLayer, PolicyResolver};
use crate::policy::{Policy, Refusal};

/// Builds an [`HttpClient`] under a policy.
#[derive(Debug, Clone)]
pub struct ClientBuilder {
    policy: Policy,
    timeout: Option<Duration>,
    connect_timeout: Option<Duration>,
    user_agent: Option<String>,
}

impl ClientBuilder {
    pub(crate) fn new(policy: Policy) -> ClientBuilder {
        ClientBuilder {
            policy,
            timeout: None,
            connect_timeout: None,
            user_agent: None,
        }
    }

    /// Deadline for a whole exchange: connecting, sending, and reading the body.
    pub fn timeout(mut self, timeout: Duration) -> ClientBuilder {
        self.timeout = Some(timeout);
        self
    }

    pub fn connect_timeout(mut self, timeout: Duration) -> ClientBuilder {
        self.connect_timeout = Some(timeout);
        self
    }

    pub fn user_agent(mut self, user_agent: impl Into<String>) -> ClientBuilder {
        self.user_agent = Some(user_agent.into());
        self
    }

    pub fn build(self) -> Result<HttpClient, SendError> {
        let mut builder = reqwest::Client::builder()
            // A redirect would take the request somewhere nobody chose (and a policy check
            // made for the first URL would not be made again): a 3xx is an answer.
            .redirect(reqwest::redirect::Policy::none())
            // Through a proxy the policy would see the proxy's address, not the target's.
            .no_proxy()
            .dns_resolver(PolicyResolver {
                policy: self.policy.clone(),
            })
            .connector_layer(PeerCheckLayer {
                policy: self.policy.clone(),
            });
        if let Some(timeout) = self.timeout {
            builder = builder.timeout(timeout);
        }
        if let Some(timeout) = self.connect_timeout {
            builder = builder.connect_timeout(timeout);
        }
        if let Some(user_agent) = self.user_agent {
            builder = builder.user_agent(user_agent);
        }
        let inner = builder
            .build()
            .map_err(|error| SendError::Invalid(describe(&error)))?;
        Ok(HttpClient {
            inner,
            policy: self.policy,
        })
    }
}

/// An HTTP client whose every connection obeys its [`Policy`], which follows no redirect,
/// and whose answers are read only with a cap. Cheap to clone.
#[derive(Clone)]
pub struct HttpClient {
    inner: reqwest::Client,
    policy: Policy,
}

impl std::fmt::Debug for HttpClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpClient")
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

/// Why a request got no answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    /// The policy refused the address: nothing was sent.
    #[error(transparent)]
    Refused(Refusal),
    #[error("no answer within the time limit")]
    Timeout,
    /// The connection failed or broke; `connect` when it was never made (nothing was sent).
    #[error("{message}")]
    Transport { message: String, connect: bool },
    /// The request cannot be sent as built.
    #[error("invalid request: {0}")]
    Invalid(String),
}

impl SendError {
    /// Nothing reached the server.
    pub fn is_connect(&self) -> bool {
        match self {
            SendError::Refused(_) | SendError::Invalid(_) => true,
            SendError::Transport { connect, .. } => *connect,
            SendError::Timeout => false,
        }
    }

    pub fn refusal(&self) -> Option<&Refusal> {
        match self {
            SendError::Refused(refusal) => Some(refusal),
            _ => None,
        }
    }

    fn from_reqwest(error: reqwest::Error) -> SendError {
        let mut source = std::error::Error::source(&error);
        while let Some(cause) = source {
            if let Some(refusal) = cause.downcast_ref::<Refusal>() {
                return SendError::Refused(refusal.clone());
            }
            source = cause.source();
        }
        if error.is_timeout() {
            return SendError::Timeout;
        }
        SendError::Transport {
            connect: error.is_connect(),
            message: describe(&error),
        }
    }
}

impl HttpClient {
    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// A request to fill in and pass to [`HttpClient::send`].
    pub fn request(&self, method: Method, url: impl IntoUrl) -> reqwest::RequestBuilder {
        self.inner.request(method, url)
    }

    pub fn get(&self, url: impl IntoUrl) -> reqwest::RequestBuilder {
        self.request(Method::GET, url)
    }

    pub fn post(&self, url: impl IntoUrl) -> reqwest::RequestBuilder {
        self.request(Method::POST, url)
    }

    /// Sends a request built with [`HttpClient::request`] (or any builder: it is sent with
    /// this client all the same).
    pub async fn send(&self, request: reqwest::RequestBuilder) -> Result<Response, SendError> {
        let request = request
            .build()
            .map_err(|error| SendError::Invalid(describe(&error)))?;
        self.execute(request).await
    }

    /// Sends a request. A URL holding a refused address is refused here, before any
    /// connection; names are checked when resolved and every connection on its peer address.
    pub async fn execute(&self, request: reqwest::Request) -> Result<Response, SendError> {
        self.policy
            .check_url(request.url())
            .map_err(SendError::Refused)?;
        self.inner
            .execute(request)
            .await
            .map(Response::new)
            .map_err(SendError::from_reqwest)
    }
}

impl Policy {
    /// A client under this policy.
    pub fn client(&self) -> ClientBuilder {
        ClientBuilder::new(self.clone())
    }
}

/// The error and its causes, without the URL (which callers log where it belongs).
pub(crate) fn describe(error: &reqwest::Error) -> String {
    let mut text = error.to_string();
    if let Some(url) = error.url() {
        text = text.replace(&format!(" for url ({url})"), "");
    }
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
