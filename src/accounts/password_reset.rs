//! "Forgot password": a single-use link, valid [`VALID_MINUTES`], mailed to the account's
//! address. Asking answers the same whether or not an account uses the address; only the
//! token's hash is kept. Using the link sets the password and ends every session.

use chrono::{DateTime, Utc};
use sqlx::PgConnection;
use uuid::Uuid;

use super::email::Email;
use crate::auth::tokens::{hash_token, new_secret_token};
use crate::error::Error;

/// How long a reset link works.
pub const VALID_MINUTES: i64 = 30;
/// Links asked for one account within an hour, beyond which asking again sends nothing (the
/// answer stays the same): nobody fills a person's mailbox through this form.
pub const PER_ACCOUNT_PER_HOUR: i64 = 5;

/// A link to mail.
pub struct Issued {
    pub id: Uuid,
    pub user_id: Uuid,
    pub name: String,
    pub email: String,
    pub token: String,
}

/// A new reset link for the account behind `email`, if there is one and it has not asked too
/// often. Earlier unused links of the account stop working: only the newest one counts.
pub async fn issue(tx: &mut PgConnection, email: &Email) -> Result<Option<Issued>, sqlx::Error> {
    let account: Option<(Uuid, String, String)> = sqlx::query_as(
        "SELECT id, name, email::text FROM users WHERE email = $1::citext FOR UPDATE",
    )
    .bind(email.as_str())
    .fetch_optional(&mut *tx)
    .await?;
    let Some((user_id, name, address)) = account else {
        return Ok(None);
    };
    let recent: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM password_resets
         WHERE user_id = $1 AND created_at > now() - interval '1 hour'",
    )
    .bind(user_id)
    .fetch_one(&mut *tx)
    .await?;
    if recent >= PER_ACCOUNT_PER_HOUR {
        tracing::warn!(%user_id, "password reset asked too often; no link sent");
        return Ok(None);
    }
    sqlx::query(
        "UPDATE password_resets SET used_at = now() WHERE user_id = $1 AND used_at IS NULL",
    )
    .bind(user_id)
    .execute(&mut *tx)
    .await?;
    let (token, token_hash) = new_secret_token("cpwr");
    let id = Uuid::now_v7();
    sqlx::query(
        "INSERT INTO password_resets (id, user_id, token_hash, expires_at)
         VALUES ($1, $2, $3, now() + make_interval(mins => $4))",
    )
    .bind(id)
    .bind(user_id)
    .bind(token_hash)
    .bind(VALID_MINUTES as i32)
    .execute(&mut *tx)
    .await?;
    Ok(Some(Issued {
        id,
        user_id,
        name,
        email: address,
        token,
    }))
}

/// Whether `token` is a usable link, checked before the costly password hash so that a wrong
/// token costs the server nothing. [`redeem`] decides.
pub async fn is_usable(db: &sqlx::PgPool, token: &str) -> Result<bool, sqlx::Error> {
    if token.len() > 200 {
        return Ok(false);
    }
    sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM password_resets
                        WHERE token_hash = $1 AND used_at IS NULL AND expires_at > now())",
    )
    .bind(hash_token(token))
    .fetch_one(db)
    .await
}

/// The answer for unknown, used and expired links alike.
pub fn unusable() -> Error {
    Error::invalid(
        "token",
        "this reset link is unknown, used or expired: ask for a new one",
    )
}

/// Uses the link behind `token` once: returns the account whose password may now be set.
/// Unknown, used and expired links answer alike.
pub async fn redeem(tx: &mut PgConnection, token: &str) -> Result<Uuid, Error> {
    let user: Option<Uuid> = if token.len() > 200 {
        None
    } else {
        sqlx::query_scalar(
            "UPDATE password_resets SET used_at = now()
             WHERE token_hash = $1 AND used_at IS NULL AND expires_at > now()
             RETURNING user_id",
        )
        .bind(hash_token(token))
        .fetch_optional(&mut *tx)
        .await?
    };
    user.ok_or_else(unusable)
}

/// Links used or expired before `before` are forgotten.
pub async fn purge(db: &sqlx::PgPool, before: DateTime<Utc>) -> Result<u64, sqlx::Error> {
    Ok(
        sqlx::query("DELETE FROM password_resets WHERE expires_at < $1")
            .bind(before)
            .execute(db)
            .await?
            .rows_affected(),
    )
}
