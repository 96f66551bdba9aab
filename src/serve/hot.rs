//! The queries dashboards poll, answered again for each new version before
//! it is served.
//!
//! The result cache is keyed by version, so while events stream in (a
//! version a second) every poller's first query after a commit missed and
//! paid a full query, four pollers at once on two cores: that miss was the
//! p99 of a polled KPI tile. A query answered from the cache or cached in the
//! last few seconds is remembered here with the credential that asked it;
//! when a version changes a tenant, its remembered queries are run on the
//! new view (within a time budget) and their answers put in the cache
//! before the version is served, so a poller finds the new answer waiting.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::auth::Principal;

/// Most queries remembered (beyond it the least recently asked goes).
const MAX_HOT: usize = 256;

/// A query asked within this long is answered ahead for a new version.
pub const HOT_WITHIN: Duration = Duration::from_secs(10);

/// How long answering ahead may delay serving a version; queries beyond it
/// are answered on their next request, as before.
pub const BUDGET: Duration = Duration::from_millis(200);

/// One remembered query: what is needed to ask it again.
#[derive(Clone)]
pub struct HotQuery {
    pub principal: Principal,
    pub query: String,
    pub operation: Option<String>,
    pub variables: async_graphql::Variables,
    /// The variables as the cache key has them.
    pub variables_text: String,
    used: Instant,
}

impl HotQuery {
    pub fn new(principal: Principal, request: &async_graphql::Request, variables_text: String) -> Self {
        HotQuery {
            principal,
            query: request.query.clone(),
            operation: request.operation_name.clone(),
            variables: request.variables.clone(),
            variables_text,
            used: Instant::now(),
        }
    }

    /// The request to ask it again.
    pub fn request(&self) -> async_graphql::Request {
        let mut r = async_graphql::Request::new(self.query.clone()).variables(self.variables.clone());
        r.operation_name = self.operation.clone();
        r
    }
}

/// Remembered queries by their cache key (which names the version).
#[derive(Default)]
pub struct HotQueries {
    inner: Mutex<HashMap<u128, HotQuery>>,
}

impl HotQueries {
    /// The query under `key` was answered from the cache.
    pub fn touch(&self, key: u128) {
        if let Some(q) = self.inner.lock().expect("hot lock").get_mut(&key) {
            q.used = Instant::now();
        }
    }

    /// The query under `key` was answered and cached.
    pub fn remember(&self, key: u128, query: HotQuery) {
        let mut hot = self.inner.lock().expect("hot lock");
        if hot.len() >= MAX_HOT && !hot.contains_key(&key) {
            let oldest = hot.iter().min_by_key(|(_, q)| q.used).map(|(k, _)| *k);
            if let Some(k) = oldest {
                hot.remove(&k);
            }
        }
        hot.insert(key, query);
    }

    /// Take every query asked within [`HOT_WITHIN`], most recent first, and
    /// forget the rest; the caller remembers under their new keys those it
    /// answers again.
    pub fn take_recent(&self) -> Vec<HotQuery> {
        let hot = std::mem::take(&mut *self.inner.lock().expect("hot lock"));
        let mut recent: Vec<HotQuery> = hot.into_values().filter(|q| q.used.elapsed() <= HOT_WITHIN).collect();
        recent.sort_by_key(|q| std::cmp::Reverse(q.used));
        recent
    }

    /// Remember a query again under `key`, keeping when it was last asked.
    pub fn keep(&self, key: u128, query: HotQuery) {
        self.inner.lock().expect("hot lock").insert(key, query);
    }

    pub fn len(&self) -> usize {
        self.inner.lock().expect("hot lock").len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(text: &str) -> HotQuery {
        let principal = Principal { tenant_id: "t1".into(), subject: "k".into(), permissions: Default::default() };
        HotQuery::new(principal, &async_graphql::Request::new(text), "{}".into())
    }

    #[test]
    fn recent_queries_are_taken_newest_first_and_stale_ones_forgotten() {
        let hot = HotQueries::default();
        let mut stale = query("{ a }");
        stale.used -= HOT_WITHIN + Duration::from_secs(1);
        hot.remember(1, stale);
        hot.remember(2, query("{ b }"));
        std::thread::sleep(Duration::from_millis(2));
        hot.remember(3, query("{ c }"));
        let taken: Vec<String> = hot.take_recent().into_iter().map(|q| q.query).collect();
        assert_eq!(taken, vec!["{ c }".to_string(), "{ b }".to_string()]);
        assert!(hot.is_empty());
    }

    #[test]
    fn the_least_recently_asked_query_goes_first_when_full() {
        let hot = HotQueries::default();
        for k in 0..MAX_HOT as u128 {
            hot.remember(k, query(&format!("{{ a{k} }}")));
        }
        std::thread::sleep(Duration::from_millis(2));
        hot.touch(0);
        hot.remember(10_000, query("{ b }"));
        assert_eq!(hot.len(), MAX_HOT);
        let texts: std::collections::HashSet<String> = hot.take_recent().into_iter().map(|q| q.query).collect();
        assert!(texts.contains("{ a0 }") && texts.contains("{ b }"));
        assert!(!texts.contains("{ a1 }"), "the oldest untouched entry was evicted");
    }
}
