//! Versioned model artifacts in the lake's object store:
//!
//! ```text
//! models/<name>/<version>/model.json     the fitted model (serde)
//! models/<name>/<version>/metrics.json             what its evaluation measured, all tenants pooled
//! models/<name>/<version>/metrics_by_tenant.json   the same evaluation over each tenant's own data
//! models/<name>/<version>/card.md                  the model card
//! models/<name>/<version>/info.json                written last, create-if-absent
//! ```
//!
//! `info.json` is the version's commit point, like a snapshot pointer: a
//! version without it (a crash mid-save) is invisible, and two trainers can
//! never both claim one version.
//!
//! What a tenant may see of a version's evaluation is [`ModelInfo::metrics_for`]:
//! its own figures, and the pooled ones only where at least
//! [`MIN_TENANTS`] tenants contributed to them (the rule of the industry
//! benchmarks), so that no tenant can subtract its own figures from the
//! pool's and read another's.

use std::collections::BTreeMap;

use anyhow::{Context, Result};
use chrono::{NaiveDate, Utc};
use futures::TryStreamExt;
use object_store::{ObjectStoreExt, PutMode, PutOptions};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::lake::Location;
pub use crate::query::industry::MIN_TENANTS;

pub const MODELS_DIR: &str = "models";
/// The per-tenant evaluation of a version, beside its `metrics.json`.
pub const METRICS_BY_TENANT: &str = "metrics_by_tenant.json";
/// The key of `metrics.json` that counts the tenants behind its figures
/// (the fewest of any part of the evaluation).
pub const CONTRIBUTING_TENANTS: &str = "contributing_tenants";

/// What a registered version is: the registry's listing and the API's `models`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelInfo {
    pub name: String,
    pub version: String,
    pub trained_at: String,
    /// The examples (or months) the model learnt from.
    pub window_from: NaiveDate,
    pub window_to: NaiveDate,
    /// The last day of data in the lake at training time.
    pub data_date: NaiveDate,
    /// The lake snapshot the model was trained on.
    pub snapshot: u64,
    /// The evaluation over all tenants (`metrics.json`); never shown to a
    /// tenant as such: see [`ModelInfo::metrics_for`].
    pub metrics: serde_json::Value,
    /// The evaluation over each tenant's own examples or series, by tenant
    /// id (`metrics_by_tenant.json`; not part of `info.json`).
    #[serde(skip)]
    pub metrics_by_tenant: BTreeMap<String, serde_json::Value>,
}

impl ModelInfo {
    /// What `tenant` may see of the evaluation:
    ///
    /// ```json
    /// {"tenant": {…its own figures…} | null,
    ///  "pooled": {…metrics.json…} | null,
    ///  "contributing_tenants": 3, "min_tenants": 5}
    /// ```
    ///
    /// `pooled` is null unless `metrics.json` says at least [`MIN_TENANTS`]
    /// tenants contributed (a version that does not say is never pooled);
    /// no other tenant's figures are ever in it.
    pub fn metrics_for(&self, tenant: &str) -> serde_json::Value {
        let contributing = self.metrics.get(CONTRIBUTING_TENANTS).and_then(serde_json::Value::as_u64);
        let pooled = match contributing {
            Some(n) if n >= MIN_TENANTS as u64 => self.metrics.clone(),
            _ => serde_json::Value::Null,
        };
        serde_json::json!({
            "tenant": self.metrics_by_tenant.get(tenant).cloned().unwrap_or(serde_json::Value::Null),
            "pooled": pooled,
            "contributing_tenants": contributing,
            "min_tenants": MIN_TENANTS,
        })
    }
}

/// The number of tenants behind an evaluation made of several parts (the
/// windows of a split, the scopes and horizons of a backtest): the fewest
/// of any part that has data, each part given as the tenant of each of its
/// rows.
pub fn contributing_tenants<'a, P, I>(parts: P) -> usize
where
    P: IntoIterator<Item = I>,
    I: IntoIterator<Item = &'a str>,
{
    parts
        .into_iter()
        .map(|p| p.into_iter().collect::<std::collections::BTreeSet<_>>().len())
        .filter(|&n| n > 0)
        .min()
        .unwrap_or(0)
}

/// What to register: the artifact and its evaluation.
pub struct NewModel<'a, T: Serialize> {
    pub name: &'a str,
    pub artifact: &'a T,
    /// Pooled over all tenants, with [`CONTRIBUTING_TENANTS`].
    pub metrics: serde_json::Value,
    /// Each tenant's own evaluation, by tenant id.
    pub metrics_by_tenant: BTreeMap<String, serde_json::Value>,
    pub card: &'a str,
    pub window_from: NaiveDate,
    pub window_to: NaiveDate,
    pub data_date: NaiveDate,
    pub snapshot: u64,
}

fn dir(name: &str, version: &str) -> String {
    format!("{MODELS_DIR}/{name}/{version}")
}

/// Register a new version of `m.name`; returns its info. Versions are UTC
/// timestamps (millisecond), so they sort in training order.
pub async fn save<T: Serialize>(lake: &Location, m: NewModel<'_, T>) -> Result<ModelInfo> {
    let now = Utc::now();
    let mut info = ModelInfo {
        name: m.name.to_string(),
        version: now.format("%Y%m%dT%H%M%S%3fZ").to_string(),
        trained_at: now.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        window_from: m.window_from,
        window_to: m.window_to,
        data_date: m.data_date,
        snapshot: m.snapshot,
        metrics: m.metrics,
        metrics_by_tenant: m.metrics_by_tenant,
    };
    let artifact = serde_json::to_vec(m.artifact)?;
    let metrics = serde_json::to_vec_pretty(&info.metrics)?;
    let by_tenant = serde_json::to_vec_pretty(&info.metrics_by_tenant)?;
    for attempt in 0..5 {
        if attempt > 0 {
            info.version = format!("{}-{attempt}", now.format("%Y%m%dT%H%M%S%3fZ"));
        }
        let d = dir(m.name, &info.version);
        lake.store.put(&lake.child(&format!("{d}/model.json")), artifact.clone().into()).await?;
        lake.store.put(&lake.child(&format!("{d}/metrics.json")), metrics.clone().into()).await?;
        lake.store.put(&lake.child(&format!("{d}/{METRICS_BY_TENANT}")), by_tenant.clone().into()).await?;
        lake.store.put(&lake.child(&format!("{d}/card.md")), m.card.as_bytes().to_vec().into()).await?;
        let opts = PutOptions { mode: PutMode::Create, ..Default::default() };
        let body = serde_json::to_vec_pretty(&info)?;
        match lake.store.put_opts(&lake.child(&format!("{d}/info.json")), body.into(), opts).await {
            Ok(_) => return Ok(info),
            Err(object_store::Error::AlreadyExists { .. }) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    anyhow::bail!("could not claim a version for model {}", m.name)
}

/// Every registered version of every model, newest first within a name.
pub async fn list(lake: &Location) -> Result<Vec<ModelInfo>> {
    let root = lake.child(MODELS_DIR);
    let metas: Vec<_> = lake.store.list(Some(&root)).try_collect().await?;
    let mut out = Vec::new();
    for m in metas.iter().filter(|m| m.location.filename() == Some("info.json")) {
        let bytes = lake.store.get(&m.location).await?.bytes().await?;
        let mut info: ModelInfo =
            serde_json::from_slice(&bytes).with_context(|| format!("unreadable {}", lake.relative(&m.location)))?;
        info.metrics_by_tenant = by_tenant(lake, &info).await?;
        out.push(info);
    }
    out.sort_by(|a, b| a.name.cmp(&b.name).then(b.version.cmp(&a.version)));
    Ok(out)
}

/// The per-tenant evaluation of a version; empty for a version saved
/// before there was one.
async fn by_tenant(lake: &Location, info: &ModelInfo) -> Result<BTreeMap<String, serde_json::Value>> {
    let path = lake.child(&format!("{}/{METRICS_BY_TENANT}", dir(&info.name, &info.version)));
    match lake.store.get(&path).await {
        Ok(r) => {
            let bytes = r.bytes().await?;
            serde_json::from_slice(&bytes).with_context(|| format!("unreadable {}", lake.relative(&path)))
        }
        Err(object_store::Error::NotFound { .. }) => Ok(BTreeMap::new()),
        Err(e) => Err(e.into()),
    }
}

/// The newest version of `name`.
pub async fn latest(lake: &Location, name: &str) -> Result<Option<ModelInfo>> {
    Ok(list(lake).await?.into_iter().find(|i| i.name == name))
}

/// The artifact of a registered version.
pub async fn load<T: DeserializeOwned>(lake: &Location, info: &ModelInfo) -> Result<T> {
    let path = lake.child(&format!("{}/model.json", dir(&info.name, &info.version)));
    let bytes = lake.store.get(&path).await?.bytes().await?;
    serde_json::from_slice(&bytes).with_context(|| format!("model {} {} does not load", info.name, info.version))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn versions_list_newest_first_and_reload() {
        let lake = crate::lake::store::open("memory://").unwrap();
        let d = NaiveDate::from_ymd_opt(2025, 12, 31).unwrap();
        let new = |artifact: &'static Vec<f64>| NewModel {
            name: "m",
            artifact,
            metrics: serde_json::json!({"auc": 0.8}),
            metrics_by_tenant: BTreeMap::from([("t1".to_string(), serde_json::json!({"auc": 0.7}))]),
            card: "# m",
            window_from: d,
            window_to: d,
            data_date: d,
            snapshot: 3,
        };
        static A: Vec<f64> = Vec::new();
        let first = save(&lake, new(&A)).await.unwrap();
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        let second = save(&lake, new(&A)).await.unwrap();
        assert!(second.version > first.version);
        let all = list(&lake).await.unwrap();
        assert_eq!(
            all.iter().map(|i| i.version.clone()).collect::<Vec<_>>(),
            vec![second.version.clone(), first.version.clone()]
        );
        assert_eq!(latest(&lake, "m").await.unwrap().unwrap(), second);
        assert_eq!(latest(&lake, "other").await.unwrap(), None);
        let back: Vec<f64> = load(&lake, &second).await.unwrap();
        assert!(back.is_empty());
        assert_eq!(second.metrics["auc"], 0.8);
        // The per-tenant evaluation is its own file, read back by `list`, and not in info.json.
        assert_eq!(all[0].metrics_by_tenant["t1"], serde_json::json!({"auc": 0.7}));
        let info_path = lake.child(&format!("{}/info.json", dir("m", &second.version)));
        let info_json = lake.store.get(&info_path).await.unwrap().bytes().await.unwrap();
        assert!(!String::from_utf8_lossy(&info_json).contains("0.7"));
        // A version saved before there was one (no metrics_by_tenant.json) still lists, with none.
        let by_tenant = lake.child(&format!("{}/{METRICS_BY_TENANT}", dir("m", &first.version)));
        lake.store.delete(&by_tenant).await.unwrap();
        let old = list(&lake).await.unwrap().into_iter().find(|i| i.version == first.version).unwrap();
        assert!(old.metrics_by_tenant.is_empty());
        assert_eq!(old.metrics_for("t1")["tenant"], serde_json::Value::Null);
    }

    fn info(contributing: Option<usize>) -> ModelInfo {
        let d = NaiveDate::from_ymd_opt(2025, 12, 31).unwrap();
        let mut metrics = serde_json::json!({"model": {"roc_auc": 0.8, "reliability": [{"count": 300}]}});
        if let Some(n) = contributing {
            metrics[CONTRIBUTING_TENANTS] = serde_json::json!(n);
        }
        ModelInfo {
            name: "renewal".into(),
            version: "v".into(),
            trained_at: "t".into(),
            window_from: d,
            window_to: d,
            data_date: d,
            snapshot: 1,
            metrics,
            metrics_by_tenant: BTreeMap::from([
                ("a".to_string(), serde_json::json!({"model": {"reliability": [{"count": 100}]}})),
                ("b".to_string(), serde_json::json!({"model": {"reliability": [{"count": 200}]}})),
            ]),
        }
    }

    #[test]
    fn a_tenant_sees_its_own_figures_and_the_pool_only_from_five_tenants() {
        let four = info(Some(MIN_TENANTS - 1));
        assert_eq!(
            four.metrics_for("a"),
            serde_json::json!({"tenant": {"model": {"reliability": [{"count": 100}]}}, "pooled": null,
                               "contributing_tenants": 4, "min_tenants": 5})
        );
        assert_eq!(four.metrics_for("b")["tenant"]["model"]["reliability"][0]["count"], 200);
        // A tenant without figures of its own (it had no data at training) gets none, not another's.
        assert_eq!(four.metrics_for("c")["tenant"], serde_json::Value::Null);
        let five = info(Some(MIN_TENANTS));
        let a = five.metrics_for("a");
        assert_eq!(a["pooled"], five.metrics);
        assert_eq!(a["pooled"]["model"]["reliability"][0]["count"], 300);
        assert!(!a.to_string().contains("200"), "no figure of tenant b: {a}");
        // A version that does not say how many tenants contributed is never pooled.
        let unknown = info(None).metrics_for("a");
        assert_eq!(
            (unknown["pooled"].clone(), unknown["contributing_tenants"].clone()),
            (serde_json::Value::Null, serde_json::Value::Null)
        );
    }

    #[test]
    fn contributing_tenants_is_the_fewest_of_any_part_with_data() {
        let parts: Vec<Vec<&str>> = vec![vec!["a", "b", "a", "c"], vec![], vec!["b", "c"], vec!["a", "b", "c", "d"]];
        assert_eq!(contributing_tenants(parts.iter().map(|p| p.iter().copied())), 2);
        assert_eq!(contributing_tenants(Vec::<Vec<&str>>::new()), 0);
    }
}
