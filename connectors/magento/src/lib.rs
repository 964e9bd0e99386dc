//! A Magento 2 REST client.
//!
//! * [`oauth`] signs requests the way Magento verifies them (OAuth 1.0a,
//!   HMAC-SHA256 or HMAC-SHA1, Magento's own base-string rules) and runs the
//!   integration token exchange.
//! * [`search`] renders `searchCriteria` query parameters.
//! * [`models`] holds lenient, round-trip-safe shapes of Magento's JSON.
//! * [`import`] writes Magento's `catalog_product` import CSV.
//! * [`client`] is the HTTP client: every call goes through one pipeline that
//!   applies a per-store rate limit, an adaptive concurrency limit, timeouts,
//!   retries and error mapping.
//!
//! The crate knows nothing about catalogd's database: it speaks Magento.

pub mod client;
pub mod error;
pub mod import;
pub mod models;
pub mod oauth;
pub mod query;
pub mod scope;
pub mod search;

pub use client::{
    ANSWER_LIMIT, AdaptiveConcurrencyConfig, ClientConfig, MagentoClient, PageStreamOptions,
    RawPage, RetryPolicy,
};
pub use error::{MagentoError, MagentoMessage};
pub use models::{ParseWarning, Parsed, Product, ProductPage};
pub use oauth::{AccessCredentials, ConsumerCredentials, SignatureForm, SignatureMethod};
pub use scope::{StoreCode, StoreScope};
pub use search::{ConditionType, Filter, SearchCriteria, SortDirection};
