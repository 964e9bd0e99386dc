//! The workspace archive (data portability): one ZIP of JSON files — the workspace and its
//! members, stores without their secrets, every product with all its versions, audit runs and
//! findings, jobs with their logs, AI usage, exports, the audit log — plus the mirrored
//! pictures. Large tables are read in keyset batches and written as JSON Lines straight into
//! the ZIP on disk, so memory stays flat; the ZIP then goes to object storage like any export.

use std::io::{BufWriter, Write};

use serde::Serialize;
use sqlx::{PgPool, Postgres};
use uuid::Uuid;
use zip::write::SimpleFileOptions;

use super::{Export, Scratch, upload};
use crate::jobs::context::{JobContext, JobError, Outcome};
use crate::storage::ObjectKey;

const BATCH: i64 = 500;

/// What the archive holds, file by file, for its README and for people reading the code.
pub const FILES: &[(&str, &str)] = &[
    (
        "workspace.json",
        "the workspace, its settings and its members (name, email, role)",
    ),
    (
        "stores.json",
        "connected stores, without credentials or link tokens",
    ),
    (
        "products.jsonl",
        "one product per line with every version of its content",
    ),
    (
        "audit_runs.jsonl",
        "audit runs with their scores and counts",
    ),
    ("audit_findings.jsonl", "every finding of every audit run"),
    ("jobs.jsonl", "every job with its counters and log lines"),
    (
        "usage.json",
        "AI usage per day and, for older periods, per month",
    ),
    (
        "exports.json",
        "the exports made (the files themselves are not repeated)",
    ),
    ("audit_log.jsonl", "the workspace's audit log"),
    (
        "media.jsonl",
        "mirrored pictures: product, gallery entry, file, size, sha256",
    ),
    ("media/<sha256>", "each mirrored picture once"),
];

fn zip_error(e: zip::result::ZipError) -> JobError {
    JobError::Transient(format!("writing the archive: {e}"))
}

fn io_error(e: std::io::Error) -> JobError {
    JobError::Transient(format!("writing the archive: {e}"))
}

type Zip = zip::ZipWriter<BufWriter<std::fs::File>>;

pub async fn run(ctx: &JobContext, export: &Export) -> Result<Outcome, JobError> {
    let db = &ctx.state.db;
    let ws = export.workspace_id;
    let key = ObjectKey::new(ws, &format!("exports/{}.zip", export.id))
        .map_err(|e| JobError::Fatal(e.to_string()))?;
    let total: i64 = sqlx::query_scalar("SELECT count(*) FROM products WHERE workspace_id = $1")
        .bind(ws)
        .fetch_one(db)
        .await?;
    ctx.set_total(Some(total));
    ctx.set_done(0);

    let (scratch, file) = Scratch::create(&ctx.state.settings.data_dir)?;
    let mut zip = zip::ZipWriter::new(BufWriter::new(file));
    let deflated =
        SimpleFileOptions::default().compression_method(zip::CompressionMethod::Deflated);

    zip.start_file("README.txt", deflated).map_err(zip_error)?;
    let mut readme = format!(
        "catalogd workspace archive\nworkspace {ws}\nmade {}\n\n",
        chrono::Utc::now().to_rfc3339()
    );
    for (name, what) in FILES {
        readme.push_str(&format!("{name:<22} {what}\n"));
    }
    zip.write_all(readme.as_bytes()).map_err(io_error)?;

    let workspace: String = sqlx::query_scalar(
        "SELECT jsonb_build_object(
            'id', w.id, 'name', w.name, 'settings', w.settings, 'created_at', w.created_at,
            'members', coalesce((
                SELECT jsonb_agg(jsonb_build_object('name', u.name, 'email', u.email, 'role', m.role,
                                                    'since', m.created_at) ORDER BY m.created_at)
                FROM memberships m JOIN users u ON u.id = m.user_id WHERE m.workspace_id = w.id), '[]'))::text
         FROM workspaces w WHERE w.id = $1",
    )
    .bind(ws)
    .fetch_one(db)
    .await?;
    write_file(&mut zip, "workspace.json", workspace.as_bytes(), deflated)?;

    let stores: String = sqlx::query_scalar(
        "SELECT coalesce(jsonb_agg(to_jsonb(s) - 'credentials' - 'link_token' - 'link_token_hash'
                                   - 'handshake' - 'callback_armed' ORDER BY s.id), '[]')::text
         FROM stores s WHERE s.workspace_id = $1",
    )
    .bind(ws)
    .fetch_one(db)
    .await?;
    write_file(&mut zip, "stores.json", stores.as_bytes(), deflated)?;

    let products = jsonl::<Uuid>(
        ctx,
        &mut zip,
        "products.jsonl",
        deflated,
        "SELECT p.id, (to_jsonb(p) || jsonb_build_object('versions', coalesce((
                    SELECT jsonb_agg(to_jsonb(v) ORDER BY v.id) FROM product_versions v
                    WHERE v.product_id = p.id), '[]')))::text
         FROM products p WHERE p.workspace_id = $1 AND ($2::uuid IS NULL OR p.id > $2)
         ORDER BY p.id LIMIT $3",
        ws,
        true,
    )
    .await?;
    let Some(products) = products else {
        return Ok(stopped(ctx).await);
    };
    for (name, sql) in [
        (
            "audit_runs.jsonl",
            "SELECT r.id, to_jsonb(r)::text FROM audit_runs r
             WHERE r.workspace_id = $1 AND ($2::uuid IS NULL OR r.id > $2) ORDER BY r.id LIMIT $3",
        ),
        (
            "jobs.jsonl",
            "SELECT j.id, (to_jsonb(j) || jsonb_build_object('log', coalesce((
                        SELECT jsonb_agg(jsonb_build_object('at', l.created_at, 'level', l.level,
                                                            'message', l.message) ORDER BY l.id)
                        FROM job_logs l WHERE l.job_id = j.id), '[]')))::text
             FROM job_runs j
             WHERE j.workspace_id = $1 AND ($2::uuid IS NULL OR j.id > $2) ORDER BY j.id LIMIT $3",
        ),
    ] {
        if jsonl::<Uuid>(ctx, &mut zip, name, deflated, sql, ws, false)
            .await?
            .is_none()
        {
            return Ok(stopped(ctx).await);
        }
    }
    for (name, sql) in [
        (
            "audit_findings.jsonl",
            "SELECT f.id, to_jsonb(f)::text FROM audit_findings f
             JOIN audit_runs r ON r.id = f.run_id
             WHERE r.workspace_id = $1 AND ($2::bigint IS NULL OR f.id > $2) ORDER BY f.id LIMIT $3",
        ),
        (
            "audit_log.jsonl",
            "SELECT a.id, to_jsonb(a)::text FROM audit_log a
             WHERE a.workspace_id = $1 AND ($2::bigint IS NULL OR a.id > $2) ORDER BY a.id LIMIT $3",
        ),
    ] {
        if jsonl::<i64>(ctx, &mut zip, name, deflated, sql, ws, false)
            .await?
            .is_none()
        {
            return Ok(stopped(ctx).await);
        }
    }

    let usage: String = sqlx::query_scalar(
        "SELECT jsonb_build_object(
            'days', coalesce((SELECT jsonb_agg(to_jsonb(u) - 'workspace_id' ORDER BY u.day, u.provider, u.model)
                              FROM ai_usage u WHERE u.workspace_id = $1), '[]'),
            'months', coalesce((SELECT jsonb_agg(to_jsonb(m) - 'workspace_id' ORDER BY m.month, m.provider, m.model)
                                FROM ai_usage_monthly m WHERE m.workspace_id = $1), '[]'))::text",
    )
    .bind(ws)
    .fetch_one(db)
    .await?;
    write_file(&mut zip, "usage.json", usage.as_bytes(), deflated)?;

    let exports: String = sqlx::query_scalar(
        "SELECT coalesce(jsonb_agg(to_jsonb(e) ORDER BY e.id), '[]')::text FROM exports e
         WHERE e.workspace_id = $1 AND e.id <> $2",
    )
    .bind(ws)
    .bind(export.id)
    .fetch_one(db)
    .await?;
    write_file(&mut zip, "exports.json", exports.as_bytes(), deflated)?;

    let pictures = media(ctx, &mut zip, ws, deflated).await?;

    zip.finish().map_err(zip_error)?.flush().map_err(io_error)?;
    let bytes = upload(ctx, &key, &scratch).await?;
    sqlx::query(
        "UPDATE exports SET rows = $2, bytes = $3, object_key = $4, finished_at = now() WHERE id = $1",
    )
    .bind(export.id)
    .bind(products)
    .bind(bytes)
    .bind(key.as_str())
    .execute(db)
    .await?;
    ctx.add("products", products);
    ctx.add("pictures", pictures);
    ctx.log(
        "info",
        format!("{products} products, {pictures} pictures, {bytes} bytes"),
    )
    .await;
    Ok(Outcome::Done)
}

async fn stopped(ctx: &JobContext) -> Outcome {
    match ctx.should_stop().await {
        Some(stop) => Outcome::Stopped(stop),
        None => Outcome::Done,
    }
}

fn write_file(
    zip: &mut Zip,
    name: &str,
    bytes: &[u8],
    options: SimpleFileOptions,
) -> Result<(), JobError> {
    zip.start_file(name, options).map_err(zip_error)?;
    zip.write_all(bytes).map_err(io_error)
}

/// Writes the rows of `sql` (`$1` workspace, `$2` the last key or NULL, `$3` batch size;
/// answering `(key, json text)` in key order) as one JSON document per line. `None` when the
/// job was asked to stop; otherwise the number of lines. `progress` counts them as the job's
/// progress.
async fn jsonl<C>(
    ctx: &JobContext,
    zip: &mut Zip,
    name: &str,
    options: SimpleFileOptions,
    sql: &'static str,
    ws: Uuid,
    progress: bool,
) -> Result<Option<i64>, JobError>
where
    C: for<'r> sqlx::Decode<'r, Postgres>
        + for<'q> sqlx::Encode<'q, Postgres>
        + sqlx::Type<Postgres>
        + Send
        + Sync
        + Unpin
        + Clone
        + 'static,
{
    zip.start_file(name, options).map_err(zip_error)?;
    let mut after: Option<C> = None;
    let mut lines = 0i64;
    loop {
        if ctx.should_stop().await.is_some() {
            return Ok(None);
        }
        let rows: Vec<(C, String)> = sqlx::query_as(sql)
            .bind(ws)
            .bind(after.clone())
            .bind(BATCH)
            .fetch_all(&ctx.state.db)
            .await?;
        let Some(last) = rows.last().map(|r| r.0.clone()) else {
            break;
        };
        for (_, line) in &rows {
            zip.write_all(line.as_bytes()).map_err(io_error)?;
            zip.write_all(b"\n").map_err(io_error)?;
        }
        lines += rows.len() as i64;
        if progress {
            ctx.set_done(lines);
            ctx.flush().await?;
        }
        after = Some(last);
    }
    Ok(Some(lines))
}

#[derive(Serialize, sqlx::FromRow)]
struct MediaLine {
    product_id: Uuid,
    entry_id: i64,
    file: String,
    sha256: String,
    bytes: i64,
    mime: Option<String>,
    width: Option<i32>,
    height: Option<i32>,
    /// Where the picture is in this archive.
    archived_as: String,
}

/// `media.jsonl` and each mirrored picture once under `media/<sha256>`.
async fn media(
    ctx: &JobContext,
    zip: &mut Zip,
    ws: Uuid,
    options: SimpleFileOptions,
) -> Result<i64, JobError> {
    let db: &PgPool = &ctx.state.db;
    zip.start_file("media.jsonl", options).map_err(zip_error)?;
    let mut after: Option<(Uuid, i64)> = None;
    loop {
        let rows: Vec<MediaLine> = sqlx::query_as(
            "SELECT product_id, entry_id, file, encode(sha256, 'hex') AS sha256, bytes, mime, width,
                    height, 'media/' || encode(sha256, 'hex') AS archived_as
             FROM media WHERE workspace_id = $1
               AND ($2::uuid IS NULL OR (product_id, entry_id) > ($2, $3))
             ORDER BY product_id, entry_id LIMIT $4",
        )
        .bind(ws)
        .bind(after.map(|a| a.0))
        .bind(after.map(|a| a.1).unwrap_or(0))
        .bind(BATCH)
        .fetch_all(db)
        .await?;
        let Some(last) = rows.last().map(|r| (r.product_id, r.entry_id)) else {
            break;
        };
        for row in &rows {
            let line = serde_json::to_string(row)
                .map_err(|e| JobError::Fatal(format!("media line: {e}")))?;
            zip.write_all(line.as_bytes()).map_err(io_error)?;
            zip.write_all(b"\n").map_err(io_error)?;
        }
        after = Some(last);
    }

    // Pictures are already compressed: stored as they are, one at a time.
    let stored = SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    let mut pictures = 0;
    let mut after: Option<String> = None;
    loop {
        let rows: Vec<(String, String)> = sqlx::query_as(
            "SELECT DISTINCT ON (sha) encode(sha256, 'hex') AS sha, object_key FROM media
             WHERE workspace_id = $1 AND ($2::text IS NULL OR encode(sha256, 'hex') > $2)
             ORDER BY sha LIMIT $3",
        )
        .bind(ws)
        .bind(&after)
        .bind(BATCH)
        .fetch_all(db)
        .await?;
        let Some(last) = rows.last().map(|r| r.0.clone()) else {
            break;
        };
        for (sha, key) in rows {
            let key = ObjectKey::parse(&key).map_err(|e| JobError::Fatal(e.to_string()))?;
            let bytes = match ctx.state.storage.get(&key).await {
                Ok(bytes) => bytes,
                Err(crate::storage::StorageError::NotFound(_)) => {
                    ctx.log("warn", format!("the picture {sha} is missing from storage"))
                        .await;
                    continue;
                }
                Err(e) => return Err(JobError::Transient(format!("reading {key}: {e}"))),
            };
            zip.start_file(format!("media/{sha}"), stored)
                .map_err(zip_error)?;
            zip.write_all(&bytes).map_err(io_error)?;
            pictures += 1;
        }
        after = Some(last);
    }
    Ok(pictures)
}
