//! Enrichment: generated content for weak fields, stored as proposals (origin `ai`) a
//! reviewer approves before anything reaches the store.
//!
//! A job walks the selected products in id order, a page at a time. For each product and
//! scope it *plans* requests from the live content — one text request for the asked fields
//! and one vision request per picture without alt text — through `ai::RequestBuilder`, the
//! only way to make a request, which takes nothing but the allow-listed inputs (name,
//! description text, descriptive attributes, the picture). Products are generated
//! concurrently (the provider's limiter paces the requests), then *written* in id order, each
//! in its own transaction with the checkpoint: usage rows, then a proposal on top of the
//! scope's live version when the sanitised result changes anything and the live versions are
//! still those the requests were made from.
//!
//! A workspace with `ai_processing` off sends nothing. The daily token budget is reserved
//! product by product, in order, before anything is sent; a product that would exceed it
//! ends the job (succeeded, `budget_reached`). A spend-limit answer from the provider fails
//! the job with the provider's message; any other failed request is counted (`failed`) and
//! the job goes on. Scheduled runs of a provider configured with `batch = true` go through
//! its batch API instead ([`batch`]).

pub mod batch;
pub mod providers;
pub mod sanitize;
pub mod usage;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use ai::{AiError, Generation, Image, Provider, RequestBuilder, Task, Usage};
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::accounts::settings;
use crate::audits::engine::StoreScopes;
use crate::audits::rules::RuleId;
use crate::catalog::content::{Content, DEFAULT_SCOPE};
use crate::catalog::products::like_pattern;
use crate::catalog::versions::{self, Author, NewProposal, VersionOrigin, effective};
use crate::jobs::context::{JobContext, JobError, Outcome};
use crate::state::AppState;
use crate::stores::{self, Store};

/// Fields enrichment can write; `alt_text` is the label of images that have none.
pub const ENRICHABLE: &[&str] = &[
    "description",
    "short_description",
    "meta_title",
    "meta_description",
    "meta_keyword",
    "alt_text",
];

/// What a scheduled `enrich` step generates.
pub const SCHEDULED_FIELDS: &[&str] = &[
    "description",
    "short_description",
    "meta_title",
    "meta_description",
    "meta_keyword",
    "alt_text",
];

/// What to enrich, fixed when the job is asked for.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
pub struct EnrichParams {
    #[serde(default)]
    pub products: Option<Vec<Uuid>>,
    #[serde(default)]
    pub q: Option<String>,
    /// Only products with findings of these rules in the audit `finding_run`.
    #[serde(default)]
    pub findings: Option<Vec<RuleId>>,
    #[serde(default)]
    pub finding_run: Option<Uuid>,
    /// Regenerate only the fields that audit flagged for the product and scope.
    #[serde(default)]
    pub only_flagged: bool,
    pub fields: Vec<String>,
    /// Scopes to write (`all` and store view codes).
    pub store_views: Vec<String>,
    /// A configured provider's name; empty: `[ai] default_provider` when the job runs.
    pub provider: String,
    /// A pipeline step: may use the provider's batch API.
    #[serde(default)]
    pub scheduled: bool,
}

impl EnrichParams {
    /// The audit run whose findings narrow this enrichment, if any.
    fn needs_findings(&self) -> bool {
        self.findings.is_some() || self.only_flagged
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct Checkpoint {
    after: Option<Uuid>,
    /// A submitted batch not yet written (batch mode only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    batch: Option<batch::PendingBatch>,
}

const PAGE: i64 = 100;

/// The job's fixed surroundings.
pub(crate) struct Job<'a> {
    pub ctx: &'a JobContext,
    pub store: Store,
    pub scopes: StoreScopes,
    pub params: EnrichParams,
    pub provider: Arc<dyn Provider>,
}

pub async fn run(ctx: &JobContext) -> Result<Outcome, JobError> {
    let mut params: EnrichParams = ctx.params()?;
    if params.provider.is_empty() {
        params.provider = ctx.state.ai.default_name().to_string();
    }
    let db = &ctx.state.db;
    let store_id = ctx
        .job
        .store_id
        .ok_or_else(|| JobError::Fatal("enrichment without a store".into()))?;
    let store = stores::get(db, store_id)
        .await?
        .ok_or_else(|| JobError::Fatal("the store no longer exists".into()))?;
    let workspace = settings::get(db, store.workspace_id)
        .await
        .map_err(|e| JobError::Fatal(e.to_string()))?;
    if !workspace.ai_processing {
        return Err(JobError::Fatal(
            "AI processing is switched off for this workspace; nothing was sent".into(),
        ));
    }
    let provider = ctx.state.ai.get(&params.provider).cloned().ok_or_else(|| {
        JobError::Fatal(format!("provider {:?} is not configured", params.provider))
    })?;
    if params.needs_findings() && params.finding_run.is_none() {
        ctx.log("info", "no audit to take findings from: nothing to enrich")
            .await;
        return Ok(Outcome::Done);
    }
    let total: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(selection_sql("count(*)", false)))
        .bind(store.id)
        .bind(&params.products)
        .bind(params.q.as_deref().map(like_pattern))
        .bind(finding_rules(&params))
        .bind(params.finding_run)
        .bind(None::<Uuid>)
        .bind(i64::MAX)
        .persistent(false)
        .fetch_one(db)
        .await?;
    ctx.set_total(Some(total));
    for counter in [
        "proposals",
        "unchanged",
        "failed",
        "requests",
        "input_tokens",
        "output_tokens",
    ] {
        ctx.add(counter, 0);
    }
    let job = Job {
        ctx,
        scopes: StoreScopes::new(&store.store_views.0),
        store,
        params,
        provider,
    };
    let checkpoint: Checkpoint = ctx.checkpoint().unwrap_or_default();
    let outcome = match ctx.state.ai.batch(&job.params.provider) {
        Some(poll_every) if job.params.scheduled => {
            batch::run(&job, checkpoint, workspace.daily_token_budget, poll_every).await?
        }
        _ => run_direct(&job, checkpoint, workspace.daily_token_budget).await?,
    };
    if outcome == Outcome::Done {
        ctx.log(
            "info",
            format!(
                "{} proposals written, {} scopes unchanged, {} requests failed",
                ctx.counter("proposals"),
                ctx.counter("unchanged"),
                ctx.counter("failed")
            ),
        )
        .await;
    }
    Ok(outcome)
}

/// The next page of selected product ids after `after`.
pub(crate) async fn next_page(
    job: &Job<'_>,
    after: Option<Uuid>,
    limit: i64,
) -> Result<Vec<Uuid>, JobError> {
    let params = &job.params;
    Ok(
        sqlx::query_scalar(sqlx::AssertSqlSafe(selection_sql("p.id", true)))
            .bind(job.store.id)
            .bind(&params.products)
            .bind(params.q.as_deref().map(like_pattern))
            .bind(finding_rules(params))
            .bind(params.finding_run)
            .bind(after)
            .bind(limit)
            .persistent(false)
            .fetch_all(&job.ctx.state.db)
            .await?,
    )
}

/// Why a job stops before the end of its selection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Halt {
    Budget,
    SpendLimit(String),
}

/// Ends the job for `halt`.
pub(crate) async fn halted(ctx: &JobContext, halt: Halt) -> Result<Outcome, JobError> {
    match halt {
        Halt::Budget => {
            ctx.add("budget_reached", 1);
            ctx.log(
                "warn",
                "the workspace's daily token budget is reached; enrichment stopped",
            )
            .await;
            Ok(Outcome::Done)
        }
        Halt::SpendLimit(message) => Err(JobError::Fatal(format!(
            "the provider's spend limit is reached ({message}); enrichment stopped"
        ))),
    }
}

/// Tokens the workspace may still use, shared by the products generated at once.
/// Products reserve their estimate in id order (a product waits for the one before it),
/// so the budget goes to the products in the order they are written.
pub(crate) struct Budget {
    left: Mutex<Option<i64>>,
    turn: tokio::sync::watch::Sender<usize>,
}

impl Budget {
    pub fn new(left: Option<u64>) -> Budget {
        Budget {
            left: Mutex::new(left.map(|l| l.min(i64::MAX as u64) as i64)),
            turn: tokio::sync::watch::Sender::new(0),
        }
    }

    /// Product number `index` (0-based in the page) reserves `tokens`; false if they do not fit.
    pub async fn reserve_in_turn(&self, index: usize, tokens: u64) -> bool {
        let mut rx = self.turn.subscribe();
        let _ = rx.wait_for(|turn| *turn >= index).await;
        let fits = {
            let mut left = self.left.lock().expect("budget lock");
            match left.as_mut() {
                None => true,
                Some(l) if (tokens as i64) <= *l => {
                    *l -= tokens as i64;
                    true
                }
                Some(_) => false,
            }
        };
        self.turn.send_modify(|turn| *turn = (*turn).max(index + 1));
        fits
    }

    /// Gives a product's turn away without reserving (it had nothing to send).
    pub fn pass(&self, index: usize) {
        self.turn.send_modify(|turn| *turn = (*turn).max(index + 1));
    }

    /// Replaces an estimate by what was used.
    pub fn settle(&self, estimated: u64, used: u64) {
        if let Some(l) = self.left.lock().expect("budget lock").as_mut() {
            *l += estimated as i64 - used as i64;
        }
    }
}

async fn run_direct(
    job: &Job<'_>,
    mut checkpoint: Checkpoint,
    daily_budget: Option<u64>,
) -> Result<Outcome, JobError> {
    let ctx = job.ctx;
    let db = &ctx.state.db;
    let parallelism = ctx.state.ai.parallelism(&job.params.provider);
    let stops = Stops::default();
    loop {
        let ids = next_page(job, checkpoint.after, PAGE).await?;
        if ids.is_empty() {
            return Ok(Outcome::Done);
        }
        let budget_left = {
            let mut conn = db.acquire().await?;
            usage::budget_left(&mut conn, job.store.workspace_id, daily_budget).await?
        };
        let budget = Budget::new(budget_left);
        let budget = &budget;
        let stops = &stops;
        let count = ids.len();
        // The producer keeps polling the generation stream while the consumer writes: a
        // stream left unpolled would sit on pool connections the writer is waiting for.
        let (sender, mut receiver) = tokio::sync::mpsc::unbounded_channel();
        let producer = async move {
            let mut results = futures::stream::iter(ids.into_iter().enumerate())
                .map(|(index, id)| async move {
                    let flagged = flagged_fields(ctx, &job.params, id).await;
                    let plan = match flagged {
                        Ok(flagged) => plan_product(job, id, &flagged).await,
                        Err(e) => Err(e),
                    };
                    match plan {
                        Ok(plan) => Ok(generate_product(job, plan, index, budget, stops).await),
                        Err(e) => {
                            budget.pass(index);
                            Err(e)
                        }
                    }
                })
                .buffered(parallelism);
            while let Some(result) = results.next().await {
                if sender.send(result).is_err() {
                    break;
                }
            }
            std::future::pending::<()>().await
        };
        let consumer = async {
            let mut halt: Option<Halt> = None;
            for _ in 0..count {
                let Some(result) = receiver.recv().await else {
                    break;
                };
                let generated = result?;
                if halt.is_some() {
                    // After a halt only the usage of what was already sent is kept.
                    let mut tx = db.begin().await?;
                    record_usage(job, &mut tx, &generated).await?;
                    tx.commit().await?;
                    continue;
                }
                if let Some(stop) = ctx.should_stop().await {
                    return Ok(Some(Outcome::Stopped(stop)));
                }
                let mut tx = db.begin().await?;
                write_product(job, &mut tx, &generated).await?;
                if generated.halt.is_none() {
                    checkpoint.after = Some(generated.plan.product_id);
                    ctx.advance(1);
                }
                ctx.save(&mut tx, &checkpoint).await?;
                tx.commit().await?;
                halt = generated.halt;
            }
            match halt {
                Some(halt) => halted(ctx, halt).await.map(Some),
                None => Ok::<_, JobError>(None),
            }
        };
        let finished = tokio::select! {
            finished = consumer => finished?,
            () = producer => None,
        };
        if let Some(outcome) = finished {
            return Ok(outcome);
        }
    }
}

fn finding_rules(params: &EnrichParams) -> Option<Vec<String>> {
    match (&params.findings, params.only_flagged) {
        (Some(rules), _) => Some(rules.iter().map(|r| r.as_str().to_string()).collect()),
        (None, true) => Some(RuleId::ALL.iter().map(|r| r.as_str().to_string()).collect()),
        (None, false) => None,
    }
}

/// The products an enrichment covers, as `what` (a count or ids in id order after `$6`).
pub fn selection_sql(what: &'static str, paged: bool) -> String {
    let page = if paged {
        " AND ($6::uuid IS NULL OR p.id > $6) ORDER BY p.id LIMIT $7"
    } else {
        " AND ($6::uuid IS NULL OR p.id > $6) AND $7::bigint > 0"
    };
    format!(
        "SELECT {what} FROM products p
         WHERE p.store_id = $1 AND p.removed_at IS NULL
           AND ($2::uuid[] IS NULL OR p.id = ANY($2))
           AND ($3::text IS NULL OR (lower(p.sku) || ' ' || lower(coalesce(p.name, ''))) LIKE lower($3))
           AND ($4::text[] IS NULL OR EXISTS (SELECT 1 FROM audit_findings f
                WHERE f.run_id = $5 AND f.product_id = p.id AND f.rule = ANY($4))){page}"
    )
}

/// For `only_flagged`: the fields each scope's findings point at (`media.*` → `alt_text`).
pub(crate) async fn flagged_fields(
    ctx: &JobContext,
    params: &EnrichParams,
    product_id: Uuid,
) -> Result<Option<BTreeMap<String, BTreeSet<String>>>, JobError> {
    if !params.only_flagged {
        return Ok(None);
    }
    let rows: Vec<(String, String)> = sqlx::query_as(
        "SELECT store_view, field FROM audit_findings WHERE run_id = $1 AND product_id = $2",
    )
    .bind(params.finding_run)
    .bind(product_id)
    .fetch_all(&ctx.state.db)
    .await?;
    let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (scope, field) in rows {
        let field = if field.starts_with("media.") {
            "alt_text".to_string()
        } else {
            field
        };
        out.entry(scope).or_default().insert(field);
    }
    Ok(Some(out))
}

/// What one request is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum ItemKey {
    /// The scope's text fields.
    Text,
    /// The alt text of one gallery entry.
    Alt(i64),
}

/// One scope's requests and the content they were made from.
pub(crate) struct ScopePlan {
    pub scope: String,
    /// The scope's position in the job's `store_views` (batch custom ids carry it).
    pub scope_index: usize,
    /// The live versions read: a proposal is made only while they are still live.
    pub parent_id: Option<Uuid>,
    pub default_id: Uuid,
    pub default: Content,
    pub shown: Content,
    pub requests: Vec<(ItemKey, ai::Request)>,
}

pub(crate) struct ProductPlan {
    pub product_id: Uuid,
    pub scopes: Vec<ScopePlan>,
}

/// Reads the product's live content and makes its requests, scope by scope.
pub(crate) async fn plan_product(
    job: &Job<'_>,
    product_id: Uuid,
    flagged: &Option<BTreeMap<String, BTreeSet<String>>>,
) -> Result<ProductPlan, JobError> {
    let ctx = job.ctx;
    let live = versions::live(&ctx.state.db, product_id).await?;
    let mut plan = ProductPlan {
        product_id,
        scopes: Vec::new(),
    };
    let Some(default_version) = live.get(DEFAULT_SCOPE) else {
        return Ok(plan);
    };
    let default = default_version.content.clone();
    for (scope_index, scope) in job.params.store_views.iter().enumerate() {
        let fields: Vec<&String> = job
            .params
            .fields
            .iter()
            .filter(|f| match flagged {
                Some(map) => map.get(scope).is_some_and(|set| set.contains(*f)),
                None => true,
            })
            // A global attribute has no store-view value to propose.
            .filter(|f| {
                scope == DEFAULT_SCOPE
                    || job.store.attribute_scopes.0.get(*f)
                        != Some(&crate::connector::AttributeScope::Global)
            })
            .collect();
        if fields.is_empty() {
            continue;
        }
        let current = live.get(scope);
        let stored = current.map(|v| v.content.clone()).unwrap_or_default();
        let shown = effective(scope, &default, &stored);
        let language = job.scopes.language_or_default(scope);
        let name = shown.fields.get("name").cloned().unwrap_or_default();
        let mut requests = Vec::new();
        let tasks: Vec<Task> = fields
            .iter()
            .filter_map(|f| Task::parse(f))
            .filter(|t| *t != Task::AltText)
            .collect();
        if !tasks.is_empty() {
            let mut builder = RequestBuilder::text(&language, &tasks).name(&name);
            if let Some(description) = shown.fields.get("description") {
                builder = builder.description(description);
            }
            for attribute in &job.store.content_attributes {
                if let Some(value) = shown.fields.get(attribute) {
                    builder = builder.descriptive_attribute(attribute, value);
                }
            }
            requests.push((ItemKey::Text, builder.build()));
        }
        if fields.iter().any(|f| *f == "alt_text") {
            let unlabeled = shown
                .media
                .iter()
                .filter(|m| !m.disabled && m.label.as_deref().is_none_or(|l| l.trim().is_empty()));
            for media in unlabeled {
                let position = media.position.unwrap_or(0);
                let image = if job.provider.is_remote() {
                    match read_mirrored_image(&ctx.state, product_id, media.entry_id).await? {
                        Some((bytes, mime)) => Image {
                            bytes,
                            mime,
                            position,
                        },
                        None => {
                            ctx.add("alt_text_without_picture", 1);
                            continue;
                        }
                    }
                } else {
                    // The offline templates need no picture.
                    Image {
                        bytes: Vec::new(),
                        mime: String::new(),
                        position,
                    }
                };
                let request = RequestBuilder::alt_text(&language)
                    .name(&name)
                    .image(image)
                    .build();
                requests.push((ItemKey::Alt(media.entry_id), request));
            }
        }
        plan.scopes.push(ScopePlan {
            scope: scope.clone(),
            scope_index,
            parent_id: current.map(|v| v.id),
            default_id: default_version.id,
            default: default.clone(),
            shown,
            requests,
        });
    }
    Ok(plan)
}

/// A mirrored picture's bytes and MIME type, read from the object store where media
/// mirroring put it; `None` when the entry has not been mirrored.
pub(crate) async fn read_mirrored_image(
    state: &AppState,
    product_id: Uuid,
    entry_id: i64,
) -> Result<Option<(Vec<u8>, String)>, JobError> {
    let row: Option<(String, Option<String>)> = sqlx::query_as(
        "SELECT object_key, mime FROM media WHERE product_id = $1 AND entry_id = $2",
    )
    .bind(product_id)
    .bind(entry_id)
    .fetch_optional(&state.db)
    .await?;
    let Some((key, mime)) = row else {
        return Ok(None);
    };
    let key = crate::storage::ObjectKey::parse(&key)
        .map_err(|e| JobError::Fatal(format!("media object {key}: {e}")))?;
    match state.storage.get(&key).await {
        Ok(bytes) => Ok(Some((
            bytes.to_vec(),
            format!("image/{}", mime.as_deref().unwrap_or("jpeg")),
        ))),
        Err(crate::storage::StorageError::NotFound(_)) => Ok(None),
        Err(e) => Err(JobError::Transient(format!("reading {key}: {e}"))),
    }
}

/// The tokens a request is expected to use: its input, and the longest answers its tasks
/// allow (the offline templates answer about as long as their input).
pub(crate) fn estimate(job: &Job<'_>, request: &ai::Request) -> u64 {
    if !job.provider.is_remote() {
        return request.estimate_input_tokens(0) * 2;
    }
    let rendered = job.ctx.state.ai.prompts().render(request);
    let output: u64 = request
        .tasks()
        .iter()
        .map(|t| ai::text::estimate_tokens(t.max_chars()))
        .sum();
    // The schema and the message framing count as input too.
    let framing = request.schema().to_string().len() + 400;
    request.estimate_input_tokens(rendered.system.len() + rendered.user.len() + framing) + output
}

/// A product's plan with each request's result.
pub(crate) struct Generated {
    pub plan: ProductPlan,
    /// Per scope of the plan, the results of the requests that were sent.
    pub results: Vec<Vec<(ItemKey, Result<Generation, AiError>)>>,
    /// Set when this product stopped the job.
    pub halt: Option<Halt>,
}

/// What stops the products generated at once: the budget (for every later product) and a
/// spend limit (for every request not yet sent).
#[derive(Default)]
struct Stops {
    budget: std::sync::atomic::AtomicBool,
    spend: Mutex<Option<String>>,
}

impl Stops {
    fn spend_limit(&self) -> Option<String> {
        self.spend.lock().expect("stops lock").clone()
    }
}

async fn generate_product(
    job: &Job<'_>,
    plan: ProductPlan,
    index: usize,
    budget: &Budget,
    stops: &Stops,
) -> Generated {
    use std::sync::atomic::Ordering;
    let estimates: Vec<Vec<u64>> = plan
        .scopes
        .iter()
        .map(|s| s.requests.iter().map(|(_, r)| estimate(job, r)).collect())
        .collect();
    let total: u64 = estimates.iter().flatten().sum();
    let mut generated = Generated {
        results: plan.scopes.iter().map(|_| Vec::new()).collect(),
        plan,
        halt: None,
    };
    if total == 0 {
        budget.pass(index);
        return generated;
    }
    // Reserving in turn even after the budget ran out keeps the turns moving.
    let fits = budget.reserve_in_turn(index, total).await;
    if stops.budget.load(Ordering::Relaxed) || !fits {
        stops.budget.store(true, Ordering::Relaxed);
        generated.halt = Some(Halt::Budget);
        return generated;
    }
    'scopes: for (i, scope) in generated.plan.scopes.iter().enumerate() {
        for ((key, request), estimated) in scope.requests.iter().zip(&estimates[i]) {
            if let Some(message) = stops.spend_limit() {
                generated.halt = Some(Halt::SpendLimit(message));
                break 'scopes;
            }
            let result = job.provider.generate(request).await;
            let used = match &result {
                Ok(g) => g.usage.total(),
                Err(e) => e.usage().total(),
            };
            budget.settle(*estimated, used);
            if let Err(AiError::SpendLimit(message)) = &result {
                *stops.spend.lock().expect("stops lock") = Some(message.clone());
                generated.halt = Some(Halt::SpendLimit(message.clone()));
                break 'scopes;
            }
            generated.results[i].push((*key, result));
        }
    }
    generated
}

fn usage_of(job: &Job<'_>, result: &Result<Generation, AiError>) -> (Usage, String) {
    match result {
        Ok(g) => (g.usage, g.model.clone()),
        Err(e) => (e.usage(), job.provider.model().to_string()),
    }
}

/// Records every request's usage (after a halt, this is all that is kept).
async fn record_usage(
    job: &Job<'_>,
    tx: &mut sqlx::PgConnection,
    generated: &Generated,
) -> Result<(), JobError> {
    for (_, result) in generated.results.iter().flatten() {
        let (usage, model) = usage_of(job, result);
        usage::record(
            tx,
            job.store.workspace_id,
            &job.params.provider,
            &model,
            usage,
        )
        .await?;
        job.ctx.add("requests", 1);
        job.ctx.add("input_tokens", usage.input_tokens as i64);
        job.ctx.add("output_tokens", usage.output_tokens as i64);
    }
    Ok(())
}

/// Records usage and proposes each scope's sanitised result, in the caller's transaction.
pub(crate) async fn write_product(
    job: &Job<'_>,
    tx: &mut sqlx::PgConnection,
    generated: &Generated,
) -> Result<(), JobError> {
    let ctx = job.ctx;
    let product_id = generated.plan.product_id;
    record_usage(job, tx, generated).await?;
    versions::lock_for_proposal(tx, product_id).await?;
    let live = versions::live(&mut *tx, product_id).await?;
    for (scope, results) in generated.plan.scopes.iter().zip(&generated.results) {
        if results.is_empty() {
            continue;
        }
        let mut next = scope.shown.clone();
        let mut fields: BTreeSet<String> = BTreeSet::new();
        let mut prompt_versions: BTreeSet<String> = BTreeSet::new();
        let mut models: BTreeSet<String> = BTreeSet::new();
        let mut usage = Usage::default();
        for (key, result) in results {
            let generation = match result {
                Ok(g) => g,
                Err(e) => {
                    usage = usage + e.usage();
                    ctx.add("failed", 1);
                    if ctx.counter("failed") <= 20 {
                        ctx.log(
                            "warn",
                            format!("product {product_id}, {}: {e}", scope.scope),
                        )
                        .await;
                    }
                    continue;
                }
            };
            usage = usage + generation.usage;
            prompt_versions.insert(generation.prompt_version.clone());
            models.insert(generation.model.clone());
            match key {
                ItemKey::Text => {
                    for (field, value) in &generation.fields {
                        let value = sanitize::clean(field, value);
                        if !value.is_empty() {
                            next.fields.insert(field.clone(), value);
                            fields.insert(field.clone());
                        }
                    }
                }
                ItemKey::Alt(entry_id) => {
                    let text = generation
                        .fields
                        .get("alt_text")
                        .map(|t| sanitize::clean("alt_text", t))
                        .unwrap_or_default();
                    if let Some(m) = next.media.iter_mut().find(|m| m.entry_id == *entry_id)
                        && !text.is_empty()
                    {
                        m.label = Some(text);
                        fields.insert("alt_text".into());
                    }
                }
            }
        }
        if fields.is_empty() && results.iter().all(|(_, r)| r.is_err()) {
            continue;
        }
        let still_live = live.get(&scope.scope).map(|v| v.id) == scope.parent_id
            && live.get(DEFAULT_SCOPE).map(|v| v.id) == Some(scope.default_id);
        if !still_live {
            // Someone changed the product while it was being generated: propose nothing
            // on top of content the generation did not see.
            ctx.add("stale", 1);
            continue;
        }
        if next == scope.shown {
            ctx.add("unchanged", 1);
            continue;
        }
        let content: Content = if scope.scope == DEFAULT_SCOPE {
            next
        } else {
            next.overrides_of(&scope.default)
        };
        versions::propose(
            tx,
            NewProposal {
                product_id,
                workspace_id: job.store.workspace_id,
                store_view: &scope.scope,
                content: &content,
                parent_id: scope.parent_id,
                origin: VersionOrigin::Ai,
                author: Author::default(),
                note: None,
                meta: json!({
                    "provider": job.params.provider,
                    "model": models.into_iter().collect::<Vec<_>>().join(","),
                    "prompt_version": prompt_versions.into_iter().collect::<Vec<_>>().join(";"),
                    "usage": usage,
                    "job_id": ctx.job.id,
                    "fields": fields,
                }),
            },
        )
        .await?;
        ctx.add("proposals", 1);
    }
    Ok(())
}
