//! AMS adapters: a source system's own payloads (Applied Epic, EZLynx,
//! HawkSoft, a rater's quote-sold) mapped to contract rows by the
//! declarative mapping of `src/pipelines/mappings/<source>.toml`, and handed
//! to the streaming pipeline as its events (`<noun>.upserted`). So the
//! write-ahead log, dedup by event id, the latest `occurred_at` winning,
//! the contract's checks and reject codes are those of `POST /ingest/events`.
//!
//! A new source is a mapping file and one line in [`SOURCES`].

pub mod convert;
pub mod mapping;
pub mod path;

use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};

use serde::Serialize;
use serde_json::value::RawValue;

pub use mapping::{Adapter, MappedEvent, MappingError};

use super::stream::{Stream, StreamError};

/// Every source `POST /ingest/ams/{source}` takes: its name and its
/// mapping, embedded in the binary.
pub const SOURCES: &[(&str, &str)] = &[
    ("applied_epic", include_str!("../mappings/applied_epic.toml")),
    ("ezlynx", include_str!("../mappings/ezlynx.toml")),
    ("hawksoft", include_str!("../mappings/hawksoft.toml")),
    ("turborater", include_str!("../mappings/turborater.toml")),
];

/// The compiled mappings, checked against the contract once (at the
/// server's start; a unit test checks them at build time).
pub fn adapters() -> Result<&'static BTreeMap<&'static str, Adapter>, &'static MappingError> {
    static ADAPTERS: OnceLock<Result<BTreeMap<&'static str, Adapter>, MappingError>> = OnceLock::new();
    ADAPTERS
        .get_or_init(|| SOURCES.iter().map(|(name, text)| Ok((*name, Adapter::load(name, text)?))).collect())
        .as_ref()
}

/// The adapter of `source`, if cip has one (and the mappings load).
pub fn adapter(source: &str) -> Option<&'static Adapter> {
    adapters().ok()?.get(source)
}

/// The names of the sources, for messages: `applied_epic|ezlynx|…`.
pub fn source_names() -> String {
    SOURCES.iter().map(|(n, _)| *n).collect::<Vec<_>>().join("|")
}

/// The payloads of a request body: one JSON object, a JSON array of them,
/// or NDJSON (one per line; a line that is not JSON is refused on its own).
pub fn split_payloads(body: &str) -> Result<Vec<&str>, String> {
    let trimmed = body.trim();
    if trimmed.starts_with('[') {
        let items: Vec<&RawValue> = serde_json::from_str(trimmed)
            .map_err(|e| format!("the body starts with '[' but is not a JSON array of payloads: {e}"))?;
        return Ok(items.into_iter().map(RawValue::get).collect());
    }
    if trimmed.starts_with('{') && serde_json::from_str::<&RawValue>(trimmed).is_ok() {
        return Ok(vec![trimmed]);
    }
    Ok(trimmed.lines().map(str::trim).filter(|l| !l.is_empty()).collect())
}

/// One row's outcome (or a refused payload's), in payload order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PayloadOutcome {
    /// The payload's position in the request (0-based).
    pub payload: usize,
    /// The row's contract entity; absent when the payload was refused whole.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub entity: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub event_id: Option<String>,
    /// `accepted`, `duplicate` or `rejected`.
    pub status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// The answer to one request: the shape of `POST /ingest/events`'s, its
/// results naming their payload.
#[derive(Debug, Clone, Serialize)]
pub struct AmsAccepted {
    pub source: String,
    pub payloads: usize,
    pub accepted: usize,
    pub duplicates: usize,
    pub rejected: usize,
    /// The log sequence holding the accepted rows, when any.
    pub sequence: Option<u64>,
    pub results: Vec<PayloadOutcome>,
}

/// Map every payload of `body` with `adapter` and hand the rows to
/// `stream` for `tenant`, as one request of `POST /ingest/events`. Returns
/// once the accepted rows are durable.
pub async fn ingest(
    stream: &Arc<Stream>,
    adapter: &'static Adapter,
    tenant: &str,
    payloads: Vec<String>,
) -> Result<AmsAccepted, StreamError> {
    // Mapping a large batch is CPU work: off the async threads.
    let count = payloads.len();
    let mapped = tokio::task::spawn_blocking(move || payloads.iter().map(|p| adapter.map(p)).collect::<Vec<_>>())
        .await
        .map_err(|e| StreamError::LogWrite(format!("mapping payloads: {e}")))?;
    let mut lines = Vec::new();
    // For each event line: its payload and entity.
    let mut origin = Vec::new();
    let mut refused = Vec::new();
    for (payload, result) in mapped.into_iter().enumerate() {
        match result {
            Ok(events) => {
                for e in events {
                    origin.push((payload, e.entity.name()));
                    lines.push(e.line);
                }
            }
            Err(r) => refused.push(PayloadOutcome {
                payload,
                entity: None,
                event_id: None,
                status: "rejected",
                code: Some(r.code.as_str()),
                reason: Some(r.message),
            }),
        }
    }
    let (mut results, sequence) = if lines.is_empty() {
        (Vec::new(), None)
    } else {
        let accepted = stream.accept(tenant, &lines.join("\n")).await?;
        let results = accepted
            .results
            .into_iter()
            .map(|o| PayloadOutcome {
                payload: origin[o.index].0,
                entity: Some(origin[o.index].1),
                event_id: o.event_id,
                status: o.status,
                code: o.code,
                reason: o.reason,
            })
            .collect::<Vec<_>>();
        (results, accepted.sequence)
    };
    results.extend(refused);
    // Stable: a payload's rows keep their order.
    results.sort_by_key(|r| r.payload);
    let counted = |s: &str| results.iter().filter(|r| r.status == s).count();
    Ok(AmsAccepted {
        source: adapter.source().to_string(),
        payloads: count,
        accepted: counted("accepted"),
        duplicates: counted("duplicate"),
        rejected: counted("rejected"),
        sequence,
        results,
    })
}

#[cfg(test)]
mod tests;
