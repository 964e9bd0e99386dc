//! Jobs: the user-visible record of background work (`job_runs`) on top of apalis' queue.
//!
//! Enqueueing writes the `job_runs` row and the apalis task in one transaction, so a job is
//! never visible without being queued, nor queued without a record. Workers in any number of
//! processes take tasks from the shared PostgreSQL queue ([`runner`]); a job's handler gets a
//! [`JobContext`] for progress, counters, log lines, checkpoints and cancellation.

pub mod context;
pub mod runner;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::{PgConnection, PgPool};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::auth::Resource;
use crate::error::Error;
use crate::pagination::{Page, PageParams};

pub use context::JobContext;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema, sqlx::Type)]
#[serde(rename_all = "snake_case")]
#[sqlx(type_name = "text", rename_all = "snake_case")]
pub enum JobKind {
    /// Pull products from a store into versions.
    Sync,
    /// Evaluate the audit rules over a store's live content.
    Audit,
    /// Write approved proposals back to the store.
    Push,
    /// Generate content proposals for weak fields.
    Enrich,
    /// Mirror product images into the object store.
    Media,
    /// Write an import file.
    Export,
}

impl JobKind {
    pub const ALL: &'static [JobKind] = &[
        JobKind::Sync,
        JobKind::Audit,
        JobKind::Push,
        JobKind::Enrich,
        JobKind::Media,
        JobKind::Export,
    ];

    /// The apalis queue this kind runs on.
    pub fn queue(self) -> &'static str {
        match self {
            JobKind::Sync => "catalogd.sync",
            JobKind::Audit => "catalogd.audit",
            JobKind::Push => "catalogd.push",
            JobKind::Enrich => "catalogd.enrich",
            JobKind::Media => "catalogd.media",
            JobKind::Export => "catalogd.export",
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            JobKind::Sync => "sync",
            JobKind::Audit => "audit",
            JobKind::Push => "push",
            JobKind::Enrich => "enrich",
            JobKind::Media => "media",
            JobKind::Export => "export",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema, sqlx::Type)]
#[serde(rename_all = "snake_case")]
#[sqlx(type_name = "text", rename_all = "snake_case")]
pub enum JobStatus {
    Queued,
    Running,
    Succeeded,
    Failed,
    Cancelled,
}

impl JobStatus {
    pub fn is_finished(self) -> bool {
        matches!(
            self,
            JobStatus::Succeeded | JobStatus::Failed | JobStatus::Cancelled
        )
    }
}

/// What apalis carries: only the id; everything else lives in `job_runs`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct JobTask {
    pub job_id: Uuid,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct JobRun {
    pub id: Uuid,
    pub workspace_id: Uuid,
    pub store_id: Option<Uuid>,
    pub kind: JobKind,
    pub params: serde_json::Value,
    pub status: JobStatus,
    pub progress_done: i64,
    pub progress_total: Option<i64>,
    pub counters: serde_json::Value,
    pub checkpoint: Option<serde_json::Value>,
    pub error: Option<String>,
    pub cancel_requested: bool,
    pub attempts: i32,
    pub created_by: Option<Uuid>,
    pub created_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
}

const JOB_COLUMNS: &str = "id, workspace_id, store_id, kind, params, status, progress_done, progress_total,
    counters, checkpoint, error, cancel_requested, attempts, created_by, created_at, started_at, finished_at";

pub struct NewJob {
    pub workspace_id: Uuid,
    pub store_id: Option<Uuid>,
    pub kind: JobKind,
    pub params: serde_json::Value,
    pub created_by: Option<Uuid>,
    pub created_by_api_key: Option<Uuid>,
    pub schedule_tick: Option<DateTime<Utc>>,
}

/// Records the job and queues it, in the caller's transaction.
pub async fn enqueue(tx: &mut PgConnection, job: NewJob) -> Result<Uuid, sqlx::Error> {
    enqueue_as(tx, Uuid::now_v7(), job).await
}

/// [`enqueue`] with an id chosen beforehand (for records that point at their job).
pub async fn enqueue_as(tx: &mut PgConnection, id: Uuid, job: NewJob) -> Result<Uuid, sqlx::Error> {
    sqlx::query(
        "INSERT INTO job_runs (id, workspace_id, store_id, kind, params, created_by, created_by_api_key, schedule_tick)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(id)
    .bind(job.workspace_id)
    .bind(job.store_id)
    .bind(job.kind)
    .bind(&job.params)
    .bind(job.created_by)
    .bind(job.created_by_api_key)
    .bind(job.schedule_tick)
    .execute(&mut *tx)
    .await?;
    push_task(tx, job.kind, id).await?;
    Ok(id)
}

/// Puts a task for `job_id` on its kind's queue (a new job, or one resumed after a stop).
pub async fn push_task(
    tx: &mut PgConnection,
    kind: JobKind,
    job_id: Uuid,
) -> Result<(), sqlx::Error> {
    let args = serde_json::to_vec(&JobTask { job_id }).expect("task args serialise");
    let task = apalis::prelude::TaskBuilder::new(args).build();
    apalis_postgres::queries::push_tasks(&mut *tx, kind.queue(), vec![task])
        .await
        .map_err(|e| match e {
            apalis_postgres::Error::Database(e) => e,
            other => sqlx::Error::Protocol(other.to_string()),
        })
}

pub async fn get(db: &PgPool, id: Uuid) -> Result<Option<JobRun>, sqlx::Error> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {JOB_COLUMNS} FROM job_runs WHERE id = $1"
    )))
    .bind(id)
    .fetch_optional(db)
    .await
}

pub async fn get_in(db: &PgPool, workspace_id: Uuid, id: Uuid) -> Result<JobRun, Error> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {JOB_COLUMNS} FROM job_runs WHERE id = $1 AND workspace_id = $2"
    )))
    .bind(id)
    .bind(workspace_id)
    .fetch_optional(db)
    .await?
    .ok_or(Error::NotFound("job"))
}

#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct JobFilter {
    pub kind: Option<JobKind>,
    pub status: Option<JobStatus>,
    pub store_id: Option<Uuid>,
}

/// Newest first.
pub async fn list(
    db: &PgPool,
    workspace_id: Uuid,
    filter: &JobFilter,
    page: &PageParams,
) -> Result<Page<JobRun>, Error> {
    let after: Option<Uuid> = page.after()?;
    let limit = page.limit();
    let rows: Vec<JobRun> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {JOB_COLUMNS} FROM job_runs
         WHERE workspace_id = $1 AND ($2::uuid IS NULL OR id < $2)
           AND ($3::text IS NULL OR kind = $3) AND ($4::text IS NULL OR status = $4)
           AND ($5::uuid IS NULL OR store_id = $5)
         ORDER BY id DESC LIMIT $6"
    )))
    .bind(workspace_id)
    .bind(after)
    .bind(filter.kind)
    .bind(filter.status)
    .bind(filter.store_id)
    .bind(limit + 1)
    .fetch_all(db)
    .await?;
    Ok(Page::from_rows(rows, limit, |j| j.id))
}

pub async fn log_lines(db: &PgPool, job_id: Uuid, limit: i64) -> Result<Vec<LogLine>, sqlx::Error> {
    let mut lines: Vec<LogLine> = sqlx::query_as(
        "SELECT level, message, created_at AS at FROM job_logs WHERE job_id = $1 ORDER BY id DESC LIMIT $2",
    )
    .bind(job_id)
    .bind(limit)
    .fetch_all(db)
    .await?;
    lines.reverse();
    Ok(lines)
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, sqlx::FromRow)]
pub struct LogLine {
    pub level: String,
    pub message: String,
    pub at: DateTime<Utc>,
}

/// Asks a job to stop. A queued job is cancelled at once; a running one stops at its next
/// checkpoint. Returns the job as it is now.
pub async fn request_cancel(db: &PgPool, workspace_id: Uuid, id: Uuid) -> Result<JobRun, Error> {
    let updated: Option<JobRun> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "UPDATE job_runs SET cancel_requested = true,
            status = CASE WHEN status = 'queued' THEN 'cancelled' ELSE status END,
            finished_at = CASE WHEN status = 'queued' THEN now() ELSE finished_at END
         WHERE id = $1 AND workspace_id = $2
         RETURNING {JOB_COLUMNS}"
    )))
    .bind(id)
    .bind(workspace_id)
    .fetch_optional(db)
    .await?;
    updated.ok_or(Error::NotFound("job"))
}

/// A store's unfinished job of `kind`, if any: a second sync of the same store waits for none
/// and is refused instead.
pub async fn active_for_store(
    db: &mut PgConnection,
    store_id: Uuid,
    kind: JobKind,
) -> Result<Option<Uuid>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT id FROM job_runs WHERE store_id = $1 AND kind = $2 AND status IN ('queued', 'running') LIMIT 1",
    )
    .bind(store_id)
    .bind(kind)
    .fetch_optional(&mut *db)
    .await
}

impl Resource for JobRun {
    const NAME: &'static str = "job";
    const PATH_PARAM: &'static str = "id";
    async fn workspace_of(db: &PgPool, id: Uuid) -> Result<Option<Uuid>, sqlx::Error> {
        sqlx::query_scalar("SELECT workspace_id FROM job_runs WHERE id = $1")
            .bind(id)
            .fetch_optional(db)
            .await
    }
}

/// The API's view of a job.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct JobResponse {
    pub id: Uuid,
    pub kind: JobKind,
    pub status: JobStatus,
    pub store_id: Option<Uuid>,
    pub params: serde_json::Value,
    pub progress: Progress,
    pub counters: serde_json::Value,
    pub error: Option<String>,
    pub log: Vec<LogLine>,
    pub cancel_requested: bool,
    pub attempts: i32,
    pub created_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Progress {
    pub done: i64,
    pub total: Option<i64>,
}

impl JobResponse {
    pub fn new(job: JobRun, log: Vec<LogLine>) -> JobResponse {
        JobResponse {
            id: job.id,
            kind: job.kind,
            status: job.status,
            store_id: job.store_id,
            params: job.params,
            progress: Progress {
                done: job.progress_done,
                total: job.progress_total,
            },
            counters: job.counters,
            error: job.error,
            log,
            cancel_requested: job.cancel_requested,
            attempts: job.attempts,
            created_at: job.created_at,
            started_at: job.started_at,
            finished_at: job.finished_at,
        }
    }
}
