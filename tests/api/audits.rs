//! Audits over the simulator's catalog: exactly the planted flaws, comparison between runs,
//! settings, filters, the product list's audit filters, and the `audit` pipeline step.

use std::collections::BTreeSet;
use std::time::Duration;

use magento_sim::{MagentoSim, SimConfig};
use serde_json::{Value, json};

use crate::helpers::{Registered, TestApp, error_code};

async fn sim(products: usize) -> MagentoSim {
    MagentoSim::start(SimConfig {
        products,
        ..SimConfig::default()
    })
    .await
    .expect("simulator starts")
}

/// Starts an audit and waits for it; returns the run.
async fn audit(app: &TestApp, who: &Registered, store_id: &str, body: Value) -> Value {
    let (started, job) = app
        .run_job(
            &format!("/stores/{store_id}/audits"),
            &who.access_token,
            body,
        )
        .await;
    assert_eq!(job["kind"], "audit");
    let (status, run) = app
        .get(
            &format!("/audits/{}", started["audit_id"].as_str().unwrap()),
            &who.access_token,
        )
        .await;
    assert_eq!(status, 200, "{run}");
    assert_eq!(run["status"], "succeeded", "{run}");
    run
}

/// Every finding of a run, following the cursor.
async fn all_findings(app: &TestApp, who: &Registered, run_id: &str, query: &str) -> Vec<Value> {
    app.get_all(
        &format!("/audits/{run_id}/findings?limit=200{query}"),
        &who.access_token,
    )
    .await
}

fn keys(findings: &[Value]) -> BTreeSet<(String, String, String, String)> {
    findings
        .iter()
        .map(|f| {
            (
                f["sku"].as_str().unwrap().to_string(),
                f["store_view"].as_str().unwrap().to_string(),
                f["rule"].as_str().unwrap().to_string(),
                f["field"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[tokio::test]
async fn an_audit_finds_exactly_the_flaws_the_simulator_planted() {
    let app = TestApp::spawn().await;
    let sim = sim(400).await;
    let owner = app.register("shop@example.com").await;
    let store_id = app.connect_store(&owner, &sim).await;
    app.sync(&owner, &store_id, "full").await;

    let run = audit(&app, &owner, &store_id, json!({})).await;
    let findings = all_findings(&app, &owner, run["id"].as_str().unwrap(), "").await;
    let planted: BTreeSet<_> = sim
        .planted_flaws()
        .into_iter()
        .map(|f| (f.sku, f.store_view, f.kind, f.field))
        .collect();
    let found = keys(&findings);
    let missed: Vec<_> = planted.difference(&found).collect();
    let extra: Vec<_> = found.difference(&planted).collect();
    assert!(
        missed.is_empty() && extra.is_empty(),
        "missed {missed:?}\nextra {extra:?}"
    );
    assert_eq!(findings.len(), planted.len(), "one finding per flaw");
    assert_eq!(run["products"], 400);
    assert_eq!(run["findings"], planted.len());
    assert!(
        run["comparison"].is_null(),
        "a first run has nothing to compare"
    );
    let by_rule = run["counts"]["by_rule"].as_object().unwrap();
    assert_eq!(
        by_rule.values().map(|v| v.as_i64().unwrap()).sum::<i64>(),
        planted.len() as i64
    );
    let score = run["score"].as_f64().unwrap();
    assert!(score > 0.0 && score < 100.0, "{score}");
    // The planted catalog has every kind of flaw the rules look for.
    let kinds: BTreeSet<&str> = planted.iter().map(|f| f.2.as_str()).collect();
    assert!(kinds.len() >= 15, "{kinds:?}");

    // Findings filter by rule, severity and store view; the filters narrow, not change.
    let untranslated = all_findings(
        &app,
        &owner,
        run["id"].as_str().unwrap(),
        "&rule=untranslated&store_view=fr",
    )
    .await;
    assert!(!untranslated.is_empty());
    assert!(untranslated.iter().all(|f| f["rule"] == "untranslated"
        && f["store_view"] == "fr"
        && f["severity"] == "warning"));
    let errors = all_findings(&app, &owner, run["id"].as_str().unwrap(), "&severity=error").await;
    assert_eq!(
        errors.len() as i64,
        run["counts"]["by_severity"]["error"].as_i64().unwrap()
    );
    let (status, bad) = app
        .get(
            &format!(
                "/audits/{}/findings?rule=bogus",
                run["id"].as_str().unwrap()
            ),
            &owner.access_token,
        )
        .await;
    assert_eq!(status, 422, "{bad}");
    let (status, bad) = app
        .get(
            &format!(
                "/audits/{}/findings?store_view=xx",
                run["id"].as_str().unwrap()
            ),
            &owner.access_token,
        )
        .await;
    assert_eq!(status, 422, "{bad}");
}

#[tokio::test]
async fn a_second_run_reports_what_was_fixed_and_the_product_list_filters_on_findings() {
    let app = TestApp::spawn().await;
    let sim = sim(120).await;
    let owner = app.register("shop@example.com").await;
    let store_id = app.connect_store(&owner, &sim).await;
    app.sync(&owner, &store_id, "full").await;
    let first = audit(&app, &owner, &store_id, json!({})).await;
    let first_id = first["id"].as_str().unwrap();

    // Products with a missing meta title, as the product list sees them.
    let (status, listed) = app
        .get(
            &format!("/stores/{store_id}/products?finding=missing_meta_title&limit=200"),
            &owner.access_token,
        )
        .await;
    assert_eq!(status, 200, "{listed}");
    let flagged: Vec<String> = sim
        .planted_flaws()
        .into_iter()
        .filter(|f| f.kind == "missing_meta_title")
        .map(|f| f.sku)
        .collect();
    assert!(!flagged.is_empty());
    let mut listed_skus: Vec<String> = listed["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["sku"].as_str().unwrap().to_string())
        .collect();
    listed_skus.sort();
    let mut expected = flagged.clone();
    expected.sort();
    assert_eq!(listed_skus, expected);
    assert!(
        listed["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|p| p["audit_score"].as_i64().unwrap() < 100)
    );

    // Worst first, with a cursor that keeps the order across pages.
    let scores: Vec<(i64, String)> = app
        .get_all(
            &format!("/stores/{store_id}/products?sort=score&limit=25"),
            &owner.access_token,
        )
        .await
        .iter()
        .map(|p| {
            (
                p["audit_score"].as_i64().unwrap(),
                p["sku"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(scores.len(), 120);
    let mut sorted = scores.clone();
    sorted.sort();
    assert_eq!(scores, sorted);
    let (_, low) = app
        .get(
            &format!("/stores/{store_id}/products?max_score=80&limit=200"),
            &owner.access_token,
        )
        .await;
    let low_count = scores.iter().filter(|(s, _)| *s <= 80).count();
    assert_eq!(low["items"].as_array().unwrap().len(), low_count);

    // Fix two of them in the store, pull the change and audit again. (Products whose store
    // views inherit untranslated text would gain an `untranslated` finding for the new title.)
    let untranslated: BTreeSet<String> = sim
        .planted_flaws()
        .into_iter()
        .filter(|f| f.kind == "untranslated")
        .map(|f| f.sku)
        .collect();
    let fixable: Vec<&String> = flagged
        .iter()
        .filter(|sku| !untranslated.contains(*sku))
        .collect();
    assert!(fixable.len() >= 2);
    for sku in fixable.into_iter().take(2) {
        assert!(sim.update_product(sku, None, json!({"meta_title": "A fixed meta title"})));
    }
    app.sync(&owner, &store_id, "incremental").await;
    let second = audit(&app, &owner, &store_id, json!({})).await;
    let comparison = &second["comparison"];
    assert_eq!(comparison["previous_run_id"], first_id);
    assert_eq!(comparison["fixed"], 2, "{comparison}");
    assert_eq!(comparison["new"], 0, "{comparison}");
    assert_eq!(
        comparison["unchanged"].as_i64().unwrap(),
        first["findings"].as_i64().unwrap() - 2
    );
    assert_eq!(comparison["by_rule"]["missing_meta_title"]["fixed"], 2);
    assert!(second["score"].as_f64().unwrap() > first["score"].as_f64().unwrap());
    let (_, listed) = app
        .get(
            &format!("/stores/{store_id}/products?finding=missing_meta_title&limit=200"),
            &owner.access_token,
        )
        .await;
    assert_eq!(
        listed["items"].as_array().unwrap().len(),
        flagged.len() - 2,
        "the list reads the latest run"
    );
    let (_, runs) = app
        .get(&format!("/stores/{store_id}/audits"), &owner.access_token)
        .await;
    assert_eq!(runs["items"][0]["id"], second["id"]);
    assert_eq!(runs["items"][1]["id"], first_id);
}

#[tokio::test]
async fn settings_switch_rules_off_and_move_thresholds() {
    let app = TestApp::spawn().await;
    let sim = sim(150).await;
    let owner = app.register("shop@example.com").await;
    let store_id = app.connect_store(&owner, &sim).await;
    app.sync(&owner, &store_id, "full").await;
    let before = audit(&app, &owner, &store_id, json!({})).await;
    assert!(
        before["counts"]["by_rule"]["keyword_stuffing"]
            .as_i64()
            .unwrap_or(0)
            > 0
    );
    assert!(
        before["counts"]["by_rule"]["meta_title_too_long"]
            .as_i64()
            .unwrap_or(0)
            > 0
    );

    let (status, settings) = app
        .call(
            reqwest::Method::PUT,
            &format!("/workspaces/{}/settings", owner.workspace_id),
            Some(&owner.access_token),
            Some(json!({"audit_disabled_rules": ["keyword_stuffing"], "audit_meta_title_max_chars": 200,
                        "audit_description_min_chars": 400})),
        )
        .await;
    assert_eq!(status, 200, "{settings}");
    let (status, refused) = app
        .call(
            reqwest::Method::PUT,
            &format!("/workspaces/{}/settings", owner.workspace_id),
            Some(&owner.access_token),
            Some(json!({"audit_disabled_rules": ["no_such_rule"]})),
        )
        .await;
    assert_eq!(status, 422, "{refused}");
    assert!(
        refused["error"]["message"]
            .as_str()
            .unwrap()
            .contains("no_such_rule")
    );

    let after = audit(&app, &owner, &store_id, json!({})).await;
    let by_rule = &after["counts"]["by_rule"];
    assert!(by_rule.get("keyword_stuffing").is_none(), "{by_rule}");
    assert!(by_rule.get("meta_title_too_long").is_none(), "{by_rule}");
    // Every product with a description now has one that is too short.
    assert!(
        by_rule["description_too_short"].as_i64().unwrap()
            > before["counts"]["by_rule"]["description_too_short"]
                .as_i64()
                .unwrap()
                * 5,
        "{by_rule}"
    );
    assert_eq!(after["settings"]["meta_title_max_chars"], 200);
    assert_eq!(after["settings"]["disabled"], json!(["keyword_stuffing"]));
    let fixed = after["comparison"]["by_rule"]["keyword_stuffing"]["fixed"]
        .as_i64()
        .unwrap();
    assert_eq!(
        fixed,
        before["counts"]["by_rule"]["keyword_stuffing"]
            .as_i64()
            .unwrap()
    );
}

#[tokio::test]
async fn filtered_audits_roles_and_other_workspaces() {
    let app = TestApp::spawn().await;
    let sim = sim(60).await;
    let owner = app.register("shop@example.com").await;
    let store_id = app.connect_store(&owner, &sim).await;
    app.sync(&owner, &store_id, "full").await;
    let (_, listed) = app
        .get(
            &format!("/stores/{store_id}/products?limit=3"),
            &owner.access_token,
        )
        .await;
    let ids: Vec<Value> = listed["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["id"].clone())
        .collect();

    // `filter.finding` needs an audit of everything first.
    let (status, refused) = app
        .post(
            &format!("/stores/{store_id}/audits"),
            Some(&owner.access_token),
            json!({"filter": {"finding": "no_images"}}),
        )
        .await;
    assert_eq!(status, 409, "{refused}");

    let some = audit(&app, &owner, &store_id, json!({"products": ids})).await;
    assert_eq!(some["products"], 3);
    assert_eq!(some["filter"]["products"].as_array().unwrap().len(), 3);
    let (_, product) = app
        .get(
            &format!("/stores/{store_id}/products?limit=1"),
            &owner.access_token,
        )
        .await;
    assert!(
        product["items"][0]["audit_score"].is_null(),
        "a partial run does not become the store's latest audit"
    );

    let everything = audit(&app, &owner, &store_id, json!({})).await;
    let with_images = everything["counts"]["by_rule"]["no_images"]
        .as_i64()
        .unwrap_or(0);
    let narrowed = audit(
        &app,
        &owner,
        &store_id,
        json!({"filter": {"finding": "no_images"}}),
    )
    .await;
    assert_eq!(narrowed["products"].as_i64().unwrap(), with_images);
    assert_eq!(narrowed["counts"]["by_rule"]["no_images"], with_images);

    // Hostile and unknown input is named.
    for (body, status) in [
        (json!({"products": []}), 422),
        (json!({"products": [uuid::Uuid::new_v4()]}), 422),
        (json!({"filter": {"finding": "bogus"}}), 422),
        (json!({"filter": {"q": "x".repeat(201)}}), 422),
        (json!({"everything": true}), 422),
    ] {
        let (got, answer) = app
            .post(
                &format!("/stores/{store_id}/audits"),
                Some(&owner.access_token),
                body.clone(),
            )
            .await;
        assert_eq!(got, status, "{body} → {answer}");
    }

    // A viewer reads audits but cannot start one; another workspace sees nothing.
    let viewer = app.member(&owner, "viewer@example.com", "viewer").await;
    let (status, _) = app
        .get(
            &format!("/audits/{}", everything["id"].as_str().unwrap()),
            &viewer.access_token,
        )
        .await;
    assert_eq!(status, 200);
    let (status, _) = app
        .post(
            &format!("/stores/{store_id}/audits"),
            Some(&viewer.access_token),
            json!({}),
        )
        .await;
    assert_eq!(status, 403);
    let stranger = app.register("other@example.com").await;
    for path in [
        format!("/audits/{}", everything["id"].as_str().unwrap()),
        format!("/audits/{}/findings", everything["id"].as_str().unwrap()),
        format!("/stores/{store_id}/audits"),
    ] {
        let (status, body) = app.get(&path, &stranger.access_token).await;
        assert_eq!(status, 404, "{path}: {body}");
        assert_eq!(error_code(&body), "not_found");
    }
}

#[tokio::test]
async fn a_scheduled_pipeline_syncs_then_audits() {
    let app = TestApp::spawn().await;
    let sim = sim(30).await;
    let owner = app.register("shop@example.com").await;
    let store_id = app.connect_store(&owner, &sim).await;
    let (status, schedule) = app
        .call(
            reqwest::Method::PUT,
            &format!("/stores/{store_id}/schedule"),
            Some(&owner.access_token),
            Some(
                json!({"cron": "0 2 * * *", "timezone": "UTC", "pipeline": ["full_sync", "audit", "enrich", "push", "export"]}),
            ),
        )
        .await;
    assert_eq!(status, 200, "{schedule}");
    // Make it due now; the scheduler fires it once.
    sqlx::query("UPDATE schedules SET next_run_at = now() - interval '1 minute'")
        .execute(&app.db)
        .await
        .unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let run = loop {
        let (_, runs) = app
            .get(&format!("/stores/{store_id}/audits"), &owner.access_token)
            .await;
        if let Some(run) = runs["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["status"] == "succeeded")
        {
            break run.clone();
        }
        assert!(tokio::time::Instant::now() < deadline, "{runs}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(run["products"], 30, "the audit ran after the sync: {run}");
    let (_, audit_job) = app
        .get(
            &format!("/jobs/{}", run["job_id"].as_str().unwrap()),
            &owner.access_token,
        )
        .await;
    let (_, jobs) = app
        .get(
            &format!("/workspaces/{}/jobs", owner.workspace_id),
            &owner.access_token,
        )
        .await;
    let jobs = jobs["items"].as_array().unwrap();
    assert!(jobs.len() >= 2, "{jobs:?}");
    let sync = jobs.iter().find(|j| j["kind"] == "sync").unwrap();
    assert_eq!(sync["status"], "succeeded");
    let ordered: bool = sqlx::query_scalar(
        "SELECT s.finished_at <= a.started_at FROM job_runs s, job_runs a
         WHERE s.kind = 'sync' AND a.kind = 'audit'",
    )
    .fetch_one(&app.db)
    .await
    .unwrap();
    assert!(
        ordered,
        "the audit started after the sync finished: {sync} {audit_job}"
    );
    // Then enrichment of what the audit flagged, then a push of what was approved by then
    // (nothing: proposals wait for a reviewer).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let kinds: Vec<(String, String)> =
            sqlx::query_as("SELECT kind, status FROM job_runs ORDER BY id")
                .fetch_all(&app.db)
                .await
                .unwrap();
        if kinds.len() == 5 && kinds.iter().all(|(_, s)| s == "succeeded") {
            let order: Vec<&str> = kinds.iter().map(|(k, _)| k.as_str()).collect();
            assert_eq!(order, ["sync", "audit", "enrich", "push", "export"]);
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{kinds:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let proposals: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM product_versions WHERE origin = 'ai' AND state = 'proposed'",
    )
    .fetch_one(&app.db)
    .await
    .unwrap();
    assert!(proposals > 0);
    assert!(sim.writes().is_empty(), "nothing unapproved was pushed");
    let rows: Option<i64> = sqlx::query_scalar("SELECT rows FROM exports")
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert!(rows.unwrap() >= 30, "the nightly export has every product");
}

#[tokio::test]
async fn the_audit_step_is_accepted_in_schedules() {
    let app = TestApp::spawn().await;
    let sim = sim(5).await;
    let owner = app.register("shop@example.com").await;
    let store_id = app.connect_store(&owner, &sim).await;
    let (status, refused) = app
        .call(
            reqwest::Method::PUT,
            &format!("/stores/{store_id}/schedule"),
            Some(&owner.access_token),
            Some(json!({"cron": "0 2 * * *", "timezone": "UTC", "pipeline": ["sync", "deploy"]})),
        )
        .await;
    assert_eq!(status, 422, "{refused}");
    assert!(
        refused["error"]["message"]
            .as_str()
            .unwrap()
            .contains("audit")
    );
    let (status, accepted) = app
        .call(
            reqwest::Method::PUT,
            &format!("/stores/{store_id}/schedule"),
            Some(&owner.access_token),
            Some(json!({"cron": "0 2 * * *", "timezone": "UTC", "pipeline": ["sync", "audit"]})),
        )
        .await;
    assert_eq!(status, 200, "{accepted}");
    assert_eq!(accepted["pipeline"], json!(["sync", "audit"]));
}

#[tokio::test]
async fn mirrored_images_are_stored_once_and_audited_for_size() {
    let app = TestApp::spawn().await;
    let sim = sim(25).await;
    let owner = app.register("shop@example.com").await;
    let store_id = app.connect_store(&owner, &sim).await;
    app.sync(&owner, &store_id, "full").await;
    let images: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM product_live l JOIN product_versions v ON v.id = l.version_id,
                jsonb_array_elements(coalesce(v.content -> 'media', '[]'::jsonb)) m
         WHERE l.store_view = 'all'",
    )
    .fetch_one(&app.db)
    .await
    .unwrap();
    assert!(images > 0);

    let (_, job) = app
        .run_job(
            &format!("/stores/{store_id}/media"),
            &owner.access_token,
            json!({}),
        )
        .await;
    assert_eq!(job["kind"], "media");
    assert_eq!(job["counters"]["fetched"], images, "{job}");
    assert_eq!(job["counters"]["failed"], 0, "{job}");
    let (rows, sizes, keys): (i64, i64, i64) = sqlx::query_as(
        "SELECT count(*), count(*) FILTER (WHERE width = 1 AND height = 1), count(DISTINCT object_key) FROM media",
    )
    .fetch_one(&app.db)
    .await
    .unwrap();
    assert_eq!((rows, sizes), (images, images));
    // Each stored picture sits under the workspace's prefix, named by its hash.
    let stored = std::fs::read_dir(
        app.data_dir
            .join("objects")
            .join(owner.workspace_id.to_string())
            .join("media"),
    )
    .unwrap()
    .count() as i64;
    assert_eq!(stored, keys);

    // A second run fetches nothing it already has.
    let (_, again) = app
        .post(
            &format!("/stores/{store_id}/media"),
            Some(&owner.access_token),
            json!({}),
        )
        .await;
    let job = app
        .wait_for_job(
            &owner.access_token,
            again["job_id"].as_str().unwrap(),
            Duration::from_secs(60),
        )
        .await;
    assert_eq!(job["counters"]["fetched"], 0, "{job}");
    assert_eq!(job["counters"]["unchanged"], images, "{job}");

    // The simulator's pictures are 1×1: every mirrored, enabled image is too small.
    let run = audit(&app, &owner, &store_id, json!({})).await;
    assert_eq!(run["counts"]["by_rule"]["image_too_small"], images, "{run}");
}

#[tokio::test]
async fn the_score_order_lists_unscored_products_last_in_sku_order() {
    let app = TestApp::spawn().await;
    let sim = sim(30).await;
    let owner = app.register("shop@example.com").await;
    let store_id = app.connect_store(&owner, &sim).await;
    app.sync(&owner, &store_id, "full").await;
    audit(&app, &owner, &store_id, json!({})).await;
    // Products that arrived after the audit have no score in it.
    let store: uuid::Uuid = store_id.parse().unwrap();
    for sku in ["0-first", "M-middle", "zz-last"] {
        sqlx::query(
            "INSERT INTO products (id, workspace_id, store_id, sku, name)
             SELECT $1, workspace_id, id, $2, $2 FROM stores WHERE id = $3",
        )
        .bind(uuid::Uuid::now_v7())
        .bind(sku)
        .bind(store)
        .execute(&app.db)
        .await
        .unwrap();
    }

    let (app, owner, store_id) = (&app, &owner, &store_id);
    let listed = |query: &'static str| async move {
        app.get_all(
            &format!("/stores/{store_id}/products?{query}"),
            &owner.access_token,
        )
        .await
        .iter()
        .map(|p| {
            (
                p["audit_score"].as_i64(),
                p["sku"].as_str().unwrap().to_string(),
            )
        })
        .collect::<Vec<_>>()
    };
    // Pages of 7 cross from the scored products to the unscored ones mid-page.
    let by_score = listed("sort=score&limit=7").await;
    assert_eq!(by_score.len(), 33);
    let (scored, unscored) = by_score.split_at(30);
    assert!(scored.iter().all(|(score, _)| score.is_some()));
    let mut sorted = scored.to_vec();
    sorted.sort();
    assert_eq!(scored, sorted.as_slice());
    assert_eq!(
        unscored,
        [
            (None, "0-first".to_string()),
            (None, "M-middle".to_string()),
            (None, "zz-last".to_string())
        ]
    );
    // A page that ends exactly on the last scored product continues with the unscored ones.
    assert_eq!(listed("sort=score&limit=10").await, by_score);
    // A score filter leaves the unscored products out.
    let filtered = listed("sort=score&limit=7&max_score=100").await;
    assert_eq!(filtered, scored);
}
