//! Users: creation and lookup.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::{PgConnection, PgPool};
use utoipa::ToSchema;
use uuid::Uuid;

use super::email::Email;
use crate::error::{Error, on_unique_violation};

#[derive(Debug, Clone, Serialize, ToSchema, sqlx::FromRow)]
pub struct User {
    pub id: Uuid,
    pub email: String,
    pub name: String,
    pub created_at: DateTime<Utc>,
}

pub async fn create(
    tx: &mut PgConnection,
    email: &Email,
    name: &str,
    password_hash: &str,
) -> Result<User, Error> {
    sqlx::query_as(
        "INSERT INTO users (id, email, name, password_hash) VALUES ($1, $2, $3, $4)
         RETURNING id, email::text AS email, name, created_at",
    )
    .bind(Uuid::now_v7())
    .bind(email.as_str())
    .bind(name)
    .bind(password_hash)
    .fetch_one(&mut *tx)
    .await
    .map_err(|e| {
        on_unique_violation(
            e,
            "users_email_key",
            "an account with this email already exists",
        )
    })
}

pub async fn get(db: &PgPool, id: Uuid) -> Result<Option<User>, sqlx::Error> {
    sqlx::query_as("SELECT id, email::text AS email, name, created_at FROM users WHERE id = $1")
        .bind(id)
        .fetch_optional(db)
        .await
}

#[derive(sqlx::FromRow)]
pub struct Credentials {
    pub id: Uuid,
    pub password_hash: String,
}

pub async fn credentials_by_email(
    db: &PgPool,
    email: &str,
) -> Result<Option<Credentials>, sqlx::Error> {
    sqlx::query_as("SELECT id, password_hash FROM users WHERE email = $1::citext")
        .bind(email.trim())
        .fetch_optional(db)
        .await
}

pub async fn id_by_email(
    db: &mut PgConnection,
    email: &Email,
) -> Result<Option<Uuid>, sqlx::Error> {
    sqlx::query_scalar("SELECT id FROM users WHERE email = $1::citext")
        .bind(email.as_str())
        .fetch_optional(&mut *db)
        .await
}

/// The stored password hash, for re-checking the password before a sensitive change.
pub async fn password_hash(db: &PgPool, id: Uuid) -> Result<Option<String>, sqlx::Error> {
    sqlx::query_scalar("SELECT password_hash FROM users WHERE id = $1")
        .bind(id)
        .fetch_optional(db)
        .await
}

pub async fn set_name(tx: &mut PgConnection, id: Uuid, name: &str) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE users SET name = $2 WHERE id = $1")
        .bind(id)
        .bind(name)
        .execute(&mut *tx)
        .await?;
    Ok(())
}

pub async fn set_email(tx: &mut PgConnection, id: Uuid, email: &Email) -> Result<(), Error> {
    sqlx::query("UPDATE users SET email = $2 WHERE id = $1")
        .bind(id)
        .bind(email.as_str())
        .execute(&mut *tx)
        .await
        .map_err(|e| {
            on_unique_violation(
                e,
                "users_email_key",
                "an account with this email already exists",
            )
        })?;
    Ok(())
}

pub async fn set_password_hash(
    tx: &mut PgConnection,
    id: Uuid,
    hash: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE users SET password_hash = $2 WHERE id = $1")
        .bind(id)
        .bind(hash)
        .execute(&mut *tx)
        .await?;
    Ok(())
}
