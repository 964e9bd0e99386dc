//! The daemon's use of the Magento connector for connecting stores: the token exchange and
//! the first signed calls that discover store views. Magento's shapes stay in the connector.

use std::num::{NonZeroU32, NonZeroUsize};
use std::time::Duration;

use magento::client::Call;
use magento::oauth::{ConsumerCredentials, TokenExchange, TokenExchangeError};
use magento::scope::Route;
use magento::{
    AccessCredentials, ClientConfig, MagentoClient, MagentoError, SignatureForm, StoreScope,
};

use super::{RateLimit, SignatureMethod, StoreCredentials, StoreView};

fn method(m: SignatureMethod) -> magento::SignatureMethod {
    match m {
        SignatureMethod::HmacSha256 => magento::SignatureMethod::HmacSha256,
        SignatureMethod::HmacSha1 => magento::SignatureMethod::HmacSha1,
    }
}

/// Runs request-token then access-token. `Err` carries a message for the store owner
/// (Magento's `oauth_problem` when it sent one, or the egress refusal naming the setting that
/// would allow the store's address); no secret is ever part of it.
pub async fn exchange_tokens(
    egress: &egress::Policy,
    base_url: &str,
    consumer_key: &str,
    consumer_secret: &str,
    verifier: &str,
    signature_method: SignatureMethod,
) -> Result<(String, String), String> {
    let describe = |stage: &str, e: TokenExchangeError| match (&e, e.problem()) {
        (TokenExchangeError::Egress(refusal), _) => {
            format!("the store's address is refused: {refusal}")
        }
        (_, Some(problem)) => format!("Magento refused the {stage}: {problem}"),
        (_, None) => format!("the {stage} with Magento failed: {e}"),
    };
    let exchange =
        TokenExchange::with_policy(egress, method(signature_method)).map_err(|e| e.to_string())?;
    let consumer = ConsumerCredentials::new(consumer_key, consumer_secret);
    let request = exchange
        .request_token(base_url, &consumer)
        .await
        .map_err(|e| describe("request token", e))?;
    let access = exchange
        .access_token(base_url, &consumer, &request, verifier)
        .await
        .map_err(|e| describe("access token", e))?;
    Ok((
        access.token().to_string(),
        access.token_secret().to_string(),
    ))
}

/// A client for one store, with its rate limits, reaching it under `egress`.
pub fn client(
    egress: &egress::Policy,
    base_url: &str,
    credentials: &StoreCredentials,
    signature_method: SignatureMethod,
    signature_form: SignatureForm,
    rate: RateLimit,
) -> Result<MagentoClient, MagentoError> {
    let mut config = config(egress, base_url, credentials, signature_method, rate);
    config.signature_form = signature_form;
    MagentoClient::new(config)
}

fn config(
    egress: &egress::Policy,
    base_url: &str,
    credentials: &StoreCredentials,
    signature_method: SignatureMethod,
    rate: RateLimit,
) -> ClientConfig {
    let access = AccessCredentials::new(
        credentials.consumer_key.clone(),
        credentials.consumer_secret.clone(),
        credentials.access_token.clone(),
        credentials.access_token_secret.clone(),
    );
    let mut config = ClientConfig::new(base_url, access);
    config.egress = egress.clone();
    config.signature_method = method(signature_method);
    config.requests_per_second =
        NonZeroU32::new(rate.requests_per_second).unwrap_or(NonZeroU32::MIN);
    config.max_concurrency =
        NonZeroUsize::new(rate.max_concurrency as usize).unwrap_or(NonZeroUsize::MIN);
    config
}

/// One signed round of calls that proves the credentials work and lists the customer-facing
/// store views with their locales and URLs.
pub async fn discover(
    egress: &egress::Policy,
    base_url: &str,
    credentials: &StoreCredentials,
    signature_method: SignatureMethod,
    rate: RateLimit,
) -> Result<Vec<StoreView>, MagentoError> {
    discover_with_form(egress, base_url, credentials, signature_method, rate)
        .await
        .map(|(views, _)| views)
}

/// A SKU no store is expected to have whose path escape (`%3A`) only Laminas' path
/// normalisation decodes: listing its images (a media route always carries the SKU in the
/// path) tells the two signature rules apart.
const FORM_PROBE_SKU: &str = "catalogd:signature-probe";

/// [`discover`], plus the signature rules the store verifies with, learned from the images of
/// [`FORM_PROBE_SKU`] (`None` when the answer proves nothing, e.g. the integration may not
/// read products).
pub async fn discover_with_form(
    egress: &egress::Policy,
    base_url: &str,
    credentials: &StoreCredentials,
    signature_method: SignatureMethod,
    rate: RateLimit,
) -> Result<(Vec<StoreView>, Option<SignatureForm>), MagentoError> {
    // Connecting is interactive: fail within seconds rather than retry for minutes.
    let mut config = config(egress, base_url, credentials, signature_method, rate);
    config.timeout = Duration::from_secs(20);
    config.retry.max_attempts = 2;
    let client = MagentoClient::new(config)?;
    let views = client.store_views().await?;
    let configs = client.store_configs(&[]).await?;
    let config_of = |code: &str| {
        configs
            .iter()
            .map(|c| &c.value)
            .find(|c| c.code.as_deref() == Some(code))
    };
    let mut out: Vec<StoreView> = views
        .into_iter()
        .map(|p| p.value)
        .filter(|v| !v.is_admin())
        .filter_map(|v| {
            let code = v.code.clone()?;
            let config = config_of(&code);
            Some(StoreView {
                id: v.id.unwrap_or_default(),
                name: v.name.clone().unwrap_or_else(|| code.clone()),
                website_id: v.website_id.unwrap_or_default(),
                locale: config.and_then(|c| c.locale.clone()),
                base_url: config.and_then(|c| c.base_url.clone()),
                base_media_url: config.and_then(|c| c.base_media_url.clone()),
                currency: config.and_then(|c| c.base_currency_code.clone()),
                code,
            })
        })
        .collect();
    out.sort_by_key(|v| v.id);
    let probe = Call::get(
        StoreScope::All,
        Route::new()
            .lit("products")
            .value(FORM_PROBE_SKU)
            .lit("media"),
    );
    let form = match client.send(&probe).await {
        Ok(_) => Some(client.signature_form()),
        Err(e) if e.is_not_found() => Some(client.signature_form()),
        Err(_) => None,
    };
    Ok((out, form))
}
