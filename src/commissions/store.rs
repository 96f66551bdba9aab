//! The commission engine's lake tables (`lake::catalog`): written as one
//! new file per table and tenant on the one commit path
//! (`snapshot::commit`), never rewritten — a re-run of a reconciliation
//! adds a run, a resolution adds a change — and read back through the
//! tenant's view.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, Date32Builder, Decimal128Builder, Int64Array, Int64Builder, RecordBatch, StringArray,
    StringBuilder,
};
use arrow::datatypes::SchemaRef;
use chrono::{DateTime, NaiveDate, Utc};
use datafusion::prelude::SessionContext;
use object_store::ObjectStoreExt;
use rust_decimal::Decimal;
use serde::Serialize;

use super::money::{from_units, micros, round_cents};
use super::reconcile::{Discrepancy, DiscrepancyType, PeriodSummary};
use crate::contract::values::date_to_days;
use crate::contract::{MONEY_PRECISION, MONEY_SCALE, RATE_PRECISION, RATE_SCALE};
use crate::lake::catalog::{self, AGENT_SPLITS, COMMISSION_CHANGES, DISCREPANCIES, RECONCILIATIONS};
use crate::lake::snapshot::{self, SnapshotError};
use crate::lake::{self, DataFile, Location, parquet_io};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("building a batch of {table}")]
    Arrow {
        table: &'static str,
        #[source]
        source: arrow::error::ArrowError,
    },
    #[error("encoding {table}")]
    Parquet {
        table: &'static str,
        #[source]
        source: parquet::errors::ParquetError,
    },
    #[error("writing {path}")]
    Write {
        path: String,
        #[source]
        source: object_store::Error,
    },
    #[error("publishing the commission tables")]
    Publish(#[from] SnapshotError),
    #[error("reading the commission tables")]
    Read(#[from] datafusion::error::DataFusionError),
}

/// Who changes something, and when (the clock is the caller's).
#[derive(Debug, Clone)]
pub struct Actor {
    pub subject: String,
    pub at: DateTime<Utc>,
}

impl Actor {
    pub fn now(subject: &str) -> Self {
        Actor { subject: subject.to_string(), at: Utc::now() }
    }
    /// RFC 3339 UTC with milliseconds: sorts as text.
    pub fn at_text(&self) -> String {
        self.at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
    }
}

/// A fresh id for a run or a change: its time and a random salt.
pub fn new_id(prefix: &str) -> String {
    format!("{prefix}{}", lake::new_run_id())
}

fn money_builder() -> Decimal128Builder {
    Decimal128Builder::new().with_precision_and_scale(MONEY_PRECISION, MONEY_SCALE).expect("money type")
}
fn rate_builder() -> Decimal128Builder {
    Decimal128Builder::new().with_precision_and_scale(RATE_PRECISION, RATE_SCALE).expect("rate type")
}
fn cents(d: Decimal) -> i128 {
    round_cents(d).mantissa()
}
fn rate_units(d: Decimal) -> i128 {
    micros(d).expect("rates carry at most 6 fraction digits")
}

fn batch(table: &'static str, schema: SchemaRef, cols: Vec<ArrayRef>) -> Result<RecordBatch, StoreError> {
    RecordBatch::try_new(schema, cols).map_err(|source| StoreError::Arrow { table, source })
}

pub fn reconciliations_batch(
    tenant: &str,
    run_id: &str,
    actor: &Actor,
    tolerance: Decimal,
    periods: &[PeriodSummary],
) -> Result<RecordBatch, StoreError> {
    let mut s: Vec<StringBuilder> = (0..6).map(|_| StringBuilder::new()).collect();
    let mut m: Vec<Decimal128Builder> = (0..3).map(|_| money_builder()).collect();
    let mut n: Vec<Int64Builder> = (0..4).map(|_| Int64Builder::new()).collect();
    let at = actor.at_text();
    for p in periods {
        for (b, v) in s.iter_mut().zip([
            tenant,
            run_id,
            p.carrier_id.as_str(),
            p.period.as_str(),
            at.as_str(),
            actor.subject.as_str(),
        ]) {
            b.append_value(v);
        }
        for (b, v) in m.iter_mut().zip([tolerance, p.expected_total, p.paid_total]) {
            b.append_value(cents(v));
        }
        for (b, v) in n.iter_mut().zip([p.lines, p.booked_rows, p.matched, p.discrepancies]) {
            b.append_value(v as i64);
        }
    }
    let mut cols: Vec<ArrayRef> = s.into_iter().map(|mut b| Arc::new(b.finish()) as ArrayRef).collect();
    let mut money: Vec<ArrayRef> = m.into_iter().map(|mut b| Arc::new(b.finish()) as ArrayRef).collect();
    let mut counts: Vec<ArrayRef> = n.into_iter().map(|mut b| Arc::new(b.finish()) as ArrayRef).collect();
    // tolerance, lines, booked_rows, matched, expected_total, paid_total, discrepancies
    cols.push(money.remove(0));
    cols.extend(counts.drain(0..3));
    cols.append(&mut money);
    cols.append(&mut counts);
    batch(RECONCILIATIONS, catalog::reconciliations_schema(), cols)
}

pub fn discrepancies_batch(tenant: &str, run_id: &str, ds: &[Discrepancy]) -> Result<RecordBatch, StoreError> {
    let mut req: Vec<StringBuilder> = (0..6).map(|_| StringBuilder::new()).collect();
    let mut opt: Vec<StringBuilder> = (0..6).map(|_| StringBuilder::new()).collect();
    let (mut expected, mut paid, mut diff) = (money_builder(), money_builder(), money_builder());
    let (mut er, mut pr) = (rate_builder(), rate_builder());
    let mut explanation = StringBuilder::new();
    for d in ds {
        for (b, v) in req.iter_mut().zip([
            tenant,
            run_id,
            d.id.as_str(),
            d.kind_of.as_str(),
            d.carrier_id.as_str(),
            d.period.as_str(),
        ]) {
            b.append_value(v);
        }
        for (b, v) in
            opt.iter_mut().zip([&d.statement_id, &d.line_id, &d.commission_id, &d.policy_id, &d.policy_number, &d.kind])
        {
            b.append_option(v.as_deref());
        }
        expected.append_option(d.expected.map(cents));
        paid.append_option(d.paid.map(cents));
        diff.append_value(cents(d.difference));
        er.append_option(d.expected_rate.map(rate_units));
        pr.append_option(d.paid_rate.map(rate_units));
        explanation.append_value(&d.explanation);
    }
    let mut cols: Vec<ArrayRef> = req.into_iter().map(|mut b| Arc::new(b.finish()) as ArrayRef).collect();
    cols.extend(opt.into_iter().map(|mut b| Arc::new(b.finish()) as ArrayRef));
    for mut b in [expected, paid, diff, er, pr] {
        cols.push(Arc::new(b.finish()));
    }
    cols.push(Arc::new(explanation.finish()));
    batch(DISCREPANCIES, catalog::discrepancies_schema(), cols)
}

/// One dated split change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SplitRow {
    pub agent_id: String,
    pub effective_from: NaiveDate,
    pub split_pct: Option<Decimal>,
    pub override_pct: Option<Decimal>,
}

pub fn split_batch(tenant: &str, change_id: &str, actor: &Actor, r: &SplitRow) -> Result<RecordBatch, StoreError> {
    let s = |v: &str| Arc::new(StringArray::from(vec![v])) as ArrayRef;
    let mut from = Date32Builder::new();
    from.append_value(date_to_days(r.effective_from));
    let (mut split, mut over) = (rate_builder(), rate_builder());
    split.append_option(r.split_pct.map(rate_units));
    over.append_option(r.override_pct.map(rate_units));
    let cols = vec![
        s(tenant),
        s(&r.agent_id),
        Arc::new(from.finish()) as ArrayRef,
        Arc::new(split.finish()),
        Arc::new(over.finish()),
        s(change_id),
        s(&actor.at_text()),
        s(&actor.subject),
    ];
    batch(AGENT_SPLITS, catalog::agent_splits_schema(), cols)
}

/// One entry of the audit log of changes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Change {
    pub change_id: String,
    pub changed_at: String,
    pub changed_by: String,
    pub action: String,
    pub subject: String,
    pub detail: String,
    pub note: Option<String>,
}

pub const SET_SCHEDULE: &str = "set_commission_schedule";
pub const SET_SPLIT: &str = "set_agent_split";
pub const MARK_PAID: &str = "mark_commissions_paid";
pub const RESOLVE: &str = "resolve_discrepancy";
pub const SET_MAPPING: &str = "set_statement_mapping";

pub fn change_batch(tenant: &str, changes: &[Change]) -> Result<RecordBatch, StoreError> {
    let mut b: Vec<StringBuilder> = (0..7).map(|_| StringBuilder::new()).collect();
    let mut note = StringBuilder::new();
    for c in changes {
        for (b, v) in b.iter_mut().zip([
            tenant,
            c.change_id.as_str(),
            c.changed_at.as_str(),
            c.changed_by.as_str(),
            c.action.as_str(),
            c.subject.as_str(),
            c.detail.as_str(),
        ]) {
            b.append_value(v);
        }
        note.append_option(c.note.as_deref());
    }
    let mut cols: Vec<ArrayRef> = b.into_iter().map(|mut b| Arc::new(b.finish()) as ArrayRef).collect();
    cols.push(Arc::new(note.finish()));
    batch(COMMISSION_CHANGES, catalog::commission_changes_schema(), cols)
}

/// Write each batch as a new file of its table for `tenant` and publish
/// them in one lake version (retried on top of a concurrent writer).
pub async fn append(
    lake: &Location,
    tenant: &str,
    run_id: &str,
    batches: Vec<(&'static str, RecordBatch)>,
) -> Result<u64, StoreError> {
    let mut written: BTreeMap<&'static str, DataFile> = BTreeMap::new();
    for (table, b) in &batches {
        if b.num_rows() == 0 {
            continue;
        }
        let bytes = parquet_io::encode(b.schema(), std::slice::from_ref(b))
            .map_err(|source| StoreError::Parquet { table, source })?;
        let rel = lake::data_file_path(table, tenant, run_id);
        let size = bytes.len() as u64;
        lake.store
            .put(&lake.child(&rel), bytes.into())
            .await
            .map_err(|source| StoreError::Write { path: rel.clone(), source })?;
        written.insert(
            table,
            DataFile { path: rel, tenant_id: tenant.to_string(), rows: b.num_rows() as u64, bytes: size },
        );
    }
    let op = snapshot::Operation {
        name: "commissions",
        run_id,
        data_change: true,
        txn: None,
        background_checkpoints: false,
    };
    let (version, ()) = snapshot::commit(lake, op, |base| {
        let written = &written;
        async move {
            if written.is_empty() {
                return Ok::<_, StoreError>((None, ()));
            }
            let mut tables = base.tables.clone();
            for (table, file) in written {
                tables.entry(table.to_string()).or_default().push(file.clone());
            }
            Ok((Some(tables), ()))
        }
    })
    .await?;
    Ok(version.unwrap_or_default())
}

// ---------------------------------------------------------------------------
// Reading back
// ---------------------------------------------------------------------------

/// The latest run over one (carrier, period).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Run {
    pub run_id: String,
    pub reconciled_at: String,
    pub reconciled_by: String,
    pub tolerance: Decimal,
    pub summary: PeriodSummary,
}

async fn collect(session: &SessionContext, sql: &str) -> Result<Option<RecordBatch>, StoreError> {
    let df = session.sql(sql).await?;
    let schema = df.schema().inner().clone();
    let batches = df.collect().await?;
    let b = arrow::compute::concat_batches(&schema, &batches)
        .map_err(|source| StoreError::Arrow { table: "read", source })?;
    Ok((b.num_rows() > 0).then_some(b))
}

fn strs<'a>(b: &'a RecordBatch, name: &str) -> &'a StringArray {
    b.column_by_name(name).expect("column of a fixed schema").as_string::<i32>()
}
fn ints<'a>(b: &'a RecordBatch, name: &str) -> &'a Int64Array {
    b.column_by_name(name).expect("column of a fixed schema").as_primitive()
}
fn decs(b: &RecordBatch, name: &str, i: usize) -> Option<Decimal> {
    let a =
        b.column_by_name(name).expect("column of a fixed schema").as_primitive::<arrow::datatypes::Decimal128Type>();
    (!a.is_null(i)).then(|| from_units(a.value(i), a.scale()))
}
fn opt(a: &StringArray, i: usize) -> Option<String> {
    (!a.is_null(i)).then(|| a.value(i).to_string())
}

/// The latest run of every (carrier, period) reconciled (by time, then run id).
pub async fn latest_runs(session: &SessionContext) -> Result<BTreeMap<(String, String), Run>, StoreError> {
    let mut out: BTreeMap<(String, String), Run> = BTreeMap::new();
    let Some(b) = collect(session, &format!("select * from {RECONCILIATIONS}")).await? else { return Ok(out) };
    let (run, carrier, period, at, by) = (
        strs(&b, "run_id"),
        strs(&b, "carrier_id"),
        strs(&b, "period"),
        strs(&b, "reconciled_at"),
        strs(&b, "reconciled_by"),
    );
    let (lines, booked, matched, disc) =
        (ints(&b, "lines"), ints(&b, "booked_rows"), ints(&b, "matched"), ints(&b, "discrepancies"));
    for i in 0..b.num_rows() {
        let key = (carrier.value(i).to_string(), period.value(i).to_string());
        let newer =
            out.get(&key).is_none_or(|r| (r.reconciled_at.as_str(), r.run_id.as_str()) < (at.value(i), run.value(i)));
        if !newer {
            continue;
        }
        let summary = PeriodSummary {
            carrier_id: key.0.clone(),
            period: key.1.clone(),
            lines: lines.value(i) as u64,
            booked_rows: booked.value(i) as u64,
            matched: matched.value(i) as u64,
            expected_total: decs(&b, "expected_total", i).unwrap_or_default(),
            paid_total: decs(&b, "paid_total", i).unwrap_or_default(),
            discrepancies: disc.value(i) as u64,
        };
        let r = Run {
            run_id: run.value(i).to_string(),
            reconciled_at: at.value(i).to_string(),
            reconciled_by: by.value(i).to_string(),
            tolerance: decs(&b, "tolerance", i).unwrap_or_default(),
            summary,
        };
        out.insert(key, r);
    }
    Ok(out)
}

/// How a discrepancy was resolved (the latest resolution in the log).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Resolution {
    pub change_id: String,
    pub resolved_at: String,
    pub resolved_by: String,
    pub note: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StoredDiscrepancy {
    pub run_id: String,
    pub discrepancy: Discrepancy,
    pub resolution: Option<Resolution>,
}

/// The log of changes, oldest first; `action` filters.
pub async fn changes(session: &SessionContext, action: Option<&str>) -> Result<Vec<Change>, StoreError> {
    let Some(b) = collect(session, &format!("select * from {COMMISSION_CHANGES}")).await? else {
        return Ok(Vec::new());
    };
    let (id, at, by, act, subject, detail, note) = (
        strs(&b, "change_id"),
        strs(&b, "changed_at"),
        strs(&b, "changed_by"),
        strs(&b, "action"),
        strs(&b, "subject"),
        strs(&b, "detail"),
        strs(&b, "note"),
    );
    let mut out: Vec<Change> = (0..b.num_rows())
        .filter(|&i| action.is_none_or(|a| act.value(i) == a))
        .map(|i| Change {
            change_id: id.value(i).to_string(),
            changed_at: at.value(i).to_string(),
            changed_by: by.value(i).to_string(),
            action: act.value(i).to_string(),
            subject: subject.value(i).to_string(),
            detail: detail.value(i).to_string(),
            note: opt(note, i),
        })
        .collect();
    out.sort_by(|a, b| (&a.changed_at, &a.change_id).cmp(&(&b.changed_at, &b.change_id)));
    Ok(out)
}

/// The discrepancies of the latest run of every (carrier, period), with
/// their resolution; sorted by carrier, period, type, line or commission.
pub async fn current_discrepancies(session: &SessionContext) -> Result<Vec<StoredDiscrepancy>, StoreError> {
    let runs = latest_runs(session).await?;
    let mut resolved: HashMap<String, Resolution> = HashMap::new();
    for c in changes(session, Some(RESOLVE)).await? {
        let r =
            Resolution { change_id: c.change_id, resolved_at: c.changed_at, resolved_by: c.changed_by, note: c.note };
        resolved.insert(c.subject, r); // oldest first: the latest stays
    }
    let Some(b) = collect(session, &format!("select * from {DISCREPANCIES}")).await? else { return Ok(Vec::new()) };
    let (run, id, t, carrier, period) =
        (strs(&b, "run_id"), strs(&b, "discrepancy_id"), strs(&b, "type"), strs(&b, "carrier_id"), strs(&b, "period"));
    let (st, line, cm, pol, num, kind, expl) = (
        strs(&b, "statement_id"),
        strs(&b, "line_id"),
        strs(&b, "commission_id"),
        strs(&b, "policy_id"),
        strs(&b, "policy_number"),
        strs(&b, "kind"),
        strs(&b, "explanation"),
    );
    let mut out = Vec::new();
    for i in 0..b.num_rows() {
        let key = (carrier.value(i).to_string(), period.value(i).to_string());
        if runs.get(&key).is_none_or(|r| r.run_id != run.value(i)) {
            continue; // superseded by a later run
        }
        let Some(kind_of) = DiscrepancyType::parse(t.value(i)) else { continue };
        let d = Discrepancy {
            id: id.value(i).to_string(),
            kind_of,
            carrier_id: key.0,
            period: key.1,
            statement_id: opt(st, i),
            line_id: opt(line, i),
            commission_id: opt(cm, i),
            policy_id: opt(pol, i),
            policy_number: opt(num, i),
            kind: opt(kind, i),
            expected: decs(&b, "expected_amount", i),
            paid: decs(&b, "paid_amount", i),
            difference: decs(&b, "difference", i).unwrap_or_default(),
            expected_rate: decs(&b, "expected_rate", i).map(|r| r.normalize()),
            paid_rate: decs(&b, "paid_rate", i).map(|r| r.normalize()),
            explanation: expl.value(i).to_string(),
        };
        let resolution = resolved.get(&d.id).cloned();
        out.push(StoredDiscrepancy { run_id: run.value(i).to_string(), discrepancy: d, resolution });
    }
    out.sort_by(|a, b| {
        let (x, y) = (&a.discrepancy, &b.discrepancy);
        (&x.carrier_id, &x.period, x.kind_of, &x.statement_id, &x.line_id, &x.commission_id).cmp(&(
            &y.carrier_id,
            &y.period,
            y.kind_of,
            &y.statement_id,
            &y.line_id,
            &y.commission_id,
        ))
    });
    Ok(out)
}

/// The statement column mapping in force per carrier: the latest
/// `set_statement_mapping` change of each, with that change.
pub async fn mappings(
    session: &SessionContext,
) -> Result<BTreeMap<String, (super::upload::Mapping, Change)>, StoreError> {
    let mut out = BTreeMap::new();
    for c in changes(session, Some(SET_MAPPING)).await? {
        // Written by this module from a checked mapping; an unreadable one is skipped.
        match serde_json::from_str::<super::upload::Mapping>(&c.detail) {
            Ok(m) => {
                out.insert(c.subject.clone(), (m, c));
            }
            Err(e) => tracing::warn!(change = %c.change_id, error = %e, "unreadable statement mapping skipped"),
        }
    }
    Ok(out)
}
