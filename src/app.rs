//! Builds the application from settings: database, keys, state, router, listener.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use sqlx::PgPool;
use tokio::net::TcpListener;

use crate::auth::login_limit::LoginLimiter;
use crate::auth::tokens::JwtKeys;
use crate::config::Settings;
use crate::crypto::Keyring;
use crate::enrich::providers::Providers;
use crate::secrets::KeyMaterial;
use crate::storage::{self, Storage, StorageError};
use crate::{db, http};

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
            metrics: http::metrics::handle(),
            ai,
            egress,
        })))
    }
}

pub struct Application {
    listener: TcpListener,
    state: AppState,
}

impl Application {
    /// Prepares the database and binds the listener; nothing is served until [`Application::run`].
    pub async fn build(mut settings: Settings) -> anyhow::Result<Application> {
        let keys = KeyMaterial::load_or_generate(&settings).context("loading key material")?;
        let pool = db::connect_and_migrate(&settings.database).await?;
        let listener = TcpListener::bind(settings.listen)
            .await
            .with_context(|| format!("binding {}", settings.listen))?;
        // With port 0 the address is known only now; links must name the real one.
        settings.listen = listener.local_addr()?;
        Ok(Application {
            listener,
            state: AppState::new(pool, settings, keys).context("setting up object storage")?,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("a bound listener has an address")
    }

    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Serves until `shutdown` completes, then lets in-flight requests finish.
    pub async fn run(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let router = http::router(self.state.clone());
        axum::serve(
            self.listener,
            router.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(shutdown)
        .await
    }
}

/// Resolves on SIGTERM or Ctrl-C.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!("shutting down");
}

/// One shutdown signal shared by the HTTP server and the workers of a process.
#[derive(Clone)]
pub struct Stopping(tokio::sync::watch::Receiver<bool>);

impl Stopping {
    pub fn on_signal() -> Stopping {
        let (tx, rx) = tokio::sync::watch::channel(false);
        tokio::spawn(async move {
            shutdown_signal().await;
            let _ = tx.send(true);
        });
        Stopping(rx)
    }

    pub fn wait(&self) -> impl Future<Output = ()> + Send + 'static {
        let mut rx = self.0.clone();
        async move {
            let _ = rx.wait_for(|stopping| *stopping).await;
        }
    }
}
