//! The lake as Delta tables: commits through remove/add actions, concurrent
//! writers, crashes between data and commit, vacuum, optimize, checkpoints
//! and time travel. Each test runs on the local filesystem, and on the S3
//! server when `scripts/test.sh` runs the suite a second time against it.

use std::collections::BTreeMap;

use cip::lake::{delta, maintenance, parquet_io, snapshot};
use cip::pipelines::batch::{FailPoint, IngestOptions, ingest};
use futures::TryStreamExt;
use object_store::ObjectStoreExt;
use serde_json::Value;

use crate::helpers::{JsonBody, TestLake, json_of, sql_at, tenant};

const HEADER: &str = "tenant_id,commission_id,policy_id,agent_id,carrier_id,transaction_date,kind,premium_amount,commission_rate,gross_commission,agent_commission,agency_commission";

fn rows(lines: &[&str]) -> String {
    format!("{HEADER}\n{}\n", lines.join("\n"))
}

const C1: &str = "t1,C1,P1,A1,K1,2024-01-15,new,1000.00,0.10,100.00,40.00,60.00";
const C2: &str = "t1,C2,P2,A1,K1,2024-02-15,new,500.00,0.10,50.00,20.00,30.00";
/// C1 again with another amount: replaces its row.
const C1_CHANGED: &str = "t1,C1,P1,A1,K1,2024-01-15,new,1000.00,0.12,120.00,48.00,72.00";
const D1: &str = "t2,D1,Q1,B1,K1,2024-01-10,new,2000.00,0.10,200.00,80.00,120.00";

async fn run(t: &TestLake) -> cip::pipelines::batch::IngestReport {
    let report = ingest(&t.landing(), &t.lake(), &IngestOptions::default()).await.unwrap();
    // Alone on its lake, a run resolves once (no other writer published first).
    assert_eq!(report.attempts, 1, "{report:?}");
    report
}

/// The actions of `table`'s Delta commit `version`: (kind, path) pairs.
async fn actions(t: &TestLake, table: &str, version: u64) -> Vec<(String, String)> {
    let lake = t.lake();
    let bytes = lake.store.get(&lake.child(&delta::commit_path(table, version))).await.unwrap().bytes().await.unwrap();
    let mut out = Vec::new();
    for line in std::str::from_utf8(&bytes).unwrap().lines() {
        let v: Value = serde_json::from_str(line).unwrap();
        for kind in ["add", "remove"] {
            if let Some(a) = v.get(kind) {
                out.push((kind.to_string(), a["path"].as_str().unwrap().to_string()));
            }
        }
    }
    out.sort();
    out
}

async fn gross(t: &TestLake, m: &snapshot::Manifest, who: &str) -> Vec<String> {
    let sql = "select count(*) as n, sum(gross_commission) as gross from commissions";
    let batches = sql_at(&t.lake(), m, tenant(who), sql).await;
    datafusion::arrow::util::pretty::pretty_format_batches(&batches)
        .unwrap()
        .to_string()
        .lines()
        .map(String::from)
        .collect()
}

#[tokio::test]
async fn a_changed_row_is_a_remove_and_an_add_and_old_versions_stay_readable() {
    let t = TestLake::new();
    t.land("commissions/a.csv", &rows(&[C1, C2]));
    let first = run(&t).await;
    assert_eq!(first.snapshot, Some(1));
    let v1 = t.latest().await.unwrap();
    let [file] = v1.files("commissions") else { panic!("one file: {:?}", v1.files("commissions")) };
    let staged = file.path.strip_prefix("commissions/").unwrap().to_string();
    assert_eq!(actions(&t, "commissions", 0).await, [("add".to_string(), staged.clone())]);

    // The same delivery again commits nothing.
    let again = run(&t).await;
    assert_eq!((again.snapshot, again.published), (Some(1), false));

    // A later file changes C1: its old file is removed, C2 rewritten beside it, C1's new row added.
    t.land("commissions/b.csv", &rows(&[C1_CHANGED]));
    let second = run(&t).await;
    assert_eq!(second.snapshot, Some(2));
    let acts = actions(&t, "commissions", 1).await;
    assert_eq!(acts.iter().filter(|(k, _)| k == "remove").collect::<Vec<_>>(), [&("remove".to_string(), staged)]);
    assert_eq!(acts.iter().filter(|(k, _)| k == "add").count(), 2, "{acts:?}");
    let v2 = t.latest().await.unwrap();
    assert_eq!(v2.delta_versions["commissions"], 1);
    // 120.00 + 50.00 now; 100.00 + 50.00 at lake version 1 (time travel).
    assert_eq!(gross(&t, &v2, "t1").await[3], "| 2 | 170.00 |");
    let old = snapshot::read(&t.lake(), 1).await.unwrap();
    assert_eq!(gross(&t, &old, "t1").await[3], "| 2 | 150.00 |");
    // History lists both versions with their operation.
    let h = maintenance::history(&t.lake()).await.unwrap();
    let ops: Vec<(u64, &str)> = h.iter().map(|c| (c.version, c.operation.as_str())).collect();
    assert_eq!(ops, [(1, "ingest"), (2, "ingest")]);
    assert_eq!(h[1].tables["commissions"].delta_version, 1);
    assert_eq!(h[1].tables["commissions"].rows, 2);
}

#[tokio::test]
async fn two_concurrent_writers_both_land() {
    let t = TestLake::new();
    t.land("commissions/a.csv", &rows(&[C1]));
    run(&t).await;
    // Two landings ingested at once into the same lake: one of the same
    // tenant's partition (a conflict that must be re-resolved), one of another tenant.
    let other = TestLake::new();
    other.land("commissions/x.csv", &rows(&[C2]));
    let third = TestLake::new();
    third.land("commissions/y.csv", &rows(&[D1]));
    let lake = t.lake();
    let opts = IngestOptions::default();
    let (la, lb) = (other.landing(), third.landing());
    let (a, b) = tokio::join!(ingest(&la, &lake, &opts), ingest(&lb, &lake, &opts));
    let (a, b) = (a.unwrap(), b.unwrap());
    let mut versions = [a.snapshot.unwrap(), b.snapshot.unwrap()];
    versions.sort();
    assert_eq!(versions, [2, 3]);
    let latest = t.latest().await.unwrap();
    assert_eq!(latest.version, 3);
    assert_eq!(gross(&t, &latest, "t1").await[3], "| 2 | 150.00 |");
    assert_eq!(gross(&t, &latest, "t2").await[3], "| 1 | 200.00 |");
}

#[tokio::test]
async fn a_crash_between_data_and_commit_leaves_orphans_that_vacuum_removes() {
    let t = TestLake::new();
    t.land("commissions/a.csv", &rows(&[C1]));
    run(&t).await;
    t.land("commissions/b.csv", &rows(&[C2, C1_CHANGED]));
    let opts = IngestOptions { fail: Some(FailPoint::BeforePublish), ..Default::default() };
    assert!(ingest(&t.landing(), &t.lake(), &opts).await.is_err());
    let v1 = t.latest().await.unwrap();
    assert_eq!(v1.version, 1);
    assert_eq!(gross(&t, &v1, "t1").await[3], "| 1 | 100.00 |");
    let lake = t.lake();
    let data_files = || async {
        let all: Vec<_> = lake.store.list(Some(&lake.child("commissions"))).try_collect().await.unwrap();
        all.into_iter().filter(|m| !m.location.as_ref().contains("_delta_log")).count()
    };
    let before = data_files().await;
    assert!(before > 1, "the crashed run left its data files: {before}");
    let dry = maintenance::vacuum(&lake, 0, true).await.unwrap();
    assert_eq!(data_files().await, before, "a dry run deletes nothing");
    let deleted = maintenance::vacuum(&lake, 0, false).await.unwrap();
    assert_eq!(deleted, dry);
    assert!(deleted.iter().all(|p| p.starts_with("commissions/") || p.contains("/tenant_id=")), "{deleted:?}");
    // Only the live file of commissions is left, and the answer is unchanged.
    assert_eq!(data_files().await, 1);
    let v1 = t.latest().await.unwrap();
    assert_eq!(gross(&t, &v1, "t1").await[3], "| 1 | 100.00 |");
    // The next clean run publishes version 2 with both changes.
    let ok = run(&t).await;
    assert_eq!(ok.snapshot, Some(2));
    assert_eq!(gross(&t, &t.latest().await.unwrap(), "t1").await[3], "| 2 | 170.00 |");
}

#[tokio::test]
async fn optimize_compacts_files_without_changing_any_answer() {
    let t = TestLake::new();
    // Three runs of one new row each: three files in t1's partition.
    for (name, row) in [("a", C1), ("b", C2), ("c", "t1,C3,P3,A2,K1,2024-03-01,new,10.00,0.10,1.00,0.40,0.60")] {
        t.land(&format!("commissions/{name}.csv"), &rows(&[row]));
        run(&t).await;
    }
    let before = t.latest().await.unwrap();
    assert_eq!(before.tenant_files("commissions", "t1").count(), 3);
    let answer = gross(&t, &before, "t1").await;
    assert_eq!(answer[3], "| 3 | 151.00 |");
    let report =
        maintenance::optimize(&t.lake(), Some("commissions"), None, "opt-test", maintenance::Compaction::all(2))
            .await
            .unwrap();
    assert_eq!(report.version, Some(before.version + 1));
    assert_eq!(report.compacted.len(), 1);
    assert_eq!((report.compacted[0].files_before, report.compacted[0].rows), (3, 3));
    let after = t.latest().await.unwrap();
    assert_eq!(after.tenant_files("commissions", "t1").count(), 1);
    assert_eq!(gross(&t, &after, "t1").await, answer);
    // The Delta commit says no data changed.
    let lake = t.lake();
    let v = after.delta_versions["commissions"];
    let bytes =
        lake.store.get(&lake.child(&delta::commit_path("commissions", v))).await.unwrap().bytes().await.unwrap();
    let text = String::from_utf8(bytes.to_vec()).unwrap();
    assert!(text.contains("\"operation\":\"OPTIMIZE\"") && !text.contains("\"dataChange\":true"), "{text}");
    // Nothing left to compact: no new version.
    let again =
        maintenance::optimize(&t.lake(), Some("commissions"), None, "opt-test-2", maintenance::Compaction::all(2))
            .await
            .unwrap();
    assert_eq!(again.version, None);
}

/// The answers of a fresh server over `t`'s newest lake version to `queries`
/// (as tenant t1), with the version it served.
async fn graphql_answers(t: &TestLake, key: &str, queries: &[&str]) -> (Option<u64>, Vec<Value>) {
    use cip::config::ServeSettings;
    use cip::serve::Application;
    let app = Application::build(ServeSettings::test_config(&t.lake_url())).await.unwrap();
    let url = format!("http://127.0.0.1:{}/graphql", app.port());
    let state = app.state();
    tokio::spawn(app.run_until_stopped(std::future::pending()));
    let client = reqwest::Client::new();
    let mut out = Vec::new();
    for q in queries {
        let resp = client.post(&url).header("X-API-Key", key).json_body(&serde_json::json!({ "query": q })).send();
        let body = json_of(resp.await.unwrap()).await;
        assert!(body.get("errors").is_none(), "{q}: {body}");
        out.push(body["data"].clone());
    }
    (state.version(), out)
}

#[tokio::test]
async fn optimize_changes_no_graphql_answer() {
    let t = TestLake::new();
    // Four runs: four files in t1's commissions partition, one row changed.
    let c3 = "t1,C3,P3,A2,K2,2024-03-01,new,10.00,0.10,1.00,0.40,0.60";
    for (name, lines) in [("a", vec![C1]), ("b", vec![C2]), ("c", vec![c3]), ("d", vec![C1_CHANGED])] {
        t.land(&format!("commissions/{name}.csv"), &rows(&lines));
        run(&t).await;
    }
    let scopes = std::collections::BTreeSet::from(["analytics:read".to_string()]);
    let (key, _) = cip::auth::keys::create(&t.lake(), "t1", scopes, "test").await.unwrap();
    let queries = [
        // Whole months (the rollup) and a range of days (the raw facts).
        r#"{ report(input: {metrics: [GROSS_COMMISSION, AGENT_COMMISSION], dimensions: [AGENT, MONTH], range: {from: "2024-01-01", to: "2025-01-01"}}) { rows { dimensions values { amount } } } }"#,
        r#"{ report(input: {metrics: [GROSS_COMMISSION], dimensions: [CARRIER], range: {from: "2024-01-10", to: "2024-02-20"}}) { rows { dimensions values { amount } } } }"#,
        r#"{ leaderboard(by: AGENT, range: {from: "2024-01-01", to: "2025-01-01"}) { rank key value { amount } } }"#,
        r#"{ trend(metric: GROSS_COMMISSION, range: {from: "2024-01-01", to: "2024-04-01"}, groupBy: CARRIER) { key points { month value { amount } } } }"#,
    ];
    let (v_before, before) = graphql_answers(&t, &key, &queries).await;
    let files_before = t.latest().await.unwrap().tenant_files("commissions", "t1").count();
    // A1: 120.00 (C1 as changed) + 50.00; A2: 1.00.
    assert_eq!(before[2]["leaderboard"][0]["value"]["amount"], "170.00");
    assert_eq!(before[2]["leaderboard"][1]["value"]["amount"], "1.00");

    let report =
        maintenance::optimize(&t.lake(), None, None, "opt-gql", maintenance::Compaction::all(2)).await.unwrap();
    let (v_after, after) = graphql_answers(&t, &key, &queries).await;
    assert_eq!(v_after, report.version);
    assert!(v_after > v_before, "{v_before:?} → {v_after:?}");
    let files_after = t.latest().await.unwrap().tenant_files("commissions", "t1").count();
    assert!(files_after < files_before, "{files_before} → {files_after} files");
    assert_eq!(after, before);
}

#[tokio::test]
async fn tables_are_checkpointed_and_read_back_from_the_checkpoint() {
    let t = TestLake::new();
    let mut expected = 0i64;
    for i in 0..11 {
        let row = format!("t1,C{i},P{i},A1,K1,2024-01-15,new,100.00,0.10,10.00,4.00,6.00");
        t.land(&format!("commissions/{i:02}.csv"), &rows(&[&row]));
        run(&t).await;
        expected += 1000;
    }
    let lake = t.lake();
    let latest = t.latest().await.unwrap();
    assert_eq!(latest.delta_versions["commissions"], 10);
    let checkpoint = lake.child(&format!("commissions/_delta_log/{:020}.checkpoint.parquet", 10));
    assert!(lake.store.head(&checkpoint).await.is_ok(), "checkpoint at version 10");
    // The commits before it are not needed to read the table any more.
    for v in 0..10 {
        lake.store.delete(&lake.child(&delta::commit_path("commissions", v))).await.unwrap();
    }
    // deltalake itself (not this process's file cache) reads it from the checkpoint.
    let files = delta::live_files(&lake, "commissions", 10).await.unwrap();
    assert_eq!(files, latest.files("commissions"));
    assert_eq!(files.iter().map(|f| f.rows).sum::<u64>(), 11);
    assert_eq!(gross(&t, &latest, "t1").await[3], format!("| 11 | {}.00 |", expected / 100));

    // Two commits after the checkpoint: a changed row (its file removed,
    // a new one added) and a new row.
    t.land("commissions/11.csv", &rows(&["t1,C1,P1,A1,K1,2024-01-15,new,200.00,0.10,20.00,8.00,12.00"]));
    run(&t).await;
    t.land("commissions/12.csv", &rows(&["t1,C11,P11,A1,K1,2024-01-15,new,100.00,0.10,10.00,4.00,6.00"]));
    run(&t).await;
    let latest = t.latest().await.unwrap();
    assert_eq!(latest.delta_versions["commissions"], 12);
    // Read by name (the checkpoint, then commits 11 and 12; no listing)
    // and by deltalake's replay: the same files, those the lake published.
    let by_name = delta::live_files_by_name(&lake, "commissions", 12).await.unwrap().expect("read by name");
    assert_eq!(by_name, delta::replayed_files(&lake, "commissions", 12).await.unwrap());
    assert_eq!(by_name, latest.files("commissions"));
    assert_eq!((by_name.len(), by_name.iter().map(|f| f.rows).sum::<u64>()), (12, 12));
    assert!(by_name.iter().all(|f| f.tenant_id == "t1" && f.bytes > 0));
    // A version before the checkpoint is not read by name.
    assert!(delta::live_files_by_name(&lake, "commissions", 9).await.unwrap().is_none());
}

#[tokio::test]
async fn a_lake_of_the_old_format_is_refused_then_migrated_in_place() {
    let t = TestLake::new();
    let lake = t.lake();
    t.land("commissions/a.csv", &rows(&[C1]));
    run(&t).await;
    // Make an old-format lake out of this one: its files and a manifest naming them.
    let m = t.latest().await.unwrap();
    let old = TestLake::new();
    let old_lake = old.lake();
    let mut tables = BTreeMap::new();
    for (table, files) in &m.tables {
        for f in files {
            // As the old format wrote them: row hashes as UInt64.
            let batches = parquet_io::read(&lake.store, &lake.child(&f.path), None).await.unwrap();
            let bytes = match batches.first() {
                None => lake.store.get(&lake.child(&f.path)).await.unwrap().bytes().await.unwrap(),
                Some(_) => {
                    let batches: Vec<_> = batches.into_iter().map(uint64_row_hashes).collect();
                    parquet_io::encode(batches[0].schema(), &batches).unwrap()
                }
            };
            old_lake.store.put(&old_lake.child(&f.path), bytes.into()).await.unwrap();
        }
        tables.insert(table.clone(), files.clone());
    }
    let manifest = serde_json::json!({"version": 4, "parent": 3, "run_id": "r", "created_at": "2026-01-01T00:00:00Z", "tables": tables});
    old_lake
        .store
        .put(&old_lake.child("_snapshots/00000000000000000004.json"), manifest.to_string().into())
        .await
        .unwrap();
    let err = snapshot::latest(&old_lake).await.unwrap_err();
    assert!(matches!(err, snapshot::SnapshotError::OldFormat), "{err}");
    assert!(err.to_string().contains("cip lake migrate"), "{err}");
    assert_eq!(maintenance::migrate(&old_lake, "mig").await.unwrap(), Some(1));
    let migrated = old.latest().await.unwrap();
    // Entity files were rewritten with Int64 hashes; the rows are the same.
    assert_eq!(migrated.rows("commissions"), m.rows("commissions"));
    assert!(migrated.files("commissions")[0].path.ends_with("-delta.parquet"), "{:?}", migrated.files("commissions"));
    assert_eq!(gross(&old, &migrated, "t1").await[3], "| 1 | 100.00 |");
    assert_eq!(maintenance::migrate(&old_lake, "again").await.unwrap(), None, "already Delta");
    // The migrated lake takes upserts (its hashes compare with new rows').
    old.land("commissions/b.csv", &rows(&[C1_CHANGED, C2]));
    let report = ingest(&old.landing(), &old_lake, &IngestOptions::default()).await.unwrap();
    assert_eq!((report.entities["commissions"].upserts.updated, report.entities["commissions"].upserts.new), (1, 1));
    assert_eq!(gross(&old, &old.latest().await.unwrap(), "t1").await[3], "| 2 | 170.00 |");
}

#[tokio::test]
async fn a_log_entry_written_by_another_tool_is_refused_before_any_commit() {
    let t = TestLake::new();
    t.land("commissions/a.csv", &rows(&[C1]));
    run(&t).await;
    let lake = t.lake();
    // Another tool appends version 1 to the commissions log.
    let path = lake.child(&delta::commit_path("commissions", 1));
    lake.store.put(&path, r#"{"commitInfo":{"operation":"WRITE"}}"#.into()).await.unwrap();
    t.land("commissions/b.csv", &rows(&[C2]));
    let err = ingest(&t.landing(), &lake, &IngestOptions::default()).await.unwrap_err();
    assert!(err.to_string().contains("that no lake version wrote"), "{err}");
    // No lake version was added, and version 1 is still served as it was.
    let latest = t.latest().await.unwrap();
    assert_eq!(latest.version, 1);
    assert_eq!(gross(&t, &latest, "t1").await[3], "| 1 | 100.00 |");
}

#[tokio::test]
async fn the_server_travels_to_an_older_version() {
    use cip::config::ServeSettings;
    use cip::serve::Application;

    let t = TestLake::new();
    t.land("commissions/a.csv", &rows(&[C1, C2]));
    run(&t).await;
    t.land("commissions/b.csv", &rows(&[C1_CHANGED]));
    run(&t).await;
    let scopes = std::collections::BTreeSet::from(["analytics:read".to_string()]);
    let (key, _) = cip::auth::keys::create(&t.lake(), "t1", scopes, "test").await.unwrap();
    let q = r#"{ report(input: {metrics: [GROSS_COMMISSION], range: {from: "2024-01-01", to: "2025-01-01"}}) { rows { values { amount } } } }"#;
    let mut answers = Vec::new();
    for pin in [Some(1), None] {
        let settings = ServeSettings { as_of_version: pin, ..ServeSettings::test_config(&t.lake_url()) };
        let app = Application::build(settings).await.unwrap();
        let url = format!("http://127.0.0.1:{}/graphql", app.port());
        let state = app.state();
        tokio::spawn(app.run_until_stopped(std::future::pending()));
        let body: Value = reqwest::Client::new()
            .post(&url)
            .header("X-API-Key", &key)
            .json_body(&serde_json::json!({ "query": q }))
            .send()
            .await
            .map(json_of)
            .unwrap()
            .await;
        answers.push((state.version(), body["data"]["report"]["rows"][0]["values"][0]["amount"].clone()));
    }
    // Version 1: 100.00 + 50.00; the newest: 120.00 + 50.00.
    assert_eq!(answers, [(Some(1), Value::from("150.00")), (Some(2), Value::from("170.00"))]);
}

/// The batch with its `_row_hash` column as UInt64 (the old format's type).
fn uint64_row_hashes(b: arrow::array::RecordBatch) -> arrow::array::RecordBatch {
    use arrow::array::{Array, ArrayRef, Int64Array, UInt64Array};
    use arrow::datatypes::{DataType, Field, Schema};
    let Ok(i) = b.schema().index_of("_row_hash") else { return b };
    let fields: Vec<Field> = b
        .schema()
        .fields()
        .iter()
        .enumerate()
        .map(|(j, f)| if j == i { f.as_ref().clone().with_data_type(DataType::UInt64) } else { f.as_ref().clone() })
        .collect();
    let bits = b.column(i).as_any().downcast_ref::<Int64Array>().unwrap();
    let mut columns = b.columns().to_vec();
    columns[i] =
        std::sync::Arc::new(UInt64Array::from_iter_values(bits.values().iter().map(|h| *h as u64))) as ArrayRef;
    arrow::array::RecordBatch::try_new(std::sync::Arc::new(Schema::new(fields)), columns).unwrap()
}

#[tokio::test]
async fn a_lake_rebuilt_at_the_same_url_is_read_afresh_by_the_same_process() {
    let t = TestLake::new();
    t.land("commissions/a.csv", &rows(&[C1]));
    run(&t).await;
    let first = t.latest().await.unwrap();
    assert_eq!(gross(&t, &first, "t1").await[3], "| 1 | 100.00 |");

    // Another lake from other rows (as another process would build it),
    // then copied over the first: the same lake and Delta versions at the
    // same URL, other tables.
    let other = TestLake::new();
    other.land("commissions/b.csv", &rows(&[C1_CHANGED, C2]));
    run(&other).await;
    let (lake, from) = (t.lake(), other.lake());
    let old: Vec<_> = lake.store.list(Some(&lake.prefix)).map_ok(|m| m.location).try_collect().await.unwrap();
    for p in &old {
        lake.store.delete(p).await.unwrap();
    }
    let new: Vec<_> = from.store.list(Some(&from.prefix)).map_ok(|m| m.location).try_collect().await.unwrap();
    for p in &new {
        let rel = p.as_ref().strip_prefix(from.prefix.as_ref()).unwrap().trim_start_matches('/');
        let bytes = from.store.get(p).await.unwrap().bytes().await.unwrap();
        lake.store.put(&lake.child(rel), bytes.into()).await.unwrap();
    }
    let second = t.latest().await.unwrap();
    assert_eq!((second.version, second.delta_versions["commissions"]), (first.version, 0));
    assert_ne!(second.table_ids["commissions"], first.table_ids["commissions"]);
    assert_eq!(second.table_ids["commissions"].len(), 36, "a UUID");
    // 120.00 + 50.00 from the new lake, not the first lake's file list.
    assert_eq!(second.files("commissions"), other.latest().await.unwrap().files("commissions"));
    assert_eq!(gross(&t, &second, "t1").await[3], "| 2 | 170.00 |");
}
