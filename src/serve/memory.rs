//! Where the server's memory goes, for `/metrics`: the allocator's totals
//! and what the long-lived caches hold, each next to its bound. A soak
//! reads them beside the process's RSS: growth that the bounded caches
//! account for levels off; growth they don't would be a leak.

use std::fmt::Write;

use super::state::AppState;
use crate::pipelines::writer_cache::WriterCache;

/// Bytes a remembered event id takes: its 128-bit hash in the set (with
/// the table's slack) and in the eviction queue.
const RECENT_ID_BYTES: usize = 48;

/// The memory gauges in the exposition format.
pub fn render(state: &AppState) -> String {
    let mut parts: Vec<(&str, u64, Option<u64>)> = Vec::new();
    let (_, bytes) = state.cache.size();
    parts.push(("result_cache", bytes as u64, Some((state.settings.cache_mb as u64) << 20)));
    if let Some(stream) = state.stream() {
        let (keys, indexes) = stream.cache().bytes();
        let (key_bound, index_bound) = WriterCache::BOUNDS;
        parts.push(("stream_stored_keys", keys, Some(key_bound)));
        parts.push(("stream_key_indexes", indexes, Some(index_bound)));
        let (ids, id_bound) = stream.recent_ids();
        parts.push((
            "stream_recent_event_ids",
            (ids * RECENT_ID_BYTES) as u64,
            Some((id_bound * RECENT_ID_BYTES) as u64),
        ));
    }
    if let Some((allocated, resident)) = allocator() {
        parts.push(("heap_allocated", allocated, None));
        parts.push(("heap_resident", resident, None));
    }
    let mut s = String::new();
    let _ = writeln!(s, "# TYPE cip_memory_bytes gauge");
    for (part, bytes, _) in &parts {
        let _ = writeln!(s, "cip_memory_bytes{{part=\"{part}\"}} {bytes}");
    }
    let _ = writeln!(s, "# TYPE cip_memory_bound_bytes gauge");
    for (part, _, bound) in &parts {
        if let Some(b) = bound {
            let _ = writeln!(s, "cip_memory_bound_bytes{{part=\"{part}\"}} {b}");
        }
    }
    s
}

/// The allocator's bytes in live allocations and in resident pages, where
/// the allocator is jemalloc (`main.rs`, Linux with glibc) and it answers.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn allocator() -> Option<(u64, u64)> {
    use tikv_jemalloc_ctl::{epoch, stats};
    epoch::advance().ok()?;
    let allocated = stats::allocated::read().ok()? as u64;
    let resident = stats::resident::read().ok()? as u64;
    // Built into a program whose allocator is another one (the tests), it
    // has handed out nothing: no figures rather than wrong ones.
    (allocated > 0).then_some((allocated, resident))
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn allocator() -> Option<(u64, u64)> {
    None
}
