//! Schemathesis (from PyPI; `scripts/test.sh` installs it) generates requests from the OpenAPI
//! document and sends them to a real running daemon with a synced store: no answer may be a
//! server error, and every documented answer must match its schema.

use magento_sim::{MagentoSim, SimConfig};
use serde_json::json;

use crate::helpers::TestApp;

#[tokio::test]
async fn generated_requests_never_get_a_server_error_and_answers_match_the_openapi_document() {
    let app = TestApp::spawn().await;
    let sim = MagentoSim::start(SimConfig {
        products: 8,
        ..SimConfig::default()
    })
    .await
    .unwrap();
    let owner = app.register("schema@example.com").await;
    let store_id = app.connect_store(&owner, &sim).await;
    let sync = app.sync(&owner, &store_id, "full").await;

    // Real ids for the path parameters, so operations are exercised beyond their 404s.
    let token = owner.access_token.as_str();
    let (_, products) = app
        .get(&format!("/stores/{store_id}/products?limit=1"), token)
        .await;
    let product_id = products["items"][0]["id"].as_str().unwrap().to_string();
    let (status, proposal) = app
        .post(
            &format!("/products/{product_id}/versions"),
            Some(token),
            json!({"store_view": "all", "fields": {"meta_title": "A reviewed title"}}),
        )
        .await;
    assert_eq!(status, 201, "{proposal}");
    let (status, audit) = app
        .post(
            &format!("/stores/{store_id}/audits"),
            Some(token),
            json!({}),
        )
        .await;
    assert_eq!(status, 202, "{audit}");
    let (status, export) = app
        .post(
            &format!("/stores/{store_id}/exports"),
            Some(token),
            json!({"format": "magento_csv"}),
        )
        .await;
    assert_eq!(status, 202, "{export}");
    let ids = [
        ("^/api/v1/stores/", store_id.clone()),
        ("^/api/v1/products/", product_id),
        (
            "^/api/v1/proposals/",
            proposal["id"].as_str().unwrap().to_string(),
        ),
        (
            "^/api/v1/audits/",
            audit["audit_id"].as_str().unwrap().to_string(),
        ),
        (
            "^/api/v1/exports/",
            export["export_id"].as_str().unwrap().to_string(),
        ),
        ("^/api/v1/jobs/", sync["id"].as_str().unwrap().to_string()),
    ];
    let mut config = format!("[parameters]\n\"path.ws\" = \"{}\"\n", owner.workspace_id);
    for (path, id) in ids {
        config.push_str(&format!(
            "\n[[operations]]\ninclude-path-regex = \"{path}\"\nparameters = {{ \"path.id\" = \"{id}\" }}\n"
        ));
    }

    let report =
        std::env::temp_dir().join(format!("catalogd-schemathesis-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&report).unwrap();
    let config_file = report.join("schemathesis.toml");
    std::fs::write(&config_file, config).unwrap();
    let output = tokio::process::Command::new("st")
        .args([
            "--config-file",
            &config_file.display().to_string(),
            "run",
            &format!("{}/api/v1/openapi.json", app.base),
            "--header",
            &format!("Authorization: Bearer {}", owner.access_token),
            "--checks",
            "not_a_server_error,response_schema_conformance,content_type_conformance",
            // Deleting the account would end the run's session; it has its own tests.
            "--exclude-operation-id",
            "delete_me",
            "--phases",
            "examples,coverage,fuzzing",
            "--max-examples",
            "15",
            "--seed",
            "20261202",
            "--generation-database",
            "none",
            // One worker: schemathesis' generation caches are not safe across workers.
            "--workers",
            "1",
            "--request-timeout",
            "30",
            "--no-color",
            "--report-dir",
            &report.display().to_string(),
        ])
        .env("SCHEMATHESIS_HOOKS", "")
        // Its caches go to the scratch directory, not the working tree.
        .current_dir(&report)
        .output()
        .await
        .expect("schemathesis (`st`) is installed: run ./scripts/test.sh, which installs it");
    let _ = std::fs::remove_dir_all(&report);
    let stdout = String::from_utf8_lossy(&output.stdout);
    println!("{stdout}");
    assert!(
        output.status.success(),
        "schemathesis found problems:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
}
