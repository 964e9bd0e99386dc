//! Logins as sessions, each with a chain of single-use refresh tokens.
//!
//! Every refresh consumes the presented token and issues the next one. Presenting a token
//! that was already used means someone holds a copy: the whole session is revoked, so both
//! the thief and the owner must log in again.

use chrono::{Duration, Utc};
use sqlx::PgPool;
use uuid::Uuid;

use crate::auth::tokens;

pub struct NewSession {
    pub session_id: Uuid,
    pub refresh_token: String,
}

#[derive(Debug, thiserror::Error)]
pub enum RefreshError {
    #[error("refresh token is invalid or expired")]
    Invalid,
    #[error("refresh token was already used; the session has been revoked")]
    Reused { user_id: Uuid, session_id: Uuid },
    #[error(transparent)]
    Db(#[from] sqlx::Error),
}

pub async fn start(
    db: &PgPool,
    user_id: Uuid,
    user_agent: Option<&str>,
    client_addr: Option<String>,
    refresh_ttl_secs: u64,
) -> Result<NewSession, sqlx::Error> {
    let mut tx = db.begin().await?;
    let session_id = Uuid::now_v7();
    sqlx::query(
        "INSERT INTO sessions (id, user_id, user_agent, client_addr) VALUES ($1, $2, $3, $4)",
    )
    .bind(session_id)
    .bind(user_id)
    .bind(user_agent.map(|ua| ua.chars().take(400).collect::<String>()))
    .bind(client_addr)
    .execute(&mut *tx)
    .await?;
    let refresh_token = insert_refresh_token(&mut tx, session_id, refresh_ttl_secs).await?;
    tx.commit().await?;
    Ok(NewSession {
        session_id,
        refresh_token,
    })
}

async fn insert_refresh_token(
    tx: &mut sqlx::PgConnection,
    session_id: Uuid,
    ttl_secs: u64,
) -> Result<String, sqlx::Error> {
    let (token, hash) = tokens::new_refresh_token();
    let expires_at =
        Utc::now() + Duration::seconds(i64::try_from(ttl_secs).unwrap_or(i64::MAX / 1000));
    sqlx::query("INSERT INTO refresh_tokens (id, session_id, token_hash, expires_at) VALUES ($1, $2, $3, $4)")
        .bind(Uuid::now_v7())
        .bind(session_id)
        .bind(hash)
        .bind(expires_at)
        .execute(&mut *tx)
        .await?;
    Ok(token)
}

#[derive(sqlx::FromRow)]
struct PresentedToken {
    id: Uuid,
    session_id: Uuid,
    user_id: Uuid,
    used: bool,
    expired: bool,
    session_revoked: bool,
}

/// Consumes `refresh_token` and returns the user, the session and the next refresh token.
pub async fn rotate(
    db: &PgPool,
    refresh_token: &str,
    refresh_ttl_secs: u64,
) -> Result<(Uuid, NewSession), RefreshError> {
    let mut tx = db.begin().await?;
    // FOR UPDATE serialises two concurrent uses of one token: the second sees it used.
    let presented: Option<PresentedToken> = sqlx::query_as(
        "SELECT t.id, t.session_id, s.user_id, t.used_at IS NOT NULL AS used,
                t.expires_at <= now() AS expired, s.revoked_at IS NOT NULL AS session_revoked
         FROM refresh_tokens t JOIN sessions s ON s.id = t.session_id
         WHERE t.token_hash = $1
         FOR UPDATE OF t, s",
    )
    .bind(tokens::hash_token(refresh_token))
    .fetch_optional(&mut *tx)
    .await?;
    let Some(token) = presented else {
        return Err(RefreshError::Invalid);
    };
    if token.session_revoked || token.expired {
        return Err(RefreshError::Invalid);
    }
    if token.used {
        revoke_in(&mut tx, token.session_id, "refresh token reuse").await?;
        tx.commit().await?;
        return Err(RefreshError::Reused {
            user_id: token.user_id,
            session_id: token.session_id,
        });
    }
    sqlx::query("UPDATE refresh_tokens SET used_at = now() WHERE id = $1")
        .bind(token.id)
        .execute(&mut *tx)
        .await?;
    let next = insert_refresh_token(&mut tx, token.session_id, refresh_ttl_secs).await?;
    tx.commit().await?;
    Ok((
        token.user_id,
        NewSession {
            session_id: token.session_id,
            refresh_token: next,
        },
    ))
}

async fn revoke_in(
    tx: &mut sqlx::PgConnection,
    session_id: Uuid,
    reason: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE sessions SET revoked_at = now(), revoked_reason = $2 WHERE id = $1 AND revoked_at IS NULL")
        .bind(session_id)
        .bind(reason)
        .execute(&mut *tx)
        .await?;
    Ok(())
}

/// Ends every session of a user (a password change): their access tokens stop working at once.
pub async fn revoke_all(
    tx: &mut sqlx::PgConnection,
    user_id: Uuid,
    reason: &str,
) -> Result<u64, sqlx::Error> {
    Ok(sqlx::query(
        "UPDATE sessions SET revoked_at = now(), revoked_reason = $2
         WHERE user_id = $1 AND revoked_at IS NULL",
    )
    .bind(user_id)
    .bind(reason)
    .execute(&mut *tx)
    .await?
    .rows_affected())
}
