//! `catalogd demo`: a simulated Magento store connected through the real integration
//! handshake, synced with a progress bar, then the API served for a look around.

use std::time::Duration;

use anyhow::{Context, bail};
use indicatif::{ProgressBar, ProgressStyle};
use magento_sim::{MagentoSim, SimConfig};
use serde_json::{Value, json};

use crate::app::{Application, Stopping};
use crate::config::Settings;
use crate::{jobs, schedules};

pub const DEMO_EMAIL: &str = "demo@catalogd.example";
pub const DEMO_PASSWORD: &str = "demo-password-123";

pub struct DemoOptions {
    pub products: usize,
    pub seed: u64,
    /// Exit after the pipeline instead of serving.
    pub exit: bool,
}

pub async fn run(mut settings: Settings, options: DemoOptions) -> anyhow::Result<()> {
    // The simulated store runs on this machine, which `[egress] allow` otherwise refuses.
    settings.egress.allow_loopback();
    let sim = MagentoSim::start(SimConfig {
        products: options.products,
        seed: options.seed,
        ..SimConfig::default()
    })
    .await
    .context("starting the Magento simulator")?;
    println!(
        "Magento simulator: {} ({} products, store views default, fr, de)",
        sim.base_url(),
        options.products
    );

    let app = Application::build(settings).await?;
    let base = format!("http://{}", app.local_addr());
    let state = app.state().clone();
    let stopping = Stopping::on_signal();
    let workers = tokio::spawn(jobs::runner::run(state.clone(), stopping.wait()));
    let scheduler = tokio::spawn(schedules::run_scheduler(state.clone(), stopping.wait()));
    let server = tokio::spawn(app.run(stopping.wait()));

    let api = Api {
        http: reqwest::Client::new(),
        base: base.clone(),
        token: String::new(),
    };
    let api = api.sign_in().await?;
    let workspace = api.get("/api/v1/me").await?["workspaces"][0]["id"]
        .as_str()
        .context("demo workspace")?
        .to_string();

    // Connect like a store owner: create the store, paste the URLs into Magento, click Activate.
    let store = api
        .post(
            &format!("/api/v1/workspaces/{workspace}/stores"),
            json!({"name": "Demo store", "base_url": sim.base_url(),
            "rate_limit": {"requests_per_second": 50, "max_concurrency": 4}}),
        )
        .await?;
    let store_id = store["id"].as_str().context("store id")?.to_string();
    println!(
        "Store created; Magento posts its integration credentials to {}",
        store["callback_url"].as_str().unwrap_or("?")
    );
    sim.create_integration(
        store["callback_url"].as_str().context("callback url")?,
        store["identity_url"].as_str().context("identity url")?,
    )
    .await
    .map_err(|e| anyhow::anyhow!("Magento could not reach the callback: {e:?}"))?;
    let store = wait_until(|| async {
        let s = api.get(&format!("/api/v1/stores/{store_id}")).await?;
        Ok((s["status"] != "pending").then_some(s))
    })
    .await?;
    if store["status"] != "active" {
        bail!("the handshake did not complete: {}", store["status_detail"]);
    }
    println!(
        "Handshake complete: store is active with {} store views",
        store["store_views"].as_array().map_or(0, Vec::len)
    );

    let started = api
        .post(
            &format!("/api/v1/stores/{store_id}/sync"),
            json!({"mode": "full"}),
        )
        .await?;
    let job_id = started["job_id"].as_str().context("job id")?.to_string();
    let bar = ProgressBar::new(0);
    bar.set_style(
        ProgressStyle::with_template(
            "Syncing {bar:40.cyan/blue} {pos}/{len} products·scopes ({per_sec}, {eta})",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let job = loop {
        let job = api.get(&format!("/api/v1/jobs/{job_id}")).await?;
        if let Some(total) = job["progress"]["total"].as_u64() {
            bar.set_length(total);
        }
        bar.set_position(job["progress"]["done"].as_u64().unwrap_or(0));
        if matches!(
            job["status"].as_str(),
            Some("succeeded" | "failed" | "cancelled")
        ) {
            break job;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    bar.finish();
    if job["status"] != "succeeded" {
        bail!("sync {}: {}", job["status"], job["error"]);
    }
    println!(
        "Sync done: {} products read, {} versions written",
        job["counters"]["products"], job["counters"]["versions_created"]
    );

    let first = audit(&api, &store_id).await?;
    println!(
        "Audit: score {:.1} over {} products, {} findings",
        first["score"].as_f64().unwrap_or_default(),
        first["products"],
        first["findings"]
    );
    let mut scopes = vec![json!("all")];
    scopes.extend(
        store["store_views"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|v| v["code"].clone()),
    );
    let enrich = run_job(
        &api,
        &format!("/api/v1/stores/{store_id}/enrich"),
        json!({"filter": {"only_flagged": true}, "store_views": scopes, "provider": "rules"}),
    )
    .await?;
    println!(
        "Enrichment (rules provider, flagged fields only): {} proposals",
        enrich["counters"]["proposals"]
    );
    let approved = api
        .post(
            &format!("/api/v1/stores/{store_id}/proposals/approve"),
            json!({"filter": {"origin": "ai"}, "comment": "approved by the demo reviewer"}),
        )
        .await?;
    println!(
        "Review: {} proposals approved",
        approved["decided"].as_array().map_or(0, Vec::len)
    );
    if approved["decided"]
        .as_array()
        .is_some_and(|d| !d.is_empty())
    {
        let push = run_job(
            &api,
            &format!("/api/v1/stores/{store_id}/push"),
            json!({"all_approved": true}),
        )
        .await?;
        println!(
            "Push to the store: {} pushed, {} conflicts, {} failed",
            push["counters"]["pushed"], push["counters"]["conflict"], push["counters"]["failed"]
        );
    }
    let second = audit(&api, &store_id).await?;
    println!(
        "Audit again: score {:.1} → {:.1} ({} findings fixed)",
        first["score"].as_f64().unwrap_or_default(),
        second["score"].as_f64().unwrap_or_default(),
        second["comparison"]["fixed"]
    );

    println!();
    println!("catalogd is serving at {base}");
    println!(
        "  web UI:    {base}/login  (email {DEMO_EMAIL}, password {DEMO_PASSWORD}), the store at {base}/w/{workspace}/stores/{store_id}"
    );
    println!(
        "  sign in:   POST {base}/api/v1/auth/login  {{\"email\": \"{DEMO_EMAIL}\", \"password\": \"{DEMO_PASSWORD}\"}}"
    );
    println!("  API docs:  {base}/api/v1/openapi.json");
    println!("  the store: GET {base}/api/v1/stores/{store_id}");
    println!("  its jobs:  GET {base}/api/v1/workspaces/{workspace}/jobs");
    if options.exit {
        return Ok(());
    }
    println!("Press Ctrl-C to stop.");
    server.await??;
    workers.await??;
    scheduler.await?;
    Ok(())
}

/// Starts a job through the API and waits for it to succeed.
async fn run_job(api: &Api, path: &str, body: Value) -> anyhow::Result<Value> {
    let started = api.post(path, body).await?;
    let job_id = started["job_id"]
        .as_str()
        .with_context(|| format!("{path} started no job: {started}"))?
        .to_string();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(600);
    loop {
        let job = api.get(&format!("/api/v1/jobs/{job_id}")).await?;
        match job["status"].as_str() {
            Some("succeeded") => return Ok(job),
            Some("failed" | "cancelled") => bail!("{path}: {} {}", job["status"], job["error"]),
            _ => {}
        }
        if tokio::time::Instant::now() > deadline {
            bail!("{path}: the job did not finish in time");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Audits every product of the store and returns the run.
async fn audit(api: &Api, store_id: &str) -> anyhow::Result<Value> {
    let started = api
        .post(&format!("/api/v1/stores/{store_id}/audits"), json!({}))
        .await?;
    let audit_id = started["audit_id"]
        .as_str()
        .with_context(|| format!("no audit started: {started}"))?
        .to_string();
    let job_id = started["job_id"].as_str().context("job id")?.to_string();
    loop {
        let job = api.get(&format!("/api/v1/jobs/{job_id}")).await?;
        match job["status"].as_str() {
            Some("succeeded") => break,
            Some("failed" | "cancelled") => bail!("audit {}: {}", job["status"], job["error"]),
            _ => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
    api.get(&format!("/api/v1/audits/{audit_id}")).await
}

async fn wait_until<F, Fut>(mut check: F) -> anyhow::Result<Value>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<Option<Value>>>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(v) = check().await? {
            return Ok(v);
        }
        if tokio::time::Instant::now() > deadline {
            bail!("timed out waiting for the store to connect");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The demo drives its own API over HTTP, exactly as a client would.
struct Api {
    http: reqwest::Client,
    base: String,
    token: String,
}

impl Api {
    async fn sign_in(mut self) -> anyhow::Result<Api> {
        let login = self
            .http
            .post(format!("{}/api/v1/auth/login", self.base))
            .json(&json!({"email": DEMO_EMAIL, "password": DEMO_PASSWORD}))
            .send()
            .await?;
        let body: Value = if login.status().is_success() {
            login.json().await?
        } else {
            let registered = self
                .http
                .post(format!("{}/api/v1/auth/register", self.base))
                .json(&json!({"email": DEMO_EMAIL, "password": DEMO_PASSWORD, "name": "Demo Owner", "workspace_name": "Demo workspace"}))
                .send()
                .await?;
            if !registered.status().is_success() {
                bail!(
                    "could not create the demo account: {}",
                    registered.text().await?
                );
            }
            registered.json().await?
        };
        self.token = body["access_token"]
            .as_str()
            .context("access token")?
            .to_string();
        Ok(self)
    }

    async fn get(&self, path: &str) -> anyhow::Result<Value> {
        let res = self
            .http
            .get(format!("{}{path}", self.base))
            .bearer_auth(&self.token)
            .send()
            .await?;
        Self::body(res).await
    }

    async fn post(&self, path: &str, body: Value) -> anyhow::Result<Value> {
        let res = self
            .http
            .post(format!("{}{path}", self.base))
            .bearer_auth(&self.token)
            .json(&body)
            .send()
            .await?;
        Self::body(res).await
    }

    async fn body(res: reqwest::Response) -> anyhow::Result<Value> {
        let status = res.status();
        let body: Value = res.json().await.unwrap_or(Value::Null);
        if !status.is_success() {
            bail!("HTTP {status}: {body}");
        }
        Ok(body)
    }
}
