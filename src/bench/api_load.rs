//! The product API under load, after the benchmark's sync: the real router on a loopback port,
//! a signed-in member of the benchmark's workspace, and
//!
//! * a fixed-rate run: requests sent at a steady `rate` per second whatever the answers take
//!   (so slow answers cannot hide by slowing the sender), latencies of every request;
//! * `wrk` at full speed when it is installed (Debian's `wrk`), for throughput.

use std::time::{Duration, Instant};

use anyhow::Context;
use uuid::Uuid;

use crate::accounts::{sessions, users};
use crate::state::AppState;

pub struct LoadReport {
    pub requests: usize,
    pub errors: usize,
    pub achieved_per_sec: f64,
    pub all: Percentiles,
    /// The same figures for each kind of request in the mix.
    pub by_kind: Vec<(&'static str, Percentiles)>,
}

pub struct Percentiles {
    pub requests: usize,
    pub p50_ms: f64,
    pub p95_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

impl Percentiles {
    fn of(mut latencies: Vec<f64>) -> Percentiles {
        latencies.sort_by(|a, b| a.total_cmp(b));
        let at = |q: f64| {
            if latencies.is_empty() {
                return 0.0;
            }
            latencies[((latencies.len() as f64 * q).ceil() as usize).clamp(1, latencies.len()) - 1]
        };
        Percentiles {
            requests: latencies.len(),
            p50_ms: at(0.50),
            p95_ms: at(0.95),
            p99_ms: at(0.99),
            max_ms: latencies.last().copied().unwrap_or(0.0),
        }
    }
}

impl std::fmt::Display for Percentiles {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "p50 {:.1} ms, p95 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
            self.p50_ms, self.p95_ms, self.p99_ms, self.max_ms
        )
    }
}

/// One request of the mix: what kind it is, and its URL.
pub struct Target {
    pub kind: &'static str,
    pub url: String,
}

/// Serves the API and returns its base URL and a bearer token of a workspace member.
pub async fn serve(state: &AppState, workspace_id: Uuid) -> anyhow::Result<(String, String)> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let router = crate::http::router(state.clone());
    tokio::spawn(async move {
        let _ = axum::serve(
            listener,
            router.into_make_service_with_connect_info::<std::net::SocketAddr>(),
        )
        .await;
    });
    let email = crate::accounts::email::Email::parse(&format!(
        "bench-{}@example.com",
        Uuid::new_v4().simple()
    ))
    .map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut tx = state.db.begin().await?;
    let user = users::create(&mut tx, &email, "Bench", "not-a-login")
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    sqlx::query("INSERT INTO memberships (workspace_id, user_id, role) VALUES ($1, $2, 'viewer')")
        .bind(workspace_id)
        .bind(user.id)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    let session = sessions::start(&state.db, user.id, Some("bench"), None, 3600).await?;
    let token = state.jwt.issue(user.id, session.session_id, 3600)?;
    Ok((format!("http://{addr}"), token))
}

/// The mix: product lists (first page, a search, a filter, the worst scores) and product
/// details of products spread over the catalog.
pub async fn targets(state: &AppState, base: &str, store_id: Uuid) -> anyhow::Result<Vec<Target>> {
    let ids: Vec<(Uuid, String)> = sqlx::query_as(
        "SELECT id, sku FROM products WHERE store_id = $1 ORDER BY random() LIMIT 200",
    )
    .bind(store_id)
    .fetch_all(&state.db)
    .await?;
    let list = format!("{base}/api/v1/stores/{store_id}/products?limit=50");
    let mut targets = Vec::new();
    for (i, (id, sku)) in ids.iter().enumerate() {
        targets.push(Target {
            kind: "detail",
            url: format!("{base}/api/v1/products/{id}"),
        });
        targets.push(match i % 4 {
            0 => Target {
                kind: "list",
                url: list.clone(),
            },
            1 => Target {
                kind: "list q=",
                url: format!("{list}&q={}", sku.chars().take(6).collect::<String>()),
            },
            2 => Target {
                kind: "list missing=",
                url: format!("{list}&missing=meta_description"),
            },
            _ => Target {
                kind: "list sort=score",
                url: format!("{list}&sort=score"),
            },
        });
    }
    Ok(targets)
}

/// Sends `rate` requests per second for `duration`, cycling through `targets`.
pub async fn fixed_rate(
    targets: &[Target],
    token: &str,
    rate: u32,
    duration: Duration,
) -> anyhow::Result<LoadReport> {
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(64)
        .build()?;
    let total = (f64::from(rate) * duration.as_secs_f64()) as usize;
    let mut ticker = tokio::time::interval(Duration::from_secs_f64(1.0 / f64::from(rate.max(1))));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let started = Instant::now();
    let mut tasks = Vec::with_capacity(total);
    for i in 0..total {
        ticker.tick().await;
        let target = &targets[i % targets.len()];
        let request = client.get(&target.url).bearer_auth(token);
        let kind = target.kind;
        tasks.push(tokio::spawn(async move {
            let sent = Instant::now();
            let ok = match request.send().await {
                Ok(response) => {
                    let ok = response.status().is_success();
                    response.bytes().await.is_ok() && ok
                }
                Err(_) => false,
            };
            (kind, sent.elapsed(), ok)
        }));
    }
    let mut latencies = Vec::with_capacity(total);
    let mut by_kind: Vec<(&'static str, Vec<f64>)> = Vec::new();
    let mut errors = 0;
    for task in tasks {
        let (kind, latency, ok) = task.await.context("a request task")?;
        let ms = latency.as_secs_f64() * 1000.0;
        latencies.push(ms);
        match by_kind.iter_mut().find(|(k, _)| *k == kind) {
            Some((_, list)) => list.push(ms),
            None => by_kind.push((kind, vec![ms])),
        }
        if !ok {
            errors += 1;
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    Ok(LoadReport {
        requests: latencies.len(),
        errors,
        achieved_per_sec: latencies.len() as f64 / elapsed,
        all: Percentiles::of(latencies),
        by_kind: by_kind
            .into_iter()
            .map(|(kind, list)| (kind, Percentiles::of(list)))
            .collect(),
    })
}

/// `wrk --latency` against one URL; its summary lines, or why it did not run.
pub fn wrk(url: &str, token: &str, seconds: u32) -> String {
    let output = std::process::Command::new("wrk")
        .args([
            "-t2",
            "-c16",
            &format!("-d{seconds}s"),
            "--latency",
            "-H",
            &format!("Authorization: Bearer {token}"),
            url,
        ])
        .output();
    match output {
        Ok(out) if out.status.success() => String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|l| {
                let l = l.trim_start();
                l.starts_with("Latency")
                    || l.starts_with("Req/Sec")
                    || l.starts_with("50%")
                    || l.starts_with("90%")
                    || l.starts_with("99%")
                    || l.starts_with("Requests/sec")
                    || l.contains("requests in")
                    || l.starts_with("Non-2xx")
            })
            .map(|l| format!("    {}\n", l.trim()))
            .collect(),
        Ok(out) => format!(
            "    wrk failed: {}\n",
            String::from_utf8_lossy(&out.stderr).trim()
        ),
        Err(_) => "    wrk is not installed (apt-get install wrk)\n".to_string(),
    }
}
