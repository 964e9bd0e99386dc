//! Push: approved proposals written back to the store, one scope at a time, without ever
//! overwriting a change someone made in the store meanwhile, and done only when the store
//! shows them.
//!
//! For each proposal the product is read again from the store in the proposal's scope and
//! [`plan::plan`] compares base, proposal and store: a conflict marks the proposal `conflict`
//! with the three values; otherwise [`scope_check`] refuses what Magento cannot do in a store
//! view, and only the changed attributes go to the scope's own URL and changed labels to their
//! gallery entry. The product is then read back: [`verify`] compares each written field and
//! label with what was sent, and the scopes the write had to leave alone (for a store view the
//! default values) with what they showed before. The read-back is recorded as the scope's live
//! version (origin `push`), and the proposal marked `pushed` only when everything matched,
//! else `failed` with the reason kind `not_applied` or `changed_elsewhere` — in one
//! transaction with the job's checkpoint. A crash between the store's answer and that commit
//! is harmless: the re-run reads the store, finds the proposal applied, and writes nothing.

mod bulk;
pub mod canary;
mod direct;
mod live;
pub mod plan;
mod progress;
mod reads;
mod saves;
pub mod scope_check;
pub mod verify;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::json;
use sqlx::PgPool;
use utoipa::ToSchema;
use uuid::Uuid;

use self::plan::{ConflictField, Plan, Scopes};
use self::reads::{Missing, Reads};
use self::scope_check::ViewChange;
use self::verify::{Expected, Verdict, Watched};
use crate::catalog::content::{Content, DEFAULT_SCOPE};
use crate::catalog::versions::effective;
use crate::connector::magento::{MagentoConnector, PreparedCall, RemoteRequest};
use crate::connector::{ConnectorError, PulledProduct};
use crate::jobs::context::{JobContext, JobError, Outcome};
use crate::stores::attribute_scopes;
use crate::stores::{self, Store, StoreStatus, permissions};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PushParams {
    /// In push order: default scopes before store views.
    pub proposals: Vec<Uuid>,
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
    /// The approved default-scope proposal whose push made the default values live, if that
    /// is how they became live.
    #[sqlx(json(nullable))]
    default_pushed: Option<Content>,
    /// The reviewer approved writing an interface attribute's default value as the store
    /// view's own value (see [`scope_check`]).
    explicit_defaults: bool,
}

/// What pushing one proposal comes to.
#[derive(Debug)]
pub enum Prepared {
    Write(Box<Write>),
    AlreadyApplied {
        store: Box<PulledProduct>,
    },
    Conflict(Vec<ConflictField>),
    Failed(String),
    /// Magento cannot do what the proposal asks in its scope ([`scope_check`]).
    Refused(String),
}

/// A write ready to send, with what it must achieve.
#[derive(Debug)]
pub struct Write {
    pub calls: Vec<PreparedCall>,
    pub check: Check,
    /// What the write does besides (a website-scoped attribute, an explicit default value).
    pub warnings: Vec<String>,
}

/// How a write is judged once sent ([`read_back`]).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Check {
    /// What the pushed scope must show afterwards.
    pub expected: Expected,
    /// The scopes read besides the pushed one (the default values for a store view, and the
    /// watched scopes).
    pub others: Vec<String>,
    /// Values of the scopes the write must leave alone, as they were before it.
    pub watched: Vec<Watched>,
}

/// One proposal in a dry run's answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct DryRunItem {
    pub proposal_id: Uuid,
    pub sku: String,
    pub store_view: String,
    /// `write`, `already_applied`, `conflict`, `refused` (Magento cannot do it in this scope;
    /// see `error`) or `failed`.
    pub outcome: String,
    /// The exact requests the push would send, in order.
    pub requests: Vec<RemoteRequest>,
    pub conflicts: Vec<ConflictField>,
    pub error: Option<String>,
    /// What the write does besides its fields: a website-scoped attribute reaching every view
    /// of the website, a default value written as a store view's own value.
    pub warnings: Vec<String>,
}

/// Proposals planned, written and read back together: as many as one `sku in (…)` list holds,
/// so a window reads each scope in one request.
pub(crate) const WINDOW: usize = magento::client::MAX_SKUS_PER_LIST;

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

/// A proposal with the contents a push judges it by (see [`Proposal`]).
const PROPOSAL_SELECT: &str = "SELECT v.id, v.product_id, p.sku, v.store_view, v.state, v.content,
                b.content AS base, dv.content AS default_live, db.content AS default_base,
                CASE WHEN dv.origin = 'push' AND dp.state = 'pushed' AND dp.store_view = 'all'
                     THEN dp.content END AS default_pushed,
                coalesce((v.meta ->> 'explicit_default_values')::boolean, false) AS explicit_defaults
         FROM product_versions v
         JOIN products p ON p.id = v.product_id
         LEFT JOIN product_versions b ON b.id = v.parent_id
         LEFT JOIN product_live dl ON dl.product_id = v.product_id AND dl.store_view = 'all'
         LEFT JOIN product_versions dv ON dv.id = dl.version_id
         LEFT JOIN product_versions db ON db.id = coalesce((v.meta ->> 'default_base')::uuid, dl.version_id)
         -- The default values live now, when they are what this store's push of an approved
         -- default-scope proposal wrote (its live version's parent).
         -- Joined on the id alone and judged in the select: with the conditions in the join,
         -- stale statistics lead the planner to walk every pushed version by state and scope
         -- for each row (seconds for a step of a bulk push).
         LEFT JOIN product_versions dp ON dp.id = dv.parent_id";

pub(crate) async fn load(
    db: &PgPool,
    store_id: Uuid,
    id: Uuid,
) -> Result<Option<Proposal>, sqlx::Error> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "{PROPOSAL_SELECT} WHERE v.id = $1 AND p.store_id = $2"
    )))
    .bind(id)
    .bind(store_id)
    .fetch_optional(db)
    .await
}

/// The proposals of `store_id` among `ids`, in the order of `ids` (an id that is not one of
/// the store's proposals is left out).
pub(crate) async fn load_many(
    db: &PgPool,
    store_id: Uuid,
    ids: &[Uuid],
) -> Result<Vec<Proposal>, sqlx::Error> {
    let mut found: std::collections::HashMap<Uuid, Proposal> =
        sqlx::query_as::<_, Proposal>(sqlx::AssertSqlSafe(format!(
            "{PROPOSAL_SELECT} WHERE v.id = ANY($1) AND p.store_id = $2"
        )))
        .bind(ids)
        .bind(store_id)
        .fetch_all(db)
        .await?
        .into_iter()
        .map(|p| (p.id, p))
        .collect();
    Ok(ids.iter().filter_map(|id| found.remove(id)).collect())
}

/// Whether the push still has to settle `proposal`: it may have been decided otherwise since
/// the push was asked for (rejected, superseded, pushed).
pub(crate) fn is_pending(proposal: &Proposal) -> bool {
    proposal.state == "approved" || proposal.state == "failed"
}

/// The scopes a write of `scope` reads besides its own: the default values for a store view
/// (its inherited values, and the scope it must not touch), the `watch`ed scopes, and the
/// default values again whenever a watched store view's own values are to be told apart.
fn other_scopes(scope: &str, watch: &[&str]) -> Vec<String> {
    let mut others: Vec<String> = Vec::new();
    if scope != DEFAULT_SCOPE || watch.iter().any(|w| *w != DEFAULT_SCOPE) {
        others.push(DEFAULT_SCOPE.to_string());
    }
    for w in watch {
        if *w != scope && !others.iter().any(|o| o == w) {
            others.push(w.to_string());
        }
    }
    others.retain(|o| o != scope);
    others
}

/// The values of `write`'s watched scopes in `reads` (which holds the default values).
fn watched_in(
    scope: &str,
    watch: &[&str],
    keys: &[String],
    pushed: &Content,
    reads: &BTreeMap<String, PulledProduct>,
) -> Vec<Watched> {
    let default = reads
        .get(DEFAULT_SCOPE)
        .map(|p| &p.content)
        .unwrap_or(pushed);
    watch
        .iter()
        .filter(|w| **w != scope)
        .filter_map(|w| {
            let shows = &reads.get(*w)?.content;
            Some(verify::watched(w, keys, shows, default))
        })
        .flatten()
        .collect()
}

/// The reads [`prepare`] needs for `proposal`: its own scope, and the scopes its write must
/// leave alone (`watch` and, for a store view, the default values).
fn reads_before(proposal: &Proposal, watch: &[&str]) -> Vec<(String, String)> {
    std::iter::once(proposal.store_view.clone())
        .chain(other_scopes(&proposal.store_view, watch))
        .map(|scope| (scope, proposal.sku.clone()))
        .collect()
}

/// The scopes the write of a proposal in `scope` must leave alone besides, for a store view,
/// the default values (the bulk API's default store view; none for a direct push).
pub(crate) type Watch<'a> = &'a (dyn Fn(&str) -> Vec<String> + Sync);

/// Prepares a window of proposals (nothing is sent): every product the window needs is read
/// first, one `sku in (…)` request per scope and list ([`Reads`]), then each proposal is
/// decided with [`prepare`]. The answers are in the order of `proposals`.
pub(crate) async fn prepare_many(
    db: &PgPool,
    store: &Store,
    connector: &MagentoConnector,
    proposals: &[Proposal],
    scopes: &attribute_scopes::Scopes,
    watch: Watch<'_>,
) -> Result<Vec<Prepared>, JobError> {
    let watches: Vec<Vec<String>> = proposals.iter().map(|p| watch(&p.store_view)).collect();
    let mut wanted = Vec::new();
    for (proposal, w) in proposals.iter().zip(&watches) {
        let w: Vec<&str> = w.iter().map(String::as_str).collect();
        wanted.extend(reads_before(proposal, &w));
    }
    let reads = Reads::fetch(connector, wanted).await;
    let mut prepared = Vec::with_capacity(proposals.len());
    for (proposal, w) in proposals.iter().zip(&watches) {
        let w: Vec<&str> = w.iter().map(String::as_str).collect();
        prepared.push(prepare(db, store, connector, proposal, scopes, &w, &reads).await?);
    }
    Ok(prepared)
}

/// A store view's base with the default values our own push has since changed: a field the
/// view inherited when the proposal was made, showing now exactly what an approved
/// default-scope proposal wrote, changed through review and push, not behind catalogd's back,
/// so it is no conflict for the view's own proposal. Any other difference stays one.
fn inherit_pushed_defaults(
    mut base: Content,
    owned: &Content,
    pushed: &Content,
    store: &Content,
) -> Content {
    for (field, value) in &pushed.fields {
        if !owned.fields.contains_key(field) && store.fields.get(field) == Some(value) {
            base.fields.insert(field.clone(), value.clone());
        }
    }
    base
}

/// Decides what pushing `proposal` means now and prepares its calls (nothing is sent), from
/// what the store showed in `reads` ([`reads_before`]). `scopes` are the store's attribute
/// scopes; `watch` the scopes the write must leave alone besides, for a store view, the
/// default values.
async fn prepare(
    db: &PgPool,
    store: &Store,
    connector: &MagentoConnector,
    proposal: &Proposal,
    scopes: &attribute_scopes::Scopes,
    watch: &[&str],
    reads: &Reads,
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
    let remote = match reads.get(db, store.id, scope, &proposal.sku).await? {
        Ok(remote) => remote,
        Err(missing) => return Ok(Prepared::Failed(missing.before_write(&proposal.sku))),
    };
    let base = match (&proposal.base, &proposal.default_pushed) {
        (Some(owned), Some(pushed)) if is_view => {
            inherit_pushed_defaults(base, owned, pushed, &remote.content)
        }
        _ => base,
    };
    let mut writes = match plan::plan(&Scopes {
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
    let checked = if is_view {
        let change = ViewChange {
            set: writes
                .fields
                .iter()
                .filter(|(_, v)| v.is_some())
                .map(|(k, _)| k.clone())
                .collect(),
            reset: writes
                .fields
                .iter()
                .filter(|(_, v)| v.is_none())
                .map(|(k, _)| k.clone())
                .collect(),
        };
        let checked = scope_check::check(
            &store.store_views.0,
            scopes,
            scope,
            &change,
            proposal.explicit_defaults,
        );
        if let Some(refusal) = checked.refusal() {
            return Ok(Prepared::Refused(refusal));
        }
        checked
    } else {
        scope_check::Checked::default()
    };
    let others = other_scopes(scope, watch);
    let reads = match reads.scopes(db, store.id, &proposal.sku, &others).await? {
        Ok(reads) => reads,
        Err(missing) => return Ok(Prepared::Failed(missing.before_write(&proposal.sku))),
    };
    // What the store's default values are now, for the view's inherited fields.
    let default_now = reads
        .get(DEFAULT_SCOPE)
        .map(|p| p.content.clone())
        .unwrap_or_else(|| remote.content.clone());
    for field in &checked.explicit_defaults {
        match default_now.fields.get(field) {
            Some(value) => {
                writes.fields.insert(field.clone(), Some(value.clone()));
            }
            None => {
                return Ok(Prepared::Refused(format!(
                    "`{field}` has no default value to write to store view {scope}"
                )));
            }
        }
    }
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
    let calls = match connector.content_calls(scope, &proposal.sku, &writes) {
        Ok(calls) => calls,
        Err(e) => return Ok(Prepared::Failed(e.to_string())),
    };
    let expected = Expected {
        fields: writes
            .fields
            .iter()
            .map(|(field, value)| {
                // A store view set back to the default shows the default value.
                let shows = match value {
                    None if is_view => default_now.fields.get(field).cloned(),
                    value => value.clone(),
                };
                (field.clone(), shows)
            })
            .collect(),
        labels: writes
            .media
            .iter()
            .map(|m| (m.entry_id, m.label.clone()))
            .collect(),
    };
    let keys = expected.keys();
    let mut watched = watched_in(scope, watch, &keys, &remote.content, &reads);
    if is_view {
        watched.extend(verify::watched(
            DEFAULT_SCOPE,
            &keys,
            &default_now,
            &default_now,
        ));
    }
    Ok(Prepared::Write(Box::new(Write {
        calls,
        check: Check {
            expected,
            others,
            watched,
        },
        warnings: checked.warnings,
    })))
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

/// The store's attribute scopes for a push or dry run: those read before, and those of
/// content attributes not known yet read now (an error reading them is logged; the push goes
/// on, its read-back being the check).
pub(crate) async fn known_scopes(
    db: &PgPool,
    store: &Store,
    connector: &MagentoConnector,
    ctx: Option<&JobContext>,
) -> Result<attribute_scopes::Scopes, JobError> {
    let unknown = attribute_scopes::unknown(store);
    if unknown.is_empty() {
        return Ok(store.attribute_scopes.0.clone());
    }
    match attribute_scopes::learn(db, store, connector, &unknown).await {
        Ok(scopes) => Ok(scopes),
        Err(attribute_scopes::LearnError::Db(e)) => Err(e.into()),
        Err(e) => {
            tracing::warn!(store_id = %store.id, error = %e, "attribute scopes not read");
            if let Some(ctx) = ctx {
                ctx.log(
                    "warn",
                    format!("{e}; store-view writes are checked by their read-back only"),
                )
                .await;
            }
            Ok(store.attribute_scopes.0.clone())
        }
    }
}

/// What a push of `ids` would send, sending nothing.
pub async fn dry_run(
    db: &PgPool,
    store: &Store,
    connector: &MagentoConnector,
    ids: &[Uuid],
) -> Result<Vec<DryRunItem>, JobError> {
    let scopes = known_scopes(db, store, connector, None).await?;
    let mut items = Vec::with_capacity(ids.len());
    for window in order(db, ids).await?.chunks(WINDOW) {
        let proposals = load_many(db, store.id, window).await?;
        let prepared = prepare_many(db, store, connector, &proposals, &scopes, &|_| Vec::new());
        for (proposal, prepared) in proposals.iter().zip(prepared.await?) {
            items.push(dry_run_item(proposal, prepared));
        }
    }
    Ok(items)
}

fn dry_run_item(proposal: &Proposal, prepared: Prepared) -> DryRunItem {
    {
        let mut item = DryRunItem {
            proposal_id: proposal.id,
            sku: proposal.sku.clone(),
            store_view: proposal.store_view.clone(),
            outcome: String::new(),
            requests: Vec::new(),
            conflicts: Vec::new(),
            error: None,
            warnings: Vec::new(),
        };
        match prepared {
            Prepared::Write(write) => {
                item.outcome = "write".into();
                item.requests = write.calls.iter().map(PreparedCall::describe).collect();
                item.warnings = write.warnings;
            }
            Prepared::AlreadyApplied { .. } => item.outcome = "already_applied".into(),
            Prepared::Conflict(fields) => {
                item.outcome = "conflict".into();
                item.conflicts = fields;
            }
            Prepared::Refused(message) => {
                item.outcome = "refused".into();
                item.error = Some(message);
            }
            Prepared::Failed(message) => {
                item.outcome = "failed".into();
                item.error = Some(message);
            }
        }
        item
    }
}

/// Counters of a push job, each reported even when zero.
const COUNTERS: &[&str] = &[
    "pushed",
    "conflict",
    "failed",
    "already_applied",
    "not_applied",
    "changed_elsewhere",
];

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
    let scopes = known_scopes(db, &store, &connector, Some(ctx)).await?;
    if store.push_via_bulk {
        if store.bulk_keeps_scope != Some(false) {
            return bulk::run(ctx, &store, &connector, &scopes, &params).await;
        }
        ctx.log(
            "info",
            format!(
                "pushing product by product, not in bulk: {}",
                store.bulk_scope_detail.as_deref().unwrap_or("")
            ),
        )
        .await;
    }
    direct::run(ctx, &store, &connector, &scopes, &params).await
}

async fn log_summary(ctx: &JobContext, what: &str, pace: &progress::Pace) {
    ctx.log(
        "info",
        format!(
            "{what} finished: {} pushed, {} already applied, {} conflicts, {} failed, {} not applied by the store, {} changed another scope; {}",
            ctx.counter("pushed"),
            ctx.counter("already_applied"),
            ctx.counter("conflict"),
            ctx.counter("failed"),
            ctx.counter("not_applied"),
            ctx.counter("changed_elsewhere"),
            pace.summary(ctx.done()),
        ),
    )
    .await;
}

pub(crate) enum PushResult {
    /// Sent and read back: `reads` holds every scope read after the write, the pushed one
    /// included; `verdict` says whether the store shows it.
    Written {
        reads: BTreeMap<String, PulledProduct>,
        requests: usize,
        verdict: Verdict,
    },
    AlreadyApplied {
        store: Box<PulledProduct>,
    },
    Conflict(Vec<ConflictField>),
    Failed(String),
    Refused(String),
}

/// A write sent to the store, to be read back.
pub(crate) struct Sent<'a> {
    pub(crate) proposal: &'a Proposal,
    pub(crate) check: &'a Check,
    /// Requests the write took.
    pub(crate) requests: usize,
}

impl Sent<'_> {
    /// The scopes read back: the pushed one and the other scopes of the check.
    fn scopes(&self) -> Vec<String> {
        std::iter::once(self.proposal.store_view.clone())
            .chain(self.check.others.iter().cloned())
            .collect()
    }
}

/// Reads back a window of sent writes — each product in its scope and the other scopes of
/// its check, one `sku in (…)` request per scope and list — and judges each ([`judge`]); the
/// results are in the order of `sent`. A product the store cannot answer for fails alone:
/// its write may have been applied, which pushing it again finds without writing twice.
pub(crate) async fn read_back_many(
    db: &PgPool,
    store_id: Uuid,
    connector: &MagentoConnector,
    sent: &[Sent<'_>],
    watch: Watch<'_>,
) -> Result<Vec<PushResult>, JobError> {
    let mut wanted = Vec::new();
    for s in sent {
        for scope in s.scopes() {
            wanted.push((scope, s.proposal.sku.clone()));
        }
    }
    let reads = Reads::fetch(connector, wanted).await;
    let mut results = Vec::with_capacity(sent.len());
    for s in sent {
        let result = match reads
            .scopes(db, store_id, &s.proposal.sku, &s.scopes())
            .await?
        {
            Ok(after) => {
                let watch = watch(&s.proposal.store_view);
                let watch: Vec<&str> = watch.iter().map(String::as_str).collect();
                judge(s.proposal, s.check, &watch, after, s.requests)
            }
            Err(Missing::Gone) => PushResult::Failed(
                "the product disappeared from the store right after the push".into(),
            ),
            Err(Missing::Unreadable(message)) => PushResult::Failed(format!(
                "the write was sent but the product could not be read back ({message}); pushing it again checks what the store shows and writes nothing twice"
            )),
        };
        results.push(result);
    }
    Ok(results)
}

/// Judges a write of `proposal` from `reads`, every scope read after it (the pushed one and
/// the other scopes of `check`).
fn judge(
    proposal: &Proposal,
    check: &Check,
    watch: &[&str],
    reads: BTreeMap<String, PulledProduct>,
    requests: usize,
) -> PushResult {
    let scope = proposal.store_view.as_str();
    let Some(shown) = reads.get(scope).map(|p| &p.content) else {
        return PushResult::Failed(format!("{scope} was not read back"));
    };
    let keys = check.expected.keys();
    let mut after = watched_in(scope, watch, &keys, shown, &reads);
    if scope != DEFAULT_SCOPE
        && let Some(default) = reads.get(DEFAULT_SCOPE)
    {
        after.extend(verify::watched(
            DEFAULT_SCOPE,
            &keys,
            &default.content,
            &default.content,
        ));
    }
    let verdict = verify::verify(&check.expected, shown, &check.watched, &after);
    PushResult::Written {
        reads,
        requests,
        verdict,
    }
}

/// Sends `calls` in order. A refusal of this product fails it alone (`Ok(Err(message))`); a
/// refused permission or refused credentials end the job.
pub(crate) async fn send_calls(
    db: &PgPool,
    store_id: Uuid,
    connector: &MagentoConnector,
    calls: &[&PreparedCall],
) -> Result<Result<(), String>, JobError> {
    for call in calls {
        match connector.send(call).await {
            Ok(()) => {}
            Err(e @ ConnectorError::PermissionMissing { .. }) => {
                return Err(permissions::refused(db, store_id, "push", e).await);
            }
            Err(ConnectorError::NeedsReauth(m)) => return Err(JobError::Fatal(m)),
            Err(e) => return Ok(Err(e.to_string())),
        }
    }
    Ok(Ok(()))
}

async fn log_warnings(ctx: &JobContext, proposal: &Proposal, warnings: &[String]) {
    for warning in warnings {
        ctx.log(
            "warn",
            format!("{} in {}: {warning}", proposal.sku, proposal.store_view),
        )
        .await;
    }
}

pub(crate) async fn record(
    tx: &mut sqlx::PgConnection,
    ctx: &JobContext,
    proposal: &Proposal,
    outcome: PushResult,
) -> Result<(), sqlx::Error> {
    let job_id = ctx.job.id;
    let scope = proposal.store_view.as_str();
    let default_live = proposal.default_live.clone().unwrap_or_default();
    match outcome {
        PushResult::Written {
            reads,
            requests,
            verdict,
        } => {
            ctx.add("requests", requests as i64);
            // Scopes whose new state is recorded: the pushed one, and those the write changed
            // besides (the next sync would find them anyway).
            let mut changed: Vec<&str> = verdict
                .changed_elsewhere
                .iter()
                .map(|c| c.scope.as_str())
                .collect();
            changed.sort();
            changed.dedup();
            let default_recorded = scope == DEFAULT_SCOPE || changed.contains(&DEFAULT_SCOPE);
            let default = match reads.get(DEFAULT_SCOPE) {
                Some(read) if default_recorded => read.content.clone(),
                _ => default_live,
            };
            record_shown(tx, proposal, &reads[scope].content, &default, job_id).await?;
            for other in &changed {
                if let Some(read) = reads.get(*other) {
                    let content = live::stored_form(other, &read.content, &default);
                    live::record(tx, proposal.product_id, other, &content, None, job_id).await?;
                }
            }
            if !verdict.changed_elsewhere.is_empty() {
                ctx.add("changed_elsewhere", 1);
                let message = verify::changed_message(&verdict.changed_elsewhere);
                tracing::warn!(job_id = %job_id, proposal = %proposal.id, sku = %proposal.sku, "{message}");
                ctx.log("warn", format!("{} in {scope}: {message}", proposal.sku))
                    .await;
            }
            if verdict.is_clean() {
                ctx.add("pushed", 1);
                mark_pushed(tx, &[proposal.id], job_id).await?;
            } else {
                let kind = if verdict.not_applied.is_empty() {
                    "changed_elsewhere"
                } else {
                    ctx.add("not_applied", 1);
                    "not_applied"
                };
                let message = verdict.message(scope);
                if kind == "not_applied" {
                    ctx.log("warn", format!("{} in {scope}: {message}", proposal.sku))
                        .await;
                }
                mark_failed(tx, proposal.id, job_id, kind, &message, &verdict).await?;
            }
        }
        PushResult::AlreadyApplied { store: remote } => {
            ctx.add("already_applied", 1);
            record_shown(tx, proposal, &remote.content, &default_live, job_id).await?;
            mark_pushed(tx, &[proposal.id], job_id).await?;
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
            mark_failed(
                tx,
                proposal.id,
                job_id,
                "error",
                &message,
                &Verdict::default(),
            )
            .await?;
        }
        PushResult::Refused(message) => {
            ctx.add("failed", 1);
            ctx.log(
                "warn",
                format!("{} in {scope}: refused: {message}", proposal.sku),
            )
            .await;
            mark_failed(
                tx,
                proposal.id,
                job_id,
                "refused",
                &message,
                &Verdict::default(),
            )
            .await?;
        }
    }
    Ok(())
}

/// Records a step's outcomes in order, as [`record`] one by one would, with the usual ones —
/// pushed and read back clean, or found already applied — written together: a handful of
/// statements for the step instead of five per proposal. An outcome that needs more (a
/// conflict, a failure, a verdict to explain) is recorded alone, after those before it.
pub(crate) async fn record_all(
    tx: &mut sqlx::PgConnection,
    ctx: &JobContext,
    outcomes: Vec<(&Proposal, PushResult)>,
) -> Result<(), sqlx::Error> {
    let mut shown: Vec<live::Shown> = Vec::new();
    let mut pushed: Vec<Uuid> = Vec::new();
    for (proposal, outcome) in outcomes {
        let scope = proposal.store_view.as_str();
        let content = match &outcome {
            PushResult::Written { reads, verdict, .. } if verdict.is_clean() => {
                reads.get(scope).map(|read| &read.content)
            }
            PushResult::AlreadyApplied { store } => Some(&store.content),
            _ => None,
        };
        let Some(content) = content else {
            flush(tx, ctx, &mut shown, &mut pushed).await?;
            record(tx, ctx, proposal, outcome).await?;
            continue;
        };
        // Each (product, scope) once per batch: a second one goes after the first is written.
        if shown
            .iter()
            .any(|s| s.product_id == proposal.product_id && s.scope == scope)
        {
            flush(tx, ctx, &mut shown, &mut pushed).await?;
        }
        let default_live = proposal.default_live.clone().unwrap_or_default();
        shown.push(live::Shown {
            product_id: proposal.product_id,
            scope,
            content: live::stored_form(scope, content, &default_live),
            parent: Some(proposal.id),
        });
        pushed.push(proposal.id);
        match outcome {
            PushResult::Written { requests, .. } => {
                ctx.add("requests", requests as i64);
                ctx.add("pushed", 1);
            }
            _ => ctx.add("already_applied", 1),
        }
    }
    flush(tx, ctx, &mut shown, &mut pushed).await
}

/// Writes what [`record_all`] gathered.
async fn flush(
    tx: &mut sqlx::PgConnection,
    ctx: &JobContext,
    shown: &mut Vec<live::Shown<'_>>,
    pushed: &mut Vec<Uuid>,
) -> Result<(), sqlx::Error> {
    live::record_many(tx, shown, ctx.job.id).await?;
    mark_pushed(tx, pushed, ctx.job.id).await?;
    shown.clear();
    pushed.clear();
    Ok(())
}

/// Records what the proposal's scope `shows` after the push as its live version.
async fn record_shown(
    tx: &mut sqlx::PgConnection,
    proposal: &Proposal,
    shows: &Content,
    default: &Content,
    job_id: Uuid,
) -> Result<(), sqlx::Error> {
    let scope = proposal.store_view.as_str();
    let content = live::stored_form(scope, shows, default);
    live::record(
        tx,
        proposal.product_id,
        scope,
        &content,
        Some(proposal.id),
        job_id,
    )
    .await
}

/// Meta keys a push outcome writes; a later outcome replaces them all.
const OUTCOME_META: &str =
    "meta - 'push_error' - 'push_error_kind' - 'not_applied' - 'changed_elsewhere' - 'conflict'";

/// Marks `ids` pushed by `job_id`, in one statement.
async fn mark_pushed(
    tx: &mut sqlx::PgConnection,
    ids: &[Uuid],
    job_id: Uuid,
) -> Result<(), sqlx::Error> {
    if ids.is_empty() {
        return Ok(());
    }
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "UPDATE product_versions SET state = 'pushed',
            meta = ({OUTCOME_META}) || jsonb_build_object('pushed_by_job', $2::uuid, 'pushed_at', now())
         WHERE id = ANY($1)"
    )))
    .bind(ids)
    .bind(job_id)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// Marks a proposal `failed` with its reason: `push_error` for people, `push_error_kind`
/// (`not_applied`, `changed_elsewhere`, `refused` or `error`), and the fields behind it.
async fn mark_failed(
    tx: &mut sqlx::PgConnection,
    id: Uuid,
    job_id: Uuid,
    kind: &str,
    message: &str,
    verdict: &Verdict,
) -> Result<(), sqlx::Error> {
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "UPDATE product_versions SET state = 'failed',
            meta = ({OUTCOME_META}) || jsonb_build_object('push_error', $2::text, 'push_error_kind', $3::text,
                'push_job', $4::uuid, 'not_applied', $5::jsonb, 'changed_elsewhere', $6::jsonb)
         WHERE id = $1"
    )))
    .bind(id)
    .bind(message)
    .bind(kind)
    .bind(job_id)
    .bind(json!(verdict.not_applied))
    .bind(json!(verdict.changed_elsewhere))
    .execute(&mut *tx)
    .await?;
    Ok(())
}

pub fn connector_for(ctx: &JobContext, store: &Store) -> Result<MagentoConnector, JobError> {
    connector_of(&ctx.state, store)
}

/// The store's connector, for the job and for dry runs.
pub fn connector_of(
    state: &crate::state::AppState,
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

#[cfg(test)]
mod tests {
    use super::*;

    fn content(fields: &[(&str, &str)]) -> Content {
        let mut content = Content::default();
        for (field, value) in fields {
            content.fields.insert(field.to_string(), value.to_string());
        }
        content
    }

    #[test]
    fn only_inherited_fields_showing_what_our_push_wrote_join_the_base() {
        let base = content(&[
            ("meta_title", "old"),
            ("name", "Vue"),
            ("meta_keyword", "k"),
        ]);
        // The view owned `name`; it inherited the others.
        let owned = content(&[("name", "Vue")]);
        let pushed = content(&[
            ("meta_title", "new"),
            ("name", "View"),
            ("meta_keyword", "k2"),
        ]);
        // The store shows our new title, its own name, and a keyword someone else wrote.
        let store = content(&[
            ("meta_title", "new"),
            ("name", "Vue"),
            ("meta_keyword", "theirs"),
        ]);
        let judged = inherit_pushed_defaults(base, &owned, &pushed, &store);
        assert_eq!(
            judged,
            content(&[
                ("meta_title", "new"),
                ("name", "Vue"),
                ("meta_keyword", "k")
            ]),
            "our push's value is known; the view's own field and a change made elsewhere are not"
        );
    }
}
