//! Each content attribute's scope in a store (one value for all store views, one per website,
//! or one per store view), read from Magento and remembered on the store. A store-view value of
//! a global attribute cannot exist: Magento saves it as the default value
//! (`app/code/Magento/Catalog/Model/ResourceModel/AttributePersistor.php::getScopeValue`). A
//! website-scoped value is written to every store view of the website
//! (`app/code/Magento/Catalog/Model/ResourceModel/Attribute/ConditionBuilder.php`).

use std::collections::BTreeMap;

use sqlx::PgPool;
use uuid::Uuid;

use super::Store;
use crate::catalog::content::STANDARD_FIELDS;
use crate::connector::magento::MagentoConnector;
use crate::connector::{AttributeScope, ConnectorError};

/// Attribute code → scope.
pub type Scopes = BTreeMap<String, AttributeScope>;

/// The store's content attributes: the standard fields and its own.
pub fn content_codes(store: &Store) -> Vec<String> {
    STANDARD_FIELDS
        .iter()
        .map(|f| f.to_string())
        .chain(store.content_attributes.iter().cloned())
        .collect()
}

/// The content attributes whose scope is not known yet.
pub fn unknown(store: &Store) -> Vec<String> {
    content_codes(store)
        .into_iter()
        .filter(|code| !store.attribute_scopes.0.contains_key(code))
        .collect()
}

/// Reads the scope of each of `codes` from the store (one request), remembers what it read, and
/// returns the store's scopes as known now. An attribute the store does not have is left out. `Err` when
/// the store answers no attribute (e.g. the integration lacks
/// `Magento_Catalog::attributes_attributes`): the caller goes on with what is known, and the
/// read-back of each push remains the check.
pub async fn learn(
    db: &PgPool,
    store: &Store,
    connector: &MagentoConnector,
    codes: &[String],
) -> Result<Scopes, LearnError> {
    let read = connector
        .attribute_scopes(codes)
        .await
        .map_err(LearnError::Store)?;
    if !read.is_empty() {
        remember(db, store.id, &read)
            .await
            .map_err(LearnError::Db)?;
    }
    let mut known = store.attribute_scopes.0.clone();
    known.extend(read);
    Ok(known)
}

#[derive(Debug, thiserror::Error)]
pub enum LearnError {
    #[error("the store's attribute scopes could not be read: {0}")]
    Store(ConnectorError),
    #[error(transparent)]
    Db(sqlx::Error),
}

async fn remember(db: &PgPool, store_id: Uuid, scopes: &Scopes) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE stores SET attribute_scopes = attribute_scopes || $2 WHERE id = $1")
        .bind(store_id)
        .bind(sqlx::types::Json(scopes))
        .execute(db)
        .await?;
    Ok(())
}
