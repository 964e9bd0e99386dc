//! Syncing the simulator's catalog: full and incremental pulls, versions, removals,
//! cancellation, and a worker killed mid-sync.

use std::process::Command;
use std::time::Duration;

use magento_sim::{Faults, MagentoSim, SimConfig};
use serde_json::json;

use crate::helpers::TestApp;

async fn sim(products: usize) -> MagentoSim {
    MagentoSim::start(SimConfig {
        products,
        ..SimConfig::default()
    })
    .await
    .expect("simulator starts")
}

async fn count(app: &TestApp, sql: &'static str) -> i64 {
    sqlx::query_scalar(sql).fetch_one(&app.db).await.unwrap()
}

#[tokio::test]
async fn full_then_incremental_sync_writes_versions_only_for_changes() {
    let app = TestApp::spawn().await;
    let sim = sim(40).await;
    let owner = app.register("shop@example.com").await;
    let store_id = app.connect_store(&owner, &sim).await;

    let job = app.sync(&owner, &store_id, "full").await;
    assert_eq!(job["kind"], "sync");
    assert_eq!(job["counters"]["products"], 40 * 4, "{job}");
    assert_eq!(job["progress"]["done"], 40 * 4);
    assert_eq!(count(&app, "SELECT count(*) FROM products").await, 40);
    assert_eq!(
        count(
            &app,
            "SELECT count(*) FROM product_versions WHERE store_view = 'all'"
        )
        .await,
        40
    );
    let first_versions = count(&app, "SELECT count(*) FROM product_versions").await;
    assert_eq!(job["counters"]["versions_created"], first_versions);

    // Pulled default content matches what the store holds.
    let sku: String = sqlx::query_scalar("SELECT sku FROM products ORDER BY remote_id LIMIT 1")
        .fetch_one(&app.db)
        .await
        .unwrap();
    let remote = sim
        .product(&sku, None)
        .expect("the simulator has the product");
    let stored: serde_json::Value = sqlx::query_scalar(
        "SELECT pv.content FROM product_live pl JOIN product_versions pv ON pv.id = pl.version_id
         JOIN products p ON p.id = pl.product_id WHERE p.sku = $1 AND pl.store_view = 'all'",
    )
    .bind(&sku)
    .fetch_one(&app.db)
    .await
    .unwrap();
    assert_eq!(stored["fields"]["name"], remote["name"]);

    // An unchanged catalog writes nothing.
    let again = app.sync(&owner, &store_id, "full").await;
    assert_eq!(again["counters"]["versions_created"], 0, "{again}");
    assert_eq!(again["counters"]["unchanged"], 40 * 4);
    assert_eq!(
        count(&app, "SELECT count(*) FROM product_versions").await,
        first_versions
    );

    // One product renamed in the store: exactly one new version, found by an incremental sync
    // that reads only what changed.
    sim.update_product(&sku, None, json!({"name": "Renamed in Magento"}));
    let incremental = app.sync(&owner, &store_id, "incremental").await;
    assert_eq!(
        incremental["counters"]["versions_created"], 1,
        "{incremental}"
    );
    // Only recent changes are read: the renamed product, plus whatever else changed within the
    // five-minute overlap before the watermark, in each of the four scopes.
    assert!(
        incremental["counters"]["products"].as_i64().unwrap() <= 8,
        "{incremental}"
    );
    assert_eq!(
        count(&app, "SELECT count(*) FROM product_versions").await,
        first_versions + 1
    );
    let name: String = sqlx::query_scalar("SELECT name FROM products WHERE sku = $1")
        .bind(&sku)
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert_eq!(name, "Renamed in Magento");
    let states: Vec<String> = sqlx::query_scalar(
        "SELECT pv.state FROM product_versions pv JOIN products p ON p.id = pv.product_id
         WHERE p.sku = $1 AND pv.store_view = 'all' ORDER BY pv.id",
    )
    .bind(&sku)
    .fetch_all(&app.db)
    .await
    .unwrap();
    assert_eq!(states, ["superseded", "live"]);
    assert_eq!(
        count(&app, "SELECT count(*) FROM sync_seen").await,
        0,
        "a finished sync forgets what it saw"
    );
}

#[tokio::test]
async fn store_view_versions_hold_only_overrides() {
    let app = TestApp::spawn().await;
    let sim = sim(30).await;
    let owner = app.register("shop@example.com").await;
    let store_id = app.connect_store(&owner, &sim).await;
    app.sync(&owner, &store_id, "full").await;
    let sku: String = sqlx::query_scalar("SELECT sku FROM products ORDER BY remote_id LIMIT 1")
        .fetch_one(&app.db)
        .await
        .unwrap();
    sim.update_product(&sku, Some("fr"), json!({"name": "Nom en français"}));
    app.sync(&owner, &store_id, "incremental").await;
    let fr: serde_json::Value = sqlx::query_scalar(
        "SELECT pv.content FROM product_live pl JOIN product_versions pv ON pv.id = pl.version_id
         JOIN products p ON p.id = pl.product_id WHERE p.sku = $1 AND pl.store_view = 'fr'",
    )
    .bind(&sku)
    .fetch_one(&app.db)
    .await
    .unwrap();
    assert_eq!(fr["fields"]["name"], "Nom en français");
    let default_description = sim.product(&sku, None).unwrap()["custom_attributes"]
        .as_array()
        .unwrap()
        .iter()
        .any(|a| a["attribute_code"] == "description");
    if default_description
        && sim.product(&sku, Some("fr")).unwrap()["custom_attributes"]
            == sim.product(&sku, None).unwrap()["custom_attributes"]
    {
        assert!(
            fr["fields"].get("description").is_none(),
            "inherited values are not copied: {fr}"
        );
    }
}

#[tokio::test]
async fn products_listed_again_by_shifting_pages_get_one_live_version_per_scope() {
    // Four pages per scope: the batches of a scope commit two at a time, and each page after
    // the first repeats the last 7 products of the one before.
    let app = TestApp::spawn().await;
    let sim = MagentoSim::start(SimConfig {
        products: 1000,
        page_overlap: 7,
        ..SimConfig::default()
    })
    .await
    .expect("simulator starts");
    let owner = app.register("shop@example.com").await;
    let store_id = app.connect_store(&owner, &sim).await;

    let job = app.sync(&owner, &store_id, "full").await;
    assert_eq!(job["status"], "succeeded", "{job}");
    assert_eq!(job["counters"]["products"], 4 * (1000 + 3 * 7), "{job}");
    assert_eq!(count(&app, "SELECT count(*) FROM products").await, 1000);
    assert_eq!(
        count(
            &app,
            "SELECT count(*) FROM (SELECT product_id, store_view FROM product_versions
             WHERE state = 'live' GROUP BY 1, 2 HAVING count(*) > 1) twice"
        )
        .await,
        0,
        "a product repeated across batches has one live version per scope"
    );
    assert_eq!(
        count(
            &app,
            "SELECT count(*) FROM product_versions pv WHERE pv.state = 'live'
             AND NOT EXISTS (SELECT 1 FROM product_live pl WHERE pl.version_id = pv.id)"
        )
        .await,
        0,
        "every live version is the one product_live points at"
    );
    assert_eq!(
        job["counters"]["versions_created"],
        count(&app, "SELECT count(*) FROM product_versions").await
    );
    assert_eq!(job["counters"]["removed"], 0, "{job}");

    let again = app.sync(&owner, &store_id, "full").await;
    assert_eq!(again["counters"]["versions_created"], 0, "{again}");
    assert_eq!(again["counters"]["removed"], 0, "{again}");
}

#[tokio::test]
async fn products_gone_from_the_store_are_marked_removed() {
    let app = TestApp::spawn().await;
    let sim = sim(20).await;
    let owner = app.register("shop@example.com").await;
    let store_id = app.connect_store(&owner, &sim).await;
    app.sync(&owner, &store_id, "full").await;
    let sku: String =
        sqlx::query_scalar("SELECT sku FROM products ORDER BY remote_id DESC LIMIT 1")
            .fetch_one(&app.db)
            .await
            .unwrap();
    sim.delete_product(&sku);
    let job = app.sync(&owner, &store_id, "full").await;
    assert_eq!(job["counters"]["removed"], 1, "{job}");
    let removed: Option<chrono::DateTime<chrono::Utc>> =
        sqlx::query_scalar("SELECT removed_at FROM products WHERE sku = $1")
            .bind(&sku)
            .fetch_one(&app.db)
            .await
            .unwrap();
    assert!(removed.is_some());
    // Its history is kept.
    let versions: i64 = sqlx::query_scalar("SELECT count(*) FROM product_versions pv JOIN products p ON p.id = pv.product_id WHERE p.sku = $1")
        .bind(&sku)
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert!(versions >= 1);
}

#[tokio::test]
async fn a_second_sync_of_the_same_store_is_refused_while_one_runs_and_cancel_stops_it() {
    let app = TestApp::spawn().await;
    let sim = sim(3000).await;
    sim.set_faults(Faults {
        latency: Duration::from_millis(150),
        ..Faults::default()
    });
    let owner = app.register("shop@example.com").await;
    let store_id = app.connect_store(&owner, &sim).await;
    let (status, started) = app
        .post(
            &format!("/stores/{store_id}/sync"),
            Some(&owner.access_token),
            json!({}),
        )
        .await;
    assert_eq!(status, 202, "{started}");
    let job_id = started["job_id"].as_str().unwrap();
    let (status, refused) = app
        .post(
            &format!("/stores/{store_id}/sync"),
            Some(&owner.access_token),
            json!({"mode": "full"}),
        )
        .await;
    assert_eq!(status, 409, "{refused}");

    // Wait until some pages are in, then cancel.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let (_, job) = app
            .get(&format!("/jobs/{job_id}"), &owner.access_token)
            .await;
        if job["progress"]["done"].as_i64().unwrap_or(0) > 0 {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{job}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (status, _) = app
        .post(
            &format!("/jobs/{job_id}/cancel"),
            Some(&owner.access_token),
            json!({}),
        )
        .await;
    assert_eq!(status, 202);
    let job = app
        .wait_for_job(&owner.access_token, job_id, Duration::from_secs(30))
        .await;
    assert_eq!(job["status"], "cancelled", "{job}");
    assert_eq!(
        count(&app, "SELECT count(*) FROM sync_seen").await,
        0,
        "a cancelled sync forgets what it saw"
    );
    assert!(
        job["progress"]["done"].as_i64().unwrap() < 3000 * 4,
        "{job}"
    );
    let (_, listed) = app
        .get(
            &format!("/workspaces/{}/jobs?kind=sync", owner.workspace_id),
            &owner.access_token,
        )
        .await;
    assert_eq!(listed["items"][0]["id"], job_id);
}

/// A sync of 1,500 products from a slow store, queued with no worker running yet.
async fn queued_slow_sync() -> (TestApp, MagentoSim, crate::helpers::Registered, String) {
    let app = TestApp::spawn_with(&[("CATALOGD_JOBS__WORKERS_IN_SERVE", "false")]).await;
    let sim = sim(1500).await;
    sim.set_faults(Faults {
        latency: Duration::from_millis(100),
        ..Faults::default()
    });
    let owner = app.register("shop@example.com").await;
    let store_id = app.connect_store(&owner, &sim).await;
    let (_, started) = app
        .post(
            &format!("/stores/{store_id}/sync"),
            Some(&owner.access_token),
            json!({"mode": "full"}),
        )
        .await;
    let job_id = started["job_id"].as_str().unwrap().to_string();
    (app, sim, owner, job_id)
}

#[tokio::test]
async fn a_worker_killed_mid_sync_is_taken_over_and_the_sync_completes_without_duplicates() {
    let (app, _sim, owner, job_id) = queued_slow_sync().await;

    let mut first = app.start_worker(&[]);
    app.wait_for_progress(&owner.access_token, &job_id, 900)
        .await;
    first.kill().expect("kill -9 the worker");
    first.wait().unwrap();

    let mut second = app.start_worker(&[]);
    let job = app
        .wait_for_job(&owner.access_token, &job_id, Duration::from_secs(90))
        .await;
    second.kill().unwrap();
    second.wait().unwrap();
    assert_eq!(job["status"], "succeeded", "{job}");
    assert_eq!(count(&app, "SELECT count(*) FROM products").await, 1500);
    assert_eq!(
        count(
            &app,
            "SELECT count(*) FROM product_versions WHERE store_view = 'all'"
        )
        .await,
        1500,
        "no duplicates"
    );
    assert_eq!(
        count(&app, "SELECT count(*) FROM (SELECT product_id, store_view FROM product_versions GROUP BY 1, 2 HAVING count(*) > 1) d").await,
        0
    );
    assert!(job["attempts"].as_i64().unwrap() >= 2, "{job}");
}

#[tokio::test]
async fn storms_of_5xx_and_429_are_retried_and_the_store_rate_limit_is_never_exceeded() {
    let app = TestApp::spawn().await;
    let sim = sim(900).await;
    let owner = app.register("shop@example.com").await;
    let store = app
        .connect_store_with(
            &owner,
            &sim,
            json!({"rate_limit": {"requests_per_second": 10, "max_concurrency": 3}}),
        )
        .await;
    sim.set_faults(Faults {
        error_5xx_rate: 0.25,
        rate_429: 0.15,
        retry_after_secs: Some(1),
        ..Faults::default()
    });
    let job = app
        .sync(&owner, store["id"].as_str().unwrap(), "full")
        .await;
    assert_eq!(job["counters"]["products"], 900 * 4, "{job}");
    let stats = sim.stats();
    assert!(
        stats.max_per_second() <= 10,
        "the store saw {} requests in one second",
        stats.max_per_second()
    );
    assert!(
        stats.max_in_flight <= 3,
        "{} requests in flight at once",
        stats.max_in_flight
    );
    // Faults really happened: more requests than pages.
    assert!(stats.total > 4 * 3 + 4, "{}", stats.total);
}

#[tokio::test]
async fn a_store_that_refuses_our_signature_needs_reauthorisation_and_is_not_retried() {
    let app = TestApp::spawn().await;
    let sim = sim(20).await;
    let owner = app.register("shop@example.com").await;
    let store_id = app.connect_store(&owner, &sim).await;
    // The merchant clicks Reauthorize in Magento: the token we hold stops working, and
    // Magento's post never reaches catalogd (a callback URL it cannot reach).
    let _ = sim
        .reauthorize(
            &sim.credentials().consumer_key,
            "http://127.0.0.1:9/callback",
        )
        .await;
    let before = sim.stats().total;
    let (_, started) = app
        .post(
            &format!("/stores/{store_id}/sync"),
            Some(&owner.access_token),
            json!({"mode": "full"}),
        )
        .await;
    let job = app
        .wait_for_job(
            &owner.access_token,
            started["job_id"].as_str().unwrap(),
            Duration::from_secs(30),
        )
        .await;
    assert_eq!(job["status"], "failed", "{job}");
    assert!(
        job["error"].as_str().unwrap().contains("Reauthorize"),
        "{job}"
    );
    assert_eq!(job["attempts"], 1, "a refused signature is not retried");
    assert!(
        sim.stats().total - before <= 2,
        "401 answers are not retried in a loop"
    );
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let (_, store) = app
            .get(&format!("/stores/{store_id}"), &owner.access_token)
            .await;
        if store["status"] == "needs_reauth" {
            assert_eq!(store["awaiting_callback"], true);
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{store}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn sigterm_hands_a_running_sync_back_to_the_queue_at_its_checkpoint() {
    let (app, _sim, owner, job_id) = queued_slow_sync().await;

    let mut first = app.start_worker(&[]);
    app.wait_for_progress(&owner.access_token, &job_id, 600)
        .await;
    let term = Command::new("kill")
        .args(["-TERM", &first.id().to_string()])
        .status()
        .unwrap();
    assert!(term.success());
    let exit = tokio::task::spawn_blocking(move || first.wait().unwrap())
        .await
        .unwrap();
    assert!(
        exit.success(),
        "the worker stops cleanly on SIGTERM: {exit:?}"
    );

    // Handed back, not failed and not finished: queued with its checkpoint.
    let (_, job) = app
        .get(&format!("/jobs/{job_id}"), &owner.access_token)
        .await;
    assert_eq!(job["status"], "queued", "{job}");
    let done_at_stop = job["progress"]["done"].as_i64().unwrap();
    assert!((600..6000).contains(&done_at_stop), "{job}");

    let mut second = app.start_worker(&[]);
    let job = app
        .wait_for_job(&owner.access_token, &job_id, Duration::from_secs(90))
        .await;
    second.kill().unwrap();
    second.wait().unwrap();
    assert_eq!(job["status"], "succeeded", "{job}");
    assert!(
        job["log"]
            .as_array()
            .unwrap()
            .iter()
            .any(|l| l["message"].as_str().unwrap().starts_with("resuming at")),
        "{job}"
    );
    assert_eq!(
        count(
            &app,
            "SELECT count(*) FROM product_versions WHERE store_view = 'all'"
        )
        .await,
        1500
    );
}

#[tokio::test]
async fn attributes_configured_as_content_are_versioned_like_the_standard_fields() {
    let app = TestApp::spawn().await;
    let sim = sim(10).await;
    let owner = app.register("shop@example.com").await;
    let store = app
        .connect_store_with(
            &owner,
            &sim,
            json!({"content_attributes": ["tax_class_id", "description", "tax_class_id"]}),
        )
        .await;
    assert_eq!(store["content_attributes"], json!(["tax_class_id"]));
    app.sync(&owner, store["id"].as_str().unwrap(), "full")
        .await;
    let content: serde_json::Value = sqlx::query_scalar(
        "SELECT pv.content FROM product_live pl JOIN product_versions pv ON pv.id = pl.version_id
         WHERE pl.store_view = 'all' LIMIT 1",
    )
    .fetch_one(&app.db)
    .await
    .unwrap();
    assert_eq!(content["fields"]["tax_class_id"], "2", "{content}");
    let attributes: serde_json::Value =
        sqlx::query_scalar("SELECT attributes FROM products LIMIT 1")
            .fetch_one(&app.db)
            .await
            .unwrap();
    assert!(
        attributes.get("tax_class_id").is_none(),
        "content is not also kept as plain data: {attributes}"
    );

    let (status, bad) = app
        .post(
            &format!("/workspaces/{}/stores", owner.workspace_id),
            Some(&owner.access_token),
            json!({"name": "Bad", "base_url": sim.base_url(), "content_attributes": ["Material; DROP"]}),
        )
        .await;
    assert_eq!(status, 422, "{bad}");
    assert_eq!(bad["error"]["field"], "content_attributes");
}

#[tokio::test]
async fn a_sync_request_body_is_optional_but_never_silently_ignored() {
    let app = TestApp::spawn().await;
    let sim = sim(5).await;
    let owner = app.register("shop@example.com").await;
    let store_id = app.connect_store(&owner, &sim).await;
    let url = app.url(&format!("/stores/{store_id}/sync"));
    // A body that is not declared as JSON is refused, not ignored.
    let res = app
        .client
        .post(&url)
        .bearer_auth(&owner.access_token)
        .body(r#"{"mode": "incremental"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 415);
    // No body at all: a full sync.
    let res = app
        .client
        .post(&url)
        .bearer_auth(&owner.access_token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 202);
    let started: serde_json::Value = res.json().await.unwrap();
    let job = app
        .wait_for_job(
            &owner.access_token,
            started["job_id"].as_str().unwrap(),
            Duration::from_secs(30),
        )
        .await;
    assert_eq!(job["params"]["mode"], "full", "{job}");
}

/// Queues a pipeline's `sync` step for the store, as a schedule does, and waits for it.
async fn pipeline_sync(
    app: &TestApp,
    owner: &crate::helpers::Registered,
    store_id: &str,
) -> serde_json::Value {
    let mut conn = app.db.acquire().await.unwrap();
    let job_id = catalogd::schedules::enqueue_step(
        &mut conn,
        catalogd::schedules::StepJob {
            workspace_id: owner.workspace_id,
            store_id: store_id.parse().unwrap(),
            step: catalogd::schedules::Step::Sync,
            rest: Vec::new(),
            created_by: None,
            schedule_tick: None,
            pipeline_id: None,
        },
    )
    .await
    .unwrap();
    drop(conn);
    let job = app
        .wait_for_job(
            &owner.access_token,
            &job_id.to_string(),
            Duration::from_secs(60),
        )
        .await;
    assert_eq!(job["status"], "succeeded", "{job}");
    job
}

async fn job_log(app: &TestApp, job_id: &str) -> Vec<String> {
    sqlx::query_scalar("SELECT message FROM job_logs WHERE job_id = $1::uuid ORDER BY id")
        .bind(job_id)
        .fetch_all(&app.db)
        .await
        .unwrap()
}

async fn meta_title(app: &TestApp, sku: &str) -> Option<String> {
    sqlx::query_scalar(
        "SELECT v.content -> 'fields' ->> 'meta_title' FROM product_live l
         JOIN product_versions v ON v.id = l.version_id
         JOIN products p ON p.id = l.product_id
         WHERE p.sku = $1 AND l.store_view = 'all'",
    )
    .bind(sku)
    .fetch_one(&app.db)
    .await
    .unwrap()
}

#[tokio::test]
async fn a_pipeline_sync_reads_everything_once_the_last_full_sync_is_too_old() {
    let app = TestApp::spawn().await;
    let sim = sim(8).await;
    let owner = app.register("shop@example.com").await;
    let store_id = app.connect_store(&owner, &sim).await;
    let skus = sim.skus();
    // One product saved two hours after every other: the watermark lies well past the rest.
    sim.advance_clock(Duration::from_secs(2 * 3600));
    sim.update_product(&skus[0], None, json!({"meta_title": "Saved last"}));

    // The store's first pipeline sync reads everything: it never had a full sync.
    let first = pipeline_sync(&app, &owner, &store_id).await;
    let log = job_log(&app, first["id"].as_str().unwrap()).await;
    assert!(
        log.iter().any(|l| l.contains("no full sync yet")),
        "{log:?}"
    );
    let (_, store) = app
        .get(&format!("/stores/{store_id}"), &owner.access_token)
        .await;
    assert_eq!(store["full_sync_every_days"], 7, "{store}");
    assert!(store["last_full_sync_at"].is_string(), "{store}");

    // The admin's "Update attributes" changes two products without moving updated_at.
    let mass = [skus[1].as_str(), skus[2].as_str()];
    assert_eq!(
        sim.update_attributes(&mass, None, json!({"meta_title": "Mass edit"})),
        2
    );
    let quiet = pipeline_sync(&app, &owner, &store_id).await;
    assert!(
        !job_log(&app, quiet["id"].as_str().unwrap())
            .await
            .iter()
            .any(|l| l.contains("reading every product")),
        "a recent full sync keeps the pipeline's sync incremental"
    );
    assert_ne!(
        meta_title(&app, &skus[1]).await.as_deref(),
        Some("Mass edit")
    );

    // A week later (the store's interval is lowered to a day, and a day passes).
    let (status, store) = app
        .call(
            reqwest::Method::PATCH,
            &format!("/stores/{store_id}"),
            Some(&owner.access_token),
            Some(json!({"full_sync_every_days": 1})),
        )
        .await;
    assert_eq!(status, 200, "{store}");
    assert_eq!(store["full_sync_every_days"], 1);
    sqlx::query("UPDATE stores SET last_full_sync_at = now() - interval '25 hours'")
        .execute(&app.db)
        .await
        .unwrap();
    let due = pipeline_sync(&app, &owner, &store_id).await;
    let log = job_log(&app, due["id"].as_str().unwrap()).await;
    assert!(
        log.iter()
            .any(|l| l.contains("reading every product") && l.contains("full_sync_every_days")),
        "{log:?}"
    );
    for sku in mass {
        assert_eq!(meta_title(&app, sku).await.as_deref(), Some("Mass edit"));
    }
    let last_full: chrono::DateTime<chrono::Utc> =
        sqlx::query_scalar("SELECT last_full_sync_at FROM stores")
            .fetch_one(&app.db)
            .await
            .unwrap();
    assert!(chrono::Utc::now() - last_full < chrono::Duration::minutes(5));

    // A requested incremental sync stays incremental whatever the interval.
    sqlx::query("UPDATE stores SET last_full_sync_at = now() - interval '25 hours'")
        .execute(&app.db)
        .await
        .unwrap();
    let asked = app.sync(&owner, &store_id, "incremental").await;
    assert!(
        !job_log(&app, asked["id"].as_str().unwrap())
            .await
            .iter()
            .any(|l| l.contains("reading every product"))
    );

    for bad in [
        json!({"full_sync_every_days": 0}),
        json!({"full_sync_every_days": 366}),
    ] {
        let (status, body) = app
            .call(
                reqwest::Method::PATCH,
                &format!("/stores/{store_id}"),
                Some(&owner.access_token),
                Some(bad),
            )
            .await;
        assert_eq!(status, 422, "{body}");
        assert_eq!(body["error"]["field"], "full_sync_every_days", "{body}");
    }
}
