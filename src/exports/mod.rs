//! Exports: files a store owner imports themselves. A job streams the store's products in
//! id order (500 at a time) straight into the writer and a scratch file under
//! `<data dir>/tmp`, then streams that file into object storage (in parts, for S3), so memory
//! does not grow with the catalog; `GET /exports/{id}` hands out a presigned download URL.

pub mod archive;
pub mod google_feed;
pub mod magento_csv;

use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use futures::TryStreamExt;
use serde::{Deserialize, Serialize};
use sqlx::PgPool;
use utoipa::ToSchema;
use uuid::Uuid;

use self::magento_csv::Issue;
use crate::auth::Resource;
use crate::catalog::content::{Content, DEFAULT_SCOPE};
use crate::jobs::context::{JobContext, JobError, Outcome};
use crate::storage::{ObjectKey, StorageError};
use crate::stores;

/// A file being written before it goes to object storage; removed when dropped, whatever
/// happened.
struct Scratch {
    path: PathBuf,
}

impl Scratch {
    fn create(data_dir: &Path) -> Result<(Scratch, std::fs::File), JobError> {
        let dir = data_dir.join("tmp");
        std::fs::create_dir_all(&dir).map_err(|e| JobError::Transient(e.to_string()))?;
        let path = dir.join(format!("export-{}", Uuid::new_v4().simple()));
        let file = std::fs::File::create(&path).map_err(|e| JobError::Transient(e.to_string()))?;
        Ok((Scratch { path }, file))
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// A spawned task that ends with the job, whichever way the job ends.
struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);

impl<T> AbortOnDrop<T> {
    async fn join(mut self) -> Result<T, tokio::task::JoinError> {
        (&mut self.0).await
    }
}

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Streams a finished scratch file into object storage and returns its size.
async fn upload(ctx: &JobContext, key: &ObjectKey, file: &Scratch) -> Result<i64, JobError> {
    let bytes = ctx
        .state
        .storage
        .put_file(key, &file.path)
        .await
        .map_err(|e| JobError::Transient(format!("storing {key}: {e}")))?;
    Ok(bytes as i64)
}

const BATCH: i64 = 500;
/// Magento's text columns hold 64 KiB.
const MAX_VALUE_BYTES: usize = 65_535;
const MAX_NAME_CHARS: usize = 255;

/// Where the exported content comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// What the store shows now (as last pulled or pushed).
    Live,
    /// Only the approved proposals, each scope that has one.
    Approved,
    /// What the store would show with every approved proposal pushed.
    LiveWithApproved,
}

impl Source {
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Live => "live",
            Source::Approved => "approved",
            Source::LiveWithApproved => "live_with_approved",
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ExportParams {
    pub export_id: Uuid,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Export {
    pub id: Uuid,
    pub workspace_id: Uuid,
    /// None for a workspace archive.
    pub store_id: Option<Uuid>,
    pub job_id: Uuid,
    pub format: String,
    pub source: String,
    pub store_views: Vec<String>,
    pub strict: bool,
    pub rows: Option<i64>,
    pub bytes: Option<i64>,
    pub object_key: Option<String>,
    pub issues: serde_json::Value,
    pub created_at: chrono::DateTime<chrono::Utc>,
    pub finished_at: Option<chrono::DateTime<chrono::Utc>>,
}

impl Resource for Export {
    const NAME: &'static str = "export";
    const PATH_PARAM: &'static str = "id";
    async fn workspace_of(db: &PgPool, id: Uuid) -> Result<Option<Uuid>, sqlx::Error> {
        sqlx::query_scalar("SELECT workspace_id FROM exports WHERE id = $1")
            .bind(id)
            .fetch_optional(db)
            .await
    }
}

pub async fn get(db: &PgPool, id: Uuid) -> Result<Option<Export>, sqlx::Error> {
    sqlx::query_as(
        "SELECT id, workspace_id, store_id, job_id, format, source, store_views, strict, rows, bytes,
                object_key, issues, created_at, finished_at
         FROM exports WHERE id = $1",
    )
    .bind(id)
    .fetch_optional(db)
    .await
}

type Row = (Uuid, String, String, sqlx::types::Json<Content>);
/// One product's rows gathered: id, SKU, default content, store-view overrides.
type Gathered = (Uuid, String, Content, Vec<(String, Content)>);

pub async fn run(ctx: &JobContext) -> Result<Outcome, JobError> {
    let params: ExportParams = ctx.params()?;
    let db = &ctx.state.db;
    let export = get(db, params.export_id)
        .await?
        .ok_or_else(|| JobError::Fatal("the export no longer exists".into()))?;
    if export.format == "workspace_archive" {
        return archive::run(ctx, &export).await;
    }
    let store_id = export
        .store_id
        .ok_or_else(|| JobError::Fatal("a store export without its store".into()))?;
    let store = stores::get(db, store_id)
        .await?
        .ok_or_else(|| JobError::Fatal("the store no longer exists".into()))?;
    let source = serde_json::from_value::<Source>(serde_json::json!(export.source))
        .map_err(|_| JobError::Fatal(format!("unknown source {:?}", export.source)))?;
    if export.format == "google_feed" {
        return feed(ctx, &export, &store, source).await;
    }
    let zipped = export.format == "magento_zip";
    let extension = if zipped { "zip" } else { "csv" };
    let key = ObjectKey::new(
        store.workspace_id,
        &format!("exports/{}.{extension}", export.id),
    )
    .map_err(|e| JobError::Fatal(e.to_string()))?;
    let total: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM products WHERE store_id = $1 AND removed_at IS NULL",
    )
    .bind(store.id)
    .fetch_one(db)
    .await?;
    ctx.set_total(Some(total));
    ctx.set_done(0);

    // The url-key check reads the whole store on its own connection while the rows stream.
    let url_keys = tokio::spawn({
        let db = db.clone();
        let scopes = export.store_views.clone();
        async move { duplicate_url_keys(&db, store_id, &scopes).await }
    });
    let url_keys = AbortOnDrop(url_keys);
    let mut issues = Vec::new();
    let (csv, file) = Scratch::create(&ctx.state.settings.data_dir)?;
    let out = BufWriter::new(file);
    let writer = if changes_url_keys(db, store.id, &export.store_views, source).await? {
        magento_csv::Writer::new(out)
    } else {
        magento_csv::Writer::without_url_key(out)
    };
    let mut writer = writer.map_err(|e| JobError::Transient(e.to_string()))?;
    // One streamed query in product order: live content per scope, or the newest approved
    // proposal where the source wants it. Rows arrive as PostgreSQL reads them, so memory holds
    // one product at a time.
    // Live content alone is a plain join, planned like `COPY` of the same rows.
    let query = if source == Source::Live {
        sqlx::query_as::<_, Row>(
            "SELECT p.id, p.sku, l.store_view, v.content
         FROM products p
         JOIN product_live l ON l.product_id = p.id AND l.store_view = ANY($2::text[])
         JOIN product_versions v ON v.id = l.version_id
         WHERE p.store_id = $1 AND p.removed_at IS NULL
         ORDER BY p.id, l.store_view <> 'all', l.store_view",
        )
        .bind(store.id)
        .bind(&export.store_views)
    } else {
        sqlx::query_as::<_, Row>(
            "SELECT p.id, p.sku, s.scope, coalesce(a.content, CASE WHEN $3 THEN lv.content END)
         FROM products p
         CROSS JOIN unnest($2::text[]) AS s(scope)
         LEFT JOIN product_live l ON l.product_id = p.id AND l.store_view = s.scope
         LEFT JOIN product_versions lv ON lv.id = l.version_id
         LEFT JOIN LATERAL (
            SELECT content FROM product_versions v
            WHERE $4 AND v.product_id = p.id AND v.store_view = s.scope AND v.state = 'approved'
            ORDER BY v.id DESC LIMIT 1
         ) a ON true
         WHERE p.store_id = $1 AND p.removed_at IS NULL
           AND coalesce(a.content, CASE WHEN $3 THEN lv.content END) IS NOT NULL
         ORDER BY p.id, s.scope <> 'all', s.scope",
        )
        .bind(store.id)
        .bind(&export.store_views)
        .bind(source != Source::Approved)
        .bind(source != Source::Live)
    };
    let mut rows = query.persistent(false).fetch(db);
    let mut done = 0i64;
    let mut current: Option<Gathered> = None;
    loop {
        let row = rows.try_next().await?;
        let next = row.as_ref().map(|r| r.0);
        if current.as_ref().map(|c| c.0) != next
            && let Some((_, sku, default, views)) = current.take()
        {
            writer
                .product(&sku, &default, &views)
                .map_err(|e| JobError::Transient(e.to_string()))?;
            done += 1;
            if done % BATCH == 0 {
                ctx.set_done(done);
                if let Some(stop) = ctx.should_stop().await {
                    return Ok(Outcome::Stopped(stop));
                }
                ctx.flush().await?;
            }
        }
        let Some((product, sku, scope, content)) = row else {
            break;
        };
        let content = content.0;
        check_values(&sku, &scope, &content, &mut issues);
        let entry = current.get_or_insert_with(|| (product, sku, Content::default(), Vec::new()));
        if scope == DEFAULT_SCOPE {
            entry.2 = content;
        } else {
            entry.3.push((scope, content));
        }
    }
    drop(rows);
    ctx.set_done(done);
    issues.splice(
        0..0,
        url_keys
            .join()
            .await
            .map_err(|e| JobError::Transient(format!("the url key check failed: {e}")))??,
    );
    let rows_written = writer.rows;
    issues.append(&mut writer.issues);
    let mut spreadsheet_warnings = std::mem::take(&mut writer.spreadsheet_warnings);
    let mut out = writer
        .finish()
        .map_err(|e| JobError::Transient(e.to_string()))?;
    out.flush()
        .map_err(|e| JobError::Transient(e.to_string()))?;
    drop(out);
    if export.strict && !issues.is_empty() {
        record_issues(db, export.id, &issues).await?;
        return Err(JobError::Fatal(format!(
            "the export found {} problems and is strict: {}",
            issues.len(),
            issues
                .iter()
                .take(3)
                .map(|i| format!("{} ({}): {}", i.sku, i.store_view, i.problem))
                .collect::<Vec<_>>()
                .join("; ")
        )));
    }
    // Warnings for spreadsheets do not fail a strict export: Magento reads those cells right.
    issues.append(&mut spreadsheet_warnings);
    let bytes = if zipped {
        let (zip, file) = Scratch::create(&ctx.state.settings.data_dir)?;
        zip_with_images(ctx, store.id, &csv.path, file, &mut issues).await?;
        drop(csv);
        upload(ctx, &key, &zip).await?
    } else {
        upload(ctx, &key, &csv).await?
    };
    sqlx::query(
        "UPDATE exports SET rows = $2, bytes = $3, object_key = $4, issues = $5, finished_at = now()
         WHERE id = $1",
    )
    .bind(export.id)
    .bind(rows_written as i64)
    .bind(bytes)
    .bind(key.as_str())
    .bind(serde_json::json!(issues))
    .execute(db)
    .await?;
    ctx.add("rows", rows_written as i64);
    ctx.add("issues", issues.len() as i64);
    ctx.log(
        "info",
        format!(
            "{rows_written} rows, {bytes} bytes, {} issues",
            issues.len()
        ),
    )
    .await;
    Ok(Outcome::Done)
}

/// Writes the Google feed of the export's one store view.
async fn feed(
    ctx: &JobContext,
    export: &Export,
    store: &stores::Store,
    source: Source,
) -> Result<Outcome, JobError> {
    let db = &ctx.state.db;
    let view_code = export
        .store_views
        .iter()
        .find(|v| *v != DEFAULT_SCOPE)
        .cloned()
        .ok_or_else(|| JobError::Fatal("a feed needs one store view".into()))?;
    let view = store
        .store_views
        .0
        .iter()
        .find(|v| v.code == view_code)
        .cloned()
        .ok_or_else(|| {
            JobError::Fatal(format!("{view_code:?} is not a store view of the store"))
        })?;
    let base_url = view
        .base_url
        .clone()
        .unwrap_or_else(|| store.base_url.clone());
    let media_url = view
        .base_media_url
        .clone()
        .unwrap_or_else(|| format!("{}/media/", base_url.trim_end_matches('/')));
    let currency = view.currency.clone().unwrap_or_else(|| "USD".into());
    let key = ObjectKey::new(store.workspace_id, &format!("exports/{}.xml", export.id))
        .map_err(|e| JobError::Fatal(e.to_string()))?;
    let (xml, file) = Scratch::create(&ctx.state.settings.data_dir)?;
    let mut writer = google_feed::FeedWriter::new(BufWriter::new(file), &view.name, &base_url)
        .map_err(|e| JobError::Transient(e.to_string()))?;
    let mut issues = Vec::new();
    let mut skipped = 0i64;
    let mut after: Option<Uuid> = None;
    type FeedRow = (
        Uuid,
        String,
        serde_json::Value,
        Option<sqlx::types::Json<Content>>,
        Option<sqlx::types::Json<Content>>,
    );
    loop {
        if let Some(stop) = ctx.should_stop().await {
            return Ok(Outcome::Stopped(stop));
        }
        let rows: Vec<FeedRow> = sqlx::query_as(
            "SELECT p.id, p.sku, p.attributes,
                    coalesce(da.content, dv.content), coalesce(va.content, vv.content)
             FROM products p
             LEFT JOIN product_live dl ON dl.product_id = p.id AND dl.store_view = 'all'
             LEFT JOIN product_versions dv ON dv.id = dl.version_id
             LEFT JOIN product_live vl ON vl.product_id = p.id AND vl.store_view = $4
             LEFT JOIN product_versions vv ON vv.id = vl.version_id
             LEFT JOIN LATERAL (SELECT content FROM product_versions a WHERE $5 AND a.product_id = p.id
                AND a.store_view = 'all' AND a.state = 'approved' ORDER BY a.id DESC LIMIT 1) da ON true
             LEFT JOIN LATERAL (SELECT content FROM product_versions a WHERE $5 AND a.product_id = p.id
                AND a.store_view = $4 AND a.state = 'approved' ORDER BY a.id DESC LIMIT 1) va ON true
             WHERE p.store_id = $1 AND p.removed_at IS NULL AND ($2::uuid IS NULL OR p.id > $2)
             ORDER BY p.id LIMIT $3",
        )
        .bind(store.id)
        .bind(after)
        .bind(BATCH)
        .bind(&view_code)
        .bind(source != Source::Live)
        .fetch_all(db)
        .await?;
        let Some(last) = rows.last().map(|r| r.0) else {
            break;
        };
        for (_, sku, attributes, default, overrides) in &rows {
            let default = default.as_ref().map(|c| c.0.clone()).unwrap_or_default();
            let shown = match overrides {
                Some(o) => default.with_overrides(&o.0),
                None => default,
            };
            if attributes.get("status").and_then(|s| s.as_str()) == Some("disabled") {
                skipped += 1;
                continue;
            }
            match feed_item(sku, &shown, attributes, &base_url, &media_url, &currency) {
                Ok(item) => writer
                    .item(&item)
                    .map_err(|e| JobError::Transient(e.to_string()))?,
                Err(missing) => {
                    skipped += 1;
                    issues.push(Issue {
                        sku: sku.clone(),
                        store_view: view_code.clone(),
                        problem: format!("left out of the feed: no {missing}"),
                    });
                }
            }
        }
        ctx.advance(rows.len() as i64);
        ctx.flush().await?;
        after = Some(last);
    }
    let items = writer.items;
    let mut out = writer
        .finish()
        .map_err(|e| JobError::Transient(e.to_string()))?;
    out.flush()
        .map_err(|e| JobError::Transient(e.to_string()))?;
    drop(out);
    let bytes = upload(ctx, &key, &xml).await?;
    sqlx::query(
        "UPDATE exports SET rows = $2, bytes = $3, object_key = $4, issues = $5, finished_at = now()
         WHERE id = $1",
    )
    .bind(export.id)
    .bind(items as i64)
    .bind(bytes)
    .bind(key.as_str())
    .bind(serde_json::json!(issues))
    .execute(db)
    .await?;
    ctx.add("items", items as i64);
    ctx.add("skipped", skipped);
    ctx.log(
        "info",
        format!("{items} feed items, {skipped} products left out"),
    )
    .await;
    Ok(Outcome::Done)
}

/// The feed entry of a product, or the name of the required field it lacks.
fn feed_item(
    sku: &str,
    shown: &Content,
    attributes: &serde_json::Value,
    base_url: &str,
    media_url: &str,
    currency: &str,
) -> Result<google_feed::FeedItem, &'static str> {
    let field = |name: &str| shown.fields.get(name).filter(|v| !v.trim().is_empty());
    let title = field("name").ok_or("title")?.clone();
    let url_key = field("url_key").ok_or("link")?;
    let price = attributes
        .get("price")
        .and_then(|p| {
            p.as_f64()
                .or_else(|| p.as_str().and_then(|s| s.parse().ok()))
        })
        .filter(|p| *p > 0.0)
        .ok_or("price")?;
    let mut images: Vec<&crate::catalog::content::MediaItem> =
        shown.media.iter().filter(|m| !m.disabled).collect();
    images.sort_by_key(|m| {
        (
            !m.roles.iter().any(|r| r == "image"),
            m.position,
            m.entry_id,
        )
    });
    let image = |file: &str| {
        format!(
            "{}/catalog/product/{}",
            media_url.trim_end_matches('/'),
            file.trim_start_matches('/')
        )
    };
    let first = images.first().ok_or("image_link")?;
    let description = field("description")
        .map(|d| crate::audits::html::scan(d).text)
        .filter(|d| !d.is_empty())
        .unwrap_or_else(|| title.clone());
    let text_attribute = |names: &[&str]| {
        names.iter().find_map(|n| {
            attributes
                .get(*n)
                .and_then(|v| v.as_str())
                .filter(|v| !v.is_empty())
                .map(String::from)
        })
    };
    Ok(google_feed::FeedItem {
        id: sku.to_string(),
        title,
        description,
        link: format!("{}/{url_key}.html", base_url.trim_end_matches('/')),
        image_link: image(&first.file),
        additional_image_links: images.iter().skip(1).map(|m| image(&m.file)).collect(),
        availability: "in_stock",
        price: format!("{price:.2} {currency}"),
        brand: text_attribute(&["brand", "manufacturer"]),
        gtin: text_attribute(&["gtin", "ean", "upc"]),
        mpn: Some(sku.to_string()),
    })
}

/// The ZIP of `magento_zip`: `products.csv` and, under `images/`, every mirrored picture the
/// store's products show, at the path the CSV's image columns name (unzip `images/` into
/// Magento's `var/import/images`). Pictures not mirrored yet are reported.
async fn zip_with_images(
    ctx: &JobContext,
    store_id: Uuid,
    csv: &Path,
    file: std::fs::File,
    issues: &mut Vec<Issue>,
) -> Result<(), JobError> {
    let io = |e: std::io::Error| JobError::Transient(e.to_string());
    let zip_err = |e: zip::result::ZipError| JobError::Transient(e.to_string());
    let mut zip = zip::ZipWriter::new(BufWriter::new(file));
    let options = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated);
    zip.start_file("products.csv", options).map_err(zip_err)?;
    std::io::copy(&mut std::fs::File::open(csv).map_err(io)?, &mut zip).map_err(io)?;
    // Pictures are already compressed: stored as they are.
    let stored =
        zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    let mut after: Option<String> = None;
    loop {
        let rows: Vec<(String, String)> = sqlx::query_as(
            "SELECT DISTINCT ON (m.file) m.file, m.object_key FROM media m
             JOIN products p ON p.id = m.product_id
             WHERE p.store_id = $1 AND p.removed_at IS NULL AND ($2::text IS NULL OR m.file > $2)
             ORDER BY m.file LIMIT 500",
        )
        .bind(store_id)
        .bind(&after)
        .fetch_all(&ctx.state.db)
        .await?;
        let Some(last) = rows.last().map(|r| r.0.clone()) else {
            break;
        };
        for (file, key) in rows {
            // The entry's name comes from the store: one that could reach outside `images/`
            // when unzipped (`..`, `\`, an absolute path) is left out, as the CSV leaves it.
            let Some(path) = magento_csv::importable_path(&file) else {
                issues.push(Issue {
                    sku: String::new(),
                    store_view: DEFAULT_SCOPE.into(),
                    problem: format!(
                        "image path {file:?} is not one Magento's import takes (letters, \
                         digits, `_ - . /`, no `..`): the picture is not in the ZIP"
                    ),
                });
                continue;
            };
            let Ok(key) = ObjectKey::parse(&key) else {
                continue;
            };
            // One picture (at most the mirror's size limit) in memory at a time.
            let picture = match ctx.state.storage.get(&key).await {
                Ok(picture) => picture,
                Err(StorageError::NotFound(_)) => {
                    issues.push(Issue {
                        sku: String::new(),
                        store_view: DEFAULT_SCOPE.into(),
                        problem: format!("the mirrored picture of {file} is missing"),
                    });
                    continue;
                }
                Err(e) => return Err(JobError::Transient(format!("reading {key}: {e}"))),
            };
            zip.start_file(format!("images/{path}"), stored)
                .map_err(zip_err)?;
            zip.write_all(&picture).map_err(io)?;
        }
        after = Some(last);
    }
    let missing: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM products p
         JOIN product_live l ON l.product_id = p.id AND l.store_view = 'all'
         JOIN product_versions v ON v.id = l.version_id,
              jsonb_array_elements(coalesce(v.content -> 'media', '[]'::jsonb)) item
         WHERE p.store_id = $1 AND p.removed_at IS NULL
           AND NOT EXISTS (SELECT 1 FROM media m WHERE m.product_id = p.id
                           AND m.entry_id = (item ->> 'entry_id')::bigint)",
    )
    .bind(store_id)
    .fetch_one(&ctx.state.db)
    .await?;
    if missing > 0 {
        issues.push(Issue {
            sku: String::new(),
            store_view: DEFAULT_SCOPE.into(),
            problem: format!(
                "{missing} images are not mirrored yet and are not in the ZIP: run the media step (POST /stores/{{id}}/media) first"
            ),
        });
    }
    zip.finish().map_err(zip_err)?.flush().map_err(io)?;
    Ok(())
}

async fn record_issues(db: &PgPool, id: Uuid, issues: &[Issue]) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE exports SET issues = $2 WHERE id = $1")
        .bind(id)
        .bind(serde_json::json!(issues))
        .execute(db)
        .await?;
    Ok(())
}

/// Values Magento's import would refuse or cut.
fn check_values(sku: &str, scope: &str, content: &Content, issues: &mut Vec<Issue>) {
    for (field, value) in &content.fields {
        let problem = if value.len() > MAX_VALUE_BYTES {
            Some(format!("{field} is longer than {MAX_VALUE_BYTES} bytes"))
        } else if field == "name" && value.chars().count() > MAX_NAME_CHARS {
            Some(format!("name is longer than {MAX_NAME_CHARS} characters"))
        } else if value
            .chars()
            .any(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t'))
        {
            Some(format!("{field} contains control characters"))
        } else {
            None
        };
        if let Some(problem) = problem {
            issues.push(Issue {
                sku: sku.to_string(),
                store_view: scope.to_string(),
                problem,
            });
        }
    }
}

/// Whether the export writes a url key the store does not show: an approved version (in one
/// of the exported scopes) whose own url key differs from the live version's. Only then does
/// the file get a `url_key` column, because Magento's importer makes a url key from the name
/// of every row whose `url_key` cell is empty once the column exists (`magento::import`).
async fn changes_url_keys(
    db: &PgPool,
    store_id: Uuid,
    scopes: &[String],
    source: Source,
) -> Result<bool, sqlx::Error> {
    if source == Source::Live {
        return Ok(false);
    }
    sqlx::query_scalar(
        "SELECT EXISTS (
            SELECT 1 FROM products p
            CROSS JOIN unnest($2::text[]) AS s(scope)
            JOIN LATERAL (
                SELECT content FROM product_versions v
                WHERE v.product_id = p.id AND v.store_view = s.scope AND v.state = 'approved'
                ORDER BY v.id DESC LIMIT 1
            ) a ON true
            LEFT JOIN product_live l ON l.product_id = p.id AND l.store_view = s.scope
            WHERE p.store_id = $1 AND p.removed_at IS NULL
              AND (a.content -> 'fields' ->> 'url_key') IS DISTINCT FROM l.url_key
         )",
    )
    .bind(store_id)
    .bind(scopes)
    .fetch_one(db)
    .await
}

/// url_key values shared by several products in one of the exported store views (Magento's
/// import stops at "Url key … was already generated for an item with the SKU …").
/// Only `product_live` is read (each live version's url key is kept there), and shared keys
/// are found by hashing rather than sorting every (scope, key).
async fn duplicate_url_keys(
    db: &PgPool,
    store_id: Uuid,
    scopes: &[String],
) -> Result<Vec<Issue>, sqlx::Error> {
    let rows: Vec<(String, String, String)> = sqlx::query_as(
        "WITH eff AS MATERIALIZED (
            SELECT p.sku, s.scope, coalesce(vl.url_key, dl.url_key) AS url_key
            FROM products p
            JOIN product_live dl ON dl.product_id = p.id AND dl.store_view = 'all'
            CROSS JOIN unnest($2::text[]) AS s(scope)
            LEFT JOIN product_live vl ON s.scope <> 'all' AND vl.product_id = p.id AND vl.store_view = s.scope
            WHERE p.store_id = $1 AND p.removed_at IS NULL
         ), shared AS (
            SELECT scope, url_key FROM eff WHERE url_key <> ''
            GROUP BY scope, url_key HAVING count(*) > 1
         )
         SELECT e.sku, e.scope, e.url_key FROM eff e JOIN shared USING (scope, url_key)
         ORDER BY e.scope, e.url_key, e.sku",
    )
    .bind(store_id)
    .bind(scopes)
    .fetch_all(db)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(sku, scope, key)| Issue {
            sku,
            store_view: scope,
            problem: format!("url_key {key:?} is used by more than one product"),
        })
        .collect())
}
