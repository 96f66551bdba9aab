//! Counters for `GET /metrics` (Prometheus text format).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Distinct operation names labelled per process; later names count as
/// [`OTHER`], so that clients cannot grow `/metrics` without bound.
pub const MAX_OPERATION_LABELS: usize = 64;
/// The label of requests refused before authentication.
pub const UNAUTHENTICATED: &str = "unauthenticated";
/// The label of operation names beyond [`MAX_OPERATION_LABELS`].
pub const OTHER: &str = "other";
/// The label of operations without a (valid) name.
pub const ANONYMOUS: &str = "anonymous";
const MAX_NAME_LEN: usize = 64;

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
    /// Operation names admitted as labels so far.
    operations: Mutex<BTreeSet<String>>,
    pub engine_seconds_micros: AtomicU64,
    pub cache_hits: AtomicU64,
    pub cache_misses: AtomicU64,
    pub snapshot_version: AtomicU64,
    pub snapshot_swaps: AtomicU64,
}

impl Stats {
    /// The label for an authenticated caller's operation name: a GraphQL
    /// name (`[_A-Za-z][_0-9A-Za-z]*`, at most 64 characters) among the first
    /// [`MAX_OPERATION_LABELS`] seen, else [`OTHER`]; [`ANONYMOUS`] without one.
    pub fn operation_label(&self, name: Option<&str>) -> String {
        let Some(name) = name.filter(|n| !n.is_empty()) else { return ANONYMOUS.into() };
        let valid = name.len() <= MAX_NAME_LEN
            && name.chars().next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !valid {
            return OTHER.into();
        }
        let mut known = self.operations.lock().expect("stats lock");
        if known.contains(name) || known.len() < MAX_OPERATION_LABELS {
            known.insert(name.to_string());
            name.to_string()
        } else {
            OTHER.into()
        }
    }

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
            let (op, outcome) = (escape(op), escape(outcome));
            let _ = writeln!(s, "cip_requests_total{{operation=\"{op}\",outcome=\"{outcome}\"}} {}", h.count);
        }
        let _ = writeln!(s, "# TYPE cip_request_seconds histogram");
        for ((op, outcome), h) in &map {
            let labels = format!("operation=\"{}\",outcome=\"{}\"", escape(op), escape(outcome));
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

/// A label value as the exposition format wants it: `\\`, `\"` and `\n`
/// escaped. Labels are already restricted to names; this is the second wall.
fn escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operation_labels_are_names_and_bounded() {
        let s = Stats::default();
        assert_eq!(s.operation_label(Some("Dash")), "Dash");
        assert_eq!(s.operation_label(None), ANONYMOUS);
        assert_eq!(s.operation_label(Some("x\"} fake_metric 9\n")), OTHER);
        assert_eq!(s.operation_label(Some(&"a".repeat(65))), OTHER);
        for i in 1..MAX_OPERATION_LABELS {
            assert_eq!(s.operation_label(Some(&format!("Op{i}"))), format!("Op{i}"));
        }
        // 64 names known (Dash, Op1..Op63): the next new one is "other", known ones stay.
        assert_eq!(s.operation_label(Some("Late")), OTHER);
        assert_eq!(s.operation_label(Some("Dash")), "Dash");
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
        let s = Stats::default();
        s.observe("we\"ird", "ok", Duration::from_millis(2));
        let text = s.render();
        assert!(text.contains("cip_requests_total{operation=\"we\\\"ird\",outcome=\"ok\"} 1"), "{text}");
    }
}
