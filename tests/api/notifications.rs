//! Notifications against a real SMTP server (`aiosmtpd`, `tests/smtp_sink.py`) whose mail is
//! read back with Python's own `email` package, and webhooks verified with the Standard
//! Webhooks reference library.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use catalogd::notify::EventKind;
use catalogd::notify::events::{self, NewEvent};
use catalogd::notify::mail::{self, OutgoingMail};
use magento_sim::{MagentoSim, SimConfig};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::helpers::{Registered, TestApp, error_code};
use crate::web::web_login;
use crate::webhooks::{self, Receiver};

/// The SMTP server process; it stops when dropped.
struct Sink {
    child: Child,
    port: u16,
    control: String,
    client: reqwest::Client,
    /// With `--tls`: the PEM file of the CA that signed the server's certificate.
    ca: Option<String>,
}

impl Drop for Sink {
    fn drop(&mut self) {
        drop(self.child.stdin.take());
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Sink {
    fn start() -> Sink {
        Sink::start_with(&[])
    }

    fn start_with(args: &[&str]) -> Sink {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/smtp_sink.py");
        let mut child = Command::new("python3")
            .arg(script)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("python3 runs the SMTP sink (scripts/test.sh installs aiosmtpd)");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let words: Vec<&str> = line.split_whitespace().collect();
        let ports: Vec<u16> = words.iter().filter_map(|p| p.parse().ok()).collect();
        assert_eq!(ports.len(), 2, "the sink printed no ports: {line:?}");
        Sink {
            child,
            port: ports[0],
            control: format!("http://127.0.0.1:{}", ports[1]),
            client: reqwest::Client::new(),
            ca: words.get(2).map(|c| c.to_string()),
        }
    }

    fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}", self.port)
    }

    async fn messages(&self) -> Vec<Value> {
        let messages: Vec<Value> = self
            .client
            .get(format!("{}/messages", self.control))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        for m in &messages {
            assert!(m.get("parse_error").is_none(), "unreadable mail: {m}");
        }
        messages
    }

    /// What `address` received, besides the mail about joining the workspace (the tests' members
    /// joined by invitation: the invitation itself, and the owner's `member.invited` notices).
    async fn to(&self, address: &str) -> Vec<Value> {
        self.messages()
            .await
            .into_iter()
            .filter(|m| m["rcpt_tos"] == json!([address]))
            .filter(|m| {
                let subject = m["subject"].as_str().unwrap_or_default();
                !subject.starts_with("Invitation to ") && !subject.contains(" invited ")
            })
            .collect()
    }

    async fn set(&self, mode: Value) {
        let res = self
            .client
            .put(format!("{}/mode", self.control))
            .json(&mode)
            .send()
            .await
            .unwrap();
        assert!(res.status().is_success());
    }

    async fn refusals(&self) -> u64 {
        self.client
            .get(format!("{}/refusals", self.control))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }
}

async fn spawn(sink: &Sink, extra: &[(&str, &str)]) -> TestApp {
    let url = sink.url();
    let mut env = vec![
        ("CATALOGD_EMAIL__SMTP_URL", url.as_str()),
        ("CATALOGD_EMAIL__FROM", "catalogd <catalogd@shop.test>"),
        ("CATALOGD_EMAIL__RETRY_BASE_DELAY_MS", "20"),
        ("CATALOGD_WEBHOOKS__RETRY_UNIT_MS", "0"),
    ];
    env.extend_from_slice(extra);
    TestApp::spawn_with(&env).await
}

/// Polls `check` until it gives a value (30 s at most).
async fn eventually<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(tokio::time::Instant::now() < deadline, "timed out: {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits until every event is fanned out and every message sent or given up: after that
/// nothing more arrives.
async fn settled(app: &TestApp) {
    eventually("notifications settle", || async {
        let (events, mail): (i64, i64) = sqlx::query_as(
            "SELECT (SELECT count(*) FROM events WHERE fanned_out_at IS NULL),
                    (SELECT count(*) FROM outgoing_mail WHERE status = 'pending')",
        )
        .fetch_one(&app.db)
        .await
        .unwrap();
        (events == 0 && mail == 0).then_some(())
    })
    .await;
}

async fn raise(app: &TestApp, owner: &Registered, kind: EventKind, summary: &str) -> Uuid {
    let mut tx = app.db.begin().await.unwrap();
    let id = events::record(
        &mut tx,
        NewEvent {
            kind,
            workspace_id: owner.workspace_id,
            store_id: None,
            job_id: None,
            summary: summary.into(),
            data: json!({"format": "magento_csv", "rows": 3}),
        },
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    id
}

fn link_in(text: &str, prefix: &str) -> String {
    let start = text
        .find(prefix)
        .unwrap_or_else(|| panic!("no {prefix} link in: {text}"));
    text[start..].split_whitespace().next().unwrap().to_string()
}

#[tokio::test]
async fn a_scheduled_pipeline_mails_each_reviewer_once_and_signs_its_webhooks() {
    let sink = Sink::start();
    let receiver = Receiver::start();
    let app = spawn(&sink, &[]).await;
    let sim = MagentoSim::start(SimConfig {
        products: 12,
        ..SimConfig::default()
    })
    .await
    .unwrap();
    let owner = app.register("owner@shop.test").await;
    app.member(&owner, "rita@shop.test", "reviewer").await;
    app.member(&owner, "rob@shop.test", "reviewer").await;
    app.member(&owner, "eddie@shop.test", "editor").await;
    let store_id = app.connect_store(&owner, &sim).await;
    let (hook, secret) = webhooks::create(
        &app,
        &owner,
        &receiver.url("pipeline"),
        &["review.ready", "pipeline.finished"],
    )
    .await;
    receiver.configure("pipeline", &secret, &[]).await;

    let (status, schedule) = app
        .call(
            reqwest::Method::PUT,
            &format!("/stores/{store_id}/schedule"),
            Some(&owner.access_token),
            Some(json!({"cron": "0 2 * * *", "timezone": "UTC", "pipeline": ["full_sync", "audit", "enrich"]})),
        )
        .await;
    assert_eq!(status, 200, "{schedule}");
    sqlx::query("UPDATE schedules SET next_run_at = now() - interval '1 minute'")
        .execute(&app.db)
        .await
        .unwrap();
    eventually("the run ends", || async {
        let finished: i64 =
            sqlx::query_scalar("SELECT count(*) FROM events WHERE kind = 'pipeline.finished'")
                .fetch_one(&app.db)
                .await
                .unwrap();
        (finished == 1).then_some(())
    })
    .await;
    settled(&app).await;

    let waiting: i64 =
        sqlx::query_scalar("SELECT count(*) FROM product_versions WHERE state = 'proposed'")
            .fetch_one(&app.db)
            .await
            .unwrap();
    assert!(waiting > 0, "the enrichment left proposals");
    // Members joined by invitation; the run's own events follow.
    let kinds: Vec<String> =
        sqlx::query_scalar("SELECT kind FROM events WHERE kind <> 'member.invited' ORDER BY id")
            .fetch_all(&app.db)
            .await
            .unwrap();
    assert_eq!(
        kinds,
        ["review.ready", "pipeline.finished"],
        "one review.ready per run"
    );

    let review = format!(
        "{}/w/{}/stores/{store_id}/review",
        app.base, owner.workspace_id
    );
    for reviewer in ["rita@shop.test", "rob@shop.test"] {
        let mails = sink.to(reviewer).await;
        assert_eq!(mails.len(), 1, "{reviewer}: {mails:?}");
        let mail = &mails[0];
        assert_eq!(
            mail["subject"],
            format!("[catalogd] {waiting} proposals wait for review in Sim")
        );
        let text = mail["text"].as_str().unwrap();
        assert!(text.contains(&review), "{text}");
        assert!(mail["html"].as_str().unwrap().contains(&review));
        assert!(text.contains("/unsubscribe?token="), "{text}");
        assert_eq!(mail["list_unsubscribe_post"], "List-Unsubscribe=One-Click");
        assert!(
            mail["list_unsubscribe"]
                .as_str()
                .unwrap()
                .contains("/api/v1/notifications/unsubscribe?token="),
            "{mail}"
        );
        assert!(
            mail["message_id"]
                .as_str()
                .unwrap()
                .ends_with("@shop.test>")
        );
        assert_eq!(mail["mail_from"], "catalogd@shop.test");
    }
    // The link works: a reviewer signed in sees the queue of that store.
    let mut session = web_login(&app, "rita@shop.test").await;
    let path = link_in(
        sink.to("rita@shop.test").await[0]["text"].as_str().unwrap(),
        &review,
    );
    let (status, _, page) = session.get(&app, &path[app.base.len()..]).await;
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("Review"), "{page}");

    // The owner gets both; the editor nothing.
    let owner_mail: Vec<String> = sink
        .to("owner@shop.test")
        .await
        .iter()
        .map(|m| m["subject"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(owner_mail.len(), 2, "{owner_mail:?}");
    assert!(
        owner_mail
            .iter()
            .any(|s| s.contains("scheduled run of Sim finished")),
        "{owner_mail:?}"
    );
    assert!(sink.to("eddie@shop.test").await.is_empty());

    // The endpoint got both events, each verified by the reference library.
    let received = receiver.wait_for("pipeline", 2).await;
    assert_eq!(received.len(), 2, "{received:?}");
    for delivery in &received {
        assert_eq!(delivery["verified"], true, "{delivery}");
    }
    let ready = received
        .iter()
        .find(|d| d["type"] == "review.ready")
        .expect("review.ready delivered");
    assert_eq!(ready["payload"]["data"]["proposals"], waiting);
    assert_eq!(ready["payload"]["data"]["store_id"], store_id);
    assert_eq!(ready["payload"]["data"]["url"], review);
    let finished = received
        .iter()
        .find(|d| d["type"] == "pipeline.finished")
        .expect("pipeline.finished delivered");
    let summary = &finished["payload"]["data"];
    assert_eq!(summary["status"], "succeeded", "{summary}");
    assert_eq!(summary["synced"], 12, "{summary}");
    assert!(summary["audit_score_after"].is_number(), "{summary}");
    assert_eq!(summary["proposals"], waiting, "{summary}");
    assert_eq!(summary["steps"].as_array().unwrap().len(), 3, "{summary}");
    let (_, listed) = app
        .get(&format!("/webhooks/{hook}/deliveries"), &owner.access_token)
        .await;
    assert!(
        listed["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|d| d["status"] == "delivered"),
        "{listed}"
    );
}

#[tokio::test]
async fn preferences_choose_the_mail_a_digest_gathers_review_ready_and_a_link_unsubscribes() {
    let sink = Sink::start();
    let app = spawn(&sink, &[]).await;
    let owner = app.register("owner@shop.test").await;
    let reviewer = app.member(&owner, "rita@shop.test", "reviewer").await;
    let ws = owner.workspace_id;
    let path = format!("/workspaces/{ws}/notification-preferences");

    let (status, defaults) = app.get(&path, &reviewer.access_token).await;
    assert_eq!(status, 200, "{defaults}");
    let email_of = |prefs: &Value, kind: &str| {
        prefs["preferences"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["kind"] == kind)
            .map(|p| {
                (
                    p["email"].as_bool().unwrap(),
                    p["digest"].as_bool().unwrap(),
                )
            })
            .unwrap()
    };
    assert_eq!(email_of(&defaults, "review.ready"), (true, false));
    assert_eq!(email_of(&defaults, "job.failed"), (true, false));
    assert_eq!(email_of(&defaults, "export.ready"), (false, false));

    for (body, field) in [
        (
            json!({"preferences": [{"kind": "job.exploded", "email": true}]}),
            "preferences",
        ),
        (
            json!({"preferences": [{"kind": "job.failed", "email": true, "digest": true}]}),
            "preferences",
        ),
    ] {
        let (status, error) = app
            .call(
                reqwest::Method::PUT,
                &path,
                Some(&reviewer.access_token),
                Some(body),
            )
            .await;
        assert_eq!(status, 422, "{error}");
        assert_eq!(error["error"]["field"], field);
    }
    let (status, chosen) = app
        .call(
            reqwest::Method::PUT,
            &path,
            Some(&reviewer.access_token),
            Some(json!({"preferences": [
                {"kind": "job.failed", "email": false},
                {"kind": "export.ready", "email": true},
                {"kind": "review.ready", "email": true, "digest": true}]})),
        )
        .await;
    assert_eq!(status, 200, "{chosen}");
    assert_eq!(email_of(&chosen, "job.failed"), (false, false));
    assert_eq!(email_of(&chosen, "export.ready"), (true, false));
    assert_eq!(email_of(&chosen, "review.ready"), (true, true));
    // Another workspace's preferences do not exist for a stranger; API keys have no person.
    let stranger = app.register("stranger@else.test").await;
    let (status, _) = app.get(&path, &stranger.access_token).await;
    assert_eq!(status, 404);
    let key = app.api_key(&owner, "admin").await;
    let (status, _) = app.get(&path, &key).await;
    assert_eq!(status, 403);

    // The day's digest has gone out before these events (the first scheduler tick).
    eventually("the first digest tick", || async {
        sqlx::query_scalar::<_, i64>(
            "SELECT count(*) FROM maintenance_runs WHERE task = 'notify.digest' AND last_finished_at IS NOT NULL",
        )
        .fetch_one(&app.db)
        .await
        .unwrap()
        .eq(&1)
        .then_some(())
    })
    .await;
    raise(
        &app,
        &owner,
        EventKind::JobFailed,
        "The sync job of Sim failed: boom",
    )
    .await;
    raise(
        &app,
        &owner,
        EventKind::ExportReady,
        "The magento_csv export of Sim is ready",
    )
    .await;
    raise(
        &app,
        &owner,
        EventKind::ReviewReady,
        "4 proposals wait for review in Sim",
    )
    .await;
    settled(&app).await;
    let rita = sink.to("rita@shop.test").await;
    let subjects: Vec<&str> = rita
        .iter()
        .map(|m| m["subject"].as_str().unwrap())
        .collect();
    assert_eq!(
        subjects,
        ["[catalogd] The magento_csv export of Sim is ready"]
    );
    assert_eq!(sink.to("owner@shop.test").await.len(), 3);

    // A day later, the digest.
    sqlx::query(
        "UPDATE maintenance_runs SET last_started_at = last_started_at - interval '1 day'
         WHERE task = 'notify.digest'",
    )
    .execute(&app.db)
    .await
    .unwrap();
    let digest = eventually("the digest", || async {
        sink.to("rita@shop.test")
            .await
            .into_iter()
            .find(|m| m["subject"].as_str().unwrap().contains("Daily digest"))
    })
    .await;
    let text = digest["text"].as_str().unwrap();
    assert!(
        text.contains("4 proposals wait for review in Sim"),
        "{text}"
    );
    assert!(text.contains(&format!("{}/w/{ws}", app.base)), "{text}");
    settled(&app).await;
    assert_eq!(sink.to("rita@shop.test").await.len(), 2);

    // One click on the export mail's List-Unsubscribe, without signing in.
    let export_mail = &rita[0];
    let one_click = export_mail["list_unsubscribe"]
        .as_str()
        .unwrap()
        .trim_matches(['<', '>'])
        .to_string();
    let res = app
        .client
        .post(&one_click)
        .header("content-type", "application/x-www-form-urlencoded")
        .body("List-Unsubscribe=One-Click")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let (_, now) = app.get(&path, &reviewer.access_token).await;
    assert_eq!(email_of(&now, "export.ready"), (false, false));
    raise(
        &app,
        &owner,
        EventKind::ExportReady,
        "The second export is ready",
    )
    .await;
    settled(&app).await;
    assert_eq!(
        sink.to("rita@shop.test").await.len(),
        2,
        "no mail after unsubscribing"
    );

    // The page behind the mailed link asks first, then unsubscribes (no session needed).
    let page_link = link_in(
        export_mail["text"].as_str().unwrap(),
        &format!("{}/unsubscribe?token=", app.base),
    );
    let mut visitor = crate::web::WebSession::anonymous();
    let (status, _, page) = visitor.get(&app, &page_link[app.base.len()..]).await;
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("An export is ready"), "{page}");
    let csrf = crate::web::csrf_token(&page);
    let token = page_link.split("token=").nth(1).unwrap().to_string();
    let (status, _, done) = visitor
        .post(
            &app,
            "/unsubscribe",
            Some(&app.base),
            &[("csrf", &csrf), ("token", &token)],
        )
        .await;
    assert_eq!(status, 200, "{done}");
    assert!(done.contains("no more mails"), "{done}");

    // A forged or cut link does nothing.
    let forged = one_click.replace("token=", "token=x");
    let res = app.client.post(&forged).send().await.unwrap();
    assert_eq!(res.status(), 400);
    let body: Value = res.json().await.unwrap();
    assert_eq!(error_code(&body), "bad_request");
}

#[tokio::test]
async fn an_smtp_outage_is_retried_and_the_message_delivered_once() {
    let sink = Sink::start();
    sink.set(json!({"down": true})).await;
    let app = spawn(&sink, &[("CATALOGD_EMAIL__MAX_ATTEMPTS", "50")]).await;
    let queue = || async {
        let mut tx = app.db.begin().await.unwrap();
        let id = mail::enqueue(
            &mut tx,
            OutgoingMail {
                to: "someone@shop.test".into(),
                subject: "Your invitation".into(),
                text: "Accept it at http://example.test/invitations?token=abc".into(),
                html: None,
                idempotency_key: "invitation:1".into(),
            },
        )
        .await
        .unwrap();
        tx.commit().await.unwrap();
        id
    };
    let id = queue().await;
    // The same key queues nothing more.
    assert_eq!(queue().await, id);
    let mut tx = app.db.begin().await.unwrap();
    let refused = mail::enqueue(
        &mut tx,
        OutgoingMail {
            to: "not an address".into(),
            subject: "x".into(),
            text: "x".into(),
            html: None,
            idempotency_key: "bad".into(),
        },
    )
    .await;
    assert!(
        matches!(refused, Err(mail::MailError::InvalidRecipient(_))),
        "{refused:?}"
    );
    drop(tx);

    // The server is down: attempts fail and are recorded, and nothing arrives.
    let failed = eventually("three failed attempts", || async {
        let (attempts, error): (i32, Option<String>) =
            sqlx::query_as("SELECT attempts, last_error FROM outgoing_mail WHERE id = $1")
                .bind(id)
                .fetch_one(&app.db)
                .await
                .unwrap();
        (attempts >= 3).then_some(error)
    })
    .await;
    assert!(failed.unwrap().contains("421"));
    assert!(sink.refusals().await >= 3);
    assert!(sink.messages().await.is_empty());

    sink.set(json!({"down": false})).await;
    settled(&app).await;
    let (status, attempts, via): (String, i32, String) =
        sqlx::query_as("SELECT status, attempts, sent_via FROM outgoing_mail WHERE id = $1")
            .bind(id)
            .fetch_one(&app.db)
            .await
            .unwrap();
    assert_eq!(status, "sent");
    assert!(attempts >= 4, "{attempts}");
    assert_eq!(via, sink.url());
    let messages = sink.messages().await;
    assert_eq!(messages.len(), 1, "delivered once: {messages:?}");
    assert_eq!(messages[0]["subject"], "Your invitation");
    assert_eq!(
        messages[0]["message_id"],
        format!("<{}@shop.test>", id.simple())
    );
    assert!(messages[0]["html"].is_null());
}

#[tokio::test]
async fn without_smtp_mail_is_written_to_the_data_directory() {
    let app = TestApp::spawn().await;
    let owner = app.register("owner@shop.test").await;
    raise(
        &app,
        &owner,
        EventKind::ExportReady,
        "The magento_csv export of Sim is ready",
    )
    .await;
    settled(&app).await;
    let (id, via): (Uuid, String) =
        sqlx::query_as("SELECT id, sent_via FROM outgoing_mail WHERE status = 'sent'")
            .fetch_one(&app.db)
            .await
            .unwrap();
    let dir = app.data_dir.join("mail");
    assert!(via.starts_with(&dir.display().to_string()), "{via}");
    let files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(files.len(), 1, "{files:?}");
    assert!(
        files[0].ends_with(&format!("{}.eml", id.simple())),
        "{files:?}"
    );
    let text = std::fs::read_to_string(&via).unwrap();
    assert!(text.contains("To: owner@shop.test"), "{text}");
    assert!(
        text.contains("Subject: [catalogd] The magento_csv export of Sim is ready"),
        "{text}"
    );
}

#[tokio::test]
async fn mail_goes_over_starttls_with_its_login_and_only_to_a_certificate_it_trusts() {
    let sink = Sink::start_with(&["--tls"]);
    let ca = sink.ca.clone().expect("the sink names its CA");
    let login = [
        ("CATALOGD_EMAIL__USERNAME", "mailer"),
        ("CATALOGD_EMAIL__PASSWORD", "s3cret-pass"),
    ];
    let send = |app: &TestApp| {
        let db = app.db.clone();
        async move {
            let mut tx = db.begin().await.unwrap();
            let id = mail::enqueue(
                &mut tx,
                OutgoingMail {
                    to: "someone@shop.test".into(),
                    subject: "Over TLS".into(),
                    text: "Hello".into(),
                    html: None,
                    idempotency_key: "tls:1".into(),
                },
            )
            .await
            .unwrap();
            tx.commit().await.unwrap();
            id
        }
    };

    // Without the private CA, the server's certificate is not trusted: nothing is sent, and
    // the login never crosses.
    let untrusting = spawn(&sink, &login).await;
    let id = send(&untrusting).await;
    let error = eventually("a refused attempt", || async {
        sqlx::query_scalar::<_, Option<String>>(
            "SELECT last_error FROM outgoing_mail WHERE id = $1 AND attempts > 0",
        )
        .bind(id)
        .fetch_optional(&untrusting.db)
        .await
        .unwrap()
        .flatten()
    })
    .await;
    assert!(error.to_lowercase().contains("certificate"), "{error}");
    assert!(!error.contains("s3cret-pass"));
    drop(untrusting);
    assert!(sink.messages().await.is_empty());

    let mut trusted = login.to_vec();
    trusted.push(("CATALOGD_EMAIL__CA_FILE", ca.as_str()));
    let app = spawn(&sink, &trusted).await;
    send(&app).await;
    settled(&app).await;
    let messages = sink.messages().await;
    assert_eq!(messages.len(), 1, "{messages:?}");
    assert_eq!(messages[0]["tls"], true);
    assert_eq!(messages[0]["login"], "mailer");
    assert_eq!(messages[0]["subject"], "Over TLS");
}

#[tokio::test]
async fn a_store_losing_a_permission_or_its_token_raises_events_for_mail_and_webhooks() {
    let sink = Sink::start();
    let receiver = Receiver::start();
    let app = spawn(&sink, &[]).await;
    let sim = MagentoSim::start(SimConfig {
        products: 5,
        ..SimConfig::default()
    })
    .await
    .unwrap();
    let owner = app.register("owner@shop.test").await;
    let store_id = app.connect_store(&owner, &sim).await;
    let (_, secret) = webhooks::create(
        &app,
        &owner,
        &receiver.url("store"),
        &[
            "store.needs_reauth",
            "store.permission_missing",
            "job.failed",
        ],
    )
    .await;
    receiver.configure("store", &secret, &[]).await;
    let key = sim.credentials().consumer_key;
    let failed_sync = || async {
        let (status, started) = app
            .post(
                &format!("/stores/{store_id}/sync"),
                Some(&owner.access_token),
                json!({"mode": "full"}),
            )
            .await;
        assert_eq!(status, 202, "{started}");
        let job = app
            .wait_for_job(
                &owner.access_token,
                started["job_id"].as_str().unwrap(),
                Duration::from_secs(60),
            )
            .await;
        assert_eq!(job["status"], "failed", "{job}");
    };

    // The integration loses the products resource, then Magento's Reauthorize drops the token.
    sim.deny_resource(&key, magento_sim::acl::PRODUCTS).unwrap();
    failed_sync().await;
    sim.grant_resource(&key, magento_sim::acl::PRODUCTS)
        .unwrap();
    let _ = sim.reauthorize(&key, "http://127.0.0.1:9/callback").await;
    failed_sync().await;
    settled(&app).await;

    let kinds: Vec<String> = sqlx::query_scalar("SELECT kind FROM events ORDER BY id")
        .fetch_all(&app.db)
        .await
        .unwrap();
    assert_eq!(
        kinds,
        [
            "store.permission_missing",
            "job.failed",
            "store.needs_reauth",
            "job.failed"
        ]
    );
    let received = receiver.wait_for("store", 4).await;
    assert_eq!(received.len(), 4, "{received:?}");
    for delivery in &received {
        assert_eq!(delivery["verified"], true, "{delivery}");
        assert_eq!(delivery["payload"]["data"]["store_id"], store_id);
    }
    let missing = received
        .iter()
        .find(|d| d["type"] == "store.permission_missing")
        .unwrap();
    assert_eq!(
        missing["payload"]["data"]["resource"],
        magento_sim::acl::PRODUCTS
    );

    let mails = sink.to("owner@shop.test").await;
    assert_eq!(mails.len(), 4, "{mails:?}");
    // By subject's start: the job.failed mails quote Magento's refusal too.
    let text_of = |start: &str| -> String {
        mails
            .iter()
            .find(|m| m["subject"].as_str().unwrap().starts_with(start))
            .unwrap_or_else(|| panic!("no mail starting {start}: {mails:?}"))["text"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let reauth = text_of("[catalogd] Sim needs reauthorisation");
    assert!(reauth.contains("Reauthorize"), "{reauth}");
    assert!(
        reauth.contains(&format!("/w/{}/stores/{store_id}", owner.workspace_id)),
        "{reauth}"
    );
    let permission = text_of("[catalogd] Magento refused");
    assert!(permission.contains("API tab"), "{permission}");
}
