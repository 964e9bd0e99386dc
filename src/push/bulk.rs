//! Pushing through Magento's asynchronous bulk API (a store setting, for large pushes).
//!
//! Proposals are read and planned in windows as in a direct push (one `sku in (…)` read per
//! scope and window), and conflicts and failures are recorded at once; gallery-entry updates
//! are sent directly (the bulk API carries product saves only). The product saves of a scope
//! are submitted as a bulk as soon as they fill one (the store's `bulk_max_items`; the rest
//! once planning ends), and the bulks polled through `detailed-status`: each operation,
//! mapped back to its proposal by its position among the request items, is read back (one
//! `sku in (…)` read per scope and bulk) and verified like a direct push, or ends the proposal
//! `failed` with Magento's message; operations Magento calls retriable are submitted again, up
//! to [`MAX_ROUNDS`] times. Each bulk's uuid enters the job's checkpoint as soon as Magento
//! accepted it, so a restarted job resumes polling instead of submitting again. Magento
//! schedules every item of a bulk within the request (one operation row each,
//! `app/code/Magento/AsynchronousOperations/Model/MassSchedule.php::publishMass`), so the cap
//! keeps that request short.
//!
//! Magento reporting an operation complete says nothing about where it was saved: with its
//! default MySQL queue the consumer runs in the default store view whatever the URL's store
//! code (`app/code/Magento/AsynchronousOperations/Model/MassConsumerEnvelopeCallback.php`,
//! `OperationProcessor::process`; only `app/code/Magento/AmqpStore/Plugin/…` carries the store
//! through RabbitMQ). So besides the pushed scope every bulk write also watches the default
//! store view, which must keep its own values, and a scope's first bulk is a canary of one
//! save ([`canary`]): one that landed in the default store view is undone there, and the rest
//! of the push goes product by product.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use super::canary::{self, Revert};
use super::progress::Pace;
use super::{
    Check, Prepared, Proposal, PushParams, PushResult, Sent, WINDOW, is_pending, load, load_many,
    prepare_many, read_back_many, record, send_calls,
};
use crate::catalog::content::DEFAULT_SCOPE;
use crate::connector::ConnectorError;
use crate::connector::magento::{BulkOutcome, MagentoConnector};
use crate::jobs::context::{JobContext, JobError, Outcome, Stop};
use crate::stores::attribute_scopes::Scopes;
use crate::stores::{self, Store, permissions};

/// Submissions of one operation, counting the first.
const MAX_ROUNDS: u32 = 3;
/// Polls of a bulk before its open operations are given up on (about ten minutes).
const MAX_POLLS: u32 = 600;
/// The pause between polls of the same bulks.
const POLL_EVERY: Duration = Duration::from_secs(1);

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Checkpoint {
    /// Index of the next proposal to plan.
    next: usize,
    /// Product saves planned and not yet submitted.
    pending: Vec<Item>,
    /// Bulks submitted and not yet settled.
    submitted: Vec<Submitted>,
    /// Scopes whose canary landed in its scope in this push.
    #[serde(default)]
    proven: Vec<String>,
    /// A canary was saved elsewhere: what is left goes product by product.
    #[serde(default)]
    by_product: bool,
    /// Misplaced canary saves to undo in the default store view.
    #[serde(default)]
    reverts: Vec<Revert>,
    /// Proposals to push product by product, in push order.
    #[serde(default)]
    direct: Vec<Uuid>,
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
    /// One save sent alone to learn where the store's bulk API saves.
    #[serde(default)]
    canary: bool,
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
    let total = params.proposals.len();
    ctx.set_total(Some(total as i64));
    for counter in super::COUNTERS.iter().chain(&["bulks", "canaries"]) {
        ctx.add(counter, 0);
    }
    let pace = Pace::start(ctx);
    let max_items = store.bulk_max_items();
    let mut polled = Instant::now();
    // 1. Plan window by window and record what needs no bulk; a scope's saves go as soon as
    //    they fill a bulk, and the bulks Magento finished meanwhile are settled.
    while checkpoint.next < total && !checkpoint.by_product {
        if let Some(stop) = ctx.should_stop().await {
            return Ok(Outcome::Stopped(stop));
        }
        let mut end = (checkpoint.next + WINDOW).min(total);
        let window = &params.proposals[checkpoint.next..end];
        let mut proposals = load_many(db, store.id, window).await?;
        // A product's store views go after its default scope: the first store-view proposal
        // waits until every default-scope save before it is settled, and is then judged
        // against the default values those saves left.
        match proposals.iter().position(|p| p.store_view != DEFAULT_SCOPE) {
            Some(0) if unsettled_defaults(&checkpoint) => {
                if let Some(stop) =
                    drain(ctx, store, connector, &mut checkpoint, &pace, total).await?
                {
                    return Ok(Outcome::Stopped(stop));
                }
                // Loaded again: the default values live now are those the drained saves left.
                proposals = load_many(db, store.id, window).await?;
            }
            Some(first_view) if first_view > 0 => {
                let id = proposals[first_view].id;
                end =
                    checkpoint.next + window.iter().position(|w| *w == id).unwrap_or(window.len());
                proposals.truncate(first_view);
            }
            _ => {}
        }
        let consumed = end - checkpoint.next;
        let planned = plan_window(
            ctx,
            store,
            connector,
            scopes,
            proposals,
            consumed,
            &mut checkpoint,
        )
        .await?;
        checkpoint.next = end;
        let mut tx = db.begin().await?;
        for (proposal, result) in planned {
            ctx.advance(1);
            record(&mut tx, ctx, &proposal, result).await?;
        }
        ctx.save(&mut tx, &checkpoint).await?;
        tx.commit().await?;
        submit(
            ctx,
            store,
            connector,
            &mut checkpoint,
            max_items,
            Fill::Full,
        )
        .await?;
        if !checkpoint.submitted.is_empty() && polled.elapsed() >= POLL_EVERY {
            settle(ctx, store, connector, &mut checkpoint).await?;
            polled = Instant::now();
        }
        pace.tick(ctx, total).await;
    }
    // 2. Submit what is pending and settle every bulk.
    if let Some(stop) = drain(ctx, store, connector, &mut checkpoint, &pace, total).await? {
        return Ok(Outcome::Stopped(stop));
    }
    // 3. A canary saved elsewhere: undo it, and push what is left product by product.
    if checkpoint.by_product
        && let Some(stop) = by_product(
            ctx,
            store,
            connector,
            scopes,
            params,
            &mut checkpoint,
            &pace,
        )
        .await?
    {
        return Ok(Outcome::Stopped(stop));
    }
    super::log_summary(ctx, "bulk push", &pace).await;
    Ok(Outcome::Done)
}

/// Whether a default-scope save is pending or in a bulk not settled yet.
fn unsettled_defaults(checkpoint: &Checkpoint) -> bool {
    checkpoint
        .pending
        .iter()
        .chain(checkpoint.submitted.iter().flat_map(|b| &b.items))
        .any(|item| item.scope == DEFAULT_SCOPE)
}

/// Submits every pending save (one bulk per scope and per `bulk_max_items`) and settles the
/// bulks, polling again after a pause, until none is left; `Some` when told to stop first.
async fn drain(
    ctx: &JobContext,
    store: &Store,
    connector: &MagentoConnector,
    checkpoint: &mut Checkpoint,
    pace: &Pace,
    total: usize,
) -> Result<Option<Stop>, JobError> {
    loop {
        submit(
            ctx,
            store,
            connector,
            checkpoint,
            store.bulk_max_items(),
            Fill::Any,
        )
        .await?;
        if checkpoint.submitted.is_empty() {
            return Ok(None);
        }
        settle(ctx, store, connector, checkpoint).await?;
        if checkpoint.by_product {
            return Ok(None);
        }
        pace.tick(ctx, total).await;
        if !checkpoint.submitted.is_empty()
            && let Some(stop) = ctx.sleep(POLL_EVERY).await
        {
            return Ok(Some(stop));
        }
    }
}

/// Plans a window of proposals (one batched read per scope), `consumed` of the job's: the outcomes that need no bulk
/// come back to be recorded, product saves join the checkpoint's pending ones, gallery-entry
/// updates are sent at once, and a write without a save is read back at once.
async fn plan_window(
    ctx: &JobContext,
    store: &Store,
    connector: &MagentoConnector,
    scopes: &Scopes,
    proposals: Vec<Proposal>,
    consumed: usize,
    checkpoint: &mut Checkpoint,
) -> Result<Vec<(Proposal, PushResult)>, JobError> {
    let db = &ctx.state.db;
    let proposals: Vec<Proposal> = proposals.into_iter().filter(is_pending).collect();
    // Proposals decided otherwise since the push was asked for are settled as they are.
    ctx.advance(consumed.saturating_sub(proposals.len()) as i64);
    let watch = |scope: &str| watch(store, scope);
    let prepared = prepare_many(db, store, connector, &proposals, scopes, &watch).await?;
    let mut results = Vec::new();
    let mut direct = Vec::new();
    for (p, prepared) in proposals.iter().zip(prepared) {
        let write = match prepared {
            Prepared::Write(write) => write,
            Prepared::AlreadyApplied { store } => {
                results.push((p.clone(), PushResult::AlreadyApplied { store }));
                continue;
            }
            Prepared::Conflict(fields) => {
                results.push((p.clone(), PushResult::Conflict(fields)));
                continue;
            }
            Prepared::Failed(message) => {
                results.push((p.clone(), PushResult::Failed(message)));
                continue;
            }
            Prepared::Refused(message) => {
                results.push((p.clone(), PushResult::Refused(message)));
                continue;
            }
        };
        super::log_warnings(ctx, p, &write.warnings).await;
        let unbundled: Vec<_> = write
            .calls
            .iter()
            .filter(|call| call.product_save_body().is_none())
            .collect();
        if let Err(message) = send_calls(db, store.id, connector, &unbundled).await? {
            results.push((p.clone(), PushResult::Failed(message)));
            continue;
        }
        match write.calls.iter().find_map(|call| call.product_save_body()) {
            Some(body) => checkpoint.pending.push(Item {
                proposal: p.id,
                scope: p.store_view.clone(),
                body: body.clone(),
                rounds: 0,
                check: write.check.clone(),
            }),
            None => direct.push((p, write)),
        }
    }
    let sent: Vec<Sent> = direct
        .iter()
        .map(|(p, write)| Sent {
            proposal: p,
            check: &write.check,
            requests: write.calls.len(),
        })
        .collect();
    let read = read_back_many(db, store.id, connector, &sent, &watch).await?;
    results.extend(direct.iter().map(|(p, _)| (*p).clone()).zip(read));
    Ok(results)
}

/// Polls each submitted bulk once. The bulks whose operations all ended are read back (one
/// `sku in (…)` request per scope and list) and recorded, in one transaction with the
/// checkpoint; operations Magento calls retriable go back to the pending saves.
async fn settle(
    ctx: &JobContext,
    store: &Store,
    connector: &MagentoConnector,
    checkpoint: &mut Checkpoint,
) -> Result<(), JobError> {
    let db = &ctx.state.db;
    let watch = |scope: &str| watch(store, scope);
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
        let is_canary = bulk.canary;
        let ids: Vec<Uuid> = bulk.items.iter().map(|item| item.proposal).collect();
        let proposals: HashMap<Uuid, Proposal> = load_many(db, store.id, &ids)
            .await?
            .into_iter()
            .map(|p| (p.id, p))
            .collect();
        let mut complete = Vec::new();
        for (i, item) in bulk.items.into_iter().enumerate() {
            let Some(proposal) = proposals.get(&item.proposal) else {
                continue;
            };
            match outcomes.get(i).cloned().unwrap_or(BulkOutcome::Open) {
                BulkOutcome::Complete => complete.push((proposal, item)),
                BulkOutcome::Retriable(_) if item.rounds < MAX_ROUNDS => {
                    checkpoint.pending.push(item);
                }
                BulkOutcome::Retriable(m) | BulkOutcome::Failed(m) => {
                    settled.push((proposal.clone(), PushResult::Failed(m)));
                }
                BulkOutcome::Open => settled.push((
                    proposal.clone(),
                    PushResult::Failed(format!(
                        "bulk {} is still open after {} polls: is Magento's async.operations.all consumer running?",
                        bulk.uuid, bulk.polls
                    )),
                )),
            }
        }
        let sent: Vec<Sent> = complete
            .iter()
            .map(|(proposal, item)| Sent {
                proposal,
                check: &item.check,
                requests: 1,
            })
            .collect();
        let read = read_back_many(db, store.id, connector, &sent, &watch).await?;
        for ((proposal, item), result) in complete.iter().zip(read) {
            if is_canary && !judge_canary(ctx, store, checkpoint, proposal, item, &result).await? {
                continue;
            }
            settled.push(((*proposal).clone(), result));
        }
    }
    checkpoint.submitted = still_open;
    let mut tx = db.begin().await?;
    for (proposal, result) in settled {
        ctx.advance(1);
        record(&mut tx, ctx, &proposal, result).await?;
    }
    ctx.save(&mut tx, &*checkpoint).await?;
    tx.commit().await?;
    Ok(())
}

/// Which pending saves [`submit`] sends.
#[derive(Clone, Copy, PartialEq)]
enum Fill {
    /// Only full bulks (while planning goes on).
    Full,
    /// Everything pending.
    Any,
}

/// Submits pending saves, one bulk per scope of at most `max_items`, each recorded in the
/// checkpoint as soon as Magento accepted it.
async fn submit(
    ctx: &JobContext,
    store: &Store,
    connector: &MagentoConnector,
    checkpoint: &mut Checkpoint,
    max_items: usize,
    fill: Fill,
) -> Result<(), JobError> {
    // Nothing goes while a canary is out, nor once one landed elsewhere.
    if checkpoint.by_product || checkpoint.submitted.iter().any(|b| b.canary) {
        return Ok(());
    }
    let mut scopes: Vec<String> = checkpoint.pending.iter().map(|i| i.scope.clone()).collect();
    scopes.sort();
    scopes.dedup();
    let default_view = store.default_view().map(|v| v.code.as_str());
    if let Some(scope) = scopes.iter().find(|scope| {
        canary::needed(
            store.bulk_keeps_scope,
            &checkpoint.proven,
            scope,
            default_view,
        )
    }) {
        let index = checkpoint
            .pending
            .iter()
            .position(|i| i.scope == *scope)
            .expect("a pending save of the scope");
        let item = checkpoint.pending.remove(index);
        return submit_one(ctx, store, connector, checkpoint, scope, vec![item], true).await;
    }
    for scope in scopes {
        loop {
            let waiting = checkpoint
                .pending
                .iter()
                .filter(|i| i.scope == scope)
                .count();
            if waiting == 0 || (fill == Fill::Full && waiting < max_items) {
                break;
            }
            let mut taken = 0;
            let (items, rest): (Vec<Item>, Vec<Item>) = std::mem::take(&mut checkpoint.pending)
                .into_iter()
                .partition(|i| {
                    let take = i.scope == scope && taken < max_items;
                    taken += usize::from(take);
                    take
                });
            checkpoint.pending = rest;
            submit_one(ctx, store, connector, checkpoint, &scope, items, false).await?;
        }
    }
    Ok(())
}

/// Submits `items` of `scope` as one bulk (a `canary`: one save alone) and records it with the
/// checkpoint.
async fn submit_one(
    ctx: &JobContext,
    store: &Store,
    connector: &MagentoConnector,
    checkpoint: &mut Checkpoint,
    scope: &str,
    items: Vec<Item>,
    canary: bool,
) -> Result<(), JobError> {
    let db = &ctx.state.db;
    let bodies = items.iter().map(|i| i.body.clone()).collect();
    let (uuid, refused) = match connector.submit_product_saves(scope, bodies).await {
        Ok(answer) => answer,
        Err(e @ ConnectorError::PermissionMissing { .. }) => {
            return Err(permissions::refused(db, store.id, "push", e).await);
        }
        Err(ConnectorError::NeedsReauth(m)) => return Err(JobError::Fatal(m)),
        Err(e) => return Err(JobError::Transient(e.to_string())),
    };
    ctx.add("bulks", 1);
    if canary {
        ctx.add("canaries", 1);
        ctx.log(
            "info",
            format!(
                "bulk {uuid}: canary, SKU {} alone in {scope}, to see where the store saves it",
                items[0].body["product"]["sku"].as_str().unwrap_or("?")
            ),
        )
        .await;
    } else {
        ctx.log(
            "info",
            format!("bulk {uuid}: {} saves in {scope}", items.len()),
        )
        .await;
    }
    let mut tx = db.begin().await?;
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
        canary,
    });
    ctx.save(&mut tx, &*checkpoint).await?;
    tx.commit().await?;
    Ok(())
}

/// Judges a canary's read-back: landed in its scope, the scope is proven (and a store not
/// known to keep scopes is marked so); landed in the default store view, the push switches to
/// product by product with the canary's proposal first and what to undo kept. `false` when the
/// canary is not to be recorded now (it is pushed again product by product).
async fn judge_canary(
    ctx: &JobContext,
    store: &Store,
    checkpoint: &mut Checkpoint,
    proposal: &Proposal,
    item: &Item,
    result: &PushResult,
) -> Result<bool, JobError> {
    let PushResult::Written { verdict, .. } = result else {
        return Ok(true);
    };
    let default_view = store.default_view().map(|v| v.code.clone());
    let misplaced = default_view
        .as_deref()
        .and_then(|view| canary::misplaced(verdict, &proposal.sku, &item.scope, view));
    if let Some(revert) = misplaced {
        ctx.log(
            "warn",
            format!(
                "bulk canary: Magento saved SKU {} sent to {} in the default store view {}; undoing it there and pushing the rest product by product",
                proposal.sku, item.scope, revert.view
            ),
        )
        .await;
        checkpoint.by_product = true;
        checkpoint.reverts.push(revert);
        checkpoint.direct.push(proposal.id);
        return Ok(false);
    }
    if verdict.is_clean() {
        checkpoint.proven.push(item.scope.clone());
        if store.bulk_keeps_scope != Some(true) && default_view.as_deref() != Some(&item.scope) {
            stores::set_bulk_keeps_scope(
                &ctx.state.db,
                store.id,
                true,
                &canary::kept_detail(&item.scope),
            )
            .await?;
        }
    }
    Ok(true)
}

/// Once a canary was saved elsewhere: puts the default store view back after it (and marks
/// the store), then pushes every proposal left product by product in push order — the
/// canary's, the saves still pending, those not planned yet — in windows of one scope, each
/// recorded with the checkpoint.
async fn by_product(
    ctx: &JobContext,
    store: &Store,
    connector: &MagentoConnector,
    scopes: &Scopes,
    params: &PushParams,
    checkpoint: &mut Checkpoint,
    pace: &Pace,
) -> Result<Option<Stop>, JobError> {
    let db = &ctx.state.db;
    let total = params.proposals.len();
    while let Some(revert) = checkpoint.reverts.first().cloned() {
        let notes = canary::undo(ctx, store, connector, &revert).await?;
        let detail = canary::misplaced_detail(&revert, &notes);
        stores::set_bulk_keeps_scope(db, store.id, false, &detail).await?;
        tracing::warn!(store_id = %store.id, "{detail}");
        ctx.log("warn", detail).await;
        checkpoint.reverts.remove(0);
        save(ctx, checkpoint).await?;
    }
    if !checkpoint.pending.is_empty() || checkpoint.next < total {
        let pending = std::mem::take(&mut checkpoint.pending);
        checkpoint
            .direct
            .extend(pending.into_iter().map(|item| item.proposal));
        checkpoint
            .direct
            .extend_from_slice(&params.proposals[checkpoint.next.min(total)..]);
        checkpoint.next = total;
        save(ctx, checkpoint).await?;
    }
    let no_watch = |_: &str| Vec::new();
    while !checkpoint.direct.is_empty() {
        if let Some(stop) = ctx.should_stop().await {
            return Ok(Some(stop));
        }
        let head = &checkpoint.direct[..checkpoint.direct.len().min(WINDOW)];
        let mut proposals = load_many(db, store.id, head).await?;
        // One scope per window, so a product's default scope is written before its views.
        let scope = proposals.first().map(|p| p.store_view.clone());
        let cut = proposals
            .iter()
            .position(|p| Some(&p.store_view) != scope.as_ref())
            .unwrap_or(proposals.len());
        let consumed = match proposals.get(cut) {
            Some(next) => head
                .iter()
                .position(|id| *id == next.id)
                .unwrap_or(head.len()),
            None => head.len(),
        };
        proposals.truncate(cut);
        let proposals: Vec<Proposal> = proposals.into_iter().filter(is_pending).collect();
        ctx.advance(consumed.saturating_sub(proposals.len()) as i64);
        let prepared = prepare_many(db, store, connector, &proposals, scopes, &no_watch).await?;
        let mut results = Vec::new();
        let mut writes = Vec::new();
        for (p, prepared) in proposals.iter().zip(prepared) {
            match prepared {
                Prepared::Write(write) => writes.push((p, write)),
                Prepared::AlreadyApplied { store } => {
                    results.push((p.clone(), PushResult::AlreadyApplied { store }));
                }
                Prepared::Conflict(fields) => {
                    results.push((p.clone(), PushResult::Conflict(fields)))
                }
                Prepared::Failed(message) => results.push((p.clone(), PushResult::Failed(message))),
                Prepared::Refused(message) => {
                    results.push((p.clone(), PushResult::Refused(message)));
                }
            }
        }
        let mut sent = Vec::new();
        for (p, write) in &writes {
            super::log_warnings(ctx, p, &write.warnings).await;
            let calls: Vec<_> = write.calls.iter().collect();
            match send_calls(db, store.id, connector, &calls).await? {
                Ok(()) => sent.push(Sent {
                    proposal: p,
                    check: &write.check,
                    requests: write.calls.len(),
                }),
                Err(message) => results.push(((*p).clone(), PushResult::Failed(message))),
            }
        }
        let read = read_back_many(db, store.id, connector, &sent, &no_watch).await?;
        results.extend(sent.iter().map(|s| s.proposal.clone()).zip(read));
        checkpoint.direct.drain(..consumed);
        let mut tx = db.begin().await?;
        for (proposal, result) in results {
            ctx.advance(1);
            record(&mut tx, ctx, &proposal, result).await?;
        }
        ctx.save(&mut tx, &*checkpoint).await?;
        tx.commit().await?;
        pace.tick(ctx, total).await;
    }
    Ok(None)
}

async fn save(ctx: &JobContext, checkpoint: &Checkpoint) -> Result<(), JobError> {
    let mut tx = ctx.state.db.begin().await?;
    ctx.save(&mut tx, checkpoint).await?;
    tx.commit().await?;
    Ok(())
}
