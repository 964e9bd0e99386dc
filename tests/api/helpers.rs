//! `TestApp`: the real application on a loopback port with its own PostgreSQL database.
//!
//! Each test gets a fresh database cloned from a migrated template (built once per
//! migration set, shared by concurrent test processes through an advisory lock), so tests
//! are isolated and cheap. The database is dropped when the `TestApp` goes away.

use catalogd::app::Application;
use catalogd::config::Settings;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use sqlx::{Connection, Executor, PgConnection, PgPool};
use uuid::Uuid;

pub const PASSWORD: &str = "correct horse battery staple";
pub const JWT_SECRET: &str = "test-jwt-secret-that-is-long-enough-0123456789";

pub fn admin_url() -> String {
    std::env::var("TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_string())
}

fn url_for(database: &str) -> String {
    let mut url = url::Url::parse(&admin_url()).expect("TEST_DATABASE_URL is a URL");
    url.set_path(database);
    url.to_string()
}

/// The migrated template every test database is copied from.
async fn template() -> String {
    let mut digest = Sha256::new();
    for m in catalogd::db::MIGRATOR
        .iter()
        .chain(apalis_postgres::PostgresStorage::<()>::migrations().iter())
    {
        digest.update(&*m.checksum);
    }
    let name = format!("catalogd_tmpl_{}", &hex::encode(digest.finalize())[..16]);
    let mut admin = PgConnection::connect(&admin_url())
        .await
        .expect("PostgreSQL is running");
    admin
        .execute("SELECT pg_advisory_lock(727274)")
        .await
        .unwrap();
    let exists: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
            .bind(&name)
            .fetch_one(&mut admin)
            .await
            .unwrap();
    if !exists {
        let building = format!("{name}_build");
        admin
            .execute(sqlx::AssertSqlSafe(format!(
                r#"DROP DATABASE IF EXISTS "{building}""#
            )))
            .await
            .unwrap();
        admin
            .execute(sqlx::AssertSqlSafe(format!(
                r#"CREATE DATABASE "{building}""#
            )))
            .await
            .unwrap();
        {
            let pool = PgPool::connect(&url_for(&building)).await.unwrap();
            catalogd::db::migrate(&pool).await.unwrap();
            pool.close().await;
        }
        admin
            .execute(sqlx::AssertSqlSafe(format!(
                r#"ALTER DATABASE "{building}" RENAME TO "{name}""#
            )))
            .await
            .unwrap();
    }
    admin
        .execute("SELECT pg_advisory_unlock(727274)")
        .await
        .unwrap();
    name
}

/// Creates an empty-but-migrated database and returns its name.
pub async fn fresh_database() -> String {
    let template = template().await;
    let name = format!("catalogd_test_{}", Uuid::new_v4().simple());
    let mut admin = PgConnection::connect(&admin_url()).await.unwrap();
    admin
        .execute(sqlx::AssertSqlSafe(format!(
            r#"CREATE DATABASE "{name}" TEMPLATE "{template}""#
        )))
        .await
        .unwrap();
    name
}

pub fn drop_database(name: &str) {
    let name = name.to_string();
    // Drop runs outside any async context; a short-lived runtime on its own thread does the work.
    let _ = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            if let Ok(mut admin) = PgConnection::connect(&admin_url()).await {
                let _ = admin
                    .execute(sqlx::AssertSqlSafe(format!(
                        r#"DROP DATABASE IF EXISTS "{name}" WITH (FORCE)"#
                    )))
                    .await;
            }
        });
    })
    .join();
}

pub struct TestApp {
    pub base: String,
    pub db: PgPool,
    pub db_name: String,
    pub client: reqwest::Client,
    pub data_dir: std::path::PathBuf,
    /// The application's object storage, to look at what jobs stored.
    pub storage: catalogd::storage::Storage,
    _server: tokio::task::JoinHandle<()>,
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self._server.abort();
        drop_database(&self.db_name);
        let _ = std::fs::remove_dir_all(&self.data_dir);
    }
}

pub fn test_env(db_name: &str, data_dir: &std::path::Path) -> Vec<(String, String)> {
    vec![
        ("DATABASE_URL".into(), url_for(db_name)),
        ("CATALOGD_LISTEN".into(), "127.0.0.1:0".into()),
        ("CATALOGD_DATA_DIR".into(), data_dir.display().to_string()),
        ("CATALOGD_JWT_SECRET".into(), JWT_SECRET.into()),
        ("CATALOGD_AUTH__BCRYPT_COST".into(), "4".into()),
        ("CATALOGD_JOBS__HEARTBEAT_SECS".into(), "1".into()),
        ("CATALOGD_JOBS__MISSED_HEARTBEATS".into(), "2".into()),
        ("CATALOGD_JOBS__RETRY_BASE_DELAY_MS".into(), "50".into()),
        ("CATALOGD_JOBS__GRACE_PERIOD_SECS".into(), "5".into()),
        ("CATALOGD_JOBS__SCHEDULER_TICK_SECS".into(), "1".into()),
        // The simulator and the provider fakes are on loopback, which the default refuses.
        ("CATALOGD_EGRESS__ALLOW".into(), r#"["127.0.0.0/8"]"#.into()),
    ]
}

impl TestApp {
    pub async fn spawn() -> TestApp {
        Self::spawn_with(&[]).await
    }

    /// `overrides` are extra `CATALOGD_*` variables, e.g. `("CATALOGD_HTTP__BODY_LIMIT_BYTES", "512")`.
    pub async fn spawn_with(overrides: &[(&str, &str)]) -> TestApp {
        let db_name = fresh_database().await;
        let data_dir =
            std::env::temp_dir().join(format!("catalogd-test-{}", Uuid::new_v4().simple()));
        let mut env = test_env(&db_name, &data_dir);
        env.extend(
            overrides
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string())),
        );
        let settings = Settings::load_from(None, env).expect("test settings are valid");
        let app = Application::build(settings)
            .await
            .expect("application builds");
        let addr = app.local_addr();
        let db = app.state().db.clone();
        let storage = app.state().storage.clone();
        let state = app.state().clone();
        let server = tokio::spawn(async move {
            let scheduler = tokio::spawn(catalogd::schedules::run_scheduler(
                state.clone(),
                std::future::pending(),
            ));
            let workers = state.settings.jobs.workers_in_serve.then(|| {
                tokio::spawn(catalogd::jobs::runner::run(
                    state.clone(),
                    std::future::pending(),
                ))
            });
            let _ = app.run(std::future::pending()).await;
            scheduler.abort();
            if let Some(workers) = workers {
                workers.abort();
            }
        });
        TestApp {
            base: format!("http://{addr}"),
            db,
            db_name,
            client: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            data_dir,
            storage,
            _server: server,
        }
    }

    /// The application with its object storage on `s3` (plus `overrides`).
    pub async fn spawn_with_s3(
        s3: &crate::s3_server::S3Server,
        overrides: &[(&str, &str)],
    ) -> TestApp {
        let env = s3.env();
        let mut all: Vec<(&str, &str)> =
            env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        all.extend_from_slice(overrides);
        Self::spawn_with(&all).await
    }

    pub fn url(&self, path: &str) -> String {
        if path.starts_with("/api/")
            || !path.starts_with('/')
            || path.starts_with("/healthz")
            || path.starts_with("/readyz")
            || path.starts_with("/metrics")
            || path.starts_with("/integrations")
        {
            format!("{}{}", self.base, path)
        } else {
            format!("{}/api/v1{}", self.base, path)
        }
    }

    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut req = self.client.request(method, self.url(path));
        if let Some(token) = token {
            req = req.bearer_auth(token);
        }
        if let Some(body) = body {
            req = req.json(&body);
        }
        let res = req.send().await.expect("request reaches the app");
        let status = res.status().as_u16();
        let text = res.text().await.unwrap();
        let value = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        (status, value)
    }

    pub async fn get(&self, path: &str, token: &str) -> (u16, Value) {
        self.call(reqwest::Method::GET, path, Some(token), None)
            .await
    }

    /// Every item of a paginated list, following `next_cursor` to the end.
    pub async fn get_all(&self, path: &str, token: &str) -> Vec<Value> {
        let separator = if path.contains('?') { '&' } else { '?' };
        let mut items = Vec::new();
        let mut cursor = String::new();
        loop {
            let (status, page) = self.get(&format!("{path}{cursor}"), token).await;
            assert_eq!(status, 200, "{path}{cursor}: {page}");
            items.extend(page["items"].as_array().expect("a list").iter().cloned());
            match page["next_cursor"].as_str() {
                Some(c) => cursor = format!("{separator}cursor={c}"),
                None => return items,
            }
        }
    }

    pub async fn post(&self, path: &str, token: Option<&str>, body: Value) -> (u16, Value) {
        self.call(reqwest::Method::POST, path, token, Some(body))
            .await
    }

    pub async fn register(&self, email: &str) -> Registered {
        let (status, body) = self
            .post(
                "/auth/register",
                None,
                json!({"email": email, "password": PASSWORD, "name": "Test User", "workspace_name": format!("{email} shop")}),
            )
            .await;
        assert_eq!(status, 201, "{body}");
        Registered {
            user_id: body["user"]["id"].as_str().unwrap().parse().unwrap(),
            workspace_id: body["workspace"]["id"].as_str().unwrap().parse().unwrap(),
            access_token: body["access_token"].as_str().unwrap().to_string(),
            refresh_token: body["refresh_token"].as_str().unwrap().to_string(),
        }
    }

    /// Registers `email` and makes them a member of `owner`'s workspace with `role`: invited,
    /// and accepting the mailed link.
    pub async fn member(&self, owner: &Registered, email: &str, role: &str) -> Registered {
        let user = self.register(email).await;
        self.invite_and_accept(owner.workspace_id, owner, &user, email, role)
            .await;
        user
    }

    /// `inviter` invites `email` to workspace `ws` as `role`; `user` (signed in with that
    /// address) accepts.
    pub async fn invite_and_accept(
        &self,
        ws: Uuid,
        inviter: &Registered,
        user: &Registered,
        email: &str,
        role: &str,
    ) {
        let (status, body) = self
            .post(
                &format!("/workspaces/{ws}/members"),
                Some(&inviter.access_token),
                json!({"email": email, "role": role}),
            )
            .await;
        assert_eq!(status, 202, "{body}");
        let token = self.mailed_token(email, "/invitations?token=").await;
        let (status, body) = self
            .post(
                "/invitations/accept",
                Some(&user.access_token),
                json!({"token": token}),
            )
            .await;
        assert_eq!(status, 200, "{body}");
    }

    /// The token of the newest link to `path` (e.g. `/invitations?token=`) in mail queued to
    /// `to`. Mail is queued in the transaction of what sent it, so it is there once the
    /// request has answered.
    pub async fn mailed_token(&self, to: &str, path: &str) -> String {
        let bodies: Vec<String> = sqlx::query_scalar(
            "SELECT body_text FROM outgoing_mail WHERE recipient = $1 ORDER BY created_at DESC, id DESC",
        )
        .bind(to)
        .fetch_all(&self.db)
        .await
        .unwrap();
        bodies
            .iter()
            .find_map(|body| {
                let at = body.find(path)? + path.len();
                let token: String = body[at..]
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-'))
                    .collect();
                (!token.is_empty()).then_some(token)
            })
            .unwrap_or_else(|| panic!("no mail to {to} with a link to {path}: {bodies:?}"))
    }

    pub async fn api_key(&self, owner: &Registered, role: &str) -> String {
        let (status, body) = self
            .post(
                &format!("/workspaces/{}/api-keys", owner.workspace_id),
                Some(&owner.access_token),
                json!({"name": format!("{role} key"), "role": role}),
            )
            .await;
        assert_eq!(status, 201, "{body}");
        body["key"].as_str().unwrap().to_string()
    }
}

pub struct Registered {
    pub user_id: Uuid,
    pub workspace_id: Uuid,
    pub access_token: String,
    pub refresh_token: String,
}

/// Asserts the API's error shape and returns its code.
/// Sends `body` to `path` without a token and checks the answer is a 429 `rate_limited` whose
/// `Retry-After` is within the minute.
pub async fn assert_rate_limited(app: &TestApp, path: &str, body: Value) {
    let res = app
        .client
        .post(app.url(path))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 429);
    let retry_after: u64 = res.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry_after), "{retry_after}");
    let body: Value = res.json().await.unwrap();
    assert_eq!(error_code(&body), "rate_limited");
}

pub fn error_code(body: &Value) -> &str {
    let code = body["error"]["code"]
        .as_str()
        .unwrap_or_else(|| panic!("not an error body: {body}"));
    assert!(
        body["error"]["message"].is_string(),
        "error without message: {body}"
    );
    code
}

impl TestApp {
    /// Polls a job until it finishes (or `timeout` passes) and returns it.
    pub async fn wait_for_job(
        &self,
        token: &str,
        job_id: &str,
        timeout: std::time::Duration,
    ) -> Value {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let (status, job) = self.get(&format!("/jobs/{job_id}"), token).await;
            assert_eq!(status, 200, "{job}");
            if matches!(
                job["status"].as_str(),
                Some("succeeded" | "failed" | "cancelled")
            ) {
                return job;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "job did not finish in time: {job}"
            );
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }

    /// Connects the simulator as an active store and returns the store id.
    pub async fn connect_store(&self, owner: &Registered, sim: &magento_sim::MagentoSim) -> String {
        let store = self
            .connect_store_with(
                owner,
                sim,
                json!({"rate_limit": {"requests_per_second": 200, "max_concurrency": 4}}),
            )
            .await;
        assert!(store["id"].is_string(), "{store}");
        store["id"].as_str().unwrap().to_string()
    }

    /// Posts a store with the simulator's credentials plus `extra` fields; returns the answer.
    pub async fn connect_store_with(
        &self,
        owner: &Registered,
        sim: &magento_sim::MagentoSim,
        extra: Value,
    ) -> Value {
        let c = sim.credentials();
        let mut body = json!({"name": "Sim", "base_url": sim.base_url(), "credentials": {
            "consumer_key": c.consumer_key, "consumer_secret": c.consumer_secret,
            "access_token": c.access_token, "access_token_secret": c.access_token_secret}});
        for (k, v) in extra.as_object().into_iter().flatten() {
            body[k] = v.clone();
        }
        let (status, store) = self
            .post(
                &format!("/workspaces/{}/stores", owner.workspace_id),
                Some(&owner.access_token),
                body,
            )
            .await;
        if status != 201 {
            return json!({"status": status, "body": store});
        }
        store
    }

    /// Polls a job until its progress reaches `done` and returns it.
    pub async fn wait_for_progress(&self, token: &str, job_id: &str, done: i64) -> Value {
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(60);
        loop {
            let (_, job) = self.get(&format!("/jobs/{job_id}"), token).await;
            if job["progress"]["done"].as_i64().unwrap_or(0) >= done {
                return job;
            }
            assert!(tokio::time::Instant::now() < deadline, "no progress: {job}");
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }

    /// Posts a request that starts a job (202 with `job_id`), waits for the job and checks it
    /// succeeded; returns the answer to the post and the finished job.
    pub async fn run_job(&self, path: &str, token: &str, body: Value) -> (Value, Value) {
        let (status, started) = self.post(path, Some(token), body).await;
        assert_eq!(status, 202, "{started}");
        let job = self
            .wait_for_job(
                token,
                started["job_id"].as_str().unwrap(),
                std::time::Duration::from_secs(60),
            )
            .await;
        assert_eq!(job["status"], "succeeded", "{job}");
        (started, job)
    }

    /// A human edit of a product (`POST /products/{id}/versions`), approved; returns the
    /// proposal's id.
    pub async fn approved_edit(&self, token: &str, product_id: &str, edit: Value) -> String {
        let (status, proposal) = self
            .post(
                &format!("/products/{product_id}/versions"),
                Some(token),
                edit,
            )
            .await;
        assert_eq!(status, 201, "{proposal}");
        let id = proposal["id"].as_str().unwrap().to_string();
        let (status, approved) = self
            .post(&format!("/proposals/{id}/approve"), Some(token), json!({}))
            .await;
        assert_eq!(status, 200, "{approved}");
        id
    }

    /// Starts a sync and waits for it to finish.
    pub async fn sync(&self, owner: &Registered, store_id: &str, mode: &str) -> Value {
        let path = format!("/stores/{store_id}/sync");
        let (_, job) = self
            .run_job(&path, &owner.access_token, json!({"mode": mode}))
            .await;
        job
    }
}

impl TestApp {
    /// A `catalogd worker` process on this app's database, with `extra` environment on top of
    /// the test settings (its output discarded). The caller kills it.
    pub fn start_worker(&self, extra: &[(String, String)]) -> std::process::Child {
        std::process::Command::new(env!("CARGO_BIN_EXE_catalogd"))
            .arg("worker")
            .envs(test_env(&self.db_name, &self.data_dir))
            .envs(extra.iter().cloned())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("worker starts")
    }
}

/// The subject and text of the first message sent to `address`, once it is sent (60 s at most).
pub async fn eventually_sent_mail(app: &TestApp, address: &str) -> (String, String) {
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let sent: Option<(String, String)> = sqlx::query_as(
            "SELECT subject, body_text FROM outgoing_mail
             WHERE recipient = $1 AND status = 'sent' ORDER BY created_at LIMIT 1",
        )
        .bind(address)
        .fetch_optional(&app.db)
        .await
        .unwrap();
        if let Some(mail) = sent {
            return mail;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no mail was sent to {address}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}
