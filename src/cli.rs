//! The `cip` command line: one binary, one subcommand per job.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use chrono::NaiveDate;
use clap::{Parser, Subcommand};

use crate::generate::{self, Format, GenerateOptions};

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
    /// The main job on the embedded default: generate the demo book of
    /// business, ingest it into the lake and print the summary.
    Demo {
        /// Where the demo landing (`<dir>/landing`) and its truth (`<dir>/truth`) go.
        #[arg(long, default_value = "data/demo")]
        dir: PathBuf,
        #[arg(long, default_value_t = 100_000)]
        policies: usize,
        #[arg(long, default_value_t = 7)]
        seed: u64,
        #[arg(long, default_value_t = 6)]
        tenants: usize,
        #[command(flatten)]
        lake: LakeArg,
    },
    /// Write a realistic, deterministic demo landing folder (and its truth).
    Generate {
        /// The landing folder to write: <out>/<entity>/*.csv|*.jsonl.
        #[arg(long)]
        out: PathBuf,
        /// Where the truth goes (planted defects, discrepancies); default <out>-truth.
        #[arg(long)]
        truth: Option<PathBuf>,
        /// Policy terms to generate (renewals included).
        #[arg(long, default_value_t = 100_000)]
        policies: usize,
        #[arg(long, default_value_t = 7)]
        seed: u64,
        #[arg(long, default_value_t = 6)]
        tenants: usize,
        #[arg(long, value_enum, default_value_t = FormatArg::Csv)]
        format: FormatArg,
        /// Fraction of rows written with one planted defect (0 = clean).
        #[arg(long, default_value_t = 0.0005)]
        bad_row_rate: f64,
        /// First effective date of the history.
        #[arg(long, default_value = "2021-01-01")]
        start: NaiveDate,
        /// End of the history ("today"), exclusive.
        #[arg(long, default_value = "2026-01-01")]
        end: NaiveDate,
    },
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

#[derive(clap::ValueEnum, Debug, Clone, Copy)]
pub enum FormatArg {
    Csv,
    Jsonl,
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
        Command::Demo { dir, policies, seed, tenants, lake } => {
            let landing = dir.join("landing");
            let truth = dir.join("truth");
            let started = std::time::Instant::now();
            let opts = GenerateOptions {
                out: landing.clone(),
                truth: truth.clone(),
                policies,
                seed,
                tenants,
                format: Format::Csv,
                bad_row_rate: 0.0005,
                start: NaiveDate::from_ymd_opt(2021, 1, 1).expect("date"),
                end: NaiveDate::from_ymd_opt(2026, 1, 1).expect("date"),
            };
            let summary = generate_fresh(&opts)?;
            println!(
                "generated {} rows in {} files ({} with a planted defect) under {} in {:.1} s",
                summary.rows.iter().map(|(_, n)| n).sum::<u64>(),
                summary.files,
                summary.bad_rows,
                landing.display(),
                started.elapsed().as_secs_f64()
            );
            let opts = IngestOptions { progress: std::io::stderr().is_terminal(), ..Default::default() };
            let report = ingest(path_str(&landing)?, &lake.url, &opts).await?;
            print!("{}", render_report(&report));
            println!("lake: {}   truth of the planted defects: {}", lake.url, truth.display());
            Ok(())
        }
        Command::Generate { out, truth, policies, seed, tenants, format, bad_row_rate, start, end } => {
            let truth = truth.unwrap_or_else(|| {
                let mut t = out.clone().into_os_string();
                t.push("-truth");
                PathBuf::from(t)
            });
            let format = match format {
                FormatArg::Csv => Format::Csv,
                FormatArg::Jsonl => Format::Jsonl,
            };
            let opts = GenerateOptions { out, truth, policies, seed, tenants, format, bad_row_rate, start, end };
            let summary = generate_fresh(&opts)?;
            for (entity, rows) in &summary.rows {
                println!("{entity:<22}{rows:>12}");
            }
            println!("{} files, {} rows with a planted defect", summary.files, summary.bad_rows);
            Ok(())
        }
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

/// Marks a folder as written by `cip generate`, so that it may be replaced.
const GENERATED_MARKER: &str = ".cip-generated";

/// Generate into empty folders: stale files from an earlier, larger
/// generation must not mix into the landing. Only folders that a previous
/// generation wrote (or empty ones) are replaced.
fn generate_fresh(opts: &GenerateOptions) -> anyhow::Result<generate::GenerateSummary> {
    for dir in [&opts.out, &opts.truth] {
        if dir.exists() {
            let empty = std::fs::read_dir(dir)?.next().is_none();
            anyhow::ensure!(
                empty || dir.join(GENERATED_MARKER).exists(),
                "refusing to overwrite {}: it is not empty and was not written by `cip generate`",
                dir.display()
            );
            std::fs::remove_dir_all(dir)?;
        }
    }
    let summary = generate::generate(opts)?;
    for dir in [&opts.out, &opts.truth] {
        std::fs::write(dir.join(GENERATED_MARKER), b"")?;
    }
    Ok(summary)
}

fn path_str(p: &Path) -> anyhow::Result<&str> {
    p.to_str().ok_or_else(|| anyhow::anyhow!("path {} is not UTF-8", p.display()))
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
