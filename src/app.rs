//! Builds the application from settings: database, keys, state, router, listener. The top of
//! the tree: it puts the domain's [`AppState`] behind the HTTP edge and serves it.

use std::future::Future;
use std::net::SocketAddr;

use anyhow::Context;
use tokio::net::TcpListener;

use crate::config::Settings;
use crate::secrets::KeyMaterial;
use crate::state::AppState;
use crate::{db, http};

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
