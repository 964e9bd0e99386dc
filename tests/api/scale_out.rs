//! One `serve` and two `catalogd worker` processes share the queue in PostgreSQL: every job
//! runs once, on one of them.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use magento_sim::{MagentoSim, SimConfig};
use serde_json::json;

use crate::helpers::TestApp;

#[tokio::test]
async fn two_workers_and_a_serve_share_the_queue_without_running_any_job_twice() {
    let app = TestApp::spawn().await;
    let sim = MagentoSim::start(SimConfig {
        products: 20,
        ..SimConfig::default()
    })
    .await
    .unwrap();
    let owner = app.register("scale@example.com").await;
    let token = owner.access_token.as_str();
    let store_id = app.connect_store(&owner, &sim).await;
    app.sync(&owner, &store_id, "full").await;

    let mut workers: Vec<_> = (0..2).map(|_| app.start_worker(&[])).collect();

    let mut jobs = Vec::new();
    for i in 0..18 {
        let format = ["magento_csv", "google_feed", "magento_zip"][i % 3];
        let (status, started) = app
            .post(
                &format!("/stores/{store_id}/exports"),
                Some(token),
                json!({"format": format}),
            )
            .await;
        assert_eq!(status, 202, "{started}");
        jobs.push(started["job_id"].as_str().unwrap().to_string());
    }
    for job in &jobs {
        let done = app.wait_for_job(token, job, Duration::from_secs(120)).await;
        assert_eq!(done["status"], "succeeded", "{done}");
        assert_eq!(done["attempts"], 1, "{done}");
    }
    for worker in &mut workers {
        worker.kill().unwrap();
        worker.wait().unwrap();
    }

    // Each job was taken once, by one process; every file was written once.
    let taken: Vec<(String, String)> = sqlx::query_as(
        "SELECT job_id::text, message FROM job_logs
         WHERE message LIKE 'attempt % on worker %' AND job_id = ANY($1::uuid[])",
    )
    .bind(
        jobs.iter()
            .map(|j| j.parse::<uuid::Uuid>().unwrap())
            .collect::<Vec<_>>(),
    )
    .fetch_all(&app.db)
    .await
    .unwrap();
    let mut per_job: BTreeMap<String, usize> = BTreeMap::new();
    let mut workers_seen = BTreeSet::new();
    for (job, message) in &taken {
        *per_job.entry(job.clone()).or_default() += 1;
        workers_seen.insert(message.rsplit(' ').next().unwrap().to_string());
    }
    assert_eq!(per_job.len(), jobs.len(), "{taken:?}");
    assert!(per_job.values().all(|n| *n == 1), "{per_job:?}");
    assert!(!workers_seen.is_empty());
    let written: i64 = sqlx::query_scalar(
        "SELECT count(DISTINCT object_key) FROM exports WHERE store_id = $1::uuid AND object_key IS NOT NULL",
    )
    .bind(&store_id)
    .fetch_one(&app.db)
    .await
    .unwrap();
    assert_eq!(written, 18);
}
