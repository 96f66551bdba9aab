//! `cip serve`: the analytics API over the lake.

pub mod commissions;
pub mod engine;
pub mod feeds;
pub mod graphiql;
pub mod guard;
pub mod hot;
pub mod ingest;
pub mod limits;
mod memory;
pub mod reports;
pub mod request;
pub mod routes;
pub mod state;
pub mod stats;
pub mod summary;
mod writer;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::routing::get;
use tokio::net::TcpListener;

pub use state::AppState;

use crate::config::ServeSettings;

pub struct Application {
    listener: TcpListener,
    state: Arc<AppState>,
    writer: Option<writer::Writer>,
}

impl Application {
    /// Bind the address and load the newest snapshot (if any).
    pub async fn build(settings: ServeSettings) -> anyhow::Result<Self> {
        // The AMS mappings are embedded: a defect in one is refused at start.
        crate::pipelines::ams::adapters().map_err(|e| anyhow::anyhow!("{e}"))?;
        let state = Arc::new(AppState::new(settings)?);
        if let Err(e) = state.refresh().await {
            tracing::warn!(error = %e, "no snapshot loaded at start; will keep polling");
        }
        let listener = TcpListener::bind(&state.settings.addr).await?;
        // A pinned version is read-only (audits): no streaming writer.
        let writer = if !state.settings.pinned() {
            let addr = listener.local_addr()?;
            Some(writer::Writer::start(&state, writer::holder_name(&state, addr)).await?)
        } else {
            None
        };
        Ok(Application { listener, state, writer })
    }

    pub fn port(&self) -> u16 {
        self.local_addr().port()
    }

    pub fn local_addr(&self) -> std::net::SocketAddr {
        self.listener.local_addr().expect("bound listener has an address")
    }

    pub fn state(&self) -> Arc<AppState> {
        self.state.clone()
    }

    pub fn router(state: Arc<AppState>) -> Router {
        Router::new()
            .route("/graphql", get(graphiql::page).post(routes::graphql))
            .route("/graphql/assets/{file}", get(graphiql::asset))
            .route("/graphql/assets/licenses/{file}", get(graphiql::license))
            .route("/graphql/ws", get(routes::graphql_ws))
            .route("/health", get(routes::health))
            .route("/ready", get(routes::ready))
            .route("/metrics", get(routes::metrics))
            .route("/reports/{file}", get(reports::download))
            .route("/feeds/renewals.csv", get(feeds::renewals_csv))
            .route("/commissions/discrepancies.csv", get(commissions::discrepancies))
            .route("/commissions/statements", axum::routing::post(commissions::upload))
            .route("/ingest/events", axum::routing::post(ingest::events))
            .route("/ingest/ams/{source}", axum::routing::post(ingest::ams))
            .route("/ingest/summary", axum::routing::post(summary::import))
            .route("/export/commissions", get(summary::export))
            .with_state(state)
    }

    /// Serve until `shutdown` resolves; in-flight requests are finished.
    pub async fn run_until_stopped(self, shutdown: impl Future<Output = ()> + Send + 'static) -> std::io::Result<()> {
        let state = self.state.clone();
        let poll = Duration::from_millis(state.settings.poll_ms);
        let poller = tokio::spawn(async move {
            loop {
                tokio::time::sleep(poll).await;
                if let Err(e) = state.refresh().await {
                    tracing::warn!(error = %e, "snapshot refresh failed");
                }
            }
        });
        // The streaming writer, while this server holds the lake's lease.
        let (stop_writer, stopped) = tokio::sync::watch::channel(false);
        let writer = self.writer.map(|w| tokio::spawn(w.run(self.state.clone(), stopped)));
        let app = Self::router(self.state.clone());
        let result = axum::serve(self.listener, app).with_graceful_shutdown(shutdown).await;
        poller.abort();
        let _ = stop_writer.send(true);
        if let Some(w) = writer {
            // It releases the lease: another server takes over at once.
            let _ = tokio::time::timeout(Duration::from_secs(10), w).await;
        }
        result
    }
}

/// Resolves on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        if let Ok(mut s) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            s.recv().await;
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
    tracing::info!("shutting down");
}
