//! The configured AI providers by name, built once at start-up from `[ai]`.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use ai::{LimitConfig, Prompts, Provider, ProviderConfig, ProviderKind, RetryPolicy};

use crate::config::{AiSettings, ProviderSettings};

/// The name of the zero-config offline provider.
pub const RULES: &str = "rules";

#[derive(Clone)]
pub struct Providers {
    by_name: BTreeMap<String, Arc<dyn Provider>>,
    settings: BTreeMap<String, ProviderSettings>,
    prompts: Arc<Prompts>,
    default: String,
}

impl std::fmt::Debug for Providers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Providers")
            .field("names", &self.by_name.keys().collect::<Vec<_>>())
            .field("default", &self.default)
            .finish()
    }
}

fn provider_config(settings: &ProviderSettings, egress: &egress::Policy) -> ProviderConfig {
    let mut config = ProviderConfig::new(settings.kind);
    config.egress = egress.clone();
    config.base_url = settings.base_url.clone();
    config.api_key = settings.api_key.clone();
    config.model = settings.model.clone();
    config.limits = LimitConfig {
        rpm: settings.rpm,
        tpm: settings.tpm,
        max_concurrency: settings.max_concurrency as usize,
        window: Duration::from_secs(60),
        max_retry_after: Duration::from_secs(settings.max_retry_after_secs),
    };
    config.timeout = Duration::from_secs(settings.timeout_secs);
    config.retry = RetryPolicy {
        max_attempts: settings.max_attempts,
        ..RetryPolicy::default()
    };
    config.api = settings.api;
    config.max_output_tokens = settings.max_output_tokens;
    config
}

impl Providers {
    /// Builds every configured provider, each reaching its `base_url` under `egress`; the
    /// error names the provider and what is wrong.
    pub fn from_settings(
        settings: &AiSettings,
        egress: &egress::Policy,
    ) -> Result<Providers, String> {
        let mut prompts = Prompts::builtin();
        if !settings.prompts_dir.trim().is_empty() {
            prompts = prompts
                .with_overrides_from(Path::new(settings.prompts_dir.trim()))
                .map_err(|e| format!("prompts_dir: {e}"))?;
        }
        let prompts = Arc::new(prompts);
        let mut all = settings.providers.clone();
        all.entry(RULES.to_string())
            .or_insert_with(|| ProviderSettings {
                kind: ProviderKind::Rules,
                base_url: None,
                api_key: None,
                model: None,
                rpm: 60,
                tpm: None,
                max_concurrency: 4,
                timeout_secs: 60,
                max_attempts: 5,
                max_retry_after_secs: 60,
                max_output_tokens: 1024,
                api: ai::OpenAiApi::Chat,
                batch: false,
                batch_poll_secs: 60,
            });
        let mut by_name = BTreeMap::new();
        for (name, provider) in &all {
            if provider.rpm == 0 || provider.max_concurrency == 0 || provider.max_attempts == 0 {
                return Err(format!(
                    "providers.{name}: rpm, max_concurrency and max_attempts must be positive"
                ));
            }
            let built = ai::build(name, provider_config(provider, egress), prompts.clone())
                .map_err(|e| format!("providers.{name}: {e}"))?;
            by_name.insert(name.clone(), built);
        }
        if !by_name.contains_key(&settings.default_provider) {
            return Err(format!(
                "default_provider {:?} is not a configured provider",
                settings.default_provider
            ));
        }
        Ok(Providers {
            by_name,
            settings: all,
            prompts,
            default: settings.default_provider.clone(),
        })
    }

    pub fn get(&self, name: &str) -> Option<&Arc<dyn Provider>> {
        self.by_name.get(name)
    }

    pub fn names(&self) -> Vec<&str> {
        self.by_name.keys().map(String::as_str).collect()
    }

    pub fn default_name(&self) -> &str {
        &self.default
    }

    pub fn prompts(&self) -> &Prompts {
        &self.prompts
    }

    /// Products generated at once for `name`: enough to keep its limiter busy.
    pub fn parallelism(&self, name: &str) -> usize {
        self.settings
            .get(name)
            .map_or(4, |s| (s.max_concurrency as usize * 2).max(1))
    }

    /// Whether scheduled runs of `name` use its batch API, and how often a batch is polled.
    pub fn batch(&self, name: &str) -> Option<Duration> {
        let settings = self.settings.get(name)?;
        let provider = self.by_name.get(name)?;
        (settings.batch && provider.supports_batch())
            .then(|| Duration::from_secs(settings.batch_poll_secs.max(1)))
    }
}
