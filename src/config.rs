//! One typed configuration for the server: command-line flags with `CIP_*`
//! environment overrides, validated once at start-up.

use std::time::Duration;

use crate::graphql::ShapeLimits;
use crate::query::view::SessionLimits;

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
    pub jwt_secret: Option<String>,
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
}

impl ServeSettings {
    /// Defaults for tests: a given lake, a random port, a known secret.
    pub fn test_config(lake: &str) -> Self {
        ServeSettings {
            lake: lake.to_string(),
            addr: "127.0.0.1:0".into(),
            jwt_secret: Some("test-secret".into()),
            jwt_public_key: None,
            poll_ms: 100,
            query_timeout_ms: 10_000,
            max_concurrent_queries: 8,
            query_memory_mb: 256,
            rate_per_sec: 1000.0,
            rate_burst: 1000.0,
            max_depth: 12,
            max_complexity: 2000,
        }
    }

    pub fn validate(&self) -> anyhow::Result<()> {
        anyhow::ensure!(self.max_concurrent_queries > 0, "max_concurrent_queries must be at least 1");
        anyhow::ensure!(self.rate_per_sec > 0.0 && self.rate_burst >= 1.0, "rate limits must be positive");
        anyhow::ensure!(self.query_timeout_ms > 0, "query timeout must be positive");
        Ok(())
    }

    pub fn query_timeout(&self) -> Duration {
        Duration::from_millis(self.query_timeout_ms)
    }

    pub fn shape_limits(&self) -> ShapeLimits {
        ShapeLimits { max_depth: self.max_depth, max_complexity: self.max_complexity }
    }

    pub fn session_limits(&self) -> SessionLimits {
        SessionLimits { memory_bytes: self.query_memory_mb << 20, ..Default::default() }
    }
}
