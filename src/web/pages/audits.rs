//! Audits: a store's runs with the score over time, and a run's findings by rule — both as
//! small SVG charts drawn on the server — and its findings.

use axum::extract::Path;
use axum::http::Method;
use axum::response::Response;
use axum::routing::get;
use axum::{Extension, Router};
use maud::{Markup, html};
use uuid::Uuid;

use super::{Workspace, call, get_list, load_store};
use crate::audits::runs::FindingResponse;
use crate::http::routes::audits::AuditResponse;
use crate::jobs::JobStatus;
use crate::state::AppState;
use crate::web::api::InternalApi;
use crate::web::layout::{badge, name, when};
use crate::web::session::WebUser;
use crate::web::table::Table;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/w/{ws}/stores/{id}/audits", get(list))
        .route("/w/{ws}/audits/{id}", get(show))
}

/// Horizontal bars, one per (label, value), longest first.
pub fn bar_chart(title: &str, mut bars: Vec<(String, f64)>) -> Markup {
    bars.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    let max = bars.iter().map(|b| b.1).fold(0.0_f64, f64::max).max(1.0);
    let row = 26.0;
    let label_width = 230.0;
    let bar_width = 300.0;
    let height = (bars.len() as f64 * row).max(row) + 10.0;
    let view_box = format!("0 0 {} {height}", label_width + bar_width + 60.0);
    html! {
        figure.chart {
            svg xmlns="http://www.w3.org/2000/svg" viewBox=(view_box) role="img" aria-labelledby="bars-title" {
                title #bars-title { (title) }
                @for (i, (label, value)) in bars.iter().enumerate() {
                    @let y = i as f64 * row + 5.0;
                    @let w = (value / max * bar_width).max(1.0);
                    text x=(label_width - 8.0) y=(y + 17.0) text-anchor="end" font-size="13" fill="#1b1f24" { (label) }
                    rect x=(label_width) y=(y + 3.0) width=(format!("{w:.1}")) height="18" fill="#0b5cad" {}
                    text x=(label_width + w + 6.0) y=(y + 17.0) font-size="13" fill="#1b1f24" { (value) }
                }
            }
            figcaption { (title) }
        }
    }
}

/// A line of scores (0–100) in the order given, with a dot and the value at each point.
pub fn score_chart(points: &[(String, f64)]) -> Markup {
    let width = 560.0;
    let height = 200.0;
    let left = 40.0;
    let top = 10.0;
    let plot_w = width - left - 20.0;
    let plot_h = height - top - 40.0;
    let x = |i: usize| {
        if points.len() <= 1 {
            left + plot_w / 2.0
        } else {
            left + plot_w * i as f64 / (points.len() - 1) as f64
        }
    };
    let y = |score: f64| top + plot_h * (1.0 - score.clamp(0.0, 100.0) / 100.0);
    let line: Vec<String> = points
        .iter()
        .enumerate()
        .map(|(i, (_, s))| format!("{:.1},{:.1}", x(i), y(*s)))
        .collect();
    html! {
        figure.chart {
            svg xmlns="http://www.w3.org/2000/svg" viewBox=(format!("0 0 {width} {height}")) role="img" aria-labelledby="score-title" {
                title #score-title { "Audit score over time" }
                @for tick in [0.0, 50.0, 100.0] {
                    line x1=(left) x2=(left + plot_w) y1=(y(tick)) y2=(y(tick)) stroke="#c9d1d9" stroke-width="1" {}
                    text x=(left - 6.0) y=(y(tick) + 4.0) text-anchor="end" font-size="12" fill="#4a5460" { (tick) }
                }
                @if points.len() > 1 {
                    polyline points=(line.join(" ")) fill="none" stroke="#0b5cad" stroke-width="2" {}
                }
                @for (i, (label, score)) in points.iter().enumerate() {
                    circle cx=(x(i)) cy=(y(*score)) r="4" fill="#0b5cad" {}
                    text x=(x(i)) y=(y(*score) - 8.0) text-anchor="middle" font-size="12" fill="#1b1f24" { (format!("{score:.1}")) }
                    text x=(x(i)) y=(height - 12.0) text-anchor="middle" font-size="11" fill="#4a5460" { (label) }
                }
            }
            figcaption { "Audit score over time (0–100, higher is better)" }
        }
    }
}

fn by_rule(run: &AuditResponse) -> Vec<(String, f64)> {
    run.counts["by_rule"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(rule, n)| (rule.clone(), n.as_f64().unwrap_or(0.0)))
        .collect()
}

/// The run's score to one decimal, `—` before it has one.
fn score(run: &AuditResponse) -> String {
    run.score
        .map(|s| format!("{s:.1}"))
        .unwrap_or_else(|| "—".into())
}

async fn list(
    Extension(api): Extension<InternalApi>,
    user: WebUser,
    Path((ws, id)): Path<(Uuid, Uuid)>,
) -> Result<Response, Response> {
    let workspace = Workspace::load(&api, &user, ws).await?;
    let store = load_store(&api, &user, ws, id).await?;
    let runs = get_list::<AuditResponse>(&api, &user, &format!("/stores/{id}/audits?limit=30"))
        .await?
        .items;
    // Oldest first for the chart; the list shows newest first as the API does.
    let mut points: Vec<(String, f64)> = runs
        .iter()
        .filter_map(|r| {
            let day = r.created_at.format("%m-%d %H:%M").to_string();
            Some((day, r.score?))
        })
        .collect();
    points.reverse();
    let latest = runs.iter().find(|r| r.status == JobStatus::Succeeded);
    let body = html! {
        p { a href=(format!("/w/{ws}/stores/{id}")) { "Back to " (store.name) } }
        @if runs.is_empty() {
            p { "No audit has run yet." }
        } @else {
            (score_chart(&points))
            @if let Some(latest) = latest {
                h2 { "Findings by rule in the latest audit" }
                (bar_chart("Findings by rule", by_rule(latest)))
            }
            h2 { "Runs" }
            (Table::new("Audit runs, newest first", &["Run", "Status", "Score", "Products", "Findings"]).rows(&runs, |r| html! {
                td { a href=(format!("/w/{ws}/audits/{}", r.id)) { (when(r.created_at)) } }
                td { (badge(&name(&r.status))) }
                td { (score(r)) }
                td { (r.products) }
                td { (r.findings) }
            }))
        }
    };
    let title = format!("Audits · {}", store.name);
    Ok(workspace.page(&user, "stores", &title, body))
}

async fn show(
    Extension(api): Extension<InternalApi>,
    user: WebUser,
    Path((ws, id)): Path<(Uuid, Uuid)>,
) -> Result<Response, Response> {
    let workspace = Workspace::load(&api, &user, ws).await?;
    let run: AuditResponse = call(&api, &user, Method::GET, &format!("/audits/{id}"), None).await?;
    let store_id = run.store_id;
    let findings =
        get_list::<FindingResponse>(&api, &user, &format!("/audits/{id}/findings?limit=200"))
            .await?
            .items;
    let body = html! {
        p { a href=(format!("/w/{ws}/stores/{store_id}/audits")) { "Back to the store's audits" } }
        dl.facts {
            dt { "Status" } dd { (badge(&name(&run.status))) }
            dt { "Score" } dd #audit-score { (score(&run)) }
            dt { "Products" } dd { (run.products) }
            dt { "Findings" } dd { (run.findings) }
        }
        (bar_chart("Findings by rule", by_rule(&run)))
        h2 { "Findings" }
        (Table::new("Findings", &["SKU", "Store view", "Rule", "Severity", "Field", "Message"]).rows(&findings, |f| html! {
            td { a href=(format!("/w/{ws}/products/{}", f.product_id)) { (f.sku) } }
            td { (f.store_view) }
            td { a href=(format!("/w/{ws}/stores/{store_id}/products?finding={}", f.rule)) { (f.rule) } }
            td { (f.severity) }
            td { (f.field) }
            td { (f.message) }
        }))
    };
    Ok(workspace.page(&user, "stores", "Audit run", body))
}
