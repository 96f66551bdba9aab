//! The streaming writer's life in a server: it takes events for the lake
//! only while it holds the lake's stream lease (`lake::lease`).
//!
//! At start the server tries to take the lease: the holder opens the
//! stream (replaying the log) and commits; any other server on the same
//! lake serves queries, answers the event doors 503 with `Retry-After`,
//! and tries again every third of the lease's time, taking over once the
//! holder releases it (a clean stop) or stops renewing it (a crash). A
//! holder that cannot renew in time stops logging and committing at once
//! and goes back to trying.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use super::state::AppState;
use crate::lake::lease::{self, Lease};
use crate::pipelines::stream::Stream;

/// The writer's state while the server runs.
pub(super) struct Writer {
    holder: String,
    ttl: Duration,
    lease: Option<Lease>,
    /// The thread committing micro-batches, and how to stop it.
    thread: Option<(std::thread::JoinHandle<()>, tokio::sync::oneshot::Sender<()>)>,
}

/// This server's name in the lease: `--node-id`, else host name and the
/// address it listens on.
pub(super) fn holder_name(state: &AppState, addr: std::net::SocketAddr) -> String {
    state.settings.node_id.clone().unwrap_or_else(|| {
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .ok()
            .or_else(|| std::env::var("HOSTNAME").ok())
            .map(|h| h.trim().to_string())
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| "localhost".into());
        format!("{host}/{addr}")
    })
}

impl Writer {
    /// Try to take the lease and open the stream, once (the server starts
    /// serving either way).
    pub(super) async fn start(state: &AppState, holder: String) -> anyhow::Result<Self> {
        let ttl = Duration::from_secs(state.settings.stream_lease_secs);
        let mut w = Writer { holder, ttl, lease: None, thread: None };
        w.try_take(state, true).await?;
        Ok(w)
    }

    /// Take the lease if free and open the stream under it (`restarted`:
    /// this server is starting, see [`lease::acquire`]).
    async fn try_take(&mut self, state: &AppState, restarted: bool) -> anyhow::Result<()> {
        match lease::acquire(&state.lake, &self.holder, self.ttl, restarted).await? {
            Ok(lease) => {
                let stream = match Stream::open(state.lake.clone()).await {
                    Ok(s) => s,
                    Err(e) => {
                        let _ = lease.release().await;
                        return Err(e.into());
                    }
                };
                stream.hold_until(lease.valid_until_ms());
                tracing::info!(holder = %self.holder, epoch = lease.epoch(), "this server takes the lake's events");
                state.set_stream(Some(stream));
                self.lease = Some(lease);
            }
            Err(held) => {
                let until = chrono::DateTime::from_timestamp_millis(held.expires_at_ms).map(|t| t.to_rfc3339());
                tracing::info!(holder = %held.holder, ?until, "another server takes the lake's events; this one serves queries and waits");
            }
        }
        Ok(())
    }

    /// Run until `stop` changes: commit while holding the lease, renew it,
    /// take it when free; on stop, end the writer and release the lease.
    pub(super) async fn run(mut self, state: Arc<AppState>, mut stop: watch::Receiver<bool>) {
        let every = self.ttl / 3;
        // After a failed renewal the next try comes soon: waiting a whole
        // period would pass the lease's validity.
        let mut next = every;
        loop {
            // A writer thread that ended (its lease lapsed between two
            // renewals, or it panicked) is not left for dead while the
            // lease is renewed: the lease is given up and taken again.
            if self.thread.as_ref().is_some_and(|(t, _)| t.is_finished()) {
                tracing::warn!("the streaming writer stopped; taking the lease again");
                self.stop_writing(&state).await;
            }
            if self.lease.is_some() && self.thread.is_none() {
                self.spawn_thread(&state);
            }
            tokio::select! {
                _ = stop.changed() => break,
                () = tokio::time::sleep(next) => {}
            }
            next = every;
            match self.lease.as_mut() {
                Some(lease) => {
                    let renewed = match lease.renew().await {
                        Ok(ok) => ok,
                        // A store error: still ours until the validity ends.
                        Err(e) => {
                            tracing::warn!(error = %e, "renewing the stream lease failed; retrying");
                            next = Duration::from_secs(1).min(every);
                            lease.is_valid()
                        }
                    };
                    match (renewed, state.stream()) {
                        (true, Some(stream)) => stream.hold_until(lease.valid_until_ms()),
                        _ => {
                            tracing::warn!(holder = %self.holder, "the stream lease was lost: this server stops taking events");
                            self.stop_writing(&state).await;
                        }
                    }
                }
                None => {
                    if let Err(e) = self.try_take(&state, false).await {
                        tracing::warn!(error = %e, "taking the stream lease failed; will try again");
                    }
                }
            }
        }
        self.stop_writing(&state).await;
    }

    /// The thread that commits micro-batches. It drives the runtime's
    /// handle on a thread of its own: the batch pipeline's future is not
    /// `Send` for every lifetime the compiler asks of a spawned task (a
    /// known limit of async closures).
    fn spawn_thread(&mut self, state: &Arc<AppState>) {
        let Some(stream) = state.stream() else { return };
        let settings = &state.settings;
        let maintain = (settings.optimize_every_secs > 0)
            .then(|| (Duration::from_secs(settings.optimize_every_secs), settings.optimize_min_files));
        let pace = Duration::from_millis(settings.stream_pace_ms);
        let for_commits = state.clone();
        let on_commit = move |_version: u64| {
            let state = for_commits.clone();
            tokio::spawn(async move {
                if let Err(e) = state.refresh().await {
                    tracing::warn!(error = %e, "snapshot refresh after a streaming commit failed");
                }
            });
        };
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let handle = tokio::runtime::Handle::current();
        let spawned = std::thread::Builder::new().name("cip-stream".into()).spawn(move || {
            handle.block_on(async move {
                tokio::select! {
                    () = stream.run(on_commit, maintain, pace) => {}
                    _ = stopped => {}
                }
            })
        });
        match spawned {
            Ok(thread) => self.thread = Some((thread, stop)),
            Err(e) => tracing::error!(error = %e, "could not start the streaming writer's thread"),
        }
    }

    /// Stop logging and committing, wait for the writer's thread, and give
    /// the lease back so that another server takes over at once.
    async fn stop_writing(&mut self, state: &AppState) {
        if let Some(stream) = state.stream() {
            stream.hold_until(0);
        }
        state.set_stream(None);
        if let Some((thread, stop)) = self.thread.take() {
            let _ = stop.send(());
            let _ = tokio::task::spawn_blocking(move || thread.join()).await;
        }
        if let Some(lease) = self.lease.take()
            && let Err(e) = lease.release().await
        {
            tracing::warn!(error = %e, "releasing the stream lease failed; it expires by itself");
        }
    }
}
