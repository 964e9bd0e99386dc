//! Enrichment through HTTP providers, against the loopback OpenAI/Anthropic fake: proposals
//! end to end, what is (never) sent, repair, spend limits, budgets, alt text from mirrored
//! pictures, and scheduled runs through the batch API.

use std::time::Duration;

use ai::fake::{FakeServer, Scripted};
use magento_sim::{MagentoSim, SimConfig};
use serde_json::{Value, json};

use crate::helpers::{Registered, TestApp};

/// An app whose provider `openai` (kind `openai`) is the fake, plus `extra` settings.
async fn app_with_fake(fake: &FakeServer, extra: &[(&str, &str)]) -> TestApp {
    let base = fake.base_url();
    let mut env: Vec<(&str, &str)> = vec![
        ("CATALOGD_AI__PROVIDERS__OPENAI__KIND", "openai"),
        ("CATALOGD_AI__PROVIDERS__OPENAI__BASE_URL", &base),
        ("CATALOGD_AI__PROVIDERS__OPENAI__API_KEY", "sk-fake-key"),
        ("CATALOGD_AI__PROVIDERS__OPENAI__MODEL", "gpt-fake"),
        ("CATALOGD_AI__PROVIDERS__OPENAI__RPM", "6000"),
        ("CATALOGD_AI__PROVIDERS__OPENAI__MAX_CONCURRENCY", "4"),
    ];
    env.extend_from_slice(extra);
    TestApp::spawn_with(&env).await
}

async fn store(app: &TestApp, products: usize, extra: Value) -> (MagentoSim, Registered, String) {
    let sim = MagentoSim::start(SimConfig {
        products,
        ..SimConfig::default()
    })
    .await
    .expect("simulator starts");
    let owner = app.register("shop@example.com").await;
    let mut body = json!({"rate_limit": {"requests_per_second": 200, "max_concurrency": 4}});
    for (k, v) in extra.as_object().into_iter().flatten() {
        body[k] = v.clone();
    }
    let created = app.connect_store_with(&owner, &sim, body).await;
    let store_id = created["id"].as_str().expect("store created").to_string();
    app.sync(&owner, &store_id, "full").await;
    (sim, owner, store_id)
}

async fn enrich(app: &TestApp, who: &Registered, store_id: &str, body: Value) -> Value {
    let (status, started) = app
        .post(
            &format!("/stores/{store_id}/enrich"),
            Some(&who.access_token),
            body,
        )
        .await;
    assert_eq!(status, 202, "{started}");
    app.wait_for_job(
        &who.access_token,
        started["job_id"].as_str().unwrap(),
        Duration::from_secs(90),
    )
    .await
}

async fn proposals(app: &TestApp, who: &Registered, store_id: &str) -> Vec<Value> {
    let (_, body) = app
        .get(
            &format!("/stores/{store_id}/proposals?origin=ai&limit=200"),
            &who.access_token,
        )
        .await;
    body["items"].as_array().unwrap().clone()
}

#[tokio::test]
async fn an_openai_provider_creates_sanitised_proposals_with_model_and_prompt_versions() {
    let fake = FakeServer::start().await;
    let app = app_with_fake(&fake, &[]).await;
    let (_sim, owner, store_id) = store(&app, 12, json!({})).await;
    let job = enrich(
        &app,
        &owner,
        &store_id,
        json!({"provider": "openai", "fields": ["meta_title", "meta_description", "description"],
               "store_views": ["all", "fr"]}),
    )
    .await;
    assert_eq!(job["status"], "succeeded", "{job}");
    assert_eq!(job["counters"]["requests"], 24, "{job}");
    assert_eq!(job["counters"]["failed"], 0, "{job}");
    let items = proposals(&app, &owner, &store_id).await;
    assert!(!items.is_empty());
    for item in &items {
        assert_eq!(item["meta"]["provider"], "openai", "{item}");
        assert_eq!(item["meta"]["model"], "gpt-fake");
        let version = item["meta"]["prompt_version"].as_str().unwrap();
        assert!(
            version.contains("meta_title.v1") && version.contains("system.v1"),
            "{version}"
        );
        assert!(item["meta"]["usage"]["input_tokens"].as_u64().unwrap() > 0);
        if let Some(description) = item["content"]["fields"]["description"].as_str() {
            assert!(
                !description.contains("script") && !description.contains("onclick"),
                "{description}"
            );
            assert!(
                description.contains("<strong>made to last</strong>"),
                "{description}"
            );
        }
    }
    // Every request asked the provider not to store it, carried the key, and wrote French
    // for the French store view.
    let sent = fake.generation_requests();
    assert_eq!(sent.len(), 24);
    assert!(sent.iter().all(|r| r.body["store"] == false));
    assert!(
        sent.iter()
            .all(|r| r.headers["authorization"] == "Bearer sk-fake-key")
    );
    assert_eq!(sent.iter().filter(|r| r.raw.contains("French")).count(), 12);
    // The usage is recorded under the provider's configured name and model.
    let (_, usage) = app
        .get(
            &format!("/workspaces/{}/usage", owner.workspace_id),
            &owner.access_token,
        )
        .await;
    assert_eq!(usage["items"][0]["provider"], "openai", "{usage}");
    assert_eq!(usage["items"][0]["model"], "gpt-fake");
    assert_eq!(usage["items"][0]["requests"], 24);
}

#[tokio::test]
async fn forbidden_fields_never_reach_the_provider() {
    let fake = FakeServer::start().await;
    let app = app_with_fake(&fake, &[]).await;
    let (sim, owner, store_id) = store(
        &app,
        6,
        json!({"content_attributes": ["material", "cost_price", "supplier_note"]}),
    )
    .await;
    // Every product has a price, a cost, stock, a customer and an internal note; the store
    // even marks two of them as content.
    sqlx::query(
        "UPDATE products SET attributes = attributes || jsonb_build_object(
            'price', 987.65, 'cost', 123.45, 'qty', 4321, 'quantity_and_stock_status', 'in stock 4321',
            'customer_email', 'buyer@example.org', 'notes', 'INTERNAL-NOTE-xyz')",
    )
    .execute(&app.db)
    .await
    .unwrap();
    sqlx::query(
        "UPDATE product_versions SET content = jsonb_set(content, '{fields}', (content -> 'fields') ||
            jsonb_build_object('material', 'stoneware clay', 'cost_price', '55.55',
                               'supplier_note', 'INTERNAL-NOTE-abc'))
         WHERE store_view = 'all'",
    )
    .execute(&app.db)
    .await
    .unwrap();
    sqlx::query(
        "UPDATE product_versions SET note = 'INTERNAL-NOTE-version' WHERE store_view = 'all'",
    )
    .execute(&app.db)
    .await
    .unwrap();
    let job = enrich(
        &app,
        &owner,
        &store_id,
        json!({"provider": "openai", "fields": ["description", "short_description", "meta_title",
               "meta_description", "meta_keyword"]}),
    )
    .await;
    assert_eq!(job["status"], "succeeded", "{job}");
    let sent = fake.requests();
    assert_eq!(sent.len(), 6);
    let credentials = sim.credentials();
    for request in &sent {
        let body = &request.raw;
        assert!(
            body.contains("stoneware clay"),
            "descriptive attributes are sent: {body}"
        );
        for forbidden in [
            "987.65",
            "123.45",
            "4321",
            "55.55",
            "buyer@example.org",
            "INTERNAL-NOTE",
            "cost_price",
            "supplier_note",
            "\"price\"",
            "\"qty\"",
            "customer_email",
            credentials.consumer_secret.as_str(),
            credentials.access_token.as_str(),
            credentials.access_token_secret.as_str(),
        ] {
            assert!(!body.contains(forbidden), "{forbidden:?} was sent: {body}");
        }
    }
}

#[tokio::test]
async fn with_ai_processing_off_nothing_is_sent_even_by_a_queued_job() {
    let fake = FakeServer::start().await;
    let app = app_with_fake(&fake, &[]).await;
    let (_sim, owner, store_id) = store(&app, 5, json!({})).await;
    let (status, _) = app
        .call(
            reqwest::Method::PUT,
            &format!("/workspaces/{}/settings", owner.workspace_id),
            Some(&owner.access_token),
            Some(json!({"ai_processing": false})),
        )
        .await;
    assert_eq!(status, 200);
    let (status, refused) = app
        .post(
            &format!("/stores/{store_id}/enrich"),
            Some(&owner.access_token),
            json!({"provider": "openai"}),
        )
        .await;
    assert_eq!(status, 409, "{refused}");
    // A job queued before the switch (a schedule's step, say) fails without sending.
    let mut tx = app.db.begin().await.unwrap();
    let job_id = catalogd::jobs::enqueue(
        &mut tx,
        catalogd::jobs::NewJob {
            workspace_id: owner.workspace_id,
            store_id: Some(store_id.parse().unwrap()),
            kind: catalogd::jobs::JobKind::Enrich,
            params: json!({"fields": ["meta_title"], "store_views": ["all"], "provider": "openai"}),
            created_by: None,
            created_by_api_key: None,
            schedule_tick: None,
        },
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    let job = app
        .wait_for_job(
            &owner.access_token,
            &job_id.to_string(),
            Duration::from_secs(30),
        )
        .await;
    assert_eq!(job["status"], "failed", "{job}");
    assert!(
        job["error"].as_str().unwrap().contains("nothing was sent"),
        "{job}"
    );
    assert_eq!(fake.request_count(), 0);
}

#[tokio::test]
async fn invalid_json_is_repaired_once_or_the_item_fails_and_the_job_goes_on() {
    let fake = FakeServer::start().await;
    let app = app_with_fake(&fake, &[]).await;
    let (_sim, owner, store_id) = store(&app, 3, json!({})).await;
    let (_, products) = app
        .get(&format!("/stores/{store_id}/products"), &owner.access_token)
        .await;
    let first = products["items"][0]["id"].as_str().unwrap().to_string();
    fake.script([Scripted::InvalidJson]);
    let job = enrich(
        &app,
        &owner,
        &store_id,
        json!({"provider": "openai", "products": [first], "fields": ["meta_title"]}),
    )
    .await;
    assert_eq!(job["counters"]["proposals"], 1, "{job}");
    assert_eq!(job["counters"]["failed"], 0, "{job}");
    assert_eq!(fake.generation_requests().len(), 2);

    fake.script([Scripted::InvalidJson, Scripted::InvalidJson]);
    let job = enrich(
        &app,
        &owner,
        &store_id,
        json!({"provider": "openai", "products": [first], "fields": ["meta_description"]}),
    )
    .await;
    assert_eq!(job["status"], "succeeded", "{job}");
    assert_eq!(job["counters"]["failed"], 1, "{job}");
    assert_eq!(job["counters"]["proposals"], 0, "{job}");
    assert_eq!(fake.generation_requests().len(), 4);
    // Both attempts' tokens are recorded all the same.
    assert_eq!(job["counters"]["output_tokens"], 40, "{job}");
    let log: Vec<String> = job["log"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["message"].as_str().unwrap().to_string())
        .collect();
    assert!(log.iter().any(|l| l.contains("not valid")), "{log:?}");
}

#[tokio::test]
async fn a_spend_limit_stops_the_job_with_the_providers_message() {
    let fake = FakeServer::start().await;
    let app = app_with_fake(
        &fake,
        &[("CATALOGD_AI__PROVIDERS__OPENAI__MAX_CONCURRENCY", "1")],
    )
    .await;
    let (_sim, owner, store_id) = store(&app, 20, json!({})).await;
    fake.script([
        Scripted::Reply(Value::Null),
        Scripted::ServerError,
        Scripted::SpendLimit,
    ]);
    let job = enrich(
        &app,
        &owner,
        &store_id,
        json!({"provider": "openai", "fields": ["meta_title"]}),
    )
    .await;
    assert_eq!(job["status"], "failed", "{job}");
    let error = job["error"].as_str().unwrap();
    assert!(
        error.contains("spend limit") && error.contains("quota"),
        "{error}"
    );
    let sent = fake.generation_requests().len();
    assert!(sent < 6, "the job stopped sending: {sent} requests");
    assert!(job["progress"]["done"].as_i64().unwrap() < 20, "{job}");
}

#[tokio::test]
async fn budgets_stop_remote_jobs_before_sending_what_would_exceed_them() {
    let fake = FakeServer::start().await;
    let app = app_with_fake(&fake, &[]).await;
    let (_sim, owner, store_id) = store(&app, 30, json!({})).await;
    let (status, _) = app
        .call(
            reqwest::Method::PUT,
            &format!("/workspaces/{}/settings", owner.workspace_id),
            Some(&owner.access_token),
            Some(json!({"daily_token_budget": 3000})),
        )
        .await;
    assert_eq!(status, 200);
    let job = enrich(
        &app,
        &owner,
        &store_id,
        json!({"provider": "openai", "fields": ["meta_title", "meta_description"]}),
    )
    .await;
    assert_eq!(job["status"], "succeeded", "{job}");
    assert_eq!(job["counters"]["budget_reached"], 1, "{job}");
    let done = job["progress"]["done"].as_i64().unwrap();
    assert!(done > 0 && done < 30, "{job}");
    assert!(fake.generation_requests().len() < 30);
    let (_, usage) = app
        .get(
            &format!("/workspaces/{}/usage", owner.workspace_id),
            &owner.access_token,
        )
        .await;
    assert!(usage["used_today"].as_i64().unwrap() <= 3000, "{usage}");
}

#[tokio::test]
async fn unknown_providers_are_refused_by_name() {
    let fake = FakeServer::start().await;
    let app = app_with_fake(&fake, &[]).await;
    let (_sim, owner, store_id) = store(&app, 2, json!({})).await;
    let (status, body) = app
        .post(
            &format!("/stores/{store_id}/enrich"),
            Some(&owner.access_token),
            json!({"provider": "mistral"}),
        )
        .await;
    assert_eq!(status, 422, "{body}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("mistral") && message.contains("openai, rules"),
        "{message}"
    );
}

#[tokio::test]
async fn alt_text_sends_the_mirrored_picture_and_the_name_per_store_view() {
    let fake = FakeServer::start().await;
    let app = app_with_fake(&fake, &[]).await;
    let (_sim, owner, store_id) = store(&app, 4, json!({})).await;
    // Pictures without alt text.
    sqlx::query(
        "UPDATE product_versions SET content = jsonb_set(content, '{media}',
            (SELECT jsonb_agg(m - 'label') FROM jsonb_array_elements(content -> 'media') m))
         WHERE store_view = 'all' AND jsonb_array_length(coalesce(content -> 'media', '[]')) > 0",
    )
    .execute(&app.db)
    .await
    .unwrap();
    let (status, started) = app
        .post(
            &format!("/stores/{store_id}/media"),
            Some(&owner.access_token),
            json!({}),
        )
        .await;
    assert_eq!(status, 202, "{started}");
    app.wait_for_job(
        &owner.access_token,
        started["job_id"].as_str().unwrap(),
        Duration::from_secs(60),
    )
    .await;
    let unlabeled: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM product_live l JOIN product_versions v ON v.id = l.version_id,
                jsonb_array_elements(coalesce(v.content -> 'media', '[]'::jsonb)) m
         WHERE l.store_view = 'all' AND coalesce(m ->> 'label', '') = '' AND NOT coalesce((m ->> 'disabled')::boolean, false)",
    )
    .fetch_one(&app.db)
    .await
    .unwrap();
    assert!(unlabeled > 0);
    let job = enrich(
        &app,
        &owner,
        &store_id,
        json!({"provider": "openai", "fields": ["alt_text"], "store_views": ["all", "de"]}),
    )
    .await;
    assert_eq!(job["status"], "succeeded", "{job}");
    let sent = fake.generation_requests();
    assert_eq!(sent.len() as i64, unlabeled * 2, "{job}");
    for request in &sent {
        let content = &request.body["messages"][1]["content"];
        let url = content[1]["image_url"]["url"].as_str().unwrap();
        assert!(url.starts_with("data:image/"), "{url}");
        let text = content[0]["text"].as_str().unwrap();
        let facts = text
            .split("Product facts (JSON):\n")
            .nth(1)
            .and_then(|rest| rest.lines().next())
            .unwrap();
        let facts: Value = serde_json::from_str(facts).unwrap();
        let keys: Vec<&String> = facts.as_object().unwrap().keys().collect();
        assert_eq!(keys, ["name"], "only the name goes with a picture: {facts}");
    }
    assert_eq!(
        sent.iter().filter(|r| r.raw.contains("German")).count() as i64,
        unlabeled
    );
    let items = proposals(&app, &owner, &store_id).await;
    assert!(!items.is_empty());
    for item in items.iter().filter(|i| i["store_view"] == "all") {
        let labels: Vec<&Value> = item["content"]["media"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| &m["label"])
            .collect();
        assert!(
            labels.contains(&&json!("The product seen from the front")),
            "{item}"
        );
    }
}

#[tokio::test]
async fn scheduled_enrichment_goes_through_the_batch_api_and_keeps_the_handle() {
    let fake = FakeServer::start().await;
    let app = app_with_fake(
        &fake,
        &[
            ("CATALOGD_AI__PROVIDERS__OPENAI__BATCH", "true"),
            ("CATALOGD_AI__PROVIDERS__OPENAI__BATCH_POLL_SECS", "1"),
            ("CATALOGD_AI__DEFAULT_PROVIDER", "openai"),
        ],
    )
    .await;
    let (_sim, owner, store_id) = store(&app, 8, json!({})).await;
    fake.script([Scripted::InvalidJson]);
    // What a schedule's enrich step queues: the default provider, `scheduled`.
    let mut tx = app.db.begin().await.unwrap();
    let job_id = catalogd::jobs::enqueue(
        &mut tx,
        catalogd::jobs::NewJob {
            workspace_id: owner.workspace_id,
            store_id: Some(store_id.parse().unwrap()),
            kind: catalogd::jobs::JobKind::Enrich,
            params: json!({"fields": ["meta_title"], "store_views": ["all"], "provider": "",
                           "scheduled": true}),
            created_by: None,
            created_by_api_key: None,
            schedule_tick: None,
        },
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    // While the batch runs, its handle is in the job's checkpoint.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let handle = loop {
        let checkpoint: Option<Value> =
            sqlx::query_scalar("SELECT checkpoint FROM job_runs WHERE id = $1")
                .bind(job_id)
                .fetch_one(&app.db)
                .await
                .unwrap();
        if let Some(batch) = checkpoint.as_ref().and_then(|c| c.get("batch")) {
            break batch["handle"].clone();
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no batch in the checkpoint"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(
        handle["id"].as_str().unwrap().starts_with("batch_"),
        "{handle}"
    );
    assert_eq!(handle["items"].as_object().unwrap().len(), 8);
    let job = app
        .wait_for_job(
            &owner.access_token,
            &job_id.to_string(),
            Duration::from_secs(60),
        )
        .await;
    assert_eq!(job["status"], "succeeded", "{job}");
    assert_eq!(job["counters"]["batches"], 1, "{job}");
    assert_eq!(job["counters"]["proposals"], 8, "{job}");
    assert_eq!(
        job["counters"]["failed"], 0,
        "the invalid answer was repaired: {job}"
    );
    let paths: Vec<String> = fake.requests().iter().map(|r| r.path.clone()).collect();
    assert!(paths.contains(&"/v1/files".to_string()), "{paths:?}");
    assert!(paths.contains(&"/v1/batches".to_string()), "{paths:?}");
    // One direct request: the repair of the invalid batch answer.
    assert_eq!(fake.generation_requests().len(), 1, "{paths:?}");
    let checkpoint: Value = sqlx::query_scalar("SELECT checkpoint FROM job_runs WHERE id = $1")
        .bind(job_id)
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert!(checkpoint.get("batch").is_none(), "{checkpoint}");
}

/// A daemon restarted while a batch runs finds the batch's handle in the job's checkpoint and
/// polls that batch instead of submitting another: here the "previous process" is this test,
/// which submitted the batch and recorded the checkpoint the job would have saved.
#[tokio::test]
async fn a_resumed_job_polls_the_batch_in_its_checkpoint_instead_of_submitting_again() {
    let fake = FakeServer::start().await;
    let app = app_with_fake(
        &fake,
        &[
            ("CATALOGD_AI__PROVIDERS__OPENAI__BATCH", "true"),
            ("CATALOGD_AI__PROVIDERS__OPENAI__BATCH_POLL_SECS", "1"),
        ],
    )
    .await;
    let (_sim, owner, store_id) = store(&app, 5, json!({})).await;
    let ids: Vec<uuid::Uuid> =
        sqlx::query_scalar("SELECT id FROM products WHERE store_id = $1 ORDER BY id")
            .bind(store_id.parse::<uuid::Uuid>().unwrap())
            .fetch_all(&app.db)
            .await
            .unwrap();
    let mut config = ai::ProviderConfig::new(ai::ProviderKind::Openai);
    config.base_url = Some(fake.base_url());
    config.api_key = Some("sk-fake-key".into());
    config.model = Some("gpt-fake".into());
    config.egress = egress::Policy::allowing_loopback();
    let provider = ai::build(
        "openai",
        config,
        std::sync::Arc::new(ai::Prompts::builtin()),
    )
    .unwrap();
    let items: Vec<(String, ai::Request)> = ids
        .iter()
        .map(|id| {
            (
                format!("{}_0_t", id.simple()),
                ai::RequestBuilder::text("en", &[ai::Task::MetaTitle])
                    .name("x")
                    .build(),
            )
        })
        .collect();
    let handle = provider.submit_batch(&items).await.unwrap();
    let mut tx = app.db.begin().await.unwrap();
    let job_id = catalogd::jobs::enqueue(
        &mut tx,
        catalogd::jobs::NewJob {
            workspace_id: owner.workspace_id,
            store_id: Some(store_id.parse().unwrap()),
            kind: catalogd::jobs::JobKind::Enrich,
            params: json!({"fields": ["meta_title"], "store_views": ["all"], "provider": "openai",
                           "scheduled": true}),
            created_by: None,
            created_by_api_key: None,
            schedule_tick: None,
        },
    )
    .await
    .unwrap();
    sqlx::query("UPDATE job_runs SET checkpoint = $2 WHERE id = $1")
        .bind(job_id)
        .bind(
            json!({"after": null, "batch": {"handle": handle, "last": ids.last().unwrap(),
                                              "products": ids.len()}}),
        )
        .execute(&mut *tx)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let job = app
        .wait_for_job(
            &owner.access_token,
            &job_id.to_string(),
            Duration::from_secs(60),
        )
        .await;
    assert_eq!(job["status"], "succeeded", "{job}");
    assert_eq!(job["counters"]["proposals"], 5, "{job}");
    assert_eq!(job["progress"]["done"], 5, "{job}");
    let submitted = fake
        .requests()
        .iter()
        .filter(|r| r.method == "POST" && r.path == "/v1/batches")
        .count();
    assert_eq!(submitted, 1, "the resumed job submitted nothing new");
}
