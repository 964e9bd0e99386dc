//! Pushing through Magento's asynchronous bulk API (a store setting, for large pushes).
//!
//! Proposals are read and planned in steps of several windows ([`plan_span`]: one `sku in
//! (…)` list per scope and window of a hundred, the lists side by side), and conflicts and
//! failures are recorded at once; gallery-entry updates are sent directly (the bulk API
//! carries product saves only). The product saves of a scope are submitted as a bulk as soon
//! as they fill one (the store's `bulk_max_items`; the rest once planning ends), and the bulks
//! polled side by side through `detailed-status`, a finished bulk settled while the next
//! step's reads are at the store: each operation, mapped back to its proposal by its position
//! among the request items, is read back (one `sku in (…)` list per scope and hundred, side
//! by side) and verified like a direct push, or ends the proposal `failed` with Magento's
//! message; operations Magento calls retriable are submitted again, up to [`MAX_ROUNDS`]
//! times. Each save's body and check are written once beside the job ([`saves`]); the
//! checkpoint names only proposals. Each bulk's uuid enters it as soon as Magento accepted
//! the bulk, so a restarted job resumes polling instead of submitting again, and plans the
//! saves still pending again from what the store shows ([`replan_pending`]). Magento
//! schedules every item of a bulk within the request (one operation row each,
//! `app/code/Magento/AsynchronousOperations/Model/MassSchedule.php::publishMass`), so the
//! cap keeps that request short.
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
use super::saves::{self, Planned};
use super::{
    Check, Prepared, Proposal, PushParams, PushResult, Sent, WINDOW, is_pending, load, load_many,
    prepare_many, read_back_many, record, record_all, send_calls,
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
/// Why a save planned by this job cannot be sent or judged: its row in [`saves`] is gone.
const LOST_SAVE: &str = "this push lost the save it planned for the proposal; pushing it again reads the store and plans it anew";
/// The most proposals planned together ([`plan_span`]).
const MAX_SPAN: usize = 1_000;
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

/// A planned save; its body and check are in [`saves`].
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Item {
    proposal: Uuid,
    scope: String,
    /// How many times this save was submitted.
    rounds: u32,
    /// The body checkpoints of earlier versions carried inline, moved to [`saves`] when such a
    /// job resumes ([`move_inline_saves`]).
    #[serde(default, skip_serializing)]
    body: Option<Value>,
    /// The check earlier checkpoints carried inline (likewise).
    #[serde(default, skip_serializing)]
    check: Option<Check>,
}

impl Item {
    fn new(proposal: Uuid, scope: String) -> Item {
        Item {
            proposal,
            scope,
            rounds: 0,
            body: None,
            check: None,
        }
    }
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
    let outcome = push(ctx, store, connector, scopes, params).await;
    // A job that will not resume needs its planned saves no more.
    if matches!(
        outcome,
        Ok(Outcome::Done | Outcome::Stopped(Stop::Cancelled)) | Err(JobError::Fatal(_))
    ) {
        saves::forget_job(&ctx.state.db, ctx.job.id).await?;
    }
    outcome
}

/// Moves the bodies and checks a checkpoint of an earlier version carried inline to
/// [`saves`], so a job resumed across an upgrade goes on.
async fn move_inline_saves(ctx: &JobContext, checkpoint: &mut Checkpoint) -> Result<(), JobError> {
    let inline: Vec<Planned> = checkpoint
        .pending
        .iter_mut()
        .chain(
            checkpoint
                .submitted
                .iter_mut()
                .flat_map(|b| b.items.iter_mut()),
        )
        .filter_map(|item| {
            Some(Planned {
                proposal: item.proposal,
                body: item.body.take()?,
                check: item.check.take().unwrap_or_default(),
            })
        })
        .collect();
    if inline.is_empty() {
        return Ok(());
    }
    let mut tx = ctx.state.db.begin().await?;
    saves::stash(&mut tx, ctx.job.id, &inline).await?;
    ctx.save(&mut tx, &*checkpoint).await?;
    tx.commit().await?;
    Ok(())
}

async fn push(
    ctx: &JobContext,
    store: &Store,
    connector: &MagentoConnector,
    scopes: &Scopes,
    params: &PushParams,
) -> Result<Outcome, JobError> {
    let db = &ctx.state.db;
    let resumed: Option<Checkpoint> = ctx.checkpoint();
    let is_resumed = resumed.is_some();
    let mut checkpoint = resumed.unwrap_or_default();
    move_inline_saves(ctx, &mut checkpoint).await?;
    let total = params.proposals.len();
    ctx.set_total(Some(total as i64));
    for counter in super::COUNTERS.iter().chain(&["bulks", "canaries"]) {
        ctx.add(counter, 0);
    }
    let pace = Pace::start(ctx);
    let max_items = store.bulk_max_items();
    let span = plan_span(store);
    if is_resumed && !checkpoint.by_product {
        replan_pending(ctx, store, connector, scopes, &mut checkpoint, span).await?;
    }
    let mut polled = Instant::now();
    // Bulks a poll found ended and not settled yet, with their outcomes.
    let mut ended = HashMap::new();
    // 1. Plan window by window and record what needs no bulk; a scope's saves go as soon as
    //    they fill a bulk, and the bulks Magento finished meanwhile are settled.
    while checkpoint.next < total && !checkpoint.by_product {
        if let Some(stop) = ctx.should_stop().await {
            return Ok(Outcome::Stopped(stop));
        }
        let started = Instant::now();
        let mut end = (checkpoint.next + span).min(total);
        let window = &params.proposals[checkpoint.next..end];
        let mut proposals = load_many(db, store.id, window).await?;
        let loaded = started.elapsed();
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
        // The bulks Magento finished are settled while the step's reads are at the store: the
        // two meet only in the checkpoint, which the step joins after both.
        // One bulk a step, so that settling keeps pace with planning.
        let settle_due = !checkpoint.submitted.is_empty()
            && (!ended.is_empty() || polled.elapsed() >= POLL_EVERY);
        let (step, settled) = tokio::join!(
            async {
                let step = plan_window(ctx, store, connector, scopes, proposals, consumed).await;
                (step, started.elapsed())
            },
            async {
                let settled = if settle_due {
                    settle(ctx, store, connector, &mut checkpoint, 1, &mut ended).await
                } else {
                    Ok(false)
                };
                (settled, started.elapsed())
            }
        );
        let ((step, planned), (settled, settled_at)) = (step, settled);
        settled?;
        if settle_due {
            polled = Instant::now();
        }
        checkpoint.next = end;
        apply_step(ctx, &mut checkpoint, step?).await?;
        let applied = started.elapsed();
        submit(
            ctx,
            store,
            connector,
            &mut checkpoint,
            max_items,
            Fill::Full,
        )
        .await?;
        tracing::debug!(
            job_id = %ctx.job.id,
            proposals = consumed,
            loaded_ms = loaded.as_millis() as u64,
            planned_ms = planned.as_millis() as u64,
            settled_ms = settle_due.then_some(settled_at.as_millis() as u64),
            applied_ms = applied.as_millis() as u64,
            submitted_ms = started.elapsed().as_millis() as u64,
            "bulk push step"
        );
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

/// Plans the saves pending at a restart again, from what the store shows now. A crash between
/// Magento accepting a bulk and the checkpoint naming it leaves that bulk's saves pending: sent
/// blindly they would be written twice, planned again those Magento ran are found applied.
async fn replan_pending(
    ctx: &JobContext,
    store: &Store,
    connector: &MagentoConnector,
    scopes: &Scopes,
    checkpoint: &mut Checkpoint,
    span: usize,
) -> Result<(), JobError> {
    let db = &ctx.state.db;
    let ids: Vec<Uuid> = checkpoint.pending.iter().map(|i| i.proposal).collect();
    for chunk in ids.chunks(span) {
        let proposals = load_many(db, store.id, chunk).await?;
        let step = plan_window(ctx, store, connector, scopes, proposals, chunk.len()).await?;
        // A step appends what it plans, so the old saves are always in front.
        checkpoint.pending.drain(..chunk.len());
        apply_step(ctx, checkpoint, step).await?;
    }
    Ok(())
}

/// What planning a step found: outcomes to record now, and the saves it planned.
struct Step {
    results: Vec<(Proposal, PushResult)>,
    saves: Vec<Planned>,
    items: Vec<Item>,
    /// Proposals decided otherwise since the push was asked for, settled as they are.
    skipped: usize,
}

/// Records a planned step with the checkpoint, its saves joining the pending ones.
async fn apply_step(
    ctx: &JobContext,
    checkpoint: &mut Checkpoint,
    step: Step,
) -> Result<(), JobError> {
    checkpoint.pending.extend(step.items);
    let mut tx = ctx.state.db.begin().await?;
    ctx.advance((step.skipped + step.results.len()) as i64);
    let (proposals, outcomes): (Vec<Proposal>, Vec<PushResult>) = step.results.into_iter().unzip();
    record_all(&mut tx, ctx, proposals.iter().zip(outcomes).collect()).await?;
    saves::stash(&mut tx, ctx.job.id, &step.saves).await?;
    ctx.save(&mut tx, &*checkpoint).await?;
    tx.commit().await?;
    Ok(())
}

/// Proposals planned together: a `sku in (…)` list of [`WINDOW`] per scope for every two
/// requests the store allows in flight (a step reads at least two scopes), so the reads of a
/// step keep the store busy instead of going one list after another; at most [`MAX_SPAN`],
/// to keep the job's memory flat.
fn plan_span(store: &Store) -> usize {
    let in_flight = usize::try_from(store.rate_limit().max_concurrency).unwrap_or(1);
    (WINDOW * in_flight.div_ceil(2)).clamp(WINDOW, MAX_SPAN)
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
        settle(
            ctx,
            store,
            connector,
            checkpoint,
            usize::MAX,
            &mut HashMap::new(),
        )
        .await?;
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

/// Plans a step of proposals (one `sku in (…)` list per scope and hundred), `consumed` of the
/// job's, leaving the checkpoint to [`apply_step`]: the outcomes that need no bulk come back
/// to be recorded and the product saves to join the pending ones; gallery-entry updates are
/// sent at once, and a write without a save is read back at once.
async fn plan_window(
    ctx: &JobContext,
    store: &Store,
    connector: &MagentoConnector,
    scopes: &Scopes,
    proposals: Vec<Proposal>,
    consumed: usize,
) -> Result<Step, JobError> {
    let db = &ctx.state.db;
    let proposals: Vec<Proposal> = proposals.into_iter().filter(is_pending).collect();
    let skipped = consumed.saturating_sub(proposals.len());
    let watch = |scope: &str| watch(store, scope);
    let prepared = prepare_many(db, store, connector, &proposals, scopes, &watch).await?;
    let mut results = Vec::new();
    let mut planned = Vec::new();
    let mut items = Vec::new();
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
            Some(body) => {
                items.push(Item::new(p.id, p.store_view.clone()));
                planned.push(Planned {
                    proposal: p.id,
                    body: body.clone(),
                    check: write.check.clone(),
                });
            }
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
    Ok(Step {
        results,
        saves: planned,
        items,
        skipped,
    })
}

/// Settles up to `most` bulks whose operations all ended ([`settle_bulk`]), one after another,
/// so the job holds one bulk's products at a time: those an earlier poll found ended
/// (`ended`, their outcomes final), else those found ended by polling every submitted bulk
/// once, side by side. The ended ones left over wait in `ended`; `true` when there are some.
async fn settle(
    ctx: &JobContext,
    store: &Store,
    connector: &MagentoConnector,
    checkpoint: &mut Checkpoint,
    most: usize,
    ended: &mut HashMap<String, Vec<BulkOutcome>>,
) -> Result<bool, JobError> {
    let db = &ctx.state.db;
    let mut finished = Vec::new();
    for bulk in std::mem::take(&mut checkpoint.submitted) {
        match ended.remove(&bulk.uuid) {
            Some(outcomes) if finished.len() < most => finished.push((bulk, outcomes)),
            Some(outcomes) => {
                ended.insert(bulk.uuid.clone(), outcomes);
                checkpoint.submitted.push(bulk);
            }
            None => checkpoint.submitted.push(bulk),
        }
    }
    ended.retain(|uuid, _| checkpoint.submitted.iter().any(|b| b.uuid == *uuid));
    let submitted = if finished.is_empty() {
        std::mem::take(&mut checkpoint.submitted)
    } else {
        Vec::new()
    };
    // The client's limiters keep the store's pace.
    let polls =
        futures::future::join_all(submitted.iter().map(|b| connector.bulk_outcomes(&b.uuid))).await;
    for (mut bulk, outcomes) in submitted.into_iter().zip(polls) {
        let outcomes = match outcomes {
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
            checkpoint.submitted.push(bulk);
        } else if finished.len() == most {
            ended.insert(bulk.uuid.clone(), outcomes);
            checkpoint.submitted.push(bulk);
        } else {
            finished.push((bulk, outcomes));
        }
    }
    // Until its own outcomes are recorded, a finished bulk stays in the checkpoint.
    checkpoint
        .submitted
        .extend(finished.iter().map(|(bulk, _)| bulk.clone()));
    for (bulk, outcomes) in finished {
        checkpoint.submitted.retain(|b| b.uuid != bulk.uuid);
        settle_bulk(ctx, store, connector, checkpoint, bulk, outcomes).await?;
    }
    Ok(!ended.is_empty())
}

/// Settles a bulk whose operations all ended (or that was polled [`MAX_POLLS`] times): the
/// completed saves are read back (one `sku in (…)` list per scope and hundred, side by side)
/// and judged, the others recorded `failed` with Magento's message, and those Magento calls
/// retriable go back to the pending saves; all in one transaction with the checkpoint.
async fn settle_bulk(
    ctx: &JobContext,
    store: &Store,
    connector: &MagentoConnector,
    checkpoint: &mut Checkpoint,
    bulk: Submitted,
    outcomes: Vec<BulkOutcome>,
) -> Result<(), JobError> {
    let db = &ctx.state.db;
    let watch = |scope: &str| watch(store, scope);
    let ids: Vec<Uuid> = bulk.items.iter().map(|item| item.proposal).collect();
    let proposals: HashMap<Uuid, Proposal> = load_many(db, store.id, &ids)
        .await?
        .into_iter()
        .map(|p| (p.id, p))
        .collect();
    let mut settled = Vec::new();
    // The saves Magento ran; and those done with, whose planned saves can go.
    let mut complete = Vec::new();
    let mut done_with = Vec::new();
    for (i, item) in bulk.items.into_iter().enumerate() {
        let Some(proposal) = proposals.get(&item.proposal) else {
            done_with.push(item.proposal);
            continue;
        };
        let outcome = outcomes.get(i).cloned().unwrap_or(BulkOutcome::Open);
        if !matches!(outcome, BulkOutcome::Retriable(_) if item.rounds < MAX_ROUNDS) {
            done_with.push(item.proposal);
        }
        match outcome {
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
    let ids: Vec<Uuid> = complete.iter().map(|(p, _)| p.id).collect();
    let checks = saves::checks(db, ctx.job.id, &ids).await?;
    let (complete, unjudged): (Vec<_>, Vec<_>) = complete
        .into_iter()
        .partition(|(p, _)| checks.contains_key(&p.id));
    settled.extend(
        unjudged
            .into_iter()
            .map(|(p, _)| (p.clone(), PushResult::Failed(LOST_SAVE.into()))),
    );
    let sent: Vec<Sent> = complete
        .iter()
        .map(|(proposal, _)| Sent {
            proposal,
            check: &checks[&proposal.id],
            requests: 1,
        })
        .collect();
    let read = read_back_many(db, store.id, connector, &sent, &watch).await?;
    for ((proposal, item), result) in complete.iter().zip(read) {
        if bulk.canary && !judge_canary(ctx, store, checkpoint, proposal, item, &result).await? {
            continue;
        }
        settled.push(((*proposal).clone(), result));
    }
    let mut tx = db.begin().await?;
    ctx.advance(settled.len() as i64);
    let (proposals, outcomes): (Vec<Proposal>, Vec<PushResult>) = settled.into_iter().unzip();
    record_all(&mut tx, ctx, proposals.iter().zip(outcomes).collect()).await?;
    saves::forget(&mut tx, ctx.job.id, &done_with).await?;
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
    let ids: Vec<Uuid> = items.iter().map(|i| i.proposal).collect();
    let mut stashed = saves::bodies(db, ctx.job.id, &ids).await?;
    let (items, lost): (Vec<Item>, Vec<Item>) = items
        .into_iter()
        .partition(|i| stashed.contains_key(&i.proposal));
    if !lost.is_empty() {
        let ids: Vec<Uuid> = lost.iter().map(|i| i.proposal).collect();
        let mut tx = db.begin().await?;
        for proposal in load_many(db, store.id, &ids).await? {
            ctx.advance(1);
            record(
                &mut tx,
                ctx,
                &proposal,
                PushResult::Failed(LOST_SAVE.into()),
            )
            .await?;
        }
        // The saves about to go stay pending in this checkpoint, until one names their bulk.
        let mut kept = checkpoint.clone();
        kept.pending.extend(items.iter().cloned());
        ctx.save(&mut tx, &kept).await?;
        tx.commit().await?;
    }
    if items.is_empty() {
        return Ok(());
    }
    let bodies: Vec<Value> = items
        .iter()
        .filter_map(|i| stashed.remove(&i.proposal))
        .collect();
    let first_sku = bodies[0]["product"]["sku"]
        .as_str()
        .unwrap_or("?")
        .to_string();
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
                "bulk {uuid}: canary, SKU {first_sku} alone in {scope}, to see where the store saves it"
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
    let mut refused_ids = Vec::new();
    for (item, refusal) in items.into_iter().zip(refused) {
        match refusal {
            Some(message) => {
                refused_ids.push(item.proposal);
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
    saves::forget(&mut tx, ctx.job.id, &refused_ids).await?;
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
        ctx.advance(results.len() as i64);
        let (proposals, outcomes): (Vec<Proposal>, Vec<PushResult>) = results.into_iter().unzip();
        record_all(&mut tx, ctx, proposals.iter().zip(outcomes).collect()).await?;
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
