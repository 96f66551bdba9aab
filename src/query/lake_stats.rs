//! Row counts and exact money sums of every table of a version, over all
//! tenants: what `cip lake stats` prints, so that another reader of the
//! Delta tables (DuckDB, polars, Spark) can be checked against cip.

use arrow::array::{Array, AsArray};
use arrow::datatypes::{DataType, Decimal128Type, Int64Type};
use datafusion::error::Result;
use datafusion::prelude::SessionContext;
use serde::Serialize;

use super::tables::{Scope, register_snapshot};
use crate::contract::MONEY_SCALE;
use crate::lake::{Location, Manifest};

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct TableStats {
    pub table: String,
    pub files: usize,
    pub rows: i64,
    /// Money column → its exact sum (`"1234.50"`), over every row.
    pub money_sums: std::collections::BTreeMap<String, String>,
}

pub async fn table_stats(lake: &Location, manifest: &Manifest) -> Result<Vec<TableStats>> {
    let ctx = SessionContext::new();
    register_snapshot(&ctx, lake, manifest, &Scope::AllTenants).await?;
    let mut out = Vec::new();
    for (table, files) in &manifest.tables {
        if !ctx.table_exist(table.as_str())? {
            continue;
        }
        let schema = ctx.table(table.as_str()).await?.schema().as_arrow().clone();
        let money: Vec<String> = schema
            .fields()
            .iter()
            .filter(|f| matches!(f.data_type(), DataType::Decimal128(_, s) if *s == MONEY_SCALE))
            .map(|f| f.name().clone())
            .collect();
        let mut select = vec!["count(*) as n".to_string()];
        select.extend(money.iter().map(|c| format!("sum(\"{c}\") as \"{c}\"")));
        let batches = ctx.sql(&format!("select {} from \"{table}\"", select.join(", "))).await?.collect().await?;
        let b = &batches[0];
        let rows = b.column(0).as_primitive::<Int64Type>().value(0);
        let mut money_sums = std::collections::BTreeMap::new();
        for (i, c) in money.iter().enumerate() {
            let col = b.column(i + 1).as_primitive::<Decimal128Type>();
            let text = if col.is_null(0) { "0.00".to_string() } else { col.value_as_string(0) };
            money_sums.insert(c.clone(), text);
        }
        out.push(TableStats { table: table.clone(), files: files.len(), rows, money_sums });
    }
    Ok(out)
}
