//! Products of a store: the searchable list and the record behind a product's detail.
//!
//! The list is keyset-paginated by SKU (the `(store_id, sku)` unique index gives the order)
//! and every filter is a condition that an index or a primary-key probe answers; see
//! ARCHITECTURE.md for the plans on 100,000 products.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::{PgPool, Postgres, QueryBuilder};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::content::{DEFAULT_SCOPE, STANDARD_FIELDS};
use super::versions::{OPEN_STATES_SQL, VersionState};
use crate::audits::rules::RuleId;
use crate::auth::Resource;
use crate::error::Error;
use crate::pagination::{Page, PageParams};
use crate::stores::Store;

/// Longest search text accepted.
const MAX_SEARCH_CHARS: usize = 200;

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Product {
    pub id: Uuid,
    pub workspace_id: Uuid,
    pub store_id: Uuid,
    pub sku: String,
    pub remote_id: Option<i64>,
    pub type_id: Option<String>,
    pub name: Option<String>,
    pub attributes: serde_json::Value,
    pub warnings: serde_json::Value,
    pub remote_updated_at: Option<DateTime<Utc>>,
    pub first_seen_at: DateTime<Utc>,
    pub removed_at: Option<DateTime<Utc>>,
}

impl Resource for Product {
    const NAME: &'static str = "product";
    const PATH_PARAM: &'static str = "id";
    async fn workspace_of(db: &PgPool, id: Uuid) -> Result<Option<Uuid>, sqlx::Error> {
        sqlx::query_scalar("SELECT workspace_id FROM products WHERE id = $1")
            .bind(id)
            .fetch_optional(db)
            .await
    }
}

pub async fn get_in(db: &PgPool, workspace_id: Uuid, id: Uuid) -> Result<Product, Error> {
    sqlx::query_as(
        "SELECT id, workspace_id, store_id, sku, remote_id, type_id, name, attributes, warnings,
                remote_updated_at, first_seen_at, removed_at
         FROM products WHERE id = $1 AND workspace_id = $2",
    )
    .bind(id)
    .bind(workspace_id)
    .fetch_optional(db)
    .await?
    .ok_or(Error::NotFound("product"))
}

/// The list's query parameters as they arrive.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ProductFilter {
    /// Case-insensitive substring of the SKU or the (default-scope) name.
    pub q: Option<String>,
    /// The scope `missing` and `state` look at: `all` (default values) or a store view code.
    /// Without it, `missing` reads the default scope and `state` any scope.
    pub store_view: Option<String>,
    /// A content field that is absent or empty in the effective live content of the scope
    /// (a store view inherits the default value unless it overrides it).
    pub missing: Option<String>,
    /// Only products with a version in this state (e.g. `proposed`).
    pub state: Option<VersionState>,
    /// `true` lists only removed products; `false` (default) only products still in the store.
    pub removed: Option<bool>,
    /// Only products with a finding of this audit rule in the store's latest audit.
    pub finding: Option<String>,
    /// Only products whose score in the store's latest audit is at most this (0–100).
    pub max_score: Option<i16>,
    /// `sku` (default) or `score` (lowest audit score first, then SKU).
    #[param(inline)]
    pub sort: Option<ProductSort>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ProductSort {
    #[default]
    Sku,
    Score,
}

/// A checked [`ProductFilter`]: scope and field names exist in the store.
#[derive(Debug)]
pub struct ProductQuery {
    search: Option<String>,
    missing: Option<String>,
    /// Where `missing` looks.
    missing_scope: String,
    state: Option<VersionState>,
    /// Where `state` looks; `None` is any scope.
    state_scope: Option<String>,
    removed: bool,
    /// The store's latest audit of all products, which scores and findings come from.
    audit_run: Option<Uuid>,
    finding: Option<&'static str>,
    max_score: Option<i16>,
    sort: ProductSort,
}

impl ProductFilter {
    pub fn parse(self, store: &Store) -> Result<ProductQuery, Error> {
        let search = self
            .q
            .map(|q| q.trim().to_string())
            .filter(|q| !q.is_empty());
        if search
            .as_ref()
            .is_some_and(|q| q.chars().count() > MAX_SEARCH_CHARS)
        {
            return Err(Error::invalid(
                "q",
                format!("q is longer than {MAX_SEARCH_CHARS} characters"),
            ));
        }
        let scope = match self.store_view {
            Some(view) => Some(check_scope(store, &view, "store_view")?),
            None => None,
        };
        let missing = match self.missing {
            Some(field) => Some(check_field(store, &field, "missing")?),
            None => None,
        };
        let finding = match self.finding {
            Some(rule) => Some(
                RuleId::parse(&rule)
                    .ok_or_else(|| {
                        Error::invalid("finding", format!("{rule:?} is not an audit rule"))
                    })?
                    .as_str(),
            ),
            None => None,
        };
        if self.max_score.is_some_and(|s| !(0..=100).contains(&s)) {
            return Err(Error::invalid(
                "max_score",
                "max_score must be between 0 and 100",
            ));
        }
        Ok(ProductQuery {
            audit_run: store.last_audit_run,
            finding,
            max_score: self.max_score,
            sort: self.sort.unwrap_or_default(),
            search,
            missing,
            missing_scope: scope.clone().unwrap_or_else(|| DEFAULT_SCOPE.to_string()),
            state: self.state,
            state_scope: scope,
            removed: self.removed.unwrap_or(false),
        })
    }
}

/// `all` or one of the store's view codes.
pub fn check_scope(store: &Store, scope: &str, param: &str) -> Result<String, Error> {
    if scope == DEFAULT_SCOPE || store.store_views.0.iter().any(|v| v.code == scope) {
        Ok(scope.to_string())
    } else {
        Err(Error::invalid(
            param,
            format!("`{scope}` is not a store view of this store (nor `{DEFAULT_SCOPE}`)"),
        ))
    }
}

/// A standard content field or one of the store's content attributes.
pub fn check_field(store: &Store, field: &str, param: &str) -> Result<String, Error> {
    if is_content_field(store, field) {
        Ok(field.to_string())
    } else {
        Err(Error::invalid(
            param,
            format!("`{field}` is not a content field of this store"),
        ))
    }
}

pub fn is_content_field(store: &Store, field: &str) -> bool {
    STANDARD_FIELDS.contains(&field) || store.content_attributes.iter().any(|a| a == field)
}

/// One row of the product list.
#[derive(Debug, Serialize, Deserialize, ToSchema, sqlx::FromRow)]
pub struct ProductSummary {
    pub id: Uuid,
    pub sku: String,
    /// The default-scope name.
    pub name: Option<String>,
    pub type_id: Option<String>,
    /// The platform's id of the product.
    pub remote_id: Option<i64>,
    pub removed_at: Option<DateTime<Utc>>,
    pub remote_updated_at: Option<DateTime<Utc>>,
    /// Versions waiting for review or push (proposed, approved, conflict), all scopes.
    pub open_proposals: i64,
    /// Score in the store's latest audit of all products (0–100); null if not audited.
    pub audit_score: Option<i16>,
}

/// Where a page of the list ends: the SKU, and the score when sorted by score.
#[derive(Debug, Serialize, Deserialize)]
struct Position {
    sku: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    score: Option<i16>,
}

/// Escapes `LIKE`'s wildcards so the search text matches literally.
pub fn like_pattern(text: &str) -> String {
    let mut pattern = String::with_capacity(text.len() + 2);
    pattern.push('%');
    for c in text.chars() {
        if matches!(c, '%' | '_' | '\\') {
            pattern.push('\\');
        }
        pattern.push(c);
    }
    pattern.push('%');
    pattern
}

/// How the `missing` filter finds products; each branch is its own `SELECT … ORDER BY sku
/// LIMIT`, so each can use its own index and the planner chooses per branch between walking
/// the SKU order (a common gap) and starting from the gaps index (a rare one).
#[derive(Debug, Clone, Copy, PartialEq)]
enum Branch {
    /// No `missing` filter.
    All,
    /// The default scope lacks the field (and, for a store view, the view does not override it).
    DefaultLacks,
    /// The store view overrides the field with an empty value.
    ViewBlanks,
}

/// Which products one query of the list reads, in which order. The score order is two
/// queries in turn: the scored products walk the `(run, score, sku)` index, and only a page
/// that reaches past the last scored product reads the unscored ones (added after the audit)
/// in SKU order.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Part {
    /// Every product, by SKU; scores joined where there are any.
    All,
    /// Products with a score in the run, by (score, SKU).
    Scored,
    /// Products without a score in the run, by SKU.
    Unscored,
}

/// A store's products in SKU order, or worst score first.
pub async fn list(
    db: &PgPool,
    workspace_id: Uuid,
    store_id: Uuid,
    query: &ProductQuery,
    page: &PageParams,
) -> Result<Page<ProductSummary>, Error> {
    let after: Option<Position> = page.after()?;
    let limit = page.limit();
    // Audit filters and the score order need an audit; without one nothing has a finding
    // or a score, and the score order is the SKU order.
    if (query.finding.is_some() || query.max_score.is_some()) && query.audit_run.is_none() {
        return Ok(Page::from_rows(Vec::new(), limit, |p: &ProductSummary| {
            p.sku.clone()
        }));
    }
    let by_score = query.sort == ProductSort::Score && query.audit_run.is_some();
    // A product without a score has no finding either and no score under the maximum.
    let audit_filtered = query.finding.is_some() || query.max_score.is_some();
    let parts: &[Part] = match &after {
        _ if !by_score => &[Part::All],
        Some(Position { score: None, .. }) if audit_filtered => &[],
        Some(Position { score: None, .. }) => &[Part::Unscored],
        _ if audit_filtered => &[Part::Scored],
        _ => &[Part::Scored, Part::Unscored],
    };

    let mut tx = db.begin().await?;
    // A page is little work: starting parallel workers costs more than they save, and on a
    // small machine they take cores from concurrent requests.
    // The planner prices the search expression like a cheap operator and would look for a
    // search's first matches by reading the table (25 ms for 2,000 matches of a common word at
    // 100,000 products, against 5 ms from the trigram index).
    sqlx::raw_sql(if query.search.is_some() {
        "SET LOCAL max_parallel_workers_per_gather = 0; SET LOCAL enable_seqscan = off"
    } else {
        "SET LOCAL max_parallel_workers_per_gather = 0"
    })
    .execute(&mut *tx)
    .await?;
    let mut rows: Vec<ProductSummary> = Vec::new();
    for part in parts {
        let wanted = limit + 1 - rows.len() as i64;
        if wanted <= 0 {
            break;
        }
        let mut sql = part_query(*part, query, workspace_id, store_id, &after, wanted);
        // Not a cached prepared statement: each search is planned with its own values, so a
        // selective text uses the trigram index and a common one walks the SKU order instead.
        let found: Vec<ProductSummary> = sql
            .build_query_as()
            .persistent(false)
            .fetch_all(&mut *tx)
            .await?;
        rows.extend(found);
    }
    tx.commit().await?;
    Ok(Page::from_rows(rows, limit, |p| Position {
        sku: p.sku.clone(),
        score: by_score.then_some(p.audit_score).flatten(),
    }))
}

/// One part of the list: a `SELECT … ORDER BY … LIMIT` per `missing` branch, merged.
fn part_query(
    part: Part,
    query: &ProductQuery,
    workspace_id: Uuid,
    store_id: Uuid,
    after: &Option<Position>,
    limit: i64,
) -> QueryBuilder<Postgres> {
    let branches: &[Branch] = match &query.missing {
        None => &[Branch::All],
        Some(_) if query.missing_scope == DEFAULT_SCOPE => &[Branch::DefaultLacks],
        Some(_) => &[Branch::DefaultLacks, Branch::ViewBlanks],
    };
    let (inner_order, outer_order) = match part {
        Part::Scored => (
            " ORDER BY sc.score, sc.sku LIMIT ",
            " ORDER BY p.audit_score, p.sku LIMIT ",
        ),
        Part::All | Part::Unscored => (" ORDER BY p.sku LIMIT ", " ORDER BY p.sku LIMIT "),
    };
    let mut sql: QueryBuilder<Postgres> = QueryBuilder::new("");
    // A search reads its matches from the trigram index first, unless there are so many that
    // walking the list's order finds a page of them sooner. The planner cannot tell the two
    // apart by itself: matches of a SKU fragment are clustered in SKU order, so a walk it
    // expects to stop after a few hundred rows may read the whole store (90 ms at 100,000).
    if let Some(search) = &query.search {
        sql.push("WITH m AS MATERIALIZED (SELECT p.id, p.sku FROM products p WHERE p.store_id = ")
            .push_bind(store_id)
            .push(" AND p.workspace_id = ")
            .push_bind(workspace_id)
            .push(removed_condition(query))
            .push(" AND ")
            .push(SEARCH_EXPRESSION)
            .push(" LIKE lower(")
            .push_bind(like_pattern(search))
            .push(") LIMIT ")
            .push_bind(SEARCH_DRIVEN_MAX + 1)
            .push("), few AS (SELECT count(*) <= ")
            .push_bind(SEARCH_DRIVEN_MAX)
            .push(" AS yes FROM m) ");
    }
    sql.push(format!(
        "SELECT p.id, p.sku, p.name, p.type_id, p.remote_id, p.removed_at, p.remote_updated_at,
            (SELECT count(*) FROM product_versions o
             WHERE o.product_id = p.id AND o.state IN ({OPEN_STATES_SQL})) AS open_proposals,
            p.audit_score
         FROM ("
    ));
    let drives: &[bool] = if query.search.is_some() {
        &[true, false]
    } else {
        &[false]
    };
    let mut first = true;
    for branch in branches {
        for &driven in drives {
            if !first {
                // The branches exclude each other (a view either overrides the field or not;
                // only one of a search's two ways runs).
                sql.push(" UNION ALL ");
            }
            first = false;
            sql.push(
                "(SELECT p.id, p.sku, p.name, p.type_id, p.remote_id, p.removed_at, p.remote_updated_at,
                         sc.score AS audit_score
                  FROM ",
            )
            .push(if driven {
                "m JOIN products p ON p.id = m.id "
            } else {
                "products p "
            })
            .push(if part == Part::Scored {
                "JOIN"
            } else {
                "LEFT JOIN"
            })
            .push(" audit_scores sc ON sc.run_id = ")
            .push_bind(query.audit_run)
            .push(" AND sc.product_id = p.id");
            push_branch(&mut sql, *branch, query, workspace_id, store_id, !driven);
            if part == Part::Unscored {
                sql.push(" AND sc.product_id IS NULL");
            }
            if query.search.is_some() {
                sql.push(if driven {
                    " AND (SELECT yes FROM few)"
                } else {
                    " AND NOT (SELECT yes FROM few)"
                });
            }
            push_position(&mut sql, part, after);
            // Ordered by the copy of the SKU in `m`, the matches are sorted, never walked for.
            sql.push(match (part, driven) {
                (Part::All | Part::Unscored, true) => " ORDER BY m.sku LIMIT ",
                _ => inner_order,
            })
            .push_bind(limit)
            .push(")");
        }
    }
    sql.push(") p").push(outer_order).push_bind(limit);
    sql
}

/// Searches with at most this many matches are answered from the trigram index.
const SEARCH_DRIVEN_MAX: i64 = 2000;

/// What `q` is matched against; the expression of the trigram index `products_search_trgm`.
const SEARCH_EXPRESSION: &str = "(lower(p.sku) || ' ' || lower(coalesce(p.name, '')))";

fn removed_condition(query: &ProductQuery) -> &'static str {
    if query.removed {
        " AND p.removed_at IS NOT NULL"
    } else {
        " AND p.removed_at IS NULL"
    }
}

/// Where the page starts, in the part's order.
fn push_position(sql: &mut QueryBuilder<Postgres>, part: Part, after: &Option<Position>) {
    match (part, after) {
        (_, None) => {}
        // A row comparison is an index bound on `(run_id, score, sku)`.
        (Part::Scored, Some(Position { sku, score })) => {
            sql.push(" AND (sc.score, sc.sku) > (")
                .push_bind(score.unwrap_or(i16::MAX))
                .push(", ")
                .push_bind(sku.clone())
                .push(")");
        }
        // The unscored part starts at its beginning after the last scored product.
        (Part::Unscored, Some(Position { score: Some(_), .. })) => {}
        (Part::All | Part::Unscored, Some(Position { sku, .. })) => {
            sql.push(" AND p.sku > ").push_bind(sku.clone());
        }
    }
}

/// Joins and conditions of one branch of the list query.
fn push_branch(
    sql: &mut QueryBuilder<Postgres>,
    branch: Branch,
    query: &ProductQuery,
    workspace_id: Uuid,
    store_id: Uuid,
    match_search: bool,
) {
    let view = query.missing_scope.clone();
    let field = query.missing.clone().unwrap_or_default();
    // Standard fields are in the `catalog_content_gaps` index; a store's own content
    // attributes are checked row by row.
    let indexed = STANDARD_FIELDS.contains(&field.as_str());
    match branch {
        Branch::All => {}
        Branch::DefaultLacks => {
            // Inner joins: a product with no live default content is not listed as missing
            // anything (it has not been pulled yet).
            sql.push(
                " JOIN product_live dl ON dl.product_id = p.id AND dl.store_view = 'all'
                  JOIN product_versions dv ON dv.id = dl.version_id",
            );
            if view != DEFAULT_SCOPE {
                sql.push(" LEFT JOIN product_live vl ON vl.product_id = p.id AND vl.store_view = ")
                    .push_bind(view.clone())
                    .push(" LEFT JOIN product_versions vv ON vv.id = vl.version_id");
            }
        }
        Branch::ViewBlanks => {
            sql.push(" JOIN product_live vl ON vl.product_id = p.id AND vl.store_view = ")
                .push_bind(view.clone())
                .push(" JOIN product_versions vv ON vv.id = vl.version_id");
        }
    }
    sql.push(" WHERE p.store_id = ")
        .push_bind(store_id)
        .push(" AND p.workspace_id = ")
        .push_bind(workspace_id);
    sql.push(removed_condition(query));
    if let Some(rule) = query.finding {
        sql.push(" AND EXISTS (SELECT 1 FROM audit_findings f WHERE f.run_id = ")
            .push_bind(query.audit_run)
            .push(" AND f.product_id = p.id AND f.rule = ")
            .push_bind(rule)
            .push(")");
    }
    if let Some(max) = query.max_score {
        sql.push(" AND sc.score <= ").push_bind(max);
    }
    if let Some(search) = query.search.as_ref().filter(|_| match_search) {
        sql.push(" AND ")
            .push(SEARCH_EXPRESSION)
            .push(" LIKE lower(")
            .push_bind(like_pattern(search))
            .push(")");
    }
    match branch {
        Branch::All => {}
        Branch::DefaultLacks => {
            if indexed {
                sql.push(" AND catalog_content_gaps(dv.store_view, dv.content) @> ARRAY[")
                    .push_bind(field.clone())
                    .push("]::text[]");
            } else {
                sql.push(" AND coalesce(dv.content->'fields'->>")
                    .push_bind(field.clone())
                    .push(", '') = ''");
            }
            if view != DEFAULT_SCOPE {
                // The view inherits the default unless it has a value of its own.
                sql.push(" AND NOT coalesce(vv.content->'fields' ? ")
                    .push_bind(field.clone())
                    .push(", false)");
            }
        }
        Branch::ViewBlanks => {
            if indexed {
                sql.push(" AND catalog_content_gaps(vv.store_view, vv.content) @> ARRAY[")
                    .push_bind(field.clone())
                    .push("]::text[]");
            } else {
                sql.push(" AND vv.content->'fields'->>")
                    .push_bind(field.clone())
                    .push(" = ''");
            }
        }
    }
    if let Some(state) = query.state {
        sql.push(" AND EXISTS (SELECT 1 FROM product_versions s WHERE s.product_id = p.id AND s.state = ")
            .push_bind(state);
        if let Some(scope) = &query.state_scope {
            sql.push(" AND s.store_view = ").push_bind(scope.clone());
        }
        sql.push(")");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn search_text_matches_literally() {
        assert_eq!(like_pattern("50%_off\\"), "%50\\%\\_off\\\\%");
        assert_eq!(like_pattern("Éte"), "%Éte%");
    }
}
