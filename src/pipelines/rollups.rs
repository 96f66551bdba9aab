//! Derived tables built at publish time, so that hot queries read a few
//! thousand pre-aggregated rows instead of millions of facts: the monthly
//! commission rollups and the renewal rollup
//! (`query::rollups`).
//!
//! A tenant's rollup is rebuilt whenever its commissions or policies change
//! in a run (or it has none yet), from the very files the new snapshot will
//! reference, and published in the same manifest: the rollup can never
//! disagree with the facts of its snapshot.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use arrow::record_batch::RecordBatch;
use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use object_store::ObjectStoreExt;

use crate::lake::{self, DataFile, Location, Manifest, parquet_io};
use crate::query::rollups::{
    Built, COMMISSION_COLUMNS, Changes, DICTIONARY_COLUMNS, NeedsRebuild, POLICY_COLUMNS, TenantRollups,
    commission_rollups, renewal_rollup,
};

pub use crate::lake::catalog::ROLLUPS;

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

/// The tenant's files of `table` in `draft`, fetched whole.
async fn fetch_tenant(lake: &Location, draft: &Manifest, table: &str, tenant: &str) -> anyhow::Result<Vec<Bytes>> {
    let files: Vec<&DataFile> = draft.tenant_files(table, tenant).collect();
    futures::stream::iter(files)
        .map(|f| async move { parquet_io::fetch(&lake.store, &lake.child(&f.path)).await })
        .buffered(4)
        .try_collect()
        .await
        .map_err(anyhow::Error::from)
}

fn decode_all(files: Vec<Bytes>, columns: &[&str]) -> anyhow::Result<Vec<RecordBatch>> {
    let mut batches = Vec::new();
    for bytes in files {
        batches.extend(parquet_io::decode_dictionaries(bytes, columns, &DICTIONARY_COLUMNS, 64 * 1024)?);
    }
    Ok(batches)
}

/// A tenant's rollup files as written, and its kept state if asked for.
type BuiltTenant = (Vec<(&'static str, DataFile)>, Option<(String, TenantRollups)>);

/// Build and write every rollup of one tenant; with `keep`, also its
/// state for later commits to update.
async fn build_tenant(
    lake: &Location,
    draft: &Manifest,
    tenant: &str,
    run_id: &str,
    keep: bool,
) -> anyhow::Result<BuiltTenant> {
    let started = Instant::now();
    let commissions = fetch_tenant(lake, draft, "commissions", tenant).await?;
    let policies = fetch_tenant(lake, draft, "policies", tenant).await?;
    // Decoding, summing and encoding are CPU work: off the async threads,
    // so that two tenants build on two cores.
    let fetched = started.elapsed();
    let t = tenant.to_string();
    let (encoded, state) = tokio::task::spawn_blocking(move || {
        if keep {
            let state = TenantRollups::from_facts(
                decode_all(commissions, &COMMISSION_COLUMNS)?,
                decode_all(policies, &POLICY_COLUMNS)?,
            )?;
            Ok::<_, anyhow::Error>((encode_state(&state)?, Some(state)))
        } else {
            Ok((build_blocking(&t, fetched, commissions, policies)?, None))
        }
    })
    .await??;
    let files = write_tenant(lake, tenant, run_id, encoded).await?;
    Ok((files, state.map(|s| (tenant.to_string(), s))))
}

/// Write one tenant's encoded rollups as new files.
async fn write_tenant(
    lake: &Location,
    tenant: &str,
    run_id: &str,
    encoded: Vec<Encoded>,
) -> anyhow::Result<Vec<(&'static str, DataFile)>> {
    let mut out = Vec::with_capacity(encoded.len());
    for (table, rows, bytes) in encoded {
        let rel = lake::data_file_path(table, tenant, run_id);
        let size = bytes.len() as u64;
        lake.store.put(&lake.child(&rel), bytes.into()).await?;
        out.push((table, DataFile { path: rel, tenant_id: tenant.to_string(), rows, bytes: size }));
    }
    Ok(out)
}

fn encode_state(state: &TenantRollups) -> anyhow::Result<Vec<Encoded>> {
    state.tables()?.into_iter().map(encode).collect()
}

/// Point `tables` at a tenant's new rollup files.
fn point_at(tables: &mut BTreeMap<String, Vec<DataFile>>, built: Vec<(&'static str, DataFile)>) {
    for (table, file) in built {
        let files = tables.entry(table.to_string()).or_default();
        files.retain(|f| f.tenant_id != file.tenant_id);
        files.push(file);
    }
}

/// Update a tenant's kept rollups with the rows of one commit and write
/// them; `Ok(Err(state error))` when the change cannot be applied (the
/// caller rebuilds the tenant instead).
pub async fn update(
    lake: &Location,
    tables: &mut BTreeMap<String, Vec<DataFile>>,
    tenant: &str,
    mut state: TenantRollups,
    changes: Changes,
    run_id: &str,
) -> anyhow::Result<Result<TenantRollups, NeedsRebuild>> {
    let applied = tokio::task::spawn_blocking(move || match state.apply(changes) {
        Ok(()) => encode_state(&state).map(|e| Ok((e, state))),
        Err(e) => Ok(Err(e)),
    })
    .await??;
    let (encoded, state) = match applied {
        Ok(done) => done,
        Err(e) => return Ok(Err(e)),
    };
    point_at(tables, write_tenant(lake, tenant, run_id, encoded).await?);
    Ok(Ok(state))
}

/// An encoded rollup: table, rows, Parquet bytes.
type Encoded = (&'static str, u64, Bytes);

fn encode(built: Built) -> anyhow::Result<Encoded> {
    let (table, schema, batches) = built;
    let rows: usize = batches.iter().map(|b| b.num_rows()).sum();
    // Written even when empty, so that "built" is visible in the manifest.
    Ok((table, rows as u64, parquet_io::encode_as(schema, &batches, parquet_io::Layout::Rollup)?))
}

/// Decode, sum and encode one tenant's rollups. The renewal rollup needs only
/// the policies, so it is built on a second thread beside the commission
/// rollups: the largest tenant, which finishes last while the other core is
/// idle, then takes about the time of its commission rollups alone.
fn build_blocking(
    tenant: &str,
    fetched: Duration,
    commissions: Vec<Bytes>,
    policies: Vec<Bytes>,
) -> anyhow::Result<Vec<Encoded>> {
    let started = Instant::now();
    let ms = |d: Duration| d.as_millis() as u64;
    let (commissions, policies) = std::thread::scope(|s| {
        let commissions = s.spawn(|| decode_all(commissions, &COMMISSION_COLUMNS));
        let policies = decode_all(policies, &POLICY_COLUMNS);
        (commissions.join().expect("decoding does not panic"), policies)
    });
    let (commissions, policies) = (commissions?, policies?);
    let decoded = started.elapsed();
    std::thread::scope(|s| {
        let renewals = s.spawn(|| {
            let t = Instant::now();
            let built = renewal_rollup(&policies)?;
            let summed = t.elapsed();
            Ok::<_, anyhow::Error>((encode(built)?, summed, t.elapsed() - summed))
        });
        let mut encoded = Vec::with_capacity(ROLLUPS.len());
        let built = commission_rollups(&commissions, &policies)?;
        let summed = started.elapsed();
        for b in built {
            encoded.push(encode(b)?);
        }
        let (renewal, renewals_ms, renewals_encode_ms) = renewals.join().expect("the renewal rollup does not panic")?;
        encoded.push(renewal);
        debug_assert_eq!(encoded.iter().map(|e| e.0).collect::<BTreeSet<_>>(), ROLLUPS.into_iter().collect());
        tracing::debug!(
            tenant,
            fetch_ms = ms(fetched),
            decode_ms = ms(decoded),
            commissions_ms = ms(summed - decoded),
            commissions_encode_ms = ms(started.elapsed() - summed),
            renewals_ms = ms(renewals_ms),
            renewals_encode_ms = ms(renewals_encode_ms),
            "tenant rollups built"
        );
        Ok(encoded)
    })
}

/// Rebuild the rollups of `tenants` from `tables` (the next snapshot's
/// files), writing new files and pointing `tables` at them; with `keep`,
/// the tenants' states for later commits to update.
pub async fn rebuild(
    lake: &Location,
    tables: &mut BTreeMap<String, Vec<DataFile>>,
    tenants: &BTreeSet<String>,
    run_id: &str,
    keep: bool,
) -> anyhow::Result<Vec<(String, TenantRollups)>> {
    if tenants.is_empty() {
        return Ok(Vec::new());
    }
    let draft = Manifest { tables: tables.clone(), ..Manifest::empty() };
    // Tenants are independent: two at a time, largest first, so that the
    // two cores finish together.
    let mut tenants: Vec<&String> = tenants.iter().collect();
    let size = |t: &str| {
        draft.tenant_files("commissions", t).chain(draft.tenant_files("policies", t)).map(|f| f.rows).sum::<u64>()
    };
    tenants.sort_by_key(|t| std::cmp::Reverse(size(t)));
    let built: Vec<BuiltTenant> = futures::stream::iter(tenants)
        .map(|tenant| build_tenant(lake, &draft, tenant, run_id, keep))
        .buffer_unordered(2)
        .try_collect()
        .await?;
    let mut states = Vec::new();
    for (files, state) in built {
        point_at(tables, files);
        states.extend(state);
    }
    Ok(states)
}
