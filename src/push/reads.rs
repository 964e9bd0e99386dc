//! What a window of proposals reads from the store at once: for each scope, every SKU the
//! window needs in one `sku in (…)` request per list ([`MagentoConnector::read_products`]),
//! a SKU no list can carry (a comma) read alone. Both the conflict check before the writes
//! and the read-back after them go through here, so a window of a hundred products costs a
//! request or two per scope instead of a hundred.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use sqlx::PgPool;
use uuid::Uuid;

use crate::connector::magento::MagentoConnector;
use crate::connector::{ConnectorError, PulledProduct};
use crate::jobs::context::JobError;
use crate::stores::permissions;

/// Products as the store showed them, by scope and SKU.
#[derive(Default)]
pub(crate) struct Reads {
    by_scope: HashMap<String, HashMap<String, Result<Option<PulledProduct>, ConnectorError>>>,
}

/// Why a product read found nothing to work with.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Missing {
    /// The store no longer has the product.
    Gone,
    /// The store could not answer for it (the reason); this product alone fails.
    Unreadable(String),
}

impl Missing {
    /// Why a proposal of `sku` could not be planned.
    pub(crate) fn before_write(&self, sku: &str) -> String {
        match self {
            Missing::Gone => format!("the store no longer has a product with SKU {sku:?}"),
            Missing::Unreadable(message) => message.clone(),
        }
    }
}

impl Reads {
    /// Reads each `(scope, sku)` of `wanted`: the scopes side by side, the client's limiters
    /// keeping the store's pace.
    pub(crate) async fn fetch(
        connector: &MagentoConnector,
        wanted: Vec<(String, String)>,
    ) -> Reads {
        let mut skus: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for (scope, sku) in wanted {
            skus.entry(scope).or_default().insert(sku);
        }
        let mut reads = Vec::with_capacity(skus.len());
        for (scope, skus) in skus {
            reads.push(read_scope(connector, scope, skus));
        }
        Reads {
            by_scope: futures::future::join_all(reads).await.into_iter().collect(),
        }
    }

    /// `sku` as `scope` showed it. A refused permission or credentials end the job (as any
    /// other step of a push); anything else fails only this product.
    pub(crate) async fn get(
        &self,
        db: &PgPool,
        store_id: Uuid,
        scope: &str,
        sku: &str,
    ) -> Result<Result<PulledProduct, Missing>, JobError> {
        let read = self.by_scope.get(scope).and_then(|skus| skus.get(sku));
        match read {
            Some(Ok(Some(product))) => Ok(Ok(product.clone())),
            Some(Ok(None)) => Ok(Err(Missing::Gone)),
            Some(Err(e @ ConnectorError::PermissionMissing { .. })) => {
                Err(permissions::refused(db, store_id, "push", e.clone()).await)
            }
            Some(Err(ConnectorError::NeedsReauth(m))) => Err(JobError::Fatal(m.clone())),
            Some(Err(e)) => Ok(Err(Missing::Unreadable(e.to_string()))),
            None => Ok(Err(Missing::Unreadable(format!(
                "SKU {sku:?} was not read in {scope}"
            )))),
        }
    }

    /// `sku` as each of `scopes` showed it; the first scope that cannot say ends the lookup.
    pub(crate) async fn scopes(
        &self,
        db: &PgPool,
        store_id: Uuid,
        sku: &str,
        scopes: &[String],
    ) -> Result<Result<BTreeMap<String, PulledProduct>, Missing>, JobError> {
        let mut out = BTreeMap::new();
        for scope in scopes {
            match self.get(db, store_id, scope, sku).await? {
                Ok(product) => {
                    out.insert(scope.clone(), product);
                }
                Err(missing) => return Ok(Err(missing)),
            }
        }
        Ok(Ok(out))
    }
}

async fn read_scope(
    connector: &MagentoConnector,
    scope: String,
    skus: BTreeSet<String>,
) -> (
    String,
    HashMap<String, Result<Option<PulledProduct>, ConnectorError>>,
) {
    let skus: Vec<&str> = skus.iter().map(String::as_str).collect();
    let read = connector.read_products(&scope, &skus).await;
    (scope, read)
}
