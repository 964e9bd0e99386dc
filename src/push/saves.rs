//! A bulk push's planned product saves, kept beside the job instead of in its checkpoint
//! (`push_bulk_saves`): each body and the check that judges it are written once, in the
//! transaction whose checkpoint first names the save, and read back by proposal when the save
//! is submitted and when Magento has run it. The checkpoint, saved after every step, then
//! holds only ids and rounds, and stays small however many saves wait for Magento's consumer.

use std::collections::HashMap;

use serde_json::Value;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use super::Check;

/// One planned save.
pub(super) struct Planned {
    pub proposal: Uuid,
    pub body: Value,
    pub check: Check,
}

/// Writes `saves` for `job_id` (a save planned again replaces the earlier one).
pub(super) async fn stash(
    tx: &mut PgConnection,
    job_id: Uuid,
    saves: &[Planned],
) -> Result<(), sqlx::Error> {
    if saves.is_empty() {
        return Ok(());
    }
    let ids: Vec<Uuid> = saves.iter().map(|s| s.proposal).collect();
    let bodies: Vec<Value> = saves.iter().map(|s| s.body.clone()).collect();
    let checks: Vec<Value> = saves
        .iter()
        .map(|s| serde_json::to_value(&s.check).unwrap_or(Value::Null))
        .collect();
    sqlx::query(
        "INSERT INTO push_bulk_saves (job_id, proposal_id, body, judged_by)
         SELECT $1, * FROM UNNEST($2::uuid[], $3::jsonb[], $4::jsonb[])
         ON CONFLICT (job_id, proposal_id)
             DO UPDATE SET body = EXCLUDED.body, judged_by = EXCLUDED.judged_by",
    )
    .bind(job_id)
    .bind(&ids)
    .bind(&bodies)
    .bind(&checks)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// The bodies of `proposals`' saves.
pub(super) async fn bodies(
    db: &PgPool,
    job_id: Uuid,
    proposals: &[Uuid],
) -> Result<HashMap<Uuid, Value>, sqlx::Error> {
    column(db, job_id, proposals, "body").await
}

/// How `proposals`' saves are judged. A check this version cannot read is left out, so the
/// caller fails that save instead of judging it by nothing.
pub(super) async fn checks(
    db: &PgPool,
    job_id: Uuid,
    proposals: &[Uuid],
) -> Result<HashMap<Uuid, Check>, sqlx::Error> {
    Ok(column(db, job_id, proposals, "judged_by")
        .await?
        .into_iter()
        .filter_map(|(id, check)| Some((id, serde_json::from_value(check).ok()?)))
        .collect())
}

/// One column of `proposals`' saves, by proposal.
async fn column(
    db: &PgPool,
    job_id: Uuid,
    proposals: &[Uuid],
    column: &'static str,
) -> Result<HashMap<Uuid, Value>, sqlx::Error> {
    let rows: Vec<(Uuid, Value)> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT proposal_id, {column} FROM push_bulk_saves
         WHERE job_id = $1 AND proposal_id = ANY($2)"
    )))
    .bind(job_id)
    .bind(proposals)
    .fetch_all(db)
    .await?;
    Ok(rows.into_iter().collect())
}

/// Forgets the saves of `proposals`, settled for good.
pub(super) async fn forget(
    tx: &mut PgConnection,
    job_id: Uuid,
    proposals: &[Uuid],
) -> Result<(), sqlx::Error> {
    if proposals.is_empty() {
        return Ok(());
    }
    sqlx::query("DELETE FROM push_bulk_saves WHERE job_id = $1 AND proposal_id = ANY($2)")
        .bind(job_id)
        .bind(proposals)
        .execute(&mut *tx)
        .await?;
    Ok(())
}

/// Forgets every save of a job that will not resume.
pub(super) async fn forget_job(db: &PgPool, job_id: Uuid) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM push_bulk_saves WHERE job_id = $1")
        .bind(job_id)
        .execute(db)
        .await?;
    Ok(())
}
