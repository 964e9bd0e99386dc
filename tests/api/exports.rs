//! Magento import CSV exports: the file reads back exactly, sources, validation, and signed
//! downloads.

use std::time::Duration;

use magento_sim::{MagentoSim, SimConfig};
use serde_json::{Value, json};

use crate::helpers::{Registered, TestApp};

async fn setup(products: usize) -> (TestApp, MagentoSim, Registered, String) {
    let app = TestApp::spawn().await;
    let sim = MagentoSim::start(SimConfig {
        products,
        ..SimConfig::default()
    })
    .await
    .expect("simulator starts");
    let owner = app.register("shop@example.com").await;
    let store_id = app.connect_store(&owner, &sim).await;
    app.sync(&owner, &store_id, "full").await;
    (app, sim, owner, store_id)
}

/// Runs an export and returns its final record.
async fn export(app: &TestApp, who: &Registered, store_id: &str, body: Value) -> Value {
    let (status, started) = app
        .post(
            &format!("/stores/{store_id}/exports"),
            Some(&who.access_token),
            body,
        )
        .await;
    assert_eq!(status, 202, "{started}");
    app.wait_for_job(
        &who.access_token,
        started["job_id"].as_str().unwrap(),
        Duration::from_secs(60),
    )
    .await;
    let (status, record) = app
        .get(
            &format!("/exports/{}", started["export_id"].as_str().unwrap()),
            &who.access_token,
        )
        .await;
    assert_eq!(status, 200, "{record}");
    record
}

/// The id and SKU of the store's first product.
async fn first_product(app: &TestApp, who: &Registered, store_id: &str) -> (String, String) {
    let (_, listed) = app
        .get(
            &format!("/stores/{store_id}/products?limit=1"),
            &who.access_token,
        )
        .await;
    let item = &listed["items"][0];
    (
        item["id"].as_str().unwrap().to_string(),
        item["sku"].as_str().unwrap().to_string(),
    )
}

/// The validation issues of an export record whose problem mentions `text`.
fn issues_naming<'a>(record: &'a Value, text: &str) -> Vec<&'a Value> {
    record["issues"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["problem"].as_str().unwrap().contains(text))
        .collect()
}

async fn download(url: &str) -> (u16, String) {
    let response = reqwest::get(url).await.unwrap();
    let status = response.status().as_u16();
    (status, response.text().await.unwrap())
}

fn records(text: &str) -> Vec<csv::StringRecord> {
    csv::ReaderBuilder::new()
        .has_headers(false)
        .from_reader(text.as_bytes())
        .records()
        .map(|r| r.unwrap())
        .collect()
}

#[tokio::test]
async fn a_magento_csv_reads_back_exactly_and_downloads_through_a_signed_url() {
    let (app, _sim, owner, store_id) = setup(30).await;
    let (product_id, sku) = first_product(&app, &owner, &store_id).await;
    let nasty = "<p class=\"x\">Quotes \" commas, new\nlines, emoji 🧣, עברית, &amp; __EMPTY__</p>";
    app.approved_edit(
        &owner.access_token,
        &product_id,
        json!({"store_view": "all", "fields": {"description": nasty}}),
    )
    .await;

    let live = export(&app, &owner, &store_id, json!({"format": "magento_csv"})).await;
    assert_eq!(live["status"], "succeeded", "{live}");
    let with_approved = export(
        &app,
        &owner,
        &store_id,
        json!({"format": "magento_csv", "source": "live_with_approved", "store_views": ["fr"]}),
    )
    .await;
    let url = with_approved["download_url"].as_str().unwrap();
    assert!(with_approved["expires_at"].is_string());
    let (status, text) = download(url).await;
    assert_eq!(status, 200);
    let rows = records(&text);
    let header: Vec<&str> = rows[0].iter().collect();
    assert_eq!(
        header,
        [
            "sku",
            "store_view_code",
            "name",
            "description",
            "short_description",
            "meta_title",
            "meta_keywords",
            "meta_description",
            "base_image",
            "base_image_label",
            "small_image",
            "small_image_label",
            "thumbnail_image",
            "thumbnail_image_label",
            "additional_images",
            "additional_image_labels"
        ],
        "Magento's column names in its export order; no url_key column, as no url key changes"
    );
    assert_eq!(
        with_approved["rows"].as_i64().unwrap() + 1,
        rows.len() as i64
    );
    let default_rows: Vec<_> = rows.iter().skip(1).filter(|r| r[1].is_empty()).collect();
    assert_eq!(default_rows.len(), 30, "one default row per product");
    assert!(
        rows.iter()
            .skip(1)
            .all(|r| r[1].is_empty() || &r[1] == "fr")
    );
    let edited = default_rows.iter().find(|r| r[0] == sku).unwrap();
    assert_eq!(&edited[3], nasty, "the value reads back exactly");
    // The live export still has the store's value.
    let (_, live_text) = download(live["download_url"].as_str().unwrap()).await;
    let live_row = records(&live_text)
        .into_iter()
        .find(|r| r[0] == sku && r[1].is_empty())
        .unwrap();
    assert_ne!(&live_row[3], nasty);
    assert!(live["rows"].as_i64().unwrap() > 30, "store view rows too");

    // A changed signature, expiry or key is refused.
    let tampered = url.replace("signature=", "signature=00");
    assert_eq!(download(&tampered).await.0, 403);
    let later = url.replace("expires=", "expires=9");
    assert_eq!(download(&later).await.0, 403);
    let other_key = url.replace(
        &owner.workspace_id.to_string(),
        &uuid::Uuid::new_v4().to_string(),
    );
    assert_eq!(download(&other_key).await.0, 403);
    // Downloads are in the audit log; another workspace cannot see the export.
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
            .any(|e| e["action"] == "file.downloaded"),
        "{log}"
    );
    let stranger = app.register("other@example.com").await;
    let (status, _) = app
        .get(
            &format!("/exports/{}", live["id"].as_str().unwrap()),
            &stranger.access_token,
        )
        .await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn validation_reports_duplicate_url_keys_and_strict_exports_fail() {
    let (app, sim, owner, store_id) = setup(10).await;
    let (_, listed) = app
        .get(
            &format!("/stores/{store_id}/products?limit=2"),
            &owner.access_token,
        )
        .await;
    let first = &listed["items"][0];
    let second = &listed["items"][1];
    let taken: String = sqlx::query_scalar(
        "SELECT v.content->'fields'->>'url_key' FROM product_live l
         JOIN product_versions v ON v.id = l.version_id
         WHERE l.product_id = $1::uuid AND l.store_view = 'all'",
    )
    .bind(second["id"].as_str().unwrap())
    .fetch_one(&app.db)
    .await
    .unwrap();
    // The store itself holds the duplicate (an import or a careless extension put it there)
    // and the next sync brings it in.
    assert!(sim.update_product(
        first["sku"].as_str().unwrap(),
        None,
        json!({ "url_key": taken })
    ));
    app.sync(&owner, &store_id, "incremental").await;
    let lenient = export(
        &app,
        &owner,
        &store_id,
        json!({"format": "magento_csv", "store_views": []}),
    )
    .await;
    assert_eq!(lenient["status"], "succeeded");
    assert!(!issues_naming(&lenient, &taken).is_empty(), "{lenient}");
    // A store view's own url keys count in that view only.
    for item in [first, second] {
        assert!(sim.update_product(
            item["sku"].as_str().unwrap(),
            Some("fr"),
            json!({ "url_key": "partage-en-fr" })
        ));
    }
    app.sync(&owner, &store_id, "incremental").await;
    let in_fr = export(
        &app,
        &owner,
        &store_id,
        json!({"format": "magento_csv", "store_views": ["fr"]}),
    )
    .await;
    let fr_issues = issues_naming(&in_fr, "partage-en-fr");
    assert_eq!(fr_issues.len(), 2, "{in_fr}");
    assert!(fr_issues.iter().all(|i| i["store_view"] == "fr"));
    let strict = export(
        &app,
        &owner,
        &store_id,
        json!({"format": "magento_csv", "store_views": [], "strict": true}),
    )
    .await;
    assert_eq!(strict["status"], "failed", "{strict}");
    assert!(strict["download_url"].is_null());
    let (status, _) = app
        .post(
            &format!("/stores/{store_id}/exports"),
            Some(&owner.access_token),
            json!({"format": "xlsx"}),
        )
        .await;
    assert_eq!(status, 422);
}

#[tokio::test]
async fn a_google_feed_lists_each_shown_product_of_a_store_view_once() {
    let (app, sim, owner, store_id) = setup(40).await;
    let record = export(
        &app,
        &owner,
        &store_id,
        json!({"format": "google_feed", "store_views": ["fr"]}),
    )
    .await;
    assert_eq!(record["status"], "succeeded", "{record}");
    let (status, text) = download(record["download_url"].as_str().unwrap()).await;
    assert_eq!(status, 200);
    // Parse it back: rss/channel/item with the required g: fields.
    let items = catalogd::exports::google_feed::parse_items(&text).expect("a well-formed feed");
    // Shown products: enabled, with an image and a price.
    let expected: Vec<String> = sim
        .skus()
        .into_iter()
        .filter(|sku| {
            let p = sim.product(sku, Some("fr")).unwrap();
            p["status"] == 1
                && p["price"].as_f64().unwrap_or(0.0) > 0.0
                && p["media_gallery_entries"]
                    .as_array()
                    .is_some_and(|m| !m.is_empty())
        })
        .collect();
    assert_eq!(items.len(), expected.len(), "{}", record["issues"]);
    assert_eq!(record["rows"].as_i64().unwrap(), expected.len() as i64);
    for item in &items {
        let get = |name: &str| {
            item.iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.as_str())
                .unwrap_or_else(|| panic!("{name} in {item:?}"))
        };
        assert!(expected.contains(&get("g:id").to_string()));
        assert!(get("g:price").ends_with(" EUR"), "{item:?}");
        assert!(get("g:link").starts_with(&sim.base_url()), "{item:?}");
        assert!(get("g:link").ends_with(".html"));
        assert!(get("g:image_link").contains("/media/catalog/product/"));
        let product = sim.product(get("g:id"), Some("fr")).unwrap();
        assert_eq!(
            get("g:title"),
            product["name"].as_str().unwrap(),
            "the store view's name"
        );
        for required in ["g:description", "g:availability", "g:condition"] {
            get(required);
        }
    }
    let (status, refused) = app
        .post(
            &format!("/stores/{store_id}/exports"),
            Some(&owner.access_token),
            json!({"format": "google_feed", "store_views": ["fr", "de"]}),
        )
        .await;
    assert_eq!(status, 422, "{refused}");
}

#[tokio::test]
async fn a_magento_zip_holds_the_csv_and_every_picture_it_names() {
    let (app, _sim, owner, store_id) = setup(15).await;
    // Before mirroring, the ZIP says which pictures it lacks.
    let early = export(&app, &owner, &store_id, json!({"format": "magento_zip"})).await;
    assert!(
        early["issues"]
            .as_array()
            .unwrap()
            .iter()
            .any(|i| i["problem"].as_str().unwrap().contains("not mirrored")),
        "{early}"
    );
    app.run_job(
        &format!("/stores/{store_id}/media"),
        &owner.access_token,
        json!({}),
    )
    .await;
    let record = export(&app, &owner, &store_id, json!({"format": "magento_zip"})).await;
    assert_eq!(record["status"], "succeeded", "{record}");
    assert!(record["issues"].as_array().unwrap().is_empty(), "{record}");
    let bytes = reqwest::get(record["download_url"].as_str().unwrap())
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(bytes.to_vec())).unwrap();
    let mut csv_text = String::new();
    std::io::Read::read_to_string(&mut archive.by_name("products.csv").unwrap(), &mut csv_text)
        .unwrap();
    let rows = records(&csv_text);
    let column = rows[0]
        .iter()
        .position(|c| c == "additional_images")
        .unwrap();
    let mut named = 0;
    for row in rows.iter().skip(1) {
        for path in row[column].split(',').filter(|p| !p.is_empty()) {
            named += 1;
            let mut picture = Vec::new();
            std::io::Read::read_to_end(
                &mut archive
                    .by_name(&format!("images/{path}"))
                    .unwrap_or_else(|_| panic!("images/{path} in the ZIP")),
                &mut picture,
            )
            .unwrap();
            assert!(picture.starts_with(b"\x89PNG"), "{path}");
        }
    }
    assert!(named > 0);
}

#[tokio::test]
async fn a_pushed_url_key_is_the_one_the_url_key_check_sees() {
    let (app, sim, owner, store_id) = setup(10).await;
    let token = &owner.access_token;
    let items = app
        .get_all(&format!("/stores/{store_id}/products?limit=2"), token)
        .await;
    let (first, second) = (&items[0], &items[1]);
    // The first product gets a new url key through review and push…
    let proposal_id = app
        .approved_edit(
            token,
            first["id"].as_str().unwrap(),
            json!({"store_view": "all", "fields": {"url_key": "pushed-new-key"}}),
        )
        .await;
    app.run_job(
        &format!("/stores/{store_id}/push"),
        token,
        json!({"proposals": [proposal_id]}),
    )
    .await;
    // …and then the store gives the second product the same one behind our back.
    assert!(sim.update_product(
        second["sku"].as_str().unwrap(),
        None,
        json!({ "url_key": "pushed-new-key" })
    ));
    app.sync(&owner, &store_id, "incremental").await;

    let record = export(
        &app,
        &owner,
        &store_id,
        json!({"format": "magento_csv", "store_views": []}),
    )
    .await;
    let clashing: Vec<&str> = issues_naming(&record, "pushed-new-key")
        .iter()
        .map(|i| i["sku"].as_str().unwrap())
        .collect();
    assert_eq!(clashing.len(), 2, "{record}");
    assert!(clashing.contains(&first["sku"].as_str().unwrap()));
}

/// The url key the simulated store shows for `sku` in `view` (`None`: default values).
fn store_url_key(sim: &MagentoSim, sku: &str, view: Option<&str>) -> Option<String> {
    let product = sim.product(sku, view)?;
    product["custom_attributes"]
        .as_array()?
        .iter()
        .find(|a| a["attribute_code"] == "url_key")
        .and_then(|a| a["value"].as_str())
        .map(str::to_string)
}

/// Each row of an import file with the url key Magento's importer would write for it
/// (`magento::import::reading`, a model of `CatalogImportExport/Model/Import/Product.php`):
/// (sku, store view, url key or `None` when the row leaves it alone).
fn url_keys_on_import(text: &str) -> Vec<(String, String, Option<String>)> {
    let rows = records(text);
    let header: Vec<&str> = rows[0].iter().collect();
    rows[1..]
        .iter()
        .map(|row| {
            let cells: Vec<&str> = row.iter().collect();
            let key = magento::import::reading::url_key_on_import(&header, &cells, true);
            (row[0].to_string(), row[1].to_string(), key)
        })
        .collect()
}

#[tokio::test]
async fn translated_names_reimport_without_changing_any_url_key() {
    let (app, sim, owner, store_id) = setup(20).await;
    let views = json!(["fr", "de"]);
    // The simulated views translate names and inherit url keys.
    let named_view_rows = |text: &str| {
        let rows = records(text);
        let name = rows[0].iter().position(|c| c == "name").unwrap();
        rows[1..]
            .iter()
            .filter(|r| !r[1].is_empty() && !r[name].is_empty())
            .count()
    };

    let live = export(
        &app,
        &owner,
        &store_id,
        json!({"format": "magento_csv", "store_views": views}),
    )
    .await;
    let (_, text) = download(live["download_url"].as_str().unwrap()).await;
    assert!(named_view_rows(&text) > 10, "{text}");
    assert!(!records(&text)[0].iter().any(|c| c == "url_key"));
    let applied = url_keys_on_import(&text);
    assert!(
        applied.iter().all(|(_, _, key)| key.is_none()),
        "the import changes no url key: {applied:?}"
    );

    // One approved url key change: the column is written, and every other row carries the
    // key the store already shows, so only the intended product's key changes.
    let (_, listed) = app
        .get(
            &format!("/stores/{store_id}/products?limit=1"),
            &owner.access_token,
        )
        .await;
    let product_id = listed["items"][0]["id"].as_str().unwrap();
    let changed_sku = listed["items"][0]["sku"].as_str().unwrap().to_string();
    app.approved_edit(
        &owner.access_token,
        product_id,
        json!({"store_view": "all", "fields": {"url_key": "a-brand-new-key"}}),
    )
    .await;
    let with_approved = export(
        &app,
        &owner,
        &store_id,
        json!({"format": "magento_csv", "store_views": views, "source": "live_with_approved"}),
    )
    .await;
    assert_eq!(with_approved["status"], "succeeded", "{with_approved}");
    assert!(
        issues_naming(&with_approved, "url key").is_empty(),
        "{with_approved}"
    );
    let (_, text) = download(with_approved["download_url"].as_str().unwrap()).await;
    assert!(records(&text)[0].iter().any(|c| c == "url_key"));
    assert!(named_view_rows(&text) > 10);
    for (sku, view, key) in url_keys_on_import(&text) {
        let scope = (!view.is_empty()).then_some(view.as_str());
        let expected = if sku == changed_sku {
            Some("a-brand-new-key".to_string())
        } else {
            store_url_key(&sim, &sku, scope)
        };
        assert_eq!(key, expected, "{sku} in {view:?}");
    }
}

#[tokio::test]
async fn a_magento_zip_never_names_an_entry_outside_images() {
    let (app, _sim, owner, store_id) = setup(6).await;
    app.run_job(
        &format!("/stores/{store_id}/media"),
        &owner.access_token,
        json!({}),
    )
    .await;
    // A picture recorded under a path no Magento uploader makes (the media job refuses such
    // paths today; a row from before, or restored from a backup, may still hold one).
    let hostile = [
        "/../../../etc/cron.d/evil.png",
        "/t/e/..\\..\\win.png",
        "//abs/../../x.png",
    ];
    for (n, path) in hostile.iter().enumerate() {
        sqlx::query(
            "UPDATE media SET file = $1 WHERE (product_id, entry_id) =
                (SELECT product_id, entry_id FROM media ORDER BY product_id, entry_id OFFSET $2 LIMIT 1)",
        )
        .bind(path)
        .bind(n as i64)
        .execute(&app.db)
        .await
        .unwrap();
    }
    let record = export(&app, &owner, &store_id, json!({"format": "magento_zip"})).await;
    assert_eq!(record["status"], "succeeded", "{record}");
    for path in hostile {
        let reported = issues_naming(&record, "not in the ZIP")
            .into_iter()
            .filter(|i| {
                i["problem"]
                    .as_str()
                    .unwrap()
                    .contains(&format!("{path:?}"))
            })
            .count();
        assert_eq!(reported, 1, "{path}: {record}");
    }
    let bytes = reqwest::get(record["download_url"].as_str().unwrap())
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(bytes.to_vec())).unwrap();
    assert!(archive.len() > 1, "the other pictures are there");
    for i in 0..archive.len() {
        let entry = archive.by_index(i).unwrap();
        let name = entry.name().unwrap().to_string();
        assert!(
            name == "products.csv" || name.starts_with("images/"),
            "{name}"
        );
        assert!(
            !name.contains("..") && !name.contains('\\') && !name.contains("//"),
            "{name}"
        );
        assert!(entry.enclosed_name().is_some(), "{name}");
    }
}

#[tokio::test]
async fn formula_like_cells_stay_exact_and_warn_whoever_opens_the_file_in_a_spreadsheet() {
    let (app, _sim, owner, store_id) = setup(3).await;
    let (product_id, sku) = first_product(&app, &owner, &store_id).await;
    let formula = "=HYPERLINK(\"http://evil.example\",\"Click\")";
    app.approved_edit(
        &owner.access_token,
        &product_id,
        json!({"store_view": "all", "fields": {"meta_title": formula}}),
    )
    .await;
    // A warning, not a problem for Magento: a strict export still succeeds.
    let record = export(
        &app,
        &owner,
        &store_id,
        json!({"format": "magento_csv", "source": "live_with_approved", "strict": true}),
    )
    .await;
    assert_eq!(record["status"], "succeeded", "{record}");
    let warned: Vec<&Value> = issues_naming(&record, "formula")
        .into_iter()
        .filter(|i| i["sku"] == sku.as_str())
        .collect();
    assert_eq!(warned.len(), 1, "{record}");
    assert!(
        warned[0]["problem"]
            .as_str()
            .unwrap()
            .starts_with("meta_title starts with '='"),
        "{record}"
    );
    let (_, text) = download(record["download_url"].as_str().unwrap()).await;
    let rows = records(&text);
    let column = rows[0].iter().position(|c| c == "meta_title").unwrap();
    let row = rows.iter().find(|r| &r[0] == sku.as_str()).unwrap();
    assert_eq!(&row[column], formula, "the cell is exact");
}
