//! Per-workspace settings: a flat object with defaults, stored as JSON on the workspace.

use serde::{Deserialize, Serialize};
use sqlx::{PgConnection, PgPool};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::http::error::ApiError;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(default)]
pub struct WorkspaceSettings {
    /// Objection to AI processing: when false, nothing is ever sent to an AI provider.
    pub ai_processing: bool,
    /// When true, a change needs the approval of someone other than its author.
    pub four_eyes: bool,
    /// When true, members must use two-factor login.
    pub require_totp: bool,
    /// Most AI tokens (input + output) the workspace may use per day; null for no limit.
    pub daily_token_budget: Option<u64>,
}

impl Default for WorkspaceSettings {
    fn default() -> Self {
        WorkspaceSettings {
            ai_processing: true,
            four_eyes: false,
            require_totp: false,
            daily_token_budget: None,
        }
    }
}

/// A partial update: only the fields given change; unknown fields are refused.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SettingsUpdate {
    pub ai_processing: Option<bool>,
    pub four_eyes: Option<bool>,
    pub require_totp: Option<bool>,
    /// Give `null` to remove the limit.
    #[serde(default, deserialize_with = "explicit_null")]
    #[schema(value_type = Option<u64>)]
    pub daily_token_budget: Option<Option<u64>>,
}

/// Tells `"field": null` (clear) apart from a missing field (keep).
fn explicit_null<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

impl WorkspaceSettings {
    pub fn apply(&mut self, update: SettingsUpdate) {
        if let Some(v) = update.ai_processing {
            self.ai_processing = v;
        }
        if let Some(v) = update.four_eyes {
            self.four_eyes = v;
        }
        if let Some(v) = update.require_totp {
            self.require_totp = v;
        }
        if let Some(v) = update.daily_token_budget {
            self.daily_token_budget = v;
        }
    }
}

pub async fn get(db: &PgPool, workspace_id: Uuid) -> Result<WorkspaceSettings, ApiError> {
    let raw: serde_json::Value =
        sqlx::query_scalar("SELECT settings FROM workspaces WHERE id = $1")
            .bind(workspace_id)
            .fetch_optional(db)
            .await?
            .ok_or(ApiError::NotFound("workspace"))?;
    parse(raw)
}

/// Reads and locks the settings for an update within `tx`.
pub async fn get_for_update(
    tx: &mut PgConnection,
    workspace_id: Uuid,
) -> Result<WorkspaceSettings, ApiError> {
    let raw: serde_json::Value =
        sqlx::query_scalar("SELECT settings FROM workspaces WHERE id = $1 FOR UPDATE")
            .bind(workspace_id)
            .fetch_optional(&mut *tx)
            .await?
            .ok_or(ApiError::NotFound("workspace"))?;
    parse(raw)
}

pub async fn save(
    tx: &mut PgConnection,
    workspace_id: Uuid,
    settings: &WorkspaceSettings,
) -> Result<(), ApiError> {
    sqlx::query("UPDATE workspaces SET settings = $2 WHERE id = $1")
        .bind(workspace_id)
        .bind(serde_json::to_value(settings).map_err(anyhow::Error::from)?)
        .execute(&mut *tx)
        .await?;
    Ok(())
}

fn parse(raw: serde_json::Value) -> Result<WorkspaceSettings, ApiError> {
    serde_json::from_value(raw)
        .map_err(|e| ApiError::Internal(anyhow::anyhow!("stored settings unreadable: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partial_update_changes_only_given_fields() {
        let mut s = WorkspaceSettings {
            daily_token_budget: Some(5),
            ..Default::default()
        };
        let update: SettingsUpdate = serde_json::from_str(r#"{"four_eyes": true}"#).unwrap();
        s.apply(update);
        assert!(s.four_eyes && s.ai_processing);
        assert_eq!(s.daily_token_budget, Some(5));
        let clear: SettingsUpdate =
            serde_json::from_str(r#"{"daily_token_budget": null}"#).unwrap();
        s.apply(clear);
        assert_eq!(s.daily_token_budget, None);
    }

    #[test]
    fn unknown_settings_are_refused() {
        assert!(serde_json::from_str::<SettingsUpdate>(r#"{"ai_procesing": false}"#).is_err());
    }
}
