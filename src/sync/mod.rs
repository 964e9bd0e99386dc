//! Sync: pulls every product of a store, scope by scope (`all` for default values, then each
//! store view), into immutable versions.
//!
//! Pages are fetched concurrently up to the store's limit but committed in page order, each in
//! one transaction together with the job's checkpoint, so a crash resumes at the first page not
//! committed and never writes a page twice. A product's content is hashed; a version is written
//! only when the hash differs from the live one, so re-syncing an unchanged catalog writes no
//! versions. Store-view versions hold only what differs from the default scope.

mod pages;

pub use pages::forget_seen;

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use futures::StreamExt;
use futures::stream::FuturesOrdered;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::catalog::content::{Content, DEFAULT_SCOPE};
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

/// Pulls one scope from `checkpoint.next_page` to its end. `Some(stop)` when told to stop.
async fn pull_scope(
    ctx: &JobContext,
    connector: &Arc<dyn Connector>,
    store: &Store,
    scope: &str,
    concurrency: usize,
    checkpoint: &mut Checkpoint,
) -> Result<Option<Stop>, JobError> {
    let query = |page: u32| PageQuery {
        scope: scope.to_string(),
        page,
        page_size: PAGE_SIZE,
        updated_since: checkpoint.since,
    };
    let mut next_request = checkpoint.next_page;
    // Unknown until the first answer; then no page past the last is asked for.
    let mut last_page: Option<u32> = None;
    let mut in_flight = FuturesOrdered::new();
    loop {
        while in_flight.len() < concurrency && last_page.is_none_or(|last| next_request <= last) {
            // Before the total is known, one request at a time.
            if last_page.is_none() && !in_flight.is_empty() {
                break;
            }
            let q = query(next_request);
            // Spawned, so fetching and parsing go on while a page commits.
            let connector = connector.clone();
            in_flight.push_back(tokio::spawn(async move {
                (q.page, connector.pull_page(q).await)
            }));
            next_request += 1;
        }
        let waited = std::time::Instant::now();
        let Some(joined) = in_flight.next().await else {
            return Ok(None);
        };
        let (page_number, result) =
            joined.map_err(|e| JobError::Transient(format!("page fetch task failed: {e}")))?;
        let page: PulledPage = result.map_err(|e| connector_failure(ctx, store, e))?;
        if last_page.is_none() {
            let total = page.total_count.unwrap_or(0);
            last_page = Some(
                u32::try_from(total.div_ceil(u64::from(PAGE_SIZE)))
                    .unwrap_or(u32::MAX)
                    .max(page_number),
            );
            if scope == DEFAULT_SCOPE && checkpoint.default_total.is_none() {
                checkpoint.default_total = page.total_count;
            }
            let scopes = checkpoint.scopes.len() as i64;
            ctx.set_total(checkpoint.default_total.map(|t| t as i64 * scopes));
        }
        if let Some(stop) = ctx.should_stop().await {
            return Ok(Some(stop));
        }
        let empty = page.products.is_empty();
        let short = (page.products.len() as u64 + page.skipped) < u64::from(PAGE_SIZE);
        let waited = waited.elapsed();
        let committing = std::time::Instant::now();
        let mut tx = ctx.state.db.begin().await?;
        // A page commit need not wait for the WAL flush: its checkpoint commits with it, so a
        // crash loses at most the last pages, which the resumed sync writes again (by hash).
        sqlx::query("SET LOCAL synchronous_commit = off")
            .execute(&mut *tx)
            .await?;
        let written = pages::commit(&mut tx, ctx, store, scope, &page).await?;
        for product in &page.products {
            if let Some(updated) = product.updated_at {
                checkpoint.max_updated =
                    Some(checkpoint.max_updated.map_or(updated, |m| m.max(updated)));
            }
        }
        ctx.add("products", page.products.len() as i64);
        ctx.add("versions_created", written.versions as i64);
        ctx.add("unchanged", written.unchanged as i64);
        ctx.add("skipped", page.skipped as i64);
        ctx.add("warnings", written.warnings as i64);
        ctx.advance(page.products.len() as i64);
        checkpoint.next_page = page_number + 1;
        ctx.save(&mut tx, checkpoint).await?;
        tx.commit().await?;
        tracing::debug!(
            page = page_number,
            scope,
            waited_ms = waited.as_millis() as u64,
            commit_ms = committing.elapsed().as_millis() as u64,
            "page committed"
        );
        // An empty or short page is the end, whatever total_count said; older stores repeat
        // the last page instead of answering empty, which the total guards against.
        if empty || short {
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

/// Live hashes keyed by product id, for a page's products in one scope.
type LiveHashes = HashMap<Uuid, (Uuid, Vec<u8>)>;

/// The default-scope content of products, to compute a store view's overrides.
type Defaults = HashMap<Uuid, Content>;
