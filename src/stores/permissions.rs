//! API permissions a store's integration lacks.
//!
//! Magento refuses a call whose route needs an ACL resource the integration was not granted
//! with a 401 like a rejected token, but its own message ("The consumer isn't authorized to
//! access %resources.", `app/code/Magento/Webapi/Controller/Rest/RequestValidator.php`). The
//! store is not disconnected by it: the step fails naming the resource, and the store keeps
//! the refusal (`missing_permissions`) until a job of the same step succeeds again or Magento
//! authorises the integration anew.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::{PgConnection, PgPool};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::audit_log::{self, Entry};
use crate::connector::ConnectorError;
use crate::jobs::context::JobError;

/// A resource Magento refused to the store's integration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct MissingPermission {
    /// Magento's ACL resource(s), e.g. `Magento_Catalog::products`: what to grant in the
    /// integration's "API" tab.
    pub resource: String,
    /// The job kind that met the refusal (`sync`, `push`…).
    pub step: String,
    pub detail: String,
    pub since: DateTime<Utc>,
}

/// Records a [`ConnectorError::PermissionMissing`] met by a job of `step` on the store (an
/// audit entry `store.permission_missing` the first time a resource is refused) and returns
/// the job's failure. The store's status is left alone.
pub async fn refused(db: &PgPool, store_id: Uuid, step: &str, error: ConnectorError) -> JobError {
    if let ConnectorError::PermissionMissing { resource, .. } = &error
        && let Err(e) = record(db, store_id, step, resource, &error.to_string()).await
    {
        tracing::error!(%store_id, error = %e, "could not record a missing API permission");
    }
    JobError::Fatal(error.to_string())
}

async fn record(
    db: &PgPool,
    store_id: Uuid,
    step: &str,
    resource: &str,
    detail: &str,
) -> Result<(), sqlx::Error> {
    let mut tx = db.begin().await?;
    let current: Option<(Uuid, String, sqlx::types::Json<Vec<MissingPermission>>)> =
        sqlx::query_as(
            "SELECT workspace_id, name, missing_permissions FROM stores WHERE id = $1 FOR UPDATE",
        )
        .bind(store_id)
        .fetch_optional(&mut *tx)
        .await?;
    let Some((workspace_id, name, sqlx::types::Json(mut entries))) = current else {
        return Ok(());
    };
    let known = entries.iter().any(|e| e.resource == resource);
    entries.retain(|e| e.resource != resource);
    entries.push(MissingPermission {
        resource: resource.to_string(),
        step: step.to_string(),
        detail: detail.to_string(),
        since: Utc::now(),
    });
    sqlx::query("UPDATE stores SET missing_permissions = $2 WHERE id = $1")
        .bind(store_id)
        .bind(sqlx::types::Json(&entries))
        .execute(&mut *tx)
        .await?;
    if !known {
        let mut entry = Entry::new("store.permission_missing").target("store", store_id);
        entry.workspace_id = Some(workspace_id);
        audit_log::record(
            &mut *tx,
            entry.details(serde_json::json!({"resource": resource, "step": step})),
        )
        .await?;
        crate::notify::events::record(
            &mut tx,
            crate::notify::NewEvent {
                kind: crate::notify::EventKind::StorePermissionMissing,
                workspace_id,
                store_id: Some(store_id),
                job_id: None,
                summary: format!("Magento refused {resource} to {name}'s integration"),
                data: serde_json::json!({"store_name": name, "resource": resource, "step": step,
                    "detail": detail}),
            },
        )
        .await?;
    }
    tx.commit().await
}

/// A job of `kind` succeeded for its store: the permissions its step lacked work again.
pub async fn step_succeeded(conn: &mut PgConnection, job_id: Uuid) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE stores s SET missing_permissions = COALESCE(
            (SELECT jsonb_agg(e) FROM jsonb_array_elements(s.missing_permissions) e
             WHERE e->>'step' <> j.kind), '[]'::jsonb)
         FROM job_runs j
         WHERE j.id = $1 AND s.id = j.store_id AND s.missing_permissions <> '[]'::jsonb",
    )
    .bind(job_id)
    .execute(conn)
    .await?;
    Ok(())
}
