//! The canary of a bulk push: whether a store's bulk API saves each operation in the store
//! view of its URL is learned from one product before the rest is sent.
//!
//! Magento's asynchronous consumer sets no store of its own
//! (`app/code/Magento/AsynchronousOperations/Model/MassConsumerEnvelopeCallback.php`,
//! `OperationProcessor::process`); only with RabbitMQ does a plugin set the store the
//! operation was sent to (`app/code/Magento/AmqpStore/Plugin/AsynchronousOperations/MassConsumerEnvelopeCallback.php`).
//! With the default MySQL queue a save sent to `/rest/fr/async/bulk/…` or
//! `/rest/all/async/bulk/…` lands in the default store view (magento/magento2#8897). So while
//! a store is not known to keep scopes, the first bulk of each scope carries one product, read
//! back in its scope and in the default store view. A canary that landed in the default store
//! view is undone there with a normal scoped save of the view's own values before it, the store
//! is marked `bulk_keeps_scope: false`, and the rest of the push goes product by product. A
//! store known to keep scopes still sends each push's first save as a canary.

use serde::{Deserialize, Serialize};

use super::verify::{self, Verdict};
use crate::catalog::content::DEFAULT_SCOPE;
use crate::connector::ConnectorError;
use crate::connector::magento::{ContentWrites, MagentoConnector, is_interface_attribute};
use crate::jobs::context::{JobContext, JobError};
use crate::stores::{Store, permissions};

/// Whether the next bulk of `scope` must be a canary of one product: for a store not known to
/// keep scopes, until a canary of `scope` landed in its scope in this push (`proven`); for a
/// store known to, until a canary of another scope than the default store view `default_view`
/// did (MySQL's queue saves there anyway, so a canary there proves nothing).
pub fn needed(
    keeps_scope: Option<bool>,
    proven: &[String],
    scope: &str,
    default_view: Option<&str>,
) -> bool {
    match keeps_scope {
        Some(true) => {
            Some(scope) != default_view && proven.iter().all(|p| Some(p.as_str()) == default_view)
        }
        _ => !proven.iter().any(|p| p == scope),
    }
}

/// A canary's save that landed in the default store view: that view's own values before it,
/// to put back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Revert {
    pub sku: String,
    /// The scope the canary was sent to.
    pub scope: String,
    /// The default store view, where it landed.
    pub view: String,
    /// Each field the save changed there, with the view's own value before (`None`: it
    /// inherited the default).
    pub before: Vec<(String, Option<String>)>,
}

/// The canary's save landed in the default store view `view` when the read-back shows that
/// view's own values changed across it; then what to put back.
pub fn misplaced(verdict: &Verdict, sku: &str, scope: &str, view: &str) -> Option<Revert> {
    if scope == view {
        return None;
    }
    let before: Vec<(String, Option<String>)> = verdict
        .changed_elsewhere
        .iter()
        .filter(|c| c.scope == view)
        .map(|c| (c.field.clone(), c.before.clone()))
        .collect();
    (!before.is_empty()).then(|| Revert {
        sku: sku.to_string(),
        scope: scope.to_string(),
        view: view.to_string(),
        before,
    })
}

fn scope_name(scope: &str) -> String {
    if scope == DEFAULT_SCOPE {
        "the default values (all)".into()
    } else {
        format!("store view {scope}")
    }
}

/// The store's reason once a canary landed where it was sent.
pub fn kept_detail(scope: &str) -> String {
    format!(
        "a bulk operation sent to {} was saved there (the queue carries each operation's store view, as RabbitMQ does); each push still checks its first bulk operation",
        scope_name(scope)
    )
}

/// The store's reason once a canary landed in the default store view, with what could not be
/// put back.
pub fn misplaced_detail(revert: &Revert, notes: &[String]) -> String {
    let mut detail = format!(
        "Magento saved a bulk operation sent to {} (SKU {:?}) in the default store view {}: its MySQL queue runs bulk operations without their store view (app/code/Magento/AsynchronousOperations/Model/MassConsumerEnvelopeCallback.php), so pushes to this store go product by product. To push in bulk, run Magento's async.operations.all consumer on RabbitMQ (AMQP; app/code/Magento/AmqpStore carries the store view), then set push_via_bulk again.",
        scope_name(&revert.scope),
        revert.sku,
        revert.view
    );
    for note in notes {
        detail.push(' ');
        detail.push_str(note);
    }
    detail
}

/// Puts the default store view's own values back as they were before the canary: a normal
/// save at the view's URL with each value it had, and `null` for each it inherited (Magento
/// then deletes the view's value: an empty value over an existing one is `registerDelete`d in
/// the save's store, `app/code/Magento/Eav/Model/ResourceModel/UpdateHandler.php` and
/// `AttributePersistor::processDeletes`). A product field such as `name` cannot be emptied
/// over REST (`app/code/Magento/Catalog/Model/Product.php::getCustomAttributesCodes` leaves it
/// out of `custom_attributes`, and an empty product field fails its required check): the view
/// gets the default value as its own instead, and the returned notes say so. The view is then
/// read back; what still differs is a note too.
pub async fn undo(
    ctx: &JobContext,
    store: &Store,
    connector: &MagentoConnector,
    revert: &Revert,
) -> Result<Vec<String>, JobError> {
    let db = &ctx.state.db;
    let read = |scope: &'static str| connector.read_product(scope, &revert.sku);
    let default = match read(DEFAULT_SCOPE).await {
        Ok(Some(product)) => product.content,
        Ok(None) => {
            return Ok(vec![format!(
                "SKU {:?} is gone from the store, nothing to put back in store view {}.",
                revert.sku, revert.view
            )]);
        }
        Err(e) => return Err(failure(db, store, e).await),
    };
    let mut notes = Vec::new();
    let mut writes = ContentWrites::default();
    for (field, before) in &revert.before {
        let value = match before {
            Some(value) => Some(value.clone()),
            None if is_interface_attribute(field) => {
                notes.push(format!(
                    "Store view {} keeps `{field}` as its own value, equal to the default: Magento's REST API cannot set a product field back to \"Use Default Value\"; tick it in the admin.",
                    revert.view
                ));
                if revert.scope == DEFAULT_SCOPE {
                    // The canary's value is the new default the push writes next: left as it is,
                    // the view shows what the default will.
                    continue;
                }
                default.fields.get(field).cloned()
            }
            None => None,
        };
        writes.fields.insert(field.clone(), value);
    }
    if writes.is_empty() {
        return Ok(notes);
    }
    let calls = connector
        .content_calls(&revert.view, &revert.sku, &writes)
        .map_err(|e| JobError::Fatal(e.to_string()))?;
    for call in &calls {
        if let Err(e) = connector.send(call).await {
            return Err(failure(db, store, e).await);
        }
    }
    let view = match connector.read_product(&revert.view, &revert.sku).await {
        Ok(Some(product)) => product.content,
        Ok(None) => return Ok(notes),
        Err(e) => return Err(failure(db, store, e).await),
    };
    let fields: Vec<String> = writes.fields.keys().cloned().collect();
    let after = verify::watched(&revert.view, &fields, &view, &default);
    for now in after {
        let before = revert
            .before
            .iter()
            .find(|(f, _)| *f == now.field)
            .and_then(|(_, b)| b.clone());
        let field = &now.field;
        if now.value != before {
            notes.push(format!(
                "Store view {} still shows its own `{field}` {:?} after the undo (it had {:?}).",
                revert.view, now.value, before
            ));
        }
    }
    ctx.log(
        "info",
        format!(
            "SKU {}: the canary's values were taken out of store view {} again",
            revert.sku, revert.view
        ),
    )
    .await;
    Ok(notes)
}

async fn failure(db: &sqlx::PgPool, store: &Store, e: ConnectorError) -> JobError {
    match e {
        e @ ConnectorError::PermissionMissing { .. } => {
            permissions::refused(db, store.id, "push", e).await
        }
        ConnectorError::NeedsReauth(m) | ConnectorError::Fatal(m) => JobError::Fatal(m),
        // Undoing is repeatable: the job tries again.
        e => JobError::Transient(format!(
            "putting the default store view back after a misplaced bulk operation: {e}"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::push::verify::ChangedElsewhere;

    #[test]
    fn an_unknown_store_checks_each_scope_and_a_known_one_each_push() {
        let proven = vec!["fr".to_string()];
        let default = Some("default");
        assert!(needed(None, &[], "fr", default));
        assert!(!needed(None, &proven, "fr", default));
        assert!(needed(None, &proven, "all", default));
        assert!(needed(None, &[], "default", default));
        assert!(needed(Some(true), &[], "all", default));
        assert!(!needed(Some(true), &proven, "all", default));
        // The default store view proves nothing: MySQL's queue saves there too.
        assert!(!needed(Some(true), &[], "default", default));
        let in_default = vec!["default".to_string()];
        assert!(needed(Some(true), &in_default, "fr", default));
    }

    #[test]
    fn a_canary_whose_save_changed_the_default_view_is_misplaced() {
        let verdict = Verdict {
            not_applied: vec![],
            changed_elsewhere: vec![
                ChangedElsewhere {
                    scope: "all".into(),
                    field: "meta_title".into(),
                    before: Some("Tee".into()),
                    after: Some("T-shirt".into()),
                },
                ChangedElsewhere {
                    scope: "default".into(),
                    field: "meta_keyword".into(),
                    before: None,
                    after: Some("mots".into()),
                },
            ],
        };
        assert_eq!(
            misplaced(&verdict, "CD-1", "fr", "default"),
            Some(Revert {
                sku: "CD-1".into(),
                scope: "fr".into(),
                view: "default".into(),
                before: vec![("meta_keyword".into(), None)],
            })
        );
        assert_eq!(misplaced(&verdict, "CD-1", "default", "default"), None);
        assert_eq!(
            misplaced(&Verdict::default(), "CD-1", "fr", "default"),
            None
        );
    }
}
