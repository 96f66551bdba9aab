//! The table catalog: every table of the lake — its name, its kind and, where
//! it is fixed, its schema — in one place. Writers and readers take names and
//! schemas from here; every table is a Delta table partitioned by
//! `tenant_id` (see `delta.rs`).

use std::sync::{Arc, OnceLock};

use arrow::datatypes::{DataType, Field, Schema, SchemaRef};

use crate::contract::{Entity, MONEY_PRECISION, MONEY_SCALE, RATE_PRECISION, RATE_SCALE};

/// What a table holds, and so who writes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TableKind {
    /// A contract entity, written by ingest.
    Entity(Entity),
    /// Pre-aggregated from the facts of the same version, written by ingest
    /// (schema: the query that builds it).
    Rollup,
    /// Written by `cip score`.
    ModelOutput,
    /// Written by the commission engine (`src/commissions/`): reconciliation
    /// results, dated split changes and the audit log of its changes.
    /// Append-only: a writer only ever adds files.
    Commissions,
}

pub const COMMISSIONS_MONTHLY: &str = "commissions_monthly";
/// `commissions_monthly` without carrier and line: what agent and agency
/// rankings and KPIs read (a fraction of its rows).
pub const COMMISSIONS_MONTHLY_BY_AGENT: &str = "commissions_monthly_by_agent";
/// `commissions_monthly` without agent and agency: carrier and line trends.
pub const COMMISSIONS_MONTHLY_BY_CARRIER: &str = "commissions_monthly_by_carrier";
pub const RENEWAL_OUTCOMES: &str = "renewal_outcomes";
/// Every rollup table.
pub const ROLLUPS: [&str; 4] =
    [COMMISSIONS_MONTHLY, COMMISSIONS_MONTHLY_BY_AGENT, COMMISSIONS_MONTHLY_BY_CARRIER, RENEWAL_OUTCOMES];

pub const RENEWAL_SCORES: &str = "renewal_scores";
pub const FORECASTS: &str = "forecasts";
pub const FORECAST_ACCURACY: &str = "forecast_accuracy";
/// Every model output table.
pub const MODEL_OUTPUTS: [&str; 3] = [RENEWAL_SCORES, FORECASTS, FORECAST_ACCURACY];

pub const RECONCILIATIONS: &str = "reconciliations";
pub const DISCREPANCIES: &str = "discrepancies";
pub const AGENT_SPLITS: &str = "agent_splits";
pub const COMMISSION_CHANGES: &str = "commission_changes";
/// Every table of the commission engine.
pub const COMMISSION_TABLES: [&str; 4] = [RECONCILIATIONS, DISCREPANCIES, AGENT_SPLITS, COMMISSION_CHANGES];

fn money() -> DataType {
    DataType::Decimal128(MONEY_PRECISION, MONEY_SCALE)
}

pub fn renewal_scores_schema() -> SchemaRef {
    static S: OnceLock<SchemaRef> = OnceLock::new();
    S.get_or_init(|| {
        Arc::new(Schema::new(vec![
            Field::new("tenant_id", DataType::Utf8, false),
            Field::new("policy_id", DataType::Utf8, false),
            Field::new("as_of", DataType::Date32, false),
            Field::new("expiration_date", DataType::Date32, false),
            Field::new("probability", DataType::Float64, false),
            // JSON array of {feature, description, contribution}, most negative first.
            Field::new("drivers", DataType::Utf8, false),
            Field::new("tenure_terms", DataType::Int64, false),
            Field::new("premium_change", DataType::Float64, false),
            Field::new("other_policies", DataType::Int64, false),
            Field::new("model_version", DataType::Utf8, false),
        ]))
    })
    .clone()
}

pub fn forecasts_schema() -> SchemaRef {
    static S: OnceLock<SchemaRef> = OnceLock::new();
    S.get_or_init(|| {
        Arc::new(Schema::new(vec![
            Field::new("tenant_id", DataType::Utf8, false),
            Field::new("scope", DataType::Utf8, false),
            Field::new("series_id", DataType::Utf8, false),
            Field::new("month", DataType::Date32, false),
            Field::new("horizon", DataType::Int32, false),
            Field::new("point", money(), false),
            Field::new("lower80", money(), false),
            Field::new("upper80", money(), false),
            Field::new("lower95", money(), false),
            Field::new("upper95", money(), false),
            Field::new("model_version", DataType::Utf8, false),
        ]))
    })
    .clone()
}

pub fn forecast_accuracy_schema() -> SchemaRef {
    static S: OnceLock<SchemaRef> = OnceLock::new();
    S.get_or_init(|| {
        let f = |name: &str| Field::new(name, DataType::Float64, true);
        Arc::new(Schema::new(vec![
            Field::new("tenant_id", DataType::Utf8, false),
            Field::new("scope", DataType::Utf8, false),
            Field::new("series_id", DataType::Utf8, false),
            Field::new("bucket", DataType::Utf8, false),
            f("mase"),
            f("wape"),
            f("coverage80"),
            f("coverage95"),
            f("seasonal_naive_mase"),
            f("damped_trend_mase"),
            Field::new("model_version", DataType::Utf8, false),
        ]))
    })
    .clone()
}

fn rate() -> DataType {
    DataType::Decimal128(RATE_PRECISION, RATE_SCALE)
}

fn text(name: &str, nullable: bool) -> Field {
    Field::new(name, DataType::Utf8, nullable)
}

/// One row per (carrier, period) a reconciliation run covered. Times are
/// RFC 3339 UTC text with milliseconds (they sort as text).
pub fn reconciliations_schema() -> SchemaRef {
    static S: OnceLock<SchemaRef> = OnceLock::new();
    S.get_or_init(|| {
        Arc::new(Schema::new(vec![
            text("tenant_id", false),
            text("run_id", false),
            text("carrier_id", false),
            text("period", false),
            text("reconciled_at", false),
            text("reconciled_by", false),
            Field::new("tolerance", money(), false),
            Field::new("lines", DataType::Int64, false),
            Field::new("booked_rows", DataType::Int64, false),
            Field::new("matched", DataType::Int64, false),
            Field::new("expected_total", money(), false),
            Field::new("paid_total", money(), false),
            Field::new("discrepancies", DataType::Int64, false),
        ]))
    })
    .clone()
}

/// The discrepancies a run found (see `commissions::reconcile`).
pub fn discrepancies_schema() -> SchemaRef {
    static S: OnceLock<SchemaRef> = OnceLock::new();
    S.get_or_init(|| {
        Arc::new(Schema::new(vec![
            text("tenant_id", false),
            text("run_id", false),
            text("discrepancy_id", false),
            text("type", false),
            text("carrier_id", false),
            text("period", false),
            text("statement_id", true),
            text("line_id", true),
            text("commission_id", true),
            text("policy_id", true),
            text("policy_number", true),
            text("kind", true),
            Field::new("expected_amount", money(), true),
            Field::new("paid_amount", money(), true),
            Field::new("difference", money(), false),
            Field::new("expected_rate", rate(), true),
            Field::new("paid_rate", rate(), true),
            text("explanation", false),
        ]))
    })
    .clone()
}

/// Dated changes of agents' split and override percentages: from
/// `effective_from` on they replace the `agents` row's figures.
pub fn agent_splits_schema() -> SchemaRef {
    static S: OnceLock<SchemaRef> = OnceLock::new();
    S.get_or_init(|| {
        Arc::new(Schema::new(vec![
            text("tenant_id", false),
            text("agent_id", false),
            Field::new("effective_from", DataType::Date32, false),
            Field::new("split_pct", rate(), true),
            Field::new("override_pct", rate(), true),
            text("change_id", false),
            text("changed_at", false),
            text("changed_by", false),
        ]))
    })
    .clone()
}

/// Who changed what and when, for every change the commission engine
/// makes (schedules, splits, payments, discrepancy resolutions).
pub fn commission_changes_schema() -> SchemaRef {
    static S: OnceLock<SchemaRef> = OnceLock::new();
    S.get_or_init(|| {
        Arc::new(Schema::new(vec![
            text("tenant_id", false),
            text("change_id", false),
            text("changed_at", false),
            text("changed_by", false),
            // set_commission_schedule, set_agent_split, mark_commissions_paid, resolve_discrepancy
            text("action", false),
            // what it is about: a discrepancy id, an agent id, "carrier/line/kind", …
            text("subject", false),
            // the change itself, as JSON
            text("detail", false),
            text("note", true),
        ]))
    })
    .clone()
}

/// The fixed schema of a table: an entity's stored schema, a model
/// output's or a commission table's; `None` for rollups (and unknown names).
pub fn schema_of(table: &str) -> Option<SchemaRef> {
    if let Some(e) = Entity::ALL.into_iter().find(|e| e.name() == table) {
        return Some(e.schema());
    }
    match table {
        RENEWAL_SCORES => Some(renewal_scores_schema()),
        FORECASTS => Some(forecasts_schema()),
        FORECAST_ACCURACY => Some(forecast_accuracy_schema()),
        RECONCILIATIONS => Some(reconciliations_schema()),
        DISCREPANCIES => Some(discrepancies_schema()),
        AGENT_SPLITS => Some(agent_splits_schema()),
        COMMISSION_CHANGES => Some(commission_changes_schema()),
        _ => None,
    }
}

/// The kind of a table of the lake; `None` for a name that is not one.
pub fn kind_of(table: &str) -> Option<TableKind> {
    if let Some(e) = Entity::ALL.into_iter().find(|e| e.name() == table) {
        return Some(TableKind::Entity(e));
    }
    if ROLLUPS.contains(&table) {
        return Some(TableKind::Rollup);
    }
    if COMMISSION_TABLES.contains(&table) {
        return Some(TableKind::Commissions);
    }
    MODEL_OUTPUTS.contains(&table).then_some(TableKind::ModelOutput)
}

/// Every table name: entities, rollups, model outputs, commission tables.
pub fn all_tables() -> impl Iterator<Item = &'static str> {
    Entity::ALL.into_iter().map(|e| e.name()).chain(ROLLUPS).chain(MODEL_OUTPUTS).chain(COMMISSION_TABLES)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_table_has_one_kind_and_fixed_tables_a_schema() {
        let names: Vec<&str> = all_tables().collect();
        assert_eq!(names.len(), 18);
        for n in &names {
            let kind = kind_of(n).unwrap();
            assert_eq!(schema_of(n).is_some(), kind != TableKind::Rollup, "{n}");
        }
        assert_eq!(kind_of("commissions"), Some(TableKind::Entity(Entity::Commissions)));
        assert_eq!(kind_of("nope"), None);
        let money = schema_of(FORECASTS).unwrap().field_with_name("point").unwrap().data_type().clone();
        assert_eq!(money, DataType::Decimal128(18, 2));
        assert_eq!(kind_of(DISCREPANCIES), Some(TableKind::Commissions));
        let d = schema_of(DISCREPANCIES).unwrap();
        assert_eq!(d.field_with_name("paid_amount").unwrap().data_type(), &DataType::Decimal128(18, 2));
        assert_eq!(d.field_with_name("paid_rate").unwrap().data_type(), &DataType::Decimal128(12, 6));
    }
}
