//! Products: the store's list with search, filters and the audit score; a product's live
//! content per store view with its pictures, its version history, and a side-by-side word
//! diff between any two versions.

use axum::extract::{Path, Query};
use axum::http::Method;
use axum::response::Response;
use axum::routing::get;
use axum::{Extension, Router};
use maud::{Markup, html};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{Workspace, call, get_list, in_workspace, load_store};
use crate::catalog::diff::{FieldChange, SegmentOp};
use crate::catalog::products::ProductSummary;
use crate::catalog::versions::Version;
use crate::http::routes::products::{DiffResponse, ProductDetail, VersionRef};
use crate::pagination::Page;
use crate::state::AppState;
use crate::stores::StoreResponse;
use crate::web::api::InternalApi;
use crate::web::layout::{badge, name, when};
use crate::web::session::WebUser;
use crate::web::table::Table;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/w/{ws}/stores/{id}/products", get(list))
        .route("/w/{ws}/products/{id}", get(show))
        .route("/w/{ws}/products/{id}/diff", get(diff))
}

#[derive(Deserialize, Serialize, Default, Clone)]
struct ListFilter {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    q: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    finding: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    missing: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    state: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    store_view: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    sort: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    cursor: String,
}

const FIELDS: &[&str] = &[
    "name",
    "description",
    "short_description",
    "meta_title",
    "meta_description",
    "meta_keyword",
    "url_key",
];
const STATES: &[&str] = &["proposed", "approved", "conflict", "rejected", "pushed"];

fn options(values: &[&str], selected: &str, any: &str) -> Markup {
    html! {
        option value="" selected[selected.is_empty()] { (any) }
        @for v in values { option value=(v) selected[*v == selected] { (v) } }
    }
}

async fn list(
    Extension(api): Extension<InternalApi>,
    user: WebUser,
    Path((ws, id)): Path<(Uuid, Uuid)>,
    Query(filter): Query<ListFilter>,
) -> Result<Response, Response> {
    let workspace = Workspace::load(&api, &user, ws).await?;
    let store = load_store(&api, &user, ws, id).await?;
    let query = serde_urlencoded::to_string(&filter).unwrap_or_default();
    let Page { items, next_cursor } = get_list::<ProductSummary>(
        &api,
        &user,
        &format!("/stores/{id}/products?limit=50&{query}"),
    )
    .await?;
    let views: Vec<String> = std::iter::once("all".to_string())
        .chain(store.store_views.iter().map(|v| v.code.clone()))
        .collect();
    let view_refs: Vec<&str> = views.iter().map(String::as_str).collect();
    let next = next_cursor.map(|cursor| {
        let next = ListFilter {
            cursor,
            ..filter.clone()
        };
        serde_urlencoded::to_string(&next).unwrap_or_default()
    });
    let body = html! {
        p { a href=(format!("/w/{ws}/stores/{id}")) { "Back to " (store.name) } }
        form.filters method="get" action=(format!("/w/{ws}/stores/{id}/products")) role="search" {
            div { label for="q" { "Search SKU or name" } input #q type="search" name="q" value=(filter.q); }
            div { label for="finding" { "Audit rule" } input #finding type="text" name="finding" value=(filter.finding) placeholder="e.g. description_missing"; }
            div { label for="missing" { "Missing field" } select #missing name="missing" { (options(FIELDS, &filter.missing, "any")) } }
            div { label for="pstate" { "Version state" } select #pstate name="state" { (options(STATES, &filter.state, "any")) } }
            div { label for="store_view" { "Store view" } select #store_view name="store_view" { (options(&view_refs, &filter.store_view, "any")) } }
            div { label for="sort" { "Order" } select #sort name="sort" { (options(&["score"], &filter.sort, "sku")) } }
            button type="submit" { "Apply" }
        }
        @if items.is_empty() {
            p #no-products { "No products match." }
        } @else {
            (Table::new("Products", &["SKU", "Name", "Type", "Audit score", "Open proposals"]).id("products").rows(&items, |p| html! {
                td { a href=(format!("/w/{ws}/products/{}", p.id)) { (p.sku) } }
                td { (p.name.as_deref().unwrap_or("")) }
                td { (p.type_id.as_deref().unwrap_or("")) }
                td.score { (p.audit_score.map(|s| s.to_string()).unwrap_or_else(|| "—".into())) }
                td { (p.open_proposals) }
            }))
        }
        @if let Some(next) = next {
            p { a rel="next" href=(format!("/w/{ws}/stores/{id}/products?{next}")) { "Next page" } }
        }
    };
    let title = format!("Products · {}", store.name);
    Ok(workspace.page(&user, "stores", &title, body))
}

/// The alt text of a picture: its label in the default scope's live content.
fn alt_text(product: &ProductDetail, entry_id: i64) -> String {
    product
        .scopes
        .iter()
        .filter(|s| s.store_view == "all")
        .filter_map(|s| s.live.as_ref())
        .flat_map(|live| &live.content.media)
        .find(|m| m.entry_id == entry_id)
        .and_then(|m| m.label.as_deref())
        .unwrap_or("")
        .to_string()
}

async fn show(
    Extension(api): Extension<InternalApi>,
    user: WebUser,
    Path((ws, id)): Path<(Uuid, Uuid)>,
) -> Result<Response, Response> {
    let workspace = Workspace::load(&api, &user, ws).await?;
    let product: ProductDetail =
        call(&api, &user, Method::GET, &format!("/products/{id}"), None).await?;
    let store_id = product.store_id;
    let store: StoreResponse = call(
        &api,
        &user,
        Method::GET,
        &format!("/stores/{store_id}"),
        None,
    )
    .await?;
    in_workspace(store.workspace_id, ws, "product")?;
    let versions = get_list::<Version>(&api, &user, &format!("/products/{id}/versions?limit=100"))
        .await?
        .items;
    let body = html! {
        p { a href=(format!("/w/{ws}/stores/{store_id}/products")) { "Back to the products" } }
        @let media = &product.media;
        @if !media.is_empty() {
            section aria-labelledby="media-heading" {
                h2 #media-heading { "Pictures" }
                ul.thumbs {
                    @for m in media {
                        @let alt = alt_text(&product, m.entry_id);
                        li {
                            @if let Some(url) = &m.thumbnail_url {
                                img src=(url) alt=(alt) width="128" height="128" loading="lazy";
                            } @else {
                                span.hint { "no thumbnail" }
                            }
                            p.alt { "Alt text: " @if alt.is_empty() { em { "missing" } } @else { (alt) } }
                        }
                    }
                }
            }
        }
        section aria-labelledby="live-heading" {
            h2 #live-heading { "Live content per store view" }
            @for scope in &product.scopes {
                h3 { (scope.store_view) }
                @match &scope.live {
                    Some(live) => {
                        @let content = live.effective.as_ref().unwrap_or(&live.content);
                        dl.facts {
                            @for (field, value) in &content.fields {
                                dt { (field) } dd { (value) }
                            }
                        }
                    }
                    None => p.hint { "Nothing live in this store view yet." }
                }
                @if let Some(open) = &scope.open_proposal {
                    p { "Open proposal: " (badge(&name(&open.state))) " "
                        a href=(format!("/w/{ws}/products/{id}/diff?to={}", open.id)) { "see its changes" } }
                }
            }
        }
        section aria-labelledby="history-heading" {
            h2 #history-heading { "Version history" }
            form method="get" action=(format!("/w/{ws}/products/{id}/diff")) {
                (Table::new("Versions, newest first; pick two to compare", &["From", "To", "Store view", "Origin", "State", "Created"]).id("versions").rows(versions.iter().enumerate(), |(i, v)| html! {
                    @let vid = v.id;
                    td { input type="radio" name="from" value=(vid) id=(format!("from-{vid}")) checked[i == 1] aria-label=(format!("compare from version of {}", when(v.created_at))); }
                    td { input type="radio" name="to" value=(vid) id=(format!("to-{vid}")) checked[i == 0] aria-label=(format!("compare to version of {}", when(v.created_at))); }
                    td { (v.store_view) }
                    td { (name(&v.origin)) }
                    td { (badge(&name(&v.state))) }
                    td { (when(v.created_at)) }
                }))
                button type="submit" { "Compare the two versions" }
            }
        }
    };
    let title = format!(
        "{} · {}",
        product.sku,
        product.name.as_deref().unwrap_or("")
    );
    Ok(workspace.page(&user, "stores", &title, body))
}

#[derive(Deserialize)]
struct DiffQuery {
    to: Uuid,
    from: Option<Uuid>,
}

/// One field side by side: the old value with deletions marked, the new with insertions.
fn side_by_side(change: &FieldChange) -> Markup {
    html! {
        div.side-by-side {
            div {
                h4 { "Before" }
                @match &change.words {
                    Some(segments) => p.diff {
                        @for s in segments {
                            @match s.op {
                                SegmentOp::Delete => del { (s.text) },
                                SegmentOp::Equal => span { (s.text) },
                                SegmentOp::Insert => {},
                            }
                        }
                    },
                    None => p.diff { @if let Some(from) = &change.from { del { (from) } } },
                }
            }
            div {
                h4 { "After" }
                @match &change.words {
                    Some(segments) => p.diff {
                        @for s in segments {
                            @match s.op {
                                SegmentOp::Insert => ins { (s.text) },
                                SegmentOp::Equal => span { (s.text) },
                                SegmentOp::Delete => {},
                            }
                        }
                    },
                    None => p.diff { @if let Some(to) = &change.to { ins { (to) } } },
                }
            }
        }
    }
}

async fn diff(
    Extension(api): Extension<InternalApi>,
    user: WebUser,
    Path((ws, id)): Path<(Uuid, Uuid)>,
    Query(query): Query<DiffQuery>,
) -> Result<Response, Response> {
    let workspace = Workspace::load(&api, &user, ws).await?;
    let mut path = format!("/products/{id}/diff?to={}", query.to);
    if let Some(from) = query.from {
        path.push_str(&format!("&from={from}"));
    }
    let diff: DiffResponse = call(&api, &user, Method::GET, &path, None).await?;
    let describe = |v: &VersionRef| {
        format!(
            "{} · {} · {} · {}",
            v.store_view,
            name(&v.origin),
            name(&v.state),
            when(v.created_at)
        )
    };
    let body = html! {
        p { a href=(format!("/w/{ws}/products/{id}")) { "Back to the product" } }
        dl #diff-versions .facts {
            dt { "From" } dd { @if let Some(from) = &diff.from { (describe(from)) } @else { "nothing (first version)" } }
            dt { "To" } dd { (describe(&diff.to)) }
        }
        @if diff.identical {
            p #identical { "The two versions have the same content." }
        }
        @for change in &diff.fields {
            section.change {
                h3 { (change.field) " " span.hint { "(" (name(&change.change)) ")" } }
                (side_by_side(change))
            }
        }
        @for m in &diff.media {
            section.change {
                h3 { "Picture " (m.file) " " span.hint { "(" (name(&m.change)) ")" } }
            }
        }
    };
    Ok(workspace.page(&user, "stores", "Compare versions", body))
}
