//! Who hears of what: per person, workspace and event kind, email on or off, and for
//! `review.ready` a daily digest instead of one mail per run.
//!
//! Without a choice of their own, a member gets what their role gets by default: owners
//! everything about their workspace's stores, admins and reviewers `review.ready` and
//! `job.failed`, editors and viewers no mail. In-app notices go to everyone who gets the mail
//! by default or by choice, whether or not they turned the mail off.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use sqlx::{PgConnection, PgPool};
use utoipa::ToSchema;
use uuid::Uuid;

use super::EventKind;
use crate::auth::Role;

/// Whether `role` gets mail about `kind` without a choice of its own.
pub fn default_email(role: Role, kind: EventKind) -> bool {
    match role {
        Role::Owner => true,
        Role::Admin | Role::Reviewer => {
            matches!(kind, EventKind::ReviewReady | EventKind::JobFailed)
        }
        Role::Editor | Role::Viewer => false,
    }
}

/// One kind's setting for one person in one workspace.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
pub struct Preference {
    /// The event type (`review.ready`, …).
    pub kind: EventKind,
    /// Mail about this kind.
    pub email: bool,
    /// `review.ready` only: one mail a day listing every run, instead of one per run.
    pub digest: bool,
    /// What the person's role gets without a choice (the value of `email` until they choose).
    pub default_email: bool,
    /// A person-readable name of the kind.
    pub label: String,
}

#[derive(sqlx::FromRow)]
struct Row {
    kind: String,
    email: bool,
    digest: bool,
}

/// Every kind's setting for `user_id` in the workspace where they have `role`.
pub async fn effective(
    db: &PgPool,
    user_id: Uuid,
    workspace_id: Uuid,
    role: Role,
) -> Result<Vec<Preference>, sqlx::Error> {
    let rows: Vec<Row> = sqlx::query_as(
        "SELECT kind, email, digest FROM notification_preferences
         WHERE user_id = $1 AND workspace_id = $2",
    )
    .bind(user_id)
    .bind(workspace_id)
    .fetch_all(db)
    .await?;
    let chosen: HashMap<String, Row> = rows.into_iter().map(|r| (r.kind.clone(), r)).collect();
    Ok(EventKind::ALL
        .into_iter()
        .map(|kind| {
            let default_email = default_email(role, kind);
            let (email, digest) = chosen
                .get(kind.as_str())
                .map_or((default_email, false), |r| (r.email, r.digest));
            Preference {
                kind,
                email,
                digest: digest && kind == EventKind::ReviewReady,
                default_email,
                label: kind.label().to_string(),
            }
        })
        .collect())
}

/// A person's choice for one kind.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Choice {
    /// The event type (`review.ready`, …).
    pub kind: String,
    pub email: bool,
    /// `review.ready` only; false when left out.
    #[serde(default)]
    pub digest: bool,
}

/// Stores the person's choices (kinds not named keep theirs).
pub async fn save(
    conn: &mut PgConnection,
    user_id: Uuid,
    workspace_id: Uuid,
    choices: &[(EventKind, bool, bool)],
) -> Result<(), sqlx::Error> {
    for &(kind, email, digest) in choices {
        sqlx::query(
            "INSERT INTO notification_preferences (user_id, workspace_id, kind, email, digest)
             VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (user_id, workspace_id, kind) DO UPDATE SET
                email = EXCLUDED.email, digest = EXCLUDED.digest",
        )
        .bind(user_id)
        .bind(workspace_id)
        .bind(kind.as_str())
        .bind(email)
        .bind(digest)
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

/// Turns mail about `kind` off for the person (the unsubscribe link); their digest choice is
/// kept for when they turn it on again.
pub async fn unsubscribe(
    conn: &mut PgConnection,
    user_id: Uuid,
    workspace_id: Uuid,
    kind: EventKind,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO notification_preferences (user_id, workspace_id, kind, email, digest)
         VALUES ($1, $2, $3, false, false)
         ON CONFLICT (user_id, workspace_id, kind) DO UPDATE SET email = false",
    )
    .bind(user_id)
    .bind(workspace_id)
    .bind(kind.as_str())
    .execute(conn)
    .await?;
    Ok(())
}

/// How one member hears of one event.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Recipient {
    pub user_id: Uuid,
    pub email_address: String,
    pub name: String,
    pub role: Role,
    /// Their own choice, if they made one.
    pub chosen_email: Option<bool>,
    pub chosen_digest: Option<bool>,
}

impl Recipient {
    pub fn wants_mail(&self, kind: EventKind) -> bool {
        self.chosen_email
            .unwrap_or_else(|| default_email(self.role, kind))
    }

    pub fn wants_digest(&self, kind: EventKind) -> bool {
        kind == EventKind::ReviewReady && self.chosen_digest.unwrap_or(false)
    }

    /// In-app notices: what their role gets by default, or what they chose to get.
    pub fn sees_notice(&self, kind: EventKind) -> bool {
        default_email(self.role, kind) || self.chosen_email == Some(true)
    }
}

/// The workspace's members with their choices for `kind`.
pub async fn recipients(
    conn: &mut PgConnection,
    workspace_id: Uuid,
    kind: EventKind,
) -> Result<Vec<Recipient>, sqlx::Error> {
    sqlx::query_as(
        "SELECT u.id AS user_id, u.email::text AS email_address, u.name, m.role,
                p.email AS chosen_email, p.digest AS chosen_digest
         FROM memberships m
         JOIN users u ON u.id = m.user_id
         LEFT JOIN notification_preferences p
            ON p.user_id = m.user_id AND p.workspace_id = m.workspace_id AND p.kind = $2
         WHERE m.workspace_id = $1
         ORDER BY u.id",
    )
    .bind(workspace_id)
    .bind(kind.as_str())
    .fetch_all(conn)
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_get_their_defaults() {
        for kind in EventKind::ALL {
            assert!(default_email(Role::Owner, kind));
            assert!(!default_email(Role::Editor, kind));
            assert!(!default_email(Role::Viewer, kind));
            let reviewers = matches!(kind, EventKind::ReviewReady | EventKind::JobFailed);
            assert_eq!(default_email(Role::Reviewer, kind), reviewers, "{kind:?}");
            assert_eq!(default_email(Role::Admin, kind), reviewers, "{kind:?}");
        }
    }
}
