//! Store secrets stay sealed: not in any table, not in the logs, and a key rotation re-seals them.

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use catalogd::crypto::{Keyring, key_id};
use catalogd::secrets::KeyMaterial;
use magento_sim::{MagentoSim, SimConfig};
use secrecy::ExposeSecret;
use serde_json::json;

use crate::helpers::{TestApp, test_env};

/// Collects every log line of this test process.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

pub(crate) async fn dump_all_tables(db: &sqlx::PgPool) -> String {
    let tables: Vec<String> =
        sqlx::query_scalar("SELECT table_name::text FROM information_schema.tables WHERE table_schema = 'public' AND table_type = 'BASE TABLE'")
            .fetch_all(db)
            .await
            .unwrap();
    let mut dump = String::new();
    for table in tables {
        let rows: Option<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT string_agg(t::text, E'\\n') FROM \"{table}\" t"
        )))
        .fetch_one(db)
        .await
        .unwrap();
        dump.push_str(&rows.unwrap_or_default());
        dump.push('\n');
    }
    dump
}

#[tokio::test]
async fn store_secrets_never_appear_in_tables_or_logs() {
    let logs = Captured::default();
    let writer = logs.clone();
    tracing::subscriber::set_global_default(
        tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_writer(move || writer.clone())
            .finish(),
    )
    .unwrap();

    let app = TestApp::spawn().await;
    let sim = MagentoSim::start(SimConfig {
        products: 3,
        ..SimConfig::default()
    })
    .await
    .unwrap();
    let owner = app.register("shop@example.com").await;
    let c = sim.credentials();
    app.connect_store(&owner, &sim).await;

    // And one through the handshake, whose secrets arrive in Magento's post.
    let (_, pending) = app
        .post(
            &format!("/workspaces/{}/stores", owner.workspace_id),
            Some(&owner.access_token),
            json!({"name": "Handshake", "base_url": sim.base_url()}),
        )
        .await;
    let integration = sim
        .create_integration(
            pending["callback_url"].as_str().unwrap(),
            pending["identity_url"].as_str().unwrap(),
        )
        .await
        .unwrap();
    let id = pending["id"].as_str().unwrap();
    let link_token = pending["callback_url"]
        .as_str()
        .unwrap()
        .split('/')
        .rev()
        .nth(1)
        .unwrap()
        .to_string();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let (_, store) = app.get(&format!("/stores/{id}"), &owner.access_token).await;
        if store["status"] == "active" {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{store}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let handshake_tokens = sim
        .access_credentials(&integration.consumer_key)
        .expect("the simulator issued tokens");

    let mut secrets = vec![
        c.consumer_secret.clone(),
        c.access_token.clone(),
        c.access_token_secret.clone(),
    ];
    secrets.push(integration.consumer_secret.clone());
    secrets.push(handshake_tokens.access_token.clone());
    secrets.push(handshake_tokens.access_token_secret.clone());

    let dump = dump_all_tables(&app.db).await;
    assert!(dump.contains("Sim"), "the dump covers the stores table");
    let log_text = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    assert!(
        log_text.contains("Magento callback accepted"),
        "logs were captured"
    );
    // The link token is the key to the store's callback: requests to it are traced without it.
    assert!(
        log_text.contains("/integrations/magento/<token>/callback"),
        "the callback request was traced"
    );
    assert!(
        !log_text.contains(&link_token),
        "the store's link token appears in the logs"
    );
    for secret in &secrets {
        assert!(
            !dump.contains(secret.as_str()),
            "a secret is stored in plain text"
        );
        assert!(
            !dump.contains(&hex::encode(secret)),
            "a secret is stored as plain bytes"
        );
        assert!(
            !log_text.contains(secret.as_str()),
            "a secret appears in the logs"
        );
    }
}

#[tokio::test]
async fn rotate_key_reseals_every_secret_under_the_new_key() {
    let app = TestApp::spawn().await;
    let sim = MagentoSim::start(SimConfig {
        products: 3,
        ..SimConfig::default()
    })
    .await
    .unwrap();
    let owner = app.register("shop@example.com").await;
    let c = sim.credentials();
    let store_id = app.connect_store(&owner, &sim).await;
    let store_id: uuid::Uuid = store_id.parse().unwrap();

    let out = std::process::Command::new(env!("CARGO_BIN_EXE_catalogd"))
        .args(["rotate-key", "--json"])
        .envs(test_env(&app.db_name, &app.data_dir))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        report["resealed"], 2,
        "credentials and link token: {report}"
    );

    // A process started now loads the new key (and keeps the old one for stragglers).
    let env = test_env(&app.db_name, &app.data_dir);
    let settings = catalogd::config::Settings::load_from(None, env).unwrap();
    let keys = KeyMaterial::load_or_generate(&settings).unwrap();
    assert_eq!(
        hex::encode(key_id(keys.master_key.expose_secret())),
        report["key_id"].as_str().unwrap()
    );
    let ring = Keyring::new(&keys.master_key, &keys.previous_master_keys);
    let stored = catalogd::stores::get(&app.db, store_id)
        .await
        .unwrap()
        .unwrap();
    let sealed = stored.credentials.as_deref().unwrap();
    assert_eq!(
        Keyring::sealed_with(sealed),
        Some(key_id(keys.master_key.expose_secret()))
    );
    let opened = stored.credentials(&ring).unwrap().unwrap();
    assert_eq!(opened.access_token_secret, c.access_token_secret);
}
