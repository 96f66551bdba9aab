//! What the server holds: the current snapshot (swapped atomically when a
//! newer one is published), per-tenant views of it, API keys, limits,
//! the result cache and counters.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, RwLock};

use axum::http::HeaderMap;
use tokio::sync::Semaphore;

use super::engine::Engine;
use super::guard::Admitted;
use super::hot::{self, HotQueries};
use super::limits::RateLimiter;
use super::request;
use super::stats::Stats;
use crate::auth::jwt::JwtVerifier;
use crate::auth::keys::{self, StoredKey};
use crate::auth::{AuthError, Principal};
use crate::config::ServeSettings;
use crate::graphql::models::ModelCatalog;
use crate::graphql::{CipSchema, build_schema};
use crate::lake::{Location, Manifest, maintenance, snapshot, store};
use crate::models::registry;
use crate::pipelines::stream::Stream;
use crate::query::industry::Industry;
use crate::query::single_flight::SingleFlight;
use crate::query::view::{SessionLimits, TenantView};

/// Tenant views kept per snapshot (beyond it the oldest is reopened on use).
const MAX_TENANT_VIEWS: usize = 4096;

/// One published snapshot and the tenant views opened on it so far.
pub struct Current {
    pub manifest: Arc<Manifest>,
    /// Opened once per tenant; opening one tenant's view does not hold up
    /// another tenant's requests.
    views: SingleFlight<String, Arc<TenantView>>,
    /// Anonymised cross-tenant benchmarks of this snapshot.
    pub industry: Arc<Industry>,
    /// The registered models when this snapshot was loaded.
    pub models: Arc<ModelCatalog>,
}

impl Current {
    /// The tenant's view, opened on first use.
    async fn view(&self, lake: &Location, tenant: &str, limits: SessionLimits) -> anyhow::Result<Arc<TenantView>> {
        let open = || async {
            Ok::<_, anyhow::Error>(Arc::new(TenantView::open(lake, &self.manifest, tenant, limits).await?))
        };
        self.views.get_or_try_init(tenant.to_string(), open).await
    }
}

/// Responses of successful queries, keyed by (snapshot, tenant, the
/// query's canonical text, operation, variables); bounded in entries and
/// bytes, least recently used out first; when the snapshot changes, emptied
/// but for the new version's answers computed ahead (`hot.rs`).
pub struct ResultCache {
    inner: Mutex<CacheInner>,
    max_entries: usize,
    max_bytes: usize,
}

#[derive(Default)]
struct CacheInner {
    /// key → (body, tick of its last use)
    entries: HashMap<u128, (bytes::Bytes, u64)>,
    /// tick of last use → key, oldest first
    by_use: BTreeMap<u64, u128>,
    bytes: usize,
    tick: u64,
}

impl CacheInner {
    fn touch(&mut self, key: u128) -> Option<bytes::Bytes> {
        self.tick += 1;
        let tick = self.tick;
        let (body, used) = self.entries.get_mut(&key)?;
        self.by_use.remove(used);
        *used = tick;
        self.by_use.insert(tick, key);
        Some(body.clone())
    }

    fn remove(&mut self, key: u128) {
        if let Some((body, used)) = self.entries.remove(&key) {
            self.by_use.remove(&used);
            self.bytes -= body.len();
        }
    }
}

impl ResultCache {
    pub fn new(max_entries: usize, max_bytes: usize) -> Self {
        ResultCache { inner: Mutex::new(CacheInner::default()), max_entries, max_bytes }
    }

    /// `query` is parsed into its tokens (see [`request::canonical`]), so
    /// layout does not split entries and literals never merge them.
    ///
    /// Fields are length-prefixed (no separator can be forged inside one),
    /// and the hash is seeded with a secret drawn at start-up, so that no
    /// client can aim for another entry's key.
    pub fn key(version: u64, tenant: &str, query: &str, operation: Option<&str>, variables: &str) -> u128 {
        static SEED: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
        let seed = *SEED.get_or_init(rand::random);
        let canonical = request::canonical(query);
        let mut text = Vec::with_capacity(canonical.len() + variables.len() + 64);
        for field in [version.to_string().as_str(), tenant, &canonical, operation.unwrap_or(""), variables] {
            text.extend_from_slice(&(field.len() as u64).to_le_bytes());
            text.extend_from_slice(field.as_bytes());
        }
        xxhash_rust::xxh3::xxh3_128_with_seed(&text, seed)
    }

    pub fn get(&self, key: u128) -> Option<bytes::Bytes> {
        self.inner.lock().expect("cache lock").touch(key)
    }

    /// Keep `body`, evicting the least recently used entries to stay within
    /// both bounds; a body larger than the byte bound is not kept.
    pub fn put(&self, key: u128, body: bytes::Bytes) {
        if body.len() > self.max_bytes {
            return;
        }
        let mut c = self.inner.lock().expect("cache lock");
        c.remove(key);
        while c.entries.len() >= self.max_entries || c.bytes + body.len() > self.max_bytes {
            let Some((_, oldest)) = c.by_use.pop_first() else { break };
            if let Some((old, _)) = c.entries.remove(&oldest) {
                c.bytes -= old.len();
            }
        }
        c.tick += 1;
        let tick = c.tick;
        c.bytes += body.len();
        c.entries.insert(key, (body, tick));
        c.by_use.insert(tick, key);
    }

    /// (entries, bytes) held.
    pub fn size(&self) -> (usize, usize) {
        let c = self.inner.lock().expect("cache lock");
        (c.entries.len(), c.bytes)
    }

    /// Forget every entry (they answer for a version no longer served)
    /// and keep `entries` (answers for the version now served).
    fn replace_all(&self, entries: Vec<(u128, bytes::Bytes)>) {
        *self.inner.lock().expect("cache lock") = CacheInner::default();
        for (key, body) in entries {
            self.put(key, body);
        }
    }
}

pub struct AppState {
    pub settings: ServeSettings,
    pub lake: Location,
    pub schema: CipSchema,
    pub limiter: RateLimiter,
    /// The event-ingest door's own bucket per credential.
    pub ingest_limiter: RateLimiter,
    /// Summary imports of a tenant run one at a time.
    pub summary_locks: super::summary::TenantLocks,
    /// The streaming pipeline while this server holds the lake's stream
    /// lease (`writer.rs`); `None` when serving a pinned version or while
    /// another server takes the events.
    stream: RwLock<Option<Arc<Stream>>>,
    pub slots: Arc<Semaphore>,
    /// Where admitted operations run (see `engine.rs`).
    pub engine: Engine,
    pub stats: Stats,
    pub cache: ResultCache,
    /// Recently asked queries, answered ahead for each new version.
    pub hot: HotQueries,
    current: RwLock<Option<Arc<Current>>>,
    /// The version served, for subscriptions to wait on.
    served: tokio::sync::watch::Sender<u64>,
    keys: RwLock<HashMap<String, StoredKey>>,
    jwt: Option<JwtVerifier>,
}

impl AppState {
    pub fn new(settings: ServeSettings) -> anyhow::Result<Self> {
        settings.validate()?;
        let lake = store::open(&settings.lake)?;
        let jwt = match (&settings.jwt_public_key, &settings.jwt_secret) {
            (Some(pem), _) => Some(JwtVerifier::rs256(&std::fs::read(pem)?)?),
            (None, Some(secret)) => Some(JwtVerifier::hs256(secret.expose().as_bytes())),
            (None, None) => None,
        };
        Ok(AppState {
            schema: build_schema(settings.shape_limits()),
            limiter: RateLimiter::new(settings.rate_per_sec, settings.rate_burst),
            ingest_limiter: RateLimiter::new(settings.ingest_rate_per_sec, settings.ingest_rate_per_sec * 2.0),
            summary_locks: Default::default(),
            stream: RwLock::new(None),
            slots: Arc::new(Semaphore::new(settings.max_concurrent_queries)),
            engine: Engine::new(settings.engine_threads())?,
            stats: Stats::default(),
            cache: ResultCache::new(settings.cache_entries, settings.cache_mb << 20),
            hot: HotQueries::default(),
            current: RwLock::new(None),
            served: tokio::sync::watch::channel(0).0,
            keys: RwLock::new(HashMap::new()),
            jwt,
            lake,
            settings,
        })
    }

    /// Load API keys and the newest snapshot if it differs from the one
    /// served. Returns the version now served.
    pub async fn refresh(&self) -> anyhow::Result<Option<u64>> {
        let keys = keys::load_all(&self.lake).await?;
        *self.keys.write().expect("keys lock") = keys;
        let served = self.version();
        // A pinned version (time travel for audits) is served and never left.
        let latest = match (self.settings.as_of_version, self.settings.as_of_time()?) {
            (Some(v), _) => Some(v),
            (None, Some(at)) => {
                let v = maintenance::version_at(&self.lake, at).await?;
                anyhow::ensure!(v.is_some(), "no lake version was published at or before {at}");
                v
            }
            (None, None) => snapshot::latest_version(&self.lake).await?,
        };
        if let Some(version) = latest.filter(|v| Some(*v) != served) {
            let started = std::time::Instant::now();
            let manifest = snapshot::read(&self.lake, version).await?;
            let manifest = Arc::new(manifest);
            let industry = Arc::new(Industry::new(self.lake.clone(), manifest.clone(), self.settings.session_limits()));
            let previous = self.current.read().expect("snapshot lock").clone();
            let read_ms = started.elapsed().as_millis() as u64;
            let views = self.warm_views(&manifest, previous.as_deref()).await;
            let warm_ms = started.elapsed().as_millis() as u64 - read_ms;
            let models = match registry::list(&self.lake).await {
                Ok(list) => list,
                Err(e) => {
                    tracing::warn!(error = %e, "could not list the registered models");
                    Vec::new()
                }
            };
            let models = Arc::new(ModelCatalog(models));
            let next = Arc::new(Current { manifest, views, industry, models });
            // The new answers are in the cache before the version is served:
            // a poller's first request after the swap finds its answer.
            let ahead = self.answer_ahead(&next).await;
            self.cache.replace_all(ahead);
            *self.current.write().expect("snapshot lock") = Some(next);
            self.stats.snapshot_version.store(version, Ordering::Relaxed);
            self.served.send_replace(version);
            self.stats.snapshot_swaps.fetch_add(1, Ordering::Relaxed);
            // Where the time went (lake open after a long stream: issue 11).
            tracing::info!(version, ms = started.elapsed().as_millis() as u64, read_ms, warm_ms, "serving snapshot");
        }
        Ok(self.version())
    }

    /// Open the views (sessions and directories) of the largest tenants of
    /// a new snapshot before it is served, so that the first query after a
    /// publish pays only for itself; readers keep the old snapshot meanwhile.
    /// A view of the `previous` snapshot whose tenant has the same files in
    /// both is kept as it is: a streaming commit, which changes one tenant,
    /// reopens only that one.
    async fn warm_views(
        &self,
        manifest: &Manifest,
        previous: Option<&Current>,
    ) -> SingleFlight<String, Arc<TenantView>> {
        const WARM_TENANTS: usize = 64;
        let views = SingleFlight::new(MAX_TENANT_VIEWS);
        // Views of the previous version, by tenant: kept as they are when
        // the tenant's files did not change, else what a new one builds on.
        let mut before: HashMap<String, Arc<TenantView>> = HashMap::new();
        if let Some(p) = previous {
            for (tenant, view) in p.views.ready() {
                if manifest.tenant_paths(&tenant) == p.manifest.tenant_paths(&tenant) {
                    views.insert(tenant, view);
                } else {
                    before.insert(tenant, view);
                }
            }
        }
        let mut tenants: Vec<(u64, String)> = manifest
            .tenants()
            .into_iter()
            .map(|t| (manifest.tenant_files("commissions", &t).map(|f| f.rows).sum::<u64>(), t))
            .collect();
        tenants.sort_by(|a, b| b.cmp(a));
        let kept: std::collections::HashSet<String> = views.ready().into_iter().map(|(t, _)| t).collect();
        for (_, tenant) in tenants.into_iter().take(WARM_TENANTS).filter(|(_, t)| !kept.contains(t)) {
            match TenantView::open(&self.lake, manifest, &tenant, self.settings.session_limits()).await {
                Ok(v) => {
                    if let Err(e) = v.warm(before.get(&tenant).map(Arc::as_ref)).await {
                        tracing::warn!(%tenant, error = %e, "warming the tenant view failed");
                    }
                    views.insert(tenant, Arc::new(v));
                }
                Err(e) => tracing::warn!(%tenant, error = %e, "warming a tenant view failed"),
            }
        }
        views
    }

    /// The recently asked queries (see `hot.rs`) answered on `next`'s
    /// views, within [`hot::BUDGET`], most recently asked first: the cache
    /// entries to serve `next` with. Each is remembered again under its new
    /// key; those past the budget are answered on their next request.
    async fn answer_ahead(&self, next: &Current) -> Vec<(u128, bytes::Bytes)> {
        let started = std::time::Instant::now();
        let mut answers = Vec::new();
        for q in self.hot.take_recent() {
            if started.elapsed() > hot::BUDGET {
                break;
            }
            let tenant = q.principal.tenant_id.clone();
            let Ok(view) = next.view(&self.lake, &tenant, self.settings.session_limits()).await else { continue };
            let key = ResultCache::key(view.version, &tenant, &q.query, q.operation.as_deref(), &q.variables_text);
            let admitted = Admitted { principal: q.principal.clone(), view, industry: next.industry.clone() };
            match super::routes::answer(self, admitted, q.request()).await {
                Ok(a) if a.cacheable() => {
                    answers.push((key, a.body));
                    self.hot.keep(key, q);
                }
                _ => {}
            }
        }
        if !answers.is_empty() {
            tracing::debug!(answers = answers.len(), ms = started.elapsed().as_millis() as u64, "answered ahead");
        }
        answers
    }

    /// The registered models as of the served snapshot.
    /// The streaming pipeline, if this server takes events now.
    pub fn stream(&self) -> Option<Arc<Stream>> {
        self.stream.read().expect("stream lock").clone()
    }

    pub(super) fn set_stream(&self, stream: Option<Arc<Stream>>) {
        *self.stream.write().expect("stream lock") = stream;
    }

    pub fn models(&self) -> Arc<ModelCatalog> {
        self.current.read().expect("snapshot lock").as_ref().map(|c| c.models.clone()).unwrap_or_default()
    }

    /// Told each version as it starts being served.
    pub fn served_versions(&self) -> tokio::sync::watch::Receiver<u64> {
        self.served.subscribe()
    }

    pub fn version(&self) -> Option<u64> {
        self.current.read().expect("snapshot lock").as_ref().map(|c| c.manifest.version)
    }

    /// The tenant's view of the current snapshot, with the snapshot's
    /// industry figures; `None` before any snapshot.
    pub async fn view(&self, tenant: &str) -> anyhow::Result<Option<(Arc<TenantView>, Arc<Industry>)>> {
        let Some(current) = self.current.read().expect("snapshot lock").clone() else { return Ok(None) };
        let v = current.view(&self.lake, tenant, self.settings.session_limits()).await?;
        Ok(Some((v, current.industry.clone())))
    }

    /// Resolve the request's credentials to a principal.
    pub fn authenticate(&self, headers: &HeaderMap) -> Result<Principal, AuthError> {
        if let Some(key) = headers.get("x-api-key") {
            let key = key.to_str().map_err(|_| AuthError::Invalid)?;
            return keys::verify(&self.keys.read().expect("keys lock"), key.trim());
        }
        if let Some(auth) = headers.get(axum::http::header::AUTHORIZATION) {
            let auth = auth.to_str().map_err(|_| AuthError::Invalid)?;
            let token = auth.strip_prefix("Bearer ").ok_or(AuthError::Invalid)?;
            return self.jwt.as_ref().ok_or(AuthError::Invalid)?.verify(token.trim());
        }
        Err(AuthError::Missing)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(n: usize) -> bytes::Bytes {
        bytes::Bytes::from(vec![b'x'; n])
    }

    #[test]
    fn the_cache_evicts_least_recently_used_within_entries_and_bytes() {
        let c = ResultCache::new(3, 100);
        c.put(1, body(30));
        c.put(2, body(30));
        c.put(3, body(30));
        assert!(c.get(1).is_some()); // 1 is now the most recent; 2 the oldest
        c.put(4, body(30)); // entry bound: 2 goes
        assert_eq!((c.get(2), c.size()), (None, (3, 90)));
        c.put(5, body(60)); // byte bound: 3 and 1 (least recently used) go, 4 stays
        assert_eq!(c.get(3), None);
        assert_eq!(c.get(1), None);
        assert_eq!(c.get(4).map(|b| b.len()), Some(30));
        assert_eq!(c.size(), (2, 90));
        c.put(6, body(101)); // larger than the whole bound: not kept, nothing evicted
        assert_eq!((c.get(6), c.size()), (None, (2, 90)));
        c.put(4, body(10)); // replacing an entry frees its old bytes
        assert_eq!(c.size(), (2, 70));
    }

    #[test]
    fn cache_keys_follow_the_parsed_query() {
        let k = |q: &str| ResultCache::key(1, "t1", q, None, "{}");
        assert_eq!(k(r#"{ agency(id: "G1") { name } }"#), k("{agency(id:\"G1\"){name}} # again"));
        assert_ne!(k(r#"{ a(s: "x  y") }"#), k(r#"{ a(s: "x y") }"#));
        assert_ne!(ResultCache::key(1, "t1", "{ a }", None, "{}"), ResultCache::key(1, "t2", "{ a }", None, "{}"));
        assert_ne!(ResultCache::key(1, "t1", "{ a }", None, "{}"), ResultCache::key(2, "t1", "{ a }", None, "{}"));
    }
}
