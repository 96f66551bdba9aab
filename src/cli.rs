//! The `cip` command line: one binary, one subcommand per job.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use chrono::NaiveDate;
use clap::{Parser, Subcommand};

use crate::auth::{ANALYTICS_READ, REPORTS_WRITE, keys};
use crate::config::ServeSettings;
use crate::generate::{self, Format, GenerateOptions};
use crate::serve::Application;

use crate::commissions::store::Actor;
use crate::lake::store;
use crate::models::jobs::{self, ScoreOptions, ScoreSummary, TrainOptions, TrainSummary};
use crate::pipelines::batch::{self, IngestOptions, IngestReport};
use crate::query::view::{SessionLimits, TenantView};

#[derive(Parser, Debug)]
#[command(name = "cip", version, about = "Commission Intelligence Platform")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// The main job on the embedded default: generate the demo book of
    /// business, ingest it into the lake, train and score the models, and
    /// serve the API.
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
        /// Stop after ingesting instead of serving the API.
        #[arg(long)]
        no_serve: bool,
        /// Address for the API server.
        #[arg(long, default_value = "127.0.0.1:8080")]
        addr: String,
    },
    /// Serve the GraphQL analytics API over the lake.
    Serve {
        // Boxed: the settings are by far the largest variant.
        #[command(flatten)]
        settings: Box<ServeSettings>,
    },
    /// Exit 0 when the server at `addr` answers `GET /health` with 200
    /// (a container health check; needs no shell or curl).
    Health {
        #[arg(long, env = "CIP_ADDR", default_value = "127.0.0.1:8080")]
        addr: String,
    },
    /// Print the served GraphQL schema (SDL).
    Schema,
    /// Manage API keys (stored as salted hashes in the lake).
    Keys {
        #[command(subcommand)]
        action: KeysAction,
        /// The lake holding the keys (before or after the action).
        #[arg(long = "lake", env = "CIP_LAKE", default_value = "data/lake", global = true)]
        lake: String,
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
    /// Train and evaluate the renewal and revenue-forecast models on the
    /// latest snapshot; register them under `models/<name>/<version>/`.
    Train {
        #[command(flatten)]
        lake: LakeArg,
        /// The last day of data (default: the latest date in the lake).
        #[arg(long)]
        data_date: Option<NaiveDate>,
        /// Also write the renewal model's train/test features as CSV here.
        #[arg(long)]
        export_features: Option<PathBuf>,
        /// Print a machine-readable summary on stdout.
        #[arg(long)]
        json: bool,
    },
    /// Score the policies in force and forecast revenue with the newest
    /// models; publish `renewal_scores`, `forecasts` and `forecast_accuracy`.
    Score {
        #[command(flatten)]
        lake: LakeArg,
        /// The scoring date (default: the latest date in the lake).
        #[arg(long)]
        as_of: Option<NaiveDate>,
        /// Print a machine-readable summary on stdout.
        #[arg(long)]
        json: bool,
    },
    /// Maintain the lake: compaction, vacuum, checkpoints, history, migration.
    Lake {
        #[command(subcommand)]
        action: LakeAction,
        /// The lake: a path or object-store URL.
        #[arg(long = "lake", env = "CIP_LAKE", default_value = "data/lake", global = true)]
        lake: String,
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
    /// Reconcile carrier statements against the booked commissions of a
    /// tenant and store the run in the lake (`reconciliations`, `discrepancies`).
    Reconcile {
        #[command(flatten)]
        lake: LakeArg,
        #[arg(long)]
        tenant: String,
        /// One carrier (default: every carrier with statement lines).
        #[arg(long)]
        carrier: Option<String>,
        /// One period YYYY-MM (default: every period with statement lines).
        #[arg(long)]
        period: Option<String>,
        /// A difference of at most this much counts as paid.
        #[arg(long, default_value = "0.00")]
        tolerance: String,
        /// Print the run (statements, discrepancies, timings) as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Exports for other systems.
    Export {
        #[command(subcommand)]
        what: ExportWhat,
    },
}

#[derive(Subcommand, Debug)]
pub enum ExportWhat {
    /// Month close: a period's journal entries per agency (debits equal credits).
    Accounting {
        #[command(flatten)]
        lake: LakeArg,
        #[arg(long)]
        tenant: String,
        /// YYYY-MM.
        #[arg(long)]
        period: String,
        #[arg(long, value_enum, default_value_t = JournalFormat::Json)]
        format: JournalFormat,
    },
}

#[derive(clap::ValueEnum, Debug, Clone, Copy)]
pub enum JournalFormat {
    Json,
    /// QuickBooks Online journal entry import CSV.
    Qbo,
    /// Xero manual journal import CSV.
    Xero,
}

#[derive(Subcommand, Debug)]
pub enum LakeAction {
    /// Compact each (table, tenant) partition's files into one; no answer changes.
    Optimize {
        #[arg(long)]
        table: Option<String>,
        #[arg(long)]
        tenant: Option<String>,
    },
    /// Delete files that no version within the retention references.
    Vacuum {
        #[arg(long, default_value_t = 168)]
        retain_hours: u64,
        /// List what would be deleted, delete nothing.
        #[arg(long)]
        dry_run: bool,
        /// Allow a retention under 24 hours (files an ingest is still
        /// writing, or a server still serving, may then go).
        #[arg(long)]
        force: bool,
    },
    /// Every version of the lake: when, which operation, what it changed.
    History,
    /// Write a Delta checkpoint of every table at its current version.
    Checkpoint,
    /// Files, rows and exact money sums of every table (all tenants), to
    /// check another reader of the Delta tables against.
    Stats {
        #[arg(long)]
        json: bool,
    },
    /// Turn a lake of the old manifest format into Delta tables in place.
    Migrate,
    /// The newest version's live files (JSON: version, tables → files with
    /// path, tenant_id, rows, bytes), for scripts that read the Parquet files.
    Files,
}

#[derive(Subcommand, Debug)]
pub enum KeysAction {
    /// Create a key; it is printed once and never stored.
    Create {
        #[arg(long)]
        tenant: String,
        /// Comma-separated permissions, e.g. analytics:read,reports:write.
        #[arg(long, value_delimiter = ',', default_value = "analytics:read")]
        scopes: Vec<String>,
        /// Environment tag in the key (cipk_<env>_…).
        #[arg(long, default_value = "live")]
        env: String,
    },
    /// List keys (ids, tenants, scopes; never the keys).
    List,
    /// Revoke a key by id.
    Revoke { id: String },
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
    let cli = Cli::parse();
    // The demo's output is its summaries: its logs stay at warnings.
    crate::telemetry::init(matches!(cli.command, Command::Serve { .. }));
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
        Command::Demo { dir, policies, seed, tenants, lake, no_serve, addr } => {
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
            // A demo lake of the old manifest format becomes Delta tables in place.
            let lake_loc = store::open(&lake.url)?;
            if let Some(v) = crate::lake::maintenance::migrate(&lake_loc, &batch::new_run_id()).await? {
                println!("{} was in cip's old lake format: migrated to Delta tables (version {v})", lake.url);
            }
            let opts = IngestOptions { progress: std::io::stderr().is_terminal(), ..Default::default() };
            let report = ingest(path_str(&landing)?, &lake.url, &opts).await?;
            print!("{}", render_report(&report));
            println!("lake: {}   truth of the planted defects: {}", lake.url, truth.display());
            let trained = jobs::train(&lake_loc, &TrainOptions::default()).await?;
            print!("{}", render_train(&trained));
            let scored = jobs::score(&lake_loc, &ScoreOptions::default()).await?;
            print!("{}", render_score(&scored));
            if no_serve {
                return Ok(());
            }
            let tenant = crate::lake::snapshot::latest(&lake_loc)
                .await?
                .and_then(|m| m.tenants().into_iter().next())
                .ok_or_else(|| anyhow::anyhow!("the demo lake has no tenant"))?;
            let scopes = [ANALYTICS_READ, REPORTS_WRITE].map(String::from).into_iter().collect();
            let (key, _) = keys::create(&lake_loc, &tenant, scopes, "demo").await?;
            serve(ServeSettings::production(&lake.url, &addr)?, Some((tenant, key))).await
        }
        Command::Serve { settings } => serve(*settings, None).await,
        Command::Health { addr } => health(&addr).await,
        Command::Lake { action, lake } => lake_command(action, &lake).await,
        Command::Schema => {
            print!("{}", crate::graphql::sdl());
            Ok(())
        }
        Command::Keys { action, lake } => {
            let lake = store::open(&lake)?;
            match action {
                KeysAction::Create { tenant, scopes, env } => {
                    crate::contract::check_tenant_id(&tenant)
                        .map_err(|why| anyhow::anyhow!("--tenant {tenant:?}: {why}"))?;
                    let (key, stored) = keys::create(&lake, &tenant, scopes.into_iter().collect(), &env).await?;
                    println!("{key}");
                    eprintln!(
                        "key {} for tenant {} with scopes {:?}: shown once, store it now",
                        stored.id, tenant, stored.scopes
                    );
                }
                KeysAction::List => {
                    let mut all: Vec<_> = keys::load_all(&lake).await?.into_values().collect();
                    all.sort_by(|a, b| a.created_at.cmp(&b.created_at));
                    for k in all {
                        let state = if k.revoked_at.is_some() { "revoked" } else { "active" };
                        let scopes: Vec<_> = k.scopes.into_iter().collect();
                        println!("{}  {:<16} {:<8} {}  {}", k.id, k.tenant_id, state, scopes.join(","), k.created_at);
                    }
                }
                KeysAction::Revoke { id } => {
                    anyhow::ensure!(keys::revoke(&lake, &id).await?, "no key with id {id}");
                    println!("revoked {id}");
                }
            }
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
        Command::Train { lake, data_date, export_features, json } => {
            let lake = store::open(&lake.url)?;
            let summary = jobs::train(&lake, &TrainOptions { data_date, export_features }).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&summary)?);
            } else {
                print!("{}", render_train(&summary));
            }
            Ok(())
        }
        Command::Score { lake, as_of, json } => {
            let lake = store::open(&lake.url)?;
            let summary = jobs::score(&lake, &ScoreOptions { as_of }).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&summary)?);
            } else {
                print!("{}", render_score(&summary));
            }
            Ok(())
        }
        Command::Reconcile { lake, tenant, carrier, period, tolerance, json } => {
            reconcile_command(&lake.url, &tenant, carrier, period, &tolerance, json).await
        }
        Command::Export { what: ExportWhat::Accounting { lake, tenant, period, format } } => {
            export_accounting(&lake.url, &tenant, &period, format).await
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

/// The tenant's view of the lake's latest version.
async fn tenant_view(lake: &str, tenant: &str) -> anyhow::Result<(crate::lake::Location, TenantView)> {
    crate::contract::check_tenant_id(tenant).map_err(|why| anyhow::anyhow!("--tenant {tenant:?}: {why}"))?;
    let loc = store::open(lake)?;
    let manifest = crate::lake::snapshot::latest(&loc).await?.context("the lake has no version yet: ingest first")?;
    anyhow::ensure!(manifest.tenants().iter().any(|t| t == tenant), "the lake has no tenant {tenant}");
    let view = TenantView::open(&loc, &manifest, tenant, SessionLimits::default()).await?;
    Ok((loc, view))
}

fn cli_actor() -> Actor {
    Actor::now(&format!("cli:{}", std::env::var("USER").unwrap_or_else(|_| "unknown".into())))
}

async fn reconcile_command(
    lake: &str,
    tenant: &str,
    carrier: Option<String>,
    period: Option<String>,
    tolerance: &str,
    json: bool,
) -> anyhow::Result<()> {
    if let Some(p) = &period {
        anyhow::ensure!(crate::contract::values::parse_month(p).is_some(), "--period {p:?} is not YYYY-MM");
    }
    let tol = crate::commissions::reconcile::tolerance_cents(tolerance)
        .with_context(|| format!("--tolerance {tolerance:?} is not an amount ≥ 0 with at most 2 decimals"))?;
    let (loc, view) = tenant_view(lake, tenant).await?;
    let scope = crate::commissions::load::Scope { carrier_id: carrier, period };
    let started = std::time::Instant::now();
    let r = crate::commissions::reconcile_and_store(&loc, &view.session, tenant, &scope, tol, &cli_actor()).await?;
    let total_ms = started.elapsed().as_millis();
    if json {
        let mut v = serde_json::to_value(&r)?;
        v["timings"]["total_ms"] = serde_json::json!(total_ms);
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(());
    }
    let o = &r.outcome;
    println!(
        "reconciled {} statement(s): {} lines against {} booked rows in {total_ms} ms (read {} ms, match {} ms, write {} ms); run {}",
        o.periods.len(),
        r.statement_lines,
        r.booked_rows,
        r.timings.read_ms,
        r.timings.match_ms,
        r.timings.write_ms,
        r.run_id
    );
    let mut by_type: std::collections::BTreeMap<&str, (u64, rust_decimal::Decimal)> = Default::default();
    for d in &o.discrepancies {
        let e = by_type.entry(d.kind_of.as_str()).or_default();
        e.0 += 1;
        e.1 += d.difference;
    }
    for (t, (n, diff)) in by_type {
        println!("  {t:<14}{n:>8}   difference {}", crate::commissions::money::fmt_money(diff));
    }
    if o.discrepancies.is_empty() {
        println!("  no discrepancies");
    }
    Ok(())
}

async fn export_accounting(lake: &str, tenant: &str, period: &str, format: JournalFormat) -> anyhow::Result<()> {
    anyhow::ensure!(crate::contract::values::parse_month(period).is_some(), "--period {period:?} is not YYYY-MM");
    let (_, view) = tenant_view(lake, tenant).await?;
    let entries = crate::commissions::accounting_export(&view.session, period).await?.unwrap_or_default();
    use crate::commissions::accounting::{CsvLayout, csv};
    match format {
        JournalFormat::Json => println!("{}", serde_json::to_string_pretty(&entries)?),
        JournalFormat::Qbo => print!("{}", csv(&entries, CsvLayout::QuickBooks)?),
        JournalFormat::Xero => print!("{}", csv(&entries, CsvLayout::Xero)?),
    }
    Ok(())
}

async fn serve(settings: ServeSettings, demo: Option<(String, String)>) -> anyhow::Result<()> {
    let app = Application::build(settings).await?;
    let url = format!("http://{}", app.local_addr());
    println!("GraphiQL:  {url}/graphql");
    println!("health:    {url}/health   ready: {url}/ready   metrics: {url}/metrics");
    if let Some((tenant, key)) = demo {
        println!("demo API key for tenant {tenant} (send as header X-API-Key): {key}");
        println!(
            "try: curl -s {url}/graphql -H 'X-API-Key: {key}' -H 'content-type: application/json' \\\n     -d '{{\"query\":\"{{ agencies {{ id name kpis(asOf: \\\"2025-12-31\\\") {{ ytdCommission activePolicies }} }} }}\"}}'"
        );
    }
    println!("Ctrl-C stops the server.");
    app.run_until_stopped(crate::serve::shutdown_signal()).await?;
    Ok(())
}

async fn lake_command(action: LakeAction, url: &str) -> anyhow::Result<()> {
    use crate::lake::maintenance;
    let lake = store::open(url)?;
    let run_id = batch::new_run_id();
    match action {
        LakeAction::Optimize { table, tenant } => {
            let r = maintenance::optimize(
                &lake,
                table.as_deref(),
                tenant.as_deref(),
                &run_id,
                maintenance::Compaction::all(2),
            )
            .await?;
            for c in &r.compacted {
                println!("{:<22} {:<16} {:>4} files → 1 ({} rows)", c.table, c.tenant_id, c.files_before, c.rows);
            }
            match r.version {
                Some(v) => println!("{} files → {}; version {v} published", r.files_before, r.files_after),
                None => println!("nothing to compact ({} files)", r.files_before),
            }
        }
        LakeAction::Vacuum { retain_hours, dry_run, force } => {
            anyhow::ensure!(
                retain_hours >= 24 || force || dry_run,
                "a retention under 24 hours can delete files that a running ingest or server still needs: \
                 add --force if nothing else uses the lake"
            );
            let deleted = maintenance::vacuum(&lake, retain_hours, dry_run).await?;
            for p in &deleted {
                println!("{p}");
            }
            let what = if dry_run { "would be deleted" } else { "deleted" };
            println!("{} files {what} (retention {retain_hours} h)", deleted.len());
        }
        LakeAction::History => {
            println!(
                "{:>8}  {:<25} {:<9} {:<26} changed tables (files, rows)",
                "version", "created", "operation", "run"
            );
            for c in maintenance::history(&lake).await? {
                let changed: Vec<String> = c
                    .tables
                    .iter()
                    .filter(|(_, t)| t.entry.is_some())
                    .map(|(name, t)| format!("{name}@{} ({}, {})", t.delta_version, t.files, t.rows))
                    .collect();
                println!(
                    "{:>8}  {:<25} {:<9} {:<26} {}",
                    c.version,
                    c.created_at,
                    c.operation,
                    c.run_id,
                    changed.join(" ")
                );
            }
        }
        LakeAction::Checkpoint => {
            for (table, v) in maintenance::checkpoint(&lake).await? {
                println!("{table:<22} checkpoint at Delta version {v}");
            }
        }
        LakeAction::Stats { json } => {
            let manifest = crate::lake::snapshot::latest(&lake).await?.context("the lake has no version yet")?;
            let stats = crate::query::lake_stats::table_stats(&lake, &manifest).await?;
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&serde_json::json!({"version": manifest.version, "tables": stats}))?
                );
            } else {
                for t in &stats {
                    let sums: Vec<String> = t.money_sums.iter().map(|(c, v)| format!("{c}={v}")).collect();
                    println!("{:<22}{:>6} files{:>10} rows  {}", t.table, t.files, t.rows, sums.join(" "));
                }
            }
        }
        LakeAction::Files => {
            let manifest = crate::lake::snapshot::latest(&lake).await?.context("the lake has no version yet")?;
            println!("{}", serde_json::to_string_pretty(&manifest)?);
        }
        LakeAction::Migrate => match maintenance::migrate(&lake, &run_id).await? {
            Some(v) => println!("migrated to Delta tables: lake version {v}"),
            None => println!("the lake is already made of Delta tables"),
        },
    }
    Ok(())
}

/// `GET /health` over a plain TCP connection, with a 3 s deadline.
async fn health(addr: &str) -> anyhow::Result<()> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let check = async {
        let mut stream = tokio::net::TcpStream::connect(addr).await?;
        let request = format!("GET /health HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await?;
        let mut head = vec![0u8; 64];
        let n = stream.read(&mut head).await?;
        anyhow::Ok(head[..n].starts_with(b"HTTP/1.1 200"))
    };
    match tokio::time::timeout(std::time::Duration::from_secs(3), check).await {
        Ok(Ok(true)) => Ok(()),
        Ok(Ok(false)) => anyhow::bail!("{addr}/health did not answer 200"),
        Ok(Err(e)) => Err(e.context(format!("{addr} is not reachable"))),
        Err(_) => anyhow::bail!("{addr}/health did not answer within 3 s"),
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

/// A metric of a model's metrics.json for the summary line, if present.
fn figure(metrics: &serde_json::Value, path: &[&str]) -> String {
    let mut v = metrics;
    for p in path {
        v = &v[*p];
    }
    v.as_f64().map(|x| format!("{x:.3}")).unwrap_or_else(|| "n/a".into())
}

/// A human-readable summary of `cip train`.
pub fn render_train(s: &TrainSummary) -> String {
    let secs = |k: &str| s.timings_ms.get(k).copied().unwrap_or(0) as f64 / 1000.0;
    let r = &s.renewal.metrics;
    format!(
        "trained on snapshot {} (data up to {}) in {:.1} s\n\
         renewal {}: {} examples, out-of-time ROC-AUC {} (baseline line×carrier {}), ECE {}, Brier skill {}\n\
         revenue_forecast {}: agency MASE {} (h1-3), {} (h7-12), 80 % interval coverage {} in the backtest\n",
        s.snapshot,
        s.data_date,
        secs("total"),
        s.renewal.version,
        s.renewal_examples,
        figure(r, &["model", "roc_auc"]),
        figure(r, &["baseline_line_carrier", "roc_auc"]),
        figure(r, &["model", "ece"]),
        figure(r, &["model", "brier_skill"]),
        s.forecast.version,
        figure(&s.forecast.metrics, &["targets", "agency_mase_1_3", "value"]),
        figure(&s.forecast.metrics, &["targets", "agency_mase_7_12", "value"]),
        figure(&s.forecast.metrics, &["targets", "agency_coverage80", "value"]),
    )
}

/// A human-readable summary of `cip score`.
pub fn render_score(s: &ScoreSummary) -> String {
    format!(
        "scored {} policies in force on {} ({:.0} policies/s; {:.0}/s with features) and wrote {} forecast rows; \
         snapshot {} published\n",
        s.policies_scored, s.as_of, s.scoring_rate, s.scoring_rate_with_features, s.forecast_rows, s.snapshot
    )
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
