//! The notification queues' workers: fan-out (`catalogd.notify`) and mail (`catalogd.mail`),
//! registered beside the job kinds in every worker process.

use std::time::Duration;

use apalis::prelude::{BoxDynError, Data, Monitor, WorkerBuilder, WorkerBuilderExt};
use apalis_postgres::PostgresStorage;
use serde::Serialize;
use sqlx::PgConnection;
use tokio::sync::watch;

use super::events::{FanOutTask, QUEUE as NOTIFY_QUEUE};
use super::mail::{MAIL_QUEUE, MailTask};
use super::transport::Transport;
use crate::state::AppState;

/// Puts a task on `queue` in the caller's transaction.
pub async fn push(
    conn: &mut PgConnection,
    queue: &str,
    task: &impl Serialize,
) -> Result<(), sqlx::Error> {
    let args = serde_json::to_vec(task).expect("task args serialise");
    let task = apalis::prelude::TaskBuilder::new(args).build();
    apalis_postgres::queries::push_tasks(&mut *conn, queue, vec![task])
        .await
        .map_err(|e| match e {
            apalis_postgres::Error::Database(e) => e,
            other => sqlx::Error::Protocol(other.to_string()),
        })
}

/// What the notification handlers share.
#[derive(Clone)]
pub struct Runtime {
    pub state: AppState,
    pub transport: Transport,
    pub stop: watch::Receiver<bool>,
}

/// Adds the fan-out and mail workers to `monitor`.
pub fn register(
    monitor: Monitor,
    state: &AppState,
    stop: watch::Receiver<bool>,
    worker_id: &str,
) -> Monitor {
    let transport = Transport::from_settings(&state.settings);
    let runtime = Runtime {
        state: state.clone(),
        transport,
        stop,
    };
    let jobs = &state.settings.jobs;
    let heartbeat = Duration::from_secs(jobs.heartbeat_secs);
    let missed = jobs.missed_heartbeats as usize;
    let config = move |queue: &str, concurrency: usize| {
        apalis_postgres::Config::default()
            .queue(queue)
            .batch_size(concurrency)
            .heartbeat_interval(heartbeat)
            .missed_heartbeats(missed)
    };
    let pool = state.db.clone();
    let fan_out_runtime = runtime.clone();
    let fan_out_name = format!("catalogd-notify-{worker_id}");
    let fan_out_pool = pool.clone();
    let monitor = monitor.register(move |_| {
        let backend = PostgresStorage::<FanOutTask>::new(&fan_out_pool)
            .with_config(config(NOTIFY_QUEUE, 2))
            .with_pubsub();
        WorkerBuilder::new(fan_out_name.clone())
            .backend(backend)
            .data(fan_out_runtime.clone())
            .concurrency(2)
            .build(handle_fan_out)
    });
    let concurrency = state.settings.email.concurrency as usize;
    let mail_name = format!("catalogd-mail-{worker_id}");
    monitor.register(move |_| {
        let backend = PostgresStorage::<MailTask>::new(&pool)
            .with_config(config(MAIL_QUEUE, concurrency))
            .with_pubsub();
        WorkerBuilder::new(mail_name.clone())
            .backend(backend)
            .data(runtime.clone())
            .concurrency(concurrency)
            .build(handle_mail)
    })
}

async fn handle_fan_out(task: FanOutTask, runtime: Data<Runtime>) -> Result<(), BoxDynError> {
    if let Err(e) = super::fan_out::run(&runtime.state, task.event_id).await {
        // The event stays waiting (`fanned_out_at` unset); the sweep queues it again.
        tracing::warn!(event_id = %task.event_id, error = %e, "event fan-out failed");
    }
    Ok(())
}

async fn handle_mail(task: MailTask, runtime: Data<Runtime>) -> Result<(), BoxDynError> {
    if let Err(e) = super::mail::deliver(&runtime, task.mail_id).await {
        // The message stays pending; the sweep queues it again once its lease is over.
        tracing::warn!(mail_id = %task.mail_id, error = %e, "sending mail failed");
    }
    Ok(())
}

/// Queues again the fan-out of events and the sending of mail whose task was lost (a worker
/// killed mid-task): each at most once a minute. A duplicate task is harmless, since both
/// handlers take their row with a conditional update.
pub async fn requeue_stalled(state: &AppState) -> Result<u64, sqlx::Error> {
    let mut tx = state.db.begin().await?;
    let events: Vec<uuid::Uuid> = sqlx::query_scalar(
        "UPDATE events SET fan_out_queued_at = now()
         WHERE id IN (SELECT id FROM events
                      WHERE fanned_out_at IS NULL AND fan_out_queued_at < now() - interval '1 minute'
                      ORDER BY created_at LIMIT 500 FOR UPDATE SKIP LOCKED)
         RETURNING id",
    )
    .fetch_all(&mut *tx)
    .await?;
    for &event_id in &events {
        push(&mut tx, NOTIFY_QUEUE, &FanOutTask { event_id }).await?;
    }
    let mail: Vec<uuid::Uuid> = sqlx::query_scalar(
        "UPDATE outgoing_mail SET queued_at = now()
         WHERE id IN (SELECT id FROM outgoing_mail
                      WHERE status = 'pending' AND queued_at < now() - interval '1 minute'
                        AND next_attempt_at < now() - interval '1 minute'
                        AND (lease_until IS NULL OR lease_until < now())
                      ORDER BY next_attempt_at LIMIT 500 FOR UPDATE SKIP LOCKED)
         RETURNING id",
    )
    .fetch_all(&mut *tx)
    .await?;
    for &mail_id in &mail {
        push(&mut tx, MAIL_QUEUE, &MailTask { mail_id }).await?;
    }
    tx.commit().await?;
    let total = (events.len() + mail.len()) as u64;
    if total > 0 {
        tracing::warn!(
            events = events.len(),
            mail = mail.len(),
            "queued notification work again whose task was lost"
        );
    }
    Ok(total)
}
