//! `catalogd bench push`: a change to one field of every product, in the default scope and in
//! one store view, written to the simulated store three ways:
//!
//! (a) the baseline a peer runs: one product scope at a time, read it, then save the field;
//! (b) catalogd's push job; (c) catalogd's push job through Magento's bulk API.
//!
//! Each way changes its own field (`meta_keyword`, `meta_title`, `meta_description`), so one
//! never meets another's writes. The simulator counts the requests it receives
//! (`GET /__sim/stats`); peak RSS is catalogd's `VmHWM`, reset before each way.

use std::time::{Duration, Instant};

use anyhow::Context;
use magento::models::{AttributeValue, CustomAttribute};
use magento::{Product, StoreScope};
use serde_json::Value;
use uuid::Uuid;

use super::{finished, insert_store, start_simulator, store_job, sync_bench_state, timed_sync};
use crate::catalog::content::Content;
use crate::catalog::versions::{self, Author, NewProposal, VersionOrigin};
use crate::config::Settings;
use crate::jobs::{self, JobKind};
use crate::push::PushParams;
use crate::state::AppState;
use crate::stores::{self, RateLimit, SignatureMethod};
use crate::sync::SyncMode;
use crate::{db, jobs::runner};

/// One way of writing the change, as `--ways` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum PushWay {
    /// (a) One product scope at a time, read then save.
    Baseline,
    /// (b) catalogd's push job.
    Push,
    /// (c) catalogd's push job through the bulk API.
    Bulk,
}

pub struct PushBenchOptions {
    pub products: usize,
    /// Products the one-at-a-time baseline writes (its rate does not depend on the count).
    pub baseline_products: usize,
    pub concurrency: u32,
    pub requests_per_second: u32,
    pub store_latency_ms: u64,
    pub ways: Vec<PushWay>,
    pub keep_database: bool,
}

/// What one way of pushing cost.
struct Measured {
    products: usize,
    scopes: usize,
    wall: Duration,
    requests: u64,
    writes: u64,
    peak_rss_mb: Option<f64>,
    note: String,
}

impl Measured {
    fn products_per_sec(&self) -> f64 {
        self.products as f64 / self.wall.as_secs_f64()
    }

    fn line(&self, label: &str) -> String {
        let product_scopes = (self.products * self.scopes) as f64;
        format!(
            "{label:<12} {:>6} products {:>9.2} s {:>9.1} products/s  {:.2} requests/product-scope ({:.2} besides writes)  peak RSS {}  {}",
            self.products,
            self.wall.as_secs_f64(),
            self.products_per_sec(),
            self.requests as f64 / product_scopes,
            self.requests.saturating_sub(self.writes) as f64 / product_scopes,
            self.peak_rss_mb
                .map(|mb| format!("{mb:.0} MB"))
                .unwrap_or_else(|| "n/a".into()),
            self.note
        )
    }
}

/// The simulator's request and write counts so far.
async fn sim_counts(http: &reqwest::Client, base_url: &str) -> anyhow::Result<(u64, u64)> {
    let stats: Value = http
        .get(format!("{}/__sim/stats", base_url.trim_end_matches('/')))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    Ok((
        stats["requests"].as_u64().context("requests")?,
        stats["writes"].as_u64().context("writes")?,
    ))
}

/// Forgets the process's peak RSS so the next phase reports its own (Linux `clear_refs` 5).
fn reset_peak_rss() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

pub async fn push(settings: Settings, options: PushBenchOptions) -> anyhow::Result<()> {
    let (sim, base_url, credentials) = start_simulator(options.products, options.store_latency_ms)?;
    let rate = RateLimit {
        requests_per_second: options.requests_per_second,
        max_concurrency: options.concurrency,
    }
    .validate()
    .map_err(|e| anyhow::anyhow!("{e}"))?;
    let (state, pool, database) = sync_bench_state(settings).await?;
    let views = stores::magento::discover(
        &state.egress,
        &base_url,
        &credentials,
        SignatureMethod::HmacSha256,
        rate,
    )
    .await?;
    // One store view besides the default scope: a translated one when there is one.
    let view = views
        .iter()
        .map(|v| v.code.clone())
        .find(|code| code != "default")
        .or_else(|| views.first().map(|v| v.code.clone()))
        .context("the store has no store view")?;
    let (workspace_id, store_id) =
        insert_store(&state, &base_url, &credentials, views, rate).await?;
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let workers = tokio::spawn(runner::run(state.clone(), async move {
        let mut rx = stop_rx;
        let _ = rx.wait_for(|s| *s).await;
    }));
    println!("syncing {} products…", options.products);
    let (synced_in, _) = timed_sync(&state, workspace_id, store_id, SyncMode::Full).await?;
    let http = reqwest::Client::new();
    let scopes = ["all", view.as_str()];

    // (a) One at a time: read, then save, through a client with the store's limits.
    let baseline = if options.ways.contains(&PushWay::Baseline) {
        let client = super::peer_client(&state, &base_url, &credentials, rate)?;
        let skus: Vec<String> = sqlx::query_scalar(
            "SELECT sku FROM products WHERE store_id = $1 AND removed_at IS NULL ORDER BY id LIMIT $2",
        )
        .bind(store_id)
        .bind(options.baseline_products as i64)
        .fetch_all(&state.db)
        .await?;
        println!("(a) one at a time: {} products…", skus.len());
        let baseline = measure(&http, &base_url, skus.len(), async {
            for sku in &skus {
                for scope in scopes {
                    let scope = StoreScope::parse(scope)?;
                    client.get_product(&scope, sku).await?;
                    let product = Product {
                        custom_attributes: Some(vec![CustomAttribute::new(
                            "meta_keyword",
                            AttributeValue::Text(format!("baseline {sku} {scope}")),
                        )]),
                        ..Product::default()
                    };
                    client.put_product(&scope, sku, &product).await?;
                }
            }
            Ok::<_, anyhow::Error>(String::new())
        })
        .await?;
        // The baseline wrote behind catalogd's back: a sync lets it know, so the pushes below
        // start from what the store shows (else the baseline's products are conflicts).
        timed_sync(&state, workspace_id, store_id, SyncMode::Full).await?;
        Some(baseline)
    } else {
        None
    };

    // (b) catalogd's push, then (c) the same through the bulk API.
    let mut ways = Vec::new();
    for (bulk, field) in [(false, "meta_title"), (true, "meta_description")] {
        let way = if bulk { PushWay::Bulk } else { PushWay::Push };
        if !options.ways.contains(&way) {
            continue;
        }
        let proposals = approved_proposals(&state, workspace_id, store_id, &scopes, field).await?;
        let mut tx = state.db.begin().await?;
        stores::set_push_via_bulk(&mut tx, store_id, bulk).await?;
        tx.commit().await?;
        let label = if bulk { "(c) bulk" } else { "(b) push" };
        println!("{label}: {} proposals ({field})…", proposals.len());
        let measured = measure(&http, &base_url, options.products, async {
            let ordered = crate::push::order(&state.db, &proposals).await?;
            let mut tx = state.db.begin().await?;
            let params = serde_json::to_value(PushParams { proposals: ordered })?;
            let job_id = jobs::enqueue(
                &mut tx,
                store_job(workspace_id, store_id, JobKind::Push, params),
            )
            .await?;
            tx.commit().await?;
            let job = finished(&state, job_id).await?;
            Ok::<_, anyhow::Error>(format!("counters {}", job.counters))
        })
        .await?;
        ways.push((label, measured));
    }
    let _ = stop_tx.send(true);
    let _ = workers.await;
    drop(sim);

    println!();
    println!(
        "store: {} products, scopes all + {view}; answers in {} ms; limits {} requests/s, {} concurrent; sync took {:.1} s",
        options.products,
        options.store_latency_ms,
        rate.requests_per_second,
        rate.max_concurrency,
        synced_in.as_secs_f64()
    );
    if let Some(baseline) = &baseline {
        println!("{}", baseline.line("(a) baseline"));
    }
    for (label, measured) in &ways {
        println!("{}", measured.line(label));
        if let Some(baseline) = &baseline {
            println!(
                "{:<12} {:.1}× the baseline's products/s",
                "",
                measured.products_per_sec() / baseline.products_per_sec()
            );
        }
    }
    pool.close().await;
    if !options.keep_database {
        db::drop_database(&state.settings.database, &database).await?;
    }
    Ok(())
}

/// Runs one way of pushing and measures it.
async fn measure(
    http: &reqwest::Client,
    base_url: &str,
    products: usize,
    work: impl std::future::Future<Output = anyhow::Result<String>>,
) -> anyhow::Result<Measured> {
    let (requests_before, writes_before) = sim_counts(http, base_url).await?;
    reset_peak_rss();
    let started = Instant::now();
    let note = work.await?;
    let wall = started.elapsed();
    let peak_rss_mb = super::peak_rss_kb().map(|kb| kb as f64 / 1024.0);
    let (requests_after, writes_after) = sim_counts(http, base_url).await?;
    Ok(Measured {
        products,
        scopes: 2,
        wall,
        // The two stats requests themselves are not the push's.
        requests: requests_after.saturating_sub(requests_before),
        writes: writes_after - writes_before,
        peak_rss_mb,
        note,
    })
}

/// A product and its live version in one scope (none: a store view showing the defaults).
type LiveRow = (
    Uuid,
    String,
    Option<Uuid>,
    Option<sqlx::types::Json<Content>>,
);

/// Proposes and approves a new value of `field` for every product of the store in each of
/// `scopes`; returns the proposals.
async fn approved_proposals(
    state: &AppState,
    workspace_id: Uuid,
    store_id: Uuid,
    scopes: &[&str],
    field: &str,
) -> anyhow::Result<Vec<Uuid>> {
    let mut ids = Vec::new();
    for scope in scopes {
        let mut after = Uuid::nil();
        loop {
            // A store view's live version holds only its overrides (none: it shows the defaults).
            let rows: Vec<LiveRow> = sqlx::query_as(
                "SELECT p.id, p.sku, l.version_id, v.content
                     FROM products p
                     LEFT JOIN product_live l ON l.product_id = p.id AND l.store_view = $2
                     LEFT JOIN product_versions v ON v.id = l.version_id
                     WHERE p.store_id = $1 AND p.removed_at IS NULL AND p.id > $3
                     ORDER BY p.id LIMIT 1000",
            )
            .bind(store_id)
            .bind(scope)
            .bind(after)
            .fetch_all(&state.db)
            .await?;
            let Some(last) = rows.last() else { break };
            after = last.0;
            let mut tx = state.db.begin().await?;
            for (product_id, sku, parent, content) in rows {
                let mut content = content.map(|c| c.0).unwrap_or_default();
                content
                    .fields
                    .insert(field.to_string(), format!("bench {field} {sku} {scope}"));
                let version = versions::propose(
                    &mut tx,
                    NewProposal {
                        product_id,
                        workspace_id,
                        store_view: scope,
                        content: &content,
                        parent_id: parent,
                        origin: VersionOrigin::Human,
                        author: Author::default(),
                        note: Some("bench push"),
                        meta: serde_json::json!({}),
                    },
                )
                .await?;
                ids.push(version.id);
            }
            tx.commit().await?;
        }
    }
    sqlx::query(
        "UPDATE product_versions SET state = 'approved', decided_at = now() WHERE id = ANY($1)",
    )
    .bind(&ids)
    .execute(&state.db)
    .await?;
    Ok(ids)
}
