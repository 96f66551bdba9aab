//! Per-credential rate limiting: a token bucket per caller.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Buckets kept before full ones are dropped.
const MAX_BUCKETS: usize = 10_000;

pub struct RateLimiter {
    rate_per_sec: f64,
    burst: f64,
    buckets: Mutex<HashMap<String, (f64, Instant)>>,
}

impl RateLimiter {
    pub fn new(rate_per_sec: f64, burst: f64) -> Self {
        RateLimiter { rate_per_sec, burst, buckets: Mutex::new(HashMap::new()) }
    }

    /// Take a token for `who` at `now`; when empty, how long until one is back.
    pub fn check_at(&self, who: &str, now: Instant) -> Result<(), Duration> {
        let mut buckets = self.buckets.lock().expect("rate limiter lock");
        // A bucket that has refilled holds no state worth keeping: drop those
        // when the map grows, so distinct callers cannot grow it for ever.
        if buckets.len() >= MAX_BUCKETS {
            let (rate, burst) = (self.rate_per_sec, self.burst);
            buckets.retain(|_, (tokens, last)| {
                *tokens + now.saturating_duration_since(*last).as_secs_f64() * rate < burst
            });
        }
        let (tokens, last) = buckets.entry(who.to_string()).or_insert((self.burst, now));
        let refill = now.saturating_duration_since(*last).as_secs_f64() * self.rate_per_sec;
        *tokens = (*tokens + refill).min(self.burst);
        *last = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - *tokens) / self.rate_per_sec))
        }
    }

    pub fn check(&self, who: &str) -> Result<(), Duration> {
        self.check_at(who, Instant::now())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_allows_a_burst_then_refills_at_the_rate() {
        let l = RateLimiter::new(2.0, 3.0);
        let t0 = Instant::now();
        assert!(l.check_at("a", t0).is_ok());
        assert!(l.check_at("a", t0).is_ok());
        assert!(l.check_at("a", t0).is_ok());
        let wait = l.check_at("a", t0).unwrap_err();
        assert_eq!(wait, Duration::from_millis(500));
        // Another caller has its own bucket.
        assert!(l.check_at("b", t0).is_ok());
        // Half a second later one token is back, and only one.
        let t1 = t0 + Duration::from_millis(500);
        assert!(l.check_at("a", t1).is_ok());
        assert!(l.check_at("a", t1).is_err());
    }
}
