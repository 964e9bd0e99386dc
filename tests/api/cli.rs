//! The admin commands of the real binary.

use std::process::Command;

use serde_json::Value;

use crate::helpers::{PASSWORD, TestApp, test_env};

pub(crate) fn catalogd(app: &TestApp, args: &[&str]) -> Value {
    let out = Command::new(env!("CARGO_BIN_EXE_catalogd"))
        .args(args)
        .envs(test_env(&app.db_name, &app.data_dir))
        .env("CATALOGD_PASSWORD", PASSWORD)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "catalogd {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(!stdout.contains(PASSWORD));
    serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("not JSON ({e}): {stdout}"))
}

#[tokio::test]
async fn admin_commands_print_json_and_create_working_accounts_and_keys() {
    let app = TestApp::spawn().await;
    let user = catalogd(
        &app,
        &[
            "user",
            "create",
            "--email",
            "cli@example.com",
            "--name",
            "Cli",
            "--json",
        ],
    );
    assert_eq!(user["user"]["email"], "cli@example.com");
    let ws = catalogd(
        &app,
        &[
            "workspace",
            "create",
            "--name",
            "Second",
            "--owner",
            "cli@example.com",
            "--json",
        ],
    );
    let ws_id = ws["id"].as_str().unwrap();
    let key = catalogd(
        &app,
        &[
            "api-key",
            "create",
            "--workspace",
            ws_id,
            "--name",
            "ops",
            "--role",
            "admin",
            "--json",
        ],
    );
    let key = key["key"].as_str().unwrap();

    let (status, settings) = app.get(&format!("/workspaces/{ws_id}/settings"), key).await;
    assert_eq!(status, 200, "{settings}");
    let (status, _) = app
        .post(
            "/auth/login",
            None,
            serde_json::json!({"email": "cli@example.com", "password": PASSWORD}),
        )
        .await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn bad_configuration_fails_fast_naming_the_key() {
    let out = Command::new(env!("CARGO_BIN_EXE_catalogd"))
        .arg("migrate")
        .env("CATALOGD_AUTH__NO_SUCH_KNOB", "1")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("no_such_knob"), "{stderr}");
}

#[tokio::test]
async fn demo_connects_the_simulator_through_the_handshake_and_syncs_it() {
    let db_name = crate::helpers::fresh_database().await;
    let data_dir =
        std::env::temp_dir().join(format!("catalogd-demo-{}", uuid::Uuid::new_v4().simple()));
    let out = tokio::task::spawn_blocking({
        let env = test_env(&db_name, &data_dir);
        move || {
            Command::new(env!("CARGO_BIN_EXE_catalogd"))
                .args(["demo", "--exit", "--products", "40"])
                .envs(env)
                .output()
                .unwrap()
        }
    })
    .await
    .unwrap();
    crate::helpers::drop_database(&db_name);
    let log = std::fs::read_to_string(data_dir.join("catalogd-demo.log")).unwrap_or_default();
    let mails: Vec<String> = std::fs::read_dir(data_dir.join("mail"))
        .map(|dir| {
            dir.map(|e| e.unwrap().file_name().into_string().unwrap())
                .collect()
        })
        .unwrap_or_default();
    let _ = std::fs::remove_dir_all(&data_dir);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    // The daemon's INFO lines go to the log file the demo names, not to the terminal.
    assert!(
        stdout.contains("the daemon's log is written to"),
        "{stdout}"
    );
    assert!(log.contains("INFO"), "{log}");
    assert!(
        !stderr.contains("INFO") && !stdout.contains("INFO"),
        "{stderr}"
    );
    assert!(stdout.contains("[9/9] The mail a reviewer got"), "{stdout}");
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("Handshake complete: store is active with 3 store views"),
        "{stdout}"
    );
    assert!(stdout.contains("Sync done: 160 products read"), "{stdout}");
    // Then the whole loop: audit, enrich, approve, push, and a better score.
    let score = |prefix: &str| -> f64 {
        let line = stdout
            .lines()
            .find(|l| l.starts_with(prefix))
            .unwrap_or_else(|| panic!("no {prefix:?} line in {stdout}"));
        line.split_whitespace()
            .find_map(|w| w.parse::<f64>().ok())
            .unwrap_or_else(|| panic!("no score in {line}"))
    };
    let before = score("Audit: score");
    assert!(stdout.contains("proposals approved"), "{stdout}");
    assert!(stdout.contains("Push to the store: "), "{stdout}");
    assert!(stdout.contains(" 0 conflicts, 0 failed"), "{stdout}");
    let line = stdout
        .lines()
        .find(|l| l.starts_with("Audit again"))
        .unwrap();
    let after: f64 = line
        .split('→')
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{line}"));
    assert!(after > before, "{stdout}");
    assert!(
        stdout.contains("catalogd is serving at http://127.0.0.1:"),
        "{stdout}"
    );
    // It ends with the mail written for the proposals it left.
    assert!(
        stdout.contains("still wait for a reviewer") && stdout.contains("Written to "),
        "{stdout}"
    );
    assert!(
        stdout.contains("proposals wait for review in Demo store"),
        "{stdout}"
    );
    assert!(mails.iter().any(|m| m.ends_with(".eml")), "{mails:?}");
}
