//! Streaming ingest end to end: events over HTTP to the real server on a
//! random port, the write-ahead log, micro-batches committed to the lake,
//! and the figures GraphQL gives afterwards (worked out by hand on `BOOK`).

use std::time::{Duration, Instant};

use arrow::array::Array;
use object_store::ObjectStoreExt;

use cip::lake::wal::STREAM_APP;
use cip::pipelines::stream::Stream;
use serde_json::{Value, json};

use crate::helpers::{JsonBody, TestLake, json_of};
use crate::serve::{BOOK, TestApp};

fn event(id: &str, kind: &str, at: &str, data: Value) -> String {
    json!({ "event_id": id, "type": kind, "occurred_at": at, "data": data }).to_string()
}

/// A renewal commission on P4 (G1, agent A1) in June 2025.
fn commission_c7(premium: &str, gross: &str, agent: &str, agency: &str) -> Value {
    json!({ "commission_id": "C7", "policy_id": "P4", "agent_id": "A1", "carrier_id": "K1",
            "transaction_date": "2025-06-10", "kind": "renewal", "premium_amount": premium,
            "commission_rate": "0.10", "gross_commission": gross, "agent_commission": agent,
            "agency_commission": agency })
}

async fn send(app: &TestApp, auth: &str, body: String) -> (u16, Value) {
    send_to(&app.url, auth, body).await.1
}

/// POST events to the server at `url`: the status, `Retry-After` and body.
async fn send_to(url: &str, auth: &str, body: String) -> (Option<String>, (u16, Value)) {
    let resp = reqwest::Client::new()
        .post(format!("{url}/ingest/events"))
        .header("Authorization", format!("Bearer {auth}"))
        .header("Content-Type", "application/x-ndjson")
        .body(body)
        .send()
        .await
        .unwrap();
    let retry = resp.headers().get("retry-after").map(|v| v.to_str().unwrap().to_string());
    (retry, (resp.status().as_u16(), json_of(resp).await))
}

const G1_JUNE_2025: &str = r#"{ agency(id: "G1") { kpis(asOf: "2025-06-30") { mtdCommission ytdCommission activePolicies } }
  agencies { id name } }"#;

#[tokio::test]
async fn acknowledged_events_are_queryable_once_with_the_latest_occurrence_winning() {
    let app = TestApp::spawn().await;
    let token = TestApp::token("t1", &["ingest:write", "analytics:read"]);
    // Before: June nothing, YTD C6 110.00, P4 active (see serve::kpis_at_an_as_of_date).
    let before = app.t1(G1_JUNE_2025).await;
    assert_eq!(
        before["agency"]["kpis"],
        json!({"mtdCommission": "0.00", "ytdCommission": "110.00", "activePolicies": 1})
    );

    let body = [
        event("e1", "commission.upserted", "2025-06-10T12:00:00Z", commission_c7("100.00", "10.00", "4.00", "6.00")),
        // The same event again in the same request: acknowledged, not logged twice.
        event("e1", "commission.upserted", "2025-06-10T12:00:00Z", commission_c7("100.00", "10.00", "4.00", "6.00")),
        // Another tenant named by a t1 credential.
        json!({ "event_id": "e3", "tenant_id": "t2", "type": "agency.upserted", "occurred_at": "2025-06-10T12:00:00Z",
                "data": { "agency_id": "G9", "name": "Intruder" } })
        .to_string(),
        // Money with three fraction digits.
        event("e4", "commission.upserted", "2025-06-10T12:00:00Z", commission_c7("100.005", "10.00", "4.00", "6.00")),
        event(
            "e5",
            "policy.cancelled",
            "2025-06-01T08:00:00Z",
            json!({ "policy_id": "P4", "cancellation_date": "2025-06-01" }),
        ),
        // Out of order: the later occurrence arrives first and must win.
        event(
            "e6",
            "agency.upserted",
            "2025-06-02T00:00:00Z",
            json!({ "agency_id": "G2", "name": "South Agency West", "state": "TX" }),
        ),
        event(
            "e7",
            "agency.upserted",
            "2025-06-01T00:00:00Z",
            json!({ "agency_id": "G2", "name": "Old Name", "state": "TX" }),
        ),
    ]
    .join("\n");
    let sent = Instant::now();
    let (status, out) = send(&app, &token, body).await;
    assert_eq!(status, 200, "{out}");
    assert_eq!(
        (out["accepted"].clone(), out["duplicates"].clone(), out["rejected"].clone()),
        (json!(4), json!(1), json!(2))
    );
    let statuses: Vec<(Value, Value, Value)> = out["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["event_id"].clone(), r["status"].clone(), r.get("code").cloned().unwrap_or(Value::Null)))
        .collect();
    assert_eq!(
        statuses,
        vec![
            (json!("e1"), json!("accepted"), Value::Null),
            (json!("e1"), json!("duplicate"), Value::Null),
            (json!("e3"), json!("rejected"), json!("tenant_mismatch")),
            (json!("e4"), json!("rejected"), json!("money_precision")),
            (json!("e5"), json!("accepted"), Value::Null),
            (json!("e6"), json!("accepted"), Value::Null),
            (json!("e7"), json!("accepted"), Value::Null),
        ]
    );
    let seq = out["sequence"].as_u64().expect("a log sequence");

    // Visible through GraphQL: poll until the served figures change.
    let after = loop {
        let data = app.t1(G1_JUNE_2025).await;
        if data["agency"]["kpis"]["ytdCommission"] != json!("110.00") {
            break data;
        }
        assert!(sent.elapsed() < Duration::from_secs(20), "events not visible after 20 s");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    // June: C7 10.00; YTD 110.00 + 10.00; P4 cancelled on 2025-06-01 → none active on 2025-06-30.
    assert_eq!(
        after["agency"]["kpis"],
        json!({"mtdCommission": "10.00", "ytdCommission": "120.00", "activePolicies": 0})
    );
    assert_eq!(
        after["agencies"],
        json!([{"id": "G1", "name": "North Agency"}, {"id": "G2", "name": "South Agency West"}])
    );
    let manifest = app.lake.latest().await.unwrap();
    assert_eq!(manifest.txns.get(STREAM_APP), Some(&seq));
    // Tenant t2's rows are untouched: still its one agency.
    assert_eq!(
        crate::helpers::count(&app.lake, "t2", "SELECT count(*) FROM agencies WHERE name = 'Intruder'").await,
        0
    );

    // Sent again later (a client retry): acknowledged as a duplicate, nothing new published.
    let version = manifest.version;
    let (status, again) = send(
        &app,
        &token,
        event("e1", "commission.upserted", "2025-06-10T12:00:00Z", commission_c7("100.00", "10.00", "4.00", "6.00")),
    )
    .await;
    assert_eq!((status, again["duplicates"].clone(), again["sequence"].clone()), (200, json!(1), Value::Null));
    // A stale event for G2 (older than the committed one) changes nothing.
    let (_, stale) = send(
        &app,
        &token,
        event("e8", "agency.upserted", "2025-05-01T00:00:00Z", json!({ "agency_id": "G2", "name": "Stale" })),
    )
    .await;
    let stream = app.state.stream().unwrap();
    stream.wait_committed(stale["sequence"].as_u64().unwrap()).await;
    assert_eq!(app.lake.latest().await.unwrap().version, version);
    assert_eq!(app.t1("{ agencies { name } }").await["agencies"][1]["name"], "South Agency West");
}

#[tokio::test]
async fn the_ingest_door_checks_credentials_scope_and_size() {
    let app = TestApp::spawn_with(|s| cip::config::ServeSettings { max_ingest_bytes: 2048, ..s }).await;
    let one =
        event("e1", "carrier.upserted", "2025-06-10T12:00:00Z", json!({ "carrier_id": "K9", "name": "New Carrier" }));
    let client = reqwest::Client::new();
    let none = client.post(format!("{}/ingest/events", app.url)).body(one.clone()).send().await.unwrap();
    assert_eq!(none.status().as_u16(), 401);
    // A read-only credential may not write.
    let (status, body) = send(&app, &TestApp::token("t1", &["analytics:read"]), one.clone()).await;
    assert_eq!((status, body["errors"][0]["extensions"]["code"].clone()), (403, json!("FORBIDDEN")));
    // Over the configured body limit: 413, nothing logged.
    let big = vec![one.clone(); 40].join("\n");
    assert!(big.len() > 2048);
    let (status, body) = send(&app, &TestApp::token("t1", &["ingest:write"]), big).await;
    assert_eq!((status, body["errors"][0]["extensions"]["code"].clone()), (413, json!("TOO_LARGE")));
    assert_eq!(app.state.stream().unwrap().backlog(), 0);
}

/// A crash after events were acknowledged and before their commit: a new
/// process replays the log, lands every event once, and deletes the log.
#[tokio::test]
async fn a_restart_replays_acknowledged_events_exactly_once() {
    let lake = TestLake::new();
    for (path, body) in BOOK {
        lake.land(path, body);
    }
    cip::pipelines::batch::ingest(&lake.landing(), &lake.lake(), &Default::default()).await.unwrap();
    let first = Stream::open(lake.lake()).await.unwrap();
    let body = [
        event("x1", "carrier.upserted", "2025-06-10T12:00:00Z", json!({ "carrier_id": "K3", "name": "Lakes Mutual" })),
        event("x2", "carrier.upserted", "2025-06-10T12:00:01Z", json!({ "carrier_id": "K4", "name": "Coast Re" })),
    ]
    .join("\n");
    let acked = first.accept("t1", &body).await.unwrap();
    assert_eq!((acked.accepted, acked.sequence), (2, Some(1)));
    drop(first); // the process dies before its writer ran

    let second = Stream::open(lake.lake()).await.unwrap();
    assert_eq!((second.committed(), second.backlog()), (0, 1));
    let v = second.commit_once().await.unwrap().expect("a version");
    assert_eq!(second.commit_once().await.unwrap(), None, "nothing left to commit");
    const NEW_CARRIERS: &str = "SELECT count(*) FROM carriers WHERE carrier_id IN ('K3', 'K4')";
    assert_eq!(crate::helpers::count(&lake, "t1", NEW_CARRIERS).await, 2);
    // A third process finds everything committed and the log empty.
    let third = Stream::open(lake.lake()).await.unwrap();
    assert_eq!((third.committed(), third.backlog()), (1, 0));
    assert_eq!(third.commit_once().await.unwrap(), None);
    assert_eq!(lake.latest().await.unwrap().version, v);
    assert_eq!(crate::helpers::count(&lake, "t1", NEW_CARRIERS).await, 2);

    // The order per key survives the restart: an event older than K3's
    // committed one (12:00:00) changes nothing, a newer one wins.
    let older =
        event("x3", "carrier.upserted", "2025-06-10T11:00:00Z", json!({ "carrier_id": "K3", "name": "Stale Name" }));
    third.accept("t1", &older).await.unwrap();
    assert_eq!(third.commit_once().await.unwrap(), None);
    drop(third);
    let fourth = Stream::open(lake.lake()).await.unwrap();
    let newer = event(
        "x4",
        "carrier.upserted",
        "2025-06-11T00:00:00Z",
        json!({ "carrier_id": "K3", "name": "Lakes Mutual Re" }),
    );
    fourth.accept("t1", &[older, newer].join("\n")).await.unwrap();
    assert!(fourth.commit_once().await.unwrap().is_some());
    let names = "SELECT count(*) FROM carriers WHERE carrier_id = 'K3' AND name = 'Lakes Mutual Re'";
    assert_eq!(crate::helpers::count(&lake, "t1", names).await, 1);

    // A cancellation of a policy nobody sent lands in the rejected records, named.
    let cancel = event(
        "x5",
        "policy.cancelled",
        "2025-06-12T00:00:00Z",
        json!({ "policy_id": " P-NOPE ", "cancellation_date": "2025-06-12" }),
    );
    assert_eq!(fourth.accept("t1", &cancel).await.unwrap().accepted, 1);
    assert_eq!(fourth.commit_once().await.unwrap(), None);
    // Read through the store: on the S3 run the lake is a bucket prefix.
    let store = lake.lake();
    let listed: Vec<_> =
        futures::TryStreamExt::try_collect(store.store.list(Some(&store.child("_rejects")))).await.unwrap();
    let mut reasons = Vec::new();
    for f in listed.iter().filter(|m| m.location.filename() == Some("events.parquet")) {
        for b in cip::lake::parquet_io::read(&store.store, &f.location, None).await.unwrap() {
            let col = |n: &str| {
                b.column_by_name(n).unwrap().as_any().downcast_ref::<arrow::array::StringArray>().unwrap().clone()
            };
            for i in 0..b.num_rows() {
                reasons.push((
                    col("tenant_id").value(i).to_string(),
                    col("reason_code").value(i).to_string(),
                    col("reason").value(i).to_string(),
                ));
            }
        }
    }
    assert_eq!(
        reasons,
        vec![(
            "t1".to_string(),
            "unknown_key".to_string(),
            "policy P-NOPE is not known: nothing to cancel".to_string()
        )]
    );
}

/// The tenant's rollup tables as stored, and as a full build of its stored
/// facts gives them, printed table by table.
async fn stored_and_rebuilt_rollups(lake: &TestLake, tenant: &str) -> (Vec<String>, Vec<String>) {
    use cip::query::rollups::{COMMISSION_COLUMNS, POLICY_COLUMNS, commission_rollups, renewal_rollup};
    let manifest = lake.latest().await.unwrap();
    let store = lake.lake();
    let read = |table: &'static str, columns: Option<&'static [&'static str]>| {
        let (manifest, store) = (&manifest, &store);
        async move {
            let mut out = Vec::new();
            for f in manifest.tenant_files(table, tenant) {
                out.extend(cip::lake::parquet_io::read(&store.store, &store.child(&f.path), columns).await.unwrap());
            }
            out
        }
    };
    let print = |b: &[arrow::record_batch::RecordBatch]| {
        datafusion::arrow::util::pretty::pretty_format_batches(b).unwrap().to_string()
    };
    let (commissions, policies) =
        (read("commissions", Some(&COMMISSION_COLUMNS)).await, read("policies", Some(&POLICY_COLUMNS)).await);
    let mut rebuilt = commission_rollups(&commissions, &policies).unwrap();
    rebuilt.push(renewal_rollup(&policies).unwrap());
    let mut stored = Vec::new();
    for (table, _, _) in &rebuilt {
        stored.push(format!("{table}\n{}", print(&read(table, None).await)));
    }
    (stored, rebuilt.iter().map(|(t, _, b)| format!("{t}\n{}", print(b))).collect())
}

/// Micro-batches on a generated book: new and changed commissions, changed
/// and cancelled policies, renewals, and one policy moved to another agency
/// under its commissions. The writer updates the tenant's rollups from each
/// batch's rows (a full rebuild only where it cannot), and after every batch
/// the stored rollups equal a full build of the stored facts.
#[tokio::test]
async fn micro_batches_keep_the_rollups_equal_to_a_full_build() {
    let lake = TestLake::new();
    let d = |s: &str| chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap();
    cip::generate::generate(&cip::generate::GenerateOptions {
        out: lake.landing_path(),
        truth: lake.dir.path().join("truth"),
        policies: 600,
        seed: 5,
        tenants: 1,
        format: cip::generate::Format::Csv,
        bad_row_rate: 0.0,
        start: d("2022-01-01"),
        end: d("2026-01-01"),
    })
    .unwrap();
    cip::pipelines::batch::ingest(&lake.landing(), &lake.lake(), &Default::default()).await.unwrap();
    let tenant = lake.latest().await.unwrap().tenants()[0].clone();
    // Stored policies as JSON rows (required columns only), first 40 by id.
    let sql = "SELECT policy_id, policy_number, agency_id, agent_id, carrier_id, customer_id, line_of_business, \
               CAST(effective_date AS VARCHAR) AS effective_date, CAST(expiration_date AS VARCHAR) AS expiration_date, \
               CAST(premium AS VARCHAR) AS premium, status FROM policies ORDER BY policy_id LIMIT 40";
    let batches = lake.sql(crate::helpers::tenant(&tenant), sql).await;
    let mut policies: Vec<serde_json::Map<String, Value>> = Vec::new();
    for b in &batches {
        for r in 0..b.num_rows() {
            let mut m = serde_json::Map::new();
            for (i, f) in b.schema().fields().iter().enumerate() {
                let a = arrow::compute::cast(b.column(i), &arrow::datatypes::DataType::Utf8).unwrap();
                let a = a.as_any().downcast_ref::<arrow::array::StringArray>().unwrap();
                m.insert(f.name().clone(), json!(a.value(r)));
            }
            policies.push(m);
        }
    }
    assert_eq!(policies.len(), 40);
    let agencies: Vec<String> = {
        let mut a: Vec<String> = policies.iter().map(|p| p["agency_id"].as_str().unwrap().to_string()).collect();
        a.sort();
        a.dedup();
        a
    };
    assert!(agencies.len() >= 2, "{agencies:?}");

    let stream = Stream::open(lake.lake()).await.unwrap();
    let mut n = 0;
    let at = |n: &mut u32| {
        *n += 1;
        format!("2026-02-01T00:{:02}:{:02}Z", *n / 60, *n % 60)
    };
    for round in 0..6usize {
        let mut events = Vec::new();
        let p = |i: usize| &policies[(round * 5 + i) % policies.len()];
        for i in 0..4 {
            let policy = p(i);
            // C-<round>-<i> is new; C-<round-1>-<i> gets other amounts.
            for (id, premium) in
                [(format!("C-{round}-{i}"), 1000 + i), (format!("C-{}-{i}", round.max(1) - 1), 2000 + round)]
            {
                let data = json!({ "commission_id": id, "policy_id": policy["policy_id"], "agent_id": policy["agent_id"],
                    "carrier_id": policy["carrier_id"], "transaction_date": format!("2025-{:02}-15", 1 + (round + i) % 12),
                    "kind": "new", "premium_amount": format!("{premium}.00"), "commission_rate": "0.10",
                    "gross_commission": format!("{}.{}0", premium / 10, premium % 10), "agent_commission": "0.00",
                    "agency_commission": format!("{}.{}0", premium / 10, premium % 10) });
                events.push(event(&format!("e{}", at(&mut n)), "commission.upserted", &at(&mut n), data));
            }
        }
        // A premium change (agency and line kept) and a cancellation.
        let mut changed = p(1).clone();
        changed.insert("premium".into(), json!(format!("{}.00", 500 + round)));
        events.push(event(&format!("e{}", at(&mut n)), "policy.upserted", &at(&mut n), Value::Object(changed)));
        let cancel = json!({ "policy_id": p(2)["policy_id"], "cancellation_date": "2025-03-01" });
        events.push(event(&format!("e{}", at(&mut n)), "policy.cancelled", &at(&mut n), cancel));
        // A new term renewing a stored policy: the old term becomes renewed.
        let mut renewal = p(3).clone();
        renewal.insert("policy_id".into(), json!(format!("R-{round}")));
        renewal.insert("renewal_of".into(), p(3)["policy_id"].clone());
        renewal.insert("expiration_date".into(), json!("2027-01-01"));
        events.push(event(&format!("e{}", at(&mut n)), "policy.upserted", &at(&mut n), Value::Object(renewal)));
        // Round 3 moves a policy with commissions to another agency: the
        // writer must rebuild the tenant's rollups in full.
        if round == 3 {
            let mut moved = p(0).clone();
            let other = agencies.iter().find(|a| **a != moved["agency_id"]).unwrap().clone();
            moved.insert("agency_id".into(), json!(other));
            events.push(event(&format!("e{}", at(&mut n)), "policy.upserted", &at(&mut n), Value::Object(moved)));
        }
        let acked = stream.accept(&tenant, &events.join("\n")).await.unwrap();
        assert_eq!((acked.accepted, acked.rejected), (events.len(), 0), "{:?}", acked.results);
        assert!(stream.commit_once().await.unwrap().is_some(), "round {round} publishes");
        let (stored, rebuilt) = stored_and_rebuilt_rollups(&lake, &tenant).await;
        assert_eq!(stored, rebuilt, "round {round}");
    }
    // Round 0 built the state (the first commit of a writer rebuilds);
    // rounds 1, 2, 4 and 5 updated it; round 3 rebuilt it.
    assert_eq!(stream.cache().rollup_updates(), 4);

    // A version that changes no fact (an agency renamed) keeps the state
    // for the next one: the commission commit after it updates, not rebuilds.
    let renamed = json!({ "agency_id": agencies[0], "name": "Renamed Agency" });
    stream.accept(&tenant, &event("renamed", "agency.upserted", &at(&mut n), renamed)).await.unwrap();
    assert!(stream.commit_once().await.unwrap().is_some(), "the rename publishes");
    let policy = &policies[7];
    let data = json!({ "commission_id": "C-after-rename", "policy_id": policy["policy_id"],
        "agent_id": policy["agent_id"], "carrier_id": policy["carrier_id"], "transaction_date": "2025-07-01",
        "kind": "new", "premium_amount": "700.00", "commission_rate": "0.10", "gross_commission": "70.00",
        "agent_commission": "0.00", "agency_commission": "70.00" });
    stream.accept(&tenant, &event("after-rename", "commission.upserted", &at(&mut n), data)).await.unwrap();
    assert!(stream.commit_once().await.unwrap().is_some());
    let (stored, rebuilt) = stored_and_rebuilt_rollups(&lake, &tenant).await;
    assert_eq!(stored, rebuilt, "after the rename");
    assert_eq!(stream.cache().rollup_updates(), 5);

    // The writer's compaction: every partition of 2 small files or more
    // becomes one file, the stream's position is kept, and the next commits
    // go on updating the rollups (a compaction changes no row, so the kept
    // state holds for its version).
    let files = |m: &cip::lake::Manifest| m.tenant_files("commissions", &tenant).count();
    let before = lake.latest().await.unwrap();
    assert!(files(&before) > 6, "the batch run's and at least one per micro-batch: {}", files(&before));
    let v = stream.maintain(2).await.unwrap().expect("a compaction version");
    let after = lake.latest().await.unwrap();
    assert_eq!((after.version, files(&after)), (v, 1));
    assert_eq!(after.txns.get(STREAM_APP), before.txns.get(STREAM_APP));
    assert_eq!(after.rows("commissions"), before.rows("commissions"));
    for (i, premium) in [(0, "3000.00"), (1, "3100.00")] {
        let policy = &policies[i];
        let data = json!({ "commission_id": format!("C-after-{i}"), "policy_id": policy["policy_id"],
            "agent_id": policy["agent_id"], "carrier_id": policy["carrier_id"], "transaction_date": "2025-08-01",
            "kind": "renewal", "premium_amount": premium, "commission_rate": "0.10", "gross_commission": "300.00",
            "agent_commission": "0.00", "agency_commission": "300.00" });
        let acked =
            stream.accept(&tenant, &event(&format!("after-{i}"), "commission.upserted", &at(&mut n), data)).await;
        assert_eq!(acked.unwrap().accepted, 1);
        assert!(stream.commit_once().await.unwrap().is_some());
        let (stored, rebuilt) = stored_and_rebuilt_rollups(&lake, &tenant).await;
        assert_eq!(stored, rebuilt, "after compaction, commit {i}");
    }
    assert_eq!(stream.cache().rollup_updates(), 7);
    // The renewals landed: 6 new terms, each old term renewed.
    let renewed = "SELECT count(*) FROM policies WHERE policy_id LIKE 'R-%' AND renewal_of IS NOT NULL";
    assert_eq!(crate::helpers::count(&lake, &tenant, renewed).await, 6);
}

/// Post `body` as `tenant`, wait until its version is served; the version.
async fn land_and_serve(app: &TestApp, tenant: &str, body: String) -> u64 {
    let (status, out) = send(app, &TestApp::token(tenant, &["ingest:write"]), body).await;
    assert_eq!((status, out["rejected"].clone()), (200, json!(0)), "{out}");
    let stream = app.state.stream().unwrap();
    stream.wait_committed(out["sequence"].as_u64().unwrap()).await;
    let version = app.lake.latest().await.unwrap().version;
    let started = Instant::now();
    while app.state.version() < Some(version) {
        assert!(started.elapsed() < Duration::from_secs(20), "version {version} not served");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    version
}

/// `kpisChanged` over /graphql/ws: the figures at once, then one message
/// for a commit that changes them, none for commits that do not (another
/// tenant's, or one of the same tenant that leaves G1's figures alone).
#[tokio::test]
async fn kpis_changed_pushes_only_when_the_agencys_figures_change() {
    use futures::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;

    let app = TestApp::spawn().await;
    let mut req = format!("{}/graphql/ws", app.url.replace("http", "ws")).into_client_request().unwrap();
    req.headers_mut().insert("Sec-WebSocket-Protocol", "graphql-transport-ws".parse().unwrap());
    let mut ws = tokio_tungstenite::connect_async(req).await.unwrap().0;
    let init = json!({"type": "connection_init", "payload": {"X-API-Key": app.key_t1}});
    ws.send(Message::text(init.to_string())).await.unwrap();
    // The next text message, or None if none comes within `wait`.
    async fn next_text(
        ws: &mut (impl StreamExt<Item = Result<Message, tokio_tungstenite::tungstenite::Error>> + Unpin),
        wait: Duration,
    ) -> Option<Value> {
        loop {
            match tokio::time::timeout(wait, ws.next()).await {
                Err(_) => return None,
                Ok(m) => match m.expect("the connection is open").unwrap() {
                    Message::Text(t) => return Some(serde_json::from_str(&t).unwrap()),
                    Message::Ping(_) | Message::Pong(_) => continue,
                    other => panic!("unexpected message {other:?}"),
                },
            }
        }
    }
    let long = Duration::from_secs(20);
    assert_eq!(next_text(&mut ws, long).await.unwrap()["type"], "connection_ack");
    let query = r#"subscription { kpisChanged(agencyId: "G1", asOf: "2025-06-30") { mtdCommission ytdCommission activePolicies } }"#;
    ws.send(Message::text(json!({"id": "k", "type": "subscribe", "payload": {"query": query}}).to_string()))
        .await
        .unwrap();
    let kpis = |m: Value| {
        assert_eq!((m["id"].clone(), m["type"].clone()), (json!("k"), json!("next")), "{m}");
        m["payload"]["data"]["kpisChanged"].clone()
    };
    // At once: June nothing, YTD C6 110.00, P4 active (as in the first test).
    let first = kpis(next_text(&mut ws, long).await.unwrap());
    assert_eq!(first, json!({"mtdCommission": "0.00", "ytdCommission": "110.00", "activePolicies": 1}));

    // Another tenant's commit, and one of t1 that leaves G1's figures alone.
    land_and_serve(
        &app,
        "t2",
        event(
            "u1",
            "carrier.upserted",
            "2025-06-10T12:00:00Z",
            json!({ "carrier_id": "K8", "name": "Elsewhere Mutual" }),
        ),
    )
    .await;
    land_and_serve(
        &app,
        "t1",
        event("u2", "carrier.upserted", "2025-06-10T12:00:00Z", json!({ "carrier_id": "K9", "name": "New Carrier" })),
    )
    .await;
    // G1's June commission C7 (10.00): the next message is the new figures
    // (had either commit above pushed, its unchanged figures would come first).
    land_and_serve(
        &app,
        "t1",
        event("u3", "commission.upserted", "2025-06-10T12:00:00Z", commission_c7("100.00", "10.00", "4.00", "6.00")),
    )
    .await;
    let pushed = kpis(next_text(&mut ws, long).await.unwrap());
    assert_eq!(pushed, json!({"mtdCommission": "10.00", "ytdCommission": "120.00", "activePolicies": 1}));
    // And nothing more for a later commit that does not touch G1.
    land_and_serve(
        &app,
        "t1",
        event(
            "u4",
            "carrier.upserted",
            "2025-06-11T12:00:00Z",
            json!({ "carrier_id": "K9", "name": "New Carrier Renamed" }),
        ),
    )
    .await;
    assert_eq!(next_text(&mut ws, Duration::from_millis(500)).await, None);

    // An agency the tenant does not have (t2's G9 included) is an error.
    let other = r#"subscription { kpisChanged(agencyId: "G9") { mtdCommission } }"#;
    ws.send(Message::text(json!({"id": "x", "type": "subscribe", "payload": {"query": other}}).to_string()))
        .await
        .unwrap();
    let refused = next_text(&mut ws, long).await.unwrap();
    assert_eq!(refused["payload"]["errors"][0]["extensions"]["code"], json!("NOT_FOUND"), "{refused}");
}

/// The order of events per key lives in the rows (hidden stamp columns),
/// not in the writer: after 40 more micro-batches, a compaction and a
/// restart, an event older than K1's stored one changes nothing, one at the
/// same time with a larger event id wins, and the stamp files an earlier
/// release kept are removed on open.
#[tokio::test]
async fn stamps_in_the_rows_keep_the_latest_event_winning_across_restarts() {
    let lake = TestLake::new();
    for (path, body) in BOOK {
        lake.land(path, body);
    }
    cip::pipelines::batch::ingest(&lake.landing(), &lake.lake(), &Default::default()).await.unwrap();
    let carrier = |id: &str, name: &str, at: &str| {
        event(&format!("{id}-{at}"), "carrier.upserted", at, json!({ "carrier_id": id, "name": name }))
    };
    let k1 = async || {
        let sql = "SELECT name, _occurred_at_ms, _event_id FROM carriers WHERE carrier_id = 'K1'";
        let b = lake.sql(crate::helpers::tenant("t1"), sql).await;
        let name = b[0].column(0).as_any().downcast_ref::<arrow::array::StringArray>().unwrap().value(0).to_string();
        let at = b[0].column(1).as_any().downcast_ref::<arrow::array::Int64Array>().unwrap();
        let id = b[0].column(2).as_any().downcast_ref::<arrow::array::StringArray>().unwrap();
        (name, (!at.is_null(0)).then(|| (at.value(0), id.value(0).to_string())))
    };
    // The landing file's K1 has no stamp.
    assert_eq!(k1().await.1, None);
    let stream = Stream::open(lake.lake()).await.unwrap();
    stream.accept("t1", &carrier("K1", "Newest Name", "2025-06-10T12:00:00Z")).await.unwrap();
    stream.commit_once().await.unwrap().expect("a version");
    for i in 0..40 {
        let at = format!("2025-06-10T12:00:{:02}Z", i % 60);
        stream.accept("t1", &carrier(&format!("KX{i}"), "Filler", &at)).await.unwrap();
        stream.commit_once().await.unwrap().expect("a version");
    }
    // Compaction merges files with and without stamp columns' values.
    stream.maintain(2).await.unwrap().expect("compacted");
    drop(stream);
    // 2025-06-10T12:00:00Z is 1749556800000 ms after the epoch.
    let newest = (1_749_556_800_000, "K1-2025-06-10T12:00:00Z".to_string());
    assert_eq!(k1().await, ("Newest Name".to_string(), Some(newest.clone())));

    let store = lake.lake();
    let old_stamps = store.child("_stream/stamps/00000000000000000001.ndjson");
    store.store.put(&old_stamps, bytes::Bytes::from_static(b"{}\n").into()).await.unwrap();
    let again = Stream::open(lake.lake()).await.unwrap();
    let listed: Vec<_> =
        futures::TryStreamExt::try_collect(store.store.list(Some(&store.child("_stream/stamps")))).await.unwrap();
    assert!(listed.is_empty(), "{listed:?}");

    again.accept("t1", &carrier("K1", "Stale Name", "2025-06-01T00:00:00Z")).await.unwrap();
    assert_eq!(again.commit_once().await.unwrap(), None, "a stale event publishes nothing");
    assert_eq!(k1().await, ("Newest Name".to_string(), Some(newest)));
    // Same occurred_at, larger event id ("K1-2025-06-10T12:00:00Z-b"): it wins.
    let tie = event(
        "K1-2025-06-10T12:00:00Z-b",
        "carrier.upserted",
        "2025-06-10T12:00:00Z",
        json!({ "carrier_id": "K1", "name": "Tie Name" }),
    );
    again.accept("t1", &tie).await.unwrap();
    again.commit_once().await.unwrap().expect("a version");
    assert_eq!(
        k1().await,
        ("Tie Name".to_string(), Some((1_749_556_800_000, "K1-2025-06-10T12:00:00Z-b".to_string())))
    );
}

/// Commission rows per batch run, events per streamed request.
const RUN_ROWS: u64 = 4;
const REQUEST_EVENTS: u64 = 3;

/// `B-<run>-<i>`'s gross commission: 100 + 10·run + i (run 1: 111 + 112 +
/// 113 + 114 = 450.00).
fn batch_gross(run: u64, i: u64) -> rust_decimal::Decimal {
    rust_decimal::Decimal::new(((100 + 10 * run + i) * 100) as i64, 2)
}

/// `S-<request>-<j>`'s gross commission: 10·request + j + 0.50 (request 1:
/// 11.50 + 12.50 + 13.50 = 37.50).
fn stream_gross(request: u64, j: u64) -> rust_decimal::Decimal {
    rust_decimal::Decimal::new(((10 * request + j) * 100 + 50) as i64, 2)
}

fn run_gross(run: u64) -> rust_decimal::Decimal {
    (1..=RUN_ROWS).map(|i| batch_gross(run, i)).sum()
}

fn request_gross(request: u64) -> rust_decimal::Decimal {
    (1..=REQUEST_EVENTS).map(|j| stream_gross(request, j)).sum()
}

/// A commission of `gross` on P1 (agent A1, carrier K1): premium 10×, rate
/// 0.10, the agent 40 %, the agency the rest.
fn commission_amounts(gross: rust_decimal::Decimal) -> [String; 4] {
    let agent = (gross * rust_decimal::Decimal::new(4, 1)).round_dp(2);
    [
        (gross * rust_decimal::Decimal::TEN).to_string(),
        gross.to_string(),
        agent.to_string(),
        (gross - agent).to_string(),
    ]
}

/// Batch run `run`'s landing folder: one CSV of its `RUN_ROWS` commissions.
fn land_run(lake: &TestLake, run: u64) -> cip::lake::Location {
    let mut csv = String::from(
        "tenant_id,commission_id,policy_id,agent_id,carrier_id,transaction_date,kind,premium_amount,\
         commission_rate,gross_commission,agent_commission,agency_commission\n",
    );
    for i in 1..=RUN_ROWS {
        let [premium, gross, agent, agency] = commission_amounts(batch_gross(run, i));
        csv.push_str(&format!(
            "t1,B-{run}-{i},P1,A1,K1,2025-{:02}-15,new,{premium},0.10,{gross},{agent},{agency}\n",
            1 + run % 12
        ));
    }
    let dir = lake.dir.path().join(format!("landing-run-{run}"));
    crate::helpers::write(&dir.join("commissions/c.csv"), csv.as_bytes());
    cip::lake::store::open(dir.to_str().unwrap()).unwrap()
}

/// Request `request`'s body: `REQUEST_EVENTS` new commissions on P4.
fn request_body(request: u64) -> String {
    let events = (1..=REQUEST_EVENTS).map(|j| {
        let [premium, gross, agent, agency] = commission_amounts(stream_gross(request, j));
        let id = format!("S-{request}-{j}");
        let data = json!({ "commission_id": id, "policy_id": "P4", "agent_id": "A1", "carrier_id": "K1",
            "transaction_date": format!("2025-06-{:02}", 10 + j), "kind": "renewal", "premium_amount": premium,
            "commission_rate": "0.10", "gross_commission": gross, "agent_commission": agent,
            "agency_commission": agency });
        event(&id, "commission.upserted", "2025-06-10T12:00:00Z", data)
    });
    events.collect::<Vec<_>>().join("\n")
}

/// Every value of `batches` as text, row by row (a null as "").
fn text_rows(batches: &[arrow::record_batch::RecordBatch]) -> Vec<Vec<String>> {
    use arrow::array::{Array, StringArray};
    let mut out = Vec::new();
    for b in batches {
        let cols: Vec<_> =
            b.columns().iter().map(|c| arrow::compute::cast(c, &arrow::datatypes::DataType::Utf8).unwrap()).collect();
        for r in 0..b.num_rows() {
            out.push(
                cols.iter()
                    .map(|c| {
                        let s = c.as_any().downcast_ref::<StringArray>().unwrap();
                        if s.is_null(r) { String::new() } else { s.value(r).to_string() }
                    })
                    .collect(),
            );
        }
    }
    out
}

fn dec(s: &str) -> rust_decimal::Decimal {
    s.parse().unwrap_or_else(|e| panic!("{s:?} is not a decimal: {e}"))
}

/// What one lake version holds of the test's rows.
#[derive(Debug, Clone)]
struct Seen {
    version: u64,
    /// `txns["cip-stream"]`: the log sequence the version contains.
    stream_through: u64,
    runs: std::collections::BTreeSet<u64>,
    requests: std::collections::BTreeSet<u64>,
    /// t1's gross commission over every commission row.
    gross: rust_decimal::Decimal,
}

/// Check that `manifest` is whole, as tenant t1 sees it: each batch run and
/// each streamed request has all its rows (once, with their money) or none,
/// and every commission rollup sums to what the facts sum to.
async fn check_version(lake: &cip::lake::Location, manifest: &cip::lake::Manifest) -> Seen {
    use cip::lake::catalog::{COMMISSIONS_MONTHLY, COMMISSIONS_MONTHLY_BY_AGENT, COMMISSIONS_MONTHLY_BY_CARRIER};
    let v = manifest.version;
    let ctx = datafusion::prelude::SessionContext::new();
    cip::query::tables::register_snapshot(&ctx, lake, manifest, &crate::helpers::tenant("t1")).await.unwrap();
    let sql = |q: String| {
        let ctx = &ctx;
        async move { text_rows(&ctx.sql(&q).await.unwrap().collect().await.unwrap()) }
    };
    let groups = sql("SELECT split_part(commission_id, '-', 1), CAST(split_part(commission_id, '-', 2) AS BIGINT), \
                      count(*), count(DISTINCT commission_id), CAST(sum(gross_commission) AS VARCHAR) \
                      FROM commissions WHERE commission_id LIKE 'B-%' OR commission_id LIKE 'S-%' GROUP BY 1, 2"
        .to_string())
    .await;
    let (mut runs, mut requests) = (std::collections::BTreeSet::new(), std::collections::BTreeSet::new());
    for g in groups {
        let (n, rows, ids, gross) = (g[1].parse::<u64>().unwrap(), &g[2], &g[3], dec(&g[4]));
        let (expected_rows, expected_gross) = match g[0].as_str() {
            "B" => {
                runs.insert(n);
                (RUN_ROWS, run_gross(n))
            }
            _ => {
                requests.insert(n);
                (REQUEST_EVENTS, request_gross(n))
            }
        };
        let expected = expected_rows.to_string();
        assert_eq!((rows, ids, gross), (&expected, &expected, expected_gross), "version {v}: {}-{n} partial", g[0]);
    }
    // The facts and each commission rollup: the same three sums.
    let sums = |t: &str| {
        format!(
            "SELECT '{t}', CAST(sum(premium_amount) AS VARCHAR), CAST(sum(gross_commission) AS VARCHAR), \
             CAST(sum(agent_commission) AS VARCHAR) FROM {t}"
        )
    };
    let tables = ["commissions", COMMISSIONS_MONTHLY, COMMISSIONS_MONTHLY_BY_AGENT, COMMISSIONS_MONTHLY_BY_CARRIER];
    let totals = sql(tables.map(sums).join(" UNION ALL ")).await;
    let facts = totals.iter().find(|r| r[0] == "commissions").unwrap().clone();
    let as_money = |r: &[String]| r[1..].iter().map(|s| dec(s)).collect::<Vec<_>>();
    for t in &totals {
        assert_eq!(as_money(t), as_money(&facts), "version {v}: {} disagrees with the facts", t[0]);
    }
    assert_eq!(totals.len(), tables.len(), "version {v}: {totals:?}");
    let stream_through = manifest.txns.get(STREAM_APP).copied().unwrap_or(0);
    Seen { version: v, stream_through, runs, requests, gross: dec(&facts[2]) }
}

/// Issue 11, concurrency: batch runs and streamed micro-batches commit to
/// one lake at the same time, on the one commit path (the loser of a race
/// re-bases). Throughout, a reader checks every version it finds; at the
/// end every version ever published is checked again. Each is whole: a
/// batch run's rows and a request's events are all there or none, the
/// requests there are exactly those logged at or below the version's
/// `txns["cip-stream"]`, and the rollups sum to what the facts sum to.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn batch_runs_and_micro_batches_commit_concurrently_and_every_version_is_whole() {
    use std::collections::{BTreeMap, BTreeSet};
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    use tokio::sync::watch;

    // Hand-checked: the first run and request (see batch_gross, stream_gross).
    assert_eq!((run_gross(1), request_gross(1)), (dec("450.00"), dec("37.50")));
    // At least 3 batch runs; more (up to 20) until some commit re-based.
    const MIN_RUNS: u64 = 3;
    const MAX_RUNS: u64 = 20;
    const MAX_REQUESTS: u64 = 2_000;
    let deadline = Instant::now() + Duration::from_secs(120);
    let before_deadline = |what: &str| assert!(Instant::now() < deadline, "{what}: still waiting after 120 s");

    let lake = Arc::new(TestLake::new());
    for (path, body) in BOOK {
        lake.land(path, body);
    }
    cip::pipelines::batch::ingest(&lake.landing(), &lake.lake(), &Default::default()).await.unwrap();
    let book = check_version(&lake.lake(), &lake.latest().await.unwrap()).await;
    // t1's commissions in BOOK: 120 + 225 − 168.75 + 96 + 0 + 110.
    assert_eq!((book.version, book.gross), (1, dec("382.25")));

    let stream = Stream::open(lake.lake()).await.unwrap();
    // The latest version the stream's writer published.
    let (stream_tx, stream_rx) = watch::channel(0u64);
    // On a thread of its own, as the server runs it (the batch pipeline's
    // future is not `Send` for every lifetime a spawned task asks).
    let (stop_writer, writer_stopped) = tokio::sync::oneshot::channel::<()>();
    let writer = std::thread::spawn({
        let (stream, handle) = (stream.clone(), tokio::runtime::Handle::current());
        move || {
            handle.block_on(async move {
                let on_commit = move |v: u64| stream_tx.send_modify(|last| *last = (*last).max(v));
                tokio::select! {
                    () = stream.run(on_commit, None, Duration::ZERO) => {}
                    _ = writer_stopped => {}
                }
            })
        }
    });
    let stop = Arc::new(AtomicBool::new(false));
    // The latest version the reader checked.
    let (read_tx, read_rx) = watch::channel(0u64);

    // Requests one after another, each waiting for its commit: the writer
    // commits back to back for as long as the batch runs go on.
    let mut sender = tokio::spawn({
        let (stream, stop) = (stream.clone(), stop.clone());
        async move {
            let mut sequences = BTreeMap::new();
            for request in 1..=MAX_REQUESTS {
                if stop.load(Ordering::SeqCst) {
                    break;
                }
                let acked = stream.accept("t1", &request_body(request)).await.unwrap();
                assert_eq!((acked.accepted, acked.rejected), (REQUEST_EVENTS as usize, 0), "{:?}", acked.results);
                let seq = acked.sequence.expect("logged");
                sequences.insert(request, seq);
                tokio::time::timeout(Duration::from_secs(60), stream.wait_committed(seq))
                    .await
                    .unwrap_or_else(|_| panic!("request {request} (sequence {seq}) not committed after 60 s"));
            }
            sequences
        }
    });

    let mut reader = tokio::spawn({
        let (lake, stop) = (lake.clone(), stop.clone());
        async move {
            let store = lake.lake();
            let mut seen = Vec::new();
            let mut last = 0;
            loop {
                // The flag before the look: the last look follows every commit.
                let stopping = stop.load(Ordering::SeqCst);
                let v = cip::lake::snapshot::latest_version(&store).await.unwrap().unwrap();
                if v != last {
                    let manifest = cip::lake::snapshot::read(&store, v).await.unwrap();
                    seen.push(check_version(&store, &manifest).await);
                    last = v;
                    read_tx.send_replace(v);
                } else if stopping {
                    break seen;
                } else {
                    tokio::time::sleep(Duration::from_millis(2)).await;
                }
            }
        }
    });

    // Batch runs, each after the stream published since the last one and
    // the reader checked a version holding it.
    let mut reports = Vec::new();
    let mut run_versions = Vec::new();
    for run in 1..=MAX_RUNS {
        let landing = land_run(&lake, run);
        let report = cip::pipelines::batch::ingest(&landing, &lake.lake(), &Default::default()).await.unwrap();
        assert_eq!((report.published, report.rows_rejected), (true, 0), "{report:?}");
        let v = report.snapshot.unwrap();
        run_versions.push(v);
        reports.push(report);
        let (mut streamed, mut read) = (stream_rx.clone(), read_rx.clone());
        let waited = tokio::time::timeout(Duration::from_secs(60), async {
            streamed.wait_for(|s| *s > v).await.unwrap();
            read.wait_for(|r| *r >= v).await.unwrap();
        });
        // A task that failed says why (its assertion), rather than the wait.
        tokio::select! {
            r = &mut reader => panic!("the reader stopped: {r:?}"),
            s = &mut sender => panic!("the sender stopped: {s:?}"),
            w = waited => w.unwrap_or_else(|_| panic!("no stream commit or read after batch run {run} (version {v})")),
        }
        before_deadline("batch runs");
        let rebases: u64 = reports.iter().map(|r| u64::from(r.attempts) - 1).sum::<u64>() + stream.rebases();
        if run >= MIN_RUNS && rebases > 0 {
            break;
        }
    }
    stop.store(true, Ordering::SeqCst);
    let sequences = sender.await.unwrap();
    let last_seq = *sequences.values().max().unwrap();
    tokio::time::timeout(Duration::from_secs(60), stream.wait_committed(last_seq)).await.unwrap();
    stop_writer.send(()).unwrap();
    tokio::task::spawn_blocking(move || writer.join()).await.unwrap().unwrap();
    let read_live = reader.await.unwrap();
    let runs = reports.len() as u64;
    let requests = sequences.len() as u64;

    // Some commit lost a race and re-based: the batch runs' reports and the
    // stream count them.
    let ingest_rebases: u64 = reports.iter().map(|r| u64::from(r.attempts) - 1).sum();
    assert!(ingest_rebases + stream.rebases() > 0, "no re-base in {runs} runs: {reports:?}");

    // Every version ever published, again; and the commit log: one chain of
    // parents, batch runs and micro-batches interleaved.
    let store = lake.lake();
    let latest = cip::lake::snapshot::latest_version(&store).await.unwrap().unwrap();
    let mut every = Vec::new();
    let mut operations = Vec::new();
    for v in 1..=latest {
        let commit = cip::lake::snapshot::read_commit(&store, v).await.unwrap();
        assert_eq!(commit.parent, v.checked_sub(1).filter(|p| *p > 0), "version {v}");
        operations.push(commit.operation);
        every.push(check_version(&store, &cip::lake::snapshot::read(&store, v).await.unwrap()).await);
    }
    let ingests: Vec<u64> = (1..=latest).filter(|v| operations[*v as usize - 1] == "ingest").collect();
    let streamed: Vec<u64> = (1..=latest).filter(|v| operations[*v as usize - 1] == "stream").collect();
    assert_eq!(ingests, [&[1][..], &run_versions].concat(), "{operations:?}");
    assert_eq!(ingests.len() + streamed.len(), latest as usize, "{operations:?}");
    // A stream version after each batch run (the loop waited for one).
    for v in &run_versions {
        assert!(streamed.iter().any(|s| s > v), "{operations:?}");
    }

    // Each version holds exactly the requests logged at or below its stream
    // position, and the batch runs published at or before it.
    for seen in read_live.iter().chain(&every) {
        let logged: BTreeSet<u64> =
            sequences.iter().filter(|(_, seq)| **seq <= seen.stream_through).map(|(r, _)| *r).collect();
        assert_eq!(seen.requests, logged, "version {}", seen.version);
        let landed: BTreeSet<u64> = (1..=runs).filter(|r| run_versions[*r as usize - 1] <= seen.version).collect();
        assert_eq!(seen.runs, landed, "version {}", seen.version);
    }
    assert!(read_live.len() as u64 >= runs, "the reader checked {} versions", read_live.len());

    // The end: every batch row and streamed event once, with its money.
    let last = every.last().unwrap();
    assert_eq!(last.stream_through, last_seq);
    assert_eq!((last.runs.len() as u64, last.requests.len() as u64), (runs, requests));
    let expected: rust_decimal::Decimal = dec("382.25")
        + (1..=runs).map(run_gross).sum::<rust_decimal::Decimal>()
        + (1..=requests).map(request_gross).sum::<rust_decimal::Decimal>();
    assert_eq!(last.gross, expected);
    let ours = "SELECT count(*) FROM commissions WHERE commission_id LIKE 'B-%' OR commission_id LIKE 'S-%'";
    assert_eq!(crate::helpers::count(&lake, "t1", ours).await as u64, runs * RUN_ROWS + requests * REQUEST_EVENTS);
    assert_eq!(lake.latest().await.unwrap().txns.get(STREAM_APP), Some(&last_seq));
}

/// A client that writes its whole body before it reads the answer (as many
/// webhook senders do) gets the backlog's 503 and its `Retry-After`, not a
/// connection reset: the door reads the body before it refuses.
#[tokio::test]
async fn a_full_backlog_is_answered_503_after_the_body_is_read() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let app = TestApp::spawn_with(|s| cip::config::ServeSettings {
        max_stream_backlog_bytes: 0,
        max_ingest_bytes: 16 << 20,
        ..s
    })
    .await;
    let token = TestApp::token("t1", &["ingest:write"]);
    // 8 MiB of events: far more than the socket buffers hold, so a server
    // that answered without reading would reset the connection mid-body.
    let line = event("e", "agency.upserted", "2025-06-10T12:00:00Z", json!({ "agency_id": "G9", "name": "x" }));
    let body = vec![line.as_str(); (8 << 20) / (line.len() + 1)].join("\n");
    let addr = app.url.trim_start_matches("http://");
    let mut conn = tokio::net::TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "POST /ingest/events HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: application/x-ndjson\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    conn.write_all(head.as_bytes()).await.unwrap();
    conn.write_all(body.as_bytes()).await.expect("the whole body is taken");
    let mut answer = String::new();
    conn.read_to_string(&mut answer).await.unwrap();
    let status = answer.lines().next().unwrap();
    assert_eq!(status, "HTTP/1.1 503 Service Unavailable");
    assert!(answer.to_ascii_lowercase().contains("\r\nretry-after: 1\r\n"), "{answer}");
    assert!(answer.contains(r#""code":"RATE_LIMITED""#), "{answer}");
    assert_eq!(app.state.stream().unwrap().logged(), 0, "nothing was logged");
}

/// Upserts that land in files written by earlier micro-batches, before and
/// after a compaction: the writer finds the stored row through its key
/// index, so every key stays exactly once with its latest amount. The
/// figures are kept independently by the test (a map of id → amount).
#[tokio::test]
async fn upserts_find_rows_of_earlier_batches_through_the_key_index() {
    let lake = TestLake::new();
    let stream = Stream::open(lake.lake()).await.unwrap();
    let mut model: std::collections::BTreeMap<String, i64> = std::collections::BTreeMap::new();
    let mut n = 0u32;
    let row = |id: &str, cents: i64| {
        let amount = format!("{}.{:02}", cents / 100, cents % 100);
        json!({ "commission_id": id, "policy_id": "P1", "agent_id": "A1", "carrier_id": "K1",
            "transaction_date": "2025-06-10", "kind": "new", "premium_amount": "1000.00", "commission_rate": "0.10",
            "gross_commission": amount, "agent_commission": "0.00", "agency_commission": amount })
    };
    for round in 0..8i64 {
        let mut events = Vec::new();
        let mut send = |id: String, cents: i64, model: &mut std::collections::BTreeMap<String, i64>| {
            n += 1;
            let at = format!("2026-01-01T00:{:02}:{:02}Z", n / 60, n % 60);
            events.push(event(&format!("e{n}"), "commission.upserted", &at, row(&id, cents)));
            model.insert(id, cents);
        };
        // 20 new rows, then changes to rows of the last round, of round 0
        // (its file, or after the compaction the compacted one), and one
        // re-sent unchanged.
        for i in 0..20 {
            send(format!("C-{round}-{i}"), 1000 + i, &mut model);
        }
        if round > 0 {
            send(format!("C-{}-3", round - 1), 5000 + round, &mut model);
            send(format!("C-0-{}", round), 7000 + round, &mut model);
            let same = format!("C-{}-5", round - 1);
            let cents = model[&same];
            send(same, cents, &mut model);
        }
        let acked = stream.accept("t1", &events.join("\n")).await.unwrap();
        assert_eq!(acked.accepted, events.len());
        assert!(stream.commit_once().await.unwrap().is_some(), "round {round}");
        if round == 4 {
            assert!(stream.maintain(2).await.unwrap().is_some(), "the partition's files compacted");
        }
        let rows = crate::helpers::count(&lake, "t1", "SELECT count(*) FROM commissions").await;
        let ids = crate::helpers::count(&lake, "t1", "SELECT count(DISTINCT commission_id) FROM commissions").await;
        assert_eq!((rows, ids), (model.len() as i64, model.len() as i64), "round {round}: each key once");
        let sql = "SELECT CAST(sum(gross_commission) * 100 AS BIGINT) FROM commissions";
        let cents = crate::helpers::count(&lake, "t1", sql).await;
        assert_eq!(cents, model.values().sum::<i64>(), "round {round}: the latest amounts");
    }
    assert_eq!(model.len(), 160);
}

/// Two servers on one lake: one takes the events (it holds the lake's
/// stream lease), the other serves queries and answers the event door 503
/// with `Retry-After`, and takes over at once when the first stops cleanly
/// (long before the lease's 30 s would run out); what each acknowledged is
/// in the lake exactly once.
#[tokio::test]
async fn one_server_takes_a_lakes_events_and_another_takes_over_when_it_stops() {
    use cip::config::ServeSettings;
    let mut first = TestApp::spawn().await;
    assert!(first.state.stream().is_some());
    // The second looks for a free lease every second (a third of its 3 s);
    // the first's lease would last 30 s.
    let settings = ServeSettings { stream_lease_secs: 3, ..ServeSettings::test_config(&first.lake.lake_url()) };
    let second = cip::serve::Application::build(settings).await.unwrap();
    let second_url = format!("http://127.0.0.1:{}", second.port());
    let second_state = second.state();
    let (stop_second, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(second.run_until_stopped(async move {
        let _ = stopped.await;
    }));
    assert!(second_state.stream().is_none());
    let ready = reqwest::get(format!("{second_url}/ready")).await.unwrap().text().await.unwrap();
    assert_eq!(ready, r#"{"events":false,"snapshot":1,"status":"ready"}"#);

    let token = TestApp::token("t1", &["ingest:write"]);
    let k5 = event("e5", "carrier.upserted", "2025-06-10T12:00:00Z", json!({ "carrier_id": "K5", "name": "Five" }));
    let k6 = event("e6", "carrier.upserted", "2025-06-10T12:00:00Z", json!({ "carrier_id": "K6", "name": "Six" }));
    // The second refuses events while the first holds the lease ...
    let (retry, (status, body)) = send_to(&second_url, &token, k6.clone()).await;
    assert_eq!((status, retry.as_deref()), (503, Some("1")));
    assert_eq!(body["errors"][0]["extensions"]["code"], "NOT_READY");
    // ... and answers queries (a read replica).
    let key = first.key_t1.clone();
    let carriers = |url: String, key: String| async move {
        let resp = reqwest::Client::new()
            .post(format!("{url}/graphql"))
            .header("X-API-Key", key)
            .json_body(&json!({ "query": "{ carriers { id } }" }))
            .send()
            .await
            .unwrap();
        let body = json_of(resp).await;
        body["data"]["carriers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["id"].as_str().unwrap().to_string())
            .collect::<Vec<_>>()
    };
    assert_eq!(carriers(second_url.clone(), key.clone()).await, ["K1", "K2"]);

    let (status, acked) = send(&first, &token, k5).await;
    assert_eq!((status, acked["accepted"].clone()), (200, json!(1)));
    first.state.stream().unwrap().wait_committed(acked["sequence"].as_u64().unwrap()).await;

    // The first stops cleanly: the second takes the events at its next
    // look (1 s), not after the first's lease would have expired (30 s).
    let stopped_at = Instant::now();
    first.stop();
    while second_state.stream().is_none() {
        assert!(stopped_at.elapsed() < Duration::from_secs(10), "the second server never took over");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(stopped_at.elapsed() < Duration::from_secs(5), "{:?}", stopped_at.elapsed());
    let (_, (status, acked)) = send_to(&second_url, &token, k6).await;
    assert_eq!((status, acked["accepted"].clone()), (200, json!(1)));
    second_state.stream().unwrap().wait_committed(acked["sequence"].as_u64().unwrap()).await;
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let seen = carriers(second_url.clone(), key.clone()).await;
        if seen.len() == 4 || Instant::now() > deadline {
            assert_eq!(seen, ["K1", "K2", "K5", "K6"]);
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    const NEW: &str = "SELECT count(*) FROM carriers WHERE carrier_id IN ('K5', 'K6')";
    assert_eq!(crate::helpers::count(&first.lake, "t1", NEW).await, 2);
    let _ = stop_second.send(());
}

/// `/metrics` says what the long-lived caches hold next to their bounds:
/// two accepted events are two remembered ids (48 bytes each), a repeat
/// adds none, and the writer's caches hold the keys of what it committed.
#[tokio::test]
async fn metrics_account_for_the_writers_caches_against_their_bounds() {
    let app = TestApp::spawn().await;
    let token = TestApp::token("t1", &["ingest:write"]);
    let body = [
        event("m1", "carrier.upserted", "2025-06-10T12:00:00Z", json!({ "carrier_id": "K7", "name": "Seven" })),
        event("m2", "carrier.upserted", "2025-06-10T12:00:00Z", json!({ "carrier_id": "K8", "name": "Eight" })),
        event("m1", "carrier.upserted", "2025-06-10T12:00:00Z", json!({ "carrier_id": "K7", "name": "Seven" })),
    ]
    .join("\n");
    let (status, acked) = send(&app, &token, body).await;
    assert_eq!((status, acked["accepted"].clone(), acked["duplicates"].clone()), (200, json!(2), json!(1)));
    app.state.stream().unwrap().wait_committed(acked["sequence"].as_u64().unwrap()).await;
    let (_, text) = app.get("/metrics").await;
    let gauge = |name: &str, part: &str| -> u64 {
        let prefix = format!("{name}{{part=\"{part}\"}} ");
        let line = text.lines().find(|l| l.starts_with(&prefix)).unwrap_or_else(|| panic!("no {prefix} in\n{text}"));
        line[prefix.len()..].parse().unwrap()
    };
    assert_eq!(gauge("cip_memory_bytes", "stream_recent_event_ids"), 2 * 48);
    assert_eq!(gauge("cip_memory_bound_bytes", "stream_recent_event_ids"), (1 << 20) * 48);
    assert_eq!(gauge("cip_memory_bound_bytes", "stream_stored_keys"), 128 << 20);
    assert_eq!(gauge("cip_memory_bound_bytes", "stream_key_indexes"), 512 << 20);
    assert_eq!(gauge("cip_memory_bound_bytes", "result_cache"), 64 << 20);
    let (keys, indexes) = app.state.stream().unwrap().cache().bytes();
    assert!(keys > 0 && indexes > 0, "the commit kept the carriers' keys: {keys}, {indexes}");
    assert_eq!(gauge("cip_memory_bytes", "stream_stored_keys"), keys);
    assert_eq!(gauge("cip_memory_bytes", "result_cache"), app.state.cache.size().1 as u64);
}
