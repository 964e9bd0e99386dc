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

/// Products per page: Magento's input limit when enabled (300) is the ceiling.
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
    let connector = connector_for(ctx, &store)?;

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
            let since = match params.mode {
                SyncMode::Full => None,
                SyncMode::Incremental => store
                    .sync_watermark()
                    .map(|w| w - Duration::minutes(WATERMARK_OVERLAP_MINUTES)),
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
            }
        }
    };

    let concurrency = store.rate_limit().max_concurrency.max(1) as usize;
    while checkpoint.scope_index < checkpoint.scopes.len() {
        let scope = checkpoint.scopes[checkpoint.scope_index].clone();
        if let Some(stop) = pull_scope(
            ctx,
            &connector,
            &store,
            &scope,
            concurrency,
            &mut checkpoint,
        )
        .await?
        {
            return Ok(Outcome::Stopped(stop));
        }
        if scope == DEFAULT_SCOPE && params.mode == SyncMode::Full {
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

    pages::finish(&ctx.state.db, store.id, ctx.job.id, checkpoint.max_updated).await?;
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

fn connector_for(ctx: &JobContext, store: &Store) -> Result<Arc<dyn Connector>, JobError> {
    let credentials = store
        .credentials(&ctx.state.keyring)
        .ok_or_else(|| JobError::Fatal("the store has no credentials (disconnected)".into()))?
        .map_err(|e| JobError::Fatal(format!("the store's credentials cannot be opened: {e}")))?;
    let client = stores::magento::client(
        &store.base_url,
        &credentials,
        store.signature_method(),
        store.rate_limit(),
    )
    .map_err(|e| JobError::Fatal(e.to_string()))?;
    Ok(Arc::new(MagentoConnector::new(
        client,
        store.content_attributes.clone(),
    )))
}

/// Products committed in one transaction at most (eight full pages): a transaction's fixed
/// costs (round trips, the checkpoint row, the commit) are spread over more products, while a
/// crash repeats little work and memory stays flat.
const MAX_BATCH_PRODUCTS: usize = 2400;

/// A page as the sync commits it: default-scope contents already encoded (JSON and hash),
/// since they are stored as they are.
struct FetchedPage {
    number: u32,
    page: PulledPage,
    encoded: Vec<EncodedContent>,
}

type FetchTask = JoinHandle<Result<FetchedPage, ConnectorError>>;

/// Requests the pages of one scope, up to `concurrency` at a time, and hands them out in page
/// order. Each request is a task of its own, so downloading and decoding go on while the sync
/// commits.
struct Fetcher {
    connector: Arc<dyn Connector>,
    scope: String,
    since: Option<DateTime<Utc>>,
    concurrency: usize,
    next_request: u32,
    /// Unknown until the first answer; then no page past the last is asked for.
    last_page: Option<u32>,
    in_flight: FuturesOrdered<FetchTask>,
}

impl Fetcher {
    fn fill(&mut self) {
        while self.in_flight.len() < self.concurrency
            && self.last_page.is_none_or(|last| self.next_request <= last)
        {
            // Before the total is known, one request at a time.
            if self.last_page.is_none() && !self.in_flight.is_empty() {
                break;
            }
            let query = PageQuery {
                scope: self.scope.clone(),
                page: self.next_request,
                page_size: PAGE_SIZE,
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

/// Pulls one scope from `checkpoint.next_page` to its end. `Some(stop)` when told to stop.
async fn pull_scope(
    ctx: &JobContext,
    connector: &Arc<dyn Connector>,
    store: &Store,
    scope: &str,
    concurrency: usize,
    checkpoint: &mut Checkpoint,
) -> Result<Option<Stop>, JobError> {
    let mut fetcher = Fetcher {
        connector: connector.clone(),
        scope: scope.to_string(),
        since: checkpoint.since,
        concurrency,
        next_request: checkpoint.next_page,
        last_page: None,
        in_flight: FuturesOrdered::new(),
    };
    let fetched = |joined: Result<Result<FetchedPage, ConnectorError>, JoinError>| {
        joined
            .map_err(|e| JobError::Transient(format!("page fetch task failed: {e}")))?
            .map_err(|e| connector_failure(ctx, store, e))
    };
    // A page that failed after others were ready: those commit first, then it is reported.
    let mut failed: Option<JobError> = None;
    loop {
        if let Some(e) = failed.take() {
            return Err(e);
        }
        fetcher.fill();
        let waited = std::time::Instant::now();
        let Some(joined) = fetcher.next().await else {
            return Ok(None);
        };
        let first = fetched(joined)?;
        if fetcher.last_page.is_none() {
            let total = first.page.total_count.unwrap_or(0);
            fetcher.last_page = Some(
                u32::try_from(total.div_ceil(u64::from(PAGE_SIZE)))
                    .unwrap_or(u32::MAX)
                    .max(first.number),
            );
            if scope == DEFAULT_SCOPE && checkpoint.default_total.is_none() {
                checkpoint.default_total = first.page.total_count;
            }
            let scopes = checkpoint.scopes.len() as i64;
            ctx.set_total(checkpoint.default_total.map(|t| t as i64 * scopes));
        }
        if let Some(stop) = ctx.should_stop().await {
            return Ok(Some(stop));
        }
        // An empty or short page is the end, whatever total_count said; older stores repeat
        // the last page instead of answering empty, which the total guards against.
        let is_last = |page: &PulledPage| {
            page.products.is_empty()
                || (page.products.len() as u64 + page.skipped) < u64::from(PAGE_SIZE)
        };
        let mut end = is_last(&first.page);
        let mut batch_products = first.page.products.len();
        let mut batch = vec![first];
        // Pages that arrived while the previous batch committed join this one.
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
        let committing = std::time::Instant::now();
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

        let mut tx = ctx.state.db.begin().await?;
        // A commit need not wait for the WAL flush: its checkpoint commits with it, so a
        // crash loses at most the last batches, which the resumed sync writes again (by hash).
        sqlx::query("SET LOCAL synchronous_commit = off")
            .execute(&mut *tx)
            .await?;
        let written = pages::commit(&mut tx, ctx, store, scope, items).await?;
        ctx.add("products", read as i64);
        ctx.add("versions_created", written.versions as i64);
        ctx.add("unchanged", written.unchanged as i64);
        ctx.add("skipped", skipped as i64);
        ctx.add("warnings", written.warnings as i64);
        ctx.advance(read as i64);
        checkpoint.next_page = last_number + 1;
        ctx.save(&mut tx, checkpoint).await?;
        tx.commit().await?;
        tracing::debug!(
            scope,
            first_page,
            pages,
            products = read,
            waited_ms = waited.as_millis() as u64,
            commit_ms = committing.elapsed().as_millis() as u64,
            "pages committed"
        );
        if end {
            return Ok(None);
        }
    }
}

fn connector_failure(ctx: &JobContext, store: &Store, e: ConnectorError) -> JobError {
    match e {
        ConnectorError::NeedsReauth(message) => {
            let db = ctx.state.db.clone();
            let store_id = store.id;
            let detail = message.clone();
            tokio::spawn(async move {
                if let Err(e) = stores::mark_needs_reauth(&db, store_id, &detail).await {
                    tracing::error!(%store_id, error = %e, "could not mark the store as needing re-authorisation");
                }
            });
            JobError::Fatal(format!(
                "{message}; click Reauthorize on the integration in Magento"
            ))
        }
        ConnectorError::Transient(m) => JobError::Transient(m),
        ConnectorError::Fatal(m) => JobError::Fatal(m),
    }
}
