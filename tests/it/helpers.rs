//! Shared test helpers: landing folders on disk and queries over a lake.

use std::path::{Path, PathBuf};

use arrow::record_batch::RecordBatch;
use cip::lake::{Location, Manifest, snapshot, store};
use cip::query::tables::{Scope, register_snapshot};
use datafusion::prelude::SessionContext;

/// A temporary landing folder and lake.
pub struct TestLake {
    pub dir: tempfile::TempDir,
}

impl TestLake {
    pub fn new() -> Self {
        TestLake { dir: tempfile::tempdir().unwrap() }
    }

    pub fn landing_path(&self) -> PathBuf {
        self.dir.path().join("landing")
    }

    pub fn lake_path(&self) -> PathBuf {
        self.dir.path().join("lake")
    }

    /// Write `content` to `landing/<rel>`.
    pub fn land(&self, rel: &str, content: &str) {
        write(&self.landing_path().join(rel), content.as_bytes());
    }

    /// Where the lake lives: the local folder, or — when `scripts/test.sh`
    /// runs the suite again against its S3 server (`CIP_TEST_LAKE=s3`) — a
    /// prefix of its own in the test bucket.
    pub fn lake_url(&self) -> String {
        match (std::env::var("CIP_TEST_LAKE").as_deref(), std::env::var("CIP_TEST_S3_BUCKET")) {
            (Ok("s3"), Ok(bucket)) => {
                let id = self.dir.path().file_name().unwrap().to_string_lossy().trim_start_matches('.').to_string();
                format!("s3://{bucket}/{id}/lake")
            }
            _ => self.lake_path().to_str().unwrap().to_string(),
        }
    }

    pub fn lake(&self) -> Location {
        store::open(&self.lake_url()).unwrap()
    }

    pub fn landing(&self) -> Location {
        store::open(self.landing_path().to_str().unwrap()).unwrap()
    }

    pub async fn latest(&self) -> Option<Manifest> {
        snapshot::latest(&self.lake()).await.unwrap()
    }

    /// Run `sql` over the latest snapshot as seen by `scope`.
    pub async fn sql(&self, scope: Scope, sql: &str) -> Vec<RecordBatch> {
        let manifest = self.latest().await.expect("a published snapshot");
        sql_at(&self.lake(), &manifest, scope, sql).await
    }
}

/// The project's directory, read when the test runs (cargo sets it for
/// `cargo test`), falling back to where the test was compiled: a test binary
/// reused from a build cache in another checkout must still read this one's files.
pub fn project_dir() -> PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")))
}

pub fn write(path: &Path, bytes: &[u8]) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, bytes).unwrap();
}

pub async fn sql_at(lake: &Location, manifest: &Manifest, scope: Scope, sql: &str) -> Vec<RecordBatch> {
    let ctx = SessionContext::new();
    register_snapshot(&ctx, lake, manifest, &scope).await.unwrap();
    ctx.sql(sql).await.unwrap().collect().await.unwrap()
}

pub fn tenant(t: &str) -> Scope {
    Scope::Tenant(t.to_string())
}

/// JSON bodies for reqwest without its `json` feature: that feature would
/// give the test build a reqwest (and so object_store, parquet, DataFusion,
/// deltalake) compiled with other features than the demo's build, and the
/// README's second command would compile the whole stack a second time.
pub trait JsonBody {
    fn json_body(self, body: &serde_json::Value) -> Self;
}

impl JsonBody for reqwest::RequestBuilder {
    fn json_body(self, body: &serde_json::Value) -> Self {
        self.header("content-type", "application/json").body(serde_json::to_vec(body).expect("JSON serialises"))
    }
}

/// A response body as JSON; panics (failing the test) when it is not JSON.
pub async fn json_of(resp: reqwest::Response) -> serde_json::Value {
    let bytes = resp.bytes().await.expect("response body");
    serde_json::from_slice(&bytes).unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&bytes)))
}

/// `SELECT count(*) …` over the latest snapshot as `tenant` sees it.
pub async fn count(lake: &TestLake, tenant_id: &str, sql: &str) -> i64 {
    let batches = lake.sql(tenant(tenant_id), sql).await;
    let c = batches[0].column(0).as_any().downcast_ref::<arrow::array::Int64Array>().expect("count(*) is Int64");
    c.value(0)
}
