//! The direct push: approved proposals written to the store at its pace.
//!
//! Proposals go in windows of up to [`WINDOW`] of one scope. A window reads every product it
//! needs in one request per scope ([`prepare_many`]), sends its writes side by side, reads
//! them back the same way ([`read_back_many`]) and records the outcomes in one transaction
//! with the checkpoint. [`WINDOWS_AT_ONCE`] windows are at the store together, so while one
//! reads back and records the others write; the store's client keeps its `max_concurrency`
//! and `requests_per_second` across all of them.
//!
//! A product's proposals go one after another in push order, its default scope before its
//! store views: a proposal joins a window only once no earlier proposal of its product is
//! unsettled, so a store view's write starts after the same product's default-scope write was
//! read back and recorded, and is judged against those default values.
//!
//! The checkpoint names every settled proposal (all before `next`, and those after it settled
//! out of order). A resumed push reads the others again: what the store applied before a crash
//! is found applied and not sent again, so no field is written twice.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::time::Instant;

use futures::StreamExt;
use futures::stream::FuturesUnordered;
use serde::{Deserialize, Serialize};
use sqlx::PgPool;
use tokio::sync::Mutex;
use uuid::Uuid;

use super::progress::Pace;
use super::{
    COUNTERS, Prepared, PushParams, PushResult, Sent, WINDOW, is_pending, load_many, log_summary,
    log_warnings, prepare_many, read_back_many, record_all, send_calls,
};
use crate::connector::magento::{MagentoConnector, PreparedCall};
use crate::jobs::context::{JobContext, JobError, Outcome};
use crate::stores::Store;
use crate::stores::attribute_scopes::Scopes;

/// Windows at the store at once.
const WINDOWS_AT_ONCE: usize = 4;

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Checkpoint {
    /// Every proposal before this index is settled.
    next: usize,
    /// Proposals at or after `next` settled out of order (checkpoints of older versions have
    /// none).
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    settled: BTreeSet<usize>,
}

impl Checkpoint {
    fn is_settled(&self, index: usize) -> bool {
        index < self.next || self.settled.contains(&index)
    }

    fn settle(&mut self, index: usize) {
        if index >= self.next {
            self.settled.insert(index);
        }
        while self.settled.remove(&self.next) {
            self.next += 1;
        }
    }

    fn count(&self) -> usize {
        self.next + self.settled.len()
    }
}

/// What the push order needs to know of a proposal before loading it.
struct Slot {
    product_id: Uuid,
    scope: String,
}

/// The product and scope of each of `ids` (`None`: not a proposal of the store).
async fn slots(db: &PgPool, store_id: Uuid, ids: &[Uuid]) -> Result<Vec<Option<Slot>>, JobError> {
    let rows: Vec<(Uuid, Uuid, String)> = sqlx::query_as(
        "SELECT v.id, v.product_id, v.store_view FROM product_versions v
         JOIN products p ON p.id = v.product_id
         WHERE v.id = ANY($1) AND p.store_id = $2",
    )
    .bind(ids)
    .bind(store_id)
    .fetch_all(db)
    .await?;
    let mut found: HashMap<Uuid, Slot> = rows
        .into_iter()
        .map(|(id, product_id, scope)| (id, Slot { product_id, scope }))
        .collect();
    Ok(ids.iter().map(|id| found.remove(id)).collect())
}

/// Deals out the proposals in windows, in push order.
struct Windows<'a> {
    ids: &'a [Uuid],
    slots: &'a [Option<Slot>],
    /// The next proposal not yet dealt out.
    cursor: usize,
    /// Settled by an earlier attempt of the job.
    done_before: &'a Checkpoint,
    /// Products with a proposal in a window at the store.
    busy: HashSet<Uuid>,
}

impl Windows<'_> {
    /// The next window: proposals of one scope from the cursor on, each of a product with no
    /// proposal at the store. Empty when every proposal is dealt out, or when the next one
    /// waits for its product's earlier proposal (which is then at the store).
    fn next(&mut self) -> Vec<(usize, Uuid)> {
        let mut window = Vec::new();
        let mut scope: Option<&str> = None;
        while self.cursor < self.ids.len() && window.len() < WINDOW {
            let index = self.cursor;
            if self.done_before.is_settled(index) {
                self.cursor += 1;
                continue;
            }
            if let Some(slot) = &self.slots[index] {
                if scope.is_some_and(|s| s != slot.scope) || self.busy.contains(&slot.product_id) {
                    break;
                }
                scope = Some(&slot.scope);
                self.busy.insert(slot.product_id);
            }
            window.push((index, self.ids[index]));
            self.cursor += 1;
        }
        window
    }

    /// The window's products may go on to their next proposals.
    fn release(&mut self, window: &[usize]) {
        for index in window {
            if let Some(slot) = &self.slots[*index] {
                self.busy.remove(&slot.product_id);
            }
        }
    }
}

pub(super) async fn run(
    ctx: &JobContext,
    store: &Store,
    connector: &MagentoConnector,
    scopes: &Scopes,
    params: &PushParams,
) -> Result<Outcome, JobError> {
    let db = &ctx.state.db;
    let done_before: Checkpoint = ctx.checkpoint().unwrap_or_default();
    let total = params.proposals.len();
    ctx.set_total(Some(total as i64));
    ctx.set_done(done_before.count() as i64);
    for counter in COUNTERS {
        ctx.add(counter, 0);
    }
    let slots = slots(db, store.id, &params.proposals).await?;
    let pace = Pace::start(ctx);
    let checkpoint = Mutex::new(done_before.clone());
    let mut windows = Windows {
        ids: &params.proposals,
        slots: &slots,
        cursor: 0,
        done_before: &done_before,
        busy: HashSet::new(),
    };
    let mut at_store = FuturesUnordered::new();
    let mut stop = None;
    loop {
        if stop.is_none() {
            stop = ctx.should_stop().await;
        }
        // Once told to stop, the windows at the store finish and are recorded; no more start.
        while stop.is_none() && at_store.len() < WINDOWS_AT_ONCE {
            let window = windows.next();
            if window.is_empty() {
                break;
            }
            at_store.push(push_window(
                ctx,
                store,
                connector,
                scopes,
                &checkpoint,
                window,
            ));
        }
        match at_store.next().await {
            Some(settled) => {
                windows.release(&settled?);
                pace.tick(ctx, total).await;
            }
            None => break,
        }
    }
    if let Some(stop) = stop {
        return Ok(Outcome::Stopped(stop));
    }
    log_summary(ctx, "push", &pace).await;
    Ok(Outcome::Done)
}

/// Plans, writes, reads back and records one window; answers the indices it settled.
async fn push_window(
    ctx: &JobContext,
    store: &Store,
    connector: &MagentoConnector,
    scopes: &Scopes,
    checkpoint: &Mutex<Checkpoint>,
    window: Vec<(usize, Uuid)>,
) -> Result<Vec<usize>, JobError> {
    let db = &ctx.state.db;
    let started = Instant::now();
    let ids: Vec<Uuid> = window.iter().map(|(_, id)| *id).collect();
    let proposals: Vec<_> = load_many(db, store.id, &ids)
        .await?
        .into_iter()
        .filter(is_pending)
        .collect();
    let no_watch = |_: &str| Vec::new();
    let prepared = prepare_many(db, store, connector, &proposals, scopes, &no_watch).await?;
    let mut results: Vec<Option<PushResult>> = Vec::with_capacity(proposals.len());
    let mut writes = Vec::new();
    for (i, prepared) in prepared.into_iter().enumerate() {
        results.push(match prepared {
            Prepared::Write(write) => {
                writes.push((i, write));
                None
            }
            Prepared::AlreadyApplied { store } => Some(PushResult::AlreadyApplied { store }),
            Prepared::Conflict(fields) => Some(PushResult::Conflict(fields)),
            Prepared::Failed(message) => Some(PushResult::Failed(message)),
            Prepared::Refused(message) => Some(PushResult::Refused(message)),
        });
    }
    let planned = started.elapsed();
    for (i, write) in &writes {
        log_warnings(ctx, &proposals[*i], &write.warnings).await;
    }
    // Side by side: the store's client lets through what its limits allow.
    let calls: Vec<Vec<&PreparedCall>> = writes
        .iter()
        .map(|(_, write)| write.calls.iter().collect())
        .collect();
    let mut sends = Vec::with_capacity(writes.len());
    for calls in &calls {
        sends.push(send_calls(db, store.id, connector, calls));
    }
    let answers = futures::future::join_all(sends).await;
    let mut sent = Vec::with_capacity(writes.len());
    let mut sent_at = Vec::with_capacity(writes.len());
    for ((i, write), answer) in writes.iter().zip(answers) {
        match answer? {
            Ok(()) => {
                sent.push(Sent {
                    proposal: &proposals[*i],
                    check: &write.check,
                    requests: write.calls.len(),
                });
                sent_at.push(*i);
            }
            Err(message) => results[*i] = Some(PushResult::Failed(message)),
        }
    }
    let written = started.elapsed();
    let read = read_back_many(db, store.id, connector, &sent, &no_watch).await?;
    for (i, result) in sent_at.into_iter().zip(read) {
        results[i] = Some(result);
    }
    let read_back = started.elapsed();

    // Windows commit one at a time, so each checkpoint saved holds every earlier one's.
    let mut checkpoint = checkpoint.lock().await;
    let mut next = checkpoint.clone();
    let mut tx = db.begin().await?;
    let outcomes = proposals
        .iter()
        .zip(results)
        .filter_map(|(proposal, result)| Some((proposal, result?)))
        .collect();
    record_all(&mut tx, ctx, outcomes).await?;
    for (index, _) in &window {
        next.settle(*index);
    }
    ctx.set_done(next.count() as i64);
    ctx.save(&mut tx, &next).await?;
    tx.commit().await?;
    *checkpoint = next;
    tracing::debug!(
        job_id = %ctx.job.id,
        proposals = window.len(),
        writes = writes.len(),
        planned_ms = planned.as_millis() as u64,
        written_ms = written.as_millis() as u64,
        read_back_ms = read_back.as_millis() as u64,
        recorded_ms = started.elapsed().as_millis() as u64,
        "push window"
    );
    Ok(window.into_iter().map(|(index, _)| index).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_checkpoint_moves_past_what_settled_in_any_order() {
        let mut checkpoint = Checkpoint::default();
        checkpoint.settle(2);
        checkpoint.settle(3);
        assert_eq!(checkpoint.next, 0);
        assert!(checkpoint.is_settled(3) && !checkpoint.is_settled(1));
        checkpoint.settle(0);
        checkpoint.settle(1);
        assert_eq!(checkpoint.next, 4);
        assert!(checkpoint.settled.is_empty());
        assert_eq!(checkpoint.count(), 4);
        // A checkpoint of an older version (one proposal at a time) reads the same.
        let old: Checkpoint = serde_json::from_value(serde_json::json!({"next": 7})).unwrap();
        assert!(old.is_settled(6) && !old.is_settled(7));
    }

    fn slot(product: u128, scope: &str) -> Option<Slot> {
        Some(Slot {
            product_id: Uuid::from_u128(product),
            scope: scope.into(),
        })
    }

    #[test]
    fn a_products_store_view_waits_for_its_default_scope() {
        let ids: Vec<Uuid> = (0..5).map(|i| Uuid::from_u128(100 + i)).collect();
        let slots = vec![
            slot(1, "all"),
            slot(2, "all"),
            slot(1, "fr"),
            slot(3, "fr"),
            slot(2, "fr"),
        ];
        let done_before = Checkpoint::default();
        let mut windows = Windows {
            ids: &ids,
            slots: &slots,
            cursor: 0,
            done_before: &done_before,
            busy: HashSet::new(),
        };
        let first = windows.next();
        assert_eq!(first.iter().map(|(i, _)| *i).collect::<Vec<_>>(), [0, 1]);
        // Product 1's store view waits while its default scope is at the store.
        assert!(windows.next().is_empty());
        windows.release(&[0, 1]);
        let second = windows.next();
        assert_eq!(
            second.iter().map(|(i, _)| *i).collect::<Vec<_>>(),
            [2, 3, 4]
        );
    }

    #[test]
    fn settled_proposals_are_skipped_and_a_product_appears_once_per_window() {
        let ids: Vec<Uuid> = (0..4).map(|i| Uuid::from_u128(100 + i)).collect();
        let slots = vec![slot(1, "all"), slot(2, "all"), slot(2, "all"), None];
        let mut done_before = Checkpoint::default();
        done_before.settle(0);
        let mut windows = Windows {
            ids: &ids,
            slots: &slots,
            cursor: 0,
            done_before: &done_before,
            busy: HashSet::new(),
        };
        assert_eq!(
            windows.next().iter().map(|(i, _)| *i).collect::<Vec<_>>(),
            [1]
        );
        windows.release(&[1]);
        // A proposal that is not the store's anymore goes along with any window.
        assert_eq!(
            windows.next().iter().map(|(i, _)| *i).collect::<Vec<_>>(),
            [2, 3]
        );
        assert!(windows.next().is_empty());
    }
}
