//! Review: proposals waiting for a decision, with their diff against what is live, and the
//! decisions (approve, reject) that gate every push.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::{PgConnection, PgPool};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::accounts::settings::WorkspaceSettings;
use crate::audit_log::{self, Entry};
use crate::audits::rules::RuleId;
use crate::auth::{Caller, Resource};
use crate::catalog::content::{Content, DEFAULT_SCOPE};
use crate::catalog::diff::{self, FieldChange, MediaChange};
use crate::catalog::products::{check_field, check_scope};
use crate::catalog::versions::{VersionOrigin, VersionState};
use crate::error::Error;
use crate::pagination::{Page, PageParams};
use crate::push::scope_check::{self, ViewChange};
use crate::stores::Store;

/// A proposal is a version waiting for (or past) review; `/proposals/{id}` names one.
pub struct Proposal;

impl Resource for Proposal {
    const NAME: &'static str = "proposal";
    const PATH_PARAM: &'static str = "id";
    async fn workspace_of(db: &PgPool, id: Uuid) -> Result<Option<Uuid>, sqlx::Error> {
        sqlx::query_scalar(
            "SELECT workspace_id FROM product_versions WHERE id = $1 AND origin <> 'pull' AND origin <> 'push'",
        )
        .bind(id)
        .fetch_optional(db)
        .await
    }
}

/// The proposal list's query parameters.
#[derive(Debug, Default, Clone, Deserialize, IntoParams, ToSchema)]
#[into_params(parameter_in = Query)]
pub struct ProposalFilter {
    /// `proposed` (default), `approved`, `conflict`, `failed`, `rejected` or `pushed`.
    pub state: Option<VersionState>,
    /// `ai`, `human` or `rollback`.
    pub origin: Option<VersionOrigin>,
    /// Only proposals that change this content field.
    pub field: Option<String>,
    /// `all` or a store view code.
    pub store_view: Option<String>,
    /// Only proposals of products with a finding of this rule in the store's latest audit.
    pub rule: Option<String>,
}

/// A checked filter.
#[derive(Debug, Clone)]
pub struct ProposalQuery {
    state: VersionState,
    origin: Option<VersionOrigin>,
    field: Option<String>,
    store_view: Option<String>,
    rule: Option<&'static str>,
    audit_run: Option<Uuid>,
}

impl ProposalFilter {
    pub fn parse(self, store: &Store) -> Result<ProposalQuery, Error> {
        let state = self.state.unwrap_or(VersionState::Proposed);
        if matches!(
            state,
            VersionState::Live | VersionState::Superseded | VersionState::Draft
        ) {
            return Err(Error::invalid(
                "state",
                "state must be proposed, approved, conflict, failed, rejected or pushed",
            ));
        }
        if matches!(self.origin, Some(VersionOrigin::Pull | VersionOrigin::Push)) {
            return Err(Error::invalid(
                "origin",
                "origin must be ai, human or rollback",
            ));
        }
        let rule = match self.rule {
            Some(r) => {
                let rule = RuleId::parse(&r)
                    .ok_or_else(|| Error::invalid("rule", format!("{r:?} is not an audit rule")))?;
                if store.last_audit_run.is_none() {
                    return Err(Error::Conflict(
                        "the rule filter needs a finished audit of all the store's products".into(),
                    ));
                }
                Some(rule.as_str())
            }
            None => None,
        };
        Ok(ProposalQuery {
            state,
            origin: self.origin,
            field: self
                .field
                .map(|f| check_field(store, &f, "field"))
                .transpose()?,
            store_view: self
                .store_view
                .map(|v| check_scope(store, &v, "store_view"))
                .transpose()?,
            rule,
            audit_run: store.last_audit_run,
        })
    }
}

#[derive(Debug, Serialize, Deserialize, ToSchema, sqlx::FromRow)]
pub struct ProposalResponse {
    pub id: Uuid,
    pub product_id: Uuid,
    pub sku: String,
    /// `all` (default values) or a store view code.
    pub store_view: String,
    pub origin: VersionOrigin,
    pub state: VersionState,
    /// The live version the proposal was made from.
    pub parent_id: Option<Uuid>,
    pub author_user_id: Option<Uuid>,
    /// The API key the change was made with, if any.
    pub author_api_key_id: Option<Uuid>,
    pub note: Option<String>,
    /// Provider and usage of AI proposals, review comments, push errors, conflicts (`base`,
    /// `store`, `proposal` per field).
    #[schema(value_type = Object)]
    pub meta: serde_json::Value,
    pub created_at: DateTime<Utc>,
    pub decided_at: Option<DateTime<Utc>>,
    pub decided_by: Option<Uuid>,
    /// As stored: for a store view, only its overrides.
    #[sqlx(json)]
    pub content: Content,
    /// What the proposal changes against the scope's live version (as stored).
    #[sqlx(skip)]
    pub changes: Vec<FieldChange>,
    #[sqlx(skip)]
    pub media_changes: Vec<MediaChange>,
    #[serde(skip)]
    #[sqlx(json(nullable))]
    pub live: Option<Content>,
}

pub async fn list(
    db: &PgPool,
    store: &Store,
    query: &ProposalQuery,
    page: &PageParams,
) -> Result<Page<ProposalResponse>, Error> {
    let after: Option<Uuid> = page.after()?;
    let limit = page.limit();
    let mut rows: Vec<ProposalResponse> = sqlx::query_as(
        "SELECT v.id, v.product_id, p.sku, v.store_view, v.origin, v.state, v.parent_id, v.author_user_id,
                v.author_api_key_id, v.note, v.meta, v.created_at, v.decided_at, v.decided_by, v.content, lv.content AS live
         FROM product_versions v
         JOIN products p ON p.id = v.product_id
         LEFT JOIN product_live l ON l.product_id = v.product_id AND l.store_view = v.store_view
         LEFT JOIN product_versions lv ON lv.id = l.version_id
         WHERE p.store_id = $1 AND v.workspace_id = $2 AND v.state = $3
           AND v.origin IN ('ai', 'human', 'rollback')
           AND ($4::text IS NULL OR v.origin = $4)
           AND ($5::text IS NULL OR v.store_view = $5)
           AND ($6::text IS NULL OR (v.content -> 'fields' ->> $6) IS DISTINCT FROM (lv.content -> 'fields' ->> $6))
           AND ($7::text IS NULL OR EXISTS (SELECT 1 FROM audit_findings f
                WHERE f.run_id = $8 AND f.product_id = v.product_id AND f.rule = $7))
           AND ($9::uuid IS NULL OR v.id > $9)
         ORDER BY v.id LIMIT $10",
    )
    .bind(store.id)
    .bind(store.workspace_id)
    .bind(query.state)
    .bind(query.origin)
    .bind(&query.store_view)
    .bind(&query.field)
    .bind(query.rule)
    .bind(query.audit_run)
    .bind(after)
    .bind(limit + 1)
    .persistent(false)
    .fetch_all(db)
    .await?;
    for row in &mut rows {
        let changes = diff::diff(
            row.live.as_ref().unwrap_or(&Content::default()),
            &row.content,
        );
        row.changes = changes.fields;
        row.media_changes = changes.media;
    }
    Ok(Page::from_rows(rows, limit, |p| p.id))
}

/// Ids of the store's proposals matching a filter (for bulk decisions), at most `cap`.
pub async fn ids_matching(
    db: &PgPool,
    store: &Store,
    query: &ProposalQuery,
    cap: i64,
) -> Result<Vec<Uuid>, Error> {
    let mut ids = Vec::new();
    let mut page = PageParams {
        cursor: None,
        limit: Some(200),
    };
    loop {
        let found = list(db, store, query, &page).await?;
        ids.extend(found.items.iter().map(|p| p.id));
        if ids.len() as i64 > cap {
            return Err(Error::invalid(
                "filter",
                format!("the filter matches more than {cap} proposals; narrow it"),
            ));
        }
        match found.next_cursor {
            Some(c) => page.cursor = Some(c),
            None => return Ok(ids),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Approve,
    Reject,
}

#[derive(Debug, sqlx::FromRow)]
struct Locked {
    product_id: Uuid,
    store_view: String,
    state: VersionState,
    #[sqlx(json)]
    content: Content,
    content_hash: Vec<u8>,
    author_user_id: Option<Uuid>,
    author_api_key_id: Option<Uuid>,
    /// The person who made the key the change was made with.
    author_key_creator: Option<Uuid>,
}

impl Locked {
    /// Whether `caller` is, or acts for, the change's author: the same person or key, a key
    /// the author made, or the person who made the author's key. Four-eyes means two people.
    async fn authored_by(
        &self,
        tx: &mut PgConnection,
        caller: &Caller,
    ) -> Result<bool, sqlx::Error> {
        let key = caller.api_key_id();
        if key.is_some() && key == self.author_api_key_id {
            return Ok(true);
        }
        let key_creator: Option<Uuid> = match key {
            Some(key) => sqlx::query_scalar("SELECT created_by FROM api_keys WHERE id = $1")
                .bind(key)
                .fetch_optional(&mut *tx)
                .await?
                .flatten(),
            None => None,
        };
        let authors = [self.author_user_id, self.author_key_creator];
        Ok([caller.user_id(), key_creator]
            .into_iter()
            .flatten()
            .any(|person| authors.contains(&Some(person))))
    }
}

/// One decision about one proposal.
pub struct DecisionInput<'a> {
    pub workspace_id: Uuid,
    pub settings: &'a WorkspaceSettings,
    pub id: Uuid,
    pub decision: Decision,
    pub comment: Option<&'a str>,
    /// A reviewer's changes: the content to approve instead (stored form of its scope).
    pub edited: Option<Content>,
    /// Approve setting an interface attribute of a store view back to the default by writing
    /// the default value as the view's own value (see [`crate::push::scope_check`]).
    pub explicit_default_values: bool,
}

/// Refuses the approval of a store-view change Magento cannot carry out as asked: a value of a
/// global attribute, or an interface attribute set back to "Use Default Value" without
/// `explicit_default_values` ([`crate::push::scope_check`]).
async fn check_view_change(
    tx: &mut PgConnection,
    product_id: Uuid,
    view: &str,
    proposed: &Content,
    explicit_default_values: bool,
) -> Result<(), Error> {
    let (scopes, views): (
        sqlx::types::Json<crate::stores::attribute_scopes::Scopes>,
        sqlx::types::Json<Vec<crate::stores::StoreView>>,
    ) = sqlx::query_as(
        "SELECT s.attribute_scopes, s.store_views FROM products p JOIN stores s ON s.id = p.store_id
         WHERE p.id = $1",
    )
    .bind(product_id)
    .fetch_one(&mut *tx)
    .await?;
    let live = crate::catalog::versions::live(&mut *tx, product_id)
        .await?
        .remove(view)
        .map(|v| v.content)
        .unwrap_or_default();
    let change = ViewChange::between(&live, proposed);
    let checked = scope_check::check(&views, &scopes, view, &change, explicit_default_values);
    match checked.refusal() {
        Some(refusal) => Err(Error::invalid("fields", refusal)),
        None => Ok(()),
    }
}

/// Approves or rejects one proposal in `tx`, with the audit-log entry. A reviewer's own
/// changes (`edited`) become a new approved version attributed to them.
pub async fn decide(
    tx: &mut PgConnection,
    caller: &Caller,
    input: DecisionInput<'_>,
) -> Result<Uuid, Error> {
    let DecisionInput {
        workspace_id,
        settings,
        id,
        decision,
        comment,
        edited,
        explicit_default_values,
    } = input;
    let locked: Locked = sqlx::query_as(
        "SELECT v.product_id, v.store_view, v.state, v.content, v.content_hash, v.author_user_id, v.author_api_key_id,
                k.created_by AS author_key_creator
         FROM product_versions v LEFT JOIN api_keys k ON k.id = v.author_api_key_id
         WHERE v.id = $1 AND v.workspace_id = $2 AND v.origin IN ('ai', 'human', 'rollback')
         FOR UPDATE OF v",
    )
    .bind(id)
    .bind(workspace_id)
    .fetch_optional(&mut *tx)
    .await?
    .ok_or(Error::NotFound("proposal"))?;
    let allowed = match decision {
        Decision::Approve => matches!(locked.state, VersionState::Proposed),
        Decision::Reject => matches!(
            locked.state,
            VersionState::Proposed
                | VersionState::Approved
                | VersionState::Conflict
                | VersionState::Failed
        ),
    };
    if !allowed {
        return Err(Error::Conflict(format!(
            "the proposal is {}; it cannot be {} now",
            serde_json::to_value(locked.state)
                .ok()
                .and_then(|v| v.as_str().map(String::from))
                .unwrap_or_default(),
            if decision == Decision::Approve {
                "approved"
            } else {
                "rejected"
            }
        )));
    }
    // An "edit" that re-sends the proposal as it is changes nothing: it is a plain approval.
    let edited = edited.filter(|content| content.hash() != locked.content_hash);
    if decision == Decision::Approve && locked.store_view != DEFAULT_SCOPE {
        let proposed = edited.as_ref().unwrap_or(&locked.content);
        check_view_change(
            tx,
            locked.product_id,
            &locked.store_view,
            proposed,
            explicit_default_values,
        )
        .await?;
    }
    if decision == Decision::Approve && settings.four_eyes {
        if edited.is_some() {
            // The reviewer would approve content they wrote themselves.
            return Err(Error::Forbidden(
                "four-eyes review is on: your own changes need someone else's approval; propose them as an edit (POST /products/{id}/versions) instead",
            ));
        }
        if locked.authored_by(tx, caller).await? {
            return Err(Error::Forbidden(
                "four-eyes review is on: someone other than the author must approve this change",
            ));
        }
    }
    let decider = caller.user_id();
    let mut comment_meta = serde_json::json!({"review_comment": comment});
    if decision == Decision::Approve && explicit_default_values {
        comment_meta["explicit_default_values"] = serde_json::json!(true);
    }
    let decided = match (decision, edited) {
        (Decision::Approve, Some(content)) => {
            let new_id = Uuid::now_v7();
            sqlx::query(
                "INSERT INTO product_versions (id, product_id, workspace_id, store_view, content, content_hash,
                     parent_id, origin, state, author_user_id, author_api_key_id, note, meta, decided_at, decided_by)
                 SELECT $1, product_id, workspace_id, store_view, $2, $3, parent_id, 'human', 'approved', $4, $7, note,
                        meta || jsonb_build_object('edited_from', id) || $5, now(), $4
                 FROM product_versions WHERE id = $6",
            )
            .bind(new_id)
            .bind(sqlx::types::Json(&content))
            .bind(content.hash())
            .bind(decider)
            .bind(&comment_meta)
            .bind(id)
            .bind(caller.api_key_id())
            .execute(&mut *tx)
            .await?;
            sqlx::query(
                "UPDATE product_versions SET state = 'superseded', decided_at = now(), decided_by = $2,
                    meta = meta || jsonb_build_object('superseded_by', $3::uuid)
                 WHERE id = $1",
            )
            .bind(id)
            .bind(decider)
            .bind(new_id)
            .execute(&mut *tx)
            .await?;
            new_id
        }
        (decision, _) => {
            let state = if decision == Decision::Approve {
                "approved"
            } else {
                "rejected"
            };
            sqlx::query(
                "UPDATE product_versions SET state = $2, decided_at = now(), decided_by = $3, meta = meta || $4
                 WHERE id = $1",
            )
            .bind(id)
            .bind(state)
            .bind(decider)
            .bind(&comment_meta)
            .execute(&mut *tx)
            .await?;
            id
        }
    };
    audit_log::record(
        &mut *tx,
        Entry::by(
            caller,
            workspace_id,
            if decision == Decision::Approve {
                "proposal.approved"
            } else {
                "proposal.rejected"
            },
        )
        .target("proposal", decided)
        .details(serde_json::json!({
            "product_id": locked.product_id,
            "store_view": locked.store_view,
            "comment": comment,
            "edited_from": (decided != id).then_some(id),
        })),
    )
    .await?;
    Ok(decided)
}
