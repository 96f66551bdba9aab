//! `cip generate`: a deterministic, realistic demo book of business.
//!
//! The same options and seed give byte-identical output. The landing folder
//! gets one sub-folder per entity of the data contract, each split over
//! several files; the truth folder (never read by pipelines) gets the planted
//! bad rows (`rejects.csv`), the planted statement discrepancies
//! (`statement_discrepancies.csv`) and `summary.json`.
//! See `docs/demo-data.md` for every parameter and its public source.

pub mod bad_rows;
pub mod book;
pub mod catalog;
pub mod commissions;
pub mod rng;
pub mod statements;
pub mod write;

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::fs;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use chrono::{Datelike, NaiveDate};

use crate::generate::bad_rows::{EntitySpec, Reason};
use crate::generate::book::{Role, Tenant};
use crate::generate::commissions::CommRec;
use crate::generate::statements::{Disc, StmtLine, Subject};
use crate::generate::write::{Rejects, Row, Sink, SinkStats, fmt_cents, year_group};

/// Landing file format.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Csv,
    Jsonl,
}

#[derive(Clone, Debug)]
pub struct GenerateOptions {
    /// The landing folder: `out/<entity>/*.csv|*.jsonl`.
    pub out: PathBuf,
    /// Separate folder for the truth, never read by pipelines.
    pub truth: PathBuf,
    /// Total policy terms to generate. Customers are simulated until each
    /// tenant reaches its share; the result exceeds this by at most one
    /// customer's terms per tenant (a few dozen rows).
    pub policies: usize,
    pub seed: u64,
    /// Number of tenants (CLI default 6).
    pub tenants: usize,
    pub format: Format,
    /// Fraction of rows used for a bad row (0.0 = clean data).
    pub bad_row_rate: f64,
    /// First effective date (CLI default 2021-01-01).
    pub start: NaiveDate,
    /// History ends here, exclusive; `end` is "today" (CLI default 2026-01-01).
    pub end: NaiveDate,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GenerateSummary {
    /// Per entity: rows written, bad rows included.
    pub rows: Vec<(String, u64)>,
    /// Landing files written.
    pub files: u64,
    /// Bad rows planted (as listed in `truth/rejects.csv`).
    pub bad_rows: u64,
}

/// Generates the landing files and the truth folder.
pub fn generate(opts: &GenerateOptions) -> anyhow::Result<GenerateSummary> {
    if opts.end <= opts.start {
        bail!("end ({}) must be after start ({})", opts.end, opts.start);
    }
    if opts.tenants == 0 || opts.tenants > 1000 {
        bail!("tenants must be between 1 and 1000, got {}", opts.tenants);
    }
    if !(0.0..0.5).contains(&opts.bad_row_rate) {
        bail!("bad_row_rate must be in [0, 0.5), got {}", opts.bad_row_rate);
    }
    prepare_dirs(opts)?;

    let mut tenants = book::build_tenants(opts.seed, opts.tenants, opts.policies, opts.start, opts.end);

    let mut comms: Vec<CommRec> = Vec::with_capacity(opts.policies * 16 / 10 + 16);
    for t in tenants.iter_mut() {
        let mut flags = vec![false; t.policies.len()];
        commissions::generate(t, opts.seed, opts.end, &mut comms, &mut flags);
        for (p, f) in t.policies.iter_mut().zip(flags) {
            p.on_statement = f;
        }
    }
    comms.sort_unstable_by_key(|c| (c.date, c.tenant, c.policy, c.seq));
    let lines = statements::build(&tenants, &comms, opts.seed);

    let mut rejects = Rejects::create(&opts.truth.join("rejects.csv"))?;
    let sink = |spec: &'static EntitySpec| Sink::new(spec, &opts.out, opts.format, opts.seed, opts.bad_row_rate);
    let mut stats: Vec<SinkStats> = vec![
        write_agencies(&tenants, sink(&bad_rows::AGENCIES), &mut rejects)?,
        write_agents(&tenants, sink(&bad_rows::AGENTS), &mut rejects)?,
        write_carriers(&tenants, sink(&bad_rows::CARRIERS), &mut rejects)?,
        write_schedules(&tenants, sink(&bad_rows::SCHEDULES), &mut rejects)?,
        write_policies(&tenants, opts.end, sink(&bad_rows::POLICIES), &mut rejects)?,
        write_commissions(&tenants, &comms, sink(&bad_rows::COMMISSIONS), &mut rejects)?,
    ];
    let (st, disc_counts) =
        write_statement_lines(&tenants, &comms, &lines, sink(&bad_rows::STATEMENT_LINES), &mut rejects, &opts.truth)?;
    stats.push(st);
    let by_reason = rejects.finish()?;

    write_summary(opts, &tenants, &stats, by_reason, &disc_counts)?;
    Ok(GenerateSummary {
        rows: stats.iter().map(|s| (s.entity.to_string(), s.written)).collect(),
        files: stats.iter().map(|s| s.files).sum(),
        bad_rows: stats.iter().map(|s| s.bad).sum(),
    })
}

/// Creates the folders and removes landing files a previous run left
/// (only files named `<entity>-*.csv|jsonl` inside the entity folders).
fn prepare_dirs(opts: &GenerateOptions) -> anyhow::Result<()> {
    fs::create_dir_all(&opts.truth).with_context(|| format!("creating {}", opts.truth.display()))?;
    for spec in bad_rows::ENTITIES {
        let dir = opts.out.join(spec.name);
        fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let prefix = format!("{}-", spec.name);
        for entry in fs::read_dir(&dir)? {
            let entry = entry?;
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if name.starts_with(&prefix) && (name.ends_with(".csv") || name.ends_with(".jsonl")) {
                fs::remove_file(entry.path())?;
            }
        }
    }
    Ok(())
}

fn write_agencies(tenants: &[Tenant], mut sink: Sink, rejects: &mut Rejects) -> anyhow::Result<SinkStats> {
    let mut row = Row::default();
    for t in tenants {
        for a in &t.agencies {
            row.clear();
            row.str(&t.id).str(&a.id).str(&a.name).str(a.state);
            sink.write(&t.id, &row, false, rejects)?;
        }
    }
    Ok(sink.finish(rejects)?)
}

fn write_agents(tenants: &[Tenant], mut sink: Sink, rejects: &mut Rejects) -> anyhow::Result<SinkStats> {
    let mut row = Row::default();
    for t in tenants {
        for a in &t.agents {
            row.clear();
            row.str(&t.id)
                .str(&a.id)
                .str(&t.agencies[a.agency as usize].id)
                .str(&a.name)
                .str(match a.role {
                    Role::Producer => "producer",
                    Role::Manager => "manager",
                })
                .opt_str(a.manager.map(|m| t.agents[m as usize].id.as_str()));
            match a.split {
                Some(s) => row.fmt(format_args!("{s}")),
                None => row.empty(),
            };
            match a.override_pct {
                Some(s) => row.fmt(format_args!("{s}")),
                None => row.empty(),
            };
            row.date(a.hire).str(if a.termination.is_some() { "terminated" } else { "active" }).opt_date(a.termination);
            sink.write(&t.id, &row, false, rejects)?;
        }
    }
    Ok(sink.finish(rejects)?)
}

fn write_carriers(tenants: &[Tenant], mut sink: Sink, rejects: &mut Rejects) -> anyhow::Result<SinkStats> {
    let mut row = Row::default();
    for t in tenants {
        for c in &t.carriers {
            row.clear();
            row.str(&t.id).str(&c.id).str(c.spec.name);
            sink.write(&t.id, &row, false, rejects)?;
        }
    }
    Ok(sink.finish(rejects)?)
}

fn write_schedules(tenants: &[Tenant], mut sink: Sink, rejects: &mut Rejects) -> anyhow::Result<SinkStats> {
    let mut row = Row::default();
    for t in tenants {
        for s in &t.schedules {
            row.clear();
            row.str(&t.id)
                .str(&t.carriers[s.carrier as usize].id)
                .str(s.line.as_str())
                .str(if s.renewal { "renewal" } else { "new" })
                .rate_micro(s.rate_micro)
                .date(s.from)
                .opt_date(s.to);
            sink.write(&t.id, &row, false, rejects)?;
        }
    }
    Ok(sink.finish(rejects)?)
}

/// A bijection on u32, so external ids are unique within a tenant.
fn permute(x: u32, salt: u32) -> u32 {
    let mut x = x ^ salt;
    x = x.wrapping_mul(0x9E37_79B1);
    x ^= x >> 16;
    x = x.wrapping_mul(0x85EB_CA6B);
    x ^= x >> 13;
    x
}

fn push_external_id(row: &mut Row, source: &str, n: u32) {
    match source {
        "applied_epic" => row.fmt(format_args!("EPIC-{n:08X}")),
        "ezlynx" => row.fmt(format_args!("EZ{n:010}")),
        "hawksoft" => row.fmt(format_args!("{n}")),
        "ams360" => row.fmt(format_args!("AMS360-{n:010}")),
        _ => row.fmt(format_args!("nc-{n:08x}")),
    };
}

fn write_policies(
    tenants: &[Tenant],
    end: NaiveDate,
    mut sink: Sink,
    rejects: &mut Rejects,
) -> anyhow::Result<SinkStats> {
    let mut order: Vec<(NaiveDate, u16, u32)> = Vec::new();
    for t in tenants {
        for (i, p) in t.policies.iter().enumerate() {
            order.push((p.eff, t.index as u16, i as u32));
        }
    }
    order.sort_unstable();
    let mut row = Row::default();
    let mut group = String::new();
    let mut year = 0;
    for (eff, ti, pi) in order {
        let t = &tenants[ti as usize];
        let p = &t.policies[pi as usize];
        let carrier = &t.carriers[p.carrier as usize];
        let agency = &t.agencies[p.agency as usize];
        if eff.year() != year {
            year = eff.year();
            group = year_group(eff);
        }
        let status = if p.cancel.is_some() {
            "cancelled"
        } else if p.exp <= end {
            "expired"
        } else {
            "active"
        };
        row.clear();
        row.str(&t.id)
            .fmt(format_args!("P-{:07}", pi + 1))
            .str(&statements::own_number(carrier.spec, p.number, p.term_no))
            .str(&agency.id)
            .str(&t.agents[p.agent as usize].id)
            .str(&carrier.id)
            .fmt(format_args!("CU-{:06}", p.customer + 1))
            .str(p.line.as_str())
            .date(p.eff)
            .date(p.exp)
            .cents(p.premium_cents)
            .str(status)
            .opt_date(p.cancel);
        match p.prev {
            Some(q) => row.fmt(format_args!("P-{:07}", q + 1)),
            None => row.empty(),
        };
        row.str(agency.source);
        push_external_id(&mut row, agency.source, permute(pi, (t.index as u32 + 1).wrapping_mul(0x2545_F491)));
        let in_place_ok = !p.renewed && !p.on_statement;
        sink.write(&group, &row, in_place_ok, rejects)?;
    }
    Ok(sink.finish(rejects)?)
}

fn write_commissions(
    tenants: &[Tenant],
    comms: &[CommRec],
    mut sink: Sink,
    rejects: &mut Rejects,
) -> anyhow::Result<SinkStats> {
    let mut next_id = vec![0u32; tenants.len()];
    let mut row = Row::default();
    let mut group = String::new();
    let mut year = 0;
    for c in comms {
        let t = &tenants[c.tenant as usize];
        if c.date.year() != year {
            year = c.date.year();
            group = year_group(c.date);
        }
        next_id[c.tenant as usize] += 1;
        let carrier = &t.carriers[c.carrier as usize];
        row.clear();
        row.str(&t.id)
            .fmt(format_args!("CM-{:08}", next_id[c.tenant as usize]))
            .fmt(format_args!("P-{:07}", c.policy + 1))
            .str(&t.agents[c.agent as usize].id)
            .str(&carrier.id)
            .date(c.date)
            .str(c.kind.as_str())
            .cents(c.premium)
            .rate_micro(c.rate_micro)
            .cents(c.gross)
            .cents(c.agent_amt)
            .cents(c.agency_amt)
            .str(if c.paid.is_some() { "paid" } else { "expected" })
            .opt_date(c.paid);
        if c.on_statement {
            row.str(&statements::statement_id(&carrier.id, first_of_month(c.date)));
        } else {
            row.empty();
        }
        sink.write(&group, &row, c.paid.is_none(), rejects)?;
    }
    Ok(sink.finish(rejects)?)
}

fn first_of_month(d: NaiveDate) -> NaiveDate {
    NaiveDate::from_ymd_opt(d.year(), d.month(), 1).expect("valid")
}

fn write_statement_lines(
    tenants: &[Tenant],
    comms: &[CommRec],
    lines: &[StmtLine],
    mut sink: Sink,
    rejects: &mut Rejects,
    truth: &Path,
) -> anyhow::Result<(SinkStats, BTreeMap<&'static str, u64>)> {
    let mut disc_out = BufWriter::new(fs::File::create(truth.join("statement_discrepancies.csv"))?);
    disc_out.write_all(b"tenant_id,statement_id,line_id,policy_id,type,expected_amount,statement_amount\n")?;
    let mut counts: BTreeMap<&'static str, u64> = Disc::ALL.iter().map(|d| (d.as_str(), 0)).collect();
    let mut next_id = vec![0u32; tenants.len()];
    let mut row = Row::default();
    let mut group = String::new();
    let mut year = 0;
    for l in lines {
        let t = &tenants[l.tenant as usize];
        let carrier = &t.carriers[l.carrier as usize];
        let statement_id = statements::statement_id(&carrier.id, l.period);
        let policy_id = match l.subject {
            Subject::Commission(i) => format!("P-{:07}", comms[i as usize].policy + 1),
            Subject::Unknown { .. } => String::new(),
        };
        let mut line_id = String::new();
        if l.is_printed() {
            next_id[l.tenant as usize] += 1;
            line_id = format!("SL-{:07}", next_id[l.tenant as usize]);
            if l.statement_date.year() != year {
                year = l.statement_date.year();
                group = year_group(l.statement_date);
            }
            let (number, insured, lob) = match l.subject {
                Subject::Commission(i) => {
                    let p = &t.policies[comms[i as usize].policy as usize];
                    (
                        statements::statement_number(carrier.spec, p.number, p.term_no),
                        t.statement_name(p.customer, carrier.spec.statement.name_last_first),
                        p.line.as_str(),
                    )
                }
                Subject::Unknown { number, first, last } => {
                    let name = if carrier.spec.statement.name_last_first {
                        format!(
                            "{}, {}",
                            catalog::LAST_NAMES[last as usize].to_uppercase(),
                            catalog::FIRST_NAMES[first as usize].to_uppercase()
                        )
                    } else {
                        format!("{} {}", catalog::FIRST_NAMES[first as usize], catalog::LAST_NAMES[last as usize])
                    };
                    let lob = carrier.spec.lines[(number % carrier.spec.lines.len() as u64) as usize];
                    (statements::statement_number(carrier.spec, number, 1), name, lob.as_str())
                }
            };
            row.clear();
            row.str(&t.id)
                .str(&statement_id)
                .str(&line_id)
                .str(&carrier.id)
                .date(l.statement_date)
                .fmt(format_args!("{:04}-{:02}", l.period.year(), l.period.month()))
                .str(&number)
                .cents(l.amount)
                .str(&insured)
                .str(lob)
                .cents(l.premium)
                .str(l.kind.as_str());
            sink.write(&group, &row, false, rejects)?;
        }
        if let Some(d) = l.disc {
            *counts.entry(d.as_str()).or_insert(0) += 1;
            let expected = if d == Disc::Unexpected { String::new() } else { fmt_cents(l.expected) };
            let stated = if d == Disc::Missing { String::new() } else { fmt_cents(l.amount) };
            writeln!(disc_out, "{},{statement_id},{line_id},{policy_id},{},{expected},{stated}", t.id, d.as_str())?;
        }
    }
    disc_out.flush()?;
    Ok((sink.finish(rejects)?, counts))
}

fn write_summary(
    opts: &GenerateOptions,
    tenants: &[Tenant],
    stats: &[SinkStats],
    by_reason: [u64; 6],
    disc: &BTreeMap<&'static str, u64>,
) -> anyhow::Result<()> {
    use serde_json::{Value, json};
    let mut entities = serde_json::Map::new();
    for s in stats {
        entities.insert(
            s.entity.to_string(),
            json!({
                "rows_written": s.written,
                "bad_rows": s.bad,
                "valid_rows": s.written - s.bad,
                "files": s.files,
            }),
        );
    }
    let reasons: serde_json::Map<String, Value> =
        Reason::ALL.iter().map(|r| (r.code().to_string(), json!(by_reason[*r as usize]))).collect();
    let mut tenant_rows = Vec::new();
    for t in tenants {
        let up: Vec<_> = t.policies.iter().filter(|p| p.cancel.is_none() && p.exp < opts.end).collect();
        let renewed = up.iter().filter(|p| p.renewed).count();
        tenant_rows.push(json!({
            "tenant_id": t.id,
            "name": t.name,
            "agencies": t.agencies.len(),
            "agents": t.agents.len(),
            "carriers": t.carriers.len(),
            "customers": t.customers.len(),
            "policies": t.policies.len(),
            "cancelled": t.policies.iter().filter(|p| p.cancel.is_some()).count(),
            "up_for_renewal_before_end": up.len(),
            "renewed": renewed,
        }));
    }
    let summary = json!({
        "seed": opts.seed,
        "policies_requested": opts.policies,
        "format": match opts.format { Format::Csv => "csv", Format::Jsonl => "jsonl" },
        "bad_row_rate": opts.bad_row_rate,
        "start": write::fmt_date(opts.start),
        "end": write::fmt_date(opts.end),
        "entities": entities,
        "bad_rows_by_reason": reasons,
        "statement_discrepancies": disc,
        "tenants": tenant_rows,
    });
    let mut text = serde_json::to_string_pretty(&summary)?;
    text.push('\n');
    fs::write(opts.truth.join("summary.json"), text)?;
    Ok(())
}
