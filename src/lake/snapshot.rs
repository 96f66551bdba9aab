//! Snapshots: the one atomic pointer per published version of the lake.
//!
//! Data files are written first under names no snapshot references yet;
//! then `_snapshots/<version>.json` is written with a create-if-absent put.
//! A reader takes the highest version, so it sees a whole snapshot or the
//! previous one, and two writers can never both publish the same version.

use std::collections::BTreeMap;

use futures::TryStreamExt;
use object_store::{ObjectStoreExt, PutMode, PutOptions};
use serde::{Deserialize, Serialize};

use super::store::Location;

pub const SNAPSHOTS_DIR: &str = "_snapshots";

/// One Parquet file of a table, as the snapshot references it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DataFile {
    /// Relative to the lake root.
    pub path: String,
    pub tenant_id: String,
    pub rows: u64,
    pub bytes: u64,
}

/// A published version of the lake: every live file of every table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    pub version: u64,
    pub parent: Option<u64>,
    pub run_id: String,
    pub created_at: String,
    /// Table name → its files.
    pub tables: BTreeMap<String, Vec<DataFile>>,
}

impl Manifest {
    pub fn empty() -> Self {
        Manifest { version: 0, parent: None, run_id: String::new(), created_at: String::new(), tables: BTreeMap::new() }
    }

    pub fn files(&self, table: &str) -> &[DataFile] {
        self.tables.get(table).map(Vec::as_slice).unwrap_or(&[])
    }

    /// Files of `table` holding `tenant`'s rows.
    pub fn tenant_files<'a>(&'a self, table: &str, tenant: &'a str) -> impl Iterator<Item = &'a DataFile> + 'a {
        self.files(table).iter().filter(move |f| f.tenant_id == tenant)
    }

    pub fn rows(&self, table: &str) -> u64 {
        self.files(table).iter().map(|f| f.rows).sum()
    }

    /// Tenants with at least one file in any table, sorted.
    pub fn tenants(&self) -> Vec<String> {
        let mut t: Vec<String> = self.tables.values().flatten().map(|f| f.tenant_id.clone()).collect();
        t.sort();
        t.dedup();
        t
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error("version {0} was published by another writer first")]
    Conflict(u64),
    #[error("snapshot {0} is unreadable: {1}")]
    Corrupt(String, String),
    #[error(transparent)]
    Store(#[from] object_store::Error),
}

fn snapshot_name(version: u64) -> String {
    format!("{SNAPSHOTS_DIR}/{version:020}.json")
}

/// The highest published version, if any.
pub async fn latest_version(lake: &Location) -> Result<Option<u64>, SnapshotError> {
    let dir = lake.child(SNAPSHOTS_DIR);
    let metas: Vec<_> = lake.store.list(Some(&dir)).try_collect().await?;
    Ok(metas.iter().filter_map(|m| m.location.filename()?.strip_suffix(".json")?.parse::<u64>().ok()).max())
}

pub async fn read(lake: &Location, version: u64) -> Result<Manifest, SnapshotError> {
    let name = snapshot_name(version);
    let bytes = lake.store.get(&lake.child(&name)).await?.bytes().await?;
    serde_json::from_slice(&bytes).map_err(|e| SnapshotError::Corrupt(name, e.to_string()))
}

/// The latest published manifest, or `None` for a lake never published to.
pub async fn latest(lake: &Location) -> Result<Option<Manifest>, SnapshotError> {
    match latest_version(lake).await? {
        Some(v) => Ok(Some(read(lake, v).await?)),
        None => Ok(None),
    }
}

/// Publish `manifest` as its version. Fails with [`SnapshotError::Conflict`]
/// if that version exists already (another writer won the race).
pub async fn publish(lake: &Location, manifest: &Manifest) -> Result<(), SnapshotError> {
    let body = serde_json::to_vec_pretty(manifest).expect("manifest serialises");
    let opts = PutOptions { mode: PutMode::Create, ..Default::default() };
    match lake.store.put_opts(&lake.child(&snapshot_name(manifest.version)), body.into(), opts).await {
        Ok(_) => Ok(()),
        Err(object_store::Error::AlreadyExists { .. }) => Err(SnapshotError::Conflict(manifest.version)),
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest(version: u64) -> Manifest {
        let mut m = Manifest::empty();
        m.version = version;
        m.tables.insert(
            "policies".into(),
            vec![
                DataFile { path: "policies/tenant_id=a/1.parquet".into(), tenant_id: "a".into(), rows: 3, bytes: 10 },
                DataFile { path: "policies/tenant_id=b/1.parquet".into(), tenant_id: "b".into(), rows: 4, bytes: 10 },
            ],
        );
        m
    }

    #[tokio::test]
    async fn latest_is_the_highest_version_and_versions_are_write_once() {
        let dir = tempfile::tempdir().unwrap();
        let lake = super::super::store::open(dir.path().to_str().unwrap()).unwrap();
        assert_eq!(latest(&lake).await.unwrap(), None);
        publish(&lake, &manifest(1)).await.unwrap();
        publish(&lake, &manifest(2)).await.unwrap();
        assert!(matches!(publish(&lake, &manifest(2)).await, Err(SnapshotError::Conflict(2))));
        let m = latest(&lake).await.unwrap().unwrap();
        assert_eq!(m.version, 2);
        assert_eq!(m.rows("policies"), 7);
        assert_eq!(m.tenant_files("policies", "b").map(|f| f.rows).sum::<u64>(), 4);
        assert_eq!(m.tenants(), vec!["a".to_string(), "b".to_string()]);
        assert!(dir.path().join("_snapshots/00000000000000000002.json").is_file());
    }
}
