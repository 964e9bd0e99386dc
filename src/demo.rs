//! `catalogd demo`: a simulated Magento store connected through the real integration
//! handshake, then the whole loop — sync, audit, enrich, review, push, audit again — as
//! numbered steps with progress bars, ending with the mail a reviewer got about the proposals
//! left waiting; then the API served for a look around. The daemon's log goes to a file the
//! demo names; the terminal shows its warnings only.

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

/// The demo's numbered steps, printed as a person follows them.
struct Steps {
    done: usize,
}

impl Steps {
    const TOTAL: usize = 9;

    fn next(&mut self, what: &str) {
        self.done += 1;
        println!();
        println!("[{}/{}] {what}", self.done, Self::TOTAL);
    }
}

pub async fn run(mut settings: Settings, options: DemoOptions) -> anyhow::Result<()> {
    // The daemon's own log (workers starting, sweeps, handshake details) goes to a file; the
    // terminal shows the demo's steps and the daemon's warnings only.
    let log_path = settings.data_dir.join("catalogd-demo.log");
    crate::telemetry::init_to_file(&settings.log_level, &log_path)
        .with_context(|| format!("opening the log file {}", log_path.display()))?;
    println!(
        "catalogd demo — the daemon's log is written to {}",
        log_path.display()
    );
    // The simulated store runs on this machine, which `[egress] allow` otherwise refuses.
    settings.egress.allow_loopback();
    let mail_dir = settings.data_dir.join("mail");
    let smtp = !settings.email.smtp_url.trim().is_empty();
    let mut steps = Steps { done: 0 };

    steps.next("Start a simulated Magento store");
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

    steps.next("Start catalogd (API, web UI, workers, scheduler)");
    let app = Application::build(settings).await?;
    let base = format!("http://{}", app.local_addr());
    let state = app.state().clone();
    let stopping = Stopping::on_signal();
    let workers = tokio::spawn(jobs::runner::run(state.clone(), stopping.wait()));
    let scheduler = tokio::spawn(schedules::run_scheduler(state.clone(), stopping.wait()));
    let server = tokio::spawn(app.run(stopping.wait()));
    println!("catalogd: {base}");
    if smtp {
        println!("Mail goes to the SMTP server of [email] smtp_url.");
    } else {
        println!(
            "No SMTP server is set ([email] smtp_url): mail is written to {}",
            mail_dir.display()
        );
    }

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
    steps.next("Connect the store through Magento's integration handshake");
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

    steps.next("Sync every product and store view");
    let job = run_job(
        &api,
        &format!("/api/v1/stores/{store_id}/sync"),
        json!({"mode": "full"}),
        "Syncing",
    )
    .await?;
    println!(
        "Sync done: {} products read, {} versions written",
        job["counters"]["products"], job["counters"]["versions_created"]
    );

    steps.next("Audit the catalog");
    let first = audit(&api, &store_id).await?;
    println!(
        "Audit: score {:.1} over {} products, {} findings",
        first["score"].as_f64().unwrap_or_default(),
        first["products"],
        first["findings"]
    );

    steps.next("Enrich the flagged fields (rules provider, offline)");
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
        "Enriching",
    )
    .await?;
    println!(
        "Enrichment (rules provider, flagged fields only): {} proposals",
        enrich["counters"]["proposals"]
    );

    // A reviewer approves every scope but the last store view, whose proposals stay waiting.
    steps.next("Review: approve the proposals of every scope but one");
    let (approve, leave) = scopes.split_at(scopes.len().saturating_sub(1).max(1));
    let mut decided = 0;
    for scope in approve {
        let approved = api
            .post(
                &format!("/api/v1/stores/{store_id}/proposals/approve"),
                json!({"filter": {"origin": "ai", "store_view": scope},
                       "comment": "approved by the demo reviewer"}),
            )
            .await?;
        decided += approved["decided"].as_array().map_or(0, Vec::len);
    }
    println!("Review: {decided} proposals approved");
    if decided > 0 {
        let push = run_job(
            &api,
            &format!("/api/v1/stores/{store_id}/push"),
            json!({"all_approved": true}),
            "Pushing",
        )
        .await?;
        println!(
            "Push to the store: {} pushed, {} conflicts, {} failed",
            push["counters"]["pushed"], push["counters"]["conflict"], push["counters"]["failed"]
        );
    }

    steps.next("Audit again");
    let second = audit(&api, &store_id).await?;
    println!(
        "Audit again: score {:.1} → {:.1} ({} findings fixed)",
        first["score"].as_f64().unwrap_or_default(),
        second["score"].as_f64().unwrap_or_default(),
        second["comparison"]["fixed"]
    );

    steps.next("The mail a reviewer got about the proposals waiting");
    let waiting = api
        .get(&format!(
            "/api/v1/stores/{store_id}/proposals?origin=ai&limit=200"
        ))
        .await?;
    let left = waiting["items"].as_array().map_or(0, Vec::len);
    println!(
        "{left}{} proposals of the store view {} still wait for a reviewer.",
        if waiting["next_cursor"].is_string() {
            "+"
        } else {
            ""
        },
        leave.first().and_then(Value::as_str).unwrap_or("?")
    );
    match review_mail(&state.db).await? {
        Some((via, subject, text)) => {
            if smtp {
                println!("Sent through {via}:");
            } else {
                println!("Written to {via}:");
            }
            println!("  Subject: {subject}");
            for line in text.lines() {
                println!("  | {line}");
            }
        }
        None => println!("No review mail was written (the enrichment left no proposals)."),
    }

    println!();
    println!("catalogd is serving at {base}");
    println!(
        "  web UI:    {base}/login  (email {DEMO_EMAIL}, password {DEMO_PASSWORD}), what needs attention at {base}/w/{workspace}"
    );
    println!(
        "  sign in:   POST {base}/api/v1/auth/login  {{\"email\": \"{DEMO_EMAIL}\", \"password\": \"{DEMO_PASSWORD}\"}}"
    );
    println!("  API docs:  {base}/api/v1/openapi.json");
    println!("  the store: GET {base}/api/v1/stores/{store_id}");
    println!("  its jobs:  GET {base}/api/v1/workspaces/{workspace}/jobs");
    println!("  the log:   {}", log_path.display());
    if options.exit {
        return Ok(());
    }
    println!("Press Ctrl-C to stop.");
    server.await??;
    workers.await??;
    scheduler.await?;
    Ok(())
}

/// The `review.ready` mail of the demo's enrichment, once it is sent (or written): where it
/// went, its subject and its text.
async fn review_mail(db: &sqlx::PgPool) -> anyhow::Result<Option<(String, String, String)>> {
    let raised: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM events WHERE kind = 'review.ready')")
            .fetch_one(db)
            .await?;
    if !raised {
        return Ok(None);
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let mail: Option<(Option<String>, String, String)> = sqlx::query_as(
            "SELECT m.sent_via, m.subject, m.body_text FROM outgoing_mail m
             JOIN events e ON m.idempotency_key LIKE 'event:' || e.id || ':%'
             WHERE e.kind = 'review.ready' AND m.status = 'sent'
             ORDER BY m.created_at LIMIT 1",
        )
        .fetch_optional(db)
        .await?;
        if let Some((via, subject, text)) = mail {
            return Ok(Some((via.unwrap_or_default(), subject, text)));
        }
        if tokio::time::Instant::now() > deadline {
            bail!("the review mail was not written in time");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Starts a job through the API and waits for it to succeed, with a progress bar.
async fn run_job(api: &Api, path: &str, body: Value, label: &str) -> anyhow::Result<Value> {
    let started = api.post(path, body).await?;
    let job_id = started["job_id"]
        .as_str()
        .with_context(|| format!("{path} started no job: {started}"))?
        .to_string();
    let bar = ProgressBar::new(0);
    bar.set_style(
        ProgressStyle::with_template(&format!(
            "{label} {{bar:40.cyan/blue}} {{pos}}/{{len}} ({{per_sec}}, {{eta}})"
        ))
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let deadline = tokio::time::Instant::now() + Duration::from_secs(600);
    loop {
        let job = api.get(&format!("/api/v1/jobs/{job_id}")).await?;
        if let Some(total) = job["progress"]["total"].as_u64() {
            bar.set_length(total);
        }
        bar.set_position(job["progress"]["done"].as_u64().unwrap_or(0));
        match job["status"].as_str() {
            Some("succeeded") => {
                bar.finish();
                return Ok(job);
            }
            Some("failed" | "cancelled") => {
                bar.abandon();
                bail!("{path}: {} {}", job["status"], job["error"]);
            }
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
