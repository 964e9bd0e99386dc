//! What every part of the daemon shares: the database, settings, keys, storage, providers.
//!
//! Built once per process by [`crate::app`] (and by tests and benchmarks) and handed to the
//! HTTP edge, the workers and the schedulers alike.

use std::sync::Arc;

use sqlx::PgPool;

use crate::auth::login_limit::LoginLimiter;
use crate::auth::tokens::JwtKeys;
use crate::config::Settings;
use crate::crypto::Keyring;
use crate::enrich::providers::Providers;
use crate::secrets::KeyMaterial;
use crate::storage::{self, Storage, StorageError};
use crate::telemetry;

/// Shared by every handler. Cheap to clone.
#[derive(Clone)]
pub struct AppState(Arc<Inner>);

pub struct Inner {
    pub db: PgPool,
    pub settings: Settings,
    pub keys: KeyMaterial,
    /// Seals and opens store credentials.
    pub keyring: Keyring,
    pub jwt: JwtKeys,
    pub login_limiter: LoginLimiter,
    /// Media and export files.
    pub storage: Storage,
    pub metrics: metrics_exporter_prometheus::PrometheusHandle,
    /// The configured AI providers (each with its own limiter).
    pub ai: Providers,
    /// Where outbound requests may go (`[egress] allow`): every client that reaches a store,
    /// a provider or a webhook is built under it.
    pub egress: egress::Policy,
}

impl std::ops::Deref for AppState {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}

impl AppState {
    pub fn new(
        db: PgPool,
        settings: Settings,
        keys: KeyMaterial,
    ) -> Result<AppState, StorageError> {
        // The local store signs its download links with the daemon's signing key.
        let storage = storage::from_settings(
            &settings.storage,
            &settings.data_dir,
            secrecy::ExposeSecret::expose_secret(&keys.jwt_secret),
            &settings.public_base_url(),
        )?;
        let jwt = JwtKeys::new(&keys, settings.auth.previous_jwt_secret_grace_secs);
        let keyring = Keyring::new(&keys.master_key, &keys.previous_master_keys);
        let login_limiter = LoginLimiter::new(
            settings.auth.login_attempts_per_minute_per_account,
            settings.auth.login_attempts_per_minute_per_client,
            settings.auth.registrations_per_minute_per_client,
        );
        let egress = settings.egress.policy();
        let ai = Providers::from_settings(&settings.ai, &egress)
            .expect("the AI settings were checked when they were loaded");
        Ok(AppState(Arc::new(Inner {
            db,
            settings,
            keys,
            keyring,
            jwt,
            login_limiter,
            storage,
            metrics: telemetry::metrics_handle(),
            ai,
            egress,
        })))
    }
}
