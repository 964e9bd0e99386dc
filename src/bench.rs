//! `catalogd bench sync`: measures a full sync of a simulated catalog against simply
//! downloading the same pages with the same concurrency, and a re-sync of the unchanged catalog.
//!
//! `catalogd bench push` (in [`push`]) measures pushes the same way.
//!
//! The simulator runs as its own process (the `magento-sim` binary next to this one), so the
//! peak RSS reported is catalogd's alone.

mod api_load;
mod push;

pub use push::{PushBenchOptions, PushWay, push};

use std::io::{BufRead, BufReader};
use std::num::NonZeroUsize;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use futures::StreamExt;
use magento::{PageStreamOptions, SearchCriteria, SortDirection, StoreScope};
use secrecy::ExposeSecret;
use uuid::Uuid;

use crate::audits;
use crate::config::Settings;
use crate::jobs::{self, JobKind, NewJob};
use crate::secrets::KeyMaterial;
use crate::state::AppState;
use crate::stores::{self, NewStore, RateLimit, SignatureMethod, StoreCredentials, StoreStatus};
use crate::sync::{PAGE_SIZE, SyncMode, SyncParams};
use crate::{db, jobs::runner};

/// The client a peer's script would talk to the simulated store with: the store's limits and
/// its signature, nothing of catalogd's jobs.
fn peer_client(
    state: &AppState,
    base_url: &str,
    credentials: &StoreCredentials,
    rate: RateLimit,
) -> Result<magento::MagentoClient, magento::MagentoError> {
    stores::magento::client(
        &state.egress,
        base_url,
        credentials,
        SignatureMethod::HmacSha256,
        magento::SignatureForm::default(),
        rate,
    )
}

pub struct BenchOptions {
    pub products: usize,
    pub concurrency: u32,
    pub requests_per_second: u32,
    /// The simulated store's answer time per request.
    pub store_latency_ms: u64,
    pub keep_database: bool,
    /// After the export, load the product API: `api_load_rate` requests per second for
    /// `api_load_secs`, then `wrk` at full speed.
    pub api_load_secs: u32,
    pub api_load_rate: u32,
}

struct SimProcess(std::process::Child);

impl Drop for SimProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts the `magento-sim` binary next to this one with `products` products.
fn start_simulator(
    products: usize,
    latency_ms: u64,
) -> anyhow::Result<(SimProcess, String, StoreCredentials)> {
    let sim_bin = std::env::current_exe()?.with_file_name("magento-sim");
    if !sim_bin.exists() {
        bail!(
            "{} not found: build it with `cargo build --release --workspace --bins`",
            sim_bin.display()
        );
    }
    println!("generating {products} products in the simulator…");
    let mut child = Command::new(&sim_bin)
        .args(["--products", &products.to_string(), "--port", "0"])
        .args(["--latency-ms", &latency_ms.to_string()])
        // A store whose bulk API keeps each operation's store view (RabbitMQ), so the bulk push
        // is measured in bulk: with MySQL's queue catalogd pushes product by product.
        .args(["--queue-mode", "amqp"])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .context("starting magento-sim")?;
    let stdout = child.stdout.take().context("simulator stdout")?;
    let sim = SimProcess(child);
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line)?;
    let info: serde_json::Value = serde_json::from_str(&line).context("simulator banner")?;
    let base_url = info["base_url"].as_str().context("base_url")?.to_string();
    let credentials = StoreCredentials {
        consumer_key: info["consumer_key"].as_str().context("key")?.into(),
        consumer_secret: info["consumer_secret"].as_str().context("secret")?.into(),
        access_token: info["access_token"].as_str().context("token")?.into(),
        access_token_secret: info["access_token_secret"]
            .as_str()
            .context("token secret")?
            .into(),
    };
    Ok((sim, base_url, credentials))
}

/// Points `settings` at a fresh database of its own; returns its name.
fn own_database(settings: &mut Settings) -> anyhow::Result<String> {
    let mut url = url::Url::parse(settings.database.url.expose_secret())?;
    let database = format!("catalogd_bench_{}", Uuid::new_v4().simple());
    url.set_path(&database);
    settings.database.url = url.to_string().into();
    Ok(database)
}

/// Inserts the simulator as an active store of a new workspace; returns (workspace, store).
async fn insert_store(
    state: &AppState,
    base_url: &str,
    credentials: &StoreCredentials,
    views: Vec<stores::StoreView>,
    rate: RateLimit,
) -> anyhow::Result<(Uuid, Uuid)> {
    let store_id = Uuid::now_v7();
    let workspace_id = create_workspace(state).await?;
    let (_, token_hash) = stores::new_link_token();
    let mut tx = state.db.begin().await?;
    stores::insert(
        &mut tx,
        NewStore {
            id: store_id,
            workspace_id,
            name: "bench",
            base_url,
            status: StoreStatus::Active,
            signature_method: SignatureMethod::HmacSha256,
            credentials: Some(
                state
                    .keyring
                    .seal_json(credentials, &stores::credentials_context(store_id)),
            ),
            link_token_hash: token_hash,
            link_token: state
                .keyring
                .seal(b"bench", &stores::link_token_context(store_id)),
            callback_armed: false,
            store_views: views,
            rate_limit: rate,
            content_attributes: Vec::new(),
            created_by: None,
            signature_form: None,
        },
    )
    .await?;
    tx.commit().await?;
    Ok((workspace_id, store_id))
}

/// A daemon on a fresh database of its own, reaching the simulator on this machine, syncing one
/// store at a time as the sync and push benches measure it; returns the database's name too.
async fn sync_bench_state(
    mut settings: Settings,
) -> anyhow::Result<(AppState, sqlx::PgPool, String)> {
    let database = own_database(&mut settings)?;
    settings.egress.allow_loopback();
    settings.jobs.concurrency.sync = 1;
    let keys = KeyMaterial::load_or_generate(&settings)?;
    let pool = db::connect_and_migrate(&settings.database).await?;
    let state = AppState::new(pool.clone(), settings, keys)?;
    Ok((state, pool, database))
}

pub async fn sync(settings: Settings, options: BenchOptions) -> anyhow::Result<()> {
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
    let scopes: Vec<String> = std::iter::once("all".to_string())
        .chain(views.iter().map(|v| v.code.clone()))
        .collect();

    // 1. Raw download of the same pages, with the same client limits.
    let client = peer_client(&state, &base_url, &credentials, rate)?;
    let started = Instant::now();
    let mut raw_pages = 0u64;
    let mut raw_bytes = 0u64;
    for scope in &scopes {
        let criteria = SearchCriteria::new()
            .sort_by("entity_id", SortDirection::Asc)
            .page_size(PAGE_SIZE);
        let options_raw = PageStreamOptions {
            page_size: None,
            concurrency: NonZeroUsize::new(rate.max_concurrency as usize)
                .unwrap_or(NonZeroUsize::MIN),
        };
        let mut pages =
            client.search_products_raw(&StoreScope::parse(scope)?, criteria, options_raw);
        while let Some(page) = pages.next().await {
            let page = page?;
            raw_pages += 1;
            raw_bytes += page.body.len() as u64;
        }
    }
    let raw = started.elapsed();

    // 2. The full sync, through the job queue like any other.
    let (workspace_id, store_id) =
        insert_store(&state, &base_url, &credentials, views, rate).await?;
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let workers = tokio::spawn(runner::run(state.clone(), async move {
        let mut rx = stop_rx;
        let _ = rx.wait_for(|s| *s).await;
    }));
    let (full, full_job) = timed_sync(&state, workspace_id, store_id, SyncMode::Full).await?;
    let (resync, resync_job) = timed_sync(&state, workspace_id, store_id, SyncMode::Full).await?;
    let (audit, audit_run) = timed_audit(&state, workspace_id, store_id).await?;
    let (export, export_rows, export_bytes) = timed_export(&state, workspace_id, store_id).await?;
    let (copy, copy_bytes) = timed_copy(&state, store_id).await?;
    let mut api_report = String::new();
    if options.api_load_secs > 0 {
        let (base, token) = api_load::serve(&state, workspace_id).await?;
        let targets = api_load::targets(&state, &base, store_id).await?;
        let load = api_load::fixed_rate(
            &targets,
            &token,
            options.api_load_rate,
            Duration::from_secs(u64::from(options.api_load_secs)),
        )
        .await?;
        api_report.push_str(&format!(
            "product API at {} requests/s for {} s: {} requests ({} errors), {:.1}/s achieved; latency {}\n",
            options.api_load_rate,
            options.api_load_secs,
            load.requests,
            load.errors,
            load.achieved_per_sec,
            load.all
        ));
        for (kind, figures) in &load.by_kind {
            api_report.push_str(&format!(
                "    {kind:<16} {:>5} requests: {figures}\n",
                figures.requests
            ));
        }
        let seconds = options.api_load_secs.min(20);
        api_report.push_str(&format!("wrk -t2 -c16, product list ({seconds} s):\n"));
        api_report.push_str(&api_load::wrk(&targets[1].url, &token, seconds));
        api_report.push_str(&format!("wrk -t2 -c16, product detail ({seconds} s):\n"));
        api_report.push_str(&api_load::wrk(&targets[0].url, &token, seconds));
    }
    let _ = stop_tx.send(true);
    let _ = workers.await;
    drop(sim);
    let peak_rss_mb = peak_rss_kb().map(|kb| kb as f64 / 1024.0);

    let products_read = full_job.counters["products"].as_i64().unwrap_or(0);
    println!();
    println!(
        "catalog: {} products × {} scopes = {} product records read; raw: {} pages, {:.1} MB",
        options.products,
        scopes.len(),
        products_read,
        raw_pages,
        raw_bytes as f64 / 1e6
    );
    println!(
        "limits: {} requests/s, {} concurrent, page size {PAGE_SIZE}; the store answers in {} ms + its work",
        rate.requests_per_second, rate.max_concurrency, options.store_latency_ms
    );
    println!("raw download:   {:>8.2} s", raw.as_secs_f64());
    println!(
        "full sync:      {:>8.2} s  ({:.0} products/s, {} versions written)",
        full.as_secs_f64(),
        products_read as f64 / full.as_secs_f64(),
        full_job.counters["versions_created"]
    );
    println!(
        "ratio sync/raw: {:>8.2}",
        full.as_secs_f64() / raw.as_secs_f64()
    );
    println!(
        "unchanged re-sync: {:>5.2} s  ({} versions written)",
        resync.as_secs_f64(),
        resync_job.counters["versions_created"]
    );
    println!(
        "audit:          {:>8.2} s  ({:.0} products/s, {} findings, score {:.1})",
        audit.as_secs_f64(),
        audit_run.products as f64 / audit.as_secs_f64(),
        audit_run.findings,
        audit_run.score.unwrap_or_default()
    );
    println!(
        "export (magento_csv, all scopes): {:>6.2} s  ({export_rows} rows, {:.1} MB, {:.0} rows/s)",
        export.as_secs_f64(),
        export_bytes as f64 / 1e6,
        export_rows as f64 / export.as_secs_f64()
    );
    println!(
        "COPY of the same content:         {:>6.2} s  ({:.1} MB); export/COPY = {:.2}",
        copy.as_secs_f64(),
        copy_bytes as f64 / 1e6,
        export.as_secs_f64() / copy.as_secs_f64()
    );
    print!("{api_report}");
    match peak_rss_mb {
        Some(mb) => println!("peak RSS (catalogd): {mb:.0} MB"),
        None => println!("peak RSS: not available on this platform"),
    }

    pool.close().await;
    if !options.keep_database {
        db::drop_database(&state.settings.database, &database).await?;
    }
    Ok(())
}

async fn create_workspace(state: &AppState) -> anyhow::Result<Uuid> {
    let id = Uuid::now_v7();
    sqlx::query("INSERT INTO workspaces (id, name) VALUES ($1, 'bench')")
        .bind(id)
        .execute(&state.db)
        .await?;
    Ok(id)
}

/// A job on the bench's store that nobody started.
fn store_job(
    workspace_id: Uuid,
    store_id: Uuid,
    kind: JobKind,
    params: serde_json::Value,
) -> NewJob {
    NewJob {
        workspace_id,
        store_id: Some(store_id),
        kind,
        params,
        created_by: None,
        created_by_api_key: None,
        schedule_tick: None,
    }
}

/// Waits for a queued job to finish; an error unless it succeeded.
async fn finished(state: &AppState, job_id: Uuid) -> anyhow::Result<jobs::JobRun> {
    loop {
        let job = jobs::get(&state.db, job_id)
            .await?
            .context("job vanished")?;
        if job.status.is_finished() {
            if job.status != jobs::JobStatus::Succeeded {
                bail!("{:?} job {:?}: {:?}", job.kind, job.status, job.error);
            }
            return Ok(job);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn timed_sync(
    state: &AppState,
    workspace_id: Uuid,
    store_id: Uuid,
    mode: SyncMode,
) -> anyhow::Result<(Duration, jobs::JobRun)> {
    let started = Instant::now();
    let mut tx = state.db.begin().await?;
    let params = serde_json::to_value(SyncParams {
        mode,
        full_when_due: false,
    })?;
    let job_id = jobs::enqueue(
        &mut tx,
        store_job(workspace_id, store_id, JobKind::Sync, params),
    )
    .await?;
    tx.commit().await?;
    let job = finished(state, job_id).await?;
    Ok((started.elapsed(), job))
}

/// Audits every product of the store through the job queue.
async fn timed_audit(
    state: &AppState,
    workspace_id: Uuid,
    store_id: Uuid,
) -> anyhow::Result<(Duration, audits::runs::AuditRun)> {
    let started = Instant::now();
    let mut tx = state.db.begin().await?;
    let job_id = Uuid::now_v7();
    let run_id = audits::runs::create(
        &mut tx,
        workspace_id,
        store_id,
        job_id,
        &audits::AuditFilter::default(),
    )
    .await?;
    let job = store_job(
        workspace_id,
        store_id,
        JobKind::Audit,
        audits::params(run_id),
    );
    jobs::enqueue_as(&mut tx, job_id, job).await?;
    tx.commit().await?;
    finished(state, job_id).await?;
    let elapsed = started.elapsed();
    let run = audits::runs::get(&state.db, run_id)
        .await?
        .context("audit run vanished")?;
    Ok((elapsed, run))
}

/// Exports a Magento CSV of every scope through the job queue.
async fn timed_export(
    state: &AppState,
    workspace_id: Uuid,
    store_id: Uuid,
) -> anyhow::Result<(Duration, i64, i64)> {
    let started = Instant::now();
    let export_id = Uuid::now_v7();
    let job_id = Uuid::now_v7();
    let mut tx = state.db.begin().await?;
    sqlx::query(
        "INSERT INTO exports (id, workspace_id, store_id, job_id, format, source, store_views)
         SELECT $1, workspace_id, id, $2, 'magento_csv', 'live',
                ARRAY['all'] || ARRAY(SELECT v ->> 'code' FROM jsonb_array_elements(store_views) v)
         FROM stores WHERE id = $3",
    )
    .bind(export_id)
    .bind(job_id)
    .bind(store_id)
    .execute(&mut *tx)
    .await?;
    let params = serde_json::to_value(crate::exports::ExportParams { export_id })?;
    let job = store_job(workspace_id, store_id, JobKind::Export, params);
    jobs::enqueue_as(&mut tx, job_id, job).await?;
    tx.commit().await?;
    finished(state, job_id).await?;
    let elapsed = started.elapsed();
    let export = crate::exports::get(&state.db, export_id)
        .await?
        .context("export vanished")?;
    Ok((
        elapsed,
        export.rows.unwrap_or_default(),
        export.bytes.unwrap_or_default(),
    ))
}

/// PostgreSQL's own `COPY … TO STDOUT` of the rows the export reads: the baseline.
async fn timed_copy(state: &AppState, store_id: Uuid) -> anyhow::Result<(Duration, u64)> {
    use sqlx::postgres::PgPoolCopyExt;
    let started = Instant::now();
    let statement = format!(
        "COPY (SELECT p.sku, l.store_view, v.content FROM products p
               JOIN product_live l ON l.product_id = p.id
               JOIN product_versions v ON v.id = l.version_id
               WHERE p.store_id = '{store_id}' AND p.removed_at IS NULL
               ORDER BY p.id, l.store_view) TO STDOUT WITH (FORMAT csv)"
    );
    let mut stream = state.db.copy_out_raw(&statement).await?;
    let mut bytes = 0u64;
    while let Some(chunk) = stream.next().await {
        bytes += chunk?.len() as u64;
    }
    Ok((started.elapsed(), bytes))
}

/// The process's peak resident set size (VmHWM), in KiB.
pub fn peak_rss_kb() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

pub struct EnrichBenchOptions {
    pub products: usize,
    /// The provider's requests-per-minute limit (the fake enforces it, catalogd is told it).
    pub rpm: u32,
    pub concurrency: u32,
    /// The fake provider's answer time.
    pub latency_ms: u64,
    pub keep_database: bool,
}

/// `catalogd bench enrich`: enrichment of a synced catalog through an OpenAI provider that is
/// the loopback fake, enforcing `rpm` per 60-second window like a real provider. Reports the
/// requests per minute achieved (the target is ≥ 90 % of the limit), the most requests in any
/// 60-second window (never above the limit) and the wall time.
pub async fn enrich(mut settings: Settings, options: EnrichBenchOptions) -> anyhow::Result<()> {
    let (sim, base_url, credentials) = start_simulator(options.products, 0)?;
    let window = Duration::from_secs(60);
    let fake = ai::fake::FakeServer::start_with(ai::fake::FakeConfig {
        rpm_limit: Some((options.rpm, window)),
        latency: Duration::from_millis(options.latency_ms),
        ..ai::fake::FakeConfig::default()
    })
    .await;
    settings.ai.providers.insert(
        "bench".into(),
        crate::config::ProviderSettings {
            kind: ai::ProviderKind::Openai,
            base_url: Some(fake.base_url()),
            api_key: Some("sk-bench".into()),
            model: Some("bench-model".into()),
            rpm: options.rpm,
            tpm: None,
            max_concurrency: options.concurrency,
            timeout_secs: 60,
            max_attempts: 5,
            max_retry_after_secs: 60,
            max_output_tokens: 256,
            api: ai::OpenAiApi::Chat,
            batch: false,
            batch_poll_secs: 60,
        },
    );
    let database = own_database(&mut settings)?;
    // The simulator and the provider fake run on this machine.
    settings.egress.allow_loopback();
    let keys = KeyMaterial::load_or_generate(&settings)?;
    let pool = db::connect_and_migrate(&settings.database).await?;
    let state = AppState::new(pool.clone(), settings, keys)?;
    let rate = RateLimit {
        requests_per_second: 1000,
        max_concurrency: 8,
    }
    .validate()
    .map_err(|e| anyhow::anyhow!("{e}"))?;
    let views = stores::magento::discover(
        &state.egress,
        &base_url,
        &credentials,
        SignatureMethod::HmacSha256,
        rate,
    )
    .await?;
    let (workspace_id, store_id) =
        insert_store(&state, &base_url, &credentials, views, rate).await?;
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let workers = tokio::spawn(runner::run(state.clone(), async move {
        let mut rx = stop_rx;
        let _ = rx.wait_for(|s| *s).await;
    }));
    timed_sync(&state, workspace_id, store_id, SyncMode::Full).await?;
    drop(sim);

    println!(
        "enriching {} products at {} requests/minute, {} in flight, {} ms per answer…",
        options.products, options.rpm, options.concurrency, options.latency_ms
    );
    let started = Instant::now();
    let mut tx = state.db.begin().await?;
    let params = crate::enrich::EnrichParams {
        fields: vec!["meta_title".into(), "meta_description".into()],
        store_views: vec!["all".into()],
        provider: "bench".into(),
        ..Default::default()
    };
    let params = serde_json::to_value(params)?;
    let job_id = jobs::enqueue(
        &mut tx,
        store_job(workspace_id, store_id, JobKind::Enrich, params),
    )
    .await?;
    tx.commit().await?;
    let job = finished(&state, job_id).await?;
    let wall = started.elapsed();
    let _ = stop_tx.send(true);
    let _ = workers.await;

    let mut times: Vec<std::time::Instant> =
        fake.generation_requests().iter().map(|r| r.at).collect();
    times.sort();
    let requests = times.len();
    let span = match (times.first(), times.last()) {
        (Some(first), Some(last)) => last.duration_since(*first),
        _ => Duration::ZERO,
    };
    let achieved = if span.is_zero() {
        0.0
    } else {
        (requests.saturating_sub(1)) as f64 / span.as_secs_f64() * 60.0
    };
    let busiest = ai::fake::max_in_window(&times, window);
    println!();
    println!(
        "requests:        {requests} ({} proposals, {} failed)",
        job.counters["proposals"], job.counters["failed"]
    );
    println!("wall time:       {:>8.2} s", wall.as_secs_f64());
    println!(
        "achieved:        {achieved:>8.1} requests/minute ({:.1} % of {})",
        achieved / f64::from(options.rpm) * 100.0,
        options.rpm
    );
    println!(
        "busiest 60 s:    {busiest:>8} requests (limit {}); refused by the provider for going over: {}",
        options.rpm,
        fake.over_limit()
    );
    if let Some(kb) = peak_rss_kb() {
        println!("peak RSS:        {:>8.0} MB", kb as f64 / 1024.0);
    }
    pool.close().await;
    if !options.keep_database {
        db::drop_database(&state.settings.database, &database).await?;
    }
    Ok(())
}
