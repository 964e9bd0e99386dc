//! The account's own data for `GET /me/export`: small (one person's rows), so it is gathered
//! as JSON documents by PostgreSQL and zipped in memory.

use std::io::Write;

use uuid::Uuid;

use crate::error::Error;
use crate::state::AppState;
use crate::storage::ObjectKey;

/// An owned workspace and its newest archive: export id, object key, job status.
type OwnedWorkspace = (Uuid, String, Option<Uuid>, Option<String>, Option<String>);

/// `(file name, JSON text)` in archive order.
pub async fn files(state: &AppState, user_id: Uuid) -> Result<Vec<(String, String)>, Error> {
    let db = &state.db;
    let mut files = Vec::new();
    for (name, sql) in [
        (
            "account.json",
            "SELECT jsonb_build_object('id', id, 'email', email, 'name', name,
                    'created_at', created_at, 'updated_at', updated_at,
                    'two_factor_login', totp_enabled_at IS NOT NULL)::text
             FROM users WHERE id = $1",
        ),
        (
            "memberships.json",
            "SELECT coalesce(jsonb_agg(jsonb_build_object('workspace_id', w.id, 'workspace', w.name,
                    'role', m.role, 'since', m.created_at) ORDER BY m.created_at), '[]')::text
             FROM memberships m JOIN workspaces w ON w.id = m.workspace_id WHERE m.user_id = $1",
        ),
        (
            "sessions.json",
            "SELECT coalesce(jsonb_agg(jsonb_build_object('id', id, 'created_at', created_at,
                    'revoked_at', revoked_at, 'revoked_reason', revoked_reason,
                    'user_agent', user_agent, 'client_addr', client_addr) ORDER BY created_at), '[]')::text
             FROM sessions WHERE user_id = $1",
        ),
        (
            "api_keys.json",
            "SELECT coalesce(jsonb_agg(jsonb_build_object('id', id, 'workspace_id', workspace_id,
                    'name', name, 'prefix', prefix, 'role', role, 'created_at', created_at,
                    'last_used_at', last_used_at, 'revoked_at', revoked_at) ORDER BY created_at), '[]')::text
             FROM api_keys WHERE created_by = $1",
        ),
        (
            "audit_log.json",
            "SELECT coalesce(jsonb_agg(jsonb_build_object('workspace_id', workspace_id,
                    'action', action, 'target_type', target_type, 'target_id', target_id,
                    'client_addr', client_addr, 'details', details, 'at', created_at) ORDER BY id), '[]')::text
             FROM audit_log WHERE actor_user_id = $1",
        ),
    ] {
        let text: String = sqlx::query_scalar(sql).bind(user_id).fetch_one(db).await?;
        files.push((name.to_string(), text));
    }

    // Each owned workspace's newest archive, with a fresh link when it is ready.
    let owned: Vec<OwnedWorkspace> = sqlx::query_as(
        "SELECT w.id, w.name, e.id, e.object_key, j.status
         FROM memberships m JOIN workspaces w ON w.id = m.workspace_id
         LEFT JOIN LATERAL (
            SELECT id, object_key, job_id FROM exports
            WHERE workspace_id = w.id AND format = 'workspace_archive'
            ORDER BY created_at DESC LIMIT 1) e ON true
         LEFT JOIN job_runs j ON j.id = e.job_id
         WHERE m.user_id = $1 AND m.role = 'owner'
         ORDER BY w.id",
    )
    .bind(user_id)
    .fetch_all(db)
    .await?;
    let mut workspaces = Vec::new();
    for (id, name, export_id, key, status) in owned {
        let mut link = serde_json::Value::Null;
        if let (Some(key), Some("succeeded")) = (key, status.as_deref()) {
            let key = ObjectKey::parse(&key).map_err(anyhow::Error::from)?;
            let presigned = state
                .storage
                .download_link(&key)
                .await
                .map_err(anyhow::Error::from)?;
            link = serde_json::json!({"download_url": presigned.url, "expires_at": presigned.expires_at});
        }
        workspaces.push(serde_json::json!({
            "workspace_id": id,
            "workspace": name,
            "archive": export_id.map(|e| serde_json::json!({"export_id": e, "status": status, "link": link})),
            "make_one": format!("POST /api/v1/workspaces/{id}/exports {{\"format\": \"workspace_archive\"}}"),
        }));
    }
    files.push((
        "owned_workspaces.json".to_string(),
        serde_json::to_string(&workspaces).map_err(anyhow::Error::from)?,
    ));
    files.insert(
        0,
        (
            "README.txt".to_string(),
            "catalogd account export\n\n\
             account.json            the account (no password hash, no two-factor secret)\n\
             memberships.json        workspaces and roles\n\
             sessions.json           logins, with the browser and address they recorded\n\
             api_keys.json           API keys the account created (prefixes only)\n\
             audit_log.json          what the account did, from every workspace's audit log\n\
             owned_workspaces.json   workspaces the account owns, with their newest archive\n"
                .to_string(),
        ),
    );
    Ok(files)
}

pub fn zip(files: &[(String, String)]) -> Result<Vec<u8>, Error> {
    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let options = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated);
    for (name, text) in files {
        zip.start_file(name.as_str(), options)
            .map_err(anyhow::Error::from)?;
        zip.write_all(text.as_bytes())
            .map_err(anyhow::Error::from)?;
    }
    Ok(zip.finish().map_err(anyhow::Error::from)?.into_inner())
}
