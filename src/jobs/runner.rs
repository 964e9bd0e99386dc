//! Workers: take job tasks from the shared PostgreSQL queue (apalis), lease the job, run its
//! handler with retries, and record the outcome. Any number of processes can run workers.
//!
//! The `job_runs` lease is the source of truth for who runs a job: a worker claims a job only
//! if it is queued or its lease has expired, and renews the lease while it works. A worker that
//! dies (`kill -9`) stops renewing; the reaper of any live process then puts the job back on
//! the queue and the next worker resumes it from its checkpoint. Duplicate deliveries of a
//! task are harmless: the claim fails and the duplicate is dropped.

use std::future::Future;
use std::time::Duration;

use apalis::prelude::{Data, Monitor, WorkerBuilder, WorkerBuilderExt};
use apalis_postgres::PostgresStorage;
use sqlx::PgConnection;
use tokio::sync::watch;
use uuid::Uuid;

use super::context::{JobContext, JobError, Outcome, Stop};
use super::{JobKind, JobRun, JobStatus, JobTask, push_task};
use crate::state::AppState;

#[derive(Clone)]
struct Runtime {
    state: AppState,
    stop: watch::Receiver<bool>,
    worker_id: String,
}

/// Runs workers for every job kind until `shutdown` completes, then gives running jobs the
/// grace period to reach a checkpoint.
pub async fn run(
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let (stop_tx, stop_rx) = watch::channel(false);
    let worker_id = format!("{}-{}", hostname(), Uuid::new_v4().simple());
    let runtime = Runtime {
        state: state.clone(),
        stop: stop_rx.clone(),
        worker_id: worker_id.clone(),
    };
    let settings = state.settings.jobs.clone();

    let reaper = tokio::spawn(reap_expired_leases(state.clone(), stop_rx.clone()));
    let webhooks = tokio::spawn(crate::webhooks::dispatch::run(
        state.clone(),
        stop_rx.clone(),
    ));

    let mut monitor =
        crate::notify::workers::register(Monitor::new(), &state, stop_rx.clone(), &worker_id);
    for &kind in JobKind::ALL {
        let concurrency = concurrency_of(&state, kind);
        let runtime = runtime.clone();
        let pool = state.db.clone();
        let heartbeat = Duration::from_secs(settings.heartbeat_secs);
        let missed = settings.missed_heartbeats as usize;
        let name = format!("catalogd-{}-{}", kind.as_str(), worker_id);
        monitor = monitor.register(move |_| {
            let config = apalis_postgres::Config::default()
                .queue(kind.queue())
                // Take only as many tasks as can run: a locked task waiting here is one another
                // worker could have started.
                .batch_size(concurrency)
                .heartbeat_interval(heartbeat)
                .missed_heartbeats(missed);
            let backend = PostgresStorage::<JobTask>::new(&pool)
                .with_config(config)
                .with_pubsub();
            WorkerBuilder::new(name.clone())
                .backend(backend)
                .data(runtime.clone())
                .concurrency(concurrency)
                .build(handle)
        });
    }
    let grace = Duration::from_secs(settings.grace_period_secs);
    let result = monitor
        .shutdown_timeout(grace)
        .run_with_signal(async move {
            shutdown.await;
            tracing::info!("workers stopping: running jobs checkpoint and hand over");
            let _ = stop_tx.send(true);
            Ok(())
        })
        .await;
    reaper.abort();
    webhooks.abort();
    result.map_err(|e| anyhow::anyhow!("job workers: {e}"))
}

fn concurrency_of(state: &AppState, kind: JobKind) -> usize {
    let c = &state.settings.jobs.concurrency;
    match kind {
        JobKind::Sync => c.sync as usize,
        JobKind::Audit => c.audit as usize,
        JobKind::Push => c.push as usize,
        JobKind::Enrich => c.enrich as usize,
        JobKind::Media => c.media as usize,
        JobKind::Export => c.export as usize,
    }
}

fn hostname() -> String {
    std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "host".to_string())
}

async fn handle(task: JobTask, runtime: Data<Runtime>) -> Result<(), apalis::prelude::BoxDynError> {
    if let Err(e) = run_job(&runtime, task.job_id).await {
        // Recording the outcome failed (the database is gone): leave the lease to expire so
        // the reaper hands the job to another worker.
        tracing::error!(job_id = %task.job_id, error = %e, "job bookkeeping failed");
    }
    Ok(())
}

fn lease_secs(state: &AppState) -> f64 {
    let j = &state.settings.jobs;
    (j.heartbeat_secs * u64::from(j.missed_heartbeats)) as f64
}

/// Claims the job if nobody else holds it. `None`: finished, cancelled, or leased elsewhere.
async fn claim(runtime: &Runtime, job_id: Uuid) -> Result<Option<JobRun>, sqlx::Error> {
    sqlx::query_as(
        "UPDATE job_runs SET status = 'running', started_at = COALESCE(started_at, now()),
            lease_owner = $2, lease_until = now() + make_interval(secs => $3)
         WHERE id = $1 AND NOT cancel_requested
           AND (status = 'queued' OR (status = 'running' AND (lease_until IS NULL OR lease_until < now())))
         RETURNING id, workspace_id, store_id, kind, params, status, progress_done, progress_total,
            counters, checkpoint, error, cancel_requested, attempts, created_by, created_at, started_at, finished_at",
    )
    .bind(job_id)
    .bind(&runtime.worker_id)
    .bind(lease_secs(&runtime.state))
    .fetch_optional(&runtime.state.db)
    .await
}

async fn run_job(runtime: &Runtime, job_id: Uuid) -> Result<(), sqlx::Error> {
    let state = &runtime.state;
    let Some(job) = claim(runtime, job_id).await? else {
        // A cancel request on a job that never started finishes it here.
        sqlx::query(
            "UPDATE job_runs SET status = 'cancelled', finished_at = now()
             WHERE id = $1 AND cancel_requested AND status IN ('queued', 'running')
               AND (lease_until IS NULL OR lease_until < now())",
        )
        .bind(job_id)
        .execute(&state.db)
        .await?;
        return Ok(());
    };
    let renewer = tokio::spawn(renew_lease(
        state.clone(),
        job_id,
        runtime.worker_id.clone(),
    ));
    let kind = job.kind;
    let outcome = run_attempts(runtime, job).await;
    renewer.abort();
    finish(runtime, job_id, kind, outcome).await?;
    Ok(())
}

/// What a finished job of `kind` no longer needs (whatever way it ended). Runs in the
/// transaction that records the final status, so a finished job never has leftovers.
async fn clean_up(
    conn: &mut PgConnection,
    kind: JobKind,
    job_id: Uuid,
    status: JobStatus,
) -> Result<(), sqlx::Error> {
    match kind {
        JobKind::Sync => crate::sync::forget_seen(conn, job_id).await?,
        JobKind::Audit => crate::audits::runs::settle(conn, job_id, status).await?,
        JobKind::Push | JobKind::Enrich | JobKind::Media | JobKind::Export => {}
    }
    let mut continued = false;
    if status == JobStatus::Succeeded {
        crate::stores::permissions::step_succeeded(conn, job_id).await?;
        continued = crate::schedules::continue_pipeline(conn, job_id)
            .await?
            .is_some();
    }
    crate::notify::job_events::job_finished(conn, job_id, status, continued).await?;
    Ok(())
}

async fn run_attempts(runtime: &Runtime, mut job: JobRun) -> Result<Outcome, JobError> {
    let settings = &runtime.state.settings.jobs;
    loop {
        job.attempts = sqlx::query_scalar(
            "UPDATE job_runs SET attempts = attempts + 1 WHERE id = $1 RETURNING attempts",
        )
        .bind(job.id)
        .fetch_one(&runtime.state.db)
        .await?;
        // Each attempt starts from the latest checkpoint the previous one committed.
        if let Some(latest) = super::get(&runtime.state.db, job.id).await? {
            job.checkpoint = latest.checkpoint;
            job.counters = latest.counters;
            job.progress_done = latest.progress_done;
            job.progress_total = latest.progress_total;
        }
        let ctx = JobContext::new(runtime.state.clone(), job.clone(), runtime.stop.clone());
        // Which process ran which attempt: what an operator reads when workers are scaled out.
        ctx.log(
            "info",
            format!("attempt {} on worker {}", job.attempts, runtime.worker_id),
        )
        .await;
        let result = dispatch(&ctx).await;
        if let Err(e) = ctx.flush().await {
            tracing::warn!(job_id = %job.id, error = %e, "could not record job progress");
        }
        match result {
            Err(JobError::Transient(message)) if (job.attempts as u32) < settings.max_attempts => {
                let delay = backoff(settings.retry_base_delay_ms, job.attempts as u32);
                ctx.log(
                    "warn",
                    format!(
                        "attempt {} failed: {message}; retrying in {}s",
                        job.attempts,
                        delay.as_secs()
                    ),
                )
                .await;
                if let Some(stop) = ctx.sleep(delay).await {
                    return Ok(Outcome::Stopped(stop));
                }
            }
            other => {
                if let Err(e) = &other {
                    ctx.log("error", e.to_string()).await;
                }
                return other;
            }
        }
    }
}

/// Exponential backoff with ±25 % jitter, capped at five minutes.
fn backoff(base_ms: u64, attempt: u32) -> Duration {
    let exp = base_ms.saturating_mul(1u64 << attempt.saturating_sub(1).min(16));
    let capped = exp.min(300_000) as f64;
    let jitter = 0.75 + rand::random::<f64>() * 0.5;
    Duration::from_millis((capped * jitter) as u64)
}

async fn dispatch(ctx: &JobContext) -> Result<Outcome, JobError> {
    match ctx.job.kind {
        JobKind::Sync => crate::sync::run(ctx).await,
        JobKind::Audit => crate::audits::run(ctx).await,
        JobKind::Push => crate::push::run(ctx).await,
        JobKind::Enrich => crate::enrich::run(ctx).await,
        JobKind::Media => crate::media::run(ctx).await,
        JobKind::Export => crate::exports::run(ctx).await,
    }
}

async fn finish(
    runtime: &Runtime,
    job_id: Uuid,
    kind: JobKind,
    outcome: Result<Outcome, JobError>,
) -> Result<(), sqlx::Error> {
    let db = &runtime.state.db;
    let (status, error) = match outcome {
        Ok(Outcome::Done) => (JobStatus::Succeeded, None),
        Ok(Outcome::Stopped(Stop::Cancelled)) => (JobStatus::Cancelled, None),
        Ok(Outcome::Stopped(Stop::Shutdown)) => {
            // Hand the job back to the queue; another worker (or this one after a restart)
            // continues from the checkpoint.
            let mut tx = db.begin().await?;
            let kind: Option<JobKind> = sqlx::query_scalar(
                "UPDATE job_runs SET status = 'queued', lease_owner = NULL, lease_until = NULL
                 WHERE id = $1 AND lease_owner = $2 RETURNING kind",
            )
            .bind(job_id)
            .bind(&runtime.worker_id)
            .fetch_optional(&mut *tx)
            .await?;
            if let Some(kind) = kind {
                push_task(&mut tx, kind, job_id).await?;
            }
            tx.commit().await?;
            return Ok(());
        }
        Err(e) => (JobStatus::Failed, Some(e.to_string())),
    };
    let mut tx = db.begin().await?;
    let recorded = sqlx::query(
        "UPDATE job_runs SET status = $2, error = $3, finished_at = now(), lease_owner = NULL, lease_until = NULL
         WHERE id = $1 AND lease_owner = $4",
    )
    .bind(job_id)
    .bind(status)
    .bind(error)
    .bind(&runtime.worker_id)
    .execute(&mut *tx)
    .await?;
    // A job that lost its lease belongs to another worker now, leftovers included.
    if recorded.rows_affected() > 0 {
        clean_up(&mut tx, kind, job_id, status).await?;
    }
    tx.commit().await?;
    Ok(())
}

async fn renew_lease(state: AppState, job_id: Uuid, owner: String) {
    let every = Duration::from_secs(state.settings.jobs.heartbeat_secs);
    loop {
        tokio::time::sleep(every).await;
        let renewed = sqlx::query(
            "UPDATE job_runs SET lease_until = now() + make_interval(secs => $3)
             WHERE id = $1 AND lease_owner = $2 AND status = 'running'",
        )
        .bind(job_id)
        .bind(&owner)
        .bind(lease_secs(&state))
        .execute(&state.db)
        .await;
        if let Err(e) = renewed {
            tracing::warn!(%job_id, error = %e, "could not renew job lease");
        }
    }
}

/// Puts jobs whose worker stopped renewing back on the queue.
async fn reap_expired_leases(state: AppState, mut stop: watch::Receiver<bool>) {
    let every = Duration::from_secs(state.settings.jobs.heartbeat_secs);
    loop {
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = stop.changed() => return,
        }
        if let Err(e) = reap_once(&state).await {
            tracing::warn!(error = %e, "reaping expired job leases failed");
        }
    }
}

pub async fn reap_once(state: &AppState) -> Result<u64, sqlx::Error> {
    let mut tx = state.db.begin().await?;
    let expired: Vec<(Uuid, JobKind)> = sqlx::query_as(
        "UPDATE job_runs SET status = 'queued', lease_owner = NULL, lease_until = NULL
         WHERE id IN (SELECT id FROM job_runs WHERE status = 'running' AND lease_until < now()
                      FOR UPDATE SKIP LOCKED)
         RETURNING id, kind",
    )
    .fetch_all(&mut *tx)
    .await?;
    for (id, kind) in &expired {
        tracing::warn!(job_id = %id, "worker stopped renewing its lease; job re-queued");
        push_task(&mut tx, *kind, *id).await?;
    }
    tx.commit().await?;
    Ok(expired.len() as u64)
}
