//! The whole pipeline — sync, audit, enrich, approve, push — against a store that fails one
//! request in ten and an AI provider answering a storm of 429s, with the worker process killed (`kill -9`) and restarted in the middle of the
//! sync and of the push, ends exactly where a run without faults ends: the same live content,
//! the same writes to the store, no picture uploaded.

use std::collections::BTreeMap;
use std::process::Child;
use std::time::Duration;

use ai::fake::{FakeServer, Scripted};
use magento_sim::{Faults, MagentoSim, SimConfig};
use serde_json::{Value, json};

use crate::helpers::{Registered, TestApp};

const PRODUCTS: usize = 400;

/// One request in ten fails: 5 % with a 5xx, 5 % with a 429.
fn faults(latency: Duration) -> Faults {
    Faults {
        latency,
        error_5xx_rate: 0.05,
        rate_429: 0.05,
        retry_after_secs: Some(0),
        malformed_rate: 0.0,
    }
}

struct Run {
    app: TestApp,
    sim: MagentoSim,
    /// The AI provider `openai`, the loopback fake of OpenAI's API.
    fake: FakeServer,
    env: Vec<(String, String)>,
    owner: Registered,
    store_id: String,
    worker: Option<Child>,
}

impl Run {
    async fn start(faulty: bool) -> Run {
        let fake = FakeServer::start().await;
        let env: Vec<(String, String)> = [
            ("CATALOGD_AI__PROVIDERS__OPENAI__KIND", "openai".to_string()),
            ("CATALOGD_AI__PROVIDERS__OPENAI__BASE_URL", fake.base_url()),
            (
                "CATALOGD_AI__PROVIDERS__OPENAI__API_KEY",
                "sk-fake-key".into(),
            ),
            ("CATALOGD_AI__PROVIDERS__OPENAI__MODEL", "gpt-fake".into()),
            ("CATALOGD_AI__PROVIDERS__OPENAI__RPM", "6000".into()),
            (
                "CATALOGD_AI__PROVIDERS__OPENAI__MAX_CONCURRENCY",
                "4".into(),
            ),
            (
                "CATALOGD_AI__PROVIDERS__OPENAI__MAX_RETRY_AFTER_SECS",
                "1".into(),
            ),
            // More attempts than 429s scripted: every request gets through the storm.
            ("CATALOGD_AI__PROVIDERS__OPENAI__MAX_ATTEMPTS", "12".into()),
            // Workers live in their own process here, so the test can kill them.
            ("CATALOGD_JOBS__WORKERS_IN_SERVE", "false".into()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        let overrides: Vec<(&str, &str)> =
            env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let app = TestApp::spawn_with(&overrides).await;
        let sim = MagentoSim::start(SimConfig {
            products: PRODUCTS,
            ..SimConfig::default()
        })
        .await
        .unwrap();
        let owner = app.register("faults@example.com").await;
        let store_id = app.connect_store(&owner, &sim).await;
        if faulty {
            // Slow pages while syncing, so the kill lands between committed pages.
            sim.set_faults(faults(Duration::from_millis(300)));
        }
        if faulty {
            // A storm of 429s (with the provider's retry hints) meets the first generations.
            fake.script((0..8).map(|_| {
                Scripted::RateLimited(vec![
                    ("retry-after-ms".to_string(), "50".to_string()),
                    (
                        "x-ratelimit-remaining-requests".to_string(),
                        "0".to_string(),
                    ),
                    ("x-ratelimit-reset-requests".to_string(), "50ms".to_string()),
                ])
            }));
        }
        let worker = Some(app.start_worker(&env));
        Run {
            app,
            sim,
            fake,
            env,
            owner,
            store_id,
            worker,
        }
    }

    async fn post(&self, path: &str, body: Value) -> Value {
        let (status, answer) = self
            .app
            .post(path, Some(&self.owner.access_token), body)
            .await;
        assert!(status == 202 || status == 200, "{path}: {status} {answer}");
        answer
    }

    /// Kills the worker (SIGKILL) once the job has made `done` progress, then starts another.
    async fn kill_worker_at(&mut self, job_id: &str, done: i64) {
        self.app
            .wait_for_progress(&self.owner.access_token, job_id, done)
            .await;
        let mut worker = self.worker.take().unwrap();
        worker.kill().unwrap();
        worker.wait().unwrap();
        self.worker = Some(self.app.start_worker(&self.env));
    }

    async fn finish(&self, job_id: &str) -> Value {
        let job = self
            .app
            .wait_for_job(&self.owner.access_token, job_id, Duration::from_secs(180))
            .await;
        assert_eq!(job["status"], "succeeded", "{job}");
        job
    }

    async fn pipeline(&mut self, kill: bool) {
        let store = self.store_id.clone();
        let sync = self
            .post(&format!("/stores/{store}/sync"), json!({"mode": "full"}))
            .await;
        let sync = sync["job_id"].as_str().unwrap().to_string();
        if kill {
            self.kill_worker_at(&sync, (PRODUCTS / 3) as i64).await;
        }
        self.finish(&sync).await;
        if kill {
            self.sim.set_faults(faults(Duration::from_millis(2)));
        }

        let audit = self
            .post(&format!("/stores/{store}/audits"), json!({}))
            .await;
        self.finish(audit["job_id"].as_str().unwrap()).await;

        let enrich = self
            .post(
                &format!("/stores/{store}/enrich"),
                json!({"filter": {"only_flagged": true}, "provider": "openai",
                       "fields": ["meta_title", "meta_description", "alt_text"]}),
            )
            .await;
        let enriched = self.finish(enrich["job_id"].as_str().unwrap()).await;
        assert_eq!(
            enriched["counters"]["failed"].as_i64().unwrap_or(0),
            0,
            "{enriched}"
        );

        let approved = self
            .post(
                &format!("/stores/{store}/proposals/approve"),
                json!({"filter": {"origin": "ai"}}),
            )
            .await;
        assert!(
            !approved["decided"].as_array().unwrap().is_empty(),
            "{approved}"
        );

        let push = self
            .post(
                &format!("/stores/{store}/push"),
                json!({"all_approved": true}),
            )
            .await;
        let push = push["job_id"].as_str().unwrap().to_string();
        if kill {
            self.kill_worker_at(&push, 20).await;
        }
        self.finish(&push).await;
    }

    /// What the daemon holds live: (sku, scope) → content hash.
    async fn live(&self) -> BTreeMap<(String, String), String> {
        sqlx::query_as::<_, (String, String, String)>(
            "SELECT p.sku, l.store_view, encode(l.content_hash, 'hex')
             FROM product_live l JOIN products p ON p.id = l.product_id",
        )
        .fetch_all(&self.app.db)
        .await
        .unwrap()
        .into_iter()
        .map(|(sku, scope, hash)| ((sku, scope), hash))
        .collect()
    }

    /// The writes the store received, in a comparable order.
    fn writes(&self) -> Vec<String> {
        let mut writes: Vec<String> = self
            .sim
            .writes()
            .into_iter()
            .map(|w| {
                format!(
                    "{} {} {:?} {}",
                    w.method,
                    w.path,
                    w.store_code,
                    serde_json::to_string(&w.body).unwrap()
                )
            })
            .collect();
        writes.sort();
        writes
    }
}

impl Drop for Run {
    fn drop(&mut self) {
        if let Some(mut worker) = self.worker.take() {
            let _ = worker.kill();
            let _ = worker.wait();
        }
    }
}

#[tokio::test]
async fn a_pipeline_through_faults_and_killed_workers_ends_as_a_clean_run_does() {
    let mut clean = Run::start(false).await;
    clean.pipeline(false).await;
    let mut faulty = Run::start(true).await;
    faulty.pipeline(true).await;

    let (clean_live, faulty_live) = (clean.live().await, faulty.live().await);
    assert_eq!(clean_live.len(), faulty_live.len());
    let differing: Vec<_> = clean_live
        .iter()
        .filter(|(key, hash)| faulty_live.get(*key) != Some(*hash))
        .map(|(key, _)| key.clone())
        .take(5)
        .collect();
    assert!(differing.is_empty(), "live content differs: {differing:?}");

    let (clean_writes, faulty_writes) = (clean.writes(), faulty.writes());
    assert!(!clean_writes.is_empty());
    assert_eq!(clean_writes.len(), faulty_writes.len(), "no write repeated");
    assert!(clean_writes == faulty_writes, "the same writes");
    // Alt texts update existing gallery entries; nothing uploads a picture.
    assert!(
        faulty_writes
            .iter()
            .all(|w| !(w.starts_with("POST") && w.contains("/media"))),
        "no picture uploaded"
    );
    // The provider's 429s were met and honoured, and the work was done all the same.
    assert!(faulty.fake.request_count() > clean.fake.request_count());
    // Versions: the same number of each origin and state.
    let census = |db: sqlx::PgPool| async move {
        sqlx::query_as::<_, (String, String, i64)>(
            "SELECT origin, state, count(*) FROM product_versions GROUP BY 1, 2 ORDER BY 1, 2",
        )
        .fetch_all(&db)
        .await
        .unwrap()
    };
    assert_eq!(
        census(clean.app.db.clone()).await,
        census(faulty.app.db.clone()).await
    );
}
