//! One tenant's rollups kept up to date from the rows a commit adds and
//! removes, instead of being rebuilt from every fact: what the streaming
//! writer needs to publish a small batch every second on a large book.
//!
//! The state holds the rollups' groups with row and value counts (so that
//! taking a row out gives back exactly the sums, and the `NULL` of an
//! all-null sum, that never having had it gives) and, per policy, what the
//! rollups read of it: its dimensions, dates and `renewal_of`, how many
//! policies renew it and how many commission rows name it. Its output is
//! written by the same functions as a full build
//! ([`commission_tables`](super::commission_tables),
//! [`renewal_table`](super::renewal_table)), and a test checks the two
//! agree after every change of a random history.
//!
//! One change is not applied: a policy whose agency or line changes while
//! commission rows that stay name it (the rows would move group, and the
//! state does not keep commission rows). [`TenantRollups::apply`] then
//! fails and the caller rebuilds the tenant in full.

use std::collections::{HashMap, HashSet};

use arrow::array::{Array, RecordBatch};
use arrow::error::ArrowError;
use foldhash::fast::RandomState;

use super::{
    AMOUNTS, Built, COMMISSION_COLUMNS, CommissionKey, Id, Months, NULL, NameTable, POLICY_COLUMNS,
    RENEWAL_KEY_COLUMNS, RenewalKey, Sums, column, commission_tables, date, dates, decimals, ids_of, renewal_table,
    strings, up_for_renewal, value,
};
use crate::query::metrics::{AGENT, CANCELLATION_DATE, CARRIER, EXPIRATION_DATE, TRANSACTION_DATE};

/// Why a change was not applied; the state is then unusable.
#[derive(Debug, thiserror::Error)]
pub enum NeedsRebuild {
    #[error("policy {0} changed agency or line while commission rows name it")]
    PolicyMoved(String),
    #[error("the change does not match the state: {0}")]
    Inconsistent(String),
    #[error(transparent)]
    Arrow(#[from] ArrowError),
}

/// The rows of one commit for one tenant: the stored rows it replaces and
/// the rows it lands, with at least [`COMMISSION_COLUMNS`] and
/// [`POLICY_COLUMNS`].
#[derive(Default)]
pub struct Changes {
    pub removed_commissions: Vec<RecordBatch>,
    pub added_commissions: Vec<RecordBatch>,
    pub removed_policies: Vec<RecordBatch>,
    pub added_policies: Vec<RecordBatch>,
}

/// What the rollups read of a policy.
#[derive(Clone)]
struct PolicyFacts {
    /// Agency, agent, carrier, line ([`RENEWAL_KEY_COLUMNS`]).
    dims: [Id; 4],
    expiration: Option<i32>,
    cancellation: Option<i32>,
    renewal_of: Option<Box<str>>,
}

/// The commission rollups' join of a policy: agency and line.
type Joined = (Id, Id);

impl PolicyFacts {
    fn joined(&self) -> Joined {
        (self.dims[0], self.dims[3])
    }
}

/// A policy id's entry: its row (if stored), and what refers to it.
#[derive(Default)]
struct PolicyEntry {
    facts: Option<PolicyFacts>,
    /// Policies whose `renewal_of` is this id.
    renewers: u32,
    /// Commission rows whose `policy_id` is this id.
    commissions: u32,
}

impl PolicyEntry {
    fn is_empty(&self) -> bool {
        self.facts.is_none() && self.renewers == 0 && self.commissions == 0
    }
}

/// One commission row as the rollups read it.
struct CommissionFacts {
    policy: Option<Box<str>>,
    month: Option<i32>,
    /// Kind, agent, carrier.
    dims: [Id; 3],
    amounts: [Option<i128>; 3],
}

/// A commission group's rows and sums, with how many values each sum has.
#[derive(Default, Clone, Copy)]
struct Totals {
    rows: u64,
    sums: [i128; 3],
    present: [u64; 3],
}

impl Totals {
    fn sums(&self) -> Sums {
        std::array::from_fn(|j| (self.present[j] > 0).then_some(self.sums[j]))
    }
}

/// One tenant's rollups and the policy facts they depend on.
#[derive(Default)]
pub struct TenantRollups {
    ids: HashMap<Box<str>, Id, RandomState>,
    names: Vec<Box<str>>,
    policies: HashMap<Box<str>, PolicyEntry, RandomState>,
    commissions: HashMap<CommissionKey, Totals, RandomState>,
    renewals: HashMap<RenewalKey, i64, RandomState>,
    months: Months,
}

fn inconsistent(what: impl Into<String>) -> NeedsRebuild {
    NeedsRebuild::Inconsistent(what.into())
}

impl TenantRollups {
    /// The state of a tenant whose facts are `commissions` and `policies`.
    pub fn from_facts(commissions: Vec<RecordBatch>, policies: Vec<RecordBatch>) -> Result<Self, NeedsRebuild> {
        let mut state = TenantRollups::default();
        state.apply(Changes { added_commissions: commissions, added_policies: policies, ..Changes::default() })?;
        Ok(state)
    }

    /// Policies the state knows (stored, or named by other rows).
    pub fn policy_entries(&self) -> usize {
        self.policies.len()
    }

    /// Take `changes` into the rollups. On an error the state is partly
    /// changed and must be dropped.
    pub fn apply(&mut self, changes: Changes) -> Result<(), NeedsRebuild> {
        let removed_policies = self.policy_rows(&changes.removed_policies)?;
        let added_policies = self.policy_rows(&changes.added_policies)?;
        let removed_commissions = self.commission_rows(&changes.removed_commissions)?;
        let added_commissions = self.commission_rows(&changes.added_commissions)?;

        // Policies whose renewal group may change: their own row changes,
        // or whether some policy renews them.
        let mut touched: HashSet<Box<str>, RandomState> = HashSet::default();
        for (id, f) in removed_policies.iter().chain(&added_policies) {
            touched.insert(id.clone());
            touched.extend(f.renewal_of.clone());
        }
        for id in &touched {
            self.count_renewal(id, -1)?;
        }
        for c in &removed_commissions {
            self.sum(c, -1)?;
        }
        let joined_before: Vec<(Box<str>, Option<Joined>)> =
            added_policies.iter().map(|(id, _)| (id.clone(), self.joined(id))).collect();
        for (id, f) in removed_policies {
            let e = self.policies.get_mut(&id).ok_or_else(|| inconsistent(format!("removed policy {id} unknown")))?;
            if e.facts.take().is_none() {
                return Err(inconsistent(format!("removed policy {id} not stored")));
            }
            if let Some(r) = f.renewal_of {
                let e = self.policies.get_mut(&r).ok_or_else(|| inconsistent(format!("renewed policy {r} unknown")))?;
                e.renewers = e.renewers.checked_sub(1).ok_or_else(|| inconsistent(format!("renewers of {r}")))?;
            }
        }
        for (id, f) in added_policies {
            if let Some(r) = &f.renewal_of {
                self.policies.entry(r.clone()).or_default().renewers += 1;
            }
            let e = self.policies.entry(id.clone()).or_default();
            if e.facts.replace(f).is_some() {
                return Err(inconsistent(format!("policy {id} added twice")));
            }
        }
        for (id, before) in joined_before {
            let e = &self.policies[&id];
            if e.commissions > 0 && before != e.facts.as_ref().map(PolicyFacts::joined) {
                return Err(NeedsRebuild::PolicyMoved(id.to_string()));
            }
        }
        for c in &added_commissions {
            self.sum(c, 1)?;
        }
        for id in &touched {
            self.count_renewal(id, 1)?;
        }
        // Forget ids nothing refers to any more: memory follows the book.
        let named = removed_commissions.iter().chain(&added_commissions).filter_map(|c| c.policy.as_ref());
        for id in touched.iter().chain(named) {
            if self.policies.get(id).is_some_and(PolicyEntry::is_empty) {
                self.policies.remove(id);
            }
        }
        Ok(())
    }

    /// The rollup tables, exactly as a full build of the same facts writes them.
    pub fn tables(&self) -> Result<Vec<Built>, ArrowError> {
        let names: Vec<&str> = self.names.iter().map(|n| &**n).collect();
        let names = NameTable::new(&names);
        let full = self.commissions.iter().map(|(k, t)| (*k, t.sums())).collect();
        let mut out = commission_tables(full, &names)?;
        out.push(renewal_table(self.renewals.iter().map(|(k, n)| (*k, *n)).collect(), &names)?);
        Ok(out)
    }

    fn intern(&mut self, s: Option<&str>) -> Id {
        let Some(s) = s else { return NULL };
        if let Some(id) = self.ids.get(s) {
            return *id;
        }
        let id = self.names.len() as Id;
        self.names.push(s.into());
        self.ids.insert(s.into(), id);
        id
    }

    fn interned(&mut self, b: &RecordBatch, name: &str) -> Result<Vec<Id>, ArrowError> {
        ids_of(column(b, name)?, name, |s| self.intern(s))
    }

    fn policy_rows(&mut self, batches: &[RecordBatch]) -> Result<Vec<(Box<str>, PolicyFacts)>, ArrowError> {
        let mut out = Vec::new();
        for b in batches {
            let ids = strings(b, POLICY_COLUMNS[0])?;
            let renewal_of = strings(b, "renewal_of")?;
            let dims = RENEWAL_KEY_COLUMNS.map(|c| self.interned(b, c));
            let [agency, agent, carrier, line] = dims;
            let (agency, agent, carrier, line) = (agency?, agent?, carrier?, line?);
            let (expires, cancelled) = (dates(b, EXPIRATION_DATE)?, dates(b, CANCELLATION_DATE)?);
            for i in 0..b.num_rows() {
                let Some(id) = value(ids, i) else { continue };
                let facts = PolicyFacts {
                    dims: [agency[i], agent[i], carrier[i], line[i]],
                    expiration: date(expires, i),
                    cancellation: date(cancelled, i),
                    renewal_of: value(renewal_of, i).map(Into::into),
                };
                out.push((id.into(), facts));
            }
        }
        Ok(out)
    }

    fn commission_rows(&mut self, batches: &[RecordBatch]) -> Result<Vec<CommissionFacts>, ArrowError> {
        let mut out = Vec::new();
        for b in batches {
            let policy = strings(b, COMMISSION_COLUMNS[0])?;
            let (kind, agent, carrier) =
                (self.interned(b, "kind")?, self.interned(b, AGENT)?, self.interned(b, CARRIER)?);
            let day = dates(b, TRANSACTION_DATE)?;
            let amounts = [decimals(b, AMOUNTS[0])?, decimals(b, AMOUNTS[1])?, decimals(b, AMOUNTS[2])?];
            for i in 0..b.num_rows() {
                out.push(CommissionFacts {
                    policy: value(policy, i).map(Into::into),
                    month: date(day, i).map(|d| self.months.of(d)),
                    dims: [kind[i], agent[i], carrier[i]],
                    amounts: amounts.map(|a| a.is_valid(i).then(|| a.value(i))),
                });
            }
        }
        Ok(out)
    }

    /// Agency and line of a stored policy.
    fn joined(&self, id: &str) -> Option<Joined> {
        self.policies.get(id).and_then(|e| e.facts.as_ref()).map(PolicyFacts::joined)
    }

    /// Add (`sign` 1) or take out (−1) one commission row.
    fn sum(&mut self, c: &CommissionFacts, sign: i8) -> Result<(), NeedsRebuild> {
        let (agency, line) = c.policy.as_deref().and_then(|p| self.joined(p)).unwrap_or((NULL, NULL));
        let key = (c.month, [c.dims[0], c.dims[1], c.dims[2], agency, line]);
        let t = self.commissions.entry(key).or_default();
        let overflow = || inconsistent("commission rollup sum overflows");
        if sign > 0 {
            t.rows += 1;
        } else {
            t.rows = t.rows.checked_sub(1).ok_or_else(|| inconsistent("a commission row taken out twice"))?;
        }
        for (j, v) in c.amounts.iter().enumerate() {
            let Some(v) = v else { continue };
            if sign > 0 {
                t.sums[j] = t.sums[j].checked_add(*v).ok_or_else(overflow)?;
                t.present[j] += 1;
            } else {
                t.sums[j] = t.sums[j].checked_sub(*v).ok_or_else(overflow)?;
                t.present[j] = t.present[j].checked_sub(1).ok_or_else(|| inconsistent("a value taken out twice"))?;
            }
        }
        if t.rows == 0 {
            self.commissions.remove(&key);
        }
        if let Some(p) = &c.policy {
            let e = self.policies.entry(p.clone()).or_default();
            e.commissions = if sign > 0 {
                e.commissions + 1
            } else {
                e.commissions.checked_sub(1).ok_or_else(|| inconsistent(format!("commissions of {p}")))?
            };
        }
        Ok(())
    }

    /// Count a policy in (`sign` 1) or out of (−1) its renewal group.
    fn count_renewal(&mut self, id: &str, sign: i64) -> Result<(), NeedsRebuild> {
        let Some(e) = self.policies.get(id) else { return Ok(()) };
        let Some(f) = &e.facts else { return Ok(()) };
        if !up_for_renewal(f.expiration, f.cancellation) {
            return Ok(());
        }
        let key = (f.expiration, f.dims, e.renewers > 0);
        let n = self.renewals.entry(key).or_default();
        *n += sign;
        if *n < 0 {
            return Err(inconsistent(format!("renewal group of {id} below zero")));
        }
        if *n == 0 {
            self.renewals.remove(&key);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::sync::Arc;

    use arrow::array::{ArrayRef, Date32Array, Decimal128Array, StringArray};
    use datafusion::arrow::util::pretty::pretty_format_batches;

    use super::super::{commission_rollups, renewal_rollup};
    use super::*;
    use crate::query::metrics::{AGENCY, LINE};

    /// A policy: (agency, agent, carrier, line, expiration day, cancellation day, renewal_of).
    type Policy = (&'static str, &'static str, &'static str, &'static str, i32, Option<i32>, Option<String>);
    /// A commission: (policy, agent, carrier, day, kind, premium cents).
    type Commission = (String, &'static str, &'static str, i32, &'static str, i128);

    fn strings(v: impl Iterator<Item = Option<String>>) -> ArrayRef {
        Arc::new(StringArray::from_iter(v))
    }

    fn policies(rows: &[(String, Policy)]) -> RecordBatch {
        let s = |f: &dyn Fn(&Policy) -> Option<String>| strings(rows.iter().map(|(_, p)| f(p)));
        RecordBatch::try_from_iter(vec![
            ("policy_id", strings(rows.iter().map(|(id, _)| Some(id.clone())))),
            (AGENCY, s(&|p| Some(p.0.into()))),
            (AGENT, s(&|p| Some(p.1.into()))),
            (CARRIER, s(&|p| Some(p.2.into()))),
            (LINE, s(&|p| Some(p.3.into()))),
            (EXPIRATION_DATE, Arc::new(Date32Array::from_iter(rows.iter().map(|(_, p)| Some(p.4)))) as ArrayRef),
            (CANCELLATION_DATE, Arc::new(Date32Array::from_iter(rows.iter().map(|(_, p)| p.5))) as ArrayRef),
            ("renewal_of", s(&|p| p.6.clone())),
        ])
        .unwrap()
    }

    fn commissions(rows: &[(String, Commission)]) -> RecordBatch {
        let money = |f: &dyn Fn(i128) -> i128| -> ArrayRef {
            let v = Decimal128Array::from_iter_values(rows.iter().map(|(_, c)| f(c.5)));
            Arc::new(v.with_precision_and_scale(18, 2).unwrap())
        };
        let s = |f: &dyn Fn(&Commission) -> String| strings(rows.iter().map(|(_, c)| Some(f(c))));
        RecordBatch::try_from_iter(vec![
            ("policy_id", s(&|c| c.0.clone())),
            (AGENT, s(&|c| c.1.into())),
            (CARRIER, s(&|c| c.2.into())),
            (TRANSACTION_DATE, Arc::new(Date32Array::from_iter_values(rows.iter().map(|(_, c)| c.3))) as ArrayRef),
            ("kind", s(&|c| c.4.into())),
            (AMOUNTS[0], money(&|p| p)),
            (AMOUNTS[1], money(&|p| p / 10)),
            (AMOUNTS[2], money(&|p| p / 25)),
        ])
        .unwrap()
    }

    fn printed(built: &[Built]) -> Vec<String> {
        built.iter().map(|(t, _, b)| format!("{t}\n{}", pretty_format_batches(b).unwrap())).collect()
    }

    /// A tiny deterministic generator (xorshift), so the history is the same on every run.
    struct Rng(u64);
    impl Rng {
        fn below(&mut self, n: u64) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0 % n
        }
        fn pick<T: Copy>(&mut self, v: &[T]) -> T {
            v[self.below(v.len() as u64) as usize]
        }
    }

    /// A random history of upserts (new rows, changed amounts, cancellations,
    /// renewals, commissions that arrive before their policy): after every
    /// step the kept state writes the tables a full build of the same facts
    /// writes. A policy moved under its commissions asks for a rebuild.
    #[test]
    fn applying_changes_gives_what_a_full_build_gives() {
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
        let mut stored_p: BTreeMap<String, Policy> = BTreeMap::new();
        let mut stored_c: BTreeMap<String, Commission> = BTreeMap::new();
        let mut state = TenantRollups::default();
        let (mut applied, mut rebuilt) = (0, 0);
        for step in 0..400 {
            let mut added_p = BTreeMap::new();
            let mut added_c = BTreeMap::new();
            for _ in 0..rng.below(4) + 1 {
                let id = format!("P{}", rng.below(12));
                let old = stored_p.get(&id).cloned();
                let moved = rng.below(8) == 0;
                let policy: Policy = match old {
                    // A change that keeps agency and line, or (rarely) one that does not.
                    Some(mut p) if !moved => {
                        p.5 = if rng.below(2) == 0 { Some(p.4 - rng.below(400) as i32) } else { None };
                        p.1 = rng.pick(&["G1", "G2"]);
                        p
                    }
                    _ => (
                        rng.pick(&["A1", "A2"]),
                        rng.pick(&["G1", "G2", "G3"]),
                        rng.pick(&["K1", "K2"]),
                        rng.pick(&["auto", "home"]),
                        20_000 + rng.below(700) as i32,
                        None,
                        (rng.below(3) == 0).then(|| format!("P{}", rng.below(12))),
                    ),
                };
                added_p.insert(id, policy);
            }
            for _ in 0..rng.below(6) {
                let id = format!("C{}", rng.below(40));
                let c: Commission = (
                    format!("P{}", rng.below(14)),
                    rng.pick(&["G1", "G2", "G3"]),
                    rng.pick(&["K1", "K2"]),
                    19_800 + rng.below(900) as i32,
                    rng.pick(&["new", "renewal", "chargeback"]),
                    rng.below(500_000) as i128 - 50_000,
                );
                added_c.insert(id, c);
            }
            // Identical rows land nothing (as upsert resolution decides).
            added_p.retain(|id, p| stored_p.get(id) != Some(p));
            added_c.retain(|id, c| stored_c.get(id) != Some(c));
            let removed_p: Vec<(String, Policy)> =
                added_p.keys().filter_map(|id| stored_p.get(id).map(|p| (id.clone(), p.clone()))).collect();
            let removed_c: Vec<(String, Commission)> =
                added_c.keys().filter_map(|id| stored_c.get(id).map(|c| (id.clone(), c.clone()))).collect();
            let added_p: Vec<(String, Policy)> = added_p.into_iter().collect();
            let added_c: Vec<(String, Commission)> = added_c.into_iter().collect();
            let changes = Changes {
                removed_commissions: vec![commissions(&removed_c)],
                added_commissions: vec![commissions(&added_c)],
                removed_policies: vec![policies(&removed_p)],
                added_policies: vec![policies(&added_p)],
            };
            stored_p.extend(added_p);
            stored_c.extend(added_c);
            let all_p = policies(&stored_p.clone().into_iter().collect::<Vec<_>>());
            let all_c = commissions(&stored_c.clone().into_iter().collect::<Vec<_>>());
            match state.apply(changes) {
                Ok(()) => applied += 1,
                Err(NeedsRebuild::PolicyMoved(_)) => {
                    rebuilt += 1;
                    state = TenantRollups::from_facts(vec![all_c.clone()], vec![all_p.clone()]).unwrap();
                }
                Err(e) => panic!("step {step}: {e}"),
            }
            let mut full = commission_rollups(&[all_c], std::slice::from_ref(&all_p)).unwrap();
            full.push(renewal_rollup(&[all_p]).unwrap());
            assert_eq!(printed(&state.tables().unwrap()), printed(&full), "step {step}");
        }
        // Both paths ran, most steps incrementally; the state forgets
        // nothing it needs and keeps no more ids than are named (12
        // policies, 14 policy ids named by commissions).
        assert!(applied > 300 && rebuilt > 5, "applied {applied}, rebuilt {rebuilt}");
        assert!(state.policy_entries() <= 14, "{}", state.policy_entries());
    }
}
