//! Derived tables built at publish time, so that hot queries read a few
//! thousand pre-aggregated rows instead of millions of facts: today the
//! monthly commission rollup (`query::metrics::commission_rollup`).
//!
//! A tenant's rollup is rebuilt whenever its commissions or policies change
//! in a run (or it has none yet), from the very files the new snapshot will
//! reference, and published in the same manifest: the rollup can never
//! disagree with the facts of its snapshot.

use std::collections::{BTreeMap, BTreeSet};

use datafusion::prelude::SessionContext;
use object_store::ObjectStoreExt;

use crate::lake::{self, DataFile, Location, Manifest, parquet_io};
use crate::query::metrics::{COMMISSION_ROLLUP, commission_rollup};
use crate::query::tables::{Scope, register_snapshot};

/// Tenants whose rollup must be (re)built: those with commissions whose
/// facts changed, or that have none yet.
pub fn stale_tenants(tables: &BTreeMap<String, Vec<DataFile>>, changed: &BTreeSet<String>) -> BTreeSet<String> {
    let has_rollup: BTreeSet<&String> =
        tables.get(COMMISSION_ROLLUP).into_iter().flatten().map(|f| &f.tenant_id).collect();
    tables
        .get("commissions")
        .into_iter()
        .flatten()
        .map(|f| &f.tenant_id)
        .filter(|t| changed.contains(*t) || !has_rollup.contains(t))
        .cloned()
        .collect()
}

/// Rebuild the rollup of `tenants` from `tables` (the next snapshot's
/// files), writing new files and pointing `tables` at them.
pub async fn rebuild(
    lake: &Location,
    tables: &mut BTreeMap<String, Vec<DataFile>>,
    tenants: &BTreeSet<String>,
    run_id: &str,
) -> anyhow::Result<()> {
    if tenants.is_empty() {
        return Ok(());
    }
    let draft = Manifest { tables: tables.clone(), ..Manifest::empty() };
    for tenant in tenants {
        let ctx = SessionContext::new();
        register_snapshot(&ctx, lake, &draft, &Scope::Tenant(tenant.clone())).await?;
        let batches = commission_rollup(&ctx).await?;
        let rows: usize = batches.iter().map(|b| b.num_rows()).sum();
        let files = tables.entry(COMMISSION_ROLLUP.to_string()).or_default();
        files.retain(|f| &f.tenant_id != tenant);
        let Some(schema) = batches.first().map(|b| b.schema()) else { continue };
        let bytes = parquet_io::encode(schema, &batches)?;
        let rel = lake::data_file_path(COMMISSION_ROLLUP, tenant, run_id);
        let size = bytes.len() as u64;
        lake.store.put(&lake.child(&rel), bytes.into()).await?;
        files.push(DataFile { path: rel, tenant_id: tenant.clone(), rows: rows as u64, bytes: size });
    }
    Ok(())
}
