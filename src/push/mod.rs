//! Push: approved proposals written back to the store, one scope at a time, without ever
//! overwriting a change someone made in the store meanwhile.
//!
//! For each proposal the product is read again from the store in the proposal's scope and
//! [`plan::plan`] compares base, proposal and store: a conflict marks the proposal `conflict`
//! with the three values; otherwise only the changed attributes go to the scope's own URL and
//! changed labels to their gallery entry. The product is then read back and recorded as the
//! scope's live version (origin `push`), and the proposal marked `pushed` — in one transaction
//! with the job's checkpoint. A crash between the store's answer and that commit is harmless:
//! the re-run reads the store, finds the proposal applied, and writes nothing.

mod bulk;
pub mod plan;

use serde::{Deserialize, Serialize};
use serde_json::json;
use sqlx::PgPool;
use utoipa::ToSchema;
use uuid::Uuid;

use self::plan::{ConflictField, Plan, Scopes};
use crate::catalog::content::{Content, DEFAULT_SCOPE};
use crate::catalog::versions::effective;
use crate::connector::magento::{MagentoConnector, PreparedCall, RemoteRequest};
use crate::connector::{ConnectorError, PulledProduct};
use crate::jobs::context::{JobContext, JobError, Outcome};
use crate::stores::{self, Store, StoreStatus, permissions};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PushParams {
    /// In push order: default scopes before store views.
    pub proposals: Vec<Uuid>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Checkpoint {
    /// Index into `proposals` of the next one to push.
    next: usize,
}

/// A proposal to push, with what it needs.
#[derive(Debug, Clone, sqlx::FromRow)]
pub(crate) struct Proposal {
    pub(crate) id: Uuid,
    product_id: Uuid,
    pub(crate) sku: String,
    pub(crate) store_view: String,
    pub(crate) state: String,
    #[sqlx(json)]
    content: Content,
    #[sqlx(json(nullable))]
    base: Option<Content>,
    #[sqlx(json(nullable))]
    default_live: Option<Content>,
    #[sqlx(json(nullable))]
    default_base: Option<Content>,
}

/// What pushing one proposal comes to.
#[derive(Debug)]
pub enum Prepared {
    Write { calls: Vec<PreparedCall> },
    AlreadyApplied { store: Box<PulledProduct> },
    Conflict(Vec<ConflictField>),
    Failed(String),
}

/// One proposal in a dry run's answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct DryRunItem {
    pub proposal_id: Uuid,
    pub sku: String,
    pub store_view: String,
    /// `write`, `already_applied`, `conflict` or `failed`.
    pub outcome: String,
    /// The exact requests the push would send, in order.
    pub requests: Vec<RemoteRequest>,
    pub conflicts: Vec<ConflictField>,
    pub error: Option<String>,
}

/// Proposals of `store` in push order (default scope first, then store views by code).
pub async fn order(db: &PgPool, ids: &[Uuid]) -> Result<Vec<Uuid>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT id FROM product_versions WHERE id = ANY($1)
         ORDER BY store_view <> 'all', store_view, product_id, id",
    )
    .bind(ids)
    .fetch_all(db)
    .await
}

pub(crate) async fn load(
    db: &PgPool,
    store_id: Uuid,
    id: Uuid,
) -> Result<Option<Proposal>, sqlx::Error> {
    sqlx::query_as(
        "SELECT v.id, v.product_id, p.sku, v.store_view, v.state, v.content,
                b.content AS base, dv.content AS default_live, db.content AS default_base
         FROM product_versions v
         JOIN products p ON p.id = v.product_id
         LEFT JOIN product_versions b ON b.id = v.parent_id
         LEFT JOIN product_live dl ON dl.product_id = v.product_id AND dl.store_view = 'all'
         LEFT JOIN product_versions dv ON dv.id = dl.version_id
         LEFT JOIN product_versions db ON db.id = coalesce((v.meta ->> 'default_base')::uuid, dl.version_id)
         WHERE v.id = $1 AND p.store_id = $2",
    )
    .bind(id)
    .bind(store_id)
    .fetch_optional(db)
    .await
}

/// Decides what pushing `proposal` means now and prepares its calls (nothing is sent).
pub(crate) async fn prepare(
    db: &PgPool,
    store: &Store,
    connector: &MagentoConnector,
    proposal: &Proposal,
) -> Result<Prepared, JobError> {
    let scope = proposal.store_view.as_str();
    let is_view = scope != DEFAULT_SCOPE;
    let default_live = proposal.default_live.clone().unwrap_or_default();
    // What the store showed when the proposal was made.
    let base = match &proposal.base {
        Some(base) => effective(
            scope,
            proposal.default_base.as_ref().unwrap_or(&default_live),
            base,
        ),
        None if is_view => default_live.clone(),
        None => Content::default(),
    };
    let proposed = effective(scope, &default_live, &proposal.content);
    let remote = match connector.read_product(scope, &proposal.sku).await {
        Ok(Some(remote)) => remote,
        Ok(None) => {
            return Ok(Prepared::Failed(format!(
                "the store no longer has a product with SKU {:?}",
                proposal.sku
            )));
        }
        Err(e @ ConnectorError::PermissionMissing { .. }) => {
            return Err(permissions::refused(db, store.id, "push", e).await);
        }
        Err(ConnectorError::NeedsReauth(m)) => return Err(JobError::Fatal(m)),
        Err(e) => return Ok(Prepared::Failed(e.to_string())),
    };
    let writes = match plan::plan(&Scopes {
        is_view,
        base: &base,
        proposal: &proposed,
        store: &remote.content,
        proposal_owned: &proposal.content,
    }) {
        Plan::AlreadyApplied => {
            return Ok(Prepared::AlreadyApplied {
                store: Box::new(remote),
            });
        }
        Plan::Conflict(fields) => return Ok(Prepared::Conflict(fields)),
        Plan::Write(writes) => writes,
    };
    if let Some(Some(key)) = writes.fields.get("url_key") {
        let scopes: Vec<String> = if is_view {
            vec![scope.to_string()]
        } else {
            std::iter::once(DEFAULT_SCOPE.to_string())
                .chain(store.store_views.0.iter().map(|v| v.code.clone()))
                .collect()
        };
        if let Some((sku, view)) =
            url_key_taken(db, store.id, proposal.product_id, key, &scopes).await?
        {
            return Ok(Prepared::Failed(format!(
                "the url key {key:?} is already used by SKU {sku:?} in store view {view:?}"
            )));
        }
    }
    match connector.content_calls(scope, &proposal.sku, &writes) {
        Ok(calls) => Ok(Prepared::Write { calls }),
        Err(e) => Ok(Prepared::Failed(e.to_string())),
    }
}

/// Another product of the store that shows `key` as its url key in one of `scopes`.
async fn url_key_taken(
    db: &PgPool,
    store_id: Uuid,
    product_id: Uuid,
    key: &str,
    scopes: &[String],
) -> Result<Option<(String, String)>, sqlx::Error> {
    sqlx::query_as(
        "SELECT p.sku, s.scope
         FROM products p
         CROSS JOIN unnest($4::text[]) AS s(scope)
         JOIN product_live dl ON dl.product_id = p.id AND dl.store_view = 'all'
         JOIN product_versions dv ON dv.id = dl.version_id
         LEFT JOIN product_live vl ON s.scope <> 'all' AND vl.product_id = p.id AND vl.store_view = s.scope
         LEFT JOIN product_versions vv ON vv.id = vl.version_id
         WHERE p.store_id = $1 AND p.id <> $2 AND p.removed_at IS NULL
           AND coalesce(vv.content -> 'fields' ->> 'url_key', dv.content -> 'fields' ->> 'url_key') = $3
         LIMIT 1",
    )
    .bind(store_id)
    .bind(product_id)
    .bind(key)
    .bind(scopes)
    .fetch_optional(db)
    .await
}

/// What a push of `ids` would send, sending nothing.
pub async fn dry_run(
    db: &PgPool,
    store: &Store,
    connector: &MagentoConnector,
    ids: &[Uuid],
) -> Result<Vec<DryRunItem>, JobError> {
    let mut items = Vec::with_capacity(ids.len());
    for id in order(db, ids).await? {
        let Some(proposal) = load(db, store.id, id).await? else {
            continue;
        };
        let mut item = DryRunItem {
            proposal_id: proposal.id,
            sku: proposal.sku.clone(),
            store_view: proposal.store_view.clone(),
            outcome: String::new(),
            requests: Vec::new(),
            conflicts: Vec::new(),
            error: None,
        };
        match prepare(db, store, connector, &proposal).await? {
            Prepared::Write { calls } => {
                item.outcome = "write".into();
                item.requests = calls.iter().map(PreparedCall::describe).collect();
            }
            Prepared::AlreadyApplied { .. } => item.outcome = "already_applied".into(),
            Prepared::Conflict(fields) => {
                item.outcome = "conflict".into();
                item.conflicts = fields;
            }
            Prepared::Failed(message) => {
                item.outcome = "failed".into();
                item.error = Some(message);
            }
        }
        items.push(item);
    }
    Ok(items)
}

pub async fn run(ctx: &JobContext) -> Result<Outcome, JobError> {
    let params: PushParams = ctx.params()?;
    let db = &ctx.state.db;
    let store_id = ctx
        .job
        .store_id
        .ok_or_else(|| JobError::Fatal("push job without a store".into()))?;
    let store = stores::get(db, store_id)
        .await?
        .ok_or_else(|| JobError::Fatal("the store no longer exists".into()))?;
    if store.status != StoreStatus::Active {
        return Err(JobError::Fatal(format!(
            "the store is {:?}, not connected",
            store.status
        )));
    }
    let connector = connector_for(ctx, &store)?;
    if store.push_via_bulk {
        return bulk::run(ctx, &store, &connector, &params).await;
    }
    let mut checkpoint: Checkpoint = ctx.checkpoint().unwrap_or_default();
    ctx.set_total(Some(params.proposals.len() as i64));
    for counter in ["pushed", "conflict", "failed", "already_applied"] {
        ctx.add(counter, 0);
    }
    while let Some(&id) = params.proposals.get(checkpoint.next) {
        if let Some(stop) = ctx.should_stop().await {
            return Ok(Outcome::Stopped(stop));
        }
        let proposal = load(db, store.id, id).await?;
        let outcome = match &proposal {
            // Decided otherwise since the push was asked for (rejected, superseded, pushed).
            Some(p) if p.state == "approved" || p.state == "failed" => {
                push_one(ctx, &store, &connector, p).await?
            }
            _ => None,
        };
        checkpoint.next += 1;
        ctx.set_done(checkpoint.next as i64);
        let mut tx = db.begin().await?;
        if let (Some(p), Some(outcome)) = (&proposal, outcome) {
            record(&mut tx, ctx, &store, p, outcome).await?;
        }
        ctx.save(&mut tx, &checkpoint).await?;
        tx.commit().await?;
    }
    ctx.log(
        "info",
        format!(
            "push finished: {} pushed, {} already applied, {} conflicts, {} failed",
            ctx.counter("pushed"),
            ctx.counter("already_applied"),
            ctx.counter("conflict"),
            ctx.counter("failed")
        ),
    )
    .await;
    Ok(Outcome::Done)
}

pub(crate) enum PushResult {
    Pushed {
        store: Box<PulledProduct>,
        requests: usize,
    },
    AlreadyApplied {
        store: Box<PulledProduct>,
    },
    Conflict(Vec<ConflictField>),
    Failed(String),
}

/// Prepares, sends and reads back one proposal; what to record comes back.
async fn push_one(
    ctx: &JobContext,
    store: &Store,
    connector: &MagentoConnector,
    proposal: &Proposal,
) -> Result<Option<PushResult>, JobError> {
    let prepared = prepare(&ctx.state.db, store, connector, proposal).await?;
    let calls = match prepared {
        Prepared::AlreadyApplied { store } => {
            return Ok(Some(PushResult::AlreadyApplied { store }));
        }
        Prepared::Conflict(fields) => return Ok(Some(PushResult::Conflict(fields))),
        Prepared::Failed(message) => return Ok(Some(PushResult::Failed(message))),
        Prepared::Write { calls } => calls,
    };
    for call in &calls {
        match connector.send(call).await {
            Ok(()) => {}
            Err(e @ ConnectorError::PermissionMissing { .. }) => {
                return Err(permissions::refused(&ctx.state.db, store.id, "push", e).await);
            }
            Err(ConnectorError::NeedsReauth(m)) => return Err(JobError::Fatal(m)),
            Err(e) => return Ok(Some(PushResult::Failed(e.to_string()))),
        }
    }
    match connector
        .read_product(&proposal.store_view, &proposal.sku)
        .await
    {
        Ok(Some(after)) => Ok(Some(PushResult::Pushed {
            store: Box::new(after),
            requests: calls.len(),
        })),
        Ok(None) => Ok(Some(PushResult::Failed(
            "the product disappeared from the store right after the push".into(),
        ))),
        // Written but not read back: the next attempt finds it applied.
        Err(e) => Err(JobError::Transient(format!(
            "reading the product back after the push: {e}"
        ))),
    }
}

pub(crate) async fn record(
    tx: &mut sqlx::PgConnection,
    ctx: &JobContext,
    store: &Store,
    proposal: &Proposal,
    outcome: PushResult,
) -> Result<(), sqlx::Error> {
    let job_id = ctx.job.id;
    match &outcome {
        PushResult::Pushed { requests, .. } => {
            ctx.add("pushed", 1);
            ctx.add("requests", *requests as i64);
        }
        PushResult::AlreadyApplied { .. } => ctx.add("already_applied", 1),
        _ => {}
    }
    match outcome {
        PushResult::Pushed { store: remote, .. } | PushResult::AlreadyApplied { store: remote } => {
            record_live(tx, store, proposal, &remote, job_id).await?;
            sqlx::query(
                "UPDATE product_versions SET state = 'pushed',
                    meta = (meta - 'push_error' - 'conflict') || jsonb_build_object('pushed_by_job', $2::uuid, 'pushed_at', now())
                 WHERE id = $1",
            )
            .bind(proposal.id)
            .bind(job_id)
            .execute(&mut *tx)
            .await?;
        }
        PushResult::Conflict(fields) => {
            ctx.add("conflict", 1);
            sqlx::query(
                "UPDATE product_versions SET state = 'conflict',
                    meta = meta || jsonb_build_object('conflict', $2::jsonb, 'conflict_job', $3::uuid)
                 WHERE id = $1",
            )
            .bind(proposal.id)
            .bind(json!(fields))
            .bind(job_id)
            .execute(&mut *tx)
            .await?;
        }
        PushResult::Failed(message) => {
            ctx.add("failed", 1);
            sqlx::query(
                "UPDATE product_versions SET state = 'failed',
                    meta = meta || jsonb_build_object('push_error', $2::text, 'push_job', $3::uuid)
                 WHERE id = $1",
            )
            .bind(proposal.id)
            .bind(message)
            .bind(job_id)
            .execute(&mut *tx)
            .await?;
        }
    }
    Ok(())
}

/// Records what the store shows after the push as the scope's live version (origin `push`),
/// stored like a pull would store it, so the next sync finds nothing new.
async fn record_live(
    tx: &mut sqlx::PgConnection,
    _store: &Store,
    proposal: &Proposal,
    remote: &PulledProduct,
    job_id: Uuid,
) -> Result<(), sqlx::Error> {
    let content = if proposal.store_view == DEFAULT_SCOPE {
        remote.content.clone()
    } else {
        remote.content.overrides_of(
            proposal
                .default_live
                .as_ref()
                .unwrap_or(&Content::default()),
        )
    };
    let hash = content.hash();
    let live: Option<(Uuid, Vec<u8>)> = sqlx::query_as(
        "SELECT version_id, content_hash FROM product_live WHERE product_id = $1 AND store_view = $2 FOR UPDATE",
    )
    .bind(proposal.product_id)
    .bind(&proposal.store_view)
    .fetch_optional(&mut *tx)
    .await?;
    if live.as_ref().is_some_and(|(_, h)| *h == hash) {
        return Ok(());
    }
    let id = Uuid::now_v7();
    sqlx::query(
        "INSERT INTO product_versions (id, product_id, workspace_id, store_view, content, content_hash,
             parent_id, origin, state, job_id)
         SELECT $1, $2, workspace_id, $3, $4, $5, $6, 'push', 'live', $7 FROM products WHERE id = $2",
    )
    .bind(id)
    .bind(proposal.product_id)
    .bind(&proposal.store_view)
    .bind(sqlx::types::Json(&content))
    .bind(&hash)
    .bind(proposal.id)
    .bind(job_id)
    .execute(&mut *tx)
    .await?;
    if let Some((previous, _)) = live {
        sqlx::query(
            "UPDATE product_versions SET state = 'superseded' WHERE id = $1 AND state = 'live'",
        )
        .bind(previous)
        .execute(&mut *tx)
        .await?;
    }
    sqlx::query(
        "INSERT INTO product_live (product_id, store_view, version_id, content_hash, url_key) VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (product_id, store_view) DO UPDATE SET version_id = EXCLUDED.version_id,
            content_hash = EXCLUDED.content_hash, url_key = EXCLUDED.url_key",
    )
    .bind(proposal.product_id)
    .bind(&proposal.store_view)
    .bind(id)
    .bind(&hash)
    .bind(content.fields.get("url_key"))
    .execute(&mut *tx)
    .await?;
    Ok(())
}

pub fn connector_for(ctx: &JobContext, store: &Store) -> Result<MagentoConnector, JobError> {
    connector_of(&ctx.state, store)
}

/// The store's connector, for the job and for dry runs.
pub fn connector_of(
    state: &crate::app::AppState,
    store: &Store,
) -> Result<MagentoConnector, JobError> {
    let credentials = store
        .credentials(&state.keyring)
        .ok_or_else(|| JobError::Fatal("the store has no credentials (disconnected)".into()))?
        .map_err(|e| JobError::Fatal(format!("the store's credentials cannot be opened: {e}")))?;
    let client = stores::magento::client(
        &state.egress,
        &store.base_url,
        &credentials,
        store.signature_method(),
        store.signature_form(),
        store.rate_limit(),
    )
    .map_err(|e| JobError::Fatal(e.to_string()))?;
    Ok(
        MagentoConnector::new(client, store.content_attributes.clone()).remembering_form(
            state.db.clone(),
            store.id,
            store.known_signature_form(),
        ),
    )
}
