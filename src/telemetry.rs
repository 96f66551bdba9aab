//! Logging: `tracing` to stderr, filtered by `RUST_LOG` (default: warnings,
//! plus cip's own info messages for long-running commands).

use tracing_subscriber::EnvFilter;

pub fn init(verbose: bool) {
    let default = if verbose { "warn,cip=info" } else { "warn" };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let _ = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).try_init();
}
