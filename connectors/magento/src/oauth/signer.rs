//! Builds `Authorization: OAuth …` headers for requests Magento will verify.

use std::time::{SystemTime, UNIX_EPOCH};

use rand::Rng as _;
use rand::distr::Alphanumeric;
use secrecy::ExposeSecret;
use url::Url;

use super::base_string::{SignatureForm, magento_base_string_parts};
use super::credentials::{AccessCredentials, ConsumerCredentials, TokenPair};
use super::percent::rawurlencode;
use super::signature_method::SignatureMethod;

/// Magento stores nonces in a 32-character column.
const NONCE_LEN: usize = 32;

/// Signs requests for one consumer and, after the handshake, one token.
#[derive(Clone, Debug)]
pub struct Signer {
    consumer: ConsumerCredentials,
    token: Option<TokenPair>,
    method: SignatureMethod,
    signed_scheme: Option<String>,
    form: SignatureForm,
}

/// The per-request protocol values; fixed ones make signatures reproducible.
#[derive(Clone, Debug)]
pub struct ProtocolValues {
    pub nonce: String,
    pub timestamp: u64,
    pub verifier: Option<String>,
}

impl ProtocolValues {
    /// A random nonce and the current time.
    pub fn fresh() -> Self {
        let nonce = rand::rng()
            .sample_iter(Alphanumeric)
            .take(NONCE_LEN)
            .map(char::from)
            .collect();
        // A clock before 1970 is a broken host; Magento only needs > 0.
        let timestamp = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(1, |elapsed| elapsed.as_secs().max(1));
        ProtocolValues {
            nonce,
            timestamp,
            verifier: None,
        }
    }
}

impl Signer {
    pub fn new(
        consumer: ConsumerCredentials,
        token: Option<TokenPair>,
        method: SignatureMethod,
    ) -> Self {
        Signer {
            consumer,
            token,
            method,
            signed_scheme: None,
            form: SignatureForm::default(),
        }
    }

    /// A signer for API calls with the integration's access token.
    pub fn for_access(credentials: &AccessCredentials, method: SignatureMethod) -> Self {
        Signer::new(
            credentials.consumer(),
            Some(TokenPair {
                token: credentials.access_token.clone(),
                token_secret: credentials.access_token_secret.clone(),
            }),
            method,
        )
    }

    /// Sign with this scheme instead of the URL's (TLS-terminating proxies
    /// that do not tell Magento the request was secure make it sign `http`).
    pub fn with_signed_scheme(mut self, scheme: Option<String>) -> Self {
        self.signed_scheme = scheme;
        self
    }

    /// Sign with `form`'s base-string rules (the store's Magento release).
    pub fn with_form(mut self, form: SignatureForm) -> Self {
        self.form = form;
        self
    }

    pub fn form(&self) -> SignatureForm {
        self.form
    }

    pub fn signature_method(&self) -> SignatureMethod {
        self.method
    }

    /// The header value for `http_method` on `url` (exactly as it will be
    /// sent, query included), with a fresh nonce and timestamp.
    pub fn authorization_header(&self, http_method: &str, url: &Url) -> String {
        self.authorization_header_with(http_method, url, &ProtocolValues::fresh())
    }

    /// The header value with caller-chosen protocol values.
    pub fn authorization_header_with(
        &self,
        http_method: &str,
        url: &Url,
        values: &ProtocolValues,
    ) -> String {
        self.authorization_header_in(self.form, http_method, url, values)
    }

    /// The header value signed with `form`'s rules rather than the signer's own.
    pub fn authorization_header_in(
        &self,
        form: SignatureForm,
        http_method: &str,
        url: &Url,
        values: &ProtocolValues,
    ) -> String {
        let params = self.protocol_params(values);
        let borrowed: Vec<(&str, &str)> = params
            .iter()
            .map(|(name, value)| (*name, value.as_str()))
            .collect();
        let parts = magento_base_string_parts(
            http_method,
            url,
            self.signed_scheme.as_deref(),
            &borrowed,
            form,
        );
        let signature = self.method.sign(
            self.consumer.secret(),
            self.token.as_ref().map(|t| t.token_secret.expose_secret()),
            &parts,
        );

        let mut header = String::from("OAuth ");
        let mut all: Vec<(&str, &str)> = borrowed;
        all.push(("oauth_signature", signature.as_str()));
        all.sort_by(|a, b| a.0.cmp(b.0));
        for (index, (name, value)) in all.iter().enumerate() {
            if index > 0 {
                header.push_str(", ");
            }
            header.push_str(name);
            header.push_str("=\"");
            header.push_str(&rawurlencode(value));
            header.push('"');
        }
        header
    }

    /// The base string Magento will compute for this request: for debugging
    /// signature mismatches (it contains no secrets).
    pub fn base_string(&self, http_method: &str, url: &Url, values: &ProtocolValues) -> String {
        let params = self.protocol_params(values);
        let borrowed: Vec<(&str, &str)> = params
            .iter()
            .map(|(name, value)| (*name, value.as_str()))
            .collect();
        magento_base_string_parts(
            http_method,
            url,
            self.signed_scheme.as_deref(),
            &borrowed,
            self.form,
        )
        .to_base_string()
    }

    fn protocol_params(&self, values: &ProtocolValues) -> Vec<(&'static str, String)> {
        let mut params = vec![
            ("oauth_consumer_key", self.consumer.consumer_key.clone()),
            ("oauth_nonce", values.nonce.clone()),
            (
                "oauth_signature_method",
                self.method.oauth_name().to_owned(),
            ),
            ("oauth_timestamp", values.timestamp.to_string()),
            ("oauth_version", "1.0".to_owned()),
        ];
        if let Some(token) = &self.token {
            params.push(("oauth_token", token.token.expose_secret().to_owned()));
        }
        if let Some(verifier) = &values.verifier {
            params.push(("oauth_verifier", verifier.clone()));
        }
        params
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signer(method: SignatureMethod) -> Signer {
        Signer::for_access(
            &AccessCredentials::new("ck", "cs-secret", "tok", "ts-secret"),
            method,
        )
    }

    #[test]
    fn header_carries_every_protocol_parameter_encoded() {
        let url =
            Url::parse("https://shop.example/rest/V1/products?searchCriteria%5BpageSize%5D=1")
                .expect("valid URL");
        let values = ProtocolValues {
            nonce: "abc".to_owned(),
            timestamp: 1_700_000_000,
            verifier: None,
        };
        let header =
            signer(SignatureMethod::HmacSha256).authorization_header_with("GET", &url, &values);
        assert!(header.starts_with(
            "OAuth oauth_consumer_key=\"ck\", oauth_nonce=\"abc\", oauth_signature=\""
        ));
        assert!(header.contains("oauth_signature_method=\"HMAC-SHA256\""));
        assert!(header.contains("oauth_token=\"tok\""));
        assert!(header.contains("oauth_timestamp=\"1700000000\""));
        assert!(!header.contains("secret"));
    }

    #[test]
    fn fresh_values_fit_magentos_nonce_column() {
        let values = ProtocolValues::fresh();
        assert_eq!(values.nonce.len(), NONCE_LEN);
        assert!(values.timestamp > 1_600_000_000);
        assert_ne!(values.nonce, ProtocolValues::fresh().nonce);
    }
}
