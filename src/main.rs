/// jemalloc instead of glibc's malloc: see Cargo.toml and docs/decisions.md.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// jemalloc's options, read before `main`: a background thread returns
/// freed pages to the system within about a second (by default they stay
/// ten seconds, and under the streaming writer's churn of batch-sized
/// buffers the resident heap drifted 200 MiB above the allocated one over a
/// 10-minute soak; with these it stays about 100 MiB above). The
/// `_RJEM_MALLOC_CONF` variable still overrides them.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[unsafe(export_name = "_rjem_malloc_conf")]
#[allow(non_upper_case_globals)]
pub static malloc_conf: &[u8; 60] = b"background_thread:true,dirty_decay_ms:1000,muzzy_decay_ms:0\0";

fn main() -> std::process::ExitCode {
    cip::cli::main()
}
