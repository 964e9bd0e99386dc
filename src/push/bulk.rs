//! Pushing through Magento's asynchronous bulk API (a store setting, for large pushes).
//!
//! Every proposal is read and planned as in a direct push, and conflicts and failures are
//! recorded at once; gallery-entry updates are sent directly (the bulk API carries product
//! saves only). The product saves are then submitted as one bulk per scope, and the bulks
//! polled through `detailed-status`: each operation, mapped back to its proposal by its
//! position among the request items, is read back and verified like a direct push, or ends
//! the proposal `failed` with Magento's message; operations Magento calls retriable are
//! submitted again, up to [`MAX_ROUNDS`] times. The bulk uuids are in the job's checkpoint,
//! so a restarted job resumes polling instead of submitting again.
//!
//! Magento reporting an operation complete says nothing about where it was saved: with its
//! default MySQL queue the consumer runs in the default store view whatever the URL's store
//! code (`app/code/Magento/AsynchronousOperations/Model/MassConsumerEnvelopeCallback.php`,
//! `OperationProcessor::process`; only `app/code/Magento/AmqpStore/Plugin/…` carries the store
//! through RabbitMQ). So besides the pushed scope every bulk write also watches the default
//! store view, which must keep its own values.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use super::{Check, Prepared, PushParams, PushResult, load, prepare, read_back, record};
use crate::connector::ConnectorError;
use crate::connector::magento::{BulkOutcome, MagentoConnector};
use crate::jobs::context::{JobContext, JobError, Outcome};
use crate::stores::attribute_scopes::Scopes;
use crate::stores::{Store, permissions};

/// Submissions of one operation, counting the first.
const MAX_ROUNDS: u32 = 3;
/// Polls of a bulk before its open operations are given up on (about ten minutes).
const MAX_POLLS: u32 = 600;

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Checkpoint {
    /// Index of the next proposal to plan.
    next: usize,
    /// Product saves planned and not yet submitted.
    pending: Vec<Item>,
    /// Bulks submitted and not yet settled.
    submitted: Vec<Submitted>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Item {
    proposal: Uuid,
    scope: String,
    body: Value,
    /// How many times this save was submitted.
    rounds: u32,
    /// How the save is judged once Magento ran it (empty in checkpoints of older versions).
    #[serde(default)]
    check: Check,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Submitted {
    uuid: String,
    items: Vec<Item>,
    polls: u32,
}

/// The scopes a bulk write of `scope` must leave alone besides the default values of a store
/// view: the default store view, where MySQL's queue runs every operation.
fn watch(store: &Store, scope: &str) -> Vec<String> {
    store
        .default_view()
        .map(|v| v.code.clone())
        .filter(|code| code != scope)
        .into_iter()
        .collect()
}

pub(super) async fn run(
    ctx: &JobContext,
    store: &Store,
    connector: &MagentoConnector,
    scopes: &Scopes,
    params: &PushParams,
) -> Result<Outcome, JobError> {
    let db = &ctx.state.db;
    let mut checkpoint: Checkpoint = ctx.checkpoint().unwrap_or_default();
    ctx.set_total(Some(params.proposals.len() as i64));
    for counter in super::COUNTERS.iter().chain(&["bulks"]) {
        ctx.add(counter, 0);
    }
    // 1. Plan every proposal; record what needs no bulk.
    while let Some(&id) = params.proposals.get(checkpoint.next) {
        if let Some(stop) = ctx.should_stop().await {
            return Ok(Outcome::Stopped(stop));
        }
        let proposal = load(db, store.id, id).await?;
        let mut result = None;
        if let Some(p) = proposal
            .as_ref()
            .filter(|p| p.state == "approved" || p.state == "failed")
        {
            let watch = watch(store, &p.store_view);
            let watch: Vec<&str> = watch.iter().map(String::as_str).collect();
            match prepare(db, store, connector, p, scopes, &watch).await? {
                Prepared::AlreadyApplied { store } => {
                    result = Some(PushResult::AlreadyApplied { store });
                }
                Prepared::Conflict(fields) => result = Some(PushResult::Conflict(fields)),
                Prepared::Failed(message) => result = Some(PushResult::Failed(message)),
                Prepared::Refused(message) => result = Some(PushResult::Refused(message)),
                Prepared::Write(write) => {
                    super::log_warnings(ctx, p, &write.warnings).await;
                    let mut save = None;
                    for call in &write.calls {
                        match call.product_save_body() {
                            Some(body) => save = Some(body.clone()),
                            None => {
                                if let Err(e) = connector.send(call).await {
                                    if let ConnectorError::NeedsReauth(m) = e {
                                        return Err(JobError::Fatal(m));
                                    }
                                    if matches!(e, ConnectorError::PermissionMissing { .. }) {
                                        return Err(
                                            permissions::refused(db, store.id, "push", e).await
                                        );
                                    }
                                    result = Some(PushResult::Failed(e.to_string()));
                                    break;
                                }
                            }
                        }
                    }
                    match (result.is_some(), save) {
                        (true, _) => {}
                        (false, Some(body)) => checkpoint.pending.push(Item {
                            proposal: p.id,
                            scope: p.store_view.clone(),
                            body,
                            rounds: 0,
                            check: write.check.clone(),
                        }),
                        (false, None) => {
                            let requests = write.calls.len();
                            result =
                                Some(read_back(connector, p, &write.check, &watch, requests).await?)
                        }
                    }
                }
            }
        }
        checkpoint.next += 1;
        let mut tx = db.begin().await?;
        if let (Some(p), Some(result)) = (&proposal, result) {
            ctx.advance(1);
            record(&mut tx, ctx, p, result).await?;
        }
        ctx.save(&mut tx, &checkpoint).await?;
        tx.commit().await?;
    }
    loop {
        // 2. Submit what is pending, one bulk per scope.
        if !checkpoint.pending.is_empty() {
            submit(ctx, store, connector, &mut checkpoint).await?;
        }
        if checkpoint.submitted.is_empty() {
            break;
        }
        // 3. Settle the bulks whose operations all ended (in one transaction with the
        //    checkpoint); poll the others again after a pause.
        let mut still_open = Vec::new();
        let mut settled = Vec::new();
        for mut bulk in std::mem::take(&mut checkpoint.submitted) {
            let outcomes = match connector.bulk_outcomes(&bulk.uuid).await {
                Ok(outcomes) => outcomes,
                Err(e @ ConnectorError::PermissionMissing { .. }) => {
                    return Err(permissions::refused(db, store.id, "push", e).await);
                }
                Err(ConnectorError::NeedsReauth(m)) => return Err(JobError::Fatal(m)),
                Err(e) => return Err(JobError::Transient(e.to_string())),
            };
            bulk.polls += 1;
            let open = outcomes.len() < bulk.items.len() || outcomes.contains(&BulkOutcome::Open);
            if open && bulk.polls < MAX_POLLS {
                still_open.push(bulk);
                continue;
            }
            for (i, item) in bulk.items.into_iter().enumerate() {
                let Some(proposal) = load(db, store.id, item.proposal).await? else {
                    continue;
                };
                let outcome = outcomes.get(i).cloned().unwrap_or(BulkOutcome::Open);
                let result = match outcome {
                    BulkOutcome::Complete => {
                        let watch = watch(store, &item.scope);
                        let watch: Vec<&str> = watch.iter().map(String::as_str).collect();
                        read_back(connector, &proposal, &item.check, &watch, 1).await?
                    }
                    BulkOutcome::Retriable(_) if item.rounds < MAX_ROUNDS => {
                        checkpoint.pending.push(item);
                        continue;
                    }
                    BulkOutcome::Retriable(m) | BulkOutcome::Failed(m) => PushResult::Failed(m),
                    BulkOutcome::Open => PushResult::Failed(format!(
                        "bulk {} is still open after {} polls: is Magento's async.operations.all consumer running?",
                        bulk.uuid, bulk.polls
                    )),
                };
                settled.push((proposal, result));
            }
        }
        checkpoint.submitted = still_open;
        let mut tx = db.begin().await?;
        for (proposal, result) in settled {
            ctx.advance(1);
            record(&mut tx, ctx, &proposal, result).await?;
        }
        ctx.save(&mut tx, &checkpoint).await?;
        tx.commit().await?;
        if !checkpoint.submitted.is_empty()
            && let Some(stop) = ctx.sleep(std::time::Duration::from_secs(1)).await
        {
            return Ok(Outcome::Stopped(stop));
        }
    }
    super::log_summary(ctx, "bulk push").await;
    Ok(Outcome::Done)
}

/// Submits the pending saves, one bulk per scope, and records the submission.
async fn submit(
    ctx: &JobContext,
    store: &Store,
    connector: &MagentoConnector,
    checkpoint: &mut Checkpoint,
) -> Result<(), JobError> {
    let db = &ctx.state.db;
    let mut scopes: Vec<String> = checkpoint.pending.iter().map(|i| i.scope.clone()).collect();
    scopes.sort();
    scopes.dedup();
    let mut tx = db.begin().await?;
    for scope in scopes {
        let (items, rest): (Vec<Item>, Vec<Item>) = std::mem::take(&mut checkpoint.pending)
            .into_iter()
            .partition(|i| i.scope == scope);
        checkpoint.pending = rest;
        let bodies = items.iter().map(|i| i.body.clone()).collect();
        let (uuid, refused) = match connector.submit_product_saves(&scope, bodies).await {
            Ok(answer) => answer,
            Err(e @ ConnectorError::PermissionMissing { .. }) => {
                return Err(permissions::refused(db, store.id, "push", e).await);
            }
            Err(ConnectorError::NeedsReauth(m)) => return Err(JobError::Fatal(m)),
            Err(e) => return Err(JobError::Transient(e.to_string())),
        };
        ctx.add("bulks", 1);
        ctx.log(
            "info",
            format!("bulk {uuid}: {} saves in {scope}", items.len()),
        )
        .await;
        let mut accepted = Vec::new();
        for (item, refusal) in items.into_iter().zip(refused) {
            match refusal {
                Some(message) => {
                    if let Some(proposal) = load(db, store.id, item.proposal).await? {
                        ctx.advance(1);
                        record(&mut tx, ctx, &proposal, PushResult::Failed(message)).await?;
                    }
                }
                None => accepted.push(Item {
                    rounds: item.rounds + 1,
                    ..item
                }),
            }
        }
        checkpoint.submitted.push(Submitted {
            uuid,
            items: accepted,
            polls: 0,
        });
    }
    ctx.save(&mut tx, &*checkpoint).await?;
    tx.commit().await?;
    Ok(())
}
