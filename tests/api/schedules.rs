//! Schedules: validation, exactly-once firing across processes, and catching up once.

use std::time::Duration;

use catalogd::app::Application;
use catalogd::config::Settings;
use magento_sim::{MagentoSim, SimConfig};
use serde_json::json;

use crate::helpers::{TestApp, test_env};

#[tokio::test]
async fn schedules_are_validated_and_preview_their_next_runs() {
    let app = TestApp::spawn().await;
    let sim = MagentoSim::start(SimConfig {
        products: 3,
        ..SimConfig::default()
    })
    .await
    .unwrap();
    let owner = app.register("shop@example.com").await;
    let store_id = app.connect_store(&owner, &sim).await;
    let path = format!("/stores/{store_id}/schedule");

    let (status, schedule) = app
        .call(
            reqwest::Method::PUT,
            &path,
            Some(&owner.access_token),
            Some(json!({"cron": "0 2 * * *", "timezone": "Europe/Berlin", "pipeline": ["sync"]})),
        )
        .await;
    assert_eq!(status, 200, "{schedule}");
    assert_eq!(schedule["pipeline"], json!(["sync"]));
    let runs = schedule["next_runs"].as_array().unwrap();
    assert_eq!(runs.len(), 5);
    for run in runs {
        let at: chrono::DateTime<chrono::Utc> = run.as_str().unwrap().parse().unwrap();
        let berlin = at.with_timezone(&chrono_tz::Europe::Berlin);
        assert_eq!(chrono::Timelike::hour(&berlin), 2, "{run}");
    }
    let (status, fetched) = app.get(&path, &owner.access_token).await;
    assert_eq!(status, 200);
    assert_eq!(fetched["cron"], "0 2 * * *");

    for (body, field) in [
        (json!({"cron": "every night"}), "cron"),
        (
            json!({"cron": "0 2 * * *", "timezone": "Berlin"}),
            "timezone",
        ),
        (
            json!({"cron": "0 2 * * *", "pipeline": ["sync", "deploy"]}),
            "pipeline",
        ),
        (json!({"cron": "0 2 * * *", "pipeline": []}), "pipeline"),
    ] {
        let (status, error) = app
            .call(
                reqwest::Method::PUT,
                &path,
                Some(&owner.access_token),
                Some(body),
            )
            .await;
        assert_eq!(status, 422, "{error}");
        assert_eq!(error["error"]["field"], field, "{error}");
    }
    let viewer = app.member(&owner, "viewer@example.com", "viewer").await;
    let (status, _) = app
        .call(
            reqwest::Method::PUT,
            &path,
            Some(&viewer.access_token),
            Some(json!({"cron": "0 3 * * *"})),
        )
        .await;
    assert_eq!(status, 403);
    let (status, _) = app
        .call(
            reqwest::Method::DELETE,
            &path,
            Some(&owner.access_token),
            None,
        )
        .await;
    assert_eq!(status, 204);
    let (status, _) = app.get(&path, &owner.access_token).await;
    assert_eq!(status, 404);
}

/// A PUT changes what it names: a new cron alone keeps the pipeline, and a paused schedule stays
/// paused until someone enables it.
#[tokio::test]
async fn a_schedule_put_without_pipeline_or_flag_keeps_them() {
    let app = TestApp::spawn().await;
    let sim = MagentoSim::start(SimConfig {
        products: 3,
        ..SimConfig::default()
    })
    .await
    .unwrap();
    let owner = app.register("shop@example.com").await;
    let store_id = app.connect_store(&owner, &sim).await;
    let path = format!("/stores/{store_id}/schedule");
    let put = |body: serde_json::Value| {
        let (app, path, token) = (&app, &path, &owner.access_token);
        async move {
            let (status, schedule) = app
                .call(reqwest::Method::PUT, path, Some(token), Some(body))
                .await;
            assert_eq!(status, 200, "{schedule}");
            schedule
        }
    };

    // A new schedule without them: sync, enabled.
    let created = put(json!({"cron": "0 2 * * *"})).await;
    assert_eq!(created["pipeline"], json!(["sync"]));
    assert_eq!(created["enabled"], true);
    put(json!({"cron": "0 2 * * *", "pipeline": ["full_sync", "audit", "export"], "enabled": false}))
        .await;
    let moved = put(json!({"cron": "30 4 * * 1", "timezone": "Europe/Paris"})).await;
    assert_eq!(moved["cron"], "30 4 * * 1");
    assert_eq!(moved["timezone"], "Europe/Paris");
    assert_eq!(moved["pipeline"], json!(["full_sync", "audit", "export"]));
    assert_eq!(moved["enabled"], false, "a paused schedule stays paused");
    let resumed = put(json!({"cron": "30 4 * * 1", "enabled": true})).await;
    assert_eq!(resumed["enabled"], true);
    assert_eq!(resumed["pipeline"], json!(["full_sync", "audit", "export"]));
    let (_, fetched) = app.get(&path, &owner.access_token).await;
    assert_eq!(fetched["pipeline"], json!(["full_sync", "audit", "export"]));
}

#[tokio::test]
async fn a_missed_schedule_catches_up_once_and_two_processes_fire_each_run_once() {
    let app = TestApp::spawn().await;
    let sim = MagentoSim::start(SimConfig {
        products: 3,
        ..SimConfig::default()
    })
    .await
    .unwrap();
    let owner = app.register("shop@example.com").await;
    let store_id = app.connect_store(&owner, &sim).await;

    // A second serve process on the same database: both run the scheduler.
    let second_data =
        std::env::temp_dir().join(format!("catalogd-second-{}", uuid::Uuid::new_v4().simple()));
    let mut env = test_env(&app.db_name, &second_data);
    env.push(("CATALOGD_JOBS__SCHEDULER_TICK_SECS".into(), "1".into()));
    let second = Application::build(Settings::load_from(None, env).unwrap())
        .await
        .unwrap();
    let second_state = second.state().clone();
    let second_server = tokio::spawn(async move {
        let scheduler = tokio::spawn(catalogd::schedules::run_scheduler(
            second_state,
            std::future::pending(),
        ));
        let _ = second.run(std::future::pending()).await;
        scheduler.abort();
    });

    // Hourly, and the processes were down for the last three hours.
    let (status, _) = app
        .call(
            reqwest::Method::PUT,
            &format!("/stores/{store_id}/schedule"),
            Some(&owner.access_token),
            Some(json!({"cron": "0 * * * *"})),
        )
        .await;
    assert_eq!(status, 200);
    sqlx::query("UPDATE schedules SET next_run_at = now() - interval '3 hours'")
        .execute(&app.db)
        .await
        .unwrap();

    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let job_id = loop {
        let last: Option<uuid::Uuid> = sqlx::query_scalar("SELECT last_job_id FROM schedules")
            .fetch_one(&app.db)
            .await
            .unwrap();
        if let Some(id) = last {
            break id;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the schedule never fired"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    app.wait_for_job(
        &owner.access_token,
        &job_id.to_string(),
        Duration::from_secs(30),
    )
    .await;
    // Give both schedulers several more ticks.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let jobs: i64 =
        sqlx::query_scalar("SELECT count(*) FROM job_runs WHERE schedule_tick IS NOT NULL")
            .fetch_one(&app.db)
            .await
            .unwrap();
    assert_eq!(
        jobs, 1,
        "three missed runs start one job, once across two processes"
    );
    let next: chrono::DateTime<chrono::Utc> =
        sqlx::query_scalar("SELECT next_run_at FROM schedules")
            .fetch_one(&app.db)
            .await
            .unwrap();
    assert!(next > chrono::Utc::now(), "the next run is in the future");
    second_server.abort();
    let _ = std::fs::remove_dir_all(second_data);
}
