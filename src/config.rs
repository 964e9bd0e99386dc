//! Layered configuration: built-in defaults, an optional file, then the environment.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use figment::Figment;
use figment::providers::{Format, Serialized, Toml};
use secrecy::SecretString;
use serde::Deserialize;

/// The defaults, documented key by key, compiled into the binary.
pub const DEFAULT_TOML: &str = include_str!("../config/default.toml");

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("configuration: {0}")]
    Invalid(String),
    #[error("configuration file {path}: {source}")]
    File {
        path: PathBuf,
        source: std::io::Error,
    },
}

impl From<figment::Error> for ConfigError {
    fn from(err: figment::Error) -> Self {
        // figment names the key and the provider that set it ("for key `auth.bcrypt_cost` in env").
        ConfigError::Invalid(err.to_string())
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    pub listen: SocketAddr,
    pub public_url: String,
    pub data_dir: PathBuf,
    pub master_key: SecretString,
    /// Retired master keys (base64), still used to open values sealed before a rotation.
    pub previous_master_keys: Vec<SecretString>,
    pub jwt_secret: SecretString,
    /// Signing keys replaced by a rotation: tokens they signed are accepted for
    /// `auth.previous_jwt_secret_grace_secs` more, then refused.
    pub previous_jwt_secrets: Vec<SecretString>,
    pub log_format: LogFormat,
    pub log_level: String,
    pub database: DatabaseSettings,
    pub http: HttpSettings,
    pub auth: AuthSettings,
    pub jobs: JobSettings,
    pub retention: RetentionSettings,
    pub storage: StorageSettings,
    pub ai: AiSettings,
    pub egress: EgressSettings,
    pub webhooks: WebhookSettings,
    pub email: EmailSettings,
}

/// `[email]`: how notification mail leaves the daemon.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmailSettings {
    /// `smtp://host:587` (STARTTLS) or `smtps://host:465` (TLS from the first byte); empty:
    /// every message is written as an `.eml` file under `<data_dir>/mail`.
    pub smtp_url: String,
    /// SMTP login, if the server wants one.
    pub username: SecretString,
    pub password: SecretString,
    /// The sender: `catalogd <catalogd@shop.example>` or a bare address.
    pub from: String,
    /// A PEM file of CA certificates trusted for the SMTP server besides the public roots (a
    /// relay with a certificate from a private CA); empty: the public roots only.
    pub ca_file: String,
    /// Deadline for one conversation with the SMTP server.
    pub timeout_secs: u64,
    /// Attempts per message before it is given up (temporary failures and outages only: a
    /// recipient the server refuses outright is given up at once).
    pub max_attempts: u32,
    /// The wait after the first failed attempt; it doubles each time, up to 30 minutes.
    pub retry_base_delay_ms: u64,
    /// Messages one process sends at once.
    pub concurrency: u32,
    /// The hour (UTC, 0–23) the daily digest of `review.ready` goes out.
    pub digest_hour_utc: u32,
}

/// `[webhooks]`: how deliveries are sent and retried.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookSettings {
    /// The unit of the retry schedule in milliseconds: retries come after 5, 300, 1800, 7200,
    /// 18000, 36000 and 36000 units (Standard Webhooks' schedule in seconds at 1000).
    pub retry_unit_ms: u64,
    /// An endpoint whose every attempt failed for this long is disabled.
    pub disable_after_secs: u64,
    /// Deadline for one attempt: connecting, sending and reading the answer.
    pub timeout_secs: u64,
    /// Deliveries sent at once by one process.
    pub concurrency: u32,
}

/// `[egress]`: where outbound requests may go besides public addresses.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EgressSettings {
    /// Non-public ranges outbound requests may reach (a self-hosted Magento next door).
    pub allow: Vec<egress::Cidr>,
}

impl EgressSettings {
    /// The policy every outbound client is built with.
    pub fn policy(&self) -> egress::Policy {
        egress::Policy::allowing(self.allow.iter().copied())
    }

    /// Adds loopback, for a daemon whose store and providers are simulators on this machine
    /// (`catalogd demo`, the benchmarks).
    pub fn allow_loopback(&mut self) {
        for range in egress::Policy::loopback_ranges() {
            if !self.allow.contains(&range) {
                self.allow.push(range);
            }
        }
    }
}

/// Where media and export files are kept (see `storage`).
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum StorageKind {
    /// A directory under `data_dir`; the daemon signs and serves the download links.
    Fs,
    /// Any S3 API; downloads are presigned URLs of the S3 server.
    S3,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StorageSettings {
    pub kind: StorageKind,
    pub endpoint: String,
    pub region: String,
    pub bucket: String,
    pub path_style: bool,
    pub access_key_id: String,
    pub secret_access_key: SecretString,
    pub presign_ttl_secs: u64,
    pub multipart_part_size_bytes: usize,
}

/// How long the daemon keeps what the privacy policy limits (`[retention]`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetentionSettings {
    /// Job log lines older than this are deleted.
    pub job_logs_days: u32,
    /// Ended sessions (client address, browser) and audit entries' client addresses.
    pub request_logs_days: u32,
    /// Per-day AI usage rows older than this become monthly totals.
    pub usage_days: u32,
    /// A disconnected store's connection details are forgotten this long after disconnection.
    pub disconnected_store_days: u32,
    /// Days between an account's deletion and the deletion of the workspaces it alone owned
    /// (the sweep after that deletes them; 0: the next sweep).
    pub deleted_workspace_days: u32,
    /// Hours between sweeps.
    pub interval_hours: u32,
    /// `serve` processes run the sweep on schedule; false leaves it to `catalogd retention`
    /// (from cron, say).
    pub sweep_in_serve: bool,
}

/// `[ai]`: the providers enrichment can use, by name.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AiSettings {
    /// The provider an enrichment uses when the request names none.
    pub default_provider: String,
    /// A directory of prompt templates (`<task>.v<N>.txt`) replacing the built-in ones of the
    /// same name; empty: the built-in templates only.
    pub prompts_dir: String,
    /// `[ai.providers.<name>]`; a `rules` provider named `rules` always exists.
    #[serde(default)]
    pub providers: BTreeMap<String, ProviderSettings>,
}

/// `[ai.providers.<name>]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderSettings {
    pub kind: ai::ProviderKind,
    /// API base including the version (`https://api.openai.com/v1`); required for
    /// `openai_compatible`.
    #[serde(default)]
    pub base_url: Option<String>,
    /// Never printed: `Debug` shows it redacted and no API answer carries it.
    #[serde(default)]
    pub api_key: Option<SecretString>,
    #[serde(default)]
    pub model: Option<String>,
    /// Requests per minute.
    #[serde(default = "defaults::rpm")]
    pub rpm: u32,
    /// Tokens (input + output) per minute; none: not limited.
    #[serde(default)]
    pub tpm: Option<u32>,
    #[serde(default = "defaults::max_concurrency")]
    pub max_concurrency: u32,
    #[serde(default = "defaults::timeout_secs")]
    pub timeout_secs: u64,
    /// Attempts per request (429s, 5xx and timeouts are retried).
    #[serde(default = "defaults::max_attempts")]
    pub max_attempts: u32,
    /// The longest wait a provider's `retry-after` can impose.
    #[serde(default = "defaults::max_retry_after_secs")]
    pub max_retry_after_secs: u64,
    #[serde(default = "defaults::max_output_tokens")]
    pub max_output_tokens: u32,
    /// `chat` (Chat Completions) or `responses`, for `openai`.
    #[serde(default)]
    pub api: ai::OpenAiApi,
    /// Scheduled enrichments use the provider's batch API.
    #[serde(default)]
    pub batch: bool,
    /// How often a running batch is polled.
    #[serde(default = "defaults::batch_poll_secs")]
    pub batch_poll_secs: u64,
}

mod defaults {
    pub fn rpm() -> u32 {
        60
    }
    pub fn max_concurrency() -> u32 {
        4
    }
    pub fn timeout_secs() -> u64 {
        60
    }
    pub fn max_attempts() -> u32 {
        5
    }
    pub fn max_retry_after_secs() -> u64 {
        60
    }
    pub fn max_output_tokens() -> u32 {
        1024
    }
    pub fn batch_poll_secs() -> u64 {
        60
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobSettings {
    pub workers_in_serve: bool,
    pub grace_period_secs: u64,
    pub heartbeat_secs: u64,
    pub missed_heartbeats: u32,
    pub max_attempts: u32,
    pub retry_base_delay_ms: u64,
    pub max_log_lines: u32,
    pub scheduler_tick_secs: u64,
    pub concurrency: JobConcurrency,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobConcurrency {
    pub sync: u32,
    pub audit: u32,
    pub push: u32,
    pub enrich: u32,
    pub media: u32,
    pub export: u32,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseSettings {
    /// May carry a password, hence secret.
    pub url: SecretString,
    pub max_connections: u32,
    pub acquire_timeout_secs: u64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpSettings {
    pub body_limit_bytes: usize,
    pub request_timeout_secs: u64,
    pub trust_forwarded_for: bool,
    /// Proxies the operator runs: skipped when reading X-Forwarded-For from the right.
    pub trusted_proxies: Vec<egress::Cidr>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthSettings {
    pub bcrypt_cost: u32,
    pub access_token_ttl_secs: u64,
    pub refresh_token_ttl_secs: u64,
    pub login_attempts_per_minute_per_account: u32,
    pub login_attempts_per_minute_per_client: u32,
    pub totp_failures_per_hour_per_account: u32,
    pub registrations_per_minute_per_client: u32,
    pub previous_jwt_secret_grace_secs: u64,
}

impl Settings {
    /// Loads defaults → `file` → `DATABASE_URL` → `CATALOGD_*`, and checks the result.
    pub fn load(file: Option<&Path>) -> Result<Settings, ConfigError> {
        Self::load_from(file, std::env::vars())
    }

    /// Like [`Settings::load`] with an explicit environment, so tests need not touch the process's.
    pub fn load_from(
        file: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Settings, ConfigError> {
        let mut figment = Figment::from(Toml::string(DEFAULT_TOML));
        if let Some(path) = file {
            let text = std::fs::read_to_string(path).map_err(|source| ConfigError::File {
                path: path.to_owned(),
                source,
            })?;
            figment = figment.merge(Toml::string(&text));
        }
        let env: Vec<(String, String)> = env.into_iter().collect();
        if let Some((_, url)) = env.iter().find(|(k, _)| k == "DATABASE_URL") {
            figment = figment.merge(("database.url", url.clone()));
        }
        let vars: Vec<(String, String)> = env
            .into_iter()
            .filter_map(|(k, v)| {
                let key = k.strip_prefix("CATALOGD_")?;
                (!NOT_SETTINGS.contains(&key)).then(|| (key.to_string(), v))
            })
            .collect();
        for (key, value) in vars {
            let path = key.to_ascii_lowercase().replace("__", ".");
            let value = if STRING_KEYS.contains(&path.as_str())
                || STRING_KEY_ENDINGS.iter().any(|e| path.ends_with(e))
            {
                figment::value::Value::from(value)
            } else if LIST_KEYS.contains(&path.as_str()) {
                figment::value::Value::from(list(&key, &value)?)
            } else {
                coerce(&value)
            };
            figment = figment.merge(Serialized::default(&path, value));
        }
        let settings: Settings = figment.extract()?;
        settings.validate()?;
        Ok(settings)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        crate::retention::validate(&self.retention).map_err(ConfigError::Invalid)?;
        if !(4..=31).contains(&self.auth.bcrypt_cost) {
            return Err(ConfigError::Invalid(
                "auth.bcrypt_cost must be between 4 and 31".into(),
            ));
        }
        if self.auth.access_token_ttl_secs == 0 || self.auth.refresh_token_ttl_secs == 0 {
            return Err(ConfigError::Invalid(
                "auth.access_token_ttl_secs and auth.refresh_token_ttl_secs must be positive"
                    .into(),
            ));
        }
        if self.auth.login_attempts_per_minute_per_account == 0
            || self.auth.login_attempts_per_minute_per_client == 0
            || self.auth.totp_failures_per_hour_per_account == 0
            || self.auth.registrations_per_minute_per_client == 0
        {
            return Err(ConfigError::Invalid(
                "auth.login_attempts_per_minute_*, auth.totp_failures_per_hour_per_account and auth.registrations_per_minute_per_client must be positive".into(),
            ));
        }
        if self.webhooks.timeout_secs == 0 || self.webhooks.concurrency == 0 {
            return Err(ConfigError::Invalid(
                "webhooks.timeout_secs and webhooks.concurrency must be positive".into(),
            ));
        }
        if self.jobs.heartbeat_secs == 0
            || self.jobs.missed_heartbeats == 0
            || self.jobs.max_attempts == 0
        {
            return Err(ConfigError::Invalid(
                "jobs.heartbeat_secs, jobs.missed_heartbeats and jobs.max_attempts must be positive".into(),
            ));
        }
        if self.jobs.concurrency.sync == 0
            || self.jobs.concurrency.audit == 0
            || self.jobs.concurrency.push == 0
            || self.jobs.concurrency.enrich == 0
            || self.jobs.concurrency.media == 0
            || self.jobs.concurrency.export == 0
        {
            return Err(ConfigError::Invalid(
                "jobs.concurrency.* must be positive".into(),
            ));
        }
        if self.http.body_limit_bytes == 0 {
            return Err(ConfigError::Invalid(
                "http.body_limit_bytes must be positive".into(),
            ));
        }
        self.validate_storage()?;
        crate::notify::transport::validate(&self.email).map_err(ConfigError::Invalid)?;
        crate::enrich::providers::Providers::from_settings(&self.ai, &self.egress.policy())
            .map_err(|e| ConfigError::Invalid(format!("ai: {e}")))?;
        if !self.public_url.is_empty() {
            url::Url::parse(&self.public_url)
                .map_err(|e| ConfigError::Invalid(format!("public_url is not a URL ({e})")))?;
        }
        Ok(())
    }

    fn validate_storage(&self) -> Result<(), ConfigError> {
        let storage = &self.storage;
        if !(1..=MAX_PRESIGN_TTL_SECS).contains(&storage.presign_ttl_secs) {
            return Err(ConfigError::Invalid(format!(
                "storage.presign_ttl_secs must be between 1 and {MAX_PRESIGN_TTL_SECS} (7 days)"
            )));
        }
        if !(MIN_PART_SIZE..=MAX_PART_SIZE).contains(&storage.multipart_part_size_bytes) {
            return Err(ConfigError::Invalid(format!(
                "storage.multipart_part_size_bytes must be between {MIN_PART_SIZE} (5 MiB) and {MAX_PART_SIZE} (5 GiB)"
            )));
        }
        if storage.kind == StorageKind::S3 {
            if storage.bucket.is_empty() {
                return Err(ConfigError::Invalid(
                    "storage.bucket is required with storage.kind = \"s3\"".into(),
                ));
            }
            if storage.region.is_empty() {
                return Err(ConfigError::Invalid(
                    "storage.region is required with storage.kind = \"s3\"".into(),
                ));
            }
            if storage.access_key_id.is_empty()
                || secrecy::ExposeSecret::expose_secret(&storage.secret_access_key).is_empty()
            {
                return Err(ConfigError::Invalid(
                    "storage.access_key_id and storage.secret_access_key are required with storage.kind = \"s3\"".into(),
                ));
            }
            if !storage.endpoint.is_empty() {
                url::Url::parse(&storage.endpoint).map_err(|e| {
                    ConfigError::Invalid(format!("storage.endpoint is not a URL ({e})"))
                })?;
            }
        }
        Ok(())
    }

    /// The base URL others use to reach this daemon, without a trailing slash.
    pub fn public_base_url(&self) -> String {
        if self.public_url.is_empty() {
            format!("http://{}", self.listen)
        } else {
            self.public_url.trim_end_matches('/').to_string()
        }
    }
}

/// `CATALOGD_*` variables that are command inputs, not settings: the config file's path
/// and the password for `catalogd user create`.
const NOT_SETTINGS: &[&str] = &["CONFIG", "PASSWORD"];

/// Keys whose values stay strings even when they look like a number.
const STRING_KEYS: &[&str] = &[
    "master_key",
    "jwt_secret",
    "public_url",
    "database.url",
    "log_level",
    "storage.endpoint",
    "storage.region",
    "storage.bucket",
    "storage.access_key_id",
    "storage.secret_access_key",
    "email.smtp_url",
    "email.username",
    "email.password",
    "email.from",
    "email.ca_file",
];

/// S3 refuses presigned URLs valid for longer than 7 days; the local store follows the same rule.
const MAX_PRESIGN_TTL_SECS: u64 = 7 * 24 * 3600;
/// S3's bounds on a multipart part (the last part may be smaller).
const MIN_PART_SIZE: usize = crate::storage::MIN_PART_SIZE;
const MAX_PART_SIZE: usize = 5 * 1024 * 1024 * 1024;
/// Keys (under `ai.providers.<name>`) that stay strings, by their last part.
const STRING_KEY_ENDINGS: &[&str] = &[
    ".api_key",
    ".model",
    ".base_url",
    ".default_provider",
    ".prompts_dir",
];

/// Keys holding lists, given in the environment as a JSON array of strings
/// (`'["10.0.0.0/8"]'`) or as comma-separated values.
const LIST_KEYS: &[&str] = &[
    "previous_master_keys",
    "previous_jwt_secrets",
    "egress.allow",
    "http.trusted_proxies",
];

fn list(key: &str, value: &str) -> Result<Vec<String>, ConfigError> {
    if value.trim_start().starts_with('[') {
        return serde_json::from_str(value).map_err(|e| {
            ConfigError::Invalid(format!(
                "CATALOGD_{key} is not a JSON array of strings ({e})"
            ))
        });
    }
    Ok(value
        .split(',')
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(String::from)
        .collect())
}

/// Environment values are strings; numbers and booleans are given their type so
/// `CATALOGD_AUTH__BCRYPT_COST=4` sets an integer.
fn coerce(value: &str) -> figment::value::Value {
    use figment::value::Value;
    if let Ok(b) = value.parse::<bool>() {
        return Value::from(b);
    }
    if let Ok(n) = value.parse::<i64>() {
        return Value::from(n);
    }
    Value::from(value.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn defaults_load_without_any_input() {
        let s = Settings::load_from(None, env(&[])).unwrap();
        assert_eq!(s.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(s.auth.access_token_ttl_secs, 900);
        assert_eq!(s.auth.bcrypt_cost, 12);
        assert_eq!(s.public_base_url(), "http://127.0.0.1:8080");
    }

    #[test]
    fn environment_overrides_file_and_nested_keys_use_double_underscores() {
        let dir = std::env::temp_dir().join(format!("catalogd-config-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("c.toml");
        std::fs::write(
            &file,
            "listen = \"127.0.0.1:9000\"\n[auth]\nbcrypt_cost = 10\naccess_token_ttl_secs = 60\n",
        )
        .unwrap();
        let s = Settings::load_from(
            Some(&file),
            env(&[
                ("CATALOGD_AUTH__BCRYPT_COST", "5"),
                ("DATABASE_URL", "postgres://db.internal/shop"),
                ("CATALOGD_PUBLIC_URL", "https://catalog.example.com/"),
                ("CATALOGD_LOG_FORMAT", "json"),
                ("CATALOGD_CONFIG", "ignored"),
            ]),
        )
        .unwrap();
        assert_eq!(s.listen.port(), 9000);
        assert_eq!(s.auth.bcrypt_cost, 5);
        assert_eq!(s.auth.access_token_ttl_secs, 60);
        assert_eq!(
            secrecy::ExposeSecret::expose_secret(&s.database.url),
            "postgres://db.internal/shop"
        );
        assert_eq!(s.public_base_url(), "https://catalog.example.com");
        assert_eq!(s.log_format, LogFormat::Json);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn unknown_and_invalid_keys_are_named() {
        let err =
            Settings::load_from(None, env(&[("CATALOGD_AUTH__BCRYPT_COSTS", "5")])).unwrap_err();
        assert!(err.to_string().contains("bcrypt_costs"), "{err}");
        let err =
            Settings::load_from(None, env(&[("CATALOGD_AUTH__BCRYPT_COST", "99")])).unwrap_err();
        assert!(err.to_string().contains("auth.bcrypt_cost"), "{err}");
        let err = Settings::load_from(None, env(&[("CATALOGD_LISTEN", "nowhere")])).unwrap_err();
        assert!(err.to_string().contains("listen"), "{err}");
    }

    #[test]
    fn storage_defaults_to_the_local_directory_and_s3_is_set_from_the_environment() {
        let s = Settings::load_from(None, env(&[])).unwrap();
        assert_eq!(s.storage.kind, StorageKind::Fs);
        assert_eq!(s.storage.presign_ttl_secs, 900);
        let s = Settings::load_from(
            None,
            env(&[
                ("CATALOGD_STORAGE__KIND", "s3"),
                ("CATALOGD_STORAGE__ENDPOINT", "http://127.0.0.1:9000"),
                ("CATALOGD_STORAGE__BUCKET", "2024"),
                ("CATALOGD_STORAGE__PATH_STYLE", "true"),
                ("CATALOGD_STORAGE__ACCESS_KEY_ID", "12345"),
                ("CATALOGD_STORAGE__SECRET_ACCESS_KEY", "s3cr3t-value"),
                ("CATALOGD_STORAGE__PRESIGN_TTL_SECS", "60"),
            ]),
        )
        .unwrap();
        assert_eq!(s.storage.kind, StorageKind::S3);
        assert_eq!(s.storage.bucket, "2024");
        assert_eq!(s.storage.access_key_id, "12345");
        assert!(s.storage.path_style);
        assert_eq!(s.storage.presign_ttl_secs, 60);
        assert!(!format!("{s:?}").contains("s3cr3t-value"));
    }

    #[test]
    fn storage_settings_are_checked() {
        for (pairs, named) in [
            (vec![("CATALOGD_STORAGE__KIND", "s3")], "storage.bucket"),
            (vec![("CATALOGD_STORAGE__KIND", "ftp")], "storage.kind"),
            (
                vec![("CATALOGD_STORAGE__PRESIGN_TTL_SECS", "0")],
                "storage.presign_ttl_secs",
            ),
            (
                vec![("CATALOGD_STORAGE__MULTIPART_PART_SIZE_BYTES", "1024")],
                "storage.multipart_part_size_bytes",
            ),
            (
                vec![
                    ("CATALOGD_STORAGE__KIND", "s3"),
                    ("CATALOGD_STORAGE__BUCKET", "b"),
                ],
                "storage.secret_access_key",
            ),
            (vec![("CATALOGD_STORAGE__BUKET", "b")], "buket"),
        ] {
            let err = Settings::load_from(None, env(&pairs)).unwrap_err();
            assert!(err.to_string().contains(named), "{named}: {err}");
        }
    }

    #[test]
    fn ai_providers_come_from_the_environment_and_keys_stay_secret() {
        let s = Settings::load_from(
            None,
            env(&[
                ("CATALOGD_AI__DEFAULT_PROVIDER", "openai"),
                ("CATALOGD_AI__PROVIDERS__OPENAI__KIND", "openai"),
                ("CATALOGD_AI__PROVIDERS__OPENAI__MODEL", "gpt-4o-mini"),
                ("CATALOGD_AI__PROVIDERS__OPENAI__API_KEY", "123456789"),
                ("CATALOGD_AI__PROVIDERS__OPENAI__RPM", "500"),
            ]),
        )
        .unwrap();
        let openai = &s.ai.providers["openai"];
        assert_eq!(openai.rpm, 500);
        assert_eq!(openai.max_concurrency, 4);
        assert_eq!(
            secrecy::ExposeSecret::expose_secret(openai.api_key.as_ref().unwrap()),
            "123456789"
        );
        assert!(!format!("{s:?}").contains("123456789"));
        assert_eq!(s.ai.default_provider, "openai");

        let err = Settings::load_from(None, env(&[("CATALOGD_AI__DEFAULT_PROVIDER", "nope")]))
            .unwrap_err();
        assert!(err.to_string().contains("default_provider"), "{err}");
        let err = Settings::load_from(
            None,
            env(&[("CATALOGD_AI__PROVIDERS__LOCAL__KIND", "openai_compatible")]),
        )
        .unwrap_err();
        assert!(err.to_string().contains("local"), "{err}");
    }

    #[test]
    fn egress_allows_nothing_but_public_addresses_by_default() {
        let s = Settings::load_from(None, env(&[])).unwrap();
        assert!(s.egress.allow.is_empty());
        let policy = s.egress.policy();
        assert!(policy.check("127.0.0.1".parse().unwrap()).is_err());
        assert!(policy.check("10.1.2.3".parse().unwrap()).is_err());
        assert!(policy.check("169.254.169.254".parse().unwrap()).is_err());
    }

    #[test]
    fn egress_ranges_come_from_the_file_or_the_environment() {
        let s = Settings::load_from(
            None,
            env(&[("CATALOGD_EGRESS__ALLOW", r#"["127.0.0.0/8"]"#)]),
        )
        .unwrap();
        assert!(
            s.egress
                .policy()
                .check("127.0.0.2".parse().unwrap())
                .is_ok()
        );
        assert!(
            s.egress
                .policy()
                .check("10.0.0.1".parse().unwrap())
                .is_err()
        );
        let s = Settings::load_from(
            None,
            env(&[("CATALOGD_EGRESS__ALLOW", "10.0.0.0/8, fd00::/8")]),
        )
        .unwrap();
        assert_eq!(s.egress.allow.len(), 2);
        assert!(s.egress.policy().check("fd00::5".parse().unwrap()).is_ok());

        let dir = std::env::temp_dir().join(format!("catalogd-config-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("c.toml");
        std::fs::write(
            &file,
            "[egress]\nallow = [\"10.0.0.0/8\", \"127.0.0.1/32\"]\n",
        )
        .unwrap();
        let s = Settings::load_from(Some(&file), env(&[])).unwrap();
        let policy = s.egress.policy();
        assert!(policy.check("10.9.8.7".parse().unwrap()).is_ok());
        assert!(policy.check("127.0.0.1".parse().unwrap()).is_ok());
        assert!(policy.check("127.0.0.2".parse().unwrap()).is_err());
        std::fs::remove_dir_all(dir).unwrap();

        for bad in [r#"["10.0.0.0/33"]"#, r#"["nowhere"]"#, r#"[1, 2"#] {
            let err =
                Settings::load_from(None, env(&[("CATALOGD_EGRESS__ALLOW", bad)])).unwrap_err();
            assert!(
                err.to_string().to_lowercase().contains("egress"),
                "{bad}: {err}"
            );
        }
    }

    #[test]
    fn numeric_looking_secrets_stay_strings() {
        let s = Settings::load_from(
            None,
            env(&[("CATALOGD_JWT_SECRET", "12345678901234567890123456789012345")]),
        )
        .unwrap();
        assert_eq!(
            secrecy::ExposeSecret::expose_secret(&s.jwt_secret).len(),
            35
        );
    }
}
