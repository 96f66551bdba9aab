//! Register a snapshot's tables in a DataFusion session.
//!
//! The tenant scope is applied here, where tables are resolved: a session
//! built for one tenant only ever sees that tenant's files, so no query
//! written against it can reach another tenant's rows.

use std::sync::Arc;

use arrow::datatypes::SchemaRef;
use datafusion::datasource::MemTable;
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::{ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl};
use datafusion::error::Result;
use datafusion::prelude::SessionContext;

use crate::contract::Entity;
use crate::lake::{DataFile, Location, Manifest, catalog};

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
    let files_of =
        |table: &str| -> Vec<&DataFile> { manifest.files(table).iter().filter(|f| scope.admits(f)).collect() };
    // Contract entities, the models' outputs and the commission engine's
    // tables are always registered (empty
    // when they have no files), so that queries answer "nothing yet" rather
    // than failing.
    let known = Entity::ALL.into_iter().map(|e| (e.name(), e.schema())).chain(
        catalog::MODEL_OUTPUTS
            .into_iter()
            .chain(catalog::COMMISSION_TABLES)
            .map(|t| (t, catalog::schema_of(t).expect("output table schema"))),
    );
    for (table, schema) in known {
        let files = files_of(table);
        if files.is_empty() {
            ctx.register_table(table, Arc::new(MemTable::try_new(schema, vec![vec![]])?))?;
        } else {
            register_files(ctx, lake, table, &files, Some(schema)).await?;
        }
    }
    // Derived tables exist only where they were built; queries fall back to
    // the facts when a table is absent.
    for table in catalog::ROLLUPS {
        let files = files_of(table);
        if !files.is_empty() {
            register_files(ctx, lake, table, &files, None).await?;
        }
    }
    Ok(())
}

/// Register `files` as `table`, with `schema` or the one the files carry.
async fn register_files(
    ctx: &SessionContext,
    lake: &Location,
    table: &str,
    files: &[&DataFile],
    schema: Option<SchemaRef>,
) -> Result<()> {
    let urls = files
        .iter()
        .map(|f| ListingTableUrl::parse(lake.object_url(&lake.child(&f.path))))
        .collect::<Result<Vec<_>>>()?;
    let options = ListingOptions::new(Arc::new(ParquetFormat::default())).with_file_extension(".parquet");
    let config = ListingTableConfig::new_with_multi_paths(urls).with_listing_options(options);
    let config = match schema {
        Some(schema) => config.with_schema(schema),
        None => config.infer_schema(&ctx.state()).await?,
    };
    // The session's file-statistics cache (shared by every view, see
    // `view::shared_caches`): without it, planning any query over the table
    // read the statistics of every file's footer again.
    let statistics = ctx.runtime_env().cache_manager.get_file_statistic_cache();
    ctx.register_table(table, Arc::new(ListingTable::try_new(config)?.with_cache(statistics)))?;
    Ok(())
}
