//! Schedules: a cron expression, a time zone and a pipeline of steps per store.
//!
//! Every `serve` process runs [`run_scheduler`]; a due schedule is taken with
//! `FOR UPDATE SKIP LOCKED`, its next run computed and its job queued in one transaction, so
//! each due run starts once across processes. After downtime a schedule fires once and then
//! continues from the next future time, rather than once per missed run.

use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};
use sqlx::PgPool;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::error::Error;
use crate::jobs::{self, JobKind, NewJob};
use crate::state::AppState;
use crate::sync::{SyncMode, SyncParams};

/// Steps a pipeline can run, in the order given.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Step {
    /// An incremental sync (a full one the first time).
    Sync,
    /// A full sync, which also notices removed products.
    FullSync,
    /// An audit of every product with the workspace's audit settings.
    Audit,
    /// Proposals from the default provider for the fields the latest audit flagged.
    Enrich,
    /// Mirror product images (new or changed ones) into the object store.
    Media,
    /// Push every proposal approved by then.
    Push,
    /// Write a Magento import CSV of what the store shows (every store view).
    Export,
}

impl Step {
    /// Every step, in the order a pipeline usually runs them.
    pub const ALL: [Step; 7] = [
        Step::Sync,
        Step::FullSync,
        Step::Media,
        Step::Audit,
        Step::Enrich,
        Step::Push,
        Step::Export,
    ];

    /// The step's name in the API.
    pub fn as_str(self) -> &'static str {
        match self {
            Step::Sync => "sync",
            Step::FullSync => "full_sync",
            Step::Media => "media",
            Step::Audit => "audit",
            Step::Enrich => "enrich",
            Step::Push => "push",
            Step::Export => "export",
        }
    }

    /// What the step does, for people.
    pub fn label(self) -> &'static str {
        match self {
            Step::Sync => "Sync changed products",
            Step::FullSync => "Full sync",
            Step::Media => "Mirror pictures",
            Step::Audit => "Audit",
            Step::Enrich => "Enrich flagged fields with AI",
            Step::Push => "Push approved changes",
            Step::Export => "Export a Magento import CSV",
        }
    }
}

/// A cron expression with its time zone, parsed.
#[derive(Debug, Clone)]
pub struct CronSpec {
    schedule: cron::Schedule,
    tz: Tz,
}

impl CronSpec {
    /// Accepts the usual five fields (`0 2 * * *`, day of week as in Unix cron: 0 or 7 is
    /// Sunday, 1 Monday) or six with seconds first (the `cron` crate's own syntax, where 1 is
    /// Sunday).
    pub fn parse(expression: &str, timezone: &str) -> Result<CronSpec, Error> {
        let fields: Vec<&str> = expression.split_whitespace().collect();
        let full = match fields.len() {
            5 => format!(
                "0 {} {} {} {} {}",
                fields[0],
                fields[1],
                fields[2],
                fields[3],
                unix_days_of_week(fields[4])?
            ),
            6 => expression.trim().to_string(),
            _ => {
                return Err(Error::invalid(
                    "cron",
                    "cron must have five fields (minute hour day-of-month month day-of-week)",
                ));
            }
        };
        let schedule = cron::Schedule::from_str(&full)
            .map_err(|e| Error::invalid("cron", format!("cron expression is not valid: {e}")))?;
        let tz = Tz::from_str(timezone).map_err(|_| {
            Error::invalid(
                "timezone",
                format!("unknown time zone {timezone:?} (use an IANA name such as Europe/Berlin)"),
            )
        })?;
        if schedule.upcoming(tz).next().is_none() {
            return Err(Error::invalid("cron", "cron expression never fires"));
        }
        Ok(CronSpec { schedule, tz })
    }

    /// The first run strictly after `after`.
    pub fn next_after(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.schedule
            .after(&after.with_timezone(&self.tz))
            .next()
            .map(|t| t.with_timezone(&Utc))
    }

    pub fn upcoming(&self, after: DateTime<Utc>, n: usize) -> Vec<DateTime<Utc>> {
        self.schedule
            .after(&after.with_timezone(&self.tz))
            .take(n)
            .map(|t| t.with_timezone(&Utc))
            .collect()
    }
}

/// A Unix day-of-week field (numbers 0–7 with 0 and 7 for Sunday, or names; lists, ranges
/// and steps) as the `cron` crate's names, which leave no doubt about where the week starts.
fn unix_days_of_week(field: &str) -> Result<String, Error> {
    const NAMES: [&str; 7] = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"];
    if field == "*" || field == "?" {
        return Ok(field.to_string());
    }
    let invalid = || {
        Error::invalid(
            "cron",
            format!("day of week {field:?} is not valid (0-7 or SUN-SAT, lists, ranges, steps)"),
        )
    };
    // A day as Unix numbers it: 0..=7, names mapped to 0..=6.
    let day = |text: &str| -> Option<u32> {
        match text.parse::<u32>() {
            Ok(n) => (n <= 7).then_some(n),
            Err(_) => NAMES
                .iter()
                .position(|d| d.eq_ignore_ascii_case(text))
                .map(|p| p as u32),
        }
    };
    let mut days = std::collections::BTreeSet::new();
    for token in field.split(',') {
        let (range, step) = match token.split_once('/') {
            Some((range, step)) => (
                range,
                step.parse::<u32>()
                    .ok()
                    .filter(|s| *s > 0)
                    .ok_or_else(invalid)?,
            ),
            None => (token, 1),
        };
        let (start, end) = if range == "*" {
            (0, 6)
        } else if let Some((a, b)) = range.split_once('-') {
            (day(a).ok_or_else(invalid)?, day(b).ok_or_else(invalid)?)
        } else {
            let start = day(range).ok_or_else(invalid)?;
            (start, if token.contains('/') { 6 } else { start })
        };
        if start > end {
            return Err(invalid());
        }
        days.extend((start..=end).step_by(step as usize).map(|d| d % 7));
    }
    Ok(days
        .into_iter()
        .map(|d| NAMES[d as usize])
        .collect::<Vec<_>>()
        .join(","))
}

pub fn parse_pipeline(raw: &[String]) -> Result<Vec<Step>, Error> {
    if raw.is_empty() {
        return Err(Error::invalid(
            "pipeline",
            "pipeline needs at least one step",
        ));
    }
    raw.iter()
        .map(|name| {
            serde_json::from_value::<Step>(serde_json::Value::String(name.clone())).map_err(|_| {
                Error::invalid(
                    "pipeline",
                    format!(
                        "unknown step {name:?}; available steps: {}",
                        Step::ALL.map(Step::as_str).join(", ")
                    ),
                )
            })
        })
        .collect()
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Schedule {
    pub store_id: Uuid,
    pub workspace_id: Uuid,
    pub cron: String,
    pub timezone: String,
    pub pipeline: sqlx::types::Json<Vec<Step>>,
    pub enabled: bool,
    pub next_run_at: DateTime<Utc>,
    pub last_run_at: Option<DateTime<Utc>>,
    pub last_job_id: Option<Uuid>,
}

const COLUMNS: &str = "store_id, workspace_id, cron, timezone, pipeline, enabled, next_run_at, last_run_at, last_job_id";

pub async fn get(db: &PgPool, store_id: Uuid) -> Result<Option<Schedule>, sqlx::Error> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM schedules WHERE store_id = $1"
    )))
    .bind(store_id)
    .fetch_optional(db)
    .await
}

pub struct ScheduleInput<'a> {
    pub store_id: Uuid,
    pub workspace_id: Uuid,
    pub cron: &'a str,
    pub timezone: &'a str,
    /// `None` keeps the stored pipeline (`["sync"]` for a new schedule).
    pub pipeline: Option<Vec<Step>>,
    /// `None` keeps the stored flag, so a paused schedule stays paused (a new one is enabled).
    pub enabled: Option<bool>,
    pub next_run_at: DateTime<Utc>,
    pub created_by: Option<Uuid>,
}

pub async fn upsert(
    tx: &mut sqlx::PgConnection,
    input: ScheduleInput<'_>,
) -> Result<Schedule, sqlx::Error> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "INSERT INTO schedules (store_id, workspace_id, cron, timezone, pipeline, enabled, next_run_at, created_by)
         VALUES ($1, $2, $3, $4, COALESCE($5, $9), COALESCE($6, true), $7, $8)
         ON CONFLICT (store_id) DO UPDATE SET cron = EXCLUDED.cron, timezone = EXCLUDED.timezone,
            pipeline = COALESCE($5, schedules.pipeline), enabled = COALESCE($6, schedules.enabled),
            next_run_at = EXCLUDED.next_run_at
         RETURNING {COLUMNS}"
    )))
    .bind(input.store_id)
    .bind(input.workspace_id)
    .bind(input.cron)
    .bind(input.timezone)
    .bind(input.pipeline.as_ref().map(sqlx::types::Json))
    .bind(input.enabled)
    .bind(input.next_run_at)
    .bind(input.created_by)
    .bind(sqlx::types::Json([Step::Sync]))
    .fetch_one(&mut *tx)
    .await
}

pub async fn delete(tx: &mut sqlx::PgConnection, store_id: Uuid) -> Result<bool, sqlx::Error> {
    Ok(sqlx::query("DELETE FROM schedules WHERE store_id = $1")
        .bind(store_id)
        .execute(&mut *tx)
        .await?
        .rows_affected()
        > 0)
}

/// Looks for due schedules every `jobs.scheduler_tick_secs` until `stop` resolves.
pub async fn run_scheduler(
    state: AppState,
    stop: impl std::future::Future<Output = ()> + Send + 'static,
) {
    let every = Duration::from_secs(state.settings.jobs.scheduler_tick_secs.max(1));
    tokio::pin!(stop);
    loop {
        match fire_due(&state).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(started = n, "scheduled runs started"),
            Err(e) => tracing::warn!(error = %e, "scheduler tick failed"),
        }
        if let Err(e) = crate::retention::run_if_due(&state).await {
            tracing::warn!(error = %e, "retention sweep failed");
        }
        if let Err(e) = crate::notify::digest::run_if_due(&state).await {
            tracing::warn!(error = %e, "daily digest failed");
        }
        if let Err(e) = crate::notify::workers::requeue_stalled(&state).await {
            tracing::warn!(error = %e, "re-queueing notification work failed");
        }
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = &mut stop => return,
        }
    }
}

/// Starts every due schedule once; returns how many started a job.
pub async fn fire_due(state: &AppState) -> Result<u64, sqlx::Error> {
    let mut started = 0;
    loop {
        let mut tx = state.db.begin().await?;
        let due: Option<Schedule> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM schedules WHERE enabled AND next_run_at <= now()
             ORDER BY next_run_at LIMIT 1 FOR UPDATE SKIP LOCKED"
        )))
        .fetch_optional(&mut *tx)
        .await?;
        let Some(schedule) = due else {
            return Ok(started);
        };
        let now = Utc::now();
        let next = CronSpec::parse(&schedule.cron, &schedule.timezone)
            .ok()
            .and_then(|spec| spec.next_after(now));
        let tick = schedule.next_run_at;
        let job = start_pipeline(&mut tx, &schedule, tick).await?;
        sqlx::query(
            "UPDATE schedules SET next_run_at = COALESCE($2, next_run_at), enabled = enabled AND $2 IS NOT NULL,
                last_run_at = now(), last_job_id = COALESCE($3, last_job_id)
             WHERE store_id = $1",
        )
        .bind(schedule.store_id)
        .bind(next)
        .bind(job)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        if job.is_some() {
            started += 1;
        }
    }
}

/// Queues the pipeline's first step for the store, unless the store cannot run it now.
async fn start_pipeline(
    tx: &mut sqlx::PgConnection,
    schedule: &Schedule,
    tick: DateTime<Utc>,
) -> Result<Option<Uuid>, sqlx::Error> {
    let Some((&step, rest)) = schedule.pipeline.0.split_first() else {
        return Ok(None);
    };
    let status: Option<String> =
        sqlx::query_scalar("SELECT status FROM stores WHERE id = $1 FOR UPDATE")
            .bind(schedule.store_id)
            .fetch_optional(&mut *tx)
            .await?;
    if status.as_deref() != Some("active") {
        tracing::warn!(store_id = %schedule.store_id, "scheduled run skipped: the store is not connected");
        return Ok(None);
    }
    // A pipeline still running from the last tick is not started again beside itself.
    for kind in JobKind::ALL {
        if let Some(running) = jobs::active_for_store(tx, schedule.store_id, *kind).await? {
            tracing::info!(store_id = %schedule.store_id, %running, kind = kind.as_str(),
                "scheduled run skipped: a job of the store is still running");
            return Ok(None);
        }
    }
    let id = enqueue_step(
        tx,
        StepJob {
            workspace_id: schedule.workspace_id,
            store_id: schedule.store_id,
            step,
            rest: rest.to_vec(),
            created_by: None,
            schedule_tick: Some(tick),
            pipeline_id: None,
        },
    )
    .await?;
    Ok(Some(id))
}

/// One pipeline step to queue, with the steps that follow it.
pub struct StepJob {
    pub workspace_id: Uuid,
    pub store_id: Uuid,
    pub step: Step,
    pub rest: Vec<Step>,
    pub created_by: Option<Uuid>,
    pub schedule_tick: Option<DateTime<Utc>>,
    /// The run this step belongs to (the id of its first job); `None` for a first step.
    pub pipeline_id: Option<Uuid>,
}

/// The steps that follow a job, carried in its parameters so the pipeline survives restarts.
#[derive(Debug, Default, Deserialize)]
struct PipelineRest {
    #[serde(default)]
    pipeline: Vec<Step>,
}

/// Queues the job of one step; its parameters carry the rest of the pipeline.
pub async fn enqueue_step(tx: &mut sqlx::PgConnection, job: StepJob) -> Result<Uuid, sqlx::Error> {
    let job_id = Uuid::now_v7();
    let sync = |mode| {
        serde_json::to_value(SyncParams {
            mode,
            full_when_due: true,
        })
        .unwrap_or_default()
    };
    let (kind, mut params) = match job.step {
        Step::Sync => (JobKind::Sync, sync(SyncMode::Incremental)),
        Step::FullSync => (JobKind::Sync, sync(SyncMode::Full)),
        Step::Media => (JobKind::Media, serde_json::json!({})),
        Step::Export => {
            let export_id = Uuid::now_v7();
            sqlx::query(
                "INSERT INTO exports (id, workspace_id, store_id, job_id, format, source, store_views)
                 SELECT $1, workspace_id, id, $2, 'magento_csv', 'live',
                        ARRAY['all'] || ARRAY(SELECT v ->> 'code' FROM jsonb_array_elements(store_views) v)
                 FROM stores WHERE id = $3",
            )
            .bind(export_id)
            .bind(job_id)
            .bind(job.store_id)
            .execute(&mut *tx)
            .await?;
            (
                JobKind::Export,
                serde_json::to_value(crate::exports::ExportParams { export_id })
                    .unwrap_or_default(),
            )
        }
        Step::Push => {
            // What reviewers approved before the step started; later approvals wait for the
            // next run.
            let approved: Vec<Uuid> = sqlx::query_scalar(
                "SELECT v.id FROM product_versions v JOIN products p ON p.id = v.product_id
                 WHERE p.store_id = $1 AND v.state = 'approved'
                 ORDER BY v.store_view <> 'all', v.store_view, v.product_id, v.id",
            )
            .bind(job.store_id)
            .fetch_all(&mut *tx)
            .await?;
            (
                JobKind::Push,
                serde_json::to_value(crate::push::PushParams {
                    proposals: approved,
                })
                .unwrap_or_default(),
            )
        }
        Step::Audit => {
            let run_id = crate::audits::runs::create(
                tx,
                job.workspace_id,
                job.store_id,
                job_id,
                &crate::audits::AuditFilter::default(),
            )
            .await?;
            (JobKind::Audit, crate::audits::params(run_id))
        }
        Step::Enrich => {
            let (last_audit, views): (
                Option<Uuid>,
                sqlx::types::Json<Vec<crate::stores::StoreView>>,
            ) = sqlx::query_as("SELECT last_audit_run, store_views FROM stores WHERE id = $1")
                .bind(job.store_id)
                .fetch_one(&mut *tx)
                .await?;
            let params = crate::enrich::EnrichParams {
                finding_run: last_audit,
                only_flagged: true,
                fields: crate::enrich::SCHEDULED_FIELDS
                    .iter()
                    .map(|f| f.to_string())
                    .collect(),
                store_views: std::iter::once(crate::catalog::content::DEFAULT_SCOPE.to_string())
                    .chain(views.0.iter().map(|v| v.code.clone()))
                    .collect(),
                // Resolved to `[ai] default_provider` when the step runs.
                provider: String::new(),
                scheduled: true,
                ..Default::default()
            };
            (
                JobKind::Enrich,
                serde_json::to_value(params).unwrap_or_default(),
            )
        }
    };
    if let Some(object) = params.as_object_mut() {
        object.insert("pipeline".into(), serde_json::json!(job.rest));
    }
    jobs::enqueue_as(
        tx,
        job_id,
        NewJob {
            workspace_id: job.workspace_id,
            store_id: Some(job.store_id),
            kind,
            params,
            created_by: job.created_by,
            created_by_api_key: None,
            schedule_tick: job.schedule_tick,
        },
    )
    .await?;
    // A run's steps share the first one's id, so the run is summed up as one when it ends.
    sqlx::query("UPDATE job_runs SET pipeline_id = $2 WHERE id = $1")
        .bind(job_id)
        .bind(job.pipeline_id.unwrap_or(job_id))
        .execute(&mut *tx)
        .await?;
    Ok(job_id)
}

/// After a job succeeds, queues the next step of its pipeline (in the transaction that records
/// the success, so a step is never lost nor queued twice).
pub async fn continue_pipeline(
    tx: &mut sqlx::PgConnection,
    job_id: Uuid,
) -> Result<Option<Uuid>, sqlx::Error> {
    #[derive(sqlx::FromRow)]
    struct Finished {
        workspace_id: Uuid,
        store_id: Option<Uuid>,
        params: serde_json::Value,
        created_by: Option<Uuid>,
        pipeline_id: Option<Uuid>,
    }
    let row: Option<Finished> = sqlx::query_as(
        "SELECT workspace_id, store_id, params, created_by, pipeline_id FROM job_runs WHERE id = $1",
    )
    .bind(job_id)
    .fetch_optional(&mut *tx)
    .await?;
    let Some(Finished {
        workspace_id,
        store_id: Some(store_id),
        params,
        created_by,
        pipeline_id,
    }) = row
    else {
        return Ok(None);
    };
    let rest = serde_json::from_value::<PipelineRest>(params)
        .unwrap_or_default()
        .pipeline;
    let Some((&step, rest)) = rest.split_first() else {
        return Ok(None);
    };
    let status: Option<String> = sqlx::query_scalar("SELECT status FROM stores WHERE id = $1")
        .bind(store_id)
        .fetch_optional(&mut *tx)
        .await?;
    if status.as_deref() != Some("active") {
        tracing::warn!(%store_id, "pipeline stopped: the store is not connected");
        return Ok(None);
    }
    let next = enqueue_step(
        tx,
        StepJob {
            workspace_id,
            store_id,
            step,
            rest: rest.to_vec(),
            created_by,
            schedule_tick: None,
            pipeline_id: Some(pipeline_id.unwrap_or(job_id)),
        },
    )
    .await?;
    tracing::info!(%store_id, previous = %job_id, next = %next, "pipeline continues");
    Ok(Some(next))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn days_of_week_count_as_in_unix_cron() {
        for (unix, names) in [
            ("1", "MON"),
            ("0", "SUN"),
            ("7", "SUN"),
            ("1-5", "MON,TUE,WED,THU,FRI"),
            ("5-7", "SUN,FRI,SAT"),
            ("*/2", "SUN,TUE,THU,SAT"),
            ("mon,wed", "MON,WED"),
            ("1/3", "MON,THU"),
            ("*", "*"),
        ] {
            assert_eq!(unix_days_of_week(unix).unwrap(), names, "{unix}");
        }
        for bad in ["8", "5-1", "x", "1/0", ""] {
            assert!(unix_days_of_week(bad).is_err(), "{bad}");
        }
        // 2026-11-29 is a Sunday: `* * 1` next runs on Monday the 30th.
        let spec = CronSpec::parse("30 3 * * 1", "UTC").unwrap();
        let sunday: DateTime<Utc> = "2026-11-29T00:00:00Z".parse().unwrap();
        assert_eq!(
            spec.next_after(sunday).unwrap(),
            "2026-11-30T03:30:00Z".parse::<DateTime<Utc>>().unwrap()
        );
    }
    use chrono::TimeZone;

    #[test]
    fn five_field_cron_in_a_time_zone() {
        let spec = CronSpec::parse("0 2 * * *", "Europe/Berlin").unwrap();
        // 2 a.m. in Berlin in winter is 1 a.m. UTC.
        let after = Utc.with_ymd_and_hms(2026, 1, 10, 12, 0, 0).unwrap();
        assert_eq!(
            spec.next_after(after),
            Some(Utc.with_ymd_and_hms(2026, 1, 11, 1, 0, 0).unwrap())
        );
        // In summer, midnight UTC.
        let summer = Utc.with_ymd_and_hms(2026, 7, 10, 12, 0, 0).unwrap();
        assert_eq!(
            spec.next_after(summer),
            Some(Utc.with_ymd_and_hms(2026, 7, 11, 0, 0, 0).unwrap())
        );
        assert_eq!(spec.upcoming(after, 3).len(), 3);
    }

    #[test]
    fn bad_expressions_zones_and_steps_are_named() {
        assert!(CronSpec::parse("0 2 * *", "UTC").is_err());
        assert!(CronSpec::parse("0 25 * * *", "UTC").is_err());
        let zone = CronSpec::parse("0 2 * * *", "Mars/Olympus").unwrap_err();
        assert!(zone.to_string().contains("Mars/Olympus"));
        let step = parse_pipeline(&["sync".into(), "deploy".into()]).unwrap_err();
        assert!(step.to_string().contains("unknown step"), "{step}");
        assert!(
            parse_pipeline(&["bogus".into()])
                .unwrap_err()
                .to_string()
                .contains("unknown step")
        );
        assert_eq!(
            parse_pipeline(&[
                "sync".into(),
                "full_sync".into(),
                "audit".into(),
                "export".into()
            ])
            .unwrap(),
            [Step::Sync, Step::FullSync, Step::Audit, Step::Export]
        );
    }

    #[test]
    fn every_step_reads_back_by_its_name() {
        let names: Vec<String> = Step::ALL.iter().map(|s| s.as_str().to_string()).collect();
        assert_eq!(parse_pipeline(&names).unwrap(), Step::ALL);
        for step in Step::ALL {
            assert_eq!(serde_json::json!(step), step.as_str());
        }
    }
}
