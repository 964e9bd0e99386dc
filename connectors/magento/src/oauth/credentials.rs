//! Integration credentials. Secrets are `secrecy` strings: their `Debug`
//! prints `[REDACTED]`, they have no `Display`, and nothing in this crate
//! puts them into an error or a log line.

use std::fmt;

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

/// What Magento posts to the integration callback: the consumer's identity.
#[derive(Clone, Deserialize)]
pub struct ConsumerCredentials {
    pub consumer_key: String,
    pub consumer_secret: SecretString,
}

impl ConsumerCredentials {
    pub fn new(consumer_key: impl Into<String>, consumer_secret: impl Into<String>) -> Self {
        ConsumerCredentials {
            consumer_key: consumer_key.into(),
            consumer_secret: SecretString::from(consumer_secret.into()),
        }
    }

    pub(crate) fn secret(&self) -> &str {
        self.consumer_secret.expose_secret()
    }
}

impl fmt::Debug for ConsumerCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConsumerCredentials")
            .field("consumer_key", &self.consumer_key)
            .field("consumer_secret", &"[REDACTED]")
            .finish()
    }
}

/// Everything needed to sign API calls. The access token is treated as a
/// secret too: stores that allow integration tokens as Bearer tokens accept
/// it on its own.
#[derive(Clone, Deserialize)]
pub struct AccessCredentials {
    pub consumer_key: String,
    pub consumer_secret: SecretString,
    pub access_token: SecretString,
    pub access_token_secret: SecretString,
}

impl AccessCredentials {
    pub fn new(
        consumer_key: impl Into<String>,
        consumer_secret: impl Into<String>,
        access_token: impl Into<String>,
        access_token_secret: impl Into<String>,
    ) -> Self {
        AccessCredentials {
            consumer_key: consumer_key.into(),
            consumer_secret: SecretString::from(consumer_secret.into()),
            access_token: SecretString::from(access_token.into()),
            access_token_secret: SecretString::from(access_token_secret.into()),
        }
    }

    /// Joins consumer credentials with the token pair from the exchange.
    pub fn from_exchange(consumer: ConsumerCredentials, token: TokenPair) -> Self {
        AccessCredentials {
            consumer_key: consumer.consumer_key,
            consumer_secret: consumer.consumer_secret,
            access_token: token.token,
            access_token_secret: token.token_secret,
        }
    }

    pub fn consumer(&self) -> ConsumerCredentials {
        ConsumerCredentials {
            consumer_key: self.consumer_key.clone(),
            consumer_secret: self.consumer_secret.clone(),
        }
    }
}

impl fmt::Debug for AccessCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AccessCredentials")
            .field("consumer_key", &self.consumer_key)
            .field("consumer_secret", &"[REDACTED]")
            .field("access_token", &"[REDACTED]")
            .field("access_token_secret", &"[REDACTED]")
            .finish()
    }
}

/// A token and its secret: a request token during the handshake, an access
/// token after it.
#[derive(Clone)]
pub struct TokenPair {
    pub token: SecretString,
    pub token_secret: SecretString,
}

impl TokenPair {
    pub fn new(token: impl Into<String>, token_secret: impl Into<String>) -> Self {
        TokenPair {
            token: SecretString::from(token.into()),
            token_secret: SecretString::from(token_secret.into()),
        }
    }
}

impl fmt::Debug for TokenPair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TokenPair([REDACTED])")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_prints_secrets() {
        let access = AccessCredentials::new("ck-visible", "cs-hidden", "at-hidden", "ats-hidden");
        let consumer = access.consumer();
        let pair = TokenPair::new("t-hidden", "ts-hidden");
        let printed = format!("{access:?} {consumer:?} {pair:?} {:#?}", access);
        assert!(printed.contains("ck-visible"));
        for secret in [
            "cs-hidden",
            "at-hidden",
            "ats-hidden",
            "t-hidden",
            "ts-hidden",
        ] {
            assert!(!printed.contains(secret), "{secret} leaked: {printed}");
        }
    }

    #[test]
    fn deserialises_from_the_stores_api_shape() {
        let access: AccessCredentials = serde_json::from_str(
            r#"{"consumer_key":"k","consumer_secret":"s","access_token":"t","access_token_secret":"u"}"#,
        )
        .expect("valid credentials JSON");
        assert_eq!(access.consumer_key, "k");
        assert_eq!(access.access_token_secret.expose_secret(), "u");
    }
}
