//! Pushing through Magento's asynchronous bulk API (a store setting, for large pushes).
//!
//! Every proposal is read and planned as in a direct push, and conflicts and failures are
//! recorded at once; gallery-entry updates are sent directly (the bulk API carries product
//! saves only). The product saves are then submitted as one bulk per scope, and the bulks
//! polled through `detailed-status`: each operation, mapped back to its proposal by its
//! position among the request items, ends the proposal `pushed` (after reading the product
//! back) or `failed` with Magento's message; operations Magento calls retriable are
//! submitted again, up to [`MAX_ROUNDS`] times. The bulk uuids are in the job's checkpoint,
//! so a restarted job resumes polling instead of submitting again.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use super::{Prepared, PushParams, PushResult, load, prepare, record};
use crate::connector::ConnectorError;
use crate::connector::magento::{BulkOutcome, MagentoConnector};
use crate::jobs::context::{JobContext, JobError, Outcome};
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
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Submitted {
    uuid: String,
    items: Vec<Item>,
    polls: u32,
}

pub(super) async fn run(
    ctx: &JobContext,
    store: &Store,
    connector: &MagentoConnector,
    params: &PushParams,
) -> Result<Outcome, JobError> {
    let db = &ctx.state.db;
    let mut checkpoint: Checkpoint = ctx.checkpoint().unwrap_or_default();
    ctx.set_total(Some(params.proposals.len() as i64));
    for counter in ["pushed", "conflict", "failed", "already_applied", "bulks"] {
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
            match prepare(db, store, connector, p).await? {
                Prepared::AlreadyApplied { store } => {
                    result = Some(PushResult::AlreadyApplied { store });
                }
                Prepared::Conflict(fields) => result = Some(PushResult::Conflict(fields)),
                Prepared::Failed(message) => result = Some(PushResult::Failed(message)),
                Prepared::Write { calls } => {
                    let mut save = None;
                    for call in &calls {
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
                        }),
                        (false, None) => result = Some(read_back(connector, p).await?),
                    }
                }
            }
        }
        checkpoint.next += 1;
        let mut tx = db.begin().await?;
        if let (Some(p), Some(result)) = (&proposal, result) {
            ctx.advance(1);
            record(&mut tx, ctx, store, p, result).await?;
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
                    BulkOutcome::Complete => read_back(connector, &proposal).await?,
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
            record(&mut tx, ctx, store, &proposal, result).await?;
        }
        ctx.save(&mut tx, &checkpoint).await?;
        tx.commit().await?;
        if !checkpoint.submitted.is_empty()
            && let Some(stop) = ctx.sleep(std::time::Duration::from_secs(1)).await
        {
            return Ok(Outcome::Stopped(stop));
        }
    }
    ctx.log(
        "info",
        format!(
            "bulk push finished: {} pushed, {} already applied, {} conflicts, {} failed",
            ctx.counter("pushed"),
            ctx.counter("already_applied"),
            ctx.counter("conflict"),
            ctx.counter("failed")
        ),
    )
    .await;
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
                        record(&mut tx, ctx, store, &proposal, PushResult::Failed(message)).await?;
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

async fn read_back(
    connector: &MagentoConnector,
    proposal: &super::Proposal,
) -> Result<PushResult, JobError> {
    match connector
        .read_product(&proposal.store_view, &proposal.sku)
        .await
    {
        Ok(Some(after)) => Ok(PushResult::Pushed {
            store: Box::new(after),
            requests: 1,
        }),
        Ok(None) => Ok(PushResult::Failed(
            "the product disappeared from the store right after the push".into(),
        )),
        Err(e) => Err(JobError::Transient(format!(
            "reading the product back after the push: {e}"
        ))),
    }
}
