//! Enrichment: generated content for weak fields, stored as proposals (origin `ai`) a
//! reviewer approves before anything reaches the store.
//!
//! A job walks the selected products in id order (the checkpoint is the last one done). For
//! each scope it builds a [`GenerationInput`] — the one type a provider ever sees, holding only
//! what may leave the daemon: the name, the description text, the language and image
//! positions, never prices, stock or anything else — generates the requested fields, records
//! the usage, and proposes the result on top of the scope's live version when it changes
//! anything. A workspace with `ai_processing` off refuses every enrichment; a daily token
//! budget stops a job cleanly when the next product would exceed it.

pub mod rules_provider;
pub mod usage;

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::accounts::settings;
use crate::audits::engine::StoreScopes;
use crate::audits::rules::RuleId;
use crate::catalog::content::{Content, DEFAULT_SCOPE};
use crate::catalog::products::like_pattern;
use crate::catalog::versions::{self, NewProposal, VersionOrigin, effective};
use crate::jobs::context::{JobContext, JobError, Outcome};
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

/// Providers this daemon can call.
pub const PROVIDERS: &[&str] = &[rules_provider::PROVIDER];

/// Everything a provider is given: an allow-list by construction.
#[derive(Debug, Clone, PartialEq)]
pub struct GenerationInput {
    /// `en`, `fr`… of the scope being written.
    pub language: String,
    pub name: String,
    /// The scope's description (HTML); providers read its text.
    pub description: Option<String>,
    pub fields: Vec<String>,
    /// (entry id, position) of images without alt text.
    pub images: Vec<(i64, i64)>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Usage {
    pub input_tokens: u64,
    pub output_tokens: u64,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Generated {
    pub fields: BTreeMap<String, String>,
    pub alt_texts: Vec<(i64, String)>,
    pub usage: Usage,
}

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
    pub provider: String,
}

impl EnrichParams {
    /// The audit run whose findings narrow this enrichment, if any.
    fn needs_findings(&self) -> bool {
        self.findings.is_some() || self.only_flagged
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Checkpoint {
    after: Option<Uuid>,
}

const BATCH: i64 = 100;

pub async fn run(ctx: &JobContext) -> Result<Outcome, JobError> {
    let params: EnrichParams = ctx.params()?;
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
    if !PROVIDERS.contains(&params.provider.as_str()) {
        return Err(JobError::Fatal(format!(
            "provider {:?} is not configured",
            params.provider
        )));
    }
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
    for counter in ["proposals", "unchanged", "input_tokens", "output_tokens"] {
        ctx.add(counter, 0);
    }
    let scopes = StoreScopes::new(&store.store_views.0);
    let mut checkpoint: Checkpoint = ctx.checkpoint().unwrap_or_default();
    loop {
        let ids: Vec<Uuid> = sqlx::query_scalar(sqlx::AssertSqlSafe(selection_sql("p.id", true)))
            .bind(store.id)
            .bind(&params.products)
            .bind(params.q.as_deref().map(like_pattern))
            .bind(finding_rules(&params))
            .bind(params.finding_run)
            .bind(checkpoint.after)
            .bind(BATCH)
            .persistent(false)
            .fetch_all(db)
            .await?;
        if ids.is_empty() {
            break;
        }
        for id in ids {
            if let Some(stop) = ctx.should_stop().await {
                return Ok(Outcome::Stopped(stop));
            }
            let flagged = flagged_fields(ctx, &params, id).await?;
            let mut tx = db.begin().await?;
            let budget_left =
                usage::budget_left(&mut tx, store.workspace_id, workspace.daily_token_budget)
                    .await?;
            let done = enrich_product(
                ctx,
                &mut tx,
                &store,
                &scopes,
                &params,
                id,
                &flagged,
                budget_left,
            )
            .await?;
            checkpoint.after = Some(id);
            ctx.advance(1);
            ctx.save(&mut tx, &checkpoint).await?;
            tx.commit().await?;
            if done == ProductOutcome::BudgetReached {
                ctx.add("budget_reached", 1);
                ctx.log(
                    "warn",
                    "the workspace's daily token budget is reached; enrichment stopped",
                )
                .await;
                return Ok(Outcome::Done);
            }
        }
    }
    ctx.log(
        "info",
        format!(
            "{} proposals written, {} scopes unchanged",
            ctx.counter("proposals"),
            ctx.counter("unchanged")
        ),
    )
    .await;
    Ok(Outcome::Done)
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
async fn flagged_fields(
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

#[derive(Debug, PartialEq, Eq)]
enum ProductOutcome {
    Done,
    BudgetReached,
}

#[allow(clippy::too_many_arguments)]
async fn enrich_product(
    ctx: &JobContext,
    tx: &mut sqlx::PgConnection,
    store: &Store,
    scopes: &StoreScopes,
    params: &EnrichParams,
    product_id: Uuid,
    flagged: &Option<BTreeMap<String, BTreeSet<String>>>,
    mut budget_left: Option<u64>,
) -> Result<ProductOutcome, JobError> {
    versions::lock_for_proposal(tx, product_id).await?;
    let live = versions::live(&mut *tx, product_id).await?;
    let Some(default_version) = live.get(DEFAULT_SCOPE) else {
        return Ok(ProductOutcome::Done);
    };
    let default = default_version.content.clone();
    for scope in &params.store_views {
        let fields: Vec<String> = params
            .fields
            .iter()
            .filter(|f| match flagged {
                Some(map) => map.get(scope).is_some_and(|set| set.contains(*f)),
                None => true,
            })
            .cloned()
            .collect();
        if fields.is_empty() {
            continue;
        }
        let current = live.get(scope);
        let stored = current.map(|v| v.content.clone()).unwrap_or_default();
        let shown = effective(scope, &default, &stored);
        let input = GenerationInput {
            language: scopes.language_or_default(scope),
            name: shown.fields.get("name").cloned().unwrap_or_default(),
            description: shown.fields.get("description").cloned(),
            fields,
            images: shown
                .media
                .iter()
                .filter(|m| !m.disabled && m.label.as_deref().is_none_or(|l| l.trim().is_empty()))
                .map(|m| (m.entry_id, m.position.unwrap_or(0)))
                .collect(),
        };
        let estimate = rules_provider::estimate_tokens(
            input.name.len() + input.description.as_ref().map_or(0, String::len),
        ) * 2;
        if budget_left.is_some_and(|left| estimate > left) {
            return Ok(ProductOutcome::BudgetReached);
        }
        let generated = rules_provider::generate(&input);
        let used = generated.usage.input_tokens + generated.usage.output_tokens;
        budget_left = budget_left.map(|left| left.saturating_sub(used));
        usage::record(
            tx,
            store.workspace_id,
            rules_provider::PROVIDER,
            rules_provider::MODEL,
            generated.usage,
        )
        .await?;
        ctx.add("input_tokens", generated.usage.input_tokens as i64);
        ctx.add("output_tokens", generated.usage.output_tokens as i64);
        let mut next = shown.clone();
        for (field, value) in &generated.fields {
            next.fields.insert(field.clone(), value.clone());
        }
        for (entry_id, text) in &generated.alt_texts {
            if let Some(m) = next.media.iter_mut().find(|m| m.entry_id == *entry_id) {
                m.label = Some(text.clone());
            }
        }
        if next == shown {
            ctx.add("unchanged", 1);
            continue;
        }
        let content: Content = if scope == DEFAULT_SCOPE {
            next
        } else {
            next.overrides_of(&default)
        };
        versions::propose(
            tx,
            NewProposal {
                product_id,
                workspace_id: store.workspace_id,
                store_view: scope,
                content: &content,
                parent_id: current.map(|v| v.id),
                origin: VersionOrigin::Ai,
                author_user_id: None,
                note: None,
                meta: json!({
                    "provider": rules_provider::PROVIDER,
                    "model": rules_provider::MODEL,
                    "prompt_version": rules_provider::PROMPT_VERSION,
                    "usage": generated.usage,
                    "job_id": ctx.job.id,
                    "fields": generated.fields.keys().collect::<Vec<_>>(),
                }),
            },
        )
        .await?;
        ctx.add("proposals", 1);
    }
    Ok(ProductOutcome::Done)
}
