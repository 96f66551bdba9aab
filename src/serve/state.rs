//! What the server holds: the current snapshot (swapped atomically when a
//! newer one is published), per-tenant views of it, API keys, limits,
//! the result cache and counters.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, RwLock};

use axum::http::HeaderMap;
use tokio::sync::Semaphore;

use super::limits::RateLimiter;
use super::stats::Stats;
use crate::auth::jwt::JwtVerifier;
use crate::auth::keys::{self, StoredKey};
use crate::auth::{AuthError, Principal};
use crate::config::ServeSettings;
use crate::graphql::models::ModelCatalog;
use crate::graphql::{CipSchema, build_schema};
use crate::lake::{Location, Manifest, snapshot, store};
use crate::models::registry;
use crate::query::industry::Industry;
use crate::query::view::TenantView;

/// One published snapshot and the tenant views opened on it so far.
pub struct Current {
    pub manifest: Arc<Manifest>,
    views: tokio::sync::Mutex<HashMap<String, Arc<TenantView>>>,
    /// Anonymised cross-tenant benchmarks of this snapshot.
    pub industry: Arc<Industry>,
    /// The registered models when this snapshot was loaded.
    pub models: Arc<ModelCatalog>,
}

/// Responses of successful queries, keyed by (snapshot, tenant, normalised
/// query, operation, variables). Cleared when the snapshot changes.
pub struct ResultCache {
    entries: Mutex<HashMap<u128, bytes::Bytes>>,
    capacity: usize,
}

impl ResultCache {
    fn new(capacity: usize) -> Self {
        ResultCache { entries: Mutex::new(HashMap::new()), capacity }
    }

    pub fn key(version: u64, tenant: &str, query: &str, operation: Option<&str>, variables: &str) -> u128 {
        let normalised: String = query.split_whitespace().collect::<Vec<_>>().join(" ");
        let text = format!("{version}\u{1}{tenant}\u{1}{normalised}\u{1}{}\u{1}{variables}", operation.unwrap_or(""));
        xxhash_rust::xxh3::xxh3_128(text.as_bytes())
    }

    pub fn get(&self, key: u128) -> Option<bytes::Bytes> {
        self.entries.lock().expect("cache lock").get(&key).cloned()
    }

    pub fn put(&self, key: u128, body: bytes::Bytes) {
        let mut e = self.entries.lock().expect("cache lock");
        if e.len() >= self.capacity {
            e.clear();
        }
        e.insert(key, body);
    }

    fn clear(&self) {
        self.entries.lock().expect("cache lock").clear();
    }
}

pub struct AppState {
    pub settings: ServeSettings,
    pub lake: Location,
    pub schema: CipSchema,
    pub limiter: RateLimiter,
    pub slots: Arc<Semaphore>,
    pub stats: Stats,
    pub cache: ResultCache,
    current: RwLock<Option<Arc<Current>>>,
    keys: RwLock<HashMap<String, StoredKey>>,
    jwt: Option<JwtVerifier>,
}

impl AppState {
    pub fn new(settings: ServeSettings) -> anyhow::Result<Self> {
        settings.validate()?;
        let lake = store::open(&settings.lake)?;
        let jwt = match (&settings.jwt_public_key, &settings.jwt_secret) {
            (Some(pem), _) => Some(JwtVerifier::rs256(&std::fs::read(pem)?)?),
            (None, Some(secret)) => Some(JwtVerifier::hs256(secret.as_bytes())),
            (None, None) => None,
        };
        Ok(AppState {
            schema: build_schema(settings.shape_limits()),
            limiter: RateLimiter::new(settings.rate_per_sec, settings.rate_burst),
            slots: Arc::new(Semaphore::new(settings.max_concurrent_queries)),
            stats: Stats::default(),
            cache: ResultCache::new(10_000),
            current: RwLock::new(None),
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
        let latest = snapshot::latest_version(&self.lake).await?;
        if let Some(version) = latest.filter(|v| Some(*v) != served) {
            let manifest = snapshot::read(&self.lake, version).await?;
            let manifest = Arc::new(manifest);
            let industry = Arc::new(Industry::new(self.lake.clone(), manifest.clone(), self.settings.session_limits()));
            let views = self.warm_views(&manifest).await;
            let models = match registry::list(&self.lake).await {
                Ok(list) => list,
                Err(e) => {
                    tracing::warn!(error = %e, "could not list the registered models");
                    Vec::new()
                }
            };
            let models = Arc::new(ModelCatalog(models));
            let next = Arc::new(Current { manifest, views: tokio::sync::Mutex::new(views), industry, models });
            *self.current.write().expect("snapshot lock") = Some(next);
            self.cache.clear();
            self.stats.snapshot_version.store(version, Ordering::Relaxed);
            self.stats.snapshot_swaps.fetch_add(1, Ordering::Relaxed);
            tracing::info!(version, "serving snapshot");
        }
        Ok(self.version())
    }

    /// Open the views (sessions and directories) of the largest tenants of
    /// a new snapshot before it is served, so that the first query after a
    /// publish pays only for itself; readers keep the old snapshot meanwhile.
    async fn warm_views(&self, manifest: &Manifest) -> HashMap<String, Arc<TenantView>> {
        const WARM_TENANTS: usize = 64;
        let mut tenants: Vec<(u64, String)> = manifest
            .tenants()
            .into_iter()
            .map(|t| (manifest.tenant_files("commissions", &t).map(|f| f.rows).sum::<u64>(), t))
            .collect();
        tenants.sort_by(|a, b| b.cmp(a));
        let mut views = HashMap::new();
        for (_, tenant) in tenants.into_iter().take(WARM_TENANTS) {
            match TenantView::open(&self.lake, manifest, &tenant, self.settings.session_limits()).await {
                Ok(v) => {
                    if let Err(e) = v.warm().await {
                        tracing::warn!(%tenant, error = %e, "warming the tenant view failed");
                    }
                    views.insert(tenant, Arc::new(v));
                }
                Err(e) => tracing::warn!(%tenant, error = %e, "warming a tenant view failed"),
            }
        }
        views
    }

    /// The registered models as of the served snapshot.
    pub fn models(&self) -> Arc<ModelCatalog> {
        self.current.read().expect("snapshot lock").as_ref().map(|c| c.models.clone()).unwrap_or_default()
    }

    pub fn version(&self) -> Option<u64> {
        self.current.read().expect("snapshot lock").as_ref().map(|c| c.manifest.version)
    }

    /// The tenant's view of the current snapshot, with the snapshot's
    /// industry figures; `None` before any snapshot.
    pub async fn view(&self, tenant: &str) -> anyhow::Result<Option<(Arc<TenantView>, Arc<Industry>)>> {
        let Some(current) = self.current.read().expect("snapshot lock").clone() else { return Ok(None) };
        let mut views = current.views.lock().await;
        if let Some(v) = views.get(tenant) {
            return Ok(Some((v.clone(), current.industry.clone())));
        }
        let limits = self.settings.session_limits();
        let v = Arc::new(TenantView::open(&self.lake, &current.manifest, tenant, limits).await?);
        views.insert(tenant.to_string(), v.clone());
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
