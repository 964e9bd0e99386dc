//! Products and versions through the API: list, detail, history, diff, edits, rollback, access.

use serde_json::{Value, json};
use uuid::Uuid;

use crate::catalog_fixtures::{Catalog, fields, image};
use crate::helpers::{TestApp, error_code};

fn skus(body: &Value) -> Vec<&str> {
    body["items"]
        .as_array()
        .unwrap_or_else(|| panic!("not a list: {body}"))
        .iter()
        .map(|p| p["sku"].as_str().unwrap())
        .collect()
}

fn id(value: &Value) -> Uuid {
    value
        .as_str()
        .unwrap_or_else(|| panic!("not an id: {value}"))
        .parse()
        .unwrap()
}

async fn skus_of(app: &TestApp, token: &str, store: Uuid, query: &str) -> Vec<String> {
    let (status, body) = app
        .get(&format!("/stores/{store}/products?{query}"), token)
        .await;
    assert_eq!(status, 200, "{query}: {body}");
    skus(&body).into_iter().map(String::from).collect()
}

#[tokio::test]
async fn list_searches_filters_and_pages() {
    let app = TestApp::spawn().await;
    let owner = app.register("owner@example.com").await;
    let token = &owner.access_token;
    let cat = Catalog::store(&app.db, owner.workspace_id, &["fr", "de"], &["material"]).await;

    let red = cat.product("TEE-RED", "Red cotton tee").await;
    cat.pull(
        red,
        "all",
        fields(&[
            ("name", "Red cotton tee"),
            ("description", "Soft"),
            ("meta_description", "A red tee"),
            ("material", "cotton"),
        ]),
    )
    .await;
    cat.pull(red, "fr", fields(&[("name", "T-shirt rouge")]))
        .await;
    cat.pull(red, "de", fields(&[("material", "")])).await;

    // No meta description by default; the French view has its own.
    let blue = cat.product("TEE-BLUE", "Blue Tee").await;
    cat.pull(
        blue,
        "all",
        fields(&[("name", "Blue Tee"), ("description", "Soft")]),
    )
    .await;
    cat.pull(
        blue,
        "fr",
        fields(&[("meta_description", "Un tee bleu"), ("material", "laine")]),
    )
    .await;

    // An empty meta description, inherited by every view (none has a version at all).
    let mug = cat.product("MUG-01", "Coffee mug").await;
    cat.pull(
        mug,
        "all",
        fields(&[("name", "Coffee mug"), ("meta_description", "")]),
    )
    .await;

    // The German view overrides the meta description with an empty one.
    let socks = cat.product("SOCK-50%", "Wool socks").await;
    cat.pull(
        socks,
        "all",
        fields(&[("name", "Wool socks"), ("meta_description", "Warm")]),
    )
    .await;
    cat.pull(socks, "de", fields(&[("meta_description", "")]))
        .await;

    let cap = cat.product("CAP-9", "Baseball cap").await;
    cat.pull(cap, "all", fields(&[("name", "Baseball cap")]))
        .await;
    cat.remove(cap).await;

    // Another store of the same workspace stays out of this store's list.
    let other = Catalog::store(&app.db, owner.workspace_id, &[], &[]).await;
    other.product("TEE-GREEN", "Green tee").await;

    let store = cat.store_id;
    let (status, body) = app.get(&format!("/stores/{store}/products"), token).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(skus(&body), ["MUG-01", "SOCK-50%", "TEE-BLUE", "TEE-RED"]);
    assert!(body["next_cursor"].is_null());
    let item = &body["items"][3];
    assert_eq!(item["id"], red.to_string());
    assert_eq!(item["name"], "Red cotton tee");
    assert_eq!(item["type_id"], "simple");
    assert!(item["remote_id"].is_i64());
    assert!(item["removed_at"].is_null());
    assert!(item["remote_updated_at"].is_string());
    assert_eq!(item["open_proposals"], 0);

    // Search: SKU or name, any case, a substring; LIKE wildcards match literally.
    assert_eq!(
        skus_of(&app, token, store, "q=tee").await,
        ["TEE-BLUE", "TEE-RED"]
    );
    assert_eq!(skus_of(&app, token, store, "q=COTTON").await, ["TEE-RED"]);
    assert_eq!(skus_of(&app, token, store, "q=mug-0").await, ["MUG-01"]);
    assert_eq!(skus_of(&app, token, store, "q=50%25").await, ["SOCK-50%"]);
    assert!(skus_of(&app, token, store, "q=_").await.is_empty());
    assert!(skus_of(&app, token, store, "q=cap").await.is_empty());

    assert_eq!(skus_of(&app, token, store, "removed=true").await, ["CAP-9"]);
    assert_eq!(
        skus_of(&app, token, store, "removed=true&q=base").await,
        ["CAP-9"]
    );

    // Pages follow the SKU order without gaps or repeats.
    let (_, first) = app
        .get(&format!("/stores/{store}/products?limit=3"), token)
        .await;
    assert_eq!(skus(&first), ["MUG-01", "SOCK-50%", "TEE-BLUE"]);
    let cursor = first["next_cursor"].as_str().unwrap();
    let (_, second) = app
        .get(
            &format!("/stores/{store}/products?limit=3&cursor={cursor}"),
            token,
        )
        .await;
    assert_eq!(skus(&second), ["TEE-RED"]);
    assert!(second["next_cursor"].is_null());
    let (status, body) = app
        .get(&format!("/stores/{store}/products?cursor=garbage"), token)
        .await;
    assert_eq!(status, 422, "{body}");

    // Missing in the default scope: absent or empty.
    assert_eq!(
        skus_of(&app, token, store, "missing=meta_description").await,
        ["MUG-01", "TEE-BLUE"]
    );
    // A store view inherits the default unless it overrides it.
    assert_eq!(
        skus_of(&app, token, store, "missing=meta_description&store_view=fr").await,
        ["MUG-01"]
    );
    assert_eq!(
        skus_of(&app, token, store, "missing=meta_description&store_view=de").await,
        ["MUG-01", "SOCK-50%", "TEE-BLUE"]
    );
    assert_eq!(
        skus_of(&app, token, store, "missing=name&store_view=fr").await,
        Vec::<String>::new()
    );
    // Store content attributes count as fields.
    assert_eq!(
        skus_of(&app, token, store, "missing=material&q=tee").await,
        ["TEE-BLUE"]
    );

    assert_eq!(
        skus_of(&app, token, store, "missing=material&store_view=fr").await,
        ["MUG-01", "SOCK-50%"]
    );
    assert_eq!(
        skus_of(&app, token, store, "missing=material&store_view=de").await,
        ["MUG-01", "SOCK-50%", "TEE-BLUE", "TEE-RED"]
    );
    // Every branch of the filter pages in one SKU order.
    let (_, first) = app
        .get(
            &format!("/stores/{store}/products?missing=material&store_view=de&limit=3"),
            token,
        )
        .await;
    assert_eq!(skus(&first), ["MUG-01", "SOCK-50%", "TEE-BLUE"]);
    let cursor = first["next_cursor"].as_str().unwrap();
    assert_eq!(
        skus_of(
            &app,
            token,
            store,
            &format!("missing=material&store_view=de&limit=3&cursor={cursor}")
        )
        .await,
        ["TEE-RED"]
    );

    // State: products with a version in that state; open ones are counted per product.
    cat.version(
        red,
        "fr",
        fields(&[("name", "Tee rouge")]),
        "ai",
        "proposed",
        None,
    )
    .await;
    cat.version(
        red,
        "all",
        fields(&[("name", "Red")]),
        "ai",
        "rejected",
        None,
    )
    .await;
    cat.version(
        mug,
        "all",
        fields(&[("name", "Mug")]),
        "human",
        "approved",
        None,
    )
    .await;
    assert_eq!(
        skus_of(&app, token, store, "state=proposed").await,
        ["TEE-RED"]
    );
    assert_eq!(
        skus_of(&app, token, store, "state=rejected").await,
        ["TEE-RED"]
    );
    assert_eq!(
        skus_of(&app, token, store, "state=proposed&store_view=fr").await,
        ["TEE-RED"]
    );
    assert!(
        skus_of(&app, token, store, "state=proposed&store_view=all")
            .await
            .is_empty()
    );
    assert_eq!(
        skus_of(&app, token, store, "state=live&q=mug").await,
        ["MUG-01"]
    );
    let (_, body) = app.get(&format!("/stores/{store}/products"), token).await;
    let counts: Vec<(&str, i64)> = body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["sku"].as_str().unwrap(),
                p["open_proposals"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        counts,
        [
            ("MUG-01", 1),
            ("SOCK-50%", 0),
            ("TEE-BLUE", 0),
            ("TEE-RED", 1)
        ]
    );

    // Unknown fields, store views and states are refused, naming the parameter.
    for (query, field) in [
        ("missing=price", "missing"),
        ("store_view=xx", "store_view"),
    ] {
        let (status, body) = app
            .get(&format!("/stores/{store}/products?{query}"), token)
            .await;
        assert_eq!(status, 422, "{query}: {body}");
        assert_eq!(body["error"]["field"], field);
    }
    let (status, body) = app
        .get(&format!("/stores/{store}/products?state=maybe"), token)
        .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(error_code(&body), "bad_request");
}

#[tokio::test]
async fn detail_shows_live_and_effective_content_per_scope() {
    let app = TestApp::spawn().await;
    let owner = app.register("owner@example.com").await;
    let cat = Catalog::store(&app.db, owner.workspace_id, &["fr", "de"], &[]).await;
    let p = cat.product("TEE-RED", "Red tee").await;
    let mut default = fields(&[("name", "Red tee"), ("description", "Soft cotton")]);
    default["media"] = json!([image(1, "Front", 1), image(2, "Back", 2)]);
    let live_all = cat.pull(p, "all", default.clone()).await;
    let mut french = fields(&[("name", "T-shirt rouge")]);
    french["media"] = json!([image(1, "Devant", 1)]);
    let live_fr = cat.pull(p, "fr", french.clone()).await;
    let old = cat
        .version(
            p,
            "fr",
            fields(&[("name", "Old")]),
            "ai",
            "proposed",
            Some(live_fr),
        )
        .await;
    let open = cat
        .version(
            p,
            "fr",
            fields(&[("description", "Coton doux")]),
            "ai",
            "proposed",
            Some(live_fr),
        )
        .await;
    cat.version(
        p,
        "all",
        fields(&[("name", "Nope")]),
        "human",
        "rejected",
        Some(live_all),
    )
    .await;

    let (status, body) = app
        .get(&format!("/products/{p}"), &owner.access_token)
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["id"], p.to_string());
    assert_eq!(body["store_id"], cat.store_id.to_string());
    assert_eq!(body["sku"], "TEE-RED");
    assert_eq!(body["attributes"]["price"], 19.9);
    let scopes: Vec<&str> = body["scopes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["store_view"].as_str().unwrap())
        .collect();
    assert_eq!(scopes, ["all", "fr", "de"]);

    let all = &body["scopes"][0];
    assert_eq!(all["live"]["id"], live_all.to_string());
    assert_eq!(all["live"]["origin"], "pull");
    assert_eq!(all["live"]["state"], "live");
    assert_eq!(all["live"]["content"], default);
    assert_eq!(all["live"]["effective"], default);
    // A rejected version is no open proposal.
    assert!(all["open_proposal"].is_null());

    let fr = &body["scopes"][1];
    assert_eq!(fr["live"]["id"], live_fr.to_string());
    // As stored: only the overrides.
    assert_eq!(fr["live"]["content"], french);
    let effective = &fr["live"]["effective"];
    assert_eq!(effective["fields"]["name"], "T-shirt rouge");
    assert_eq!(effective["fields"]["description"], "Soft cotton");
    let labels: Vec<(i64, &str)> = effective["media"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["entry_id"].as_i64().unwrap(),
                m["label"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(labels, [(1, "Devant"), (2, "Back")]);
    // The newest open proposal, with what the view would show.
    assert_eq!(fr["open_proposal"]["id"], open.to_string());
    assert_ne!(fr["open_proposal"]["id"], old.to_string());
    assert_eq!(
        fr["open_proposal"]["content"],
        fields(&[("description", "Coton doux")])
    );
    assert_eq!(
        fr["open_proposal"]["effective"]["fields"],
        json!({"name": "Red tee", "description": "Coton doux"})
    );

    let de = &body["scopes"][2];
    assert!(de["live"].is_null());
    assert!(de["open_proposal"].is_null());

    let (status, body) = app
        .get(
            &format!("/products/{}", Uuid::now_v7()),
            &owner.access_token,
        )
        .await;
    assert_eq!(status, 404);
    assert_eq!(error_code(&body), "not_found");
}

#[tokio::test]
async fn history_is_newest_first_paged_and_filtered_by_scope() {
    let app = TestApp::spawn().await;
    let owner = app.register("owner@example.com").await;
    let token = &owner.access_token;
    let cat = Catalog::store(&app.db, owner.workspace_id, &["fr"], &[]).await;
    let p = cat.product("TEE", "Tee").await;
    let v1 = cat.pull(p, "all", fields(&[("name", "Tee")])).await;
    let v2 = cat.pull(p, "all", fields(&[("name", "Tee 2")])).await;
    let v3 = cat.pull(p, "fr", fields(&[("name", "Tee FR")])).await;
    let v4 = cat
        .version(
            p,
            "all",
            fields(&[("name", "Tee 3")]),
            "human",
            "proposed",
            Some(v2),
        )
        .await;
    let other = cat.product("MUG", "Mug").await;
    cat.pull(other, "all", fields(&[("name", "Mug")])).await;

    let ids = |body: &Value| -> Vec<Uuid> {
        body["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| id(&v["id"]))
            .collect()
    };
    let (status, body) = app.get(&format!("/products/{p}/versions"), token).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(ids(&body), [v4, v3, v2, v1]);
    let newest = &body["items"][0];
    assert_eq!(newest["origin"], "human");
    assert_eq!(newest["state"], "proposed");
    assert_eq!(newest["parent_id"], v2.to_string());
    assert_eq!(newest["store_view"], "all");
    assert_eq!(newest["content"], fields(&[("name", "Tee 3")]));
    assert_eq!(body["items"][2]["state"], "live");
    assert_eq!(body["items"][3]["state"], "superseded");

    let (_, first) = app
        .get(&format!("/products/{p}/versions?limit=3"), token)
        .await;
    assert_eq!(ids(&first), [v4, v3, v2]);
    let cursor = first["next_cursor"].as_str().unwrap();
    let (_, second) = app
        .get(
            &format!("/products/{p}/versions?limit=3&cursor={cursor}"),
            token,
        )
        .await;
    assert_eq!(ids(&second), [v1]);
    assert!(second["next_cursor"].is_null());

    let (_, fr) = app
        .get(&format!("/products/{p}/versions?store_view=fr"), token)
        .await;
    assert_eq!(ids(&fr), [v3]);
}

fn segment_texts<'a>(words: &'a Value, op: &str) -> Vec<&'a str> {
    words
        .as_array()
        .unwrap_or_else(|| panic!("no words: {words}"))
        .iter()
        .filter(|s| s["op"] == op)
        .map(|s| s["text"].as_str().unwrap())
        .collect()
}

/// Joining equal runs with one side's runs gives that side's text back.
fn rebuild(words: &Value, side: &str) -> String {
    words
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["op"] == "equal" || s["op"] == side)
        .map(|s| s["text"].as_str().unwrap())
        .collect()
}

#[tokio::test]
async fn diff_reports_fields_words_html_unicode_and_media() {
    let app = TestApp::spawn().await;
    let owner = app.register("owner@example.com").await;
    let token = &owner.access_token;
    let cat = Catalog::store(&app.db, owner.workspace_id, &["fr"], &[]).await;
    let p = cat.product("TEE", "Tee").await;

    let mut first = fields(&[
        ("name", "Tee"),
        ("description", "<p>Soft cotton tee for everyday wear.</p>"),
        ("meta_title", "Tee"),
        ("url_key", "tee"),
        (
            "short_description",
            "Ein weiches T-Shirt aus Baumwolle – schön für den Sommer, gefertigt in Japan: 日本製の綿です。",
        ),
    ]);
    first["media"] = json!([image(1, "front", 1), image(2, "back", 2)]);
    let mut second = fields(&[
        ("name", "Tee ☕ édition"),
        ("description", "<p>Warm wool tee for everyday wear.</p>"),
        ("meta_keyword", "tee"),
        ("url_key", "tee"),
        (
            "short_description",
            "Ein weiches T-Shirt aus Baumwolle – ideal für den Sommer, gefertigt in Japan: 日本製の麻です。",
        ),
    ]);
    second["media"] = json!([image(1, "Front view", 1), image(2, "back", 3)]);
    let v1 = cat.pull(p, "all", first.clone()).await;
    let v2 = cat.pull(p, "all", second.clone()).await;

    // Without `from`: against the parent.
    let (status, body) = app.get(&format!("/products/{p}/diff?to={v2}"), token).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["from"]["id"], v1.to_string());
    assert_eq!(body["to"]["id"], v2.to_string());
    assert_eq!(body["to"]["store_view"], "all");
    assert_eq!(body["identical"], false);
    let changes: Vec<(&str, &str)> = body["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| (f["field"].as_str().unwrap(), f["change"].as_str().unwrap()))
        .collect();
    assert_eq!(
        changes,
        [
            ("description", "changed"),
            ("meta_keyword", "added"),
            ("meta_title", "removed"),
            ("name", "changed"),
            ("short_description", "changed"),
        ]
    );
    let field = |name: &str| {
        body["fields"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["field"] == name)
            .unwrap()
            .clone()
    };

    // HTML: a word diff with tags as words.
    let description = field("description");
    assert_eq!(
        description["from"],
        "<p>Soft cotton tee for everyday wear.</p>"
    );
    assert_eq!(description["to"], "<p>Warm wool tee for everyday wear.</p>");
    assert_eq!(
        description["words"],
        json!([
            {"op": "equal", "text": "<p>"},
            {"op": "delete", "text": "Soft cotton"},
            {"op": "insert", "text": "Warm wool"},
            {"op": "equal", "text": " tee for everyday wear.</p>"},
        ])
    );

    // Long text with accents, dashes and ideographs.
    let short = field("short_description");
    assert_eq!(segment_texts(&short["words"], "delete"), ["schön", "綿"]);
    assert_eq!(segment_texts(&short["words"], "insert"), ["ideal", "麻"]);
    assert_eq!(
        rebuild(&short["words"], "delete"),
        short["from"].as_str().unwrap()
    );
    assert_eq!(
        rebuild(&short["words"], "insert"),
        short["to"].as_str().unwrap()
    );

    // Short plain text: values only, unicode intact.
    let name = field("name");
    assert_eq!(name["from"], "Tee");
    assert_eq!(name["to"], "Tee ☕ édition");
    assert!(name.get("words").is_none(), "{name}");
    assert_eq!(field("meta_keyword")["from"], Value::Null);
    assert_eq!(field("meta_title")["to"], Value::Null);

    // Media by entry id: a label on one, a position on the other.
    assert_eq!(
        body["media"],
        json!([
            {"entry_id": 1, "change": "changed", "file": "/i/1.jpg",
             "label": {"from": "front", "to": "Front view"}},
            {"entry_id": 2, "change": "changed", "file": "/i/2.jpg",
             "position": {"from": 2, "to": 3}},
        ])
    );

    // Explicit and reversed.
    let (status, body) = app
        .get(&format!("/products/{p}/diff?from={v2}&to={v1}"), token)
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["fields"][2]["field"], "meta_title");
    assert_eq!(body["fields"][2]["change"], "added");

    // No parent: everything is added.
    let (_, body) = app.get(&format!("/products/{p}/diff?to={v1}"), token).await;
    assert!(body["from"].is_null());
    assert_eq!(body["fields"].as_array().unwrap().len(), 5);
    assert!(
        body["fields"]
            .as_array()
            .unwrap()
            .iter()
            .all(|f| f["change"] == "added")
    );
    assert_eq!(body["media"][0]["change"], "added");

    // The same version: identical.
    let (_, body) = app
        .get(&format!("/products/{p}/diff?from={v2}&to={v2}"), token)
        .await;
    assert_eq!(body["identical"], true);
    assert_eq!(body["fields"], json!([]));

    // Versions of another product are not this product's.
    let other = cat.product("MUG", "Mug").await;
    let foreign = cat.pull(other, "all", fields(&[("name", "Mug")])).await;
    for query in [
        format!("to={foreign}"),
        format!("from={foreign}&to={v2}"),
        format!("to={}", Uuid::now_v7()),
    ] {
        let (status, body) = app.get(&format!("/products/{p}/diff?{query}"), token).await;
        assert_eq!(status, 404, "{query}: {body}");
        assert_eq!(error_code(&body), "not_found");
    }
    let (status, _) = app.get(&format!("/products/{p}/diff"), token).await;
    assert_eq!(status, 400);
}

#[tokio::test]
async fn human_edits_propose_live_content_with_changes() {
    let app = TestApp::spawn().await;
    let owner = app.register("owner@example.com").await;
    let token = owner.access_token.as_str();
    let cat = Catalog::store(&app.db, owner.workspace_id, &["fr"], &["material"]).await;
    let p = cat.product("TEE", "Red tee").await;
    let mut default = fields(&[
        ("name", "Red tee"),
        ("description", "Soft cotton"),
        ("meta_title", "Red tee"),
    ]);
    default["media"] = json!([image(7, "old", 1)]);
    let live_all = cat.pull(p, "all", default).await;
    let live_fr = cat
        .pull(p, "fr", fields(&[("name", "T-shirt rouge")]))
        .await;
    let ai = cat
        .version(
            p,
            "all",
            fields(&[("name", "AI tee")]),
            "ai",
            "proposed",
            Some(live_all),
        )
        .await;
    let url = format!("/products/{p}/versions");

    let (status, first) = app
        .post(
            &url,
            Some(token),
            json!({"store_view": "all", "fields": {"meta_title": "Red tee | Shop", "description": null},
                   "media": [{"entry_id": 7, "label": "Red tee, front"}], "note": "SEO pass"}),
        )
        .await;
    assert_eq!(status, 201, "{first}");
    assert_eq!(first["origin"], "human");
    assert_eq!(first["state"], "proposed");
    assert_eq!(first["store_view"], "all");
    assert_eq!(first["parent_id"], live_all.to_string());
    assert_eq!(first["author_user_id"], owner.user_id.to_string());
    assert_eq!(first["note"], "SEO pass");
    assert_eq!(
        first["content"]["fields"],
        json!({"name": "Red tee", "meta_title": "Red tee | Shop"})
    );
    assert_eq!(first["content"]["media"][0]["label"], "Red tee, front");
    assert_eq!(first["content"]["media"][0]["roles"], json!(["image"]));
    // A proposal changes nothing live.
    assert_eq!(cat.live_version(p, "all").await, Some(live_all));

    // A newer edit by a person supersedes the older one; the AI's proposal stays open.
    let (status, second) = app
        .post(
            &url,
            Some(token),
            json!({"fields": {"meta_title": "Newer"}}),
        )
        .await;
    assert_eq!(status, 201, "{second}");
    assert_eq!(second["store_view"], "all");
    assert_eq!(second["content"]["fields"]["description"], "Soft cotton");
    let first_id = id(&first["id"]);
    assert_eq!(cat.state_of(first_id).await, "superseded");
    assert_eq!(cat.state_of(id(&second["id"])).await, "proposed");
    assert_eq!(cat.state_of(ai).await, "proposed");
    let (_, history) = app.get(&format!("{url}?limit=10"), token).await;
    let superseded = history["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["id"] == first["id"])
        .unwrap();
    assert_eq!(superseded["meta"]["superseded_by"], second["id"]);

    // In a store view the edit applies to what the view shows and is kept as overrides.
    let (status, fr) = app
        .post(
            &url,
            Some(token),
            json!({"store_view": "fr", "fields": {"description": "Coton doux", "material": "coton"}}),
        )
        .await;
    assert_eq!(status, 201, "{fr}");
    assert_eq!(fr["parent_id"], live_fr.to_string());
    assert_eq!(
        fr["content"],
        json!({"fields": {"name": "T-shirt rouge", "description": "Coton doux", "material": "coton"}})
    );
    assert_eq!(fr["effective"]["fields"]["meta_title"], "Red tee");
    assert_eq!(fr["effective"]["media"][0]["label"], "old");
    // The human proposal in the default scope is another scope: still open.
    assert_eq!(cat.state_of(id(&second["id"])).await, "proposed");

    // null in a view: back to the default value.
    let (status, inherit) = app
        .post(
            &url,
            Some(token),
            json!({"store_view": "fr", "fields": {"name": null}}),
        )
        .await;
    assert_eq!(status, 201, "{inherit}");
    assert_eq!(inherit["content"], json!({"fields": {}}));
    assert_eq!(inherit["effective"]["fields"]["name"], "Red tee");
    assert_eq!(cat.state_of(id(&fr["id"])).await, "superseded");

    // Nothing would change: 422 no_change.
    for body in [
        json!({"fields": {"name": "Red tee"}}),
        json!({"media": [{"entry_id": 7, "label": "old"}]}),
        json!({"store_view": "fr", "fields": {"name": "T-shirt rouge"}}),
        json!({"store_view": "fr", "fields": {"description": "Soft cotton"}}),
        json!({"store_view": "fr", "fields": {"meta_title": null}}),
    ] {
        let (status, res) = app.post(&url, Some(token), body.clone()).await;
        assert_eq!(status, 422, "{body}: {res}");
        assert_eq!(error_code(&res), "no_change", "{body}");
    }

    // Invalid edits name what is wrong and write nothing.
    let long = "x".repeat(256);
    for (body, field) in [
        (json!({"fields": {"price": "10"}}), Some("fields.price")),
        (
            json!({"store_view": "xx", "fields": {"name": "X"}}),
            Some("store_view"),
        ),
        (
            json!({"fields": {"meta_title": long}}),
            Some("fields.meta_title"),
        ),
        (json!({"fields": {"name": null}}), Some("fields.name")),
        (json!({"fields": {"name": "  "}}), Some("fields.name")),
        (
            json!({"fields": {"url_key": "Red Tee"}}),
            Some("fields.url_key"),
        ),
        (
            json!({"fields": {"description": "a\u{0}b"}}),
            Some("fields.description"),
        ),
        (
            json!({"media": [{"entry_id": 8, "label": "x"}]}),
            Some("media[0].entry_id"),
        ),
        (json!({"media": [{"entry_id": 7}]}), Some("media[0].label")),
        (json!({"fields": {}}), Some("fields")),
        (json!({"fields": {"name": 5}}), None),
        (json!({"fields": {"name": "X"}, "colour": "red"}), None),
        (
            json!({"media": [{"entry_id": 7, "label": "x", "file": "/evil.jpg"}]}),
            None,
        ),
    ] {
        let (status, res) = app.post(&url, Some(token), body.clone()).await;
        assert_eq!(status, 422, "{body}: {res}");
        assert_eq!(error_code(&res), "invalid_request", "{body}");
        if let Some(field) = field {
            assert_eq!(res["error"]["field"], field, "{body}");
        }
    }
    let open: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM product_versions WHERE product_id = $1 AND state = 'proposed'",
    )
    .bind(p)
    .fetch_one(&app.db)
    .await
    .unwrap();
    assert_eq!(
        open, 3,
        "the AI's, the default-scope edit and the view edit"
    );
}

#[tokio::test]
async fn rollback_proposes_an_earlier_version_again() {
    let app = TestApp::spawn().await;
    let owner = app.register("owner@example.com").await;
    let token = owner.access_token.as_str();
    let cat = Catalog::store(&app.db, owner.workspace_id, &["fr"], &[]).await;
    let p = cat.product("TEE", "Tee").await;
    let mut old = fields(&[("name", "Tee"), ("description", "<p>Soft cotton</p>")]);
    old["media"] = json!([image(1, "front", 1)]);
    let mut new = fields(&[("name", "Tee"), ("description", "<p>Scratchy wool</p>")]);
    new["media"] = json!([image(1, "Front", 2)]);
    let v1 = cat.pull(p, "all", old.clone()).await;
    let v2 = cat.pull(p, "all", new).await;
    let fr1 = cat.pull(p, "fr", fields(&[("name", "T-shirt")])).await;
    let fr2 = cat.pull(p, "fr", fields(&[("name", "Tee-shirt")])).await;

    let (status, rollback) = app
        .post(
            &format!("/products/{p}/rollback"),
            Some(token),
            json!({"version_id": v1, "note": "the wool text was a mistake"}),
        )
        .await;
    assert_eq!(status, 201, "{rollback}");
    assert_eq!(rollback["origin"], "rollback");
    assert_eq!(rollback["state"], "proposed");
    assert_eq!(rollback["store_view"], "all");
    assert_eq!(rollback["parent_id"], v2.to_string());
    assert_eq!(rollback["content"], old);
    assert_eq!(rollback["meta"]["rollback_of"], v1.to_string());
    assert_eq!(rollback["note"], "the wool text was a mistake");
    assert_eq!(cat.live_version(p, "all").await, Some(v2));
    let new_id = id(&rollback["id"]);

    // The round trip: the proposal equals the target, and undoes what its parent changed.
    let (status, diff) = app
        .get(&format!("/products/{p}/diff?from={v1}&to={new_id}"), token)
        .await;
    assert_eq!(status, 200, "{diff}");
    assert_eq!(diff["identical"], true);
    assert_eq!(diff["fields"], json!([]));
    assert_eq!(diff["media"], json!([]));
    let (_, diff) = app
        .get(&format!("/products/{p}/diff?to={new_id}"), token)
        .await;
    assert_eq!(diff["from"]["id"], v2.to_string());
    assert_eq!(diff["fields"][0]["field"], "description");
    assert_eq!(diff["fields"][0]["from"], "<p>Scratchy wool</p>");
    assert_eq!(diff["fields"][0]["to"], "<p>Soft cotton</p>");
    assert_eq!(
        diff["media"][0]["label"],
        json!({"from": "Front", "to": "front"})
    );

    // A rollback in a store view stays in that view.
    let (status, fr) = app
        .post(
            &format!("/products/{p}/rollback"),
            Some(token),
            json!({"version_id": fr1}),
        )
        .await;
    assert_eq!(status, 201, "{fr}");
    assert_eq!(fr["store_view"], "fr");
    assert_eq!(fr["parent_id"], fr2.to_string());
    assert_eq!(fr["content"], fields(&[("name", "T-shirt")]));
    assert_eq!(
        fr["effective"]["fields"]["description"],
        "<p>Scratchy wool</p>"
    );

    // A second rollback in the same scope supersedes the first.
    let (status, again) = app
        .post(
            &format!("/products/{p}/rollback"),
            Some(token),
            json!({"version_id": fr1}),
        )
        .await;
    assert_eq!(status, 201, "{again}");
    assert_eq!(cat.state_of(id(&fr["id"])).await, "superseded");
    assert_eq!(cat.state_of(new_id).await, "proposed");

    // What is live already cannot be proposed again.
    let (status, body) = app
        .post(
            &format!("/products/{p}/rollback"),
            Some(token),
            json!({"version_id": v2}),
        )
        .await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(error_code(&body), "no_change");

    let other = cat.product("MUG", "Mug").await;
    let foreign = cat.pull(other, "all", fields(&[("name", "Mug")])).await;
    for version in [foreign, Uuid::now_v7()] {
        let (status, body) = app
            .post(
                &format!("/products/{p}/rollback"),
                Some(token),
                json!({"version_id": version}),
            )
            .await;
        assert_eq!(status, 404, "{body}");
    }
    let (status, _) = app
        .post(
            &format!("/products/{p}/rollback"),
            Some(token),
            json!({"version_id": v1, "force": true}),
        )
        .await;
    assert_eq!(status, 422);
}

#[tokio::test]
async fn viewers_read_editors_edit_and_other_workspaces_see_nothing() {
    let app = TestApp::spawn().await;
    let owner = app.register("owner@example.com").await;
    let viewer = app.member(&owner, "viewer@example.com", "viewer").await;
    let reviewer = app.member(&owner, "reviewer@example.com", "reviewer").await;
    let editor = app.member(&owner, "editor@example.com", "editor").await;
    let viewer_key = app.api_key(&owner, "viewer").await;
    let editor_key = app.api_key(&owner, "editor").await;
    let stranger = app.register("stranger@example.com").await;

    let cat = Catalog::store(&app.db, owner.workspace_id, &[], &[]).await;
    let p = cat.product("TEE", "Tee").await;
    let v1 = cat.pull(p, "all", fields(&[("name", "Tee")])).await;
    let v2 = cat.pull(p, "all", fields(&[("name", "Tee 2")])).await;
    let store = cat.store_id;
    let reads = [
        format!("/stores/{store}/products"),
        format!("/products/{p}"),
        format!("/products/{p}/versions"),
        format!("/products/{p}/diff?from={v1}&to={v2}"),
    ];
    let edit = json!({"fields": {"meta_title": "Tee"}});
    let rollback = json!({"version_id": v1});

    for token in [viewer.access_token.as_str(), viewer_key.as_str()] {
        for path in &reads {
            let (status, body) = app.get(path, token).await;
            assert_eq!(status, 200, "{path}: {body}");
        }
        let (status, body) = app
            .post(
                &format!("/products/{p}/versions"),
                Some(token),
                edit.clone(),
            )
            .await;
        assert_eq!(status, 403, "{body}");
        assert_eq!(error_code(&body), "forbidden");
        let (status, _) = app
            .post(
                &format!("/products/{p}/rollback"),
                Some(token),
                rollback.clone(),
            )
            .await;
        assert_eq!(status, 403);
    }
    let (status, _) = app
        .post(
            &format!("/products/{p}/versions"),
            Some(&reviewer.access_token),
            edit.clone(),
        )
        .await;
    assert_eq!(status, 403);

    let (status, body) = app
        .post(
            &format!("/products/{p}/versions"),
            Some(&editor.access_token),
            edit.clone(),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["author_user_id"], editor.user_id.to_string());
    let (status, body) = app
        .post(
            &format!("/products/{p}/versions"),
            Some(&editor_key),
            json!({"fields": {"meta_title": "Tee by key"}}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    assert!(body["author_user_id"].is_null());
    assert!(body["meta"]["api_key_id"].is_string());
    let (status, _) = app
        .post(
            &format!("/products/{p}/rollback"),
            Some(&editor.access_token),
            rollback.clone(),
        )
        .await;
    assert_eq!(status, 201);

    // Another workspace: every product URL answers 404, as for a product that does not exist.
    for path in &reads {
        let (status, body) = app.get(path, &stranger.access_token).await;
        assert_eq!(status, 404, "{path}: {body}");
        assert_eq!(error_code(&body), "not_found");
    }
    for (path, body) in [
        (format!("/products/{p}/versions"), edit.clone()),
        (format!("/products/{p}/rollback"), rollback.clone()),
    ] {
        let (status, _) = app.post(&path, Some(&stranger.access_token), body).await;
        assert_eq!(status, 404, "{path}");
    }
    // And the stranger's own product cannot reach into ours through a version id.
    let theirs = Catalog::store(&app.db, stranger.workspace_id, &[], &[]).await;
    let q = theirs.product("TEE", "Their tee").await;
    theirs
        .pull(q, "all", fields(&[("name", "Their tee")]))
        .await;
    let (status, _) = app
        .get(
            &format!("/products/{q}/diff?to={v2}"),
            &stranger.access_token,
        )
        .await;
    assert_eq!(status, 404);
    let (status, _) = app
        .post(
            &format!("/products/{q}/rollback"),
            Some(&stranger.access_token),
            json!({"version_id": v1}),
        )
        .await;
    assert_eq!(status, 404);
    let (status, _) = app.get("/products/not-a-uuid", &owner.access_token).await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn the_gaps_index_knows_the_standard_fields() {
    let app = TestApp::spawn().await;
    // The migration lists the standard fields in SQL; it must agree with the code.
    let gaps: Vec<String> = sqlx::query_scalar("SELECT catalog_content_gaps('all', '{}'::jsonb)")
        .fetch_one(&app.db)
        .await
        .unwrap();
    let mut standard: Vec<String> = catalogd::catalog::content::STANDARD_FIELDS
        .iter()
        .map(|f| f.to_string())
        .collect();
    standard.sort();
    assert_eq!(gaps, standard);
    let view: Vec<String> = sqlx::query_scalar(
        r#"SELECT catalog_content_gaps('fr', '{"fields": {"name": "", "material": "", "meta_title": "x"}}')"#,
    )
    .fetch_one(&app.db)
    .await
    .unwrap();
    assert_eq!(view, ["name"]);
}

/// Every SKU a listing yields, following its cursor to the end.
async fn all_skus(app: &TestApp, token: &str, store: Uuid, query: &str) -> Vec<String> {
    app.get_all(&format!("/stores/{store}/products?{query}"), token)
        .await
        .iter()
        .map(|p| p["sku"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn searches_with_few_or_many_matches_list_the_same_products_in_order() {
    let app = TestApp::spawn().await;
    let owner = app.register("owner@example.com").await;
    let token = &owner.access_token;
    let cat = Catalog::store(&app.db, owner.workspace_id, &[], &[]).await;
    // More products than a search reads from the trigram index before it walks the SKU order
    // instead: every third is a scarf, the rest tees; the SKU order clusters `P-02…`.
    sqlx::query(
        "INSERT INTO products (id, workspace_id, store_id, sku, name)
         SELECT gen_random_uuid(), $1, $2, format('P-%s', lpad(n::text, 5, '0')),
                CASE WHEN n % 3 = 0 THEN format('Wool scarf %s', n) ELSE format('Cotton tee %s', n) END
         FROM generate_series(1, 2400) AS n",
    )
    .bind(cat.workspace_id)
    .bind(cat.store_id)
    .execute(&app.db)
    .await
    .unwrap();
    sqlx::query("ANALYZE products")
        .execute(&app.db)
        .await
        .unwrap();
    let expected = |keep: &dyn Fn(u32) -> bool| -> Vec<String> {
        (1..=2400)
            .filter(|n| keep(*n))
            .map(|n| format!("P-{n:05}"))
            .collect()
    };
    let store = cat.store_id;
    // 800 matches: from the index.
    assert_eq!(
        all_skus(&app, token, store, "q=scarf&limit=150").await,
        expected(&|n| n % 3 == 0)
    );
    // 1,600 matches spread over the SKU order, and 400 clustered at its end: from the index.
    assert_eq!(
        all_skus(&app, token, store, "q=COTTON&limit=200").await,
        expected(&|n| n % 3 != 0)
    );
    assert_eq!(
        all_skus(&app, token, store, "q=p-02&limit=100").await,
        expected(&|n| n >= 2000)
    );
    // 2,400 matches: more than the index is read for, so the SKU order is walked.
    assert_eq!(
        all_skus(&app, token, store, "q=p-0&limit=500").await,
        expected(&|_| true)
    );
    // Nothing matches.
    assert!(all_skus(&app, token, store, "q=linen").await.is_empty());
}
