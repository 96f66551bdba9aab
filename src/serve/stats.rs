//! Counters for `GET /metrics` (Prometheus text format).

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

const BUCKETS: [f64; 10] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 5.0];

#[derive(Default, Clone)]
struct Histogram {
    counts: [u64; BUCKETS.len()],
    count: u64,
    sum: f64,
}

#[derive(Default)]
pub struct Stats {
    /// (operation, outcome) → latency histogram.
    requests: Mutex<BTreeMap<(String, String), Histogram>>,
    pub engine_seconds_micros: AtomicU64,
    pub cache_hits: AtomicU64,
    pub cache_misses: AtomicU64,
    pub snapshot_version: AtomicU64,
    pub snapshot_swaps: AtomicU64,
}

impl Stats {
    pub fn observe(&self, operation: &str, outcome: &str, took: Duration) {
        let secs = took.as_secs_f64();
        let mut map = self.requests.lock().expect("stats lock");
        let h = map.entry((operation.to_string(), outcome.to_string())).or_default();
        h.count += 1;
        h.sum += secs;
        for (i, b) in BUCKETS.iter().enumerate() {
            if secs <= *b {
                h.counts[i] += 1;
            }
        }
    }

    pub fn render(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(s, "# TYPE cip_requests_total counter");
        let map = self.requests.lock().expect("stats lock").clone();
        for ((op, outcome), h) in &map {
            let _ = writeln!(s, "cip_requests_total{{operation=\"{op}\",outcome=\"{outcome}\"}} {}", h.count);
        }
        let _ = writeln!(s, "# TYPE cip_request_seconds histogram");
        for ((op, outcome), h) in &map {
            let labels = format!("operation=\"{op}\",outcome=\"{outcome}\"");
            for (i, b) in BUCKETS.iter().enumerate() {
                let _ = writeln!(s, "cip_request_seconds_bucket{{{labels},le=\"{b}\"}} {}", h.counts[i]);
            }
            let _ = writeln!(s, "cip_request_seconds_bucket{{{labels},le=\"+Inf\"}} {}", h.count);
            let _ = writeln!(s, "cip_request_seconds_sum{{{labels}}} {}", h.sum);
            let _ = writeln!(s, "cip_request_seconds_count{{{labels}}} {}", h.count);
        }
        let g = |n: &AtomicU64| n.load(Ordering::Relaxed);
        let _ = writeln!(s, "# TYPE cip_engine_seconds_total counter");
        let _ = writeln!(s, "cip_engine_seconds_total {}", g(&self.engine_seconds_micros) as f64 / 1e6);
        let _ = writeln!(s, "# TYPE cip_cache_hits_total counter\ncip_cache_hits_total {}", g(&self.cache_hits));
        let _ = writeln!(s, "# TYPE cip_cache_misses_total counter\ncip_cache_misses_total {}", g(&self.cache_misses));
        let _ = writeln!(s, "# TYPE cip_snapshot_version gauge\ncip_snapshot_version {}", g(&self.snapshot_version));
        let _ = writeln!(
            s,
            "# TYPE cip_snapshot_swaps_total counter\ncip_snapshot_swaps_total {}",
            g(&self.snapshot_swaps)
        );
        s
    }
}
