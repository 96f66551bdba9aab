//! Grows a lake by many small commits through cip's own ingest (one
//! commission row each, on top of a small book), compacting the growing
//! partition every 50 commits as a streaming writer would (those are commits
//! too), for `benches/lake_open.sh`.
//!
//!   cargo run --example lake_commits -- LAKE COMMITS

use cip::lake::store;
use cip::pipelines::batch::{IngestOptions, ingest};

const HEADER: &str = "tenant_id,commission_id,policy_id,agent_id,carrier_id,transaction_date,kind,premium_amount,commission_rate,gross_commission,agent_commission,agency_commission";

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let lake_url = args.next().expect("usage: lake_commits LAKE COMMITS");
    let commits: usize = args.next().expect("usage: lake_commits LAKE COMMITS").parse()?;
    let lake = store::open(&lake_url)?;
    let landing_dir = tempfile::tempdir()?;
    let landing = store::open(landing_dir.path().to_str().expect("utf-8 temp dir"))?;
    let opts = IngestOptions { workers: 1, ..Default::default() };
    let started = std::time::Instant::now();
    for i in 0..commits {
        // Each run sees only its own file: one new row, one new version.
        let dir = landing_dir.path().join("commissions");
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir)?;
        let row = format!("t-bench,B{i},P{i},A1,K1,2024-01-15,new,100.00,0.10,10.00,4.00,6.00");
        std::fs::write(dir.join("one.csv"), format!("{HEADER}\n{row}\n"))?;
        let report = ingest(&landing, &lake, &opts).await?;
        anyhow::ensure!(report.published, "commit {i} published nothing");
        if (i + 1) % 50 == 0 {
            let run = format!("bench-optimize-{i}");
            cip::lake::maintenance::optimize(
                &lake,
                Some("commissions"),
                Some("t-bench"),
                &run,
                cip::lake::maintenance::Compaction::all(2),
            )
            .await?;
        }
        if (i + 1) % 500 == 0 {
            eprintln!("{} commits, {:.1} s", i + 1, started.elapsed().as_secs_f64());
        }
    }
    Ok(())
}
