//! The seam between the daemon and a commerce platform. The sync engine speaks only this
//! trait and the neutral [`Content`] model; Magento is the first implementation.

pub mod magento;

use chrono::{DateTime, Utc};
use futures::future::BoxFuture;
use serde_json::{Map, Value};

use crate::catalog::content::Content;

/// One page of products in one scope.
#[derive(Debug, Clone)]
pub struct PageQuery {
    /// `all` for default values, or a store view code.
    pub scope: String,
    /// 1-based.
    pub page: u32,
    pub page_size: u32,
    /// Only products changed at or after this time (incremental sync).
    pub updated_since: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone)]
pub struct PulledProduct {
    pub remote_id: Option<i64>,
    pub sku: String,
    pub type_id: Option<String>,
    pub updated_at: Option<DateTime<Utc>>,
    /// The editable content as this scope shows it (effective values).
    pub content: Content,
    /// Everything else: price, status, visibility, categories, other attributes.
    pub attributes: Map<String, Value>,
    /// Odd values the platform sent for this product.
    pub warnings: Vec<String>,
}

#[derive(Debug, Clone, Default)]
pub struct PulledPage {
    pub products: Vec<PulledProduct>,
    pub total_count: Option<u64>,
    /// Items that could not be read as a product at all (no SKU).
    pub skipped: u64,
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum ConnectorError {
    /// The platform refused our credentials: the owner must re-authorise.
    #[error("the store refused our credentials: {0}")]
    NeedsReauth(String),
    /// The credentials work but the store's integration is not granted an API resource the
    /// call needs: the owner grants it in the integration's "API" tab. The store stays usable.
    #[error("{}", permission_message(.resource, .message))]
    PermissionMissing {
        /// The ACL resources Magento named, e.g. `Magento_Catalog::products`.
        resource: String,
        message: String,
    },
    /// The store refuses pages this large; it answers pages of up to `max` products.
    #[error("the store answers at most {max} products per page")]
    PageSizeLimit { max: u32 },
    /// Worth retrying later.
    #[error("{0}")]
    Transient(String),
    /// Retrying will not help.
    #[error("{0}")]
    Fatal(String),
}

fn permission_message(resource: &str, message: &str) -> String {
    format!(
        "{message} — the integration in Magento (System > Extensions > Integrations, tab \"API\") must be granted {resource}; the store stays connected"
    )
}

/// Where a content attribute keeps its values in the store.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum AttributeScope {
    /// One value for every store view.
    Global,
    /// One value per website, shared by its store views.
    Website,
    /// One value per store view.
    Store,
}

pub trait Connector: Send + Sync {
    fn pull_page(&self, query: PageQuery) -> BoxFuture<'_, Result<PulledPage, ConnectorError>>;
}
