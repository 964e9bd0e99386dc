//! Enrichment with the offline `rules` provider: proposals per scope and language, the audit
//! loop (flagged content only, approve, push, better score), usage, budgets and the off switch.

use std::time::Duration;

use magento_sim::{MagentoSim, SimConfig};
use serde_json::{Value, json};

use crate::helpers::{Registered, TestApp};

async fn setup(products: usize) -> (TestApp, MagentoSim, Registered, String) {
    let app = TestApp::spawn().await;
    let sim = MagentoSim::start(SimConfig {
        products,
        ..SimConfig::default()
    })
    .await
    .expect("simulator starts");
    let owner = app.register("shop@example.com").await;
    let store_id = app.connect_store(&owner, &sim).await;
    app.sync(&owner, &store_id, "full").await;
    (app, sim, owner, store_id)
}

async fn run_job(app: &TestApp, who: &Registered, path: &str, body: Value) -> Value {
    let (_, job) = app.run_job(path, &who.access_token, body).await;
    job
}

async fn audit(app: &TestApp, who: &Registered, store_id: &str) -> Value {
    let (_, started) = app
        .post(
            &format!("/stores/{store_id}/audits"),
            Some(&who.access_token),
            json!({}),
        )
        .await;
    app.wait_for_job(
        &who.access_token,
        started["job_id"].as_str().unwrap(),
        Duration::from_secs(60),
    )
    .await;
    let (_, run) = app
        .get(
            &format!("/audits/{}", started["audit_id"].as_str().unwrap()),
            &who.access_token,
        )
        .await;
    run
}

#[tokio::test]
async fn enrichment_proposes_content_per_scope_in_its_language_and_records_usage() {
    let (app, sim, owner, store_id) = setup(40).await;
    audit(&app, &owner, &store_id).await;
    let flagged: Vec<String> = sim
        .planted_flaws()
        .into_iter()
        .filter(|f| f.kind == "missing_meta_title")
        .map(|f| f.sku)
        .collect();
    assert!(!flagged.is_empty());

    let job = run_job(
        &app,
        &owner,
        &format!("/stores/{store_id}/enrich"),
        json!({"filter": {"findings": ["missing_meta_title"]}, "fields": ["meta_title"]}),
    )
    .await;
    assert_eq!(job["kind"], "enrich");
    assert_eq!(job["counters"]["proposals"], flagged.len(), "{job}");
    let (_, proposals) = app
        .get(
            &format!("/stores/{store_id}/proposals?origin=ai&limit=200"),
            &owner.access_token,
        )
        .await;
    let items = proposals["items"].as_array().unwrap();
    assert_eq!(items.len(), flagged.len());
    for item in items {
        assert!(flagged.contains(&item["sku"].as_str().unwrap().to_string()));
        assert_eq!(item["meta"]["provider"], "rules");
        assert_eq!(item["changes"][0]["field"], "meta_title");
        let title = item["changes"][0]["to"].as_str().unwrap();
        assert!(!title.is_empty() && title.chars().count() <= 60, "{title}");
    }

    // A French store view gets French copy, stored as the view's own override.
    let product_id = items[0]["product_id"].as_str().unwrap();
    run_job(
        &app,
        &owner,
        &format!("/stores/{store_id}/enrich"),
        json!({"products": [product_id], "fields": ["meta_description"], "store_views": ["fr"]}),
    )
    .await;
    let (_, french) = app
        .get(
            &format!("/stores/{store_id}/proposals?origin=ai&store_view=fr"),
            &owner.access_token,
        )
        .await;
    let item = &french["items"][0];
    let text = item["content"]["fields"]["meta_description"]
        .as_str()
        .unwrap();
    assert!(text.to_lowercase().contains("livraison rapide"), "{text}");
    let changes = item["changes"].as_array().unwrap();
    assert_eq!(changes.len(), 1, "{item}");
    assert_eq!(changes[0]["field"], "meta_description");

    let (status, usage) = app
        .get(
            &format!("/workspaces/{}/usage", owner.workspace_id),
            &owner.access_token,
        )
        .await;
    assert_eq!(status, 200, "{usage}");
    assert_eq!(usage["items"][0]["provider"], "rules");
    assert_eq!(
        usage["items"][0]["requests"].as_i64().unwrap(),
        flagged.len() as i64 + 1
    );
    assert!(usage["used_today"].as_i64().unwrap() > 0);

    // A dry run counts and estimates, and writes nothing.
    let (status, estimate) = app
        .post(
            &format!("/stores/{store_id}/enrich"),
            Some(&owner.access_token),
            json!({"store_views": ["all", "fr", "de"], "dry_run": true}),
        )
        .await;
    assert_eq!(status, 200, "{estimate}");
    assert_eq!(estimate["products"], 40);
    assert_eq!(estimate["items"], 120);
    assert!(estimate["estimated_tokens"].as_i64().unwrap() > 0);
    let (_, after) = app
        .get(
            &format!("/stores/{store_id}/proposals?origin=ai&limit=200"),
            &owner.access_token,
        )
        .await;
    assert_eq!(
        after["items"].as_array().unwrap().len(),
        items.len() + 1,
        "the dry run added nothing"
    );
}

#[tokio::test]
async fn the_audit_loop_regenerates_flagged_content_and_a_pushed_approval_raises_the_score() {
    let (app, _sim, owner, store_id) = setup(60).await;
    let before = audit(&app, &owner, &store_id).await;
    let job = run_job(
        &app,
        &owner,
        &format!("/stores/{store_id}/enrich"),
        json!({"filter": {"only_flagged": true}, "fields": ["meta_title", "meta_description", "alt_text"],
               "store_views": ["all"]}),
    )
    .await;
    assert!(job["counters"]["proposals"].as_i64().unwrap() > 0, "{job}");
    // Only flagged fields were regenerated: every proposal changes flagged fields only.
    let (_, proposals) = app
        .get(
            &format!("/stores/{store_id}/proposals?origin=ai&limit=200"),
            &owner.access_token,
        )
        .await;
    for item in proposals["items"].as_array().unwrap() {
        for change in item["changes"].as_array().unwrap() {
            let field = change["field"].as_str().unwrap();
            assert!(
                field == "meta_title" || field == "meta_description",
                "{item}"
            );
        }
    }
    let (status, approved) = app
        .post(
            &format!("/stores/{store_id}/proposals/approve"),
            Some(&owner.access_token),
            json!({"filter": {"origin": "ai"}}),
        )
        .await;
    assert_eq!(status, 200, "{approved}");
    assert!(
        approved["skipped"].as_array().unwrap().is_empty(),
        "{approved}"
    );
    let push = run_job(
        &app,
        &owner,
        &format!("/stores/{store_id}/push"),
        json!({"all_approved": true}),
    )
    .await;
    assert_eq!(push["counters"]["failed"], 0, "{push}");
    assert_eq!(push["counters"]["conflict"], 0, "{push}");
    let after = audit(&app, &owner, &store_id).await;
    assert!(
        after["score"].as_f64().unwrap() > before["score"].as_f64().unwrap(),
        "{before} {after}"
    );
    let fixed = &after["comparison"]["by_rule"];
    assert!(
        fixed["missing_meta_title"]["fixed"].as_i64().unwrap() > 0,
        "{fixed}"
    );
    assert!(
        fixed["missing_alt_text"]["fixed"].as_i64().unwrap() > 0,
        "{fixed}"
    );
    // New default text that store views in other languages inherit is (rightly) reported
    // as untranslated there; nothing else is new.
    assert_eq!(
        after["comparison"]["new"], after["comparison"]["by_rule"]["untranslated"]["new"],
        "{after}"
    );
}

#[tokio::test]
async fn the_off_switch_sends_nothing_and_budgets_stop_jobs() {
    let (app, _sim, owner, store_id) = setup(30).await;
    let settings = |body: Value| {
        let app = &app;
        let owner = &owner;
        async move {
            let (status, body) = app
                .call(
                    reqwest::Method::PUT,
                    &format!("/workspaces/{}/settings", owner.workspace_id),
                    Some(&owner.access_token),
                    Some(body),
                )
                .await;
            assert_eq!(status, 200, "{body}");
        }
    };
    settings(json!({"ai_processing": false})).await;
    let (status, refused) = app
        .post(
            &format!("/stores/{store_id}/enrich"),
            Some(&owner.access_token),
            json!({}),
        )
        .await;
    assert_eq!(status, 409, "{refused}");
    assert!(
        refused["error"]["message"]
            .as_str()
            .unwrap()
            .contains("ai_processing")
    );
    let (_, jobs) = app
        .get(
            &format!("/workspaces/{}/jobs?kind=enrich", owner.workspace_id),
            &owner.access_token,
        )
        .await;
    assert!(jobs["items"].as_array().unwrap().is_empty());

    settings(json!({"ai_processing": true, "daily_token_budget": 200})).await;
    let job = run_job(
        &app,
        &owner,
        &format!("/stores/{store_id}/enrich"),
        json!({"fields": ["meta_title", "meta_description", "meta_keyword"]}),
    )
    .await;
    assert_eq!(job["counters"]["budget_reached"], 1, "{job}");
    let done = job["progress"]["done"].as_i64().unwrap();
    assert!(done > 0 && done < 30, "{job}");
    let (_, usage) = app
        .get(
            &format!("/workspaces/{}/usage", owner.workspace_id),
            &owner.access_token,
        )
        .await;
    assert!(usage["used_today"].as_i64().unwrap() <= 200, "{usage}");
    let (status, _) = app
        .post(
            &format!("/stores/{store_id}/enrich"),
            Some(&owner.access_token),
            json!({"fields": ["nonsense"]}),
        )
        .await;
    assert_eq!(status, 422);
    let (status, _) = app
        .post(
            &format!("/stores/{store_id}/enrich"),
            Some(&owner.access_token),
            json!({"provider": "openai"}),
        )
        .await;
    assert_eq!(status, 422);
}
