//! Sync: pulls every product of a store, scope by scope (`all` for default values, then each
//! store view), into immutable versions.
//!
//! Pages are fetched concurrently up to the store's limit but committed in page order: the
//! pages that are ready commit together (up to [`MAX_BATCH_PRODUCTS`]) in one transaction with
//! the job's checkpoint, so a crash resumes at the first page not committed and never writes a
//! page twice. A product's content is hashed; a version is written
//! only when the hash differs from the live one, so re-syncing an unchanged catalog writes no
//! versions. Store-view versions hold only what differs from the default scope.

mod pages;

pub use pages::forget_seen;

use std::collections::HashSet;
use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use futures::stream::FuturesOrdered;
use futures::{FutureExt, StreamExt};
use serde::{Deserialize, Serialize};
use tokio::task::{JoinError, JoinHandle};

use crate::catalog::content::{DEFAULT_SCOPE, EncodedContent};
use crate::connector::magento::MagentoConnector;
use crate::connector::{Connector, ConnectorError, PageQuery, PulledPage};
use crate::jobs::context::{JobContext, JobError, Outcome, Stop};
use crate::stores::{self, Store, StoreStatus};

/// Products per page: Magento's input limit when enabled (300) is the ceiling. A store whose
/// `webapi/validation/maximum_page_size` is lower says so, and is then read in pages of its
/// maximum (`stores.max_page_size`).
pub const PAGE_SIZE: u32 = 300;
/// Incremental syncs look back this far before the watermark: clocks and transactions
/// that commit late must not hide a change.
const WATERMARK_OVERLAP_MINUTES: i64 = 5;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SyncMode {
    /// Every product of every store view; products no longer found are marked removed.
    #[default]
    Full,
    /// Only products changed since the last sync.
    Incremental,
}

#[derive(Debug, Clone, Serialize, Deserialize, Default)]
pub struct SyncParams {
    #[serde(default)]
    pub mode: SyncMode,
    /// A pipeline's sync: an incremental one reads every product instead when the store's last
    /// full sync is older than its `full_sync_every_days`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub full_when_due: bool,
}

/// Where a resumed sync continues.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Checkpoint {
    scopes: Vec<String>,
    /// Index into `scopes` of the scope being pulled.
    scope_index: usize,
    /// The first page of that scope not yet committed.
    next_page: u32,
    since: Option<DateTime<Utc>>,
    /// Latest `updated_at` seen: the next watermark.
    max_updated: Option<DateTime<Utc>>,
    /// Products in the default scope, for progress.
    default_total: Option<u64>,
    /// The page size `next_page` counts in (absent in checkpoints of older versions: 300).
    #[serde(default)]
    page_size: Option<u32>,
}

/// How the pulling of one scope ended.
enum ScopeEnd {
    Done,
    Stopped(Stop),
    /// The store refused the page size: it answers pages of up to this many products.
    PageSizeLimit(u32),
}

pub async fn run(ctx: &JobContext) -> Result<Outcome, JobError> {
    let params: SyncParams = ctx.params()?;
    let store_id = ctx
        .job
        .store_id
        .ok_or_else(|| JobError::Fatal("sync job without a store".into()))?;
    let store = stores::get(&ctx.state.db, store_id)
        .await?
        .ok_or_else(|| JobError::Fatal("the store no longer exists".into()))?;
    if store.status != StoreStatus::Active {
        return Err(JobError::Fatal(format!(
            "the store is {:?}, not connected",
            store.status
        )));
    }
    let magento = connector_for(ctx, &store)?;
    refresh_attribute_scopes(ctx, &store, &magento).await?;
    let connector: Arc<dyn Connector> = magento;

    let mut checkpoint = match ctx.checkpoint::<Checkpoint>() {
        Some(c) => {
            ctx.log(
                "info",
                format!(
                    "resuming at scope {} page {}",
                    c.scopes.get(c.scope_index).map_or("?", |s| s),
                    c.next_page
                ),
            )
            .await;
            c
        }
        None => {
            let mut scopes = vec![DEFAULT_SCOPE.to_string()];
            scopes.extend(store.store_views.0.iter().map(|v| v.code.clone()));
            let due = (params.mode == SyncMode::Incremental && params.full_when_due)
                .then(|| store.full_sync_due(Utc::now()))
                .flatten();
            if let Some(reason) = &due {
                ctx.log("info", format!("reading every product: {reason}"))
                    .await;
            }
            let since = match params.mode {
                SyncMode::Incremental if due.is_none() => store
                    .sync_watermark()
                    .map(|w| w - Duration::minutes(WATERMARK_OVERLAP_MINUTES)),
                SyncMode::Full | SyncMode::Incremental => None,
            };
            ctx.log(
                "info",
                match since {
                    Some(s) => format!(
                        "incremental sync of {} scopes, changes since {s}",
                        scopes.len()
                    ),
                    None => format!("full sync of {} scopes", scopes.len()),
                },
            )
            .await;
            Checkpoint {
                scopes,
                scope_index: 0,
                next_page: 1,
                since,
                max_updated: None,
                default_total: None,
                page_size: Some(page_size_for(&store)),
            }
        }
    };

    let concurrency = store.rate_limit().max_concurrency.max(1) as usize;
    while checkpoint.scope_index < checkpoint.scopes.len() {
        let scope = checkpoint.scopes[checkpoint.scope_index].clone();
        match pull_scope(
            ctx,
            &connector,
            &store,
            &scope,
            concurrency,
            &mut checkpoint,
        )
        .await?
        {
            ScopeEnd::Done => {}
            ScopeEnd::Stopped(stop) => return Ok(Outcome::Stopped(stop)),
            ScopeEnd::PageSizeLimit(max) => {
                smaller_pages(ctx, &store, &mut checkpoint, max).await?;
                continue;
            }
        }
        // Every product was read (a full sync, or an incremental one that had to read all):
        // what was not seen is gone.
        if scope == DEFAULT_SCOPE && checkpoint.since.is_none() {
            let removed = pages::mark_removed(&ctx.state.db, store.id, ctx.job.id).await?;
            ctx.add("removed", removed as i64);
            if removed > 0 {
                ctx.log(
                    "info",
                    format!(
                        "{removed} products are no longer in the store and were marked removed"
                    ),
                )
                .await;
            }
        }
        checkpoint.scope_index += 1;
        checkpoint.next_page = 1;
        let mut tx = ctx.state.db.begin().await?;
        ctx.save(&mut tx, &checkpoint).await?;
        tx.commit().await?;
    }

    pages::finish(
        &ctx.state.db,
        store.id,
        ctx.job.id,
        checkpoint.max_updated,
        checkpoint.since.is_none(),
    )
    .await?;
    crate::db::analyze_after_bulk_write(
        &ctx.state.db,
        ctx.counter("versions_created"),
        &["products", "product_versions", "product_live"],
    )
    .await;
    ctx.log(
        "info",
        format!(
            "done: {} products read, {} new versions, {} unchanged",
            ctx.counter("products"),
            ctx.counter("versions_created"),
            ctx.counter("unchanged")
        ),
    )
    .await;
    Ok(Outcome::Done)
}

/// The page size for `store`: ours, or the store's maximum when it is lower.
fn page_size_for(store: &Store) -> u32 {
    store
        .max_page_size()
        .map_or(PAGE_SIZE, |max| max.clamp(1, PAGE_SIZE))
}

/// The store refused our page size naming its maximum: it is remembered for the store, and the
/// scope goes on from the first product not yet committed, in pages of the maximum (the page
/// that holds it is read again; unchanged products write nothing).
async fn smaller_pages(
    ctx: &JobContext,
    store: &Store,
    checkpoint: &mut Checkpoint,
    max: u32,
) -> Result<(), JobError> {
    let current = checkpoint.page_size.unwrap_or(PAGE_SIZE);
    if max >= current {
        return Err(JobError::Fatal(format!(
            "the store refused pages of {current} products, saying it answers up to {max}"
        )));
    }
    stores::set_max_page_size(&ctx.state.db, store.id, max).await?;
    let committed = u64::from(checkpoint.next_page.saturating_sub(1)) * u64::from(current);
    checkpoint.next_page = u32::try_from(committed / u64::from(max) + 1).unwrap_or(u32::MAX);
    checkpoint.page_size = Some(max);
    let mut tx = ctx.state.db.begin().await?;
    ctx.save(&mut tx, checkpoint).await?;
    tx.commit().await?;
    ctx.log(
        "warn",
        format!(
            "the store answers at most {max} products per page (its webapi/validation/maximum_page_size); reading on in pages of {max}"
        ),
    )
    .await;
    Ok(())
}

/// Reads the scope of each content attribute again (one request): a merchant may have changed
/// one since.
/// A store that answers no attribute (the integration lacks
/// `Magento_Catalog::attributes_attributes`) is synced all the same.
async fn refresh_attribute_scopes(
    ctx: &JobContext,
    store: &Store,
    connector: &MagentoConnector,
) -> Result<(), JobError> {
    let codes = stores::attribute_scopes::content_codes(store);
    match stores::attribute_scopes::learn(&ctx.state.db, store, connector, &codes).await {
        Ok(_) => Ok(()),
        Err(stores::attribute_scopes::LearnError::Db(e)) => Err(e.into()),
        Err(stores::attribute_scopes::LearnError::Store(e @ ConnectorError::NeedsReauth(_))) => {
            Err(connector_failure(ctx, store, e).await)
        }
        Err(e) => {
            ctx.log("warn", e.to_string()).await;
            Ok(())
        }
    }
}

fn connector_for(ctx: &JobContext, store: &Store) -> Result<Arc<MagentoConnector>, JobError> {
    let credentials = store
        .credentials(&ctx.state.keyring)
        .ok_or_else(|| JobError::Fatal("the store has no credentials (disconnected)".into()))?
        .map_err(|e| JobError::Fatal(format!("the store's credentials cannot be opened: {e}")))?;
    let client = stores::magento::client(
        &ctx.state.egress,
        &store.base_url,
        &credentials,
        store.signature_method(),
        store.signature_form(),
        store.rate_limit(),
    )
    .map_err(|e| JobError::Fatal(e.to_string()))?;
    Ok(Arc::new(
        MagentoConnector::new(client, store.content_attributes.clone()).remembering_form(
            ctx.state.db.clone(),
            store.id,
            store.known_signature_form(),
        ),
    ))
}

/// Products committed in one transaction at most (four full pages): a transaction's fixed
/// costs (round trips, the checkpoint row, the commit) are spread over several pages, while a
/// crash repeats little work and memory stays flat (two batches commit at once, one more
/// waits).
const MAX_BATCH_PRODUCTS: usize = 1200;

/// A page as the sync commits it: default-scope contents already encoded (JSON and hash),
/// since they are stored as they are.
struct FetchedPage {
    number: u32,
    page: PulledPage,
    encoded: Vec<EncodedContent>,
}

type FetchTask = JoinHandle<Result<FetchedPage, ConnectorError>>;

/// Requests the pages of one scope, `concurrency` at a time at the store, and hands them out
/// in page order. Each request is a task of its own, so downloading and decoding go on while
/// the sync commits.
struct Fetcher {
    connector: Arc<dyn Connector>,
    scope: String,
    since: Option<DateTime<Utc>>,
    page_size: u32,
    concurrency: usize,
    next_request: u32,
    /// Unknown until the first answer; then no page past the last is asked for.
    last_page: Option<u32>,
    in_flight: FuturesOrdered<FetchTask>,
}

impl Fetcher {
    fn fill(&mut self) {
        // Up to a batch of answered pages waits for its commit while `concurrency` more are
        // being requested: the store is never left idle by a commit, and memory stays bounded.
        // The client's own limiter keeps the requests to the store within its limit.
        let window = self.concurrency + (MAX_BATCH_PRODUCTS / self.page_size as usize).max(1);
        while self.in_flight.len() < window
            && self.last_page.is_none_or(|last| self.next_request <= last)
        {
            // Before the total is known, one request at a time.
            if self.last_page.is_none() && !self.in_flight.is_empty() {
                break;
            }
            let query = PageQuery {
                scope: self.scope.clone(),
                page: self.next_request,
                page_size: self.page_size,
                updated_since: self.since,
            };
            let connector = self.connector.clone();
            let default_scope = self.scope == DEFAULT_SCOPE;
            self.in_flight.push_back(tokio::spawn(async move {
                let number = query.page;
                let page = connector.pull_page(query).await?;
                if !default_scope {
                    return Ok(FetchedPage {
                        number,
                        page,
                        encoded: Vec::new(),
                    });
                }
                tokio::task::spawn_blocking(move || {
                    let encoded = page.products.iter().map(|p| p.content.encode()).collect();
                    FetchedPage {
                        number,
                        page,
                        encoded,
                    }
                })
                .await
                .map_err(|e| ConnectorError::Transient(format!("page encoding failed: {e}")))
            }));
            self.next_request += 1;
        }
    }

    /// The next page in order, waiting for it; `None` when nothing is requested.
    async fn next(&mut self) -> Option<Result<Result<FetchedPage, ConnectorError>, JoinError>> {
        self.in_flight.next().await
    }

    /// The next page in order if it is already here.
    fn ready(&mut self) -> Option<Result<Result<FetchedPage, ConnectorError>, JoinError>> {
        self.in_flight.next().now_or_never().flatten()
    }
}

/// Batches whose statements run at once, each in its own transaction. They still commit in
/// page order: a batch commits (with its checkpoint) only after the one before it, so the
/// saved checkpoint is always a prefix of committed pages. Two keep PostgreSQL and the daemon
/// busy together: one batch's statements run while the other's versions are prepared.
const COMMITS_IN_FLIGHT: usize = 2;

/// A batch on its way to the database.
struct Batch {
    items: Vec<pages::Item>,
    read: u64,
    skipped: u64,
    first_page: u32,
    pages: usize,
    waited: std::time::Duration,
    /// The checkpoint as it stands once this batch is committed.
    checkpoint: Checkpoint,
}

/// Writes one batch in its own transaction. Its statements run at once with the batch before
/// it; it commits only once that one has (`before` says so), and then tells the next (`after`).
/// A batch whose predecessor failed rolls back.
async fn commit_batch(
    ctx: &JobContext,
    store: &Store,
    scope: &str,
    batch: Batch,
    before: Option<tokio::sync::oneshot::Receiver<()>>,
    after: tokio::sync::oneshot::Sender<()>,
) -> Result<(), JobError> {
    let started = std::time::Instant::now();
    let mut tx = ctx.state.db.begin().await?;
    // A commit need not wait for the WAL flush: its checkpoint commits with it, so a crash
    // loses at most the last batches, which the resumed sync writes again (by hash).
    sqlx::query("SET LOCAL synchronous_commit = off")
        .execute(&mut *tx)
        .await?;
    let written = pages::commit(&mut tx, ctx, store, scope, batch.items).await?;
    if let Some(before) = before {
        before.await.map_err(|_| {
            JobError::Transient("an earlier batch of this sync was not committed".into())
        })?;
    }
    ctx.add("products", batch.read as i64);
    ctx.add("versions_created", written.versions as i64);
    ctx.add("unchanged", written.unchanged as i64);
    ctx.add("skipped", batch.skipped as i64);
    ctx.add("warnings", written.warnings as i64);
    ctx.advance(batch.read as i64);
    ctx.save(&mut tx, &batch.checkpoint).await?;
    tx.commit().await?;
    let _ = after.send(());
    tracing::debug!(
        scope,
        first_page = batch.first_page,
        pages = batch.pages,
        products = batch.read,
        waited_ms = batch.waited.as_millis() as u64,
        commit_ms = started.elapsed().as_millis() as u64,
        "pages committed"
    );
    Ok(())
}

/// Awaits `future` while the batches in flight go on committing: they are futures of this
/// task, and one left unpolled would hold its transaction (and its row locks) open.
async fn alongside<T>(
    committing: &mut FuturesOrdered<impl Future<Output = Result<(), JobError>>>,
    future: impl Future<Output = T>,
) -> Result<T, JobError> {
    let mut future = std::pin::pin!(future);
    loop {
        tokio::select! {
            Some(result) = committing.next(), if !committing.is_empty() => result?,
            out = &mut future => return Ok(out),
        }
    }
}

/// Pulls one scope from `checkpoint.next_page` to its end, or until told to stop or the store
/// refuses the page size.
async fn pull_scope(
    ctx: &JobContext,
    connector: &Arc<dyn Connector>,
    store: &Store,
    scope: &str,
    concurrency: usize,
    checkpoint: &mut Checkpoint,
) -> Result<ScopeEnd, JobError> {
    let page_size = checkpoint.page_size.unwrap_or(PAGE_SIZE);
    let mut fetcher = Fetcher {
        connector: connector.clone(),
        scope: scope.to_string(),
        since: checkpoint.since,
        page_size,
        concurrency,
        next_request: checkpoint.next_page,
        last_page: None,
        in_flight: FuturesOrdered::new(),
    };
    let fetched = |joined: Result<Result<FetchedPage, ConnectorError>, JoinError>| {
        joined.map_err(|e| ConnectorError::Transient(format!("page fetch task failed: {e}")))?
    };
    let mut committing = FuturesOrdered::new();
    // The SKUs of the batch committed last, and how it tells the next one it is done.
    let mut last_skus: HashSet<String> = HashSet::new();
    let mut last_done: Option<tokio::sync::oneshot::Receiver<()>> = None;
    // A page that failed after others were ready: those commit first, then it is reported.
    let mut failed: Option<ConnectorError> = None;
    let outcome = loop {
        if let Some(e) = failed.take() {
            break match e {
                ConnectorError::PageSizeLimit { max } => Ok(ScopeEnd::PageSizeLimit(max)),
                e => Err(connector_failure(ctx, store, e).await),
            };
        }
        while committing.len() >= COMMITS_IN_FLIGHT {
            if let Some(result) = committing.next().await {
                result?;
            }
        }
        fetcher.fill();
        let waited = std::time::Instant::now();
        let Some(joined) = alongside(&mut committing, fetcher.next()).await? else {
            break Ok(ScopeEnd::Done);
        };
        let first = match fetched(joined) {
            Ok(first) => first,
            Err(e) => {
                failed = Some(e);
                continue;
            }
        };
        if fetcher.last_page.is_none() {
            let total = first.page.total_count.unwrap_or(0);
            fetcher.last_page = Some(
                u32::try_from(total.div_ceil(u64::from(page_size)))
                    .unwrap_or(u32::MAX)
                    .max(first.number),
            );
            if scope == DEFAULT_SCOPE && checkpoint.default_total.is_none() {
                checkpoint.default_total = first.page.total_count;
            }
            let scopes = checkpoint.scopes.len() as i64;
            ctx.set_total(checkpoint.default_total.map(|t| t as i64 * scopes));
        }
        if let Some(stop) = alongside(&mut committing, ctx.should_stop()).await? {
            break Ok(ScopeEnd::Stopped(stop));
        }
        // An empty or short page is the end, whatever total_count said; older stores repeat
        // the last page instead of answering empty, which the total guards against.
        let is_last = |page: &PulledPage| {
            page.products.is_empty()
                || (page.products.len() as u64 + page.skipped) < u64::from(page_size)
        };
        let mut end = is_last(&first.page);
        let mut batch_products = first.page.products.len();
        let mut batch = vec![first];
        // Pages that arrived while earlier batches committed join this one.
        while !end && batch_products < MAX_BATCH_PRODUCTS {
            let Some(joined) = fetcher.ready() else {
                break;
            };
            match fetched(joined) {
                Ok(page) => {
                    end = is_last(&page.page);
                    batch_products += page.page.products.len();
                    batch.push(page);
                }
                Err(e) => {
                    failed = Some(e);
                    break;
                }
            }
        }
        if !end && failed.is_none() {
            fetcher.fill();
        }
        let waited = waited.elapsed();
        let first_page = batch[0].number;
        let last_number = batch[batch.len() - 1].number;
        let pages = batch.len();

        let mut read = 0u64;
        let mut skipped = 0u64;
        let mut items = Vec::with_capacity(batch_products);
        for FetchedPage { page, encoded, .. } in batch {
            read += page.products.len() as u64;
            skipped += page.skipped;
            for product in &page.products {
                if let Some(updated) = product.updated_at {
                    checkpoint.max_updated =
                        Some(checkpoint.max_updated.map_or(updated, |m| m.max(updated)));
                }
            }
            let mut encoded = encoded.into_iter();
            items.extend(page.products.into_iter().map(|product| pages::Item {
                product,
                encoded: encoded.next(),
            }));
        }
        checkpoint.next_page = last_number + 1;

        // One item per SKU: a store that lists a SKU twice (on a page, or on two pages of a
        // batch when its pages shift) keeps the last.
        let mut skus = HashSet::with_capacity(items.len());
        items.reverse();
        items.retain(|i| skus.insert(i.product.sku.clone()));
        items.reverse();
        // A SKU in two batches at once would have the later batch read what is live before
        // the earlier one wrote it, or lock the product row the earlier one needs while it
        // waits for that one to commit (a deadlock PostgreSQL cannot see): that batch waits
        // for the earlier one instead.
        if !last_skus.is_disjoint(&skus) {
            while let Some(result) = committing.next().await {
                result?;
            }
        }
        last_skus = skus;
        let (done, done_rx) = tokio::sync::oneshot::channel();
        let before = last_done.replace(done_rx);
        let batch = Batch {
            items,
            read,
            skipped,
            first_page,
            pages,
            waited,
            checkpoint: checkpoint.clone(),
        };
        committing.push_back(commit_batch(ctx, store, scope, batch, before, done));
        if end {
            break Ok(ScopeEnd::Done);
        }
    };
    // Whatever ended the scope, the batches already handed over commit first (in order), so
    // the checkpoint covers them; a batch that fails is the error reported.
    while let Some(result) = committing.next().await {
        result?;
    }
    outcome
}

async fn connector_failure(ctx: &JobContext, store: &Store, e: ConnectorError) -> JobError {
    match e {
        ConnectorError::NeedsReauth(message) => {
            if let Err(e) = stores::mark_needs_reauth(&ctx.state.db, store.id, &message).await {
                tracing::error!(store_id = %store.id, error = %e, "could not mark the store as needing re-authorisation");
            }
            JobError::Fatal(format!(
                "{message}; click Reauthorize on the integration in Magento"
            ))
        }
        e @ ConnectorError::PermissionMissing { .. } => {
            stores::permissions::refused(&ctx.state.db, store.id, ctx.job.kind.as_str(), e).await
        }
        e @ ConnectorError::PageSizeLimit { .. } => JobError::Fatal(e.to_string()),
        ConnectorError::Transient(m) => JobError::Transient(m),
        ConnectorError::Fatal(m) => JobError::Fatal(m),
    }
}
