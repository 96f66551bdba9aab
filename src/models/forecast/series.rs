//! Monthly gross-commission series of every node of every tenant, built from
//! the `commissions_monthly` rollup, zero-filled from each series' first
//! month to the last complete month.

use std::collections::BTreeMap;

use anyhow::Result;
use chrono::{Datelike, NaiveDate};
use polars::prelude::*;
use serde::{Deserialize, Serialize};

use super::SeriesScope;

/// The agency (and line) id given to commission rows whose policy is
/// missing, so that the agencies of a tenant still add up to its total.
pub const UNASSIGNED: &str = "unassigned";

/// Months as `year * 12 + month0`: consecutive months are consecutive integers.
pub type Month = i32;

pub fn month_of(d: NaiveDate) -> Month {
    d.year() * 12 + d.month0() as i32
}

pub fn month_date(m: Month) -> NaiveDate {
    NaiveDate::from_ymd_opt(m.div_euclid(12), m.rem_euclid(12) as u32 + 1, 1).expect("a valid month")
}

/// What a series sums. `Cell` (one agent within one agency) is internal: the
/// leaves that agencies are split into; an agent's series is the sum of its
/// cells (one, unless its rows name several agencies).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Kind {
    Tenant,
    Agency,
    Agent,
    Cell,
    Carrier,
    Line,
}

impl Kind {
    /// The published scope; `None` for the internal cells.
    pub fn scope(self) -> Option<SeriesScope> {
        match self {
            Kind::Tenant => Some(SeriesScope::Tenant),
            Kind::Agency => Some(SeriesScope::Agency),
            Kind::Agent => Some(SeriesScope::Agent),
            Kind::Carrier => Some(SeriesScope::Carrier),
            Kind::Line => Some(SeriesScope::Line),
            Kind::Cell => None,
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Series {
    pub tenant: usize,
    pub kind: Kind,
    /// Node id (`""` for the tenant; `agency/agent` for a cell).
    pub id: String,
    /// The series whose seasonal shape and growth inform this one's
    /// forecasts: the agency of a cell, the tenant of the others.
    pub parent: Option<usize>,
    /// First month with a row.
    pub start: Month,
    /// Amounts of months `start..=last`, zero where there was no row.
    pub values: Vec<f64>,
}

impl Series {
    /// The amount of month `m`, if the series exists then.
    pub fn at(&self, m: Month) -> Option<f64> {
        if m < self.start {
            return None;
        }
        self.values.get((m - self.start) as usize).copied()
    }

    /// Amounts from the start up to and including `m`.
    pub fn upto(&self, m: Month) -> &[f64] {
        let n = (m - self.start + 1).clamp(0, self.values.len() as i32) as usize;
        &self.values[..n]
    }
}

/// The nodes of one tenant, as indices into `Panel::series`.
#[derive(Clone, Debug, Default)]
pub struct TenantNodes {
    pub id: String,
    pub total: usize,
    pub agencies: Vec<usize>,
    /// Cells of each agency (aligned with `agencies`).
    pub agency_cells: Vec<Vec<usize>>,
    pub agents: Vec<usize>,
    /// Cells of each agent (aligned with `agents`).
    pub agent_cells: Vec<Vec<usize>>,
    pub carriers: Vec<usize>,
    pub lines: Vec<usize>,
}

#[derive(Clone, Debug)]
pub struct Panel {
    pub last: Month,
    pub tenants: Vec<TenantNodes>,
    pub series: Vec<Series>,
}

/// One rollup row, reduced to what the series need.
#[derive(Clone, Debug, PartialEq)]
pub struct Fact {
    pub tenant: String,
    pub month: Month,
    pub agent: String,
    pub carrier: String,
    pub agency: Option<String>,
    pub line: Option<String>,
    /// Gross commission in cents (negative for chargebacks).
    pub cents: i64,
}

/// The rows of a `commissions_monthly` frame (with `tenant_id`).
pub fn facts(df: &DataFrame) -> Result<Vec<Fact>> {
    let column = |name: &str| -> Result<&Column> {
        df.column(name).map_err(|e| anyhow::anyhow!("history has no column {name}: {e}"))
    };
    let string = |name: &str| -> Result<Column> { Ok(column(name)?.cast(&DataType::String)?) };
    let (tenant, agent, carrier, agency, line) = (
        string("tenant_id")?,
        string("agent_id")?,
        string("carrier_id")?,
        string("agency_id")?,
        string("line_of_business")?,
    );
    let days = column("transaction_date")?.cast(&DataType::Int32)?;
    // Decimal(…, 2) as f64 is within half a cent, so rounding gives the exact cents.
    let gross = column("gross_commission")?.cast(&DataType::Float64)?;
    let (tenant, agent, carrier, agency, line) =
        (tenant.str()?, agent.str()?, carrier.str()?, agency.str()?, line.str()?);
    let (days, gross) = (days.i32()?, gross.f64()?);
    let epoch = NaiveDate::from_ymd_opt(1970, 1, 1).expect("valid");
    let mut out = Vec::with_capacity(df.height());
    for i in 0..df.height() {
        let (Some(t), Some(d)) = (tenant.get(i), days.get(i)) else {
            anyhow::bail!("history row {i} has no tenant_id or transaction_date");
        };
        let date = epoch + chrono::Duration::days(i64::from(d));
        out.push(Fact {
            tenant: t.to_string(),
            month: month_of(date),
            agent: agent.get(i).unwrap_or(UNASSIGNED).to_string(),
            carrier: carrier.get(i).unwrap_or(UNASSIGNED).to_string(),
            agency: agency.get(i).map(str::to_string),
            line: line.get(i).map(str::to_string),
            cents: gross.get(i).map_or(0, |g| (g * 100.0).round() as i64),
        });
    }
    Ok(out)
}

type Sums = BTreeMap<Month, i64>;

#[derive(Default)]
struct TenantSums {
    total: Sums,
    agencies: BTreeMap<String, Sums>,
    cells: BTreeMap<(String, String), Sums>,
    agents: BTreeMap<String, Sums>,
    carriers: BTreeMap<String, Sums>,
    lines: BTreeMap<String, Sums>,
}

/// The panel of all series of `facts` up to and including month `last`
/// (later rows are ignored).
pub fn build(facts: &[Fact], last: Month) -> Panel {
    let mut tenants: BTreeMap<&str, TenantSums> = BTreeMap::new();
    for f in facts.iter().filter(|f| f.month <= last) {
        let t = tenants.entry(f.tenant.as_str()).or_default();
        let agency = f.agency.clone().unwrap_or_else(|| UNASSIGNED.to_string());
        let line = f.line.clone().unwrap_or_else(|| UNASSIGNED.to_string());
        let add = |s: &mut Sums| *s.entry(f.month).or_default() += f.cents;
        add(&mut t.total);
        add(t.agencies.entry(agency.clone()).or_default());
        add(t.cells.entry((agency, f.agent.clone())).or_default());
        add(t.agents.entry(f.agent.clone()).or_default());
        add(t.carriers.entry(f.carrier.clone()).or_default());
        add(t.lines.entry(line).or_default());
    }
    let mut panel = Panel { last, tenants: Vec::new(), series: Vec::new() };
    for (ti, (id, sums)) in tenants.into_iter().enumerate() {
        let total = panel.series.len();
        let mut push = |kind: Kind, id: String, s: &Sums| {
            let parent = (kind != Kind::Tenant).then_some(total);
            panel.series.push(zero_filled(ti, kind, id, parent, s, last));
            panel.series.len() - 1
        };
        let mut nodes = TenantNodes { id: id.to_string(), ..Default::default() };
        nodes.total = push(Kind::Tenant, String::new(), &sums.total);
        let agency_ids: Vec<&String> = sums.agencies.keys().collect();
        let agent_ids: Vec<&String> = sums.agents.keys().collect();
        nodes.agencies = sums.agencies.iter().map(|(k, s)| push(Kind::Agency, k.clone(), s)).collect();
        nodes.agents = sums.agents.iter().map(|(k, s)| push(Kind::Agent, k.clone(), s)).collect();
        nodes.agency_cells = vec![Vec::new(); nodes.agencies.len()];
        nodes.agent_cells = vec![Vec::new(); nodes.agents.len()];
        let mut cell_parents = Vec::new();
        for ((agency, agent), s) in &sums.cells {
            let cell = push(Kind::Cell, format!("{agency}/{agent}"), s);
            let a = agency_ids.binary_search(&agency).expect("a cell's agency is an agency");
            let g = agent_ids.binary_search(&agent).expect("a cell's agent is an agent");
            cell_parents.push((cell, nodes.agencies[a]));
            nodes.agency_cells[a].push(cell);
            nodes.agent_cells[g].push(cell);
        }
        nodes.carriers = sums.carriers.iter().map(|(k, s)| push(Kind::Carrier, k.clone(), s)).collect();
        nodes.lines = sums.lines.iter().map(|(k, s)| push(Kind::Line, k.clone(), s)).collect();
        for (cell, agency) in cell_parents {
            panel.series[cell].parent = Some(agency);
        }
        panel.tenants.push(nodes);
    }
    panel
}

fn zero_filled(tenant: usize, kind: Kind, id: String, parent: Option<usize>, sums: &Sums, last: Month) -> Series {
    let start = *sums.keys().next().expect("a series has a row");
    let mut values = vec![0.0; (last - start + 1) as usize];
    for (&m, &c) in sums {
        values[(m - start) as usize] = c as f64 / 100.0;
    }
    Series { tenant, kind, id, parent, start, values }
}
