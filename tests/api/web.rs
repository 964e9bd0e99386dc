//! The web UI: a real headless Chromium through chromedriver drives the whole flow against the
//! simulator, and plain HTTP checks cookies, CSRF, the CSP and what a viewer may do.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use fantoccini::actions::{InputSource, KeyAction, KeyActions};
use fantoccini::{Client, ClientBuilder, Locator};
use magento_sim::{MagentoSim, SimConfig};
use reqwest::header::{HeaderMap, SET_COOKIE};
use serde_json::{Value, json};

use crate::helpers::{PASSWORD, Registered, TestApp};

const WAIT: Duration = Duration::from_secs(90);

/// chromedriver on a free port, stopped when dropped.
struct Driver {
    child: Child,
    url: String,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn start_driver() -> Driver {
    let chromedriver =
        std::env::var("CHROMEDRIVER").unwrap_or_else(|_| "/usr/bin/chromedriver".into());
    assert!(
        std::path::Path::new(&chromedriver).exists(),
        "{chromedriver} is missing: install Debian's chromium and chromium-driver (scripts/test.sh does)"
    );
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new(&chromedriver)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("chromedriver starts");
    let driver = Driver {
        child,
        url: format!("http://127.0.0.1:{port}"),
    };
    let client = reqwest::Client::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let ready = client
            .get(format!("{}/status", driver.url))
            .send()
            .await
            .ok()
            .filter(|r| r.status().is_success());
        if ready.is_some() {
            return driver;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "chromedriver did not start"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn browser(driver: &Driver) -> Client {
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        json!({
            "binary": std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into()),
            "args": ["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--no-first-run", "--disable-background-networking", "--disable-component-update",
                "--disable-sync", "--window-size=1280,900"],
        }),
    );
    ClientBuilder::rustls()
        .expect("TLS roots load")
        .capabilities(caps)
        .connect(&driver.url)
        .await
        .expect("chromium session starts")
}

/// Every form control has a label, every picture an alt attribute, and nothing is wider than
/// the window (the pages work at a phone's width as well as at 1280 px).
const ACCESSIBILITY_CHECK: &str = r#"
const problems = [];
document.querySelectorAll('input:not([type=hidden]), select, textarea').forEach((el) => {
  if (el.labels.length === 0 && !el.getAttribute('aria-label')) problems.push('unlabelled ' + el.outerHTML);
});
document.querySelectorAll('img').forEach((el) => {
  if (!el.hasAttribute('alt')) problems.push('no alt ' + el.outerHTML);
});
document.querySelectorAll('button').forEach((el) => {
  if (el.textContent.trim() === '' && !el.getAttribute('aria-label')) problems.push('unnamed ' + el.outerHTML);
});
if (document.querySelectorAll('h1').length !== 1) problems.push('not exactly one h1');
if (document.documentElement.scrollWidth > window.innerWidth + 1) {
  problems.push('wider than the window: ' + document.documentElement.scrollWidth + ' > ' + window.innerWidth);
}
return problems;
"#;

/// Checks the page's accessibility basics and saves a screenshot as a test artifact under
/// `<target>/screenshots/`.
async fn screenshot(client: &Client, name: &str) {
    let problems = client.execute(ACCESSIBILITY_CHECK, vec![]).await.unwrap();
    assert_eq!(
        problems,
        json!([]),
        "accessibility problems on the {name} page"
    );
    let target = std::env::var("CARGO_TARGET_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|_| std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target"));
    let dir = target.join("screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    let png = client.screenshot().await.expect("screenshot");
    std::fs::write(dir.join(format!("{name}.png")), png).unwrap();
}

async fn wait_for(client: &Client, css: &str) -> fantoccini::elements::Element {
    client
        .wait()
        .at_most(WAIT)
        .for_element(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("{css} did not appear: {e}"))
}

async fn fill(client: &Client, css: &str, value: &str) {
    let field = wait_for(client, css).await;
    field.clear().await.unwrap();
    field.send_keys(value).await.unwrap();
}

async fn click(client: &Client, css: &str) {
    wait_for(client, css).await.click().await.unwrap();
}

/// Waits until the job page shows a finished job and returns its final status.
async fn finished_job(client: &Client) -> String {
    let done = wait_for(
        client,
        "#job-status[data-status=succeeded], #job-status[data-status=failed], #job-status[data-status=cancelled]",
    )
    .await;
    done.attr("data-status").await.unwrap().unwrap()
}

async fn press(client: &Client, key: char) {
    let keys = KeyActions::new("keyboard".into())
        .then(KeyAction::Down { value: key })
        .then(KeyAction::Up { value: key });
    client.perform_actions(keys).await.unwrap();
}

/// Polls the page (bounded) until `gone` no longer matches anything.
async fn wait_gone(client: &Client, css: &str) {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let found = client.find_all(Locator::Css(css)).await.unwrap_or_default();
        if found.is_empty() {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{css} is still shown"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn version_state(app: &TestApp, id: &str) -> String {
    sqlx::query_scalar("SELECT state::text FROM product_versions WHERE id = $1::uuid")
        .bind(id)
        .fetch_one(&app.db)
        .await
        .unwrap()
}

async fn sim(products: usize) -> MagentoSim {
    MagentoSim::start(SimConfig {
        products,
        ..SimConfig::default()
    })
    .await
    .expect("simulator starts")
}

#[tokio::test]
async fn a_store_owner_goes_from_sign_up_to_a_downloaded_export_in_the_browser() {
    let app = TestApp::spawn().await;
    let sim = sim(8).await;
    let driver = start_driver().await;
    let client = browser(&driver).await;

    // Sign up.
    client.goto(&format!("{}/signup", app.base)).await.unwrap();
    fill(&client, "#name", "Sam Owner").await;
    fill(&client, "#email", "sam@example.com").await;
    fill(&client, "#password", PASSWORD).await;
    fill(&client, "#workspace_name", "Sam's shop").await;
    screenshot(&client, "signup").await;
    click(&client, "form.card button[type=submit]").await;
    wait_for(&client, "#connect-heading").await;
    let stores_url = client.current_url().await.unwrap().to_string();
    assert!(
        stores_url.contains("/w/") && stores_url.ends_with("/stores"),
        "{stores_url}"
    );

    // Connect through Magento's handshake: the page shows both URLs and turns active live.
    fill(&client, "#store-name", "Handshake shop").await;
    fill(&client, "#base-url", &sim.base_url()).await;
    click(&client, "#connect-heading + form button[type=submit]").await;
    let callback = wait_for(&client, "#callback-url")
        .await
        .prop("value")
        .await
        .unwrap()
        .unwrap();
    let identity = wait_for(&client, "#identity-url")
        .await
        .prop("value")
        .await
        .unwrap()
        .unwrap();
    assert!(
        callback.starts_with(&app.base) && callback.contains("/integrations/magento/"),
        "{callback}"
    );
    assert!(identity.ends_with("/identity"), "{identity}");
    wait_for(&client, "#store-status .badge-pending").await;
    screenshot(&client, "store-pending").await;
    sim.create_integration(&callback, &identity)
        .await
        .expect("Magento reaches the callback");
    wait_for(&client, "#store-status .badge-active").await;

    // Connect with pasted credentials, then run the pipeline from the store page.
    client.goto(&stores_url).await.unwrap();
    let c = sim.credentials();
    fill(&client, "#store-name", "Sim shop").await;
    fill(&client, "#base-url", &sim.base_url()).await;
    fill(&client, "#consumer-key", &c.consumer_key).await;
    fill(&client, "#consumer-secret", &c.consumer_secret).await;
    fill(&client, "#access-token", &c.access_token).await;
    fill(&client, "#access-token-secret", &c.access_token_secret).await;
    click(&client, "#connect-heading + form button[type=submit]").await;
    wait_for(&client, "#store-status .badge-active").await;
    let store_url = client.current_url().await.unwrap().to_string();
    screenshot(&client, "store").await;

    // The schedule editor previews the next runs while typing, then saves.
    fill(&client, "#cron", "30 3 * * *").await;
    wait_for(&client, "#cron-preview li:nth-child(5)").await;
    let first_run = client
        .execute(
            "return document.querySelector('#cron-preview li').textContent",
            vec![],
        )
        .await
        .unwrap();
    let first_run = first_run.as_str().unwrap_or_default();
    assert!(first_run.contains(", 03:30 (UTC)"), "{first_run}");
    click(&client, "form[action$='/schedule'] button[type=submit]").await;
    let saved = wait_for(&client, "#schedule-summary code").await;
    assert_eq!(saved.text().await.unwrap(), "30 3 * * *");

    for (action, shot) in [
        ("sync", "job-sync"),
        ("media", "job-media"),
        ("audit", "job-audit"),
        ("enrich", "job-enrich"),
    ] {
        client.goto(&store_url).await.unwrap();
        click(&client, &format!("form[action$='/run/{action}'] button")).await;
        let status = finished_job(&client).await;
        assert_eq!(status, "succeeded", "{action} job");
        screenshot(&client, shot).await;
    }

    // The audit page charts the score and the findings by rule (SVG drawn on the server).
    client.goto(&format!("{store_url}/audits")).await.unwrap();
    wait_for(&client, "svg[role=img] #score-title").await;
    wait_for(&client, "svg[role=img] #bars-title").await;
    screenshot(&client, "audits").await;
    click(&client, "table a[href*='/audits/']").await;
    wait_for(&client, "#audit-score").await;

    // Products: the list with scores, a search, and a product with its pictures.
    client.goto(&format!("{store_url}/products")).await.unwrap();
    wait_for(&client, "#products td.score").await;
    let rows = client
        .find_all(Locator::Css("#products tbody tr"))
        .await
        .unwrap();
    assert_eq!(rows.len(), 8);
    screenshot(&client, "products").await;
    let pictured: String = sqlx::query_scalar(
        "SELECT p.sku FROM media m JOIN products p ON p.id = m.product_id ORDER BY p.sku LIMIT 1",
    )
    .fetch_one(&app.db)
    .await
    .expect("the media job mirrored pictures");
    fill(&client, "#q", &pictured).await;
    click(&client, "form.filters button").await;
    wait_for(&client, "#products").await;
    let deadline = tokio::time::Instant::now() + WAIT;
    while client
        .find_all(Locator::Css("#products tbody tr"))
        .await
        .unwrap()
        .len()
        != 1
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "search did not narrow the list"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    click(&client, "#products tbody a").await;
    let thumb = wait_for(&client, "ul.thumbs img").await;
    assert!(
        thumb.attr("alt").await.unwrap().is_some(),
        "every picture has an alt attribute"
    );
    // The element appears before its picture has arrived: wait (bounded) for it to decode.
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let loaded = client
            .execute(
                "const img = document.querySelector('ul.thumbs img'); \
                 return img.complete ? img.naturalWidth : 0",
                vec![],
            )
            .await
            .unwrap();
        if loaded.as_u64().unwrap_or(0) > 0 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the thumbnail loads under the CSP: {loaded}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    wait_for(&client, "#live-heading").await;
    screenshot(&client, "product").await;

    // Review with the keyboard: j selects the first proposal, a approves, r rejects.
    client.goto(&format!("{store_url}/review")).await.unwrap();
    let first = wait_for(&client, "article.proposal").await;
    let proposals = client
        .find_all(Locator::Css("article.proposal"))
        .await
        .unwrap();
    assert!(
        proposals.len() >= 3,
        "enrichment proposed too little: {}",
        proposals.len()
    );
    assert!(
        client.source().await.unwrap().contains("<ins>"),
        "word diff shows insertions"
    );
    screenshot(&client, "review").await;
    let first_id = first.attr("data-id").await.unwrap().unwrap();
    press(&client, 'j').await;
    wait_for(
        &client,
        &format!("article.proposal.current[data-id='{first_id}']"),
    )
    .await;
    press(&client, 'a').await;
    wait_gone(&client, &format!("article[data-id='{first_id}']")).await;
    assert_eq!(version_state(&app, &first_id).await, "approved");

    let second = wait_for(&client, "article.proposal").await;
    let second_id = second.attr("data-id").await.unwrap().unwrap();
    press(&client, 'j').await;
    wait_for(
        &client,
        &format!("article.proposal.current[data-id='{second_id}']"),
    )
    .await;
    press(&client, 'r').await;
    wait_gone(&client, &format!("article[data-id='{second_id}']")).await;
    assert_eq!(version_state(&app, &second_id).await, "rejected");

    // e opens the edit form of the current proposal; its textarea takes the focus.
    let third = wait_for(&client, "article.proposal").await;
    let third_id = third.attr("data-id").await.unwrap().unwrap();
    press(&client, 'j').await;
    press(&client, 'e').await;
    wait_for(
        &client,
        &format!("article[data-id='{third_id}'] details.edit[open] textarea"),
    )
    .await;
    let focused = client
        .active_element()
        .await
        .unwrap()
        .tag_name()
        .await
        .unwrap();
    assert_eq!(focused.to_lowercase(), "textarea");

    // The reviewer's edit is approved as a new version of their own.
    let area = client.active_element().await.unwrap();
    area.clear().await.unwrap();
    area.send_keys("edited-by-the-reviewer").await.unwrap();
    click(
        &client,
        &format!("article[data-id='{third_id}'] details.edit button[type=submit]"),
    )
    .await;
    wait_gone(&client, &format!("article[data-id='{third_id}']")).await;
    assert_eq!(version_state(&app, &third_id).await, "superseded");
    let edited: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM product_versions WHERE origin = 'human' AND state = 'approved'",
    )
    .fetch_one(&app.db)
    .await
    .unwrap();
    assert_eq!(edited, 1);

    // Bulk approval of everything left, at phone width.
    client.set_window_size(390, 844).await.unwrap();
    client.goto(&format!("{store_url}/review")).await.unwrap();
    wait_for(&client, "article.proposal").await;
    screenshot(&client, "review-phone").await;
    client.set_window_size(1280, 900).await.unwrap();
    click(&client, "button.approve-all").await;
    wait_for(&client, "#queue-empty").await;

    // Push the approved content to the store.
    client.goto(&store_url).await.unwrap();
    click(&client, "form[action$='/run/push'] button").await;
    assert_eq!(finished_job(&client).await, "succeeded", "push job");
    assert!(!sim.writes().is_empty(), "the push wrote to Magento");
    let pushed: i64 =
        sqlx::query_scalar("SELECT count(*) FROM product_versions WHERE state = 'pushed'")
            .fetch_one(&app.db)
            .await
            .unwrap();
    assert!(pushed >= 1);

    // The pushed product's history: compare its two newest versions side by side.
    client
        .goto(&format!("{store_url}/products?q=000001"))
        .await
        .unwrap();
    click(&client, "#products tbody a").await;
    wait_for(&client, "#versions input[name=from]:checked").await;
    click(&client, "#history-heading + form button[type=submit]").await;
    wait_for(&client, "#diff-versions").await;
    let diff = client.source().await.unwrap();
    assert!(diff.contains("Compare versions"), "{diff}");
    assert!(
        diff.contains("side-by-side") || diff.contains("id=\"identical\""),
        "{diff}"
    );
    screenshot(&client, "diff").await;

    // The jobs list has every job started from the store page.
    click(&client, "header nav a[href$='/jobs']").await;
    wait_for(&client, "main table").await;
    let jobs = client
        .find_all(Locator::Css("main tbody tr"))
        .await
        .unwrap();
    assert_eq!(jobs.len(), 5, "sync, media, audit, enrich and push");
    screenshot(&client, "jobs").await;

    // Export and download the file.
    client.goto(&store_url).await.unwrap();
    click(&client, "form[action$='/run/export'] button").await;
    assert_eq!(finished_job(&client).await, "succeeded", "export job");
    click(&client, "header nav a[href$='/exports']").await;
    let link = wait_for(&client, "a.download").await;
    screenshot(&client, "exports").await;
    let href = link.prop("href").await.unwrap().unwrap();
    let download = reqwest::get(&href).await.unwrap();
    assert_eq!(download.status(), 200);
    let csv = download.text().await.unwrap();
    assert!(
        csv.starts_with("sku,") || csv.contains("\nsku,") || csv.contains("sku"),
        "{csv}"
    );
    assert!(csv.lines().count() > 1, "{csv}");

    // Settings: an API key is shown once; AI processing can be switched off.
    click(&client, "header nav a[href$='/settings']").await;
    fill(&client, "#key-name", "Nightly import").await;
    wait_for(&client, "#key-role")
        .await
        .select_by_value("editor")
        .await
        .unwrap();
    click(&client, "form[action$='/settings/api-keys'] button").await;
    let key = wait_for(&client, "#new-key")
        .await
        .prop("value")
        .await
        .unwrap()
        .unwrap();
    assert!(key.starts_with("cmk_"), "{key}");
    screenshot(&client, "settings").await;
    click(&client, "header nav a[href$='/settings']").await;
    wait_gone(&client, "#new-key").await;
    wait_for(&client, "#keys-heading").await;
    assert!(
        !client.source().await.unwrap().contains(&key),
        "the key is shown only once"
    );
    click(&client, "#ai_processing").await;
    click(&client, "form[action$='/settings'] button").await;
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let ai: Option<bool> =
            sqlx::query_scalar("SELECT (settings->>'ai_processing')::boolean FROM workspaces")
                .fetch_one(&app.db)
                .await
                .unwrap();
        if ai == Some(false) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "AI processing stayed on"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    wait_for(&client, "#ai_processing:not(:checked)").await;
    client
        .goto(&format!(
            "{}/audit-log",
            stores_url.trim_end_matches("/stores")
        ))
        .await
        .unwrap();
    let log = wait_for(&client, "#audit-log").await.text().await.unwrap();
    for action in [
        "api_key.created",
        "settings.updated",
        "proposal.approved",
        "store.connected",
    ] {
        assert!(
            log.contains(action),
            "{action} missing from the audit log: {log}"
        );
    }

    client.close().await.unwrap();
}

/// A browser-like session over plain HTTP: cookies and the page's CSRF token.
pub(crate) struct WebSession {
    cookies: Vec<(String, String)>,
}

impl WebSession {
    /// A visitor who has not signed in.
    pub(crate) fn anonymous() -> WebSession {
        WebSession {
            cookies: Vec::new(),
        }
    }

    fn header(&self) -> String {
        self.cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    fn absorb(&mut self, headers: &HeaderMap) {
        for raw in headers.get_all(SET_COOKIE) {
            let raw = raw.to_str().unwrap();
            let (pair, _) = raw.split_once(';').unwrap_or((raw, ""));
            let (name, value) = pair.split_once('=').unwrap();
            self.cookies.retain(|(k, _)| k != name);
            if !value.is_empty() {
                self.cookies.push((name.to_string(), value.to_string()));
            }
        }
    }

    pub(crate) async fn get(&mut self, app: &TestApp, path: &str) -> (u16, HeaderMap, String) {
        let res = app
            .client
            .get(format!("{}{path}", app.base))
            .header("cookie", self.header())
            .send()
            .await
            .unwrap();
        let status = res.status().as_u16();
        let headers = res.headers().clone();
        self.absorb(&headers);
        (status, headers, res.text().await.unwrap())
    }

    pub(crate) async fn post(
        &mut self,
        app: &TestApp,
        path: &str,
        origin: Option<&str>,
        form: &[(&str, &str)],
    ) -> (u16, HeaderMap, String) {
        let mut req = app
            .client
            .post(format!("{}{path}", app.base))
            .header("cookie", self.header())
            .form(form);
        if let Some(origin) = origin {
            req = req.header("origin", origin);
        }
        let res = req.send().await.unwrap();
        let status = res.status().as_u16();
        let headers = res.headers().clone();
        self.absorb(&headers);
        (status, headers, res.text().await.unwrap())
    }
}

/// The value of `name="csrf"` (forms) or the csrf-token meta tag in a page.
pub(crate) fn csrf_token(html: &str) -> String {
    for marker in ["name=\"csrf\" value=\"", "name=\"csrf-token\" content=\""] {
        if let Some(start) = html.find(marker) {
            let rest = &html[start + marker.len()..];
            return rest[..rest.find('"').unwrap()].to_string();
        }
    }
    panic!("no CSRF token in the page: {html}");
}

fn set_cookie_for<'a>(headers: &'a HeaderMap, name: &str) -> &'a str {
    headers
        .get_all(SET_COOKIE)
        .iter()
        .map(|v| v.to_str().unwrap())
        .find(|v| v.starts_with(&format!("{name}=")))
        .unwrap_or_else(|| panic!("no {name} cookie set: {headers:?}"))
}

/// Logs `email` in through the login form.
pub(crate) async fn web_login(app: &TestApp, email: &str) -> WebSession {
    let mut session = WebSession {
        cookies: Vec::new(),
    };
    let (_, _, page) = session.get(app, "/login").await;
    let token = csrf_token(&page);
    let (status, headers, body) = session
        .post(
            app,
            "/login",
            Some(&app.base),
            &[("csrf", &token), ("email", email), ("password", PASSWORD)],
        )
        .await;
    assert_eq!(status, 303, "{body}");
    set_cookie_for(&headers, "catalogd_session");
    session
}

#[tokio::test]
async fn pages_send_a_strict_csp_and_session_cookies_are_http_only_and_lax() {
    let app = TestApp::spawn().await;
    let mut session = WebSession {
        cookies: Vec::new(),
    };
    let (status, headers, page) = session.get(&app, "/signup").await;
    assert_eq!(status, 200);
    assert_eq!(
        headers["content-security-policy"],
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    );
    assert!(
        !page.contains("<script>") && !page.contains("style="),
        "no inline script or style"
    );

    // Static files: content-hashed paths, cached for a year.
    let start = page.find("/static/").unwrap();
    let css = &page[start..start + page[start..].find('"').unwrap()];
    assert!(css.ends_with("/app.css"), "{css}");
    let res = app
        .client
        .get(format!("{}{css}", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(
        res.headers()["cache-control"],
        "public, max-age=31536000, immutable"
    );
    assert!(
        res.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/css")
    );
    let stale = app
        .client
        .get(format!("{}/static/0000000000000000/app.css", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(stale.status(), 404);

    let token = csrf_token(&page);
    let (status, headers, body) = session
        .post(
            &app,
            "/signup",
            Some(&app.base),
            &[
                ("csrf", &token),
                ("name", "Cookie Tester"),
                ("email", "cookie@example.com"),
                ("password", PASSWORD),
                ("workspace_name", "Cookies"),
            ],
        )
        .await;
    assert_eq!(status, 303, "{body}");
    for name in ["catalogd_session", "catalogd_refresh"] {
        let cookie = set_cookie_for(&headers, name);
        assert!(cookie.contains("; HttpOnly"), "{cookie}");
        assert!(cookie.contains("; SameSite=Lax"), "{cookie}");
        assert!(cookie.contains("; Path=/"), "{cookie}");
        assert!(
            !cookie.contains("Secure"),
            "plain HTTP has no Secure flag: {cookie}"
        );
    }
    let location = headers["location"].to_str().unwrap().to_string();
    let (status, _, page) = session.get(&app, &location).await;
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("Connect a store"));

    // Without the access token the refresh token starts a new one and the page still opens.
    session.cookies.retain(|(k, _)| k != "catalogd_session");
    let (status, headers, _) = session.get(&app, &location).await;
    assert_eq!(status, 200);
    set_cookie_for(&headers, "catalogd_session");
    set_cookie_for(&headers, "catalogd_refresh");

    // After logging out, the old cookies open nothing.
    let (_, _, page) = session.get(&app, &location).await;
    let token = csrf_token(&page);
    let old = session.cookies.clone();
    let (status, _, _) = session
        .post(&app, "/logout", Some(&app.base), &[("csrf", &token)])
        .await;
    assert_eq!(status, 303);
    session.cookies = old;
    session.cookies.retain(|(k, _)| k != "catalogd_refresh");
    let (status, headers, _) = session.get(&app, &location).await;
    assert_eq!(status, 303);
    assert_eq!(headers["location"], "/login");
}

#[tokio::test]
async fn cookies_are_secure_when_the_daemon_is_served_over_tls() {
    let app = TestApp::spawn_with(&[("CATALOGD_PUBLIC_URL", "https://catalog.example.com")]).await;
    let mut session = WebSession {
        cookies: Vec::new(),
    };
    let (_, headers, page) = session.get(&app, "/login").await;
    let cookie = set_cookie_for(&headers, "catalogd_presession");
    assert!(
        cookie.contains("; Secure") && cookie.contains("; HttpOnly"),
        "{cookie}"
    );
    app.register("tls@example.com").await;
    let token = csrf_token(&page);
    let (status, headers, body) = session
        .post(
            &app,
            "/login",
            Some("https://catalog.example.com"),
            &[
                ("csrf", &token),
                ("email", "tls@example.com"),
                ("password", PASSWORD),
            ],
        )
        .await;
    assert_eq!(status, 303, "{body}");
    assert!(set_cookie_for(&headers, "catalogd_session").contains("; Secure"));
}

#[tokio::test]
async fn every_form_post_needs_the_csrf_token_and_this_sites_origin() {
    let app = TestApp::spawn().await;
    let owner = app.register("owner@example.com").await;
    let mut session = web_login(&app, "owner@example.com").await;
    let stores = format!("/w/{}/stores", owner.workspace_id);
    let (_, _, page) = session.get(&app, &stores).await;
    let token = csrf_token(&page);
    let form = [("name", "Shop"), ("base_url", "http://127.0.0.1:9/")];

    let (status, _, _) = session.post(&app, &stores, Some(&app.base), &form).await;
    assert_eq!(status, 403, "no token");
    let with_wrong = [("csrf", "0000"), form[0], form[1]];
    let (status, _, _) = session
        .post(&app, &stores, Some(&app.base), &with_wrong)
        .await;
    assert_eq!(status, 403, "wrong token");
    let with_token = [("csrf", token.as_str()), form[0], form[1]];
    let (status, _, _) = session
        .post(&app, &stores, Some("https://evil.example"), &with_token)
        .await;
    assert_eq!(status, 403, "another site's origin");
    let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM stores")
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert_eq!(stored, 0, "no refused post created anything");

    let (status, headers, body) = session
        .post(&app, &stores, Some(&app.base), &with_token)
        .await;
    assert_eq!(status, 303, "{body}");
    assert!(
        headers["location"]
            .to_str()
            .unwrap()
            .starts_with(&format!("{stores}/"))
    );

    // Login and sign-up forms are protected before a session exists, too.
    let fresh = app
        .client
        .post(format!("{}/login", app.base))
        .form(&[("email", "owner@example.com"), ("password", PASSWORD)])
        .send()
        .await
        .unwrap();
    assert_eq!(fresh.status(), 403);
}

async fn run_job(app: &TestApp, who: &Registered, path: &str, body: Value) {
    let (status, started) = app.post(path, Some(&who.access_token), body).await;
    assert_eq!(status, 202, "{started}");
    let job = app
        .wait_for_job(&who.access_token, started["job_id"].as_str().unwrap(), WAIT)
        .await;
    assert_eq!(job["status"], "succeeded", "{job}");
}

#[tokio::test]
async fn a_viewer_sees_no_approve_button_and_a_forged_approval_is_refused() {
    let app = TestApp::spawn().await;
    let sim = sim(4).await;
    let owner = app.register("owner@example.com").await;
    let store = app.connect_store(&owner, &sim).await;
    app.sync(&owner, &store, "full").await;
    run_job(&app, &owner, &format!("/stores/{store}/enrich"), json!({})).await;
    app.member(&owner, "viewer@example.com", "viewer").await;

    let mut viewer = web_login(&app, "viewer@example.com").await;
    let review = format!("/w/{}/stores/{store}/review", owner.workspace_id);
    let (status, _, page) = viewer.get(&app, &review).await;
    assert_eq!(status, 200, "{page}");
    assert!(
        page.contains("class=\"proposal\""),
        "the viewer sees the proposals"
    );
    assert!(!page.contains("class=\"approve\""), "but no approve button");
    assert!(!page.contains("run/push"), "and no push button");
    let marker = "data-id=\"";
    let start = page.find(marker).unwrap() + marker.len();
    let proposal = page[start..start + 36].to_string();

    // A forged approval with the viewer's own valid token is refused by the role check.
    let token = csrf_token(&page);
    let approve = format!(
        "/w/{}/stores/{store}/proposals/{proposal}/approve",
        owner.workspace_id
    );
    let (status, _, _) = viewer
        .post(&app, &approve, Some(&app.base), &[("csrf", &token)])
        .await;
    assert_eq!(status, 403);
    assert_eq!(version_state(&app, &proposal).await, "proposed");

    // The reviewer's page has the buttons, and the same post works for them.
    app.member(&owner, "reviewer@example.com", "reviewer").await;
    let mut reviewer = web_login(&app, "reviewer@example.com").await;
    let (_, _, page) = reviewer.get(&app, &review).await;
    assert!(page.contains("class=\"approve\""));
    let token = csrf_token(&page);
    let (status, _, body) = reviewer
        .post(&app, &approve, Some(&app.base), &[("csrf", &token)])
        .await;
    assert_eq!(status, 303, "{body}");
    assert_eq!(version_state(&app, &proposal).await, "approved");

    // Another workspace's store is not found.
    let stranger = app.register("stranger@example.com").await;
    let mut other = web_login(&app, "stranger@example.com").await;
    let foreign = format!("/w/{}/stores/{store}", stranger.workspace_id);
    let (status, _, _) = other.get(&app, &foreign).await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn login_asks_for_the_two_factor_code_when_the_account_has_one() {
    let app = TestApp::spawn().await;
    let who = app.register("totp@example.com").await;
    let (_, recovery) = crate::privacy::enable_totp(&app, &who).await;
    let mut session = WebSession {
        cookies: Vec::new(),
    };
    let (_, _, page) = session.get(&app, "/login").await;
    assert!(
        !page.contains("id=\"totp\""),
        "no code field before it is needed"
    );

    let token = csrf_token(&page);
    let (status, _, page) = session
        .post(
            &app,
            "/login",
            Some(&app.base),
            &[
                ("csrf", &token),
                ("email", "totp@example.com"),
                ("password", "wrong password here"),
            ],
        )
        .await;
    assert_eq!(status, 401);
    assert!(page.contains("invalid email or password"), "{page}");

    let (status, headers, page) = session
        .post(
            &app,
            "/login",
            Some(&app.base),
            &[
                ("csrf", &token),
                ("email", "totp@example.com"),
                ("password", PASSWORD),
            ],
        )
        .await;
    assert_eq!(status, 401);
    assert!(
        page.contains("id=\"totp\""),
        "the form asks for the code: {page}"
    );
    assert!(
        headers
            .get_all(SET_COOKIE)
            .iter()
            .all(|c| !c.to_str().unwrap().starts_with("catalogd_session="))
    );

    let token = csrf_token(&page);
    let (status, headers, body) = session
        .post(
            &app,
            "/login",
            Some(&app.base),
            &[
                ("csrf", &token),
                ("email", "totp@example.com"),
                ("password", PASSWORD),
                ("totp", &recovery[0]),
            ],
        )
        .await;
    assert_eq!(status, 303, "{body}");
    assert_eq!(headers["location"], "/");
    set_cookie_for(&headers, "catalogd_session");
    let (status, headers, _) = session.get(&app, "/").await;
    assert_eq!(status, 303);
    assert_eq!(
        headers["location"],
        format!("/w/{}/stores", who.workspace_id)
    );
}

#[tokio::test]
async fn the_review_queue_shows_a_conflict_with_base_magento_now_and_the_proposal() {
    let app = TestApp::spawn().await;
    let sim = sim(4).await;
    let owner = app.register("owner@example.com").await;
    let store = app.connect_store(&owner, &sim).await;
    app.sync(&owner, &store, "full").await;
    let (sku, product): (String, uuid::Uuid) =
        sqlx::query_as("SELECT sku, id FROM products ORDER BY sku LIMIT 1")
            .fetch_one(&app.db)
            .await
            .unwrap();
    let (status, version) = app
        .post(
            &format!("/products/{product}/versions"),
            Some(&owner.access_token),
            json!({"store_view": "all", "fields": {"meta_title": "Our better title"}}),
        )
        .await;
    assert_eq!(status, 201, "{version}");
    let proposal = version["id"].as_str().unwrap().to_string();

    // The reviewer approves in the browser's way: the form post.
    let mut session = web_login(&app, "owner@example.com").await;
    let review = format!("/w/{}/stores/{store}/review", owner.workspace_id);
    let (_, _, page) = session.get(&app, &review).await;
    assert!(page.contains(&proposal));
    let token = csrf_token(&page);
    let approve = format!(
        "/w/{}/stores/{store}/proposals/{proposal}/approve",
        owner.workspace_id
    );
    let (status, _, _) = session
        .post(&app, &approve, Some(&app.base), &[("csrf", &token)])
        .await;
    assert_eq!(status, 303);

    // Magento changes the same field meanwhile; the push finds the conflict.
    assert!(sim.update_product(&sku, None, json!({"meta_title": "Edited in Magento"})));
    run_job(
        &app,
        &owner,
        &format!("/stores/{store}/push"),
        json!({"all_approved": true}),
    )
    .await;
    assert_eq!(version_state(&app, &proposal).await, "conflict");

    let (status, _, page) = session.get(&app, &format!("{review}?state=conflict")).await;
    assert_eq!(status, 200);
    assert!(page.contains("Magento now"), "{page}");
    assert!(
        page.contains("Edited in Magento"),
        "the store's value: {page}"
    );
    assert!(page.contains("Our better title"), "the proposal: {page}");
    assert!(
        page.contains("class=\"reject\""),
        "a conflict can be rejected"
    );
    assert!(
        !page.contains("class=\"approve\""),
        "but not approved as it is"
    );
}

#[tokio::test]
async fn concurrent_requests_with_an_expired_access_token_share_one_refresh() {
    let app = TestApp::spawn().await;
    let owner = app.register("owner@example.com").await;
    let session = web_login(&app, "owner@example.com").await;
    let refresh = session
        .cookies
        .iter()
        .find(|(k, _)| k == "catalogd_refresh")
        .unwrap()
        .1
        .clone();
    let path = format!("/w/{}/jobs", owner.workspace_id);
    // A page and its polls arrive together, each with only the refresh token.
    let requests = (0..4).map(|_| {
        app.client
            .get(format!("{}{path}", app.base))
            .header("cookie", format!("catalogd_refresh={refresh}"))
            .send()
    });
    let answers = futures::future::join_all(requests).await;
    let mut access = Vec::new();
    for answer in answers {
        let answer = answer.unwrap();
        assert_eq!(answer.status(), 200);
        access.push(set_cookie_for(answer.headers(), "catalogd_session").to_string());
    }
    assert!(
        access.windows(2).all(|w| w[0] == w[1]),
        "one rotation, shared"
    );
    let revoked: i64 =
        sqlx::query_scalar("SELECT count(*) FROM sessions WHERE revoked_at IS NOT NULL")
            .fetch_one(&app.db)
            .await
            .unwrap();
    assert_eq!(
        revoked, 0,
        "sharing the rotation is not refresh-token reuse"
    );
}

#[tokio::test]
async fn the_workspace_switcher_lists_every_workspace_and_creates_new_ones() {
    let app = TestApp::spawn().await;
    let owner = app.register("owner@example.com").await;
    let mut session = web_login(&app, "owner@example.com").await;
    let (_, _, page) = session.get(&app, "/workspaces/new").await;
    let token = csrf_token(&page);
    let (status, headers, body) = session
        .post(
            &app,
            "/workspaces/new",
            Some(&app.base),
            &[("csrf", &token), ("name", "Second shop")],
        )
        .await;
    assert_eq!(status, 303, "{body}");
    let second = headers["location"].to_str().unwrap().to_string();
    assert!(
        second.starts_with("/w/") && second.ends_with("/stores"),
        "{second}"
    );
    assert!(!second.contains(&owner.workspace_id.to_string()));

    let (status, _, page) = session.get(&app, &second).await;
    assert_eq!(status, 200);
    assert!(page.contains("Second shop (owner)"), "{page}");
    let first = format!("/w/{}/stores", owner.workspace_id);
    assert!(
        page.contains(&format!("href=\"{first}\"")),
        "the switcher links the first workspace"
    );
    let (status, _, page) = session.get(&app, &first).await;
    assert_eq!(status, 200);
    assert!(
        page.contains(&format!("href=\"{second}\"")),
        "and the first links the second"
    );
}

#[tokio::test]
async fn settings_add_members_show_a_new_key_once_revoke_it_and_are_for_admins_only() {
    let app = TestApp::spawn().await;
    let owner = app.register("owner@example.com").await;
    let editor_account = app.register("editor@example.com").await;
    let mut session = web_login(&app, "owner@example.com").await;
    let settings = format!("/w/{}/settings", owner.workspace_id);
    let (status, _, page) = session.get(&app, &settings).await;
    assert_eq!(status, 200, "{page}");
    let token = csrf_token(&page);

    let (status, _, body) = session
        .post(
            &app,
            &format!("{settings}/members"),
            Some(&app.base),
            &[
                ("csrf", &token),
                ("email", "editor@example.com"),
                ("role", "editor"),
            ],
        )
        .await;
    assert_eq!(status, 303, "{body}");
    let (_, _, page) = session.get(&app, &settings).await;
    assert!(page.contains("editor@example.com"), "{page}");
    // The person is invited, not added: the invitation waits, and can be revoked.
    assert!(page.contains("id=\"invitations\""), "{page}");
    let invitation: uuid::Uuid = sqlx::query_scalar("SELECT id FROM invitations")
        .fetch_one(&app.db)
        .await
        .unwrap();
    let (status, _, body) = session
        .post(
            &app,
            &format!("{settings}/invitations/{invitation}/revoke"),
            Some(&app.base),
            &[("csrf", &token)],
        )
        .await;
    assert_eq!(status, 303, "{body}");
    let (_, _, page) = session.get(&app, &settings).await;
    assert!(page.contains("id=\"no-invitations\""), "{page}");
    // Invited again, the editor accepts and is a member.
    app.invite_and_accept(
        owner.workspace_id,
        &owner,
        &editor_account,
        "editor@example.com",
        "editor",
    )
    .await;

    let (status, _, page) = session
        .post(
            &app,
            &format!("{settings}/api-keys"),
            Some(&app.base),
            &[("csrf", &token), ("name", "Feed"), ("role", "viewer")],
        )
        .await;
    assert_eq!(status, 200);
    let marker = "id=\"new-key\" type=\"text\" readonly value=\"";
    let start = page.find(marker).expect("the new key is shown") + marker.len();
    let key = &page[start..start + page[start..].find('"').unwrap()];
    assert!(key.starts_with("cmk_"), "{key}");
    let (status, _) = app
        .get(&format!("/workspaces/{}/stores", owner.workspace_id), key)
        .await;
    assert_eq!(status, 200, "the shown key works");
    let (_, _, page) = session.get(&app, &settings).await;
    assert!(!page.contains(key), "and is never shown again");

    let key_id: uuid::Uuid = sqlx::query_scalar("SELECT id FROM api_keys WHERE name = 'Feed'")
        .fetch_one(&app.db)
        .await
        .unwrap();
    let (status, _, _) = session
        .post(
            &app,
            &format!("{settings}/api-keys/{key_id}/revoke"),
            Some(&app.base),
            &[("csrf", &token)],
        )
        .await;
    assert_eq!(status, 303);
    let (status, _) = app
        .get(&format!("/workspaces/{}/stores", owner.workspace_id), key)
        .await;
    assert_eq!(status, 401, "a revoked key is refused");

    let (status, _, body) = session
        .post(
            &app,
            &settings,
            Some(&app.base),
            &[("csrf", &token), ("daily_token_budget", "5000")],
        )
        .await;
    assert_eq!(status, 303, "{body}");
    let (_, current) = app
        .get(
            &format!("/workspaces/{}/settings", owner.workspace_id),
            &owner.access_token,
        )
        .await;
    assert_eq!(
        current["ai_processing"], false,
        "an unticked box switches AI off"
    );
    assert_eq!(current["daily_token_budget"], 5000);

    let mut editor = web_login(&app, "editor@example.com").await;
    let (status, _, page) = editor.get(&app, &settings).await;
    assert_eq!(status, 403);
    assert!(!page.contains("Create API key"));
    let (status, _, _) = editor
        .get(&app, &format!("/w/{}/audit-log", owner.workspace_id))
        .await;
    assert_eq!(status, 403);
    let (_, _, stores) = editor
        .get(&app, &format!("/w/{}/stores", owner.workspace_id))
        .await;
    assert!(
        !stores.contains("/settings\""),
        "no settings link for an editor"
    );
}

#[tokio::test]
async fn a_job_page_polls_while_the_job_is_open_and_an_editor_can_cancel_it() {
    // No workers: the job stays queued until cancelled.
    let app = TestApp::spawn_with(&[("CATALOGD_JOBS__WORKERS_IN_SERVE", "false")]).await;
    let sim = sim(2).await;
    let owner = app.register("owner@example.com").await;
    let store = app.connect_store(&owner, &sim).await;
    let (status, started) = app
        .post(
            &format!("/stores/{store}/sync"),
            Some(&owner.access_token),
            json!({"mode": "full"}),
        )
        .await;
    assert_eq!(status, 202, "{started}");
    let job = started["job_id"].as_str().unwrap();
    app.member(&owner, "viewer@example.com", "viewer").await;

    let page_path = format!("/w/{}/jobs/{job}", owner.workspace_id);
    let mut viewer = web_login(&app, "viewer@example.com").await;
    let (status, _, page) = viewer.get(&app, &page_path).await;
    assert_eq!(status, 200);
    assert!(page.contains("data-status=\"queued\""), "{page}");
    assert!(!page.contains("Cancel job"), "a viewer cannot cancel");

    let mut session = web_login(&app, "owner@example.com").await;
    let (_, _, page) = session.get(&app, &page_path).await;
    assert!(
        page.contains("hx-trigger=\"every 1s\""),
        "an open job polls"
    );
    assert!(page.contains("Cancel job"));
    let token = csrf_token(&page);
    let (status, headers, _) = session
        .post(
            &app,
            &format!("{page_path}/cancel"),
            Some(&app.base),
            &[("csrf", &token)],
        )
        .await;
    assert_eq!(status, 303);
    assert_eq!(headers["location"], page_path.as_str());
    let (status, _, fragment) = session.get(&app, &format!("{page_path}/progress")).await;
    assert_eq!(status, 200);
    assert!(fragment.contains("data-status=\"cancelled\""), "{fragment}");
    assert!(
        !fragment.contains("hx-trigger"),
        "a finished job stops polling"
    );
    assert!(!fragment.contains("Cancel job"));
}

#[tokio::test]
async fn the_product_list_shows_what_the_api_lists_for_each_filter() {
    let app = TestApp::spawn().await;
    let sim = sim(12).await;
    let owner = app.register("owner@example.com").await;
    let store = app.connect_store(&owner, &sim).await;
    app.sync(&owner, &store, "full").await;
    run_job(&app, &owner, &format!("/stores/{store}/audits"), json!({})).await;
    let rule: String = sqlx::query_scalar("SELECT rule FROM audit_findings ORDER BY rule LIMIT 1")
        .fetch_one(&app.db)
        .await
        .unwrap();
    let mut session = web_login(&app, "owner@example.com").await;
    let ws = owner.workspace_id;
    let finding = format!("finding={rule}");
    for query in [
        "",
        "q=000003",
        "missing=meta_description",
        "missing=name&store_view=fr",
        finding.as_str(),
        "state=proposed",
        "sort=score",
    ] {
        let (status, _, page) = session
            .get(&app, &format!("/w/{ws}/stores/{store}/products?{query}"))
            .await;
        assert_eq!(status, 200, "{query}: {page}");
        let (_, listed) = app
            .get(
                &format!("/stores/{store}/products?limit=50&{query}"),
                &owner.access_token,
            )
            .await;
        let skus: Vec<&str> = listed["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["sku"].as_str().unwrap())
            .collect();
        let shown: Vec<&str> = page
            .match_indices(&format!("/w/{ws}/products/"))
            .map(|(at, _)| {
                let rest = &page[at..];
                let text = &rest[rest.find('>').unwrap() + 1..];
                &text[..text.find('<').unwrap()]
            })
            .collect();
        assert_eq!(shown, skus, "{query}");
    }
    let (_, _, page) = session
        .get(
            &app,
            &format!("/w/{ws}/stores/{store}/products?q=no-such-product"),
        )
        .await;
    assert!(page.contains("No products match."));
}

#[tokio::test]
async fn an_admin_disconnects_a_store_after_confirming_and_an_editor_cannot() {
    let app = TestApp::spawn().await;
    let sim = sim(2).await;
    let owner = app.register("owner@example.com").await;
    let store = app.connect_store(&owner, &sim).await;
    app.member(&owner, "editor@example.com", "editor").await;
    let store_page = format!("/w/{}/stores/{store}", owner.workspace_id);
    let confirm = format!("{store_page}/disconnect");

    let mut editor = web_login(&app, "editor@example.com").await;
    let (_, _, page) = editor.get(&app, &store_page).await;
    assert!(
        !page.contains("/disconnect"),
        "no disconnect link for an editor"
    );
    let token = csrf_token(&page);
    let (status, _, _) = editor
        .post(&app, &confirm, Some(&app.base), &[("csrf", &token)])
        .await;
    assert_eq!(status, 403);

    let mut session = web_login(&app, "owner@example.com").await;
    let (_, _, page) = session.get(&app, &store_page).await;
    assert!(page.contains(&format!("href=\"{confirm}\"")));
    let (status, _, page) = session.get(&app, &confirm).await;
    assert_eq!(status, 200);
    assert!(page.contains("deletes the store's access tokens"), "{page}");
    let (_, current) = app
        .get(&format!("/stores/{store}"), &owner.access_token)
        .await;
    assert_eq!(
        current["status"], "active",
        "showing the question changes nothing"
    );
    let token = csrf_token(&page);
    let (status, headers, _) = session
        .post(&app, &confirm, Some(&app.base), &[("csrf", &token)])
        .await;
    assert_eq!(status, 303);
    assert_eq!(headers["location"], store_page.as_str());
    let (_, _, page) = session.get(&app, &store_page).await;
    assert!(page.contains("badge-disconnected"), "{page}");
    assert!(!page.contains("/disconnect\""));
}

/// The store page's schedule form shows the pipeline as checkboxes in its order and the
/// enabled flag, and saving it keeps what the person chose.
#[tokio::test]
async fn the_schedule_form_shows_and_edits_the_pipeline_and_the_enabled_flag() {
    let app = TestApp::spawn().await;
    let sim = sim(2).await;
    let owner = app.register("owner@example.com").await;
    let store = app.connect_store(&owner, &sim).await;
    let (status, _) = app
        .call(
            reqwest::Method::PUT,
            &format!("/stores/{store}/schedule"),
            Some(&owner.access_token),
            Some(json!({"cron": "0 2 * * *", "pipeline": ["full_sync", "audit", "export"], "enabled": false})),
        )
        .await;
    assert_eq!(status, 200);
    let store_page = format!("/w/{}/stores/{store}", owner.workspace_id);
    let mut session = web_login(&app, "owner@example.com").await;
    let (_, _, page) = session.get(&app, &store_page).await;
    // The stored steps come first, checked, in their order; the others follow unchecked.
    let boxes: Vec<(&str, bool)> = page
        .match_indices("name=\"pipeline\" value=\"")
        .map(|(at, marker)| {
            let rest = &page[at + marker.len()..];
            let value = &rest[..rest.find('"').unwrap()];
            let tag_end = rest.find('>').unwrap();
            (value, rest[..tag_end].contains("checked"))
        })
        .collect();
    assert_eq!(
        boxes,
        [
            ("full_sync", true),
            ("audit", true),
            ("export", true),
            ("sync", false),
            ("media", false),
            ("enrich", false),
            ("push", false),
        ],
        "{page}"
    );
    let enabled_at = page.find("name=\"enabled\"").expect("an enabled checkbox");
    let enabled_tag = &page[enabled_at..enabled_at + page[enabled_at..].find('>').unwrap()];
    assert!(
        !enabled_tag.contains("checked"),
        "the paused schedule shows paused"
    );

    // Save a new order with the flag on; a cron change alone keeps both.
    let token = csrf_token(&page);
    let form = [
        ("csrf", token.as_str()),
        ("cron", "0 3 * * *"),
        ("timezone", "Europe/Berlin"),
        ("pipeline", "sync"),
        ("pipeline", "media"),
        ("pipeline", "audit"),
        ("enabled", "on"),
        ("full_sync_every_days", "3"),
    ];
    let days_at = page
        .find("name=\"full_sync_every_days\"")
        .expect("a full-sync interval field");
    let days_tag = &page[days_at..days_at + page[days_at..].find('>').unwrap()];
    assert!(days_tag.contains("value=\"7\""), "{days_tag}");
    let (status, _, body) = session
        .post(
            &app,
            &format!("{store_page}/schedule"),
            Some(&app.base),
            &form,
        )
        .await;
    assert_eq!(status, 303, "{body}");
    let (_, schedule) = app
        .get(&format!("/stores/{store}/schedule"), &owner.access_token)
        .await;
    assert_eq!(schedule["pipeline"], json!(["sync", "media", "audit"]));
    assert_eq!(schedule["enabled"], true);
    assert_eq!(schedule["timezone"], "Europe/Berlin");
    let (_, saved_store) = app
        .get(&format!("/stores/{store}"), &owner.access_token)
        .await;
    assert_eq!(saved_store["full_sync_every_days"], 3);
    // Unchecking "enabled" pauses it.
    let form = [
        ("csrf", token.as_str()),
        ("cron", "0 3 * * *"),
        ("timezone", "Europe/Berlin"),
        ("pipeline", "sync"),
    ];
    session
        .post(
            &app,
            &format!("{store_page}/schedule"),
            Some(&app.base),
            &form,
        )
        .await;
    let (_, schedule) = app
        .get(&format!("/stores/{store}/schedule"), &owner.access_token)
        .await;
    assert_eq!(schedule["pipeline"], json!(["sync"]));
    assert_eq!(schedule["enabled"], false);
}

/// Once a workspace archive exists (owners only), the exports page still opens for every other
/// member and lists what they may download.
#[tokio::test]
async fn the_exports_page_lists_what_each_member_may_see() {
    let app = TestApp::spawn().await;
    let sim = sim(2).await;
    let owner = app.register("owner@example.com").await;
    let store = app.connect_store(&owner, &sim).await;
    app.member(&owner, "admin@example.com", "admin").await;
    app.member(&owner, "viewer@example.com", "viewer").await;
    run_job(
        &app,
        &owner,
        &format!("/stores/{store}/exports"),
        json!({"format": "magento_csv"}),
    )
    .await;
    run_job(
        &app,
        &owner,
        &format!("/workspaces/{}/exports", owner.workspace_id),
        json!({"format": "workspace_archive"}),
    )
    .await;
    let exports_page = format!("/w/{}/exports", owner.workspace_id);
    for (email, sees_archive) in [
        ("owner@example.com", true),
        ("admin@example.com", false),
        ("viewer@example.com", false),
    ] {
        let mut session = web_login(&app, email).await;
        let (status, _, page) = session.get(&app, &exports_page).await;
        assert_eq!(status, 200, "{email}: {page}");
        assert!(page.contains("Download magento_csv"), "{email}: {page}");
        assert_eq!(
            page.contains("Download workspace_archive"),
            sees_archive,
            "{email}: {page}"
        );
    }
}

#[tokio::test]
async fn the_home_page_says_what_needs_attention_and_the_header_counts_unread_notices() {
    let app = TestApp::spawn().await;
    let shop = sim(6).await;
    let owner = app.register("owner@example.com").await;
    let ws = owner.workspace_id;
    let store = app.connect_store(&owner, &shop).await;
    app.sync(&owner, &store, "full").await;
    // A manual enrichment leaves proposals: one review.ready for the job.
    let (_, enrich) = app
        .run_job(
            &format!("/stores/{store}/enrich"),
            &owner.access_token,
            json!({"fields": ["meta_title"]}),
        )
        .await;
    let proposals = enrich["counters"]["proposals"].as_i64().unwrap();
    assert!(proposals > 0, "{enrich}");
    // A store that went away: its sync fails after its retries.
    let gone = sim(1).await;
    let second = app.connect_store(&owner, &gone).await;
    drop(gone);
    let (status, started) = app
        .post(
            &format!("/stores/{second}/sync"),
            Some(&owner.access_token),
            json!({"mode": "full"}),
        )
        .await;
    assert_eq!(status, 202, "{started}");
    let failed = app
        .wait_for_job(
            &owner.access_token,
            started["job_id"].as_str().unwrap(),
            Duration::from_secs(60),
        )
        .await;
    assert_eq!(failed["status"], "failed", "{failed}");
    let (status, _) = app
        .call(
            reqwest::Method::PUT,
            &format!("/workspaces/{ws}/settings"),
            Some(&owner.access_token),
            Some(json!({"daily_token_budget": 50000})),
        )
        .await;
    assert_eq!(status, 200);

    // The API's summary.
    let (status, attention) = app
        .get(&format!("/workspaces/{ws}/attention"), &owner.access_token)
        .await;
    assert_eq!(status, 200, "{attention}");
    let waiting = &attention["proposals_waiting"][0];
    assert_eq!(waiting["store_id"], store, "{attention}");
    assert_eq!(waiting["proposals"], proposals);
    assert!(waiting["oldest_age_secs"].as_i64().unwrap() >= 0);
    assert_eq!(attention["failed_jobs"][0]["job_id"], started["job_id"]);
    assert_eq!(attention["budget"]["daily_token_budget"], 50000);
    assert!(attention["budget"]["left_today"].as_u64().unwrap() <= 50000);
    // The notices: review.ready and job.failed, both unread, for the owner.
    let notices = eventually_notices(&app, &owner, 2).await;
    let kinds: Vec<&str> = notices["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["job.failed", "review.ready"], "{notices}");
    assert_eq!(notices["unread_count"], 2);
    let stranger = app.register("stranger@example.com").await;
    for path in [
        format!("/workspaces/{ws}/attention"),
        format!("/workspaces/{ws}/notifications"),
    ] {
        let (status, _) = app.get(&path, &stranger.access_token).await;
        assert_eq!(status, 404, "{path}");
    }

    // In the browser.
    let driver = start_driver().await;
    let client = browser(&driver).await;
    client.goto(&format!("{}/login", app.base)).await.unwrap();
    fill(&client, "#email", "owner@example.com").await;
    fill(&client, "#password", PASSWORD).await;
    click(&client, "form.card button[type=submit]").await;
    wait_for(&client, "#connect-heading").await;
    client.goto(&format!("{}/w/{ws}", app.base)).await.unwrap();
    let count = wait_for(&client, "#notices-link .count").await;
    assert_eq!(count.text().await.unwrap(), "2");
    let waiting_cell = wait_for(&client, "#attention-proposals td.proposals").await;
    assert_eq!(waiting_cell.text().await.unwrap(), proposals.to_string());
    let failed_text = wait_for(&client, "#attention-failed li")
        .await
        .text()
        .await
        .unwrap();
    assert!(failed_text.contains("sync"), "{failed_text}");
    let budget_text = wait_for(&client, "#attention-budget p")
        .await
        .text()
        .await
        .unwrap();
    assert!(budget_text.contains("left of 50000"), "{budget_text}");
    screenshot(&client, "attention").await;

    click(&client, "#notices-link").await;
    wait_for(&client, "#notices li.unread").await;
    screenshot(&client, "notifications").await;
    click(&client, "#mark-all-read").await;
    wait_gone(&client, "#notices li.unread").await;
    wait_gone(&client, "#notices-link .count").await;
    let (_, after) = app
        .get(
            &format!("/workspaces/{ws}/notifications"),
            &owner.access_token,
        )
        .await;
    assert_eq!(after["unread_count"], 0, "{after}");
    client.close().await.unwrap();
}

/// The owner's notices once `count` have arrived (the fan-out runs on the queue).
async fn eventually_notices(app: &TestApp, owner: &Registered, count: usize) -> Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let (status, notices) = app
            .get(
                &format!("/workspaces/{}/notifications", owner.workspace_id),
                &owner.access_token,
            )
            .await;
        assert_eq!(status, 200, "{notices}");
        if notices["items"].as_array().unwrap().len() >= count {
            return notices;
        }
        assert!(tokio::time::Instant::now() < deadline, "{notices}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The pages behind mailed links: an invitation opened without an account leads through sign
/// up back to itself and joins; a forgotten password is set again from its link.
#[tokio::test]
async fn mailed_links_lead_to_joining_and_to_a_new_password() {
    let app = TestApp::spawn().await;
    let owner = app.register("owner@example.com").await;
    let (status, _) = app
        .post(
            &format!("/workspaces/{}/members", owner.workspace_id),
            Some(&owner.access_token),
            json!({"email": "newcomer@example.com", "role": "reviewer"}),
        )
        .await;
    assert_eq!(status, 202);
    let token = app
        .mailed_token("newcomer@example.com", "/invitations?token=")
        .await;
    let link = format!("/invitations?token={token}");
    let mut session = WebSession {
        cookies: Vec::new(),
    };
    let (status, _, page) = session.get(&app, &link).await;
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("owner@example.com shop"), "{page}");
    assert!(page.contains("reviewer"), "{page}");
    let signup_at = page.find("href=\"/signup?").expect("a sign-up link") + 6;
    let signup =
        page[signup_at..signup_at + page[signup_at..].find('"').unwrap()].replace("&amp;", "&");
    let (status, _, form) = session.get(&app, &signup).await;
    assert_eq!(status, 200, "{form}");
    assert!(form.contains("value=\"newcomer@example.com\""), "{form}");
    let csrf = csrf_token(&form);
    let (status, headers, body) = session
        .post(
            &app,
            "/signup",
            Some(&app.base),
            &[
                ("csrf", csrf.as_str()),
                ("name", "Newcomer"),
                ("email", "newcomer@example.com"),
                ("password", PASSWORD),
                ("workspace_name", "Own shop"),
                ("next", link.as_str()),
            ],
        )
        .await;
    assert_eq!(status, 303, "{body}");
    assert_eq!(headers["location"], link.as_str(), "back to the invitation");
    let (status, _, page) = session.get(&app, &link).await;
    assert_eq!(status, 200);
    assert!(page.contains("Accept and join"), "{page}");
    let csrf = csrf_token(&page);
    let (status, headers, body) = session
        .post(
            &app,
            "/invitations/accept",
            Some(&app.base),
            &[("csrf", csrf.as_str()), ("token", token.as_str())],
        )
        .await;
    assert_eq!(status, 303, "{body}");
    assert_eq!(
        headers["location"],
        format!("/w/{}/stores", owner.workspace_id).as_str()
    );
    let role: String = sqlx::query_scalar(
        "SELECT m.role FROM memberships m JOIN users u ON u.id = m.user_id
         WHERE u.email = 'newcomer@example.com' AND m.workspace_id = $1",
    )
    .bind(owner.workspace_id)
    .fetch_one(&app.db)
    .await
    .unwrap();
    assert_eq!(role, "reviewer");
    // A used link shows that it is used.
    let (status, _, _) = session.get(&app, &link).await;
    assert_eq!(status, 404);
    // Somewhere else than this site is not a place to go after signing in.
    let (_, _, login) = session.get(&app, "/login?next=//evil.example.net/").await;
    assert!(!login.contains("evil.example.net"), "{login}");

    // Forgot password: the page mails a link whose page sets the new password.
    let mut anonymous = WebSession {
        cookies: Vec::new(),
    };
    let (_, _, page) = anonymous.get(&app, "/login").await;
    assert!(page.contains("href=\"/forgot-password\""), "{page}");
    let (_, _, page) = anonymous.get(&app, "/forgot-password").await;
    let csrf = csrf_token(&page);
    let (status, _, page) = anonymous
        .post(
            &app,
            "/forgot-password",
            Some(&app.base),
            &[("csrf", csrf.as_str()), ("email", "newcomer@example.com")],
        )
        .await;
    assert_eq!(status, 202, "{page}");
    assert!(page.contains("on its way"), "{page}");
    let reset = app
        .mailed_token("newcomer@example.com", "/reset-password?token=")
        .await;
    let (status, _, page) = anonymous
        .get(&app, &format!("/reset-password?token={reset}"))
        .await;
    assert_eq!(status, 200);
    let csrf = csrf_token(&page);
    let (status, _, page) = anonymous
        .post(
            &app,
            "/reset-password",
            Some(&app.base),
            &[
                ("csrf", csrf.as_str()),
                ("token", reset.as_str()),
                ("password", "another long passphrase 7"),
            ],
        )
        .await;
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("new password is set"), "{page}");
    // The session that joined has ended with the reset.
    let (status, _, _) = session
        .get(&app, &format!("/w/{}/stores", owner.workspace_id))
        .await;
    assert_ne!(status, 200);
}

/// After a bulk canary landed in the default store view, the store page says why pushes go
/// product by product and what would fix it; the review queue names the fields of a push the
/// store did not take.
#[tokio::test]
async fn the_store_page_says_why_bulk_pushes_go_product_by_product() {
    let app = TestApp::spawn().await;
    let sim = sim(4).await;
    let owner = app.register("owner@example.com").await;
    let store = app.connect_store(&owner, &sim).await;
    app.sync(&owner, &store, "full").await;
    let (status, _) = app
        .call(
            reqwest::Method::PATCH,
            &format!("/stores/{store}"),
            Some(&owner.access_token),
            Some(json!({"push_via_bulk": true})),
        )
        .await;
    assert_eq!(status, 200);
    let mut session = web_login(&app, "owner@example.com").await;
    let store_page = format!("/w/{}/stores/{store}", owner.workspace_id);
    let (_, _, page) = session.get(&app, &store_page).await;
    assert!(page.contains("is a canary of one product"), "{page}");

    let product: uuid::Uuid = sqlx::query_scalar("SELECT id FROM products ORDER BY sku LIMIT 1")
        .fetch_one(&app.db)
        .await
        .unwrap();
    let proposal = app
        .approved_edit(
            &owner.access_token,
            &product.to_string(),
            json!({"store_view": "fr", "fields": {"meta_title": "Titre en masse"}}),
        )
        .await;
    run_job(
        &app,
        &owner,
        &format!("/stores/{store}/push"),
        json!({"all_approved": true}),
    )
    .await;
    assert_eq!(version_state(&app, &proposal).await, "pushed");
    let (_, _, page) = session.get(&app, &store_page).await;
    assert!(page.contains("Bulk pushes go product by product"), "{page}");
    assert!(page.contains("RabbitMQ"), "the fix: {page}");

    // A push the store did not take shows each field, what was sent and what Magento shows.
    sqlx::query(
        "UPDATE product_versions SET state = 'failed', meta = meta || jsonb_build_object(
            'push_error', 'the store did not apply the write', 'push_error_kind', 'not_applied',
            'not_applied', jsonb_build_array(jsonb_build_object(
                'field', 'meta_title', 'sent', 'Titre en masse', 'store', 'Old title')))
         WHERE id = $1::uuid",
    )
    .bind(&proposal)
    .execute(&app.db)
    .await
    .unwrap();
    let review = format!(
        "/w/{}/stores/{store}/review?state=failed",
        owner.workspace_id
    );
    let (_, _, page) = session.get(&app, &review).await;
    assert!(page.contains("Push failed (not_applied)"), "{page}");
    assert!(page.contains("Magento shows"), "{page}");
    assert!(page.contains("Old title"), "{page}");
}
