//! Per-workspace settings: a flat object with defaults, stored as JSON on the workspace.

use serde::{Deserialize, Serialize};
use sqlx::{PgConnection, PgPool};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::audits::rules::{AuditConfig, RuleId};
use crate::error::Error;

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
    /// Audit rules that do not run (rule ids such as `keyword_stuffing`).
    pub audit_disabled_rules: Vec<String>,
    /// Fewest characters of visible text (HTML removed) a description should have.
    pub audit_description_min_chars: u32,
    /// Fewest characters of visible text a short description should have.
    pub audit_short_description_min_chars: u32,
    /// Longest meta title search results show in full.
    pub audit_meta_title_max_chars: u32,
    /// Shortest useful meta description.
    pub audit_meta_description_min_chars: u32,
    /// Longest meta description search results show in full.
    pub audit_meta_description_max_chars: u32,
    /// Most meta keywords before the list counts as stuffing.
    pub audit_meta_keywords_max: u32,
    /// Fewest pixels on a mirrored image's shorter side.
    pub audit_image_min_pixels: u32,
}

impl Default for WorkspaceSettings {
    fn default() -> Self {
        WorkspaceSettings {
            ai_processing: true,
            four_eyes: false,
            require_totp: false,
            daily_token_budget: None,
            audit_disabled_rules: Vec::new(),
            audit_description_min_chars: 80,
            audit_short_description_min_chars: 10,
            audit_meta_title_max_chars: 60,
            audit_meta_description_min_chars: 50,
            audit_meta_description_max_chars: 160,
            audit_meta_keywords_max: 10,
            audit_image_min_pixels: 500,
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
    pub audit_disabled_rules: Option<Vec<String>>,
    pub audit_description_min_chars: Option<u32>,
    pub audit_short_description_min_chars: Option<u32>,
    pub audit_meta_title_max_chars: Option<u32>,
    pub audit_meta_description_min_chars: Option<u32>,
    pub audit_meta_description_max_chars: Option<u32>,
    pub audit_meta_keywords_max: Option<u32>,
    pub audit_image_min_pixels: Option<u32>,
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
    /// Applies a partial update, refusing one that leaves the settings inconsistent.
    pub fn apply(&mut self, update: SettingsUpdate) -> Result<(), Error> {
        let mut next = self.clone();
        next.merge(update);
        next.validate()?;
        *self = next;
        Ok(())
    }

    fn validate(&self) -> Result<(), Error> {
        for rule in &self.audit_disabled_rules {
            if RuleId::parse(rule).is_none() {
                return Err(Error::invalid(
                    "audit_disabled_rules",
                    format!(
                        "{rule:?} is not an audit rule; rules: {}",
                        RuleId::ALL
                            .iter()
                            .map(|r| r.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                ));
            }
        }
        if self.audit_meta_description_min_chars > self.audit_meta_description_max_chars {
            return Err(Error::invalid(
                "audit_meta_description_min_chars",
                "audit_meta_description_min_chars must not exceed audit_meta_description_max_chars",
            ));
        }
        let limits = [
            (
                "audit_description_min_chars",
                self.audit_description_min_chars,
            ),
            (
                "audit_short_description_min_chars",
                self.audit_short_description_min_chars,
            ),
            (
                "audit_meta_title_max_chars",
                self.audit_meta_title_max_chars,
            ),
            (
                "audit_meta_description_max_chars",
                self.audit_meta_description_max_chars,
            ),
            ("audit_meta_keywords_max", self.audit_meta_keywords_max),
            ("audit_image_min_pixels", self.audit_image_min_pixels),
        ];
        for (name, value) in limits {
            if value > 100_000 {
                return Err(Error::invalid(
                    name,
                    format!("{name} must be at most 100000"),
                ));
            }
        }
        Ok(())
    }

    /// The audit rules and thresholds these settings ask for.
    pub fn audit_config(&self) -> AuditConfig {
        AuditConfig {
            disabled: self
                .audit_disabled_rules
                .iter()
                .filter_map(|r| RuleId::parse(r))
                .collect(),
            description_min_chars: self.audit_description_min_chars as usize,
            short_description_min_chars: self.audit_short_description_min_chars as usize,
            meta_title_max_chars: self.audit_meta_title_max_chars as usize,
            meta_description_min_chars: self.audit_meta_description_min_chars as usize,
            meta_description_max_chars: self.audit_meta_description_max_chars as usize,
            meta_keywords_max: self.audit_meta_keywords_max as usize,
            image_min_pixels: self.audit_image_min_pixels,
        }
    }

    fn merge(&mut self, update: SettingsUpdate) {
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
        if let Some(v) = update.audit_disabled_rules {
            self.audit_disabled_rules = v;
        }
        let numbers = [
            (
                update.audit_description_min_chars,
                &mut self.audit_description_min_chars,
            ),
            (
                update.audit_short_description_min_chars,
                &mut self.audit_short_description_min_chars,
            ),
            (
                update.audit_meta_title_max_chars,
                &mut self.audit_meta_title_max_chars,
            ),
            (
                update.audit_meta_description_min_chars,
                &mut self.audit_meta_description_min_chars,
            ),
            (
                update.audit_meta_description_max_chars,
                &mut self.audit_meta_description_max_chars,
            ),
            (
                update.audit_meta_keywords_max,
                &mut self.audit_meta_keywords_max,
            ),
            (
                update.audit_image_min_pixels,
                &mut self.audit_image_min_pixels,
            ),
        ];
        for (given, field) in numbers {
            if let Some(v) = given {
                *field = v;
            }
        }
    }
}

pub async fn get(db: &PgPool, workspace_id: Uuid) -> Result<WorkspaceSettings, Error> {
    let raw: serde_json::Value =
        sqlx::query_scalar("SELECT settings FROM workspaces WHERE id = $1")
            .bind(workspace_id)
            .fetch_optional(db)
            .await?
            .ok_or(Error::NotFound("workspace"))?;
    parse(raw)
}

/// Reads and locks the settings for an update within `tx`.
pub async fn get_for_update(
    tx: &mut PgConnection,
    workspace_id: Uuid,
) -> Result<WorkspaceSettings, Error> {
    let raw: serde_json::Value =
        sqlx::query_scalar("SELECT settings FROM workspaces WHERE id = $1 FOR UPDATE")
            .bind(workspace_id)
            .fetch_optional(&mut *tx)
            .await?
            .ok_or(Error::NotFound("workspace"))?;
    parse(raw)
}

pub async fn save(
    tx: &mut PgConnection,
    workspace_id: Uuid,
    settings: &WorkspaceSettings,
) -> Result<(), Error> {
    sqlx::query("UPDATE workspaces SET settings = $2 WHERE id = $1")
        .bind(workspace_id)
        .bind(serde_json::to_value(settings).map_err(anyhow::Error::from)?)
        .execute(&mut *tx)
        .await?;
    Ok(())
}

pub fn parse(raw: serde_json::Value) -> Result<WorkspaceSettings, Error> {
    serde_json::from_value(raw)
        .map_err(|e| Error::Internal(anyhow::anyhow!("stored settings unreadable: {e}")))
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
        s.apply(update).unwrap();
        assert!(s.four_eyes && s.ai_processing);
        assert_eq!(s.daily_token_budget, Some(5));
        let clear: SettingsUpdate =
            serde_json::from_str(r#"{"daily_token_budget": null}"#).unwrap();
        s.apply(clear).unwrap();
        assert_eq!(s.daily_token_budget, None);
    }

    #[test]
    fn audit_settings_are_checked_and_become_the_audit_config() {
        let mut s = WorkspaceSettings::default();
        let update: SettingsUpdate = serde_json::from_str(
            r#"{"audit_disabled_rules": ["keyword_stuffing"], "audit_meta_title_max_chars": 70}"#,
        )
        .unwrap();
        s.apply(update).unwrap();
        let config = s.audit_config();
        assert!(!config.enabled(RuleId::KeywordStuffing));
        assert_eq!(config.meta_title_max_chars, 70);
        let before = s.clone();
        let bogus: SettingsUpdate =
            serde_json::from_str(r#"{"audit_disabled_rules": ["no_such_rule"]}"#).unwrap();
        assert!(
            s.apply(bogus)
                .unwrap_err()
                .to_string()
                .contains("no_such_rule")
        );
        let inverted: SettingsUpdate =
            serde_json::from_str(r#"{"audit_meta_description_min_chars": 200}"#).unwrap();
        assert!(s.apply(inverted).is_err());
        assert_eq!(s, before, "a refused update changes nothing");
    }

    #[test]
    fn unknown_settings_are_refused() {
        assert!(serde_json::from_str::<SettingsUpdate>(r#"{"ai_procesing": false}"#).is_err());
    }
}
