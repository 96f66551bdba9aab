//! One typed configuration for the server: command-line flags with `CIP_*`
//! environment overrides, validated once at start-up.

use std::time::Duration;

use crate::graphql::ShapeLimits;
use crate::query::view::SessionLimits;
use crate::serve::request::RequestLimits;

/// A secret from the configuration (a JWT signing secret): `Debug` and
/// `Display` never print it; [`Secret::expose`] is the one way to read it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret([redacted])")
    }
}

impl std::str::FromStr for Secret {
    type Err = std::convert::Infallible;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Secret(s.to_string()))
    }
}

#[derive(clap::Args, Debug, Clone)]
pub struct ServeSettings {
    /// The lake to serve: a path or object-store URL.
    #[arg(long = "lake", env = "CIP_LAKE", default_value = "data/lake")]
    pub lake: String,
    /// Address to listen on; port 0 picks a free port.
    #[arg(long, env = "CIP_ADDR", default_value = "127.0.0.1:8080")]
    pub addr: String,
    /// HS256 secret for bearer tokens.
    #[arg(long, env = "CIP_JWT_SECRET", hide_env_values = true)]
    pub jwt_secret: Option<Secret>,
    /// PEM file with the RS256 public key for bearer tokens.
    #[arg(long, env = "CIP_JWT_PUBLIC_KEY")]
    pub jwt_public_key: Option<std::path::PathBuf>,
    /// How often to look for a newer snapshot (milliseconds).
    #[arg(long, env = "CIP_POLL_MS", default_value_t = 1000)]
    pub poll_ms: u64,
    /// Per-query timeout (milliseconds).
    #[arg(long, env = "CIP_QUERY_TIMEOUT_MS", default_value_t = 10_000)]
    pub query_timeout_ms: u64,
    /// Queries executing at once; more wait for a slot (up to the timeout).
    #[arg(long, env = "CIP_MAX_CONCURRENT_QUERIES", default_value_t = 8)]
    pub max_concurrent_queries: usize,
    /// Memory one query may use (MiB).
    #[arg(long, env = "CIP_QUERY_MEMORY_MB", default_value_t = 512)]
    pub query_memory_mb: usize,
    /// Sustained requests per second per credential.
    #[arg(long, env = "CIP_RATE_PER_SEC", default_value_t = 50.0)]
    pub rate_per_sec: f64,
    /// Burst size per credential.
    #[arg(long, env = "CIP_RATE_BURST", default_value_t = 100.0)]
    pub rate_burst: f64,
    #[arg(long, env = "CIP_MAX_DEPTH", default_value_t = 12)]
    pub max_depth: usize,
    #[arg(long, env = "CIP_MAX_COMPLEXITY", default_value_t = 2000)]
    pub max_complexity: usize,
    /// Largest request body (bytes); larger ones get 413 before being read.
    /// Also the largest WebSocket message.
    #[arg(long, env = "CIP_MAX_BODY_BYTES", default_value_t = 1 << 20)]
    pub max_body_bytes: usize,
    /// Longest GraphQL query text (bytes).
    #[arg(long, env = "CIP_MAX_QUERY_BYTES", default_value_t = 64 << 10)]
    pub max_query_bytes: usize,
    /// Most lexical tokens in a GraphQL query.
    #[arg(long, env = "CIP_MAX_QUERY_TOKENS", default_value_t = 10_000)]
    pub max_query_tokens: usize,
    /// Serve this version of the lake and no other (audits); by default the
    /// newest, following each new publish.
    #[arg(long, env = "CIP_AS_OF_VERSION", conflicts_with = "as_of")]
    pub as_of_version: Option<u64>,
    /// Serve the version that was the newest at this time (RFC 3339, e.g.
    /// 2026-01-31T23:59:59Z).
    #[arg(long, env = "CIP_AS_OF")]
    pub as_of: Option<String>,
    /// Result cache: most entries.
    #[arg(long, env = "CIP_CACHE_ENTRIES", default_value_t = 10_000)]
    pub cache_entries: usize,
    /// Result cache: most bytes held (MiB).
    #[arg(long, env = "CIP_CACHE_MB", default_value_t = 64)]
    pub cache_mb: usize,
    /// Largest `POST /ingest/events` body (bytes): an NDJSON batch.
    #[arg(long, env = "CIP_MAX_INGEST_BYTES", default_value_t = 32 << 20)]
    pub max_ingest_bytes: usize,
    /// Event-ingest requests per second per credential (its own bucket:
    /// agency systems send one event per request).
    #[arg(long, env = "CIP_INGEST_RATE_PER_SEC", default_value_t = 20_000.0)]
    pub ingest_rate_per_sec: f64,
    /// Logged requests not yet committed to the lake beyond which ingest
    /// answers 503 with `Retry-After` (the queue is bounded, never open-ended).
    #[arg(long, env = "CIP_MAX_STREAM_BACKLOG", default_value_t = 10_000)]
    pub max_stream_backlog: u64,
    /// Bytes of logged events not yet committed beyond which ingest answers
    /// 503 with `Retry-After`: the writer takes 8 MiB a micro-batch, so this
    /// bounds how many batches a new fact waits behind (its visibility).
    #[arg(long, env = "CIP_MAX_STREAM_BACKLOG_BYTES", default_value_t = 24 << 20)]
    pub max_stream_backlog_bytes: u64,
    /// Seconds at least between compactions by the streaming writer (0:
    /// never). A compaction runs once `--optimize-min-files` versions were
    /// published since the last one, and merges the small files (under
    /// 16 MiB; one per micro-batch that touched a partition) of every
    /// partition with at least that many, into files of up to 64 MiB;
    /// large files stay as they are. (Checkpoints are written every 10
    /// commits of a table anyway.)
    #[arg(long, env = "CIP_OPTIMIZE_EVERY_SECS", default_value_t = 30)]
    pub optimize_every_secs: u64,
    #[arg(long, env = "CIP_OPTIMIZE_MIN_FILES", default_value_t = 32)]
    pub optimize_min_files: usize,
    /// Milliseconds at least between the starts of two streaming
    /// micro-batches. An idle writer commits the first event at once; under
    /// load, commits that follow each other back to back each pay the fixed
    /// cost of a version (files, log entries, rollups, a new serving view),
    /// and waiting this long makes each batch larger and the cost per event
    /// smaller, while a fact still becomes visible within a second. A batch
    /// starts early once 1 MiB of events waits (0: no pace).
    #[arg(long, env = "CIP_STREAM_PACE_MS", default_value_t = 250)]
    pub stream_pace_ms: u64,
    /// Seconds a server's lease on the lake's event stream lasts unless
    /// renewed (every third of it). One server at a time takes events for
    /// a lake; others serve queries and take over once the holder stops
    /// (at once when it stops cleanly, else after this long).
    #[arg(long, env = "CIP_STREAM_LEASE_SECS", default_value_t = 30)]
    pub stream_lease_secs: u64,
    /// This server's name in the stream lease (default: host name and
    /// listen address). A server restarted under the same name takes its
    /// lease back at once; give each server of a lake its own.
    #[arg(long, env = "CIP_NODE_ID")]
    pub node_id: Option<String>,
}

/// `ServeSettings` as `cip serve` parses them, for callers without a command line.
#[derive(clap::Parser)]
struct ServeCommand {
    #[command(flatten)]
    settings: ServeSettings,
}

impl ServeSettings {
    /// The production settings of `cip serve` (its defaults and `CIP_*`
    /// variables) for `lake` and `addr`: what the demo serves with.
    pub fn production(lake: &str, addr: &str) -> anyhow::Result<Self> {
        use clap::Parser;
        Ok(ServeCommand::try_parse_from(["cip-serve", "--lake", lake, "--addr", addr])?.settings)
    }

    /// Defaults for tests: a given lake, a random port, a known secret.
    pub fn test_config(lake: &str) -> Self {
        ServeSettings {
            lake: lake.to_string(),
            addr: "127.0.0.1:0".into(),
            jwt_secret: Some(Secret::new("test-secret")),
            jwt_public_key: None,
            poll_ms: 100,
            query_timeout_ms: 10_000,
            max_concurrent_queries: 8,
            query_memory_mb: 256,
            rate_per_sec: 1000.0,
            rate_burst: 1000.0,
            max_depth: 12,
            max_complexity: 2000,
            max_body_bytes: 1 << 20,
            max_query_bytes: 64 << 10,
            max_query_tokens: 10_000,
            cache_entries: 10_000,
            cache_mb: 64,
            as_of_version: None,
            as_of: None,
            max_ingest_bytes: 1 << 20,
            ingest_rate_per_sec: 1000.0,
            max_stream_backlog: 10_000,
            max_stream_backlog_bytes: 24 << 20,
            optimize_every_secs: 30,
            optimize_min_files: 32,
            stream_pace_ms: 250,
            stream_lease_secs: 30,
            node_id: None,
        }
    }

    pub fn validate(&self) -> anyhow::Result<()> {
        anyhow::ensure!(self.max_concurrent_queries > 0, "max_concurrent_queries must be at least 1");
        anyhow::ensure!(
            (0.001..=1e6).contains(&self.rate_per_sec) && (1.0..=1e6).contains(&self.rate_burst),
            "rate limits: 0.001 to 1e6 requests/s, a burst of 1 to 1e6"
        );
        anyhow::ensure!(self.cache_entries >= 1, "the result cache needs at least one entry");
        anyhow::ensure!(self.max_body_bytes >= 1024, "max body bytes: at least 1024");
        anyhow::ensure!(self.query_timeout_ms > 0, "query timeout must be positive");
        anyhow::ensure!(self.stream_lease_secs >= 3, "the stream lease: at least 3 seconds");
        self.as_of_time()?;
        Ok(())
    }

    /// Serving one version for good (`--as-of-version` or `--as-of`): read-only.
    pub fn pinned(&self) -> bool {
        self.as_of_version.is_some() || self.as_of.is_some()
    }

    /// `--as-of` parsed.
    pub fn as_of_time(&self) -> anyhow::Result<Option<chrono::DateTime<chrono::Utc>>> {
        self.as_of
            .as_deref()
            .map(|t| {
                chrono::DateTime::parse_from_rfc3339(t)
                    .map(|d| d.to_utc())
                    .map_err(|e| anyhow::anyhow!("--as-of {t}: not an RFC 3339 time ({e})"))
            })
            .transpose()
    }

    pub fn query_timeout(&self) -> Duration {
        Duration::from_millis(self.query_timeout_ms)
    }

    pub fn shape_limits(&self) -> ShapeLimits {
        ShapeLimits { max_depth: self.max_depth, max_complexity: self.max_complexity }
    }

    /// Worker threads of the query engine's runtime: one per core.
    pub fn engine_threads(&self) -> usize {
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2)
    }

    pub fn request_limits(&self) -> RequestLimits {
        RequestLimits {
            max_body_bytes: self.max_body_bytes,
            max_query_bytes: self.max_query_bytes,
            max_query_tokens: self.max_query_tokens,
        }
    }

    pub fn session_limits(&self) -> SessionLimits {
        SessionLimits { memory_bytes: self.query_memory_mb << 20, ..Default::default() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_never_print() {
        let s =
            ServeSettings { jwt_secret: Some(Secret::new("hunter2-very-secret")), ..ServeSettings::test_config("x") };
        let shown = format!("{s:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("Secret([redacted])"), "{shown}");
    }

    #[test]
    fn production_settings_are_the_serve_defaults() {
        // Only meaningful without CIP_* overrides in the environment.
        if std::env::vars().any(|(k, _)| k.starts_with("CIP_")) {
            return;
        }
        let s = ServeSettings::production("data/lake", "127.0.0.1:9").unwrap();
        assert_eq!((s.lake.as_str(), s.addr.as_str()), ("data/lake", "127.0.0.1:9"));
        assert!(s.jwt_secret.is_none(), "no well-known test secret");
        assert_eq!((s.rate_per_sec, s.rate_burst, s.poll_ms), (50.0, 100.0, 1000));
        assert_eq!((s.max_body_bytes, s.max_query_bytes), (1 << 20, 64 << 10));
    }
}
