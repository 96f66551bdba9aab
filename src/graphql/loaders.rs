//! DataLoaders: many `performance(range)` fields in one request become one
//! metrics computation per (dimension, range), whatever the number of
//! agencies, agents or carriers asked for.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use async_graphql::SimpleObject;
use async_graphql::dataloader::Loader;
use chrono::NaiveDate;
use rust_decimal::Decimal;

use super::scalars::Money;
use crate::query::metrics::{self, DateRange, Dimension, Filters, Metric, MetricValue, competition_ranks};
use crate::query::view::TenantView;

/// Whose performance: the kinds of entity that have peers to rank among.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Subject {
    Agency,
    Agent,
    Carrier,
}

impl Subject {
    fn dimension(self) -> Dimension {
        match self {
            Subject::Agency => Dimension::Agency,
            Subject::Agent => Dimension::Agent,
            Subject::Carrier => Dimension::Carrier,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PerfKey {
    pub subject: Subject,
    pub from: NaiveDate,
    pub to: NaiveDate,
    pub id: String,
}

/// Performance of one agency, agent or carrier over a date range.
#[derive(Debug, Clone, SimpleObject)]
pub struct Performance {
    pub gross_commission: Money,
    pub agent_commission: Money,
    pub written_premium: Money,
    pub policy_count: i64,
    pub new_business_count: i64,
    /// Renewed / up for renewal; null when none were up.
    pub renewal_rate: Option<f64>,
    /// Cancelled in range / active at its start; null when none were active.
    pub cancellation_rate: Option<f64>,
    /// Gross commission of new and renewal rows / their premium; null when no premium.
    pub average_commission_rate: Option<f64>,
    /// Rank by gross commission among peers (an agent among its agency's
    /// agents; an agency or carrier among the tenant's); ties share the
    /// lower number (1, 2, 2, 4).
    pub ranking: Option<i32>,
}

impl Performance {
    /// Fill from values in the order of [`Metric::ALL`].
    pub fn from_values(values: &[MetricValue]) -> Self {
        let money = |i: usize| match values.get(i) {
            Some(MetricValue::Money(d)) => Money(*d),
            _ => Money(Decimal::ZERO),
        };
        let count = |i: usize| match values.get(i) {
            Some(MetricValue::Count(n)) => *n,
            _ => 0,
        };
        let rate = |i: usize| match values.get(i) {
            Some(MetricValue::Rate(r)) => *r,
            _ => None,
        };
        Performance {
            gross_commission: money(0),
            agent_commission: money(1),
            written_premium: money(2),
            policy_count: count(3),
            new_business_count: count(4),
            renewal_rate: rate(5),
            cancellation_rate: rate(6),
            average_commission_rate: rate(7),
            ranking: None,
        }
    }

    pub fn empty() -> Self {
        Self::from_values(&[])
    }
}

pub struct PerformanceLoader {
    pub view: Arc<TenantView>,
}

impl PerformanceLoader {
    /// Performance of every member of `subject` over the range, ranked.
    async fn compute_all(&self, subject: Subject, range: &DateRange) -> Result<HashMap<String, Performance>, String> {
        let rows =
            metrics::compute(&self.view.session, &Metric::ALL, range, &[subject.dimension()], &Filters::default())
                .await
                .map_err(|e| e.to_string())?;
        let mut perf: HashMap<String, Performance> =
            rows.iter().map(|r| (r.group[0].clone(), Performance::from_values(&r.values))).collect();
        let dir = self.view.directory().await.map_err(|e| e.to_string())?;
        // Peers with no activity still rank (with zero).
        let peer_group: Vec<(String, String)> = match subject {
            Subject::Agency => dir.agencies.iter().map(|a| (String::new(), a.id.clone())).collect(),
            Subject::Carrier => dir.carriers.iter().map(|c| (String::new(), c.id.clone())).collect(),
            Subject::Agent => dir.agents.iter().map(|a| (a.agency_id.clone(), a.id.clone())).collect(),
        };
        let mut groups: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for (group, id) in peer_group {
            perf.entry(id.clone()).or_insert_with(Performance::empty);
            groups.entry(group).or_default().push(id);
        }
        for ids in groups.values() {
            let gross: Vec<Decimal> = ids.iter().map(|id| perf[id].gross_commission.0).collect();
            for (id, rank) in ids.iter().zip(competition_ranks(&gross)) {
                if let Some(p) = perf.get_mut(id) {
                    p.ranking = Some(rank as i32);
                }
            }
        }
        Ok(perf)
    }
}

impl Loader<PerfKey> for PerformanceLoader {
    type Value = Performance;
    type Error = Arc<String>;

    async fn load(&self, keys: &[PerfKey]) -> Result<HashMap<PerfKey, Performance>, Self::Error> {
        let mut wanted: BTreeMap<(Subject, NaiveDate, NaiveDate), Vec<&PerfKey>> = BTreeMap::new();
        for k in keys {
            wanted.entry((k.subject, k.from, k.to)).or_default().push(k);
        }
        let mut out = HashMap::new();
        for ((subject, from, to), ks) in wanted {
            let all = self.compute_all(subject, &DateRange { from, to }).await.map_err(Arc::new)?;
            for k in ks {
                out.insert(k.clone(), all.get(&k.id).cloned().unwrap_or_else(Performance::empty));
            }
        }
        Ok(out)
    }
}
