//! Register a snapshot's tables in a DataFusion session.
//!
//! The tenant scope is applied here, where tables are resolved: a session
//! built for one tenant only ever sees that tenant's files, so no query
//! written against it can reach another tenant's rows.

use std::sync::Arc;

use datafusion::datasource::MemTable;
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::{ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl};
use datafusion::error::Result;
use datafusion::prelude::SessionContext;

use crate::contract::Entity;
use crate::lake::{DataFile, Location, Manifest};
use crate::query::metrics::{COMMISSION_ROLLUP, RENEWAL_ROLLUP};

/// Whose rows a session may see.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    Tenant(String),
    /// Every tenant: pipelines, operators and anonymised benchmarks only.
    AllTenants,
}

impl Scope {
    fn admits(&self, f: &DataFile) -> bool {
        match self {
            Scope::Tenant(t) => &f.tenant_id == t,
            Scope::AllTenants => true,
        }
    }
}

/// Register every contract entity of `manifest` as a table of `ctx`, holding
/// only the rows `scope` admits.
pub async fn register_snapshot(
    ctx: &SessionContext,
    lake: &Location,
    manifest: &Manifest,
    scope: &Scope,
) -> Result<()> {
    ctx.register_object_store(&lake.store_url, lake.store.clone());
    for entity in Entity::ALL {
        let files: Vec<&DataFile> = manifest.files(entity.name()).iter().filter(|f| scope.admits(f)).collect();
        let schema = entity.schema();
        if files.is_empty() {
            ctx.register_table(entity.name(), Arc::new(MemTable::try_new(schema, vec![vec![]])?))?;
            continue;
        }
        let urls = files
            .iter()
            .map(|f| ListingTableUrl::parse(lake.object_url(&lake.child(&f.path))))
            .collect::<Result<Vec<_>>>()?;
        let options = ListingOptions::new(Arc::new(ParquetFormat::default())).with_file_extension(".parquet");
        let config = ListingTableConfig::new_with_multi_paths(urls).with_listing_options(options).with_schema(schema);
        ctx.register_table(entity.name(), Arc::new(ListingTable::try_new(config)?))?;
    }
    // Derived tables exist only where they were built; queries fall back to
    // the facts when a table is absent.
    for table in [COMMISSION_ROLLUP, RENEWAL_ROLLUP] {
        let files: Vec<&DataFile> = manifest.files(table).iter().filter(|f| scope.admits(f)).collect();
        if files.is_empty() {
            continue;
        }
        let urls = files
            .iter()
            .map(|f| ListingTableUrl::parse(lake.object_url(&lake.child(&f.path))))
            .collect::<Result<Vec<_>>>()?;
        let options = ListingOptions::new(Arc::new(ParquetFormat::default())).with_file_extension(".parquet");
        let config = ListingTableConfig::new_with_multi_paths(urls)
            .with_listing_options(options)
            .infer_schema(&ctx.state())
            .await?;
        ctx.register_table(table, Arc::new(ListingTable::try_new(config)?))?;
    }
    Ok(())
}
