//! Derived tables built at publish time, so that hot queries read a few
//! thousand pre-aggregated rows instead of millions of facts: the monthly
//! commission rollups and the renewal rollup
//! (`query::metrics::{commission_rollups, renewal_rollup}`).
//!
//! A tenant's rollup is rebuilt whenever its commissions or policies change
//! in a run (or it has none yet), from the very files the new snapshot will
//! reference, and published in the same manifest: the rollup can never
//! disagree with the facts of its snapshot.

use std::collections::{BTreeMap, BTreeSet};

use datafusion::prelude::SessionContext;
use futures::{StreamExt, TryStreamExt};
use object_store::ObjectStoreExt;

use crate::lake::{self, DataFile, Location, Manifest, parquet_io};
use crate::query::metrics::{commission_rollups, renewal_rollup};

pub use crate::lake::catalog::ROLLUPS;
use crate::query::tables::{Scope, register_snapshot};

/// Tenants whose rollups must be (re)built: those with facts whose
/// commissions or policies changed, or that lack a rollup.
pub fn stale_tenants(tables: &BTreeMap<String, Vec<DataFile>>, changed: &BTreeSet<String>) -> BTreeSet<String> {
    let tenants_of = |table: &str| -> BTreeSet<String> {
        tables.get(table).into_iter().flatten().map(|f| f.tenant_id.clone()).collect()
    };
    let with_facts: BTreeSet<String> = tenants_of("commissions").union(&tenants_of("policies")).cloned().collect();
    let complete: Vec<BTreeSet<String>> = ROLLUPS.iter().map(|t| tenants_of(t)).collect();
    with_facts.into_iter().filter(|t| changed.contains(t) || complete.iter().any(|c| !c.contains(t))).collect()
}

/// Build and write every rollup of one tenant.
async fn build_tenant(
    lake: &Location,
    draft: &Manifest,
    tenant: &str,
    run_id: &str,
) -> anyhow::Result<Vec<(&'static str, DataFile)>> {
    let ctx = SessionContext::new();
    register_snapshot(&ctx, lake, draft, &Scope::Tenant(tenant.to_string())).await?;
    let mut built = commission_rollups(&ctx).await?;
    built.push(renewal_rollup(&ctx).await?);
    debug_assert_eq!(built.iter().map(|b| b.0).collect::<BTreeSet<_>>(), ROLLUPS.into_iter().collect());
    let mut out = Vec::with_capacity(built.len());
    for (table, schema, batches) in built {
        let rows: usize = batches.iter().map(|b| b.num_rows()).sum();
        // Written even when empty, so that "built" is visible in the manifest.
        let bytes = parquet_io::encode_as(schema, &batches, parquet_io::Layout::Rollup)?;
        let rel = lake::data_file_path(table, tenant, run_id);
        let size = bytes.len() as u64;
        lake.store.put(&lake.child(&rel), bytes.into()).await?;
        out.push((table, DataFile { path: rel, tenant_id: tenant.to_string(), rows: rows as u64, bytes: size }));
    }
    Ok(out)
}

/// Rebuild the rollups of `tenants` from `tables` (the next snapshot's
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
    // Tenants are independent: build two at a time, so one tenant's serial
    // steps (planning, encoding, the put) overlap another's scans.
    let built: Vec<Vec<(&str, DataFile)>> = futures::stream::iter(tenants)
        .map(|tenant| build_tenant(lake, &draft, tenant, run_id))
        .buffer_unordered(2)
        .try_collect()
        .await?;
    for (table, file) in built.into_iter().flatten() {
        let files = tables.entry(table.to_string()).or_default();
        files.retain(|f| f.tenant_id != file.tenant_id);
        files.push(file);
    }
    Ok(())
}
