//! A tenant's view of one published snapshot: the DataFusion session that
//! holds only that tenant's files, and the tenant's directory of agencies,
//! agents and carriers (loaded once per snapshot).

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use arrow::array::{Array, AsArray, RecordBatch};
use datafusion::error::Result;
use datafusion::execution::cache::cache_manager::CacheManagerConfig;
use datafusion::execution::cache::default_cache::DefaultCache;
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::prelude::{SessionConfig, SessionContext};

use super::metrics::QueryCounter;
use super::tables::{Scope, register_snapshot};
use crate::lake::{Location, Manifest};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgencyInfo {
    pub id: String,
    pub name: String,
    pub state: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentInfo {
    pub id: String,
    pub agency_id: String,
    pub name: String,
    pub role: String,
    pub manager_id: Option<String>,
    pub status: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CarrierInfo {
    pub id: String,
    pub name: String,
}

/// Agencies, agents and carriers of a tenant, sorted by id.
#[derive(Debug, Default)]
pub struct Directory {
    pub agencies: Vec<AgencyInfo>,
    pub agents: Vec<AgentInfo>,
    pub carriers: Vec<CarrierInfo>,
    agency_index: HashMap<String, usize>,
    agent_index: HashMap<String, usize>,
    carrier_index: HashMap<String, usize>,
}

impl Directory {
    pub fn agency(&self, id: &str) -> Option<&AgencyInfo> {
        self.agency_index.get(id).map(|&i| &self.agencies[i])
    }
    pub fn agent(&self, id: &str) -> Option<&AgentInfo> {
        self.agent_index.get(id).map(|&i| &self.agents[i])
    }
    pub fn carrier(&self, id: &str) -> Option<&CarrierInfo> {
        self.carrier_index.get(id).map(|&i| &self.carriers[i])
    }
}

/// Limits applied to every session (per query).
#[derive(Debug, Clone, Copy)]
pub struct SessionLimits {
    /// Memory a query may use before it spills or fails.
    pub memory_bytes: usize,
    pub target_partitions: usize,
}

impl Default for SessionLimits {
    fn default() -> Self {
        SessionLimits { memory_bytes: 512 << 20, target_partitions: 2 }
    }
}

pub struct TenantView {
    pub tenant: String,
    pub version: u64,
    pub session: SessionContext,
    directory: tokio::sync::OnceCell<Arc<Directory>>,
    /// The tenant's file paths per table, as registered.
    files: HashMap<String, Vec<String>>,
}

impl TenantView {
    /// Build the tenant's session over `manifest`: it registers only the
    /// files of `tenant`, so every query through it is scoped by
    /// construction.
    pub async fn open(lake: &Location, manifest: &Manifest, tenant: &str, limits: SessionLimits) -> Result<Self> {
        let runtime = RuntimeEnvBuilder::new()
            .with_memory_limit(limits.memory_bytes, 1.0)
            .with_cache_manager(shared_caches().clone())
            .build_arc()?;
        let config = SessionConfig::new()
            .with_target_partitions(limits.target_partitions)
            .with_information_schema(false)
            .with_extension(Arc::new(QueryCounter::default()));
        let session = SessionContext::new_with_config_rt(config, runtime);
        register_snapshot(&session, lake, manifest, &Scope::Tenant(tenant.to_string())).await?;
        let files = manifest
            .tables
            .iter()
            .map(|(t, files)| {
                let paths = files.iter().filter(|f| f.tenant_id == tenant).map(|f| f.path.clone()).collect();
                (t.clone(), paths)
            })
            .collect();
        Ok(TenantView {
            tenant: tenant.to_string(),
            version: manifest.version,
            session,
            directory: tokio::sync::OnceCell::new(),
            files,
        })
    }

    /// The tenant's files of `table` (none if the table has none).
    fn paths(&self, table: &str) -> &[String] {
        self.files.get(table).map(Vec::as_slice).unwrap_or_default()
    }

    pub async fn directory(&self) -> Result<Arc<Directory>> {
        self.directory.get_or_try_init(|| async { load_directory(&self.session).await.map(Arc::new) }).await.cloned()
    }

    /// Load the directory and read every table's Parquet footers once, so
    /// that they sit in the metadata cache before the first real query.
    /// What the tenant's `previous` view already did for the same files is
    /// not done again (a streaming commit changes a table or two): its
    /// directory is taken over, and only changed tables are read.
    pub async fn warm(&self, previous: Option<&TenantView>) -> Result<()> {
        let same = |table: &str| previous.is_some_and(|p| p.paths(table) == self.paths(table));
        if let Some(p) = previous
            && ["agencies", "agents", "carriers"].into_iter().all(same)
            && let Some(d) = p.directory.get()
        {
            let _ = self.directory.set(d.clone());
        }
        self.directory().await?;
        let names = self.session.catalog("datafusion").and_then(|c| c.schema("public")).map(|s| s.table_names());
        for table in names.unwrap_or_default().into_iter().filter(|t| !same(t)) {
            self.session.sql(&format!("select count(*) from \"{table}\"")).await?.collect().await?;
        }
        Ok(())
    }
}

/// Bytes of Parquet footers, and of file statistics, kept for all views.
const FOOTER_CACHE_BYTES: usize = 64 << 20;
const STATISTICS_CACHE_BYTES: usize = 32 << 20;

/// Footers and file statistics shared by every view of the process, so a
/// view of the next version (one per commit while events stream in) reads
/// only the files new in it instead of every file of its tenant. Sharing is
/// safe: a lake file never changes once written (a rewrite is a new path,
/// and DataFusion also checks size and modification time), and a view asks
/// only for the paths of its own tenant's files.
fn shared_caches() -> &'static CacheManagerConfig {
    static CACHES: OnceLock<CacheManagerConfig> = OnceLock::new();
    CACHES.get_or_init(|| {
        CacheManagerConfig::default()
            .with_file_metadata_cache(Some(Arc::new(DefaultCache::new(FOOTER_CACHE_BYTES).with_name("cip footers"))))
            .with_metadata_cache_limit(FOOTER_CACHE_BYTES)
            .with_file_statistics_cache(Some(Arc::new(
                DefaultCache::new(STATISTICS_CACHE_BYTES).with_name("cip file statistics"),
            )))
            .with_file_statistics_cache_limit(STATISTICS_CACHE_BYTES)
    })
}

fn strings(b: &RecordBatch, col: usize) -> Vec<Option<String>> {
    let a = b.column(col).as_string::<i32>();
    (0..a.len()).map(|i| (!a.is_null(i)).then(|| a.value(i).to_string())).collect()
}

async fn rows(session: &SessionContext, sql: &str) -> Result<Vec<Vec<Option<String>>>> {
    let batches = session.sql(sql).await?.collect().await?;
    let mut out = Vec::new();
    for b in &batches {
        let cols: Vec<Vec<Option<String>>> = (0..b.num_columns()).map(|c| strings(b, c)).collect();
        for r in 0..b.num_rows() {
            out.push(cols.iter().map(|c| c[r].clone()).collect());
        }
    }
    Ok(out)
}

async fn load_directory(session: &SessionContext) -> Result<Directory> {
    let s = |v: &Option<String>| v.clone().unwrap_or_default();
    let agencies: Vec<AgencyInfo> = rows(session, "select agency_id, name, state from agencies order by agency_id")
        .await?
        .iter()
        .map(|r| AgencyInfo { id: s(&r[0]), name: s(&r[1]), state: r[2].clone() })
        .collect();
    let agents: Vec<AgentInfo> =
        rows(session, "select agent_id, agency_id, name, role, manager_id, status from agents order by agent_id")
            .await?
            .iter()
            .map(|r| AgentInfo {
                id: s(&r[0]),
                agency_id: s(&r[1]),
                name: s(&r[2]),
                role: s(&r[3]),
                manager_id: r[4].clone(),
                status: r[5].clone(),
            })
            .collect();
    let carriers: Vec<CarrierInfo> = rows(session, "select carrier_id, name from carriers order by carrier_id")
        .await?
        .iter()
        .map(|r| CarrierInfo { id: s(&r[0]), name: s(&r[1]) })
        .collect();
    let index = |ids: Vec<&String>| ids.into_iter().enumerate().map(|(i, id)| (id.clone(), i)).collect();
    Ok(Directory {
        agency_index: index(agencies.iter().map(|a| &a.id).collect()),
        agent_index: index(agents.iter().map(|a| &a.id).collect()),
        carrier_index: index(carriers.iter().map(|a| &a.id).collect()),
        agencies,
        agents,
        carriers,
    })
}
