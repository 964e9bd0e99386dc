//! Review and push against the simulator: what reaches which scope, conflicts, idempotency,
//! dry runs, failures, roles, four-eyes, and a rollback round trip.

use magento_sim::{MagentoSim, SimConfig};
use serde_json::{Value, json};

use crate::helpers::{Registered, TestApp, error_code};

/// A store on the simulator, connected and synced, with its owner.
pub(crate) struct Shop {
    pub(crate) app: TestApp,
    pub(crate) sim: MagentoSim,
    pub(crate) owner: Registered,
    pub(crate) store_id: String,
}

async fn shop(products: usize) -> Shop {
    shop_with(SimConfig {
        products,
        ..SimConfig::default()
    })
    .await
}

pub(crate) async fn shop_with(config: SimConfig) -> Shop {
    shop_denied(config, &[]).await
}

/// [`shop_with`], the integration refused the ACL resources `denied` from the start.
pub(crate) async fn shop_denied(config: SimConfig, denied: &[&str]) -> Shop {
    let app = TestApp::spawn().await;
    let sim = MagentoSim::start(config).await.expect("simulator starts");
    for resource in denied {
        sim.deny_resource(&sim.credentials().consumer_key, resource)
            .unwrap();
    }
    let owner = app.register("shop@example.com").await;
    let store_id = app.connect_store(&owner, &sim).await;
    app.sync(&owner, &store_id, "full").await;
    Shop {
        app,
        sim,
        owner,
        store_id,
    }
}

impl Shop {
    pub(crate) async fn product_id(&self, sku: &str) -> String {
        let id: uuid::Uuid = sqlx::query_scalar("SELECT id FROM products WHERE sku = $1")
            .bind(sku)
            .fetch_one(&self.app.db)
            .await
            .unwrap();
        id.to_string()
    }

    /// A person's edit → the proposal's id.
    async fn propose(&self, who: &Registered, sku: &str, scope: &str, edit: Value) -> String {
        self.propose_with(&who.access_token, sku, scope, edit).await
    }

    /// An edit made with `token` (a person's session or an API key) → the proposal's id.
    async fn propose_with(&self, token: &str, sku: &str, scope: &str, edit: Value) -> String {
        let (status, version) = self.try_propose(token, sku, scope, edit).await;
        assert_eq!(status, 201, "{version}");
        version["id"].as_str().unwrap().to_string()
    }

    /// `POST /products/{id}/versions` in `scope` with `token`: the answer.
    pub(crate) async fn try_propose(
        &self,
        token: &str,
        sku: &str,
        scope: &str,
        edit: Value,
    ) -> (u16, Value) {
        let mut body = edit;
        body["store_view"] = json!(scope);
        self.app
            .post(
                &format!("/products/{}/versions", self.product_id(sku).await),
                Some(token),
                body,
            )
            .await
    }

    async fn approve(&self, who: &Registered, id: &str) -> (u16, Value) {
        self.app
            .post(
                &format!("/proposals/{id}/approve"),
                Some(&who.access_token),
                json!({}),
            )
            .await
    }

    pub(crate) async fn push(&self, who: &Registered, body: Value) -> Value {
        let path = format!("/stores/{}/push", self.store_id);
        let (_, job) = self.app.run_job(&path, &who.access_token, body).await;
        job
    }

    /// `PATCH /stores/{id} {"push_via_bulk": true}`: the store.
    pub(crate) async fn set_push_via_bulk(&self) -> Value {
        let (status, store) = self
            .app
            .call(
                reqwest::Method::PATCH,
                &format!("/stores/{}", self.store_id),
                Some(&self.owner.access_token),
                Some(json!({"push_via_bulk": true})),
            )
            .await;
        assert_eq!(status, 200, "{store}");
        store
    }

    pub(crate) async fn state_of(&self, id: &str) -> String {
        sqlx::query_scalar("SELECT state FROM product_versions WHERE id = $1::uuid")
            .bind(id)
            .fetch_one(&self.app.db)
            .await
            .unwrap()
    }

    /// A SKU whose store view `view` inherits every text field (the simulator left it
    /// untranslated), with a description.
    fn inheriting_sku(&self, view: &str) -> String {
        let flaws = self.sim.planted_flaws();
        flaws
            .iter()
            .filter(|f| {
                f.kind == "untranslated" && f.store_view == view && f.field == "description"
            })
            .map(|f| f.sku.clone())
            .find(|sku| sku.starts_with("CD-"))
            .expect("an untranslated product")
    }

    pub(crate) fn attribute(&self, sku: &str, view: Option<&str>, code: &str) -> Option<String> {
        self.sim
            .shown(sku, view, code)
            .and_then(|v| v.as_str().map(String::from))
    }
}

#[tokio::test]
async fn a_push_writes_exactly_the_approved_fields_to_exactly_their_scopes() {
    let shop = shop(60).await;
    let reviewer = shop
        .app
        .member(&shop.owner, "reviewer@example.com", "reviewer")
        .await;
    let sku = shop.inheriting_sku("de");
    let de_title_before = shop.attribute(&sku, Some("de"), "meta_title");
    assert_eq!(de_title_before, shop.attribute(&sku, None, "meta_title"));

    let default_edit = shop
        .propose(
            &shop.owner,
            &sku,
            "all",
            json!({"fields": {"meta_title": "A better title"}}),
        )
        .await;
    let french_edit = shop
        .propose(
            &shop.owner,
            &sku,
            "fr",
            json!({"fields": {"short_description": "Un t-shirt très doux"}}),
        )
        .await;
    // The review list shows both with their changes against live.
    let (_, listed) = shop
        .app
        .get(
            &format!("/stores/{}/proposals", shop.store_id),
            &reviewer.access_token,
        )
        .await;
    let items = listed["items"].as_array().unwrap();
    assert_eq!(items.len(), 2, "{listed}");
    let default_item = items
        .iter()
        .find(|p| p["id"] == default_edit.as_str())
        .unwrap();
    assert_eq!(default_item["changes"][0]["field"], "meta_title");
    assert_eq!(default_item["changes"][0]["to"], "A better title");
    let (_, by_field) = shop
        .app
        .get(
            &format!(
                "/stores/{}/proposals?field=short_description",
                shop.store_id
            ),
            &reviewer.access_token,
        )
        .await;
    assert_eq!(by_field["items"].as_array().unwrap().len(), 1);
    assert_eq!(by_field["items"][0]["id"], french_edit.as_str());

    // Nothing is pushed before approval.
    let (status, refused) = shop
        .app
        .post(
            &format!("/stores/{}/push", shop.store_id),
            Some(&reviewer.access_token),
            json!({"proposals": [default_edit]}),
        )
        .await;
    assert_eq!(status, 422, "{refused}");

    for id in [&default_edit, &french_edit] {
        let (status, decided) = shop.approve(&reviewer, id).await;
        assert_eq!(status, 200, "{decided}");
    }
    let job = shop.push(&reviewer, json!({"all_approved": true})).await;
    assert_eq!(job["counters"]["pushed"], 2, "{job}");
    assert_eq!(job["counters"]["conflict"], 0);
    assert_eq!(job["counters"]["failed"], 0);

    let writes = shop.sim.writes();
    assert_eq!(writes.len(), 2, "{writes:?}");
    let default_write = writes
        .iter()
        .find(|w| w.store_code.as_deref() == Some("all"))
        .unwrap();
    assert_eq!(default_write.method, "PUT");
    let product = &default_write.body["product"];
    assert!(product.get("name").is_none(), "{product}");
    assert_eq!(
        product["custom_attributes"],
        json!([{"attribute_code": "meta_title", "value": "A better title"}]),
        "only the changed attribute is sent"
    );
    assert!(product.get("media_gallery_entries").is_none());
    let french_write = writes
        .iter()
        .find(|w| w.store_code.as_deref() == Some("fr"))
        .unwrap();
    assert_eq!(
        french_write.body["product"]["custom_attributes"],
        json!([{"attribute_code": "short_description", "value": "Un t-shirt très doux"}])
    );
    // The store now shows the change where it belongs; untouched views keep inheriting.
    assert_eq!(
        shop.attribute(&sku, None, "meta_title").as_deref(),
        Some("A better title")
    );
    assert_eq!(
        shop.attribute(&sku, Some("de"), "meta_title").as_deref(),
        Some("A better title"),
        "the German view still inherits the default"
    );
    assert_eq!(
        shop.attribute(&sku, Some("fr"), "short_description")
            .as_deref(),
        Some("Un t-shirt très doux")
    );
    assert_ne!(
        shop.attribute(&sku, None, "short_description").as_deref(),
        Some("Un t-shirt très doux")
    );
    assert_eq!(shop.state_of(&default_edit).await, "pushed");
    assert_eq!(shop.state_of(&french_edit).await, "pushed");
    let origin: String = sqlx::query_scalar(
        "SELECT v.origin FROM product_live l JOIN product_versions v ON v.id = l.version_id
         WHERE l.product_id = $1::uuid AND l.store_view = 'all'",
    )
    .bind(shop.product_id(&sku).await)
    .fetch_one(&shop.app.db)
    .await
    .unwrap();
    assert_eq!(origin, "push");
    // The next sync finds what it already knows.
    let resync = shop
        .app
        .sync(&shop.owner, &shop.store_id, "incremental")
        .await;
    assert_eq!(resync["counters"]["versions_created"], 0, "{resync}");
}

#[tokio::test]
async fn a_change_made_in_the_store_meanwhile_is_a_conflict_and_nothing_is_written() {
    let shop = shop(20).await;
    let sku = shop.inheriting_sku("fr");
    let id = shop
        .propose(
            &shop.owner,
            &sku,
            "all",
            json!({"fields": {"description": "<p>Ours</p>"}}),
        )
        .await;
    shop.approve(&shop.owner, &id).await;
    let before = shop.attribute(&sku, None, "description");
    assert!(shop.sim.update_product(
        &sku,
        None,
        json!({"description": "<p>Edited in Magento</p>"})
    ));
    let job = shop.push(&shop.owner, json!({"proposals": [id]})).await;
    assert_eq!(job["counters"]["conflict"], 1, "{job}");
    assert!(shop.sim.writes().is_empty(), "no write on a conflict");
    assert_eq!(shop.state_of(&id).await, "conflict");
    let (_, conflicts) = shop
        .app
        .get(
            &format!("/stores/{}/proposals?state=conflict", shop.store_id),
            &shop.owner.access_token,
        )
        .await;
    let three_way = &conflicts["items"][0]["meta"]["conflict"][0];
    assert_eq!(three_way["field"], "description");
    assert_eq!(three_way["base"], json!(before));
    assert_eq!(three_way["store"], "<p>Edited in Magento</p>");
    assert_eq!(three_way["proposal"], "<p>Ours</p>");
}

#[tokio::test]
async fn dry_runs_send_nothing_and_a_repeated_push_writes_once() {
    let shop = shop(20).await;
    let sku = shop.inheriting_sku("fr");
    let id = shop
        .propose(
            &shop.owner,
            &sku,
            "all",
            json!({"fields": {"meta_title": "Dry title"}}),
        )
        .await;
    shop.approve(&shop.owner, &id).await;
    let (status, dry) = shop
        .app
        .post(
            &format!("/stores/{}/push", shop.store_id),
            Some(&shop.owner.access_token),
            json!({"all_approved": true, "dry_run": true}),
        )
        .await;
    assert_eq!(status, 200, "{dry}");
    let item = &dry["items"][0];
    assert_eq!(item["outcome"], "write");
    let request = &item["requests"][0];
    assert_eq!(request["method"], "PUT");
    assert!(
        request["path"]
            .as_str()
            .unwrap()
            .starts_with("/rest/all/V1/products/"),
        "{request}"
    );
    assert_eq!(
        request["body"]["product"]["custom_attributes"],
        json!([{"attribute_code": "meta_title", "value": "Dry title"}])
    );
    assert!(shop.sim.writes().is_empty(), "a dry run writes nothing");
    assert_eq!(shop.state_of(&id).await, "approved");

    shop.push(&shop.owner, json!({"proposals": [id]})).await;
    assert_eq!(shop.sim.writes().len(), 1);
    // As if the process died after Magento answered but before the commit: the proposal is
    // still approved. Pushing again reads the store, finds it applied, and writes nothing.
    sqlx::query("UPDATE product_versions SET state = 'approved' WHERE id = $1::uuid")
        .bind(&id)
        .execute(&shop.app.db)
        .await
        .unwrap();
    let again = shop.push(&shop.owner, json!({"proposals": [id]})).await;
    assert_eq!(again["counters"]["already_applied"], 1, "{again}");
    assert_eq!(shop.sim.writes().len(), 1, "written once");
    assert_eq!(shop.state_of(&id).await, "pushed");
}

#[tokio::test]
async fn a_failing_item_leaves_the_rest_pushed_and_can_be_retried_alone() {
    let shop = shop(20).await;
    let skus: Vec<String> = shop
        .sim
        .skus()
        .into_iter()
        .filter(|s| s.starts_with("CD-"))
        .take(2)
        .collect();
    let mut ids = Vec::new();
    for sku in &skus {
        let id = shop
            .propose(
                &shop.owner,
                sku,
                "all",
                json!({"fields": {"meta_keyword": "fresh, new"}}),
            )
            .await;
        shop.approve(&shop.owner, &id).await;
        ids.push(id);
    }
    // Every request about the first product answers 503 (each attempt the client makes).
    shop.sim.fail_skus([skus[0].clone()]);
    let job = shop.push(&shop.owner, json!({"all_approved": true})).await;
    assert_eq!(job["counters"]["failed"], 1, "{job}");
    assert_eq!(job["counters"]["pushed"], 1, "{job}");
    let states = [shop.state_of(&ids[0]).await, shop.state_of(&ids[1]).await];
    let failed = ids[states
        .iter()
        .position(|s| s == "failed")
        .expect("one failed")]
    .clone();
    assert!(states.contains(&"pushed".to_string()));
    let error: String =
        sqlx::query_scalar("SELECT meta->>'push_error' FROM product_versions WHERE id = $1::uuid")
            .bind(&failed)
            .fetch_one(&shop.app.db)
            .await
            .unwrap();
    assert!(error.contains("503"), "{error}");
    shop.sim.fail_skus(Vec::new());
    let retried = shop.push(&shop.owner, json!({"proposals": [failed]})).await;
    assert_eq!(retried["counters"]["pushed"], 1, "{retried}");
    assert_eq!(shop.state_of(&failed).await, "pushed");
    assert_eq!(shop.sim.writes().len(), 2);
}

#[tokio::test]
async fn alt_text_goes_to_the_gallery_entry_of_its_store_view() {
    let shop = shop(30).await;
    let product = shop
        .sim
        .skus()
        .into_iter()
        .filter(|s| s.starts_with("CD-"))
        .find(|sku| {
            shop.sim.product(sku, None).unwrap()["media_gallery_entries"]
                .as_array()
                .is_some_and(|m| !m.is_empty())
        })
        .unwrap();
    let entry = shop.sim.product(&product, None).unwrap()["media_gallery_entries"][0].clone();
    let entry_id = entry["id"].as_i64().unwrap();
    let id = shop
        .propose(
            &shop.owner,
            &product,
            "fr",
            json!({"media": [{"entry_id": entry_id, "label": "T-shirt, vue de face"}]}),
        )
        .await;
    shop.approve(&shop.owner, &id).await;
    let job = shop.push(&shop.owner, json!({"proposals": [id]})).await;
    assert_eq!(job["counters"]["pushed"], 1, "{job}");
    let writes = shop.sim.writes();
    assert_eq!(writes.len(), 1, "{writes:?}");
    assert_eq!(writes[0].method, "PUT");
    assert_eq!(writes[0].store_code.as_deref(), Some("fr"));
    assert!(
        writes[0].path.ends_with(&format!("/media/{entry_id}")),
        "{}",
        writes[0].path
    );
    assert_eq!(writes[0].body["entry"]["id"], entry_id);
    let label = |view| {
        shop.sim.product(&product, view).unwrap()["media_gallery_entries"][0]["label"].clone()
    };
    assert_eq!(label(Some("fr")), "T-shirt, vue de face");
    assert_eq!(
        label(None),
        entry["label"],
        "the default label is untouched"
    );
    assert_eq!(
        shop.sim.product(&product, None).unwrap()["media_gallery_entries"]
            .as_array()
            .unwrap()
            .len(),
        shop.sim.product(&product, Some("fr")).unwrap()["media_gallery_entries"]
            .as_array()
            .unwrap()
            .len(),
        "no image was added"
    );
}

#[tokio::test]
async fn a_url_key_another_product_uses_fails_before_any_write() {
    let shop = shop(20).await;
    let skus: Vec<String> = shop
        .sim
        .skus()
        .into_iter()
        .filter(|s| s.starts_with("CD-"))
        .take(2)
        .collect();
    let taken = shop.attribute(&skus[1], None, "url_key").unwrap();
    let id = shop
        .propose(
            &shop.owner,
            &skus[0],
            "all",
            json!({"fields": {"url_key": taken}}),
        )
        .await;
    shop.approve(&shop.owner, &id).await;
    let job = shop.push(&shop.owner, json!({"proposals": [id]})).await;
    assert_eq!(job["counters"]["failed"], 1, "{job}");
    assert!(shop.sim.writes().is_empty());
    let error: String =
        sqlx::query_scalar("SELECT meta->>'push_error' FROM product_versions WHERE id = $1::uuid")
            .bind(&id)
            .fetch_one(&shop.app.db)
            .await
            .unwrap();
    assert!(error.contains(&skus[1]), "{error}");
}

#[tokio::test]
async fn roles_four_eyes_and_reviewer_edits() {
    let shop = shop(10).await;
    let editor = shop
        .app
        .member(&shop.owner, "editor@example.com", "editor")
        .await;
    let reviewer = shop
        .app
        .member(&shop.owner, "reviewer@example.com", "reviewer")
        .await;
    let viewer = shop
        .app
        .member(&shop.owner, "viewer@example.com", "viewer")
        .await;
    let sku = shop
        .sim
        .skus()
        .into_iter()
        .find(|s| s.starts_with("CD-"))
        .unwrap();
    let id = shop
        .propose(
            &editor,
            &sku,
            "all",
            json!({"fields": {"meta_title": "Editor title"}}),
        )
        .await;
    let (status, _) = shop.approve(&editor, &id).await;
    assert_eq!(status, 403, "editors do not approve");
    let (status, _) = shop.approve(&viewer, &id).await;
    assert_eq!(status, 403);
    let (status, _) = shop
        .app
        .post(
            &format!("/stores/{}/push", shop.store_id),
            Some(&editor.access_token),
            json!({"all_approved": true}),
        )
        .await;
    assert_eq!(status, 403, "editors do not push");

    // Four eyes: the author of a change never approves it alone.
    let (status, _) = shop
        .app
        .call(
            reqwest::Method::PUT,
            &format!("/workspaces/{}/settings", shop.owner.workspace_id),
            Some(&shop.owner.access_token),
            Some(json!({"four_eyes": true})),
        )
        .await;
    assert_eq!(status, 200);
    let own = shop
        .propose(
            &shop.owner,
            &sku,
            "fr",
            json!({"fields": {"meta_title": "Titre"}}),
        )
        .await;
    let (status, body) = shop.approve(&shop.owner, &own).await;
    assert_eq!(status, 403, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("four-eyes")
    );
    let (status, _) = shop.approve(&reviewer, &own).await;
    assert_eq!(status, 200);

    // Without four eyes, a reviewer's edit becomes the approved content, attributed to them.
    let (status, _) = shop
        .app
        .call(
            reqwest::Method::PUT,
            &format!("/workspaces/{}/settings", shop.owner.workspace_id),
            Some(&shop.owner.access_token),
            Some(json!({"four_eyes": false})),
        )
        .await;
    assert_eq!(status, 200);
    let (status, decided) = shop
        .app
        .post(
            &format!("/proposals/{id}/approve"),
            Some(&reviewer.access_token),
            json!({"fields": {"meta_title": "Reviewer title"}, "comment": "tightened"}),
        )
        .await;
    assert_eq!(status, 200, "{decided}");
    let approved = decided["id"].as_str().unwrap();
    assert_ne!(approved, id);
    assert_eq!(shop.state_of(&id).await, "superseded");
    let (author, title): (uuid::Uuid, String) = sqlx::query_as(
        "SELECT author_user_id, content->'fields'->>'meta_title' FROM product_versions WHERE id = $1::uuid",
    )
    .bind(approved)
    .fetch_one(&shop.app.db)
    .await
    .unwrap();
    assert_eq!(author, reviewer.user_id);
    assert_eq!(title, "Reviewer title");

    // Decisions are in the audit log; a decided proposal cannot be approved again.
    let (_, log) = shop
        .app
        .get(
            &format!("/workspaces/{}/audit-log", shop.owner.workspace_id),
            &shop.owner.access_token,
        )
        .await;
    let actions: Vec<&str> = log["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert!(
        actions
            .iter()
            .filter(|a| **a == "proposal.approved")
            .count()
            >= 2,
        "{actions:?}"
    );
    let (status, _) = shop.approve(&reviewer, &own).await;
    assert_eq!(status, 409);

    // Another workspace sees none of it.
    let stranger = shop.app.register("other@example.com").await;
    let (status, body) = shop.approve(&stranger, approved).await;
    assert_eq!(status, 404, "{body}");
    assert_eq!(error_code(&body), "not_found");
    let (status, _) = shop
        .app
        .get(
            &format!("/stores/{}/proposals", shop.store_id),
            &stranger.access_token,
        )
        .await;
    assert_eq!(status, 404);
}

/// With four eyes, a change is approved by someone who neither wrote it nor edits it while
/// approving: re-sending a field unchanged is no way round, and API keys count as authors.
#[tokio::test]
async fn four_eyes_holds_for_reviewer_edits_and_api_keys() {
    let shop = shop(10).await;
    let reviewer = shop
        .app
        .member(&shop.owner, "reviewer@example.com", "reviewer")
        .await;
    let (status, _) = shop
        .app
        .call(
            reqwest::Method::PUT,
            &format!("/workspaces/{}/settings", shop.owner.workspace_id),
            Some(&shop.owner.access_token),
            Some(json!({"four_eyes": true})),
        )
        .await;
    assert_eq!(status, 200);
    let skus: Vec<String> = shop
        .sim
        .skus()
        .into_iter()
        .filter(|s| s.starts_with("CD-"))
        .take(3)
        .collect();
    let approve_with = |who: String, id: String, body: Value| {
        let app = &shop.app;
        async move {
            app.post(&format!("/proposals/{id}/approve"), Some(&who), body)
                .await
        }
    };

    // The author re-sends a field as it is ("edit and approve" in the UI): still the author.
    let own = shop
        .propose(
            &shop.owner,
            &skus[0],
            "all",
            json!({"fields": {"meta_title": "Owner title"}}),
        )
        .await;
    let (status, body) = approve_with(
        shop.owner.access_token.clone(),
        own.clone(),
        json!({"fields": {"meta_title": "Owner title"}}),
    )
    .await;
    assert_eq!(status, 403, "{body}");
    // …or changes it: then they would approve their own words twice over.
    let (status, body) = approve_with(
        shop.owner.access_token.clone(),
        own.clone(),
        json!({"fields": {"meta_title": "Owner title, better"}}),
    )
    .await;
    assert_eq!(status, 403, "{body}");
    // A reviewer who edits while approving would approve their own words.
    let (status, body) = approve_with(
        reviewer.access_token.clone(),
        own.clone(),
        json!({"fields": {"meta_title": "Reviewer title"}}),
    )
    .await;
    assert_eq!(status, 403, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("four-eyes")
    );
    assert_eq!(shop.state_of(&own).await, "proposed");
    // Re-sending the proposal unchanged is a plain approval, which another person may give.
    let (status, body) = approve_with(
        reviewer.access_token.clone(),
        own.clone(),
        json!({"fields": {"meta_title": "Owner title"}}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["id"].as_str(), Some(own.as_str()));

    // A change made with an API key names the key as its author: the key cannot approve it,
    // alone or in bulk, and neither can the person who made the key or another key of theirs.
    let key = shop.app.api_key(&shop.owner, "admin").await;
    let second_key = shop.app.api_key(&shop.owner, "reviewer").await;
    let by_key = shop
        .propose_with(
            &key,
            &skus[1],
            "all",
            json!({"fields": {"meta_title": "Key title"}}),
        )
        .await;
    let author_key: Option<uuid::Uuid> =
        sqlx::query_scalar("SELECT author_api_key_id FROM product_versions WHERE id = $1::uuid")
            .bind(&by_key)
            .fetch_one(&shop.app.db)
            .await
            .unwrap();
    assert!(author_key.is_some(), "the key is recorded as the author");
    for who in [&key, &second_key, &shop.owner.access_token] {
        let (status, body) = approve_with(who.clone(), by_key.clone(), json!({})).await;
        assert_eq!(status, 403, "{body}");
    }
    let (status, bulk) = shop
        .app
        .post(
            &format!("/stores/{}/proposals/approve", shop.store_id),
            Some(&key),
            json!({"ids": [by_key]}),
        )
        .await;
    assert_eq!(status, 200, "{bulk}");
    assert_eq!(bulk["decided"], json!([]));
    assert!(
        bulk["skipped"][0]["reason"]
            .as_str()
            .unwrap()
            .contains("four-eyes"),
        "{bulk}"
    );
    assert_eq!(shop.state_of(&by_key).await, "proposed");
    let (status, body) =
        approve_with(reviewer.access_token.clone(), by_key.clone(), json!({})).await;
    assert_eq!(status, 200, "{body}");

    // An admin's key does not approve what the admin wrote.
    let admin = shop
        .app
        .member(&shop.owner, "admin@example.com", "admin")
        .await;
    let (status, created) = shop
        .app
        .post(
            &format!("/workspaces/{}/api-keys", shop.owner.workspace_id),
            Some(&admin.access_token),
            json!({"name": "admin's key", "role": "reviewer"}),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    let admins_key = created["key"].as_str().unwrap().to_string();
    let by_admin = shop
        .propose(
            &admin,
            &skus[2],
            "all",
            json!({"fields": {"meta_title": "Admin title"}}),
        )
        .await;
    let (status, body) = approve_with(admins_key, by_admin.clone(), json!({})).await;
    assert_eq!(status, 403, "{body}");
    let (status, body) = approve_with(reviewer.access_token.clone(), by_admin, json!({})).await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test]
async fn bulk_decisions_and_a_rollback_round_trip() {
    let shop = shop(10).await;
    let skus: Vec<String> = shop
        .sim
        .skus()
        .into_iter()
        .filter(|s| s.starts_with("CD-"))
        .take(3)
        .collect();
    let original = shop.attribute(&skus[0], None, "meta_keyword");
    let mut ids = Vec::new();
    for sku in &skus {
        ids.push(
            shop.propose(
                &shop.owner,
                sku,
                "all",
                json!({"fields": {"meta_keyword": "bulk, change"}}),
            )
            .await,
        );
    }
    let (status, bulk) = shop
        .app
        .post(
            &format!("/stores/{}/proposals/approve", shop.store_id),
            Some(&shop.owner.access_token),
            json!({"filter": {"field": "meta_keyword"}, "comment": "all good"}),
        )
        .await;
    assert_eq!(status, 200, "{bulk}");
    assert_eq!(bulk["decided"].as_array().unwrap().len(), 3);
    let (_, rejected) = shop
        .app
        .post(
            &format!("/stores/{}/proposals/reject", shop.store_id),
            Some(&shop.owner.access_token),
            json!({"ids": [ids[2], uuid::Uuid::new_v4()]}),
        )
        .await;
    assert_eq!(rejected["decided"], json!([ids[2]]));
    assert_eq!(rejected["skipped"].as_array().unwrap().len(), 1);
    let job = shop.push(&shop.owner, json!({"all_approved": true})).await;
    assert_eq!(job["counters"]["pushed"], 2, "{job}");
    assert_eq!(
        shop.attribute(&skus[0], None, "meta_keyword").as_deref(),
        Some("bulk, change")
    );
    assert_ne!(
        shop.attribute(&skus[2], None, "meta_keyword").as_deref(),
        Some("bulk, change")
    );

    // Roll back to the version pulled first, approve, push: the store shows the old value.
    let product_id = shop.product_id(&skus[0]).await;
    let first: uuid::Uuid = sqlx::query_scalar(
        "SELECT id FROM product_versions WHERE product_id = $1::uuid AND store_view = 'all' AND origin = 'pull' ORDER BY id LIMIT 1",
    )
    .bind(&product_id)
    .fetch_one(&shop.app.db)
    .await
    .unwrap();
    let (status, rollback) = shop
        .app
        .post(
            &format!("/products/{product_id}/rollback"),
            Some(&shop.owner.access_token),
            json!({"version_id": first}),
        )
        .await;
    assert_eq!(status, 201, "{rollback}");
    let rollback_id = rollback["id"].as_str().unwrap().to_string();
    shop.approve(&shop.owner, &rollback_id).await;
    shop.push(&shop.owner, json!({"proposals": [rollback_id]}))
        .await;
    assert_eq!(shop.attribute(&skus[0], None, "meta_keyword"), original);
}

/// With RabbitMQ behind Magento's bulk API each operation runs in its URL's store view.
#[tokio::test]
async fn a_store_set_to_bulk_pushes_through_magentos_asynchronous_api() {
    let shop = shop_with(SimConfig {
        products: 20,
        queue_mode: magento_sim::QueueMode::Amqp,
        ..SimConfig::default()
    })
    .await;
    let store = shop.set_push_via_bulk().await;
    assert_eq!(store["push_via_bulk"], true);
    let skus: Vec<String> = shop
        .sim
        .skus()
        .into_iter()
        .filter(|s| s.starts_with("CD-"))
        .take(2)
        .collect();
    let mut ids = Vec::new();
    for sku in &skus {
        ids.push(
            shop.propose(
                &shop.owner,
                sku,
                "all",
                json!({"fields": {"meta_keyword": "bulk, keywords"}}),
            )
            .await,
        );
    }
    ids.push(
        shop.propose(
            &shop.owner,
            &skus[0],
            "fr",
            json!({"fields": {"short_description": "Envoyé en masse"}}),
        )
        .await,
    );
    for id in &ids {
        let (status, _) = shop.approve(&shop.owner, id).await;
        assert_eq!(status, 200);
    }
    let job = shop.push(&shop.owner, json!({"all_approved": true})).await;
    assert_eq!(job["counters"]["pushed"], 3, "{job}");
    // The first bulk of each scope is a canary of one product, checked before the rest.
    assert_eq!(job["counters"]["canaries"], 2, "{job}");
    assert_eq!(job["counters"]["bulks"], 3, "{job}");
    let writes = shop.sim.writes();
    assert_eq!(writes.len(), 3, "{writes:?}");
    assert!(
        writes
            .iter()
            .all(|w| w.path.contains("/async/bulk/V1/products/bySku")),
        "{writes:?}"
    );
    let french = writes
        .iter()
        .find(|w| w.store_code.as_deref() == Some("fr"))
        .unwrap();
    assert_eq!(
        french.body["product"]["custom_attributes"],
        json!([{"attribute_code": "short_description", "value": "Envoyé en masse"}])
    );
    for id in &ids {
        assert_eq!(shop.state_of(id).await, "pushed");
    }
    assert_eq!(
        shop.attribute(&skus[1], None, "meta_keyword").as_deref(),
        Some("bulk, keywords")
    );
    assert_eq!(
        shop.attribute(&skus[0], Some("fr"), "short_description")
            .as_deref(),
        Some("Envoyé en masse")
    );
    // Pushing again finds everything applied and submits nothing.
    for id in &ids {
        sqlx::query("UPDATE product_versions SET state = 'approved' WHERE id = $1::uuid")
            .bind(id)
            .execute(&shop.app.db)
            .await
            .unwrap();
    }
    let again = shop.push(&shop.owner, json!({"all_approved": true})).await;
    assert_eq!(again["counters"]["already_applied"], 3, "{again}");
    assert_eq!(again["counters"]["bulks"], 0);
    assert_eq!(shop.sim.writes().len(), 3);
}
