//! Object stores from URLs: plain paths and `file://` (local filesystem),
//! `s3://bucket/prefix` (configured by the usual `AWS_*` environment
//! variables, e.g. `AWS_ENDPOINT` for an S3-compatible server), and
//! `memory://name` (in-process, shared by name within the process: tests).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use object_store::ObjectStore;
use object_store::aws::AmazonS3Builder;
use object_store::local::LocalFileSystem;
use object_store::memory::InMemory;
use object_store::path::Path;
use url::Url;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("'{0}' is not a valid location: {1}")]
    BadLocation(String, String),
    #[error("unsupported storage scheme '{0}' (use a path, file://, s3:// or memory://)")]
    UnsupportedScheme(String),
    #[error("cannot open object store for '{0}': {1}")]
    Open(String, object_store::Error),
}

/// A location in an object store: the store, the prefix inside it, and the
/// URL of the store itself (what DataFusion registers it under).
#[derive(Clone, Debug)]
pub struct Location {
    pub store: Arc<dyn ObjectStore>,
    pub prefix: Path,
    pub store_url: Url,
}

impl Location {
    /// `prefix/rel`, where `rel` is a `/`-separated relative path.
    pub fn child(&self, rel: &str) -> Path {
        let mut p = self.prefix.clone();
        for part in rel.split('/').filter(|s| !s.is_empty()) {
            p = p.join(part);
        }
        p
    }

    /// The path of `full` relative to the prefix, `/`-separated.
    pub fn relative(&self, full: &Path) -> String {
        match full.prefix_match(&self.prefix) {
            Some(parts) => parts.map(|p| p.as_ref().to_string()).collect::<Vec<_>>().join("/"),
            None => full.to_string(),
        }
    }

    /// The file behind `full` when the store is the local filesystem (for
    /// an fsync the store itself does not do).
    pub fn local_path(&self, full: &Path) -> Option<std::path::PathBuf> {
        (self.store_url.scheme() == "file").then(|| std::path::PathBuf::from(format!("/{full}")))
    }

    /// The bytes of the object at `rel`, or `None` if there is none.
    pub async fn get_opt(&self, rel: &str) -> Result<Option<bytes::Bytes>, object_store::Error> {
        use object_store::ObjectStoreExt;
        match self.store.get(&self.child(rel)).await {
            Ok(r) => Ok(Some(r.bytes().await?)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// (number, bytes) of the files `<number><suffix>` in the directory
    /// `dir`, ascending (none if the directory does not exist).
    pub async fn list_numbered(&self, dir: &str, suffix: &str) -> Result<Vec<(u64, u64)>, object_store::Error> {
        use futures::TryStreamExt;
        let metas: Vec<_> = match self.store.list(Some(&self.child(dir))).try_collect().await {
            Ok(m) => m,
            Err(object_store::Error::NotFound { .. }) => Vec::new(),
            Err(e) => return Err(e),
        };
        let mut numbered: Vec<(u64, u64)> = metas
            .iter()
            .filter_map(|m| Some((m.location.filename()?.strip_suffix(suffix)?.parse().ok()?, m.size)))
            .collect();
        numbered.sort_unstable();
        Ok(numbered)
    }

    /// Full URL of an object, for DataFusion.
    pub fn object_url(&self, full: &Path) -> String {
        let base = self.store_url.as_str();
        let sep = if base.ends_with('/') { "" } else { "/" };
        format!("{base}{sep}{full}")
    }
}

fn memory_store(name: &str) -> Arc<dyn ObjectStore> {
    static STORES: OnceLock<Mutex<HashMap<String, Arc<dyn ObjectStore>>>> = OnceLock::new();
    let mut stores = STORES.get_or_init(Default::default).lock().expect("memory store registry");
    stores.entry(name.to_string()).or_insert_with(|| Arc::new(InMemory::new())).clone()
}

/// Open the object store behind `location` (a URL or a local path).
/// A local directory is created if it does not exist.
pub fn open(location: &str) -> Result<Location, StoreError> {
    let bad = |e: String| StoreError::BadLocation(location.to_string(), e);
    if !location.contains("://") {
        std::fs::create_dir_all(location).map_err(|e| bad(e.to_string()))?;
        let abs = std::fs::canonicalize(location).map_err(|e| bad(e.to_string()))?;
        let prefix = Path::from_absolute_path(&abs).map_err(|e| bad(e.to_string()))?;
        return Ok(Location {
            store: Arc::new(LocalFileSystem::new()),
            prefix,
            store_url: Url::parse("file:///").expect("static url"),
        });
    }
    let url = Url::parse(location).map_err(|e| bad(e.to_string()))?;
    match url.scheme() {
        "file" => {
            let path = url.to_file_path().map_err(|_| bad("not a local file path".into()))?;
            open(path.to_str().ok_or_else(|| bad("path is not UTF-8".into()))?)
        }
        "memory" => {
            let name = url.host_str().unwrap_or("default").to_string();
            Ok(Location {
                store: memory_store(&name),
                prefix: Path::parse(url.path()).map_err(|e| bad(e.to_string()))?,
                store_url: Url::parse(&format!("memory://{name}")).map_err(|e| bad(e.to_string()))?,
            })
        }
        "s3" | "s3a" => {
            let bucket = url.host_str().ok_or_else(|| bad("missing bucket".into()))?.to_string();
            let store = AmazonS3Builder::from_env()
                .with_bucket_name(&bucket)
                .build()
                .map_err(|e| StoreError::Open(location.to_string(), e))?;
            Ok(Location {
                store: Arc::new(store),
                prefix: Path::parse(url.path()).map_err(|e| bad(e.to_string()))?,
                store_url: Url::parse(&format!("s3://{bucket}")).map_err(|e| bad(e.to_string()))?,
            })
        }
        other => Err(StoreError::UnsupportedScheme(other.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_paths_are_local_and_created() {
        let dir = tempfile::tempdir().unwrap();
        let lake = dir.path().join("a/lake");
        let loc = open(lake.to_str().unwrap()).unwrap();
        assert!(lake.is_dir());
        let child = loc.child("policies/tenant_id=t1/x.parquet");
        assert_eq!(loc.relative(&child), "policies/tenant_id=t1/x.parquet");
        let canon = std::fs::canonicalize(&lake).unwrap();
        assert_eq!(loc.object_url(&child), format!("file://{}/policies/tenant_id=t1/x.parquet", canon.display()));
    }

    #[test]
    fn memory_stores_are_shared_by_name() {
        let a = open("memory://shared-test/lake").unwrap();
        let b = open("memory://shared-test/other").unwrap();
        assert!(Arc::ptr_eq(&a.store, &b.store));
        assert_eq!(a.prefix.as_ref(), "lake");
        assert_eq!(a.store_url.as_str(), "memory://shared-test");
        assert!(matches!(open("ftp://x/y"), Err(StoreError::UnsupportedScheme(s)) if s == "ftp"));
    }
}
