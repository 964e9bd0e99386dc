//! A push at the store's pace: proposals read in `sku in (…)` lists, written side by side
//! within the store's limits, read back the same way, each approved field written exactly
//! once — also when the worker is killed in the middle — and a product's store views only
//! after its default scope.

use std::collections::BTreeMap;
use std::time::Duration;

use magento_sim::{Faults, MagentoSim, RecordedWrite, SimConfig};
use serde_json::{Value, json};

use crate::helpers::TestApp;
use crate::review::{Shop, shop_with};

/// Requests the store received: (all, writes).
fn requests(sim: &MagentoSim) -> (u64, u64) {
    let stats = sim.stats();
    (stats.total, stats.write_requests)
}

/// Proposes `field` = `value(sku, scope)` for each SKU in each scope, approves them all at once;
/// returns the proposals.
async fn approved(
    app: &TestApp,
    token: &str,
    store_id: &str,
    skus: &[String],
    scopes: &[&str],
    field: &str,
    value: impl Fn(&str, &str) -> String,
) -> Vec<String> {
    let mut ids = Vec::new();
    for scope in scopes {
        for sku in skus {
            let product_id: uuid::Uuid =
                sqlx::query_scalar("SELECT id FROM products WHERE sku = $1")
                    .bind(sku)
                    .fetch_one(&app.db)
                    .await
                    .unwrap();
            let (status, proposal) = app
                .post(
                    &format!("/products/{product_id}/versions"),
                    Some(token),
                    json!({"store_view": scope, "fields": {field: value(sku, scope)}}),
                )
                .await;
            assert_eq!(status, 201, "{proposal}");
            ids.push(proposal["id"].as_str().unwrap().to_string());
        }
    }
    for chunk in ids.chunks(1000) {
        let (status, decided) = app
            .post(
                &format!("/stores/{store_id}/proposals/approve"),
                Some(token),
                json!({"ids": chunk}),
            )
            .await;
        assert_eq!(status, 200, "{decided}");
        assert_eq!(decided["decided"].as_array().unwrap().len(), chunk.len());
    }
    ids
}

/// [`approved`] for every product of `shop`, in the default scope and `fr`, with [`value`].
async fn approved_everywhere(shop: &Shop, field: &str) -> Vec<String> {
    let skus = shop.sim.skus();
    let token = &shop.owner.access_token;
    approved(
        &shop.app,
        token,
        &shop.store_id,
        &skus,
        &["all", "fr"],
        field,
        value,
    )
    .await
}

/// The store's product saves by (SKU, store code), in the order received.
fn saves(writes: &[RecordedWrite]) -> BTreeMap<(String, String), Vec<usize>> {
    let mut out: BTreeMap<(String, String), Vec<usize>> = BTreeMap::new();
    for (i, write) in writes.iter().enumerate() {
        let sku = write.body["product"]["sku"].as_str().unwrap().to_string();
        let scope = write.store_code.clone().unwrap_or_default();
        out.entry((sku, scope)).or_default().push(i);
    }
    out
}

/// A connected store of `products` whose bulk API keeps each operation's store view (RabbitMQ).
async fn amqp_shop(products: usize) -> Shop {
    shop_with(SimConfig {
        products,
        queue_mode: magento_sim::QueueMode::Amqp,
        ..SimConfig::default()
    })
    .await
}

/// A connected store of `products` whose bulk API keeps each operation's store view, in an app
/// that runs no worker of its own (the test starts and kills them); with the environment
/// those workers need.
async fn workerless_shop(products: usize, owner: &str) -> (Shop, Vec<(String, String)>) {
    let env = vec![("CATALOGD_JOBS__WORKERS_IN_SERVE".into(), "false".into())];
    let app = TestApp::spawn_with(&[("CATALOGD_JOBS__WORKERS_IN_SERVE", "false")]).await;
    let sim = MagentoSim::start(SimConfig {
        products,
        queue_mode: magento_sim::QueueMode::Amqp,
        ..SimConfig::default()
    })
    .await
    .unwrap();
    let owner = app.register(owner).await;
    let store_id = app.connect_store(&owner, &sim).await;
    let shop = Shop {
        app,
        sim,
        owner,
        store_id,
    };
    (shop, env)
}

/// Asks for a push of every approved proposal and leaves it to the workers: the job's id.
async fn start_push(shop: &Shop, token: &str) -> String {
    let (status, started) = shop
        .app
        .post(
            &format!("/stores/{}/push", shop.store_id),
            Some(token),
            json!({"all_approved": true}),
        )
        .await;
    assert_eq!(status, 202, "{started}");
    started["job_id"].as_str().unwrap().to_string()
}

fn value(sku: &str, scope: &str) -> String {
    format!("Paced {sku} {scope}")
}

/// Every proposal's state.
async fn states(app: &TestApp, ids: &[String]) -> BTreeMap<String, i64> {
    let ids: Vec<uuid::Uuid> = ids.iter().map(|id| id.parse().unwrap()).collect();
    sqlx::query_as::<_, (String, i64)>(
        "SELECT state, count(*) FROM product_versions WHERE id = ANY($1) GROUP BY state",
    )
    .bind(&ids)
    .fetch_all(&app.db)
    .await
    .unwrap()
    .into_iter()
    .collect()
}

fn log_of(job: &Value) -> Vec<String> {
    job["log"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["message"].as_str().unwrap().to_string())
        .collect()
}

/// Checks that the store received exactly one save of `meta_title` per product and scope, a
/// product's store view after its default scope, and shows what was approved.
fn assert_each_field_written_once(sim: &MagentoSim, skus: &[String]) {
    let writes = sim.writes();
    let saves = saves(&writes);
    assert_eq!(saves.len(), skus.len() * 2, "{saves:?}");
    for sku in skus {
        let default = &saves[&(sku.clone(), "all".to_string())];
        let view = &saves[&(sku.clone(), "fr".to_string())];
        assert_eq!(default.len(), 1, "{sku}: the default scope written once");
        assert_eq!(view.len(), 1, "{sku}: the store view written once");
        assert!(
            default[0] < view[0],
            "{sku}: the store view after the default scope"
        );
        let body = &writes[view[0]].body["product"];
        assert_eq!(
            body["custom_attributes"],
            json!([{"attribute_code": "meta_title", "value": value(sku, "fr")}]),
            "only the approved field: {body}"
        );
        for scope in ["all", "fr"] {
            let view = (scope != "all").then_some(scope);
            assert_eq!(
                sim.shown(sku, view, "meta_title"),
                Some(json!(value(sku, scope))),
                "{sku} in {scope}"
            );
        }
    }
}

#[tokio::test]
async fn hundreds_of_proposals_go_side_by_side_each_field_written_once() {
    let shop = shop_with(SimConfig {
        products: 160,
        ..SimConfig::default()
    })
    .await;
    // Each request takes a little while, so that requests overlap.
    shop.sim.set_faults(Faults {
        latency: Duration::from_millis(5),
        ..Faults::default()
    });
    let skus = shop.sim.skus();
    let ids = approved_everywhere(&shop, "meta_title").await;
    assert_eq!(ids.len(), 320);
    shop.sim.reset_stats();
    let job = shop.push(&shop.owner, json!({"all_approved": true})).await;
    let (all, writes) = requests(&shop.sim);
    assert_eq!(job["counters"]["pushed"], 320, "{job}");
    assert_eq!(job["progress"]["done"], 320, "{job}");
    assert_eq!(job["progress"]["total"], 320, "{job}");
    assert_eq!(
        states(&shop.app, &ids).await,
        BTreeMap::from([("pushed".into(), 320)])
    );
    assert_each_field_written_once(&shop.sim, &skus);

    // One save per proposal; the reads before and after go a hundred SKUs at a time: per
    // window of the default scope one before and one after, of the store view two each
    // (its default values too).
    assert_eq!(writes, 320);
    assert_eq!(all - writes, 2 * 2 + 2 * 4, "reads for 320 proposals");
    // Side by side, within the store's max_concurrency (4).
    let in_flight = shop.sim.stats().max_in_flight;
    assert!((2..=4).contains(&in_flight), "{in_flight} requests at once");
    assert!(
        log_of(&job)
            .iter()
            .any(|l| l.contains("320 proposals settled") && l.contains("proposals/s")),
        "{job}"
    );
}

#[tokio::test]
async fn a_conflict_made_in_the_store_after_approval_is_found_by_the_batched_read() {
    let shop = shop_with(SimConfig {
        products: 12,
        ..SimConfig::default()
    })
    .await;
    let skus = shop.sim.skus();
    let token = &shop.owner.access_token;
    let ids = approved(
        &shop.app,
        token,
        &shop.store_id,
        &skus,
        &["all"],
        "meta_title",
        value,
    )
    .await;
    // An admin edits one product's title in the store after the approval.
    let edited = &skus[5];
    assert!(
        shop.sim
            .update_product(edited, None, json!({"meta_title": "Admin's title"}))
    );
    let before = requests(&shop.sim);
    let job = shop.push(&shop.owner, json!({"all_approved": true})).await;
    let after = requests(&shop.sim);
    assert_eq!(job["counters"]["conflict"], 1, "{job}");
    assert_eq!(job["counters"]["pushed"], 11, "{job}");
    // One read of the twelve before, one after (and the writes).
    assert_eq!((after.0 - before.0) - (after.1 - before.1), 2);
    let (state, conflict): (String, Value) = sqlx::query_as(
        "SELECT state, meta -> 'conflict' FROM product_versions WHERE id = $1::uuid",
    )
    .bind(&ids[5])
    .fetch_one(&shop.app.db)
    .await
    .unwrap();
    assert_eq!(state, "conflict");
    assert_eq!(conflict[0]["field"], "meta_title", "{conflict}");
    assert_eq!(conflict[0]["store"], "Admin's title", "{conflict}");
    assert_eq!(conflict[0]["proposal"], value(edited, "all"), "{conflict}");
    let writes = shop.sim.writes();
    assert_eq!(writes.len(), 11);
    assert!(
        writes
            .iter()
            .all(|w| w.body["product"]["sku"] != edited.as_str()),
        "nothing of the conflict was written"
    );
    assert_eq!(
        shop.sim.shown(edited, None, "meta_title"),
        Some(json!("Admin's title"))
    );
}

#[tokio::test]
async fn skus_with_commas_slashes_and_spaces_are_read_alone_or_in_lists_and_pushed() {
    let shop = shop_with(SimConfig {
        products: 6,
        ..SimConfig::default()
    })
    .await;
    let awkward = ["COMMA,1", "SLASH/2", "SPACE 3", "ALL OF/THEM,4"];
    for sku in awkward {
        assert!(shop.sim.create_product(sku, sku));
    }
    shop.app.sync(&shop.owner, &shop.store_id, "full").await;
    let skus = shop.sim.skus();
    assert_eq!(skus.len(), 10);
    approved_everywhere(&shop, "meta_title").await;
    let before = requests(&shop.sim);
    let job = shop.push(&shop.owner, json!({"all_approved": true})).await;
    let after = requests(&shop.sim);
    assert_eq!(job["counters"]["pushed"], 20, "{job}");
    assert_each_field_written_once(&shop.sim, &skus);
    // Per window and scope, one list read and one read of each SKU with a comma, before and
    // after the writes: (1 + 2) × 2 for the default scope, and twice that for the store view,
    // which reads the default values too.
    let reads = (after.0 - before.0) - (after.1 - before.1);
    assert_eq!(reads, 3 * 2 + 3 * 2 * 2, "{reads}");
}

#[tokio::test]
async fn a_storm_on_some_products_leaves_the_others_pushed_and_those_retryable() {
    let shop = shop_with(SimConfig {
        products: 30,
        ..SimConfig::default()
    })
    .await;
    let skus = shop.sim.skus();
    let ids = approved_everywhere(&shop, "meta_title").await;
    let stormy: Vec<String> = [3, 17, 25].iter().map(|i| skus[*i].clone()).collect();
    shop.sim.fail_skus(stormy.clone());
    let job = shop.push(&shop.owner, json!({"all_approved": true})).await;
    // Each stormy product fails in both scopes; every other one is pushed.
    assert_eq!(job["counters"]["failed"], 6, "{job}");
    assert_eq!(job["counters"]["pushed"], 54, "{job}");
    assert!(
        shop.sim
            .writes()
            .iter()
            .all(|w| !stormy.contains(&w.body["product"]["sku"].as_str().unwrap().to_string())),
        "nothing was written to the failing products"
    );
    let failed: Vec<String> = sqlx::query_scalar(
        "SELECT v.id::text FROM product_versions v WHERE v.state = 'failed' ORDER BY v.id",
    )
    .fetch_all(&shop.app.db)
    .await
    .unwrap();
    assert_eq!(failed.len(), 6);
    let error: String = sqlx::query_scalar(
        "SELECT meta ->> 'push_error' FROM product_versions WHERE id = $1::uuid",
    )
    .bind(&failed[0])
    .fetch_one(&shop.app.db)
    .await
    .unwrap();
    assert!(error.contains("503"), "{error}");

    // The storm passes: pushing the failed ones again finishes the work.
    shop.sim.fail_skus(Vec::new());
    let retried = shop.push(&shop.owner, json!({"proposals": failed})).await;
    assert_eq!(retried["counters"]["pushed"], 6, "{retried}");
    assert_eq!(
        states(&shop.app, &ids).await,
        BTreeMap::from([("pushed".into(), 60)])
    );
    assert_each_field_written_once(&shop.sim, &skus);
}

#[tokio::test]
async fn a_worker_killed_in_the_middle_of_a_push_resumes_and_writes_each_field_once() {
    killed_in_the_middle(false).await;
}

/// The same through the bulk API, in bulks of 25: a restart polls the bulks its checkpoint
/// names and plans the pending saves again from what the store shows.
#[tokio::test]
async fn a_worker_killed_in_the_middle_of_a_bulk_push_resumes_and_writes_each_field_once() {
    killed_in_the_middle(true).await;
}

/// Kills the worker once a push of 400 proposals settled 100 of them, starts another, and
/// checks that every field was written exactly once.
async fn killed_in_the_middle(bulk: bool) {
    let (shop, env) = workerless_shop(200, "killed@example.com").await;
    let mut worker = shop.app.start_worker(&env);
    shop.app.sync(&shop.owner, &shop.store_id, "full").await;
    let skus = shop.sim.skus();
    let token = shop.owner.access_token.clone();
    if bulk {
        let (status, store) = shop
            .app
            .call(
                reqwest::Method::PATCH,
                &format!("/stores/{}", shop.store_id),
                Some(&token),
                Some(json!({"push_via_bulk": true, "bulk_max_items": 25})),
            )
            .await;
        assert_eq!(status, 200, "{store}");
    }
    let ids = approved(
        &shop.app,
        &token,
        &shop.store_id,
        &skus,
        &["all", "fr"],
        "meta_title",
        value,
    )
    .await;
    // Slow answers, so that the kill lands with windows at the store.
    shop.sim.set_faults(Faults {
        latency: Duration::from_millis(15),
        ..Faults::default()
    });
    let job_id = start_push(&shop, &token).await;
    let seen = shop.app.wait_for_progress(&token, &job_id, 100).await;
    worker.kill().unwrap();
    worker.wait().unwrap();
    let settled_at_kill = seen["progress"]["done"].as_i64().unwrap();
    assert!(settled_at_kill < 400, "killed before the end: {seen}");
    let written_at_kill = shop.sim.writes().len();

    let mut worker = shop.app.start_worker(&env);
    let job = shop
        .app
        .wait_for_job(&token, &job_id, Duration::from_secs(120))
        .await;
    worker.kill().unwrap();
    worker.wait().unwrap();
    assert_eq!(job["status"], "succeeded", "bulk {bulk}: {job}");
    assert!(
        written_at_kill < 400,
        "writes were left for the second worker"
    );
    assert_eq!(
        states(&shop.app, &ids).await,
        BTreeMap::from([("pushed".into(), 400)])
    );
    let counters = &job["counters"];
    assert_eq!(
        counters["pushed"].as_i64().unwrap() + counters["already_applied"].as_i64().unwrap(),
        400,
        "{job}"
    );
    assert_each_field_written_once(&shop.sim, &skus);
}

/// A bulk push whose checkpoint an earlier version wrote, every planned save's body inline:
/// the job resumes, sends each of those saves once, pushes the rest, and leaves nothing of its
/// planned saves behind.
#[tokio::test]
async fn a_bulk_push_resumes_from_a_checkpoint_with_bodies_inline() {
    let (shop, env) = workerless_shop(6, "resumed@example.com").await;
    let mut worker = shop.app.start_worker(&env);
    shop.app.sync(&shop.owner, &shop.store_id, "full").await;
    worker.kill().unwrap();
    worker.wait().unwrap();
    shop.set_push_via_bulk().await;
    let skus = shop.sim.skus();
    let token = shop.owner.access_token.clone();
    let ids = approved(
        &shop.app,
        &token,
        &shop.store_id,
        &skus,
        &["all"],
        "meta_title",
        value,
    )
    .await;
    let job_id: uuid::Uuid = start_push(&shop, &token).await.parse().unwrap();
    // The first three proposals planned, their saves waiting in the checkpoint itself.
    let params: Value = sqlx::query_scalar("SELECT params FROM job_runs WHERE id = $1")
        .bind(job_id)
        .fetch_one(&shop.app.db)
        .await
        .unwrap();
    let mut pending = Vec::new();
    for id in &params["proposals"].as_array().unwrap()[..3] {
        let sku: String = sqlx::query_scalar(
            "SELECT p.sku FROM product_versions v JOIN products p ON p.id = v.product_id
             WHERE v.id = $1::uuid",
        )
        .bind(id.as_str().unwrap())
        .fetch_one(&shop.app.db)
        .await
        .unwrap();
        pending.push(json!({
            "proposal": id,
            "scope": "all",
            "rounds": 0,
            "body": {"product": {"sku": sku, "custom_attributes": [
                {"attribute_code": "meta_title", "value": value(&sku, "all")}
            ]}},
        }));
    }
    sqlx::query("UPDATE job_runs SET checkpoint = $2 WHERE id = $1")
        .bind(job_id)
        .bind(json!({"next": 3, "pending": pending, "submitted": []}))
        .execute(&shop.app.db)
        .await
        .unwrap();

    let mut worker = shop.app.start_worker(&env);
    let job = shop
        .app
        .wait_for_job(&token, &job_id.to_string(), Duration::from_secs(60))
        .await;
    worker.kill().unwrap();
    worker.wait().unwrap();
    assert_eq!(job["status"], "succeeded", "{job}");
    assert_eq!(job["counters"]["pushed"], 6, "{job}");
    assert_eq!(
        states(&shop.app, &ids).await,
        BTreeMap::from([("pushed".into(), 6)])
    );
    let saves = saves(&shop.sim.writes());
    for sku in &skus {
        assert_eq!(saves[&(sku.clone(), "all".to_string())].len(), 1, "{sku}");
        assert_eq!(
            shop.sim.shown(sku, None, "meta_title"),
            Some(json!(value(sku, "all"))),
            "{sku}"
        );
    }
    let left: i64 = sqlx::query_scalar("SELECT count(*) FROM push_bulk_saves WHERE job_id = $1")
        .bind(job_id)
        .fetch_one(&shop.app.db)
        .await
        .unwrap();
    assert_eq!(left, 0, "a finished push keeps none of its planned saves");
}

#[tokio::test]
async fn a_bulk_push_reads_in_lists_and_fills_bulks_up_to_the_stores_maximum() {
    let shop = amqp_shop(12).await;
    let token = &shop.owner.access_token;
    let path = format!("/stores/{}", shop.store_id);
    for refused in [0, 5001] {
        let (status, answer) = shop
            .app
            .call(
                reqwest::Method::PATCH,
                &path,
                Some(token),
                Some(json!({"bulk_max_items": refused})),
            )
            .await;
        assert_eq!(status, 422, "{answer}");
        assert!(answer.to_string().contains("bulk_max_items"), "{answer}");
    }
    let (status, store) = shop
        .app
        .call(
            reqwest::Method::PATCH,
            &path,
            Some(token),
            Some(json!({"push_via_bulk": true, "bulk_max_items": 5})),
        )
        .await;
    assert_eq!(status, 200, "{store}");
    assert_eq!(store["bulk_max_items"], 5, "{store}");
    let skus = shop.sim.skus();
    approved_everywhere(&shop, "meta_title").await;
    shop.sim.reset_stats();
    let job = shop.push(&shop.owner, json!({"all_approved": true})).await;
    let (all, write_requests) = requests(&shop.sim);
    assert_eq!(job["counters"]["pushed"], 24, "{job}");
    // Per scope a canary of one save first (the store's bulk scopes are not known yet), then
    // the eleven other saves in bulks of at most five.
    assert_eq!(job["counters"]["canaries"], 2, "{job}");
    assert_eq!(job["counters"]["bulks"], 8, "{job}");
    assert_eq!(write_requests, 8);
    let writes = shop.sim.writes();
    assert!(
        writes
            .iter()
            .all(|w| w.path.contains("/async/bulk/V1/products/bySku")),
        "{writes:?}"
    );
    assert_each_field_written_once(&shop.sim, &skus);
    // The default scope first: its products read once in it and in the default store view,
    // the canary and each of the three bulks after it polled once and read back the same way.
    // Then the French view: read once in it, the default values and the default store view,
    // the canary and each bulk polled once and read back in those three scopes.
    assert_eq!(
        all - write_requests,
        (2 + (1 + 2) + 3 + 3 * 2) + (3 + (1 + 3) + 3 + 3 * 3)
    );
    let left: i64 = sqlx::query_scalar("SELECT count(*) FROM push_bulk_saves")
        .fetch_one(&shop.app.db)
        .await
        .unwrap();
    assert_eq!(left, 0, "a finished push keeps none of its planned saves");
}

/// A field the store view inherits (its live version overrides others, not this one), changed
/// by approved proposals in the default scope and in the view, pushed in one job: the view
/// shows the default's new value by the time its own write is planned — a change made by this
/// push, not behind catalogd's back — so both are pushed, directly and through the bulk API.
#[tokio::test]
async fn a_view_inheriting_a_field_the_same_push_changes_in_the_default_is_no_conflict() {
    for bulk in [false, true] {
        let shop = amqp_shop(8).await;
        let skus = shop.sim.skus();
        let overriding: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM product_live l JOIN product_versions v ON v.id = l.version_id
             WHERE l.store_view = 'fr' AND NOT v.content->'fields' ? 'meta_keyword'",
        )
        .fetch_one(&shop.app.db)
        .await
        .unwrap();
        assert!(
            overriding > 0,
            "some store-view versions leave meta_keyword inherited"
        );
        if bulk {
            shop.set_push_via_bulk().await;
        }
        let ids = approved_everywhere(&shop, "meta_keyword").await;
        let job = shop.push(&shop.owner, json!({"all_approved": true})).await;
        assert_eq!(job["counters"]["pushed"], 16, "bulk {bulk}: {job}");
        assert_eq!(
            states(&shop.app, &ids).await,
            BTreeMap::from([("pushed".into(), 16)]),
            "bulk {bulk}"
        );
        for sku in &skus {
            for scope in ["all", "fr"] {
                let view = (scope != "all").then_some(scope);
                assert_eq!(
                    shop.sim.shown(sku, view, "meta_keyword"),
                    Some(json!(value(sku, scope))),
                    "bulk {bulk}: {sku} in {scope}"
                );
            }
        }
    }
}
