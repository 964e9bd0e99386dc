//! Webhooks against a receiver that verifies every delivery with the Standard Webhooks
//! reference library (Python's `standardwebhooks`, `tests/webhook_receiver.py`), not our code.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use catalogd::webhooks::fan_out::{self, Event};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::helpers::{Registered, TestApp, error_code};

/// The receiver process; it stops when dropped (its stdin closes, then it is killed).
pub(crate) struct Receiver {
    child: Child,
    base: String,
    client: reqwest::Client,
}

impl Drop for Receiver {
    fn drop(&mut self) {
        drop(self.child.stdin.take());
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Receiver {
    pub(crate) fn start() -> Receiver {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/webhook_receiver.py");
        let mut child = Command::new("python3")
            .arg(script)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("python3 runs the receiver (scripts/test.sh installs standardwebhooks)");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let port: u16 = line
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("the receiver printed no port: {line:?}"));
        Receiver {
            child,
            base: format!("http://127.0.0.1:{port}"),
            client: reqwest::Client::new(),
        }
    }

    pub(crate) fn url(&self, name: &str) -> String {
        format!("{}/hooks/{name}", self.base)
    }

    /// Tells endpoint `name` its secret and the statuses it answers in turn (then 200).
    pub(crate) async fn configure(&self, name: &str, secret: &str, plan: &[u16]) {
        let res = self
            .client
            .put(format!("{}/control/{name}", self.base))
            .json(&json!({"secret": secret, "plan": plan}))
            .send()
            .await
            .unwrap();
        assert!(res.status().is_success());
    }

    pub(crate) async fn received(&self, name: &str) -> Vec<Value> {
        let log: Vec<Value> = self
            .client
            .get(format!("{}/control/log", self.base))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        log.into_iter().filter(|r| r["name"] == name).collect()
    }

    /// Waits until endpoint `name` has received `count` deliveries.
    pub(crate) async fn wait_for(&self, name: &str, count: usize) -> Vec<Value> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            let received = self.received(name).await;
            if received.len() >= count {
                return received;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{name} received {} of {count}: {received:?}",
                received.len()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

async fn spawn() -> TestApp {
    // Retries at once: the schedule's unit is 0 ms.
    TestApp::spawn_with(&[("CATALOGD_WEBHOOKS__RETRY_UNIT_MS", "0")]).await
}

pub(crate) async fn create(
    app: &TestApp,
    owner: &Registered,
    url: &str,
    events: &[&str],
) -> (String, String) {
    let (status, body) = app
        .post(
            &format!("/workspaces/{}/webhooks", owner.workspace_id),
            Some(&owner.access_token),
            json!({"url": url, "events": events, "description": "test receiver"}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    (
        body["id"].as_str().unwrap().to_string(),
        body["secret"].as_str().unwrap().to_string(),
    )
}

/// Hands an event to the webhooks the way an event's cause does, in a transaction.
async fn raise(app: &TestApp, workspace_id: Uuid, kind: &str, summary: &str) -> Uuid {
    let id = Uuid::now_v7();
    let data = json!({"note": summary});
    let mut tx = app.db.begin().await.unwrap();
    fan_out::enqueue(
        &mut tx,
        &Event {
            id,
            workspace_id,
            kind,
            occurred_at: chrono::Utc::now(),
            data: &data,
        },
    )
    .await
    .unwrap();
    // The same event handed over twice is delivered once.
    fan_out::enqueue(
        &mut tx,
        &Event {
            id,
            workspace_id,
            kind,
            occurred_at: chrono::Utc::now(),
            data: &data,
        },
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    id
}

async fn deliveries(app: &TestApp, owner: &Registered, webhook: &str) -> Vec<Value> {
    app.get_all(
        &format!("/webhooks/{webhook}/deliveries"),
        &owner.access_token,
    )
    .await
}

/// Waits until the webhook's newest delivery is no longer pending.
async fn settled(app: &TestApp, owner: &Registered, webhook: &str) -> Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let list = deliveries(app, owner, webhook).await;
        if let Some(newest) = list.first()
            && newest["status"] != "pending"
        {
            return newest.clone();
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "delivery still pending: {list:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn assert_verified(received: &[Value]) {
    for delivery in received {
        assert_eq!(delivery["verified"], true, "{delivery}");
    }
}

#[tokio::test]
async fn endpoints_are_managed_by_admins_of_their_workspace_only() {
    let app = spawn().await;
    let owner = app.register("hooks-owner@example.com").await;
    let editor = app
        .member(&owner, "hooks-editor@example.com", "editor")
        .await;
    let stranger = app.register("hooks-stranger@example.com").await;
    let ws = owner.workspace_id;

    let (status, created) = app
        .post(
            &format!("/workspaces/{ws}/webhooks"),
            Some(&owner.access_token),
            json!({"url": "https://hooks.example.com/catalogd", "events": ["job.failed", "export.ready", "job.failed"]}),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    let secret = created["secret"].as_str().unwrap();
    let raw = base64_decode(secret.strip_prefix("whsec_").expect("whsec_ prefix"));
    assert!(raw.len() >= 24, "{} bytes", raw.len());
    assert_eq!(created["events"], json!(["job.failed", "export.ready"]));
    assert_eq!(created["enabled"], true);
    let id = created["id"].as_str().unwrap();

    // The secret is shown once and stored sealed.
    let (status, listed) = app
        .get(&format!("/workspaces/{ws}/webhooks"), &owner.access_token)
        .await;
    assert_eq!(status, 200);
    assert!(!listed.to_string().contains(secret));
    assert!(listed["items"][0].get("secret").is_none());
    let stored: Vec<u8> = sqlx::query_scalar("SELECT secret FROM webhooks")
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert!(!stored.windows(raw.len()).any(|w| w == raw.as_slice()));

    // Not for editors; another workspace's endpoint does not exist.
    let (status, _) = app
        .get(&format!("/workspaces/{ws}/webhooks"), &editor.access_token)
        .await;
    assert_eq!(status, 403);
    let (status, body) = app
        .post(
            &format!("/workspaces/{ws}/webhooks"),
            Some(&editor.access_token),
            json!({"url": "https://hooks.example.com/x", "events": ["job.failed"]}),
        )
        .await;
    assert_eq!(status, 403, "{body}");
    for (method, path) in [
        (reqwest::Method::GET, format!("/webhooks/{id}")),
        (reqwest::Method::PATCH, format!("/webhooks/{id}")),
        (reqwest::Method::DELETE, format!("/webhooks/{id}")),
        (reqwest::Method::GET, format!("/webhooks/{id}/deliveries")),
        (
            reqwest::Method::POST,
            format!("/webhooks/{id}/deliveries/{}/redeliver", Uuid::now_v7()),
        ),
    ] {
        let body = (method == reqwest::Method::PATCH).then(|| json!({"enabled": false}));
        let (status, answer) = app
            .call(method.clone(), &path, Some(&stranger.access_token), body)
            .await;
        assert_eq!(status, 404, "{method} {path}: {answer}");
    }

    // Hostile input is named, nothing is stored.
    for (body, field) in [
        (
            json!({"url": "ftp://example.com/", "events": ["job.failed"]}),
            "url",
        ),
        (json!({"url": "not a url", "events": ["job.failed"]}), "url"),
        (
            json!({"url": "https://user:pw@example.com/", "events": ["job.failed"]}),
            "url",
        ),
        // Refused by the egress policy before anything is sent.
        (
            json!({"url": "http://10.1.2.3/hook", "events": ["job.failed"]}),
            "url",
        ),
        (
            json!({"url": "https://example.com/", "events": []}),
            "events",
        ),
        (
            json!({"url": "https://example.com/", "events": ["order.placed"]}),
            "events",
        ),
        (
            json!({"url": "https://example.com/", "events": ["job.failed"], "description": "x".repeat(501)}),
            "description",
        ),
    ] {
        let (status, answer) = app
            .post(
                &format!("/workspaces/{ws}/webhooks"),
                Some(&owner.access_token),
                body,
            )
            .await;
        assert_eq!(status, 422, "{answer}");
        assert_eq!(answer["error"]["field"], field, "{answer}");
    }
    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM webhooks")
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert_eq!(count, 1);

    let (status, patched) = app
        .call(
            reqwest::Method::PATCH,
            &format!("/webhooks/{id}"),
            Some(&owner.access_token),
            Some(json!({"events": ["review.ready"], "enabled": false})),
        )
        .await;
    assert_eq!(status, 200, "{patched}");
    assert_eq!(patched["events"], json!(["review.ready"]));
    assert_eq!(patched["enabled"], false);
    assert_eq!(patched["url"], "https://hooks.example.com/catalogd");

    let (status, _) = app
        .call(
            reqwest::Method::DELETE,
            &format!("/webhooks/{id}"),
            Some(&owner.access_token),
            None,
        )
        .await;
    assert_eq!(status, 204);
    let (status, body) = app
        .get(&format!("/webhooks/{id}"), &owner.access_token)
        .await;
    assert_eq!(status, 404);
    assert_eq!(error_code(&body), "not_found");

    let (_, log) = app
        .get(&format!("/workspaces/{ws}/audit-log"), &owner.access_token)
        .await;
    let actions: Vec<&str> = log["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["action"].as_str())
        .filter(|a| a.starts_with("webhook."))
        .collect();
    assert_eq!(
        actions,
        ["webhook.deleted", "webhook.updated", "webhook.created"]
    );
}

fn base64_decode(text: &str) -> Vec<u8> {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD
        .decode(text)
        .expect("base64")
}

#[tokio::test]
async fn a_failing_receiver_gets_the_event_again_until_it_answers_and_every_attempt_verifies() {
    let app = spawn().await;
    let receiver = Receiver::start();
    let owner = app.register("retry@example.com").await;
    let (id, secret) = create(&app, &owner, &receiver.url("flaky"), &["job.failed"]).await;
    receiver.configure("flaky", &secret, &[500, 500, 500]).await;

    let event_id = raise(&app, owner.workspace_id, "job.failed", "sync failed").await;
    let delivery = settled(&app, &owner, &id).await;
    assert_eq!(delivery["status"], "delivered", "{delivery}");

    // Three failures, then once more and done: four attempts, all with one webhook-id.
    let received = receiver.received("flaky").await;
    assert_eq!(received.len(), 4, "{received:?}");
    assert_verified(&received);
    let message_id = received[0]["webhook_id"].as_str().unwrap().to_string();
    assert!(
        received
            .iter()
            .all(|r| r["webhook_id"] == message_id.as_str())
    );
    assert_eq!(
        received
            .iter()
            .map(|r| r["answered"].as_u64().unwrap())
            .collect::<Vec<_>>(),
        [500, 500, 500, 200]
    );
    let payload = &received[3]["payload"];
    assert_eq!(payload["type"], "job.failed");
    assert!(
        chrono::DateTime::parse_from_rfc3339(payload["timestamp"].as_str().unwrap()).is_ok(),
        "{payload}"
    );
    assert_eq!(payload["data"]["note"], "sync failed");

    // The history shows each attempt with its code, duration and the head of the answer.
    assert_eq!(delivery["event_id"], event_id.to_string());
    assert_eq!(delivery["event_type"], "job.failed");
    let attempts = delivery["attempts"].as_array().unwrap();
    assert_eq!(
        attempts
            .iter()
            .map(|a| (
                a["status"].as_str().unwrap(),
                a["response_status"].as_u64().unwrap()
            ))
            .collect::<Vec<_>>(),
        [
            ("failed", 500),
            ("failed", 500),
            ("failed", 500),
            ("succeeded", 200)
        ]
    );
    assert!(
        attempts
            .iter()
            .all(|a| a["duration_ms"].as_i64().unwrap() >= 0)
    );
    assert!(
        attempts[0]["response_body"]
            .as_str()
            .unwrap()
            .contains("500")
    );
    assert_eq!(
        format!("msg_{}", delivery["id"].as_str().unwrap().replace('-', "")),
        message_id
    );

    // Redelivery sends the same message once more, signed anew.
    let (status, redelivered) = app
        .post(
            &format!(
                "/webhooks/{id}/deliveries/{}/redeliver",
                delivery["id"].as_str().unwrap()
            ),
            Some(&owner.access_token),
            json!({}),
        )
        .await;
    assert_eq!(status, 202, "{redelivered}");
    let received = receiver.wait_for("flaky", 5).await;
    assert_verified(&received);
    assert_eq!(received[4]["webhook_id"], message_id.as_str());
    let delivery = settled(&app, &owner, &id).await;
    assert_eq!(delivery["attempts"].as_array().unwrap().len(), 5);
    assert_eq!(delivery["status"], "delivered");
}

#[tokio::test]
async fn only_subscribed_and_enabled_endpoints_receive_events() {
    let app = spawn().await;
    let receiver = Receiver::start();
    let owner = app.register("subscribed@example.com").await;
    let other = app.register("other-ws@example.com").await;
    let (on, on_secret) = create(&app, &owner, &receiver.url("on"), &["export.ready"]).await;
    let (off, off_secret) = create(&app, &owner, &receiver.url("off"), &["export.ready"]).await;
    let (_, other_secret) = create(&app, &other, &receiver.url("other"), &["export.ready"]).await;
    let (picky, picky_secret) =
        create(&app, &owner, &receiver.url("picky"), &["review.ready"]).await;
    receiver.configure("on", &on_secret, &[]).await;
    receiver.configure("off", &off_secret, &[]).await;
    receiver.configure("other", &other_secret, &[]).await;
    receiver.configure("picky", &picky_secret, &[]).await;
    let (status, _) = app
        .call(
            reqwest::Method::PATCH,
            &format!("/webhooks/{off}"),
            Some(&owner.access_token),
            Some(json!({"enabled": false})),
        )
        .await;
    assert_eq!(status, 200);

    raise(&app, owner.workspace_id, "export.ready", "export ready").await;
    assert_eq!(settled(&app, &owner, &on).await["status"], "delivered");
    // A second event after the first: once it arrived, the first was fanned out everywhere.
    raise(&app, owner.workspace_id, "export.ready", "second export").await;
    assert_verified(&receiver.wait_for("on", 2).await);
    assert!(receiver.received("off").await.is_empty());
    assert!(deliveries(&app, &owner, &off).await.is_empty());
    assert!(receiver.received("other").await.is_empty());
    assert!(receiver.received("picky").await.is_empty());

    // A delivery is redelivered only through its own endpoint.
    let first = deliveries(&app, &owner, &on).await[0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let (status, _) = app
        .post(
            &format!("/webhooks/{picky}/deliveries/{first}/redeliver"),
            Some(&owner.access_token),
            json!({}),
        )
        .await;
    assert_eq!(status, 404, "another endpoint's delivery");
}

#[tokio::test]
async fn an_endpoint_failing_too_long_is_disabled_and_gets_nothing_more() {
    let app = TestApp::spawn_with(&[
        ("CATALOGD_WEBHOOKS__RETRY_UNIT_MS", "0"),
        ("CATALOGD_WEBHOOKS__DISABLE_AFTER_SECS", "0"),
    ])
    .await;
    let receiver = Receiver::start();
    let owner = app.register("dead-endpoint@example.com").await;
    let (dead, dead_secret) = create(&app, &owner, &receiver.url("dead"), &["job.failed"]).await;
    let (_, live_secret) = create(&app, &owner, &receiver.url("live"), &["job.failed"]).await;
    receiver.configure("dead", &dead_secret, &[503; 20]).await;
    receiver.configure("live", &live_secret, &[]).await;

    raise(&app, owner.workspace_id, "job.failed", "first").await;
    let failed = settled(&app, &owner, &dead).await;
    assert_eq!(failed["status"], "failed", "{failed}");
    let (_, endpoint) = app
        .get(&format!("/webhooks/{dead}"), &owner.access_token)
        .await;
    assert_eq!(endpoint["enabled"], false, "{endpoint}");
    assert!(
        endpoint["disabled_reason"]
            .as_str()
            .unwrap()
            .contains("failed")
    );
    assert_eq!(receiver.received("dead").await.len(), 1);

    raise(&app, owner.workspace_id, "job.failed", "second").await;
    assert_verified(&receiver.wait_for("live", 2).await);
    assert_eq!(receiver.received("dead").await.len(), 1);
    assert_eq!(deliveries(&app, &owner, &dead).await.len(), 1);

    // Redelivery waits until someone enables the endpoint again.
    let (status, body) = app
        .post(
            &format!(
                "/webhooks/{dead}/deliveries/{}/redeliver",
                failed["id"].as_str().unwrap()
            ),
            Some(&owner.access_token),
            json!({}),
        )
        .await;
    assert_eq!(status, 409, "{body}");

    let (_, log) = app
        .get(
            &format!("/workspaces/{}/audit-log", owner.workspace_id),
            &owner.access_token,
        )
        .await;
    assert!(
        log["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["action"] == "webhook.disabled" && e["target_id"] == dead.as_str()),
        "{log}"
    );
    // The owner is told by mail (written to the data directory without an SMTP server).
    let mail = crate::helpers::eventually_sent_mail(&app, "dead-endpoint@example.com").await;
    assert!(
        mail.0.contains("A webhook endpoint was disabled"),
        "{mail:?}"
    );
    assert!(mail.1.contains(&format!("/webhooks/{dead}")), "{mail:?}");
}
