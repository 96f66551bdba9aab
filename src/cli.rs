//! The `cip` command line: one binary, one subcommand per job.

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::lake::store;
use crate::pipelines::batch::{self, IngestOptions, IngestReport};

#[derive(Parser, Debug)]
#[command(name = "cip", version, about = "Commission Intelligence Platform")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Ingest a landing folder (CSV / JSON Lines per entity) into the lake.
    Ingest {
        /// Landing folder: a path or object-store URL (file://, s3://, memory://).
        #[arg(long)]
        landing: String,
        #[command(flatten)]
        lake: LakeArg,
        /// Print a machine-readable summary on stdout.
        #[arg(long)]
        json: bool,
        /// Files staged in parallel (default: number of cores).
        #[arg(long)]
        workers: Option<usize>,
    },
}

#[derive(clap::Args, Debug, Clone)]
pub struct LakeArg {
    /// The lake: a path or object-store URL.
    #[arg(long = "lake", env = "CIP_LAKE", default_value = "data/lake")]
    pub url: String,
}

pub fn main() -> ExitCode {
    crate::telemetry::init();
    let cli = Cli::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("tokio runtime");
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Ingest { landing, lake, json, workers } => {
            let mut opts = IngestOptions { progress: !json && std::io::stderr().is_terminal(), ..Default::default() };
            if let Some(w) = workers {
                opts.workers = w;
            }
            let report = ingest(&landing, &lake.url, &opts).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                print!("{}", render_report(&report));
            }
            Ok(())
        }
    }
}

pub async fn ingest(landing: &str, lake: &str, opts: &IngestOptions) -> anyhow::Result<IngestReport> {
    let landing = store::open(landing)?;
    let lake = store::open(lake)?;
    Ok(batch::ingest(&landing, &lake, opts).await?)
}

/// A human-readable run summary.
pub fn render_report(r: &IngestReport) -> String {
    use std::fmt::Write;
    let mut s = String::new();
    let _ = writeln!(s, "run {}", r.run_id);
    let _ = writeln!(
        s,
        "{:<22}{:>6}{:>12}{:>12}{:>10}{:>10}{:>10}{:>11}",
        "entity", "files", "read", "landed", "rejected", "new", "updated", "unchanged"
    );
    for (name, c) in &r.entities {
        let _ = writeln!(
            s,
            "{:<22}{:>6}{:>12}{:>12}{:>10}{:>10}{:>10}{:>11}",
            name, c.files, c.read, c.landed, c.rejected, c.upserts.new, c.upserts.updated, c.upserts.unchanged
        );
    }
    for f in &r.unreadable_files {
        let _ = writeln!(s, "unreadable: {}: {}", f.file, f.error);
    }
    let snapshot = r.snapshot.map(|v| v.to_string()).unwrap_or_else(|| "none".into());
    let what = if r.published { "published" } else { "unchanged, still" };
    let _ = writeln!(
        s,
        "{} rows read, {} rejected, in {:.1} s ({:.0} rows/s); snapshot {what} {snapshot}",
        r.rows_read,
        r.rows_rejected,
        r.duration_ms as f64 / 1000.0,
        r.rows_per_sec
    );
    s
}
