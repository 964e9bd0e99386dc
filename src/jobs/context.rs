//! What a job's handler gets: progress, counters, log lines, checkpoints, cancellation.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, Instant};

use serde::Serialize;
use serde::de::DeserializeOwned;
use sqlx::PgConnection;
use tokio::sync::watch;

use super::JobRun;
use crate::state::AppState;

/// Why a handler should stop early.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    /// Someone asked to cancel the job.
    Cancelled,
    /// This process is shutting down; the job continues elsewhere from its checkpoint.
    Shutdown,
}

/// How a handler ended when it did not fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Done,
    Stopped(Stop),
}

#[derive(Debug, thiserror::Error)]
pub enum JobError {
    /// Worth another attempt later (store unreachable, 5xx, timeouts, database hiccups).
    #[error("{0}")]
    Transient(String),
    /// Retrying cannot help (credentials refused, invalid input, missing store).
    #[error("{0}")]
    Fatal(String),
}

impl From<sqlx::Error> for JobError {
    fn from(e: sqlx::Error) -> Self {
        JobError::Transient(format!("database: {e}"))
    }
}

const CANCEL_POLL: Duration = Duration::from_secs(1);

pub struct JobContext {
    pub state: AppState,
    pub job: JobRun,
    counters: Mutex<BTreeMap<String, i64>>,
    done: AtomicI64,
    total: Mutex<Option<i64>>,
    stop: watch::Receiver<bool>,
    last_cancel_check: Mutex<Option<Instant>>,
}

impl JobContext {
    pub fn new(state: AppState, job: JobRun, stop: watch::Receiver<bool>) -> JobContext {
        let counters = serde_json::from_value(job.counters.clone()).unwrap_or_default();
        JobContext {
            counters: Mutex::new(counters),
            done: AtomicI64::new(job.progress_done),
            total: Mutex::new(job.progress_total),
            state,
            job,
            stop,
            last_cancel_check: Mutex::new(None),
        }
    }

    pub fn params<T: DeserializeOwned>(&self) -> Result<T, JobError> {
        serde_json::from_value(self.job.params.clone())
            .map_err(|e| JobError::Fatal(format!("job parameters are invalid: {e}")))
    }

    /// Where the previous attempt got to, if it recorded a checkpoint.
    pub fn checkpoint<T: DeserializeOwned>(&self) -> Option<T> {
        self.job
            .checkpoint
            .clone()
            .and_then(|c| serde_json::from_value(c).ok())
    }

    /// Adds to a counter; adding 0 still shows the counter (a zero is information).
    pub fn add(&self, counter: &str, n: i64) {
        let mut counters = self.counters.lock().expect("counter lock");
        *counters.entry(counter.to_string()).or_insert(0) += n;
    }

    pub fn counter(&self, counter: &str) -> i64 {
        self.counters
            .lock()
            .expect("counter lock")
            .get(counter)
            .copied()
            .unwrap_or(0)
    }

    pub fn advance(&self, n: i64) {
        self.done.fetch_add(n, Ordering::Relaxed);
    }

    /// Progress so far.
    pub fn done(&self) -> i64 {
        self.done.load(Ordering::Relaxed)
    }

    pub fn set_done(&self, n: i64) {
        self.done.store(n, Ordering::Relaxed);
    }

    pub fn set_total(&self, total: Option<i64>) {
        *self.total.lock().expect("total lock") = total;
    }

    fn snapshot(&self) -> (i64, Option<i64>, serde_json::Value) {
        let counters =
            serde_json::to_value(&*self.counters.lock().expect("counter lock")).unwrap_or_default();
        (
            self.done.load(Ordering::Relaxed),
            *self.total.lock().expect("total lock"),
            counters,
        )
    }

    /// Records progress, counters and the checkpoint in the caller's transaction, so the
    /// checkpoint commits together with the work it describes.
    pub async fn save(
        &self,
        tx: &mut PgConnection,
        checkpoint: &impl Serialize,
    ) -> Result<(), sqlx::Error> {
        let (done, total, counters) = self.snapshot();
        sqlx::query(
            "UPDATE job_runs SET progress_done = $2, progress_total = $3, counters = $4, checkpoint = $5 WHERE id = $1",
        )
        .bind(self.job.id)
        .bind(done)
        .bind(total)
        .bind(counters)
        .bind(serde_json::to_value(checkpoint).unwrap_or_default())
        .execute(&mut *tx)
        .await?;
        Ok(())
    }

    /// Records progress and counters (no checkpoint).
    pub async fn flush(&self) -> Result<(), sqlx::Error> {
        let (done, total, counters) = self.snapshot();
        sqlx::query("UPDATE job_runs SET progress_done = $2, progress_total = $3, counters = $4 WHERE id = $1")
            .bind(self.job.id)
            .bind(done)
            .bind(total)
            .bind(counters)
            .execute(&self.state.db)
            .await?;
        Ok(())
    }

    /// Appends a log line the user sees with the job; the oldest lines beyond the configured
    /// maximum are dropped.
    pub async fn log(&self, level: &str, message: impl Into<String>) {
        let message: String = message.into();
        tracing::info!(job_id = %self.job.id, kind = self.job.kind.as_str(), level, "{message}");
        let keep = i64::from(self.state.settings.jobs.max_log_lines);
        let result = sqlx::query(
            "WITH ins AS (INSERT INTO job_logs (job_id, level, message) VALUES ($1, $2, $3))
             DELETE FROM job_logs WHERE job_id = $1 AND id <= (
                SELECT id FROM job_logs WHERE job_id = $1 ORDER BY id DESC OFFSET $4 LIMIT 1)",
        )
        .bind(self.job.id)
        .bind(level)
        .bind(message.chars().take(2000).collect::<String>())
        .bind(keep - 1)
        .execute(&self.state.db)
        .await;
        if let Err(e) = result {
            tracing::warn!(job_id = %self.job.id, error = %e, "could not write a job log line");
        }
    }

    /// Whether to stop at this checkpoint: shutdown is seen at once, a cancel request within a second.
    pub async fn should_stop(&self) -> Option<Stop> {
        if *self.stop.borrow() {
            return Some(Stop::Shutdown);
        }
        let due = {
            let mut last = self.last_cancel_check.lock().expect("cancel check lock");
            let due = last.is_none_or(|t| t.elapsed() >= CANCEL_POLL);
            if due {
                *last = Some(Instant::now());
            }
            due
        };
        if due {
            let requested: Option<bool> =
                sqlx::query_scalar("SELECT cancel_requested FROM job_runs WHERE id = $1")
                    .bind(self.job.id)
                    .fetch_optional(&self.state.db)
                    .await
                    .ok()
                    .flatten();
            if requested != Some(false) {
                return Some(Stop::Cancelled);
            }
        }
        None
    }

    /// Waits `delay` unless the job is told to stop first.
    pub async fn sleep(&self, delay: Duration) -> Option<Stop> {
        let mut stop = self.stop.clone();
        let deadline = tokio::time::Instant::now() + delay;
        loop {
            if let Some(reason) = self.should_stop().await {
                return Some(reason);
            }
            let step = deadline
                .saturating_duration_since(tokio::time::Instant::now())
                .min(CANCEL_POLL);
            if step.is_zero() {
                return None;
            }
            tokio::select! {
                _ = tokio::time::sleep(step) => {}
                _ = stop.changed() => {}
            }
        }
    }
}
