//! Versioned model artifacts in the lake's object store:
//!
//! ```text
//! models/<name>/<version>/model.json     the fitted model (serde)
//! models/<name>/<version>/metrics.json   what its evaluation measured
//! models/<name>/<version>/card.md        the model card
//! models/<name>/<version>/info.json      written last, create-if-absent
//! ```
//!
//! `info.json` is the version's commit point, like a snapshot pointer: a
//! version without it (a crash mid-save) is invisible, and two trainers can
//! never both claim one version.

use anyhow::{Context, Result};
use chrono::{NaiveDate, Utc};
use futures::TryStreamExt;
use object_store::{ObjectStoreExt, PutMode, PutOptions};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::lake::Location;

pub const MODELS_DIR: &str = "models";

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
    pub metrics: serde_json::Value,
}

/// What to register: the artifact and its evaluation.
pub struct NewModel<'a, T: Serialize> {
    pub name: &'a str,
    pub artifact: &'a T,
    pub metrics: serde_json::Value,
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
    };
    let artifact = serde_json::to_vec(m.artifact)?;
    let metrics = serde_json::to_vec_pretty(&info.metrics)?;
    for attempt in 0..5 {
        if attempt > 0 {
            info.version = format!("{}-{attempt}", now.format("%Y%m%dT%H%M%S%3fZ"));
        }
        let d = dir(m.name, &info.version);
        lake.store.put(&lake.child(&format!("{d}/model.json")), artifact.clone().into()).await?;
        lake.store.put(&lake.child(&format!("{d}/metrics.json")), metrics.clone().into()).await?;
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
        let info: ModelInfo =
            serde_json::from_slice(&bytes).with_context(|| format!("unreadable {}", lake.relative(&m.location)))?;
        out.push(info);
    }
    out.sort_by(|a, b| a.name.cmp(&b.name).then(b.version.cmp(&a.version)));
    Ok(out)
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
            vec![second.version.clone(), first.version]
        );
        assert_eq!(latest(&lake, "m").await.unwrap().unwrap(), second);
        assert_eq!(latest(&lake, "other").await.unwrap(), None);
        let back: Vec<f64> = load(&lake, &second).await.unwrap();
        assert!(back.is_empty());
        assert_eq!(second.metrics["auc"], 0.8);
    }
}
