//! Streaming events of the data contract (`<noun>.upserted`,
//! `policy.cancelled`): checked for the caller's tenant before they are
//! logged, with the batch pipeline's reject codes, and kept in the
//! write-ahead log in a normalised form ([`LoggedEvent`]).

use std::borrow::Cow;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::contract::row::{Reject, RowParser};
use crate::contract::values::parse_date;
use crate::contract::{Entity, RejectCode};

use super::source::{self, MAX_COLUMNS};

pub const CANCELLED: &str = "policy.cancelled";

/// What an event does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    /// `<noun>.upserted`: `data` is one row of the entity.
    Upserted(Entity),
    /// `policy.cancelled`: `data` is `policy_id` and `cancellation_date`.
    Cancelled,
}

impl EventKind {
    pub fn parse(name: &str) -> Option<Self> {
        if name == CANCELLED {
            return Some(EventKind::Cancelled);
        }
        let noun = name.strip_suffix(".upserted")?;
        Entity::ALL.into_iter().find(|e| e.event_noun() == noun).map(EventKind::Upserted)
    }

    /// The entity whose rows the event changes.
    pub fn entity(self) -> Entity {
        match self {
            EventKind::Upserted(e) => e,
            EventKind::Cancelled => Entity::Policies,
        }
    }

    fn names() -> String {
        let mut n: Vec<String> = Entity::ALL.iter().map(|e| format!("{}.upserted", e.event_noun())).collect();
        n.push(CANCELLED.to_string());
        n.join("|")
    }
}

/// An accepted event as the log keeps it: the tenant filled in from the
/// credential, `occurred_at` in UTC to the millisecond.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LoggedEvent {
    pub event_id: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub tenant_id: String,
    pub occurred_at: String,
    /// `occurred_at` as milliseconds since the epoch: the order of events
    /// for one key (the latest wins).
    pub at_ms: i64,
    /// The row (upserts, with `tenant_id`) or the cancellation.
    pub data: Box<RawValue>,
    /// An upsert's key hash (hex), computed when it was checked, so that
    /// the writer need not parse the row again to order it by key. Absent
    /// in cancellations (and in logs written before it existed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
}

impl LoggedEvent {
    pub fn kind(&self) -> EventKind {
        EventKind::parse(&self.kind).expect("logged events have a known type")
    }
}

/// The envelope as sent; every field optional so that a missing one is
/// named in the reject rather than failing the parse.
#[derive(Deserialize)]
struct Envelope {
    event_id: Option<String>,
    tenant_id: Option<String>,
    #[serde(rename = "type")]
    kind: Option<String>,
    occurred_at: Option<String>,
    data: Option<Box<RawValue>>,
}

/// Why an event was refused, and its id when it could be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventReject {
    pub event_id: Option<String>,
    pub reject: Reject,
}

/// Checks events for one tenant.
pub struct EventChecker {
    parsers: Vec<RowParser>,
    /// Each entity's column names, in `Entity::ALL` order.
    names: Vec<Vec<&'static str>>,
}

impl Default for EventChecker {
    fn default() -> Self {
        EventChecker {
            parsers: Entity::ALL.into_iter().map(RowParser::new).collect(),
            names: Entity::ALL.into_iter().map(|e| e.columns().iter().map(|c| c.name).collect()).collect(),
        }
    }
}

fn reject(code: RejectCode, message: impl Into<String>) -> Reject {
    Reject::new(code, message)
}

impl EventChecker {
    pub fn parser(&self, entity: Entity) -> &RowParser {
        &self.parsers[Entity::ALL.iter().position(|e| *e == entity).expect("every entity has a parser")]
    }

    /// Check one event (one JSON object) sent with a credential of `tenant`.
    pub fn check(&self, text: &str, tenant: &str) -> Result<LoggedEvent, EventReject> {
        let env: Envelope = serde_json::from_str(text).map_err(|e| EventReject {
            event_id: None,
            reject: reject(RejectCode::MalformedRecord, format!("not an event object: {e}")),
        })?;
        let event_id = env.event_id.clone().filter(|id| !id.trim().is_empty());
        let refuse = |r: Reject| EventReject { event_id: event_id.clone(), reject: r };
        let id = event_id.clone().ok_or_else(|| refuse(reject(RejectCode::MissingValue, "event_id is required")))?;
        if id.len() > 200 {
            return Err(refuse(reject(RejectCode::MalformedRecord, "event_id is longer than 200 characters")));
        }
        if let Some(t) = env.tenant_id.as_deref().filter(|t| *t != tenant) {
            let why = format!("the event names tenant '{t}', not the credential's");
            return Err(refuse(reject(RejectCode::TenantMismatch, why)));
        }
        let name = env.kind.ok_or_else(|| refuse(reject(RejectCode::MissingValue, "type is required")))?;
        let kind = EventKind::parse(&name).ok_or_else(|| {
            refuse(reject(RejectCode::InvalidEnum, format!("type '{name}' is not one of {}", EventKind::names())))
        })?;
        let at = env.occurred_at.ok_or_else(|| refuse(reject(RejectCode::MissingValue, "occurred_at is required")))?;
        let at = DateTime::parse_from_rfc3339(at.trim()).map_err(|_| {
            refuse(reject(RejectCode::InvalidDate, format!("occurred_at '{at}' is not an RFC 3339 timestamp")))
        })?;
        let at = at.with_timezone(&Utc);
        let data = env.data.ok_or_else(|| refuse(reject(RejectCode::MissingValue, "data is required")))?;
        // Only the fields the event type defines are kept: an unknown field
        // could hold a nested value with line breaks in its raw text, which
        // would split the event's line in the log.
        let names: &[&str] = match kind {
            EventKind::Upserted(entity) => self.names(entity),
            EventKind::Cancelled => &CANCELLATION_FIELDS,
        };
        let fields = source::json_fields(data.get(), |k| names.iter().position(|n| *n == k))
            .map_err(|_| refuse(reject(RejectCode::MalformedRecord, "data must be a JSON object")))?;
        // Every field list starts with the tenant.
        match fields[0].map(|v| serde_json::from_str::<String>(v.get())) {
            Some(Ok(t)) if t != tenant => {
                let why = format!("data names tenant '{t}', not the credential's");
                return Err(refuse(reject(RejectCode::TenantMismatch, why)));
            }
            Some(Err(_)) if fields[0].is_some_and(|v| v.get() != "null") => {
                return Err(refuse(reject(RejectCode::MalformedRecord, "tenant_id must be a string")));
            }
            _ => {}
        }
        let mut cells: [Option<Cow<str>>; MAX_COLUMNS] = Default::default();
        for (i, name) in names.iter().enumerate().skip(1) {
            cells[i] =
                source::json_cell(name, fields[i]).map_err(|why| refuse(reject(RejectCode::MalformedRecord, why)))?;
        }
        cells[0] = Some(Cow::Borrowed(tenant));
        // The row as logged: the defined fields present, the tenant the
        // credential's (the kept ones are scalars: checked just above).
        let tenant_json = serde_json::to_string(tenant).expect("a string serialises");
        let mut row = String::with_capacity(data.get().len() + tenant_json.len() + 16);
        row.push_str("{\"tenant_id\":");
        row.push_str(&tenant_json);
        for (i, name) in names.iter().enumerate().skip(1) {
            if let Some(v) = fields[i] {
                row.push_str(",\"");
                row.push_str(name);
                row.push_str("\":");
                row.push_str(v.get());
            }
        }
        row.push('}');
        let data = RawValue::from_string(row).expect("raw values of a JSON object, rejoined, are JSON");
        let mut key = None;
        match kind {
            EventKind::Upserted(entity) => {
                let cells: Vec<Option<&str>> = cells[..names.len()].iter().map(|c| c.as_deref()).collect();
                key = Some(format!("{:032x}", self.key_of(entity, &cells).map_err(refuse)?));
            }
            EventKind::Cancelled => {
                let policy = cells[1].as_deref().map(str::trim).filter(|p| !p.is_empty());
                policy.ok_or_else(|| refuse(reject(RejectCode::MissingValue, "policy_id is required")))?;
                let date = cells[2]
                    .as_deref()
                    .ok_or_else(|| refuse(reject(RejectCode::MissingValue, "cancellation_date is required")))?;
                if parse_date(date.trim()).is_none() {
                    let why = format!("cancellation_date: '{date}' is not a date YYYY-MM-DD");
                    return Err(refuse(reject(RejectCode::InvalidDate, why)));
                }
            }
        }
        Ok(LoggedEvent {
            event_id: id,
            kind: name,
            tenant_id: tenant.to_string(),
            occurred_at: at.to_rfc3339_opts(SecondsFormat::Millis, true),
            at_ms: at.timestamp_millis(),
            data,
            key,
        })
    }

    /// Validate a row as the batch pipeline does: the same rules and codes.
    /// Its key hash (the identity the latest event wins for).
    pub fn check_row(&self, entity: Entity, row: &str) -> Result<u128, Reject> {
        let owned = source::json_cells(row, entity).map_err(|(why, _)| reject(RejectCode::MalformedRecord, why))?;
        let cells: Vec<Option<&str>> = owned.iter().map(|c| c.as_deref()).collect();
        self.key_of(entity, &cells)
    }

    /// The key hash of a row given as one cell per column, once it passes
    /// the batch pipeline's rules.
    fn key_of(&self, entity: Entity, cells: &[Option<&str>]) -> Result<u128, Reject> {
        let parser = self.parser(entity);
        let mut values = Vec::with_capacity(MAX_COLUMNS);
        parser.parse(cells, &mut values)?;
        Ok(parser.key_hash(&values, &mut Vec::with_capacity(64)))
    }

    /// The column names of `entity`, tenant first.
    fn names(&self, entity: Entity) -> &[&'static str] {
        &self.names[Entity::ALL.iter().position(|e| *e == entity).expect("every entity has names")]
    }
}

/// The fields of a `policy.cancelled` event's data, tenant first.
const CANCELLATION_FIELDS: [&str; 3] = ["tenant_id", "policy_id", "cancellation_date"];

/// The events of a request body: one JSON object, or NDJSON (one object
/// per line; blank lines skipped).
pub fn split_body(body: &str) -> Vec<&str> {
    let trimmed = body.trim();
    if trimmed.starts_with('{') && serde_json::from_str::<&RawValue>(trimmed).is_ok() {
        return vec![trimmed];
    }
    trimmed.lines().map(str::trim).filter(|l| !l.is_empty()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(extra: &str) -> String {
        format!(
            r#"{{"event_id":"e1","type":"policy.upserted","occurred_at":"2026-03-01T10:00:00+01:00","data":{{"policy_id":"P1","policy_number":"N-1","agency_id":"G1","agent_id":"A1","carrier_id":"C1","customer_id":"K1","line_of_business":"auto","effective_date":"2026-03-01","expiration_date":"2027-03-01","premium":"1200.10","status":"active"{extra}}}}}"#
        )
    }

    #[test]
    fn an_upsert_is_normalised_with_the_credential_tenant() {
        let c = EventChecker::default();
        let e = c.check(&policy(""), "t1").unwrap();
        assert_eq!(e.event_id, "e1");
        assert_eq!(e.kind(), EventKind::Upserted(Entity::Policies));
        assert_eq!(e.occurred_at, "2026-03-01T09:00:00.000Z");
        assert_eq!(e.at_ms, 1_772_355_600_000);
        let data: serde_json::Value = serde_json::from_str(e.data.get()).unwrap();
        assert_eq!(data["tenant_id"], "t1");
        // Money keeps its literal text: never a float.
        assert!(e.data.get().contains(r#""premium":"1200.10""#));
        // The same tenant named explicitly is fine; another is refused.
        assert!(c.check(&policy(r#","tenant_id":"t1""#), "t1").is_ok());
        let r = c.check(&policy(r#","tenant_id":"t2""#), "t1").unwrap_err();
        assert_eq!((r.event_id.as_deref(), r.reject.code), (Some("e1"), RejectCode::TenantMismatch));
    }

    #[test]
    fn rejects_use_the_batch_codes_and_name_the_field() {
        let c = EventChecker::default();
        let bad = |text: &str| c.check(text, "t1").unwrap_err().reject;
        let r = bad(&policy("").replace(r#""premium":"1200.10""#, r#""premium":"12.345""#));
        assert_eq!(
            (r.code, r.message.as_str()),
            (RejectCode::MoneyPrecision, "premium: '12.345' has more than 2 fraction digits")
        );
        let r = bad(&policy("").replace(r#""policy_number":"N-1","#, ""));
        assert_eq!((r.code, r.message.as_str()), (RejectCode::MissingValue, "policy_number is required"));
        assert_eq!(bad(&policy("").replace("policy.upserted", "policy.deleted")).code, RejectCode::InvalidEnum);
        assert_eq!(bad(&policy("").replace("2026-03-01T10:00:00+01:00", "yesterday")).code, RejectCode::InvalidDate);
        assert_eq!(bad(&policy("").replace(r#""event_id":"e1","#, "")).code, RejectCode::MissingValue);
        assert_eq!(bad("[1,2]").code, RejectCode::MalformedRecord);
        let cancel = |data: &str| {
            format!(
                r#"{{"event_id":"e2","type":"policy.cancelled","occurred_at":"2026-03-02T00:00:00Z","data":{data}}}"#
            )
        };
        assert!(c.check(&cancel(r#"{"policy_id":"P1","cancellation_date":"2026-03-02"}"#), "t1").is_ok());
        assert_eq!(
            bad(&cancel(r#"{"policy_id":"P1","cancellation_date":"03/02/2026"}"#)).code,
            RejectCode::InvalidDate
        );
        assert_eq!(bad(&cancel(r#"{"cancellation_date":"2026-03-02"}"#)).code, RejectCode::MissingValue);
    }

    #[test]
    fn a_logged_event_is_one_line_whatever_the_client_sent() {
        let c = EventChecker::default();
        let text = policy(",\"extra\": [1,\n 2], \"notes\": {\"a\":\n 1}");
        let e = c.check(&text, "t1").unwrap();
        let line = serde_json::to_string(&e).unwrap();
        assert!(!line.contains('\n'), "{line}");
        assert!(!e.data.get().contains("extra"));
        let nested = policy("").replace(r#""status":"active""#, "\"status\": {\"a\": 1}");
        assert_eq!(c.check(&nested, "t1").unwrap_err().reject.code, RejectCode::MalformedRecord);
    }

    #[test]
    fn a_body_is_one_event_or_ndjson() {
        assert_eq!(split_body("  {\n \"a\": 1\n}\n"), vec!["{\n \"a\": 1\n}"]);
        assert_eq!(split_body("{\"a\":1}\n\n{\"a\":2}\n"), vec!["{\"a\":1}", "{\"a\":2}"]);
        assert_eq!(
            EventKind::parse("commission_schedule.upserted"),
            Some(EventKind::Upserted(Entity::CommissionSchedules))
        );
        assert_eq!(EventKind::parse("policies.upserted"), None);
    }
}
