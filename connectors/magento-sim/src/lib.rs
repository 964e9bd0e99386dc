//! A fake Magento 2.4 store for tests, the demo and benchmarks.
//!
//! It verifies OAuth 1.0a signatures exactly as Magento builds its base string
//! ([`oauth`]), runs the integration handshake (callback post, request and access tokens with
//! the 300-second consumer window and one-shot verifier), serves products with
//! `searchCriteria` paging and store-view scoping, applies PUT semantics per scope, keeps the
//! media gallery (a re-upload duplicates, like Magento), and can inject latency, 5xx, 429 and
//! malformed bodies. The catalog is generated deterministically from a seed with flaws the
//! simulator lists ([`MagentoSim::planted_flaws`]).

pub mod acl;
mod bulk;
pub mod catalog;
mod fixtures;
mod inspect;
pub mod oauth;
pub mod scopes;
pub mod search;
mod server;
mod sku_faults;
mod structure;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use chrono::{DateTime, Utc};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::Serialize;
use serde_json::Value;

pub use catalog::{PlantedFlaw, SimProduct};
pub use oauth::{SignatureForm, SignatureMethod};
pub use scopes::AttributeScope;

/// The message queue behind Magento's asynchronous web API, which decides the store view an
/// operation is saved in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum QueueMode {
    /// The default MySQL queue: the consumer runs in the default store view whatever the store
    /// code of the URL (`app/code/Magento/AsynchronousOperations/Model/MassConsumerEnvelopeCallback.php`
    /// and `OperationProcessor::process` set no store; magento/magento2#8897), so
    /// `/rest/fr/async/bulk/…` and `/rest/all/async/bulk/…` both save in `default`.
    #[default]
    Mysql,
    /// RabbitMQ: the store is carried in the message's `store_id` header and set before the
    /// operation runs (`app/code/Magento/AmqpStore/Plugin/Framework/Amqp/Bulk/Exchange.php`,
    /// `app/code/Magento/AmqpStore/Plugin/AsynchronousOperations/MassConsumerEnvelopeCallback.php`).
    Amqp,
}

impl QueueMode {
    pub fn parse(value: &str) -> Option<QueueMode> {
        match value {
            "mysql" => Some(QueueMode::Mysql),
            "amqp" => Some(QueueMode::Amqp),
            _ => None,
        }
    }
}

#[derive(Debug, Clone)]
pub struct SimConfig {
    pub products: usize,
    pub seed: u64,
    /// Store view codes; `default` comes first.
    pub store_views: Vec<String>,
    /// Magento's web API input limits (`webapi/validation/input_limit_enabled`): a `pageSize`
    /// above `maximum_page_size` is refused.
    pub input_limits: bool,
    /// `webapi/validation/maximum_page_size` (Magento's default 300), enforced with
    /// `input_limits` as `lib/internal/Magento/Framework/Webapi/Validator/SearchCriteriaValidator.php`
    /// does: 400 "Maximum SearchCriteria pageSize is %max".
    pub maximum_page_size: u64,
    /// 2.3-style paging: a page past the end repeats the last page instead of answering empty.
    pub legacy_last_page: bool,
    /// Pages that shift under a client, as when products are deleted between page requests:
    /// each page starts this many products before the end of the one before it, so they are
    /// listed twice (products past the last page are then not listed at all).
    pub page_overlap: u64,
    pub signature_methods: Vec<SignatureMethod>,
    /// The base-string rules of the release: `laminas` (up to 2.4.6) or `2.4.7+`.
    pub signature_form: SignatureForm,
    /// 2.3's media entry update: an entry sent with `file` loses its id and becomes a new
    /// gallery entry (`Catalog/Model/Product/Gallery/GalleryManagement::update`,
    /// magento/magento2#27147). 2.4 keeps the id.
    pub media_file_quirk: bool,
    /// Which queue runs asynchronous operations (the store view they are saved in).
    pub queue_mode: QueueMode,
    /// Attribute scopes the merchant set differently from Magento's (`name`, `description`…
    /// are `store`, `tax_class_id` `website`, `category_ids` `global`), and text attributes
    /// the store adds with their scope.
    pub attribute_scopes: BTreeMap<String, AttributeScope>,
    /// Port to listen on; 0 for any free port.
    pub port: u16,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            products: 50,
            seed: 1,
            store_views: vec!["default".into(), "fr".into(), "de".into()],
            input_limits: false,
            maximum_page_size: 300,
            legacy_last_page: false,
            page_overlap: 0,
            signature_methods: vec![SignatureMethod::HmacSha256],
            signature_form: SignatureForm::Laminas,
            media_file_quirk: false,
            queue_mode: QueueMode::Mysql,
            attribute_scopes: BTreeMap::new(),
            port: 0,
        }
    }
}

/// The four values of an active integration.
#[derive(Clone, Serialize)]
pub struct IntegrationCredentials {
    pub consumer_key: String,
    pub consumer_secret: String,
    pub access_token: String,
    pub access_token_secret: String,
}

impl std::fmt::Debug for IntegrationCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IntegrationCredentials")
            .field("consumer_key", &self.consumer_key)
            .finish_non_exhaustive()
    }
}

/// An integration created in handshake mode, as posted to the callback.
#[derive(Debug, Clone)]
pub struct PendingIntegration {
    pub consumer_key: String,
    pub consumer_secret: String,
    pub verifier: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IntegrationStatus {
    Inactive,
    Active,
}

#[derive(Debug, thiserror::Error)]
pub enum SimError {
    #[error("the attempt to post data to consumer failed: {0}")]
    PostFailed(String),
    #[error("no integration with consumer key {0}")]
    UnknownIntegration(String),
}

/// Fault injection; rates are probabilities per REST request, drawn from the seeded generator.
#[derive(Debug, Clone, Default)]
pub struct Faults {
    pub latency: Duration,
    pub error_5xx_rate: f64,
    pub rate_429: f64,
    pub retry_after_secs: Option<u64>,
    pub malformed_rate: f64,
}

/// A mutating REST call the store received.
#[derive(Debug, Clone, Serialize)]
pub struct RecordedWrite {
    pub method: String,
    pub path: String,
    /// `None` for `/rest/V1`, else the store code (`all`, `default`, `fr`…).
    pub store_code: Option<String>,
    pub body: Value,
}

#[derive(Debug, Clone, Default)]
pub struct RequestStats {
    pub total: u64,
    /// REST requests that write (any method but GET; a bulk counts once, however many
    /// operations it carries).
    pub write_requests: u64,
    /// REST requests per wall-clock second (unix seconds → count).
    pub per_second: BTreeMap<u64, u64>,
    pub max_in_flight: u32,
}

impl RequestStats {
    pub fn max_per_second(&self) -> u64 {
        self.per_second.values().copied().max().unwrap_or(0)
    }
}

struct Token {
    token: String,
    secret: String,
}

struct Integration {
    consumer_secret: String,
    status: IntegrationStatus,
    /// The verifier posted to the callback, until it becomes a request token.
    verifier: Option<String>,
    request_token: Option<Token>,
    request_token_used: bool,
    access: Option<Token>,
    /// When the consumer was last posted to the callback (starts the 300 s window).
    updated_at: DateTime<Utc>,
    callback_url: Option<String>,
    /// ACL resources the integration was not granted (Magento's "Resource Access": custom).
    denied: HashSet<String>,
}

/// Why a REST call was refused before it ran.
pub(crate) enum Refused {
    /// Magento's ACL refusal for the route's resource (also what an integration that is not
    /// active gets: no user, so no resource is allowed).
    Acl(&'static str),
    /// The OAuth layer's own message.
    Oauth(String),
}

pub(crate) struct Catalog {
    pub products: Vec<SimProduct>,
    pub by_sku: HashMap<String, usize>,
    pub deleted: HashSet<i64>,
    pub next_id: i64,
    pub next_media_id: i64,
}

impl Catalog {
    pub fn live(&self) -> impl Iterator<Item = &SimProduct> {
        self.products
            .iter()
            .filter(|p| !self.deleted.contains(&p.id))
    }

    pub fn get(&self, sku: &str) -> Option<&SimProduct> {
        self.by_sku
            .get(sku)
            .map(|&i| &self.products[i])
            .filter(|p| !self.deleted.contains(&p.id))
    }

    pub fn get_mut(&mut self, sku: &str) -> Option<&mut SimProduct> {
        let i = *self.by_sku.get(sku)?;
        if self.deleted.contains(&self.products[i].id) {
            return None;
        }
        Some(&mut self.products[i])
    }
}

pub(crate) struct Inner {
    pub config: SimConfig,
    pub base_url: String,
    pub catalog: RwLock<Catalog>,
    integrations: Mutex<HashMap<String, Integration>>,
    nonces: Mutex<HashSet<(String, String)>>,
    clock_offset: Mutex<chrono::Duration>,
    faults: Mutex<Faults>,
    fail_next: AtomicU32,
    pub(crate) sku_faults: sku_faults::SkuFaults,
    pub(crate) stats: Mutex<RequestStats>,
    pub in_flight: AtomicU32,
    requests: AtomicU64,
    pub(crate) writes: Mutex<Vec<RecordedWrite>>,
    flaws: Vec<PlantedFlaw>,
    pub rng: Mutex<StdRng>,
    pub bulks: Mutex<HashMap<String, Vec<bulk::Operation>>>,
    default_integration: IntegrationCredentials,
    http: reqwest::Client,
}

/// A running simulator. Cheap to clone; the server stops when the last handle is dropped.
#[derive(Clone)]
pub struct MagentoSim {
    inner: Arc<Inner>,
    _guard: Arc<ShutdownGuard>,
}

struct ShutdownGuard(Mutex<Option<tokio::sync::oneshot::Sender<()>>>);

impl Drop for ShutdownGuard {
    fn drop(&mut self) {
        if let Some(tx) = self.0.lock().ok().and_then(|mut g| g.take()) {
            let _ = tx.send(());
        }
    }
}

fn random_token(rng: &mut StdRng) -> String {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    (0..32)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect()
}

impl MagentoSim {
    /// Starts the simulator on 127.0.0.1 (port from the config, 0 for any free one).
    pub async fn start(config: SimConfig) -> std::io::Result<MagentoSim> {
        let listener =
            tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], config.port))).await?;
        let addr = listener.local_addr()?;
        let base_url = format!("http://{addr}/");
        let mut rng = StdRng::seed_from_u64(config.seed ^ 0x5eed);
        let views: Vec<String> = config
            .store_views
            .iter()
            .filter(|v| *v != "default")
            .cloned()
            .collect();
        let (mut products, flaws) =
            catalog::generate(config.products, config.seed, &views, Utc::now());
        // A global attribute has no store-view values: Magento reads only its default.
        for product in &mut products {
            for overrides in product.views.values_mut() {
                overrides.retain(|code, _| {
                    structure::scope_of(code, &config.attribute_scopes) != AttributeScope::Global
                });
            }
        }
        let by_sku = products
            .iter()
            .enumerate()
            .map(|(i, p)| (p.sku.clone(), i))
            .collect();
        let next_media_id = products
            .iter()
            .flat_map(|p| p.media.iter().map(|m| m.id))
            .max()
            .unwrap_or(0)
            + 1;
        let default_integration = IntegrationCredentials {
            consumer_key: random_token(&mut rng),
            consumer_secret: random_token(&mut rng),
            access_token: random_token(&mut rng),
            access_token_secret: random_token(&mut rng),
        };
        let mut integrations = HashMap::new();
        integrations.insert(
            default_integration.consumer_key.clone(),
            Integration {
                consumer_secret: default_integration.consumer_secret.clone(),
                status: IntegrationStatus::Active,
                verifier: None,
                request_token: None,
                request_token_used: true,
                access: Some(Token {
                    token: default_integration.access_token.clone(),
                    secret: default_integration.access_token_secret.clone(),
                }),
                updated_at: Utc::now(),
                callback_url: None,
                denied: HashSet::new(),
            },
        );
        let inner = Arc::new(Inner {
            base_url,
            catalog: RwLock::new(Catalog {
                next_id: products.len() as i64 + 1,
                products,
                by_sku,
                deleted: HashSet::new(),
                next_media_id,
            }),
            integrations: Mutex::new(integrations),
            nonces: Mutex::new(HashSet::new()),
            clock_offset: Mutex::new(chrono::Duration::zero()),
            faults: Mutex::new(Faults::default()),
            fail_next: AtomicU32::new(0),
            sku_faults: sku_faults::SkuFaults::default(),
            stats: Mutex::new(RequestStats::default()),
            in_flight: AtomicU32::new(0),
            requests: AtomicU64::new(0),
            writes: Mutex::new(Vec::new()),
            flaws,
            rng: Mutex::new(rng),
            bulks: Mutex::new(HashMap::new()),
            default_integration,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(5))
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .map_err(std::io::Error::other)?,
            config,
        });
        let (tx, rx) = tokio::sync::oneshot::channel();
        let app = server::router(inner.clone());
        tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = rx.await;
                })
                .await;
        });
        Ok(MagentoSim {
            inner,
            _guard: Arc::new(ShutdownGuard(Mutex::new(Some(tx)))),
        })
    }

    pub fn base_url(&self) -> String {
        self.inner.base_url.clone()
    }

    /// A pre-activated integration (the four values Magento shows after "Activate").
    pub fn credentials(&self) -> IntegrationCredentials {
        self.inner.default_integration.clone()
    }

    /// Handshake mode: creates a consumer and posts its credentials to `callback_url` the way
    /// Magento does (5-second timeout; the answer is ignored, only a transport failure fails).
    pub async fn create_integration(
        &self,
        callback_url: &str,
        _identity_url: &str,
    ) -> Result<PendingIntegration, SimError> {
        let (consumer_key, consumer_secret) = {
            let mut rng = self.inner.rng.lock().expect("rng");
            (random_token(&mut rng), random_token(&mut rng))
        };
        self.inner
            .integrations
            .lock()
            .expect("integrations")
            .insert(
                consumer_key.clone(),
                Integration {
                    consumer_secret: consumer_secret.clone(),
                    status: IntegrationStatus::Inactive,
                    verifier: None,
                    request_token: None,
                    request_token_used: false,
                    access: None,
                    updated_at: self.now(),
                    callback_url: Some(callback_url.to_string()),
                    denied: HashSet::new(),
                },
            );
        self.post_to_consumer(&consumer_key, callback_url).await
    }

    /// Magento's "Reauthorize": deletes the token, deactivates, and posts a new verifier.
    pub async fn reauthorize(
        &self,
        consumer_key: &str,
        callback_url: &str,
    ) -> Result<PendingIntegration, SimError> {
        {
            let mut integrations = self.inner.integrations.lock().expect("integrations");
            let integration = integrations
                .get_mut(consumer_key)
                .ok_or_else(|| SimError::UnknownIntegration(consumer_key.into()))?;
            integration.access = None;
            integration.status = IntegrationStatus::Inactive;
            integration.request_token = None;
            integration.request_token_used = false;
            integration.verifier = None;
            integration.callback_url = Some(callback_url.to_string());
        }
        self.post_to_consumer(consumer_key, callback_url).await
    }

    async fn post_to_consumer(
        &self,
        consumer_key: &str,
        callback_url: &str,
    ) -> Result<PendingIntegration, SimError> {
        let (secret, verifier) = {
            let verifier = random_token(&mut self.inner.rng.lock().expect("rng"));
            let mut integrations = self.inner.integrations.lock().expect("integrations");
            let integration = integrations
                .get_mut(consumer_key)
                .ok_or_else(|| SimError::UnknownIntegration(consumer_key.into()))?;
            integration.verifier = Some(verifier.clone());
            integration.updated_at = self.now();
            (integration.consumer_secret.clone(), verifier)
        };
        let form = [
            ("oauth_consumer_key", consumer_key),
            ("oauth_consumer_secret", secret.as_str()),
            ("store_base_url", self.inner.base_url.as_str()),
            ("oauth_verifier", verifier.as_str()),
        ];
        self.inner
            .http
            .post(callback_url)
            .header("user-agent", "Laminas\\Http\\Client")
            .form(&form)
            .send()
            .await
            .map_err(|e| SimError::PostFailed(e.without_url().to_string()))?;
        Ok(PendingIntegration {
            consumer_key: consumer_key.into(),
            consumer_secret: secret,
            verifier,
        })
    }

    /// Takes `resource` (an ACL resource such as `Magento_Catalog::products`) out of the
    /// integration's grants, as an owner unticking it under "API" → "Resource Access" would.
    pub fn deny_resource(&self, consumer_key: &str, resource: &str) -> Result<(), SimError> {
        self.set_grant(consumer_key, resource, false)
    }

    /// Grants `resource` to the integration again.
    pub fn grant_resource(&self, consumer_key: &str, resource: &str) -> Result<(), SimError> {
        self.set_grant(consumer_key, resource, true)
    }

    fn set_grant(&self, consumer_key: &str, resource: &str, granted: bool) -> Result<(), SimError> {
        let mut integrations = self.inner.integrations.lock().expect("integrations");
        let integration = integrations
            .get_mut(consumer_key)
            .ok_or_else(|| SimError::UnknownIntegration(consumer_key.into()))?;
        if granted {
            integration.denied.remove(resource);
        } else {
            integration.denied.insert(resource.to_string());
        }
        Ok(())
    }

    pub fn integration_status(&self, consumer_key: &str) -> Option<IntegrationStatus> {
        self.inner
            .integrations
            .lock()
            .expect("integrations")
            .get(consumer_key)
            .map(|i| i.status)
    }

    /// The access token issued to an integration by the handshake, if any.
    pub fn access_credentials(&self, consumer_key: &str) -> Option<IntegrationCredentials> {
        let integrations = self.inner.integrations.lock().expect("integrations");
        let integration = integrations.get(consumer_key)?;
        let access = integration.access.as_ref()?;
        Some(IntegrationCredentials {
            consumer_key: consumer_key.to_string(),
            consumer_secret: integration.consumer_secret.clone(),
            access_token: access.token.clone(),
            access_token_secret: access.secret.clone(),
        })
    }

    /// Moves the simulator's clock (consumer expiry, `updated_at` of changes) forward.
    pub fn advance_clock(&self, by: Duration) {
        let mut offset = self.inner.clock_offset.lock().expect("clock");
        *offset += chrono::Duration::from_std(by).unwrap_or_default();
    }

    pub fn now(&self) -> DateTime<Utc> {
        self.inner.now()
    }

    pub fn set_faults(&self, faults: Faults) {
        *self.inner.faults.lock().expect("faults") = faults;
    }

    /// The next `n` REST requests fail with 503.
    pub fn fail_next(&self, n: u32) {
        self.inner.fail_next.store(n, Ordering::SeqCst);
    }

    /// Every REST request naming one of `skus` answers 503 until the list is set again
    /// (empty: none); requests about other products are served.
    pub fn fail_skus(&self, skus: impl IntoIterator<Item = String>) {
        self.inner.sku_faults.set(skus);
    }

    /// Changes a product as an admin would; `store_view` `None` edits default values. Bumps
    /// `updated_at`. `changes` is a flat object of attribute codes (and `price`, `status`).
    pub fn update_product(&self, sku: &str, store_view: Option<&str>, changes: Value) -> bool {
        update_product(&self.inner, sku, store_view, changes, Touch::UpdatedAt)
    }

    /// Magento's "Update attributes" mass action (Catalog > Products > Actions): the values
    /// go straight into the attribute tables and `updated_at` stays as it was
    /// (`app/code/Magento/Catalog/Model/ResourceModel/Product/Action.php`, `updateAttributes`;
    /// magento/magento2#37980), so a search on `updated_at` does not find the products.
    /// Returns how many of `skus` exist.
    pub fn update_attributes(
        &self,
        skus: &[&str],
        store_view: Option<&str>,
        changes: Value,
    ) -> usize {
        skus.iter()
            .filter(|sku| {
                update_product(
                    &self.inner,
                    sku,
                    store_view,
                    changes.clone(),
                    Touch::Nothing,
                )
            })
            .count()
    }

    pub fn delete_product(&self, sku: &str) -> bool {
        delete_product(&self.inner, sku)
    }

    /// The product as `GET /rest/<view>/V1/products/<sku>` would show it (`None`: default values).
    pub fn product(&self, sku: &str, store_view: Option<&str>) -> Option<Value> {
        self.inner
            .catalog
            .read()
            .expect("catalog")
            .get(sku)
            .map(|p| p.to_json(store_view))
    }

    /// What `GET /rest/<view>/V1/products/<sku>` shows for attribute `code`, `name` included
    /// (`None`: the product or the value is missing).
    pub fn shown(&self, sku: &str, store_view: Option<&str>, code: &str) -> Option<Value> {
        let product = self.product(sku, store_view)?;
        if code == "name" {
            return Some(product["name"].clone()).filter(|v| !v.is_null());
        }
        product["custom_attributes"]
            .as_array()?
            .iter()
            .find(|a| a["attribute_code"] == code)
            .map(|a| a["value"].clone())
    }

    pub fn skus(&self) -> Vec<String> {
        self.inner
            .catalog
            .read()
            .expect("catalog")
            .live()
            .map(|p| p.sku.clone())
            .collect()
    }

    pub fn writes(&self) -> Vec<RecordedWrite> {
        self.inner.writes.lock().expect("writes").clone()
    }

    pub fn stats(&self) -> RequestStats {
        self.inner.stats.lock().expect("stats").clone()
    }

    /// Forgets the requests counted so far, so [`MagentoSim::stats`] tells about what follows.
    pub fn reset_stats(&self) {
        *self.inner.stats.lock().expect("stats") = RequestStats::default();
    }

    pub fn planted_flaws(&self) -> Vec<PlantedFlaw> {
        self.inner.flaws.clone()
    }
}

impl Inner {
    pub fn attribute_scope(&self, code: &str) -> AttributeScope {
        structure::scope_of(code, &self.config.attribute_scopes)
    }

    /// The store views of the (single) website.
    pub fn website_views(&self) -> &[String] {
        &self.config.store_views
    }

    pub fn now(&self) -> DateTime<Utc> {
        Utc::now() + *self.clock_offset.lock().expect("clock")
    }

    pub fn record_write(&self, write: RecordedWrite) {
        self.writes.lock().expect("writes").push(write);
    }

    pub fn count_request(&self, writes: bool) {
        self.requests.fetch_add(1, Ordering::Relaxed);
        let second = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let in_flight = self.in_flight.load(Ordering::SeqCst);
        let mut stats = self.stats.lock().expect("stats");
        stats.total += 1;
        stats.write_requests += u64::from(writes);
        *stats.per_second.entry(second).or_insert(0) += 1;
        stats.max_in_flight = stats.max_in_flight.max(in_flight);
    }

    /// A fault to inject for this request, drawn from the seeded generator.
    pub fn draw_fault(&self) -> (Duration, Option<server::Fault>) {
        let faults = self.faults.lock().expect("faults").clone();
        if self
            .fail_next
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
        {
            return (faults.latency, Some(server::Fault::ServerError));
        }
        let mut rng = self.rng.lock().expect("rng");
        let fault = if faults.error_5xx_rate > 0.0
            && rng.random_bool(faults.error_5xx_rate.min(1.0))
        {
            Some(server::Fault::ServerError)
        } else if faults.rate_429 > 0.0 && rng.random_bool(faults.rate_429.min(1.0)) {
            Some(server::Fault::TooMany(faults.retry_after_secs))
        } else if faults.malformed_rate > 0.0 && rng.random_bool(faults.malformed_rate.min(1.0)) {
            Some(server::Fault::Malformed)
        } else {
            None
        };
        (faults.latency, fault)
    }

    /// Checks an OAuth-signed REST request for a route that needs `resource` (`None`:
    /// anonymous). OAuth failures carry the messages of
    /// `app/code/Magento/Integration/Model/Oauth/Token/Provider.php` and
    /// `lib/internal/Magento/Framework/Oauth/Oauth.php`.
    pub(crate) fn authenticate(
        &self,
        method: &str,
        host: &str,
        path: &str,
        query: &str,
        auth: Option<&str>,
        resource: Option<&'static str>,
    ) -> Result<(), Refused> {
        // Without an OAuth header the caller is anonymous.
        let Some(params) = auth.and_then(oauth::header_params) else {
            return resource.map_or(Ok(()), |r| Err(Refused::Acl(r)));
        };
        let oauth = |m: &str| Refused::Oauth(m.to_string());
        let consumer_key = params
            .get("oauth_consumer_key")
            .ok_or_else(|| oauth("oauth_consumer_key is required"))?;
        let token = params
            .get("oauth_token")
            .ok_or_else(|| oauth("oauth_token is required"))?;
        let integrations = self.integrations.lock().expect("integrations");
        let integration = integrations
            .get(consumer_key)
            .ok_or_else(|| oauth("A consumer having the specified key does not exist"))?;
        let access = integration
            .access
            .as_ref()
            .filter(|a| &a.token == token)
            .ok_or_else(|| oauth("Specified token does not exist"))?;
        self.check_signature(
            &params,
            method,
            host,
            path,
            query,
            &integration.consumer_secret,
            &access.secret,
        )
        .map_err(Refused::Oauth)?;
        // `OauthUserContext` finds no active integration: no user, so no resource is allowed.
        let Some(resource) = resource else {
            return Ok(());
        };
        if integration.status != IntegrationStatus::Active || integration.denied.contains(resource)
        {
            return Err(Refused::Acl(resource));
        }
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    fn check_signature(
        &self,
        params: &BTreeMap<String, String>,
        method: &str,
        host: &str,
        path: &str,
        query: &str,
        consumer_secret: &str,
        token_secret: &str,
    ) -> Result<(), String> {
        let signature_method = params
            .get("oauth_signature_method")
            .and_then(|m| oauth::SignatureMethod::parse(m))
            .filter(|m| self.config.signature_methods.contains(m))
            .ok_or_else(|| {
                format!(
                    "Signature method {} is not supported",
                    params.get("oauth_signature_method").map_or("", |s| s)
                )
            })?;
        let timestamp: i64 = params
            .get("oauth_timestamp")
            .and_then(|t| t.parse().ok())
            .unwrap_or(0);
        if timestamp <= 0 || timestamp > self.now().timestamp() + 600 {
            return Err("The timestamp is invalid.".into());
        }
        let nonce = params.get("oauth_nonce").cloned().unwrap_or_default();
        let consumer_key = params
            .get("oauth_consumer_key")
            .cloned()
            .unwrap_or_default();
        let mut signed: BTreeMap<String, String> = params
            .iter()
            .filter(|(k, _)| *k != "oauth_signature" && *k != "realm")
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        signed.extend(oauth::query_params(query));
        let base = oauth::base_string(
            method,
            "http",
            host,
            path,
            &signed,
            self.config.signature_form,
        );
        let expected = oauth::sign(signature_method, &base, consumer_secret, token_secret);
        if params.get("oauth_signature") != Some(&expected) {
            return Err("The signature is invalid. Verify and try again.".into());
        }
        if !self
            .nonces
            .lock()
            .expect("nonces")
            .insert((consumer_key.clone(), nonce))
        {
            return Err(format!(
                "The nonce is already being used by the consumer with ID {consumer_key}"
            ));
        }
        Ok(())
    }

    /// `POST /oauth/token/request`: Err is `(status, oauth_problem)`.
    pub fn request_token(
        &self,
        host: &str,
        path: &str,
        auth: Option<&str>,
    ) -> Result<(String, String), (u16, String)> {
        let params = auth
            .and_then(oauth::header_params)
            .ok_or((400, "oauth_problem=parameter_absent".to_string()))?;
        let consumer_key = params
            .get("oauth_consumer_key")
            .cloned()
            .ok_or((400, "Consumer key is missing".to_string()))?;
        let now = self.now();
        let mut integrations = self.integrations.lock().expect("integrations");
        let integration = integrations
            .get_mut(&consumer_key)
            .ok_or((401, "Consumer key is not valid".to_string()))?;
        let secret = integration.consumer_secret.clone();
        self.check_signature(&params, "POST", host, path, "", &secret, "")
            .map_err(|e| (oauth_status(&e), e))?;
        if (now - integration.updated_at).num_seconds() > 300 {
            return Err((401, "Consumer key has expired".into()));
        }
        let Some(_verifier) = integration.verifier.as_ref() else {
            return Err((
                401,
                "Cannot create request token because consumer token is not a verifier token".into(),
            ));
        };
        if integration.request_token.is_some() {
            return Err((
                401,
                "Cannot create request token because consumer token is not a verifier token".into(),
            ));
        }
        let mut rng = self.rng.lock().expect("rng");
        let token = Token {
            token: random_token(&mut rng),
            secret: random_token(&mut rng),
        };
        let pair = (token.token.clone(), token.secret.clone());
        integration.request_token = Some(token);
        integration.request_token_used = false;
        Ok(pair)
    }

    /// `POST /oauth/token/access`.
    pub fn access_token(
        &self,
        host: &str,
        path: &str,
        auth: Option<&str>,
    ) -> Result<(String, String), (u16, String)> {
        let params = auth
            .and_then(oauth::header_params)
            .ok_or((400, "oauth_problem=parameter_absent".to_string()))?;
        let consumer_key = params
            .get("oauth_consumer_key")
            .cloned()
            .ok_or((400, "Consumer key is missing".to_string()))?;
        let mut integrations = self.integrations.lock().expect("integrations");
        let integration = integrations
            .get_mut(&consumer_key)
            .ok_or((401, "Consumer key is not valid".to_string()))?;
        let request = integration
            .request_token
            .as_ref()
            .filter(|t| params.get("oauth_token") == Some(&t.token))
            .ok_or((401, "Specified token does not exist".to_string()))?;
        let request_secret = request.secret.clone();
        let secret = integration.consumer_secret.clone();
        self.check_signature(&params, "POST", host, path, "", &secret, &request_secret)
            .map_err(|e| (oauth_status(&e), e))?;
        if integration.request_token_used {
            return Err((401, "Token is already being used".into()));
        }
        if params.get("oauth_verifier") != integration.verifier.as_ref() {
            return Err((401, "Verifier is invalid".into()));
        }
        let mut rng = self.rng.lock().expect("rng");
        let token = Token {
            token: random_token(&mut rng),
            secret: random_token(&mut rng),
        };
        let pair = (token.token.clone(), token.secret.clone());
        integration.access = Some(token);
        integration.request_token_used = true;
        integration.status = IntegrationStatus::Active;
        Ok(pair)
    }

    pub fn next_media_id(&self, catalog: &mut Catalog) -> i64 {
        let id = catalog.next_media_id;
        catalog.next_media_id += 1;
        id
    }
}

/// Changes a product as an admin would (see [`MagentoSim::update_product`]).
/// Whether an edit moves the product's `updated_at`: a save does, a mass attribute update does not.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Touch {
    UpdatedAt,
    Nothing,
}

pub(crate) fn update_product(
    inner: &Inner,
    sku: &str,
    store_view: Option<&str>,
    changes: Value,
    touch: Touch,
) -> bool {
    let now = inner.now();
    let mut catalog = inner.catalog.write().expect("catalog");
    let Some(product) = catalog.get_mut(sku) else {
        return false;
    };
    if let Value::Object(map) = changes {
        for (code, value) in map {
            match code.as_str() {
                "price" => product.price = value.as_f64().unwrap_or(product.price),
                "status" => product.status = value.as_i64().unwrap_or(product.status),
                _ => {
                    let view = store_view.filter(|v| *v != "all");
                    // The admin writes a global attribute's one value whatever view is open.
                    let global = inner.attribute_scope(&code) == AttributeScope::Global;
                    let target = match view.filter(|_| !global) {
                        None => &mut product.defaults,
                        Some(view) => product.views.entry(view.to_string()).or_default(),
                    };
                    if value.is_null() {
                        target.remove(&code);
                    } else {
                        target.insert(code, value);
                    }
                }
            }
        }
    }
    if touch == Touch::UpdatedAt {
        product.updated_at = now;
    }
    true
}

pub(crate) fn delete_product(inner: &Inner, sku: &str) -> bool {
    let mut catalog = inner.catalog.write().expect("catalog");
    let Some(id) = catalog.get(sku).map(|p| p.id) else {
        return false;
    };
    catalog.deleted.insert(id)
}

/// Magento answers an unsupported signature method with 400, other OAuth failures with 401.
pub(crate) fn oauth_status(message: &str) -> u16 {
    if message.starts_with("Signature method") {
        400
    } else {
        401
    }
}
