//! The mapping engine on the real-shaped payloads of `tests/fixtures/ams/`
//! (values worked out by hand from the fixture text) and on small
//! mapping files with one defect each.

use serde_json::{Value, json};

use super::*;
use crate::contract::RejectCode;
use crate::pipelines::events::EventChecker;

const APPLIED_EPIC: &str = include_str!("../../../tests/fixtures/ams/applied_epic.json");
const EZLYNX: &str = include_str!("../../../tests/fixtures/ams/ezlynx.json");
const HAWKSOFT: &str = include_str!("../../../tests/fixtures/ams/hawksoft.json");
const TURBORATER: &str = include_str!("../../../tests/fixtures/ams/turborater.json");

/// The `n`th payload of a fixture array, as text.
fn payload(fixture: &str, n: usize) -> String {
    split_payloads(fixture).unwrap()[n].to_string()
}

fn events(source: &str, payload: &str) -> Vec<Value> {
    let events = adapter(source).unwrap().map(payload).unwrap();
    events.iter().map(|e| serde_json::from_str(&e.line).unwrap()).collect()
}

#[test]
fn every_registered_mapping_loads_against_the_contract() {
    let all = adapters().unwrap();
    assert_eq!(all.keys().copied().collect::<Vec<_>>(), ["applied_epic", "ezlynx", "hawksoft", "turborater"]);
    assert_eq!(source_names(), "applied_epic|ezlynx|hawksoft|turborater");
    assert!(adapter("ams360").is_none());
}

#[test]
fn an_applied_epic_policy_yields_its_policy_and_its_commission() {
    let e = events("applied_epic", &payload(APPLIED_EPIC, 0));
    assert_eq!(e.len(), 2);
    assert_eq!(e[0]["event_id"], "applied_epic:policy:48213:2025-06-02T09:15:00");
    assert_eq!(e[0]["type"], "policy.upserted");
    // A timestamp without an offset is read as UTC.
    assert_eq!(e[0]["occurred_at"], "2025-06-02T09:15:00.000Z");
    assert_eq!(
        e[0]["data"],
        json!({
            "policy_id": "48213", "policy_number": "HO-2231-77", "agency_id": "G1", "agent_id": "A1",
            "carrier_id": "K1", "customer_id": "10077",
            // LineTypeCode HOME → home; StatusCode NEW → active; 06/01/2025 → ISO.
            "line_of_business": "home", "status": "active",
            "effective_date": "2025-06-01", "expiration_date": "2026-06-01",
            // "$1,234.50" read exactly.
            "premium": "1234.50",
            "source_system": "applied_epic", "external_id": "48213"
        })
    );
    assert_eq!(e[1]["event_id"], "applied_epic:commission:48213:2025-06-02T09:15:00");
    assert_eq!(
        e[1]["data"],
        json!({
            "commission_id": "48213", "policy_id": "48213", "agent_id": "A1", "carrier_id": "K1",
            "transaction_date": "2025-06-01", "kind": "new", "status": "expected",
            "premium_amount": "1234.50",
            // AgencyCommissionPercent 12 → 0.12; 1234.50 × 0.12 = 148.14 (the payload's own figure).
            "commission_rate": "0.12", "gross_commission": "148.14",
            // The producer's 59.26; the agency keeps 148.14 − 59.26 = 88.88.
            "agent_commission": "59.26", "agency_commission": "88.88"
        })
    );
    // Both rows pass the contract's own checks (gross = agent + agency, …).
    let checker = EventChecker::default();
    for ev in &e {
        checker.check(&ev.to_string(), "t1").unwrap();
    }
}

#[test]
fn a_missing_required_field_is_named_with_its_column() {
    let a = adapter("applied_epic").unwrap();
    let r = a.map(&payload(APPLIED_EPIC, 1)).unwrap_err();
    assert_eq!(r.code, RejectCode::MissingValue);
    assert_eq!(r.message, "missing required field Policy.EffectiveDate (policies.effective_date)");
    // An array index past the end is missing too.
    let no_producer = payload(APPLIED_EPIC, 0).replace(r#""LookupCode": "A1", "#, "");
    let r = a.map(&no_producer).unwrap_err();
    assert_eq!(
        r.message,
        "missing required field Policy.ProducerBrokerCommissionsValue.Commissions[0].LookupCode (policies.agent_id)"
    );
    // The event id's fields are required as well.
    let r = a.map(&payload(APPLIED_EPIC, 0).replace(r#""Timestamp": "2025-06-02T09:15:00","#, "")).unwrap_err();
    assert_eq!(r.message, "missing required field Policy.Timestamp (the event id)");
}

#[test]
fn unreadable_dates_and_amounts_get_the_batch_codes_and_the_field() {
    let a = adapter("applied_epic").unwrap();
    let bad_date = payload(APPLIED_EPIC, 0).replace("06/01/2026", "2026-13-01");
    let r = a.map(&bad_date).unwrap_err();
    assert_eq!(
        (r.code, r.message.as_str()),
        (
            RejectCode::InvalidDate,
            "Policy.ExpirationDate: '2026-13-01' is not a date in the form %m/%d/%Y or %Y-%m-%dT%H:%M:%S or %Y-%m-%d (policies.expiration_date)"
        )
    );
    let bad_money = payload(APPLIED_EPIC, 0).replace("$1,234.50", "1.2345e3");
    let r = a.map(&bad_money).unwrap_err();
    assert_eq!(
        (r.code, r.message.as_str()),
        (RejectCode::InvalidMoney, "Policy.EstimatedPremium: '1.2345e3' is not an amount (policies.premium)")
    );
    let nested = payload(APPLIED_EPIC, 0).replace(r#""AccountID": 10077"#, r#""AccountID": {"Id": 10077}"#);
    assert_eq!(a.map(&nested).unwrap_err().code, RejectCode::MalformedRecord);
    assert_eq!(a.map("[1, 2]").unwrap_err().code, RejectCode::MalformedRecord);
    assert_eq!(a.map("{not json").unwrap_err().code, RejectCode::MalformedRecord);
    // A status no map knows goes on as sent, for the contract to refuse by name.
    let odd = payload(APPLIED_EPIC, 0).replace(r#""StatusCode": "NEW""#, r#""StatusCode": "PND""#);
    let e = a.map(&odd).unwrap();
    let r = EventChecker::default().check(&e[0].line, "t1").unwrap_err().reject;
    assert_eq!(
        (r.code, r.message.as_str()),
        (RejectCode::InvalidEnum, "status: 'PND' is not one of active|cancelled|expired")
    );
}

#[test]
fn an_ezlynx_webhook_uses_its_event_id_and_value_maps() {
    let e = events("ezlynx", &payload(EZLYNX, 0));
    assert_eq!(e.len(), 1);
    assert_eq!(e[0]["event_id"], "ezlynx:policy:7f3c9a2e-5b1d-4e8f-a6c0-2d9e4b7a1f03");
    assert_eq!(e[0]["occurred_at"], "2025-06-16T13:45:00.000Z");
    assert_eq!(
        e[0]["data"],
        json!({
            "policy_id": "EZ-90311", "policy_number": "PA-4471902", "agency_id": "G2", "agent_id": "A3",
            "carrier_id": "K2", "customer_id": "55120",
            // "Personal Auto" → auto, "Active" → active; the number 812 as written.
            "line_of_business": "auto", "status": "active", "premium": "812",
            "effective_date": "2025-06-15", "expiration_date": "2025-12-15",
            "source_system": "ezlynx", "external_id": "90311"
        })
    );
}

#[test]
fn a_hawksoft_client_yields_one_row_per_policy() {
    let e = events("hawksoft", &payload(HAWKSOFT, 0));
    assert_eq!(e.len(), 2);
    assert_eq!(e[0]["event_id"], "hawksoft:policy:6c1e2f0a-3b7d-4c55-9a1e-0f2b3c4d5e6f:2025-06-09T17:02:11.503");
    assert_eq!(e[0]["occurred_at"], "2025-06-09T17:02:11.503Z");
    assert_eq!(
        e[0]["data"],
        json!({
            "policy_id": "6c1e2f0a-3b7d-4c55-9a1e-0f2b3c4d5e6f", "policy_number": "HM-550-1023",
            // Client-level fields through `$.`.
            "agency_id": "G1", "customer_id": "4417",
            "agent_id": "A2", "carrier_id": "K2", "line_of_business": "home", "status": "active",
            "effective_date": "2025-06-10", "expiration_date": "2026-06-10", "premium": "1500.25",
            "source_system": "hawksoft", "external_id": "HM-550-1023"
        })
    );
    // Cancelled: its StatusDate becomes the cancellation date (only then).
    assert_eq!(e[1]["data"]["status"], "cancelled");
    assert_eq!(e[1]["data"]["cancellation_date"], "2025-06-20");
    assert_eq!(e[1]["data"]["line_of_business"], "umbrella");
    assert_eq!(e[1]["data"]["premium"], "300");
    // A client without policies maps to nothing, and says so.
    let r = adapter("hawksoft").unwrap().map(r#"{"ClientNumber": 1, "Policies": []}"#).unwrap_err();
    assert_eq!(
        (r.code, r.message.as_str()),
        (RejectCode::MissingValue, "the payload holds no rows to map: expected policies (one per Policies)")
    );
}

#[test]
fn a_sold_quote_without_an_id_is_known_by_a_hash_of_its_content() {
    let text = payload(TURBORATER, 0);
    let e = events("turborater", &text);
    assert_eq!(e[0]["occurred_at"], "2025-06-03T14:22:10.000Z");
    assert_eq!(
        e[0]["data"],
        json!({
            "policy_id": "TR-Q-88123", "policy_number": "AP-20931-77", "agency_id": "G1", "agent_id": "A2",
            "carrier_id": "K1", "customer_id": "TR-C-3301", "line_of_business": "auto", "status": "active",
            "effective_date": "2025-06-05", "expiration_date": "2025-12-05", "premium": "642.00",
            "source_system": "turborater", "external_id": "Q-88123"
        })
    );
    let id = e[0]["event_id"].as_str().unwrap();
    assert!(id.starts_with("turborater:policy:") && id.len() == "turborater:policy:".len() + 32, "{id}");
    // The same quote re-sent in another layout and key order: the same id.
    let mut reordered: serde_json::Map<String, Value> = serde_json::from_str(&text).unwrap();
    let premium = reordered.remove("Premium").unwrap();
    reordered.insert("Premium".into(), premium);
    let again = events("turborater", &serde_json::to_string_pretty(&reordered).unwrap());
    assert_eq!(again[0]["event_id"], id);
    // Another premium: another event.
    let changed = events("turborater", &text.replace("$642.00", "$655.00"));
    assert_ne!(changed[0]["event_id"], id);
}

#[test]
fn a_payload_may_name_its_tenant_for_the_checker_to_compare() {
    let named = payload(EZLYNX, 0).replacen('{', r#"{"tenant_id": "t2", "#, 1);
    let e = adapter("ezlynx").unwrap().map(&named).unwrap();
    let r = EventChecker::default().check(&e[0].line, "t1").unwrap_err().reject;
    assert_eq!(r.code, RejectCode::TenantMismatch);
    assert!(EventChecker::default().check(&e[0].line, "t2").is_ok());
    let bad = payload(EZLYNX, 0).replacen('{', r#"{"tenant_id": 7, "#, 1);
    assert_eq!(adapter("ezlynx").unwrap().map(&bad).unwrap_err().code, RejectCode::MalformedRecord);
}

#[test]
fn bodies_are_one_payload_an_array_or_ndjson() {
    assert_eq!(split_payloads(" {\"a\": {\n\"b\": 1}} ").unwrap(), vec!["{\"a\": {\n\"b\": 1}}"]);
    assert_eq!(split_payloads("[{\"a\":1}, {\"a\":2}]").unwrap(), vec!["{\"a\":1}", "{\"a\":2}"]);
    assert_eq!(split_payloads("{\"a\":1}\n\n{\"a\":2}\n").unwrap(), vec!["{\"a\":1}", "{\"a\":2}"]);
    assert_eq!(split_payloads("").unwrap(), Vec::<&str>::new());
    assert!(split_payloads("[{\"a\":1},").is_err());
}

/// A small valid mapping, with `extra` appended to its policies target.
fn mapping(extra: &str) -> String {
    format!(
        r#"
source = "demo"
date_formats = ["%Y-%m-%d"]
[event]
occurred_at = "At"
[maps.status]
Live = "active"
[[targets]]
entity = "policies"
[targets.columns]
policy_id = "Id"
policy_number = "Number"
agency_id = "Agency"
agent_id = "Agent"
carrier_id = "Carrier"
customer_id = "Client"
line_of_business = "Line"
effective_date = "From"
expiration_date = "To"
premium = "Premium"
status = {{ path = "Status", map = "status" }}
{extra}
"#
    )
}

#[test]
fn mapping_files_are_checked_against_the_contract() {
    let load = |text: &str| Adapter::load("demo", text).map(|_| ()).map_err(|e| e.to_string());
    assert_eq!(load(&mapping("")), Ok(()));
    let err = |extra: &str| load(&mapping(extra)).unwrap_err();
    assert_eq!(err("colour = \"Colour\""), "mapping demo: policies.colour is not a column of the contract");
    assert_eq!(err("tenant_id = \"Tenant\""), "mapping demo: policies.tenant_id: the tenant comes from the credential");
    assert_eq!(
        err("source_system = { value = \"x\", path = \"Y\" }"),
        "mapping demo: policies.source_system: give exactly one of path, value, difference"
    );
    assert_eq!(
        err("renewal_of = { path = \"R\", map = \"nope\" }"),
        "mapping demo: policies.renewal_of: no map 'nope' in [maps]"
    );
    assert_eq!(
        err("external_id = { path = \"E\", percent = true }"),
        "mapping demo: policies.external_id: percent is for rate columns"
    );
    assert_eq!(
        err("cancellation_date = { path = \"C\", date_formats = [\"%Q\"] }"),
        "mapping demo: policies.cancellation_date: '%Q' is not a valid date pattern"
    );
    assert_eq!(
        err("cancellation_date = { value = \"someday\" }"),
        "mapping demo: policies.cancellation_date: 'someday' is not a date in the form %Y-%m-%d"
    );
    assert!(err("source_system = { path = \"S\", colour = 1 }").starts_with("mapping demo: "));
    // A required column left out, a closed set's map result outside it.
    let no_premium = mapping("").replace("premium = \"Premium\"\n", "");
    assert_eq!(load(&no_premium).unwrap_err(), "mapping demo: required column policies.premium is not mapped");
    let bad_map = mapping("").replace("Live = \"active\"", "Live = \"alive\"");
    assert_eq!(
        load(&bad_map).unwrap_err(),
        "mapping demo: map status for policies.status: 'alive' is not one of active|cancelled|expired"
    );
    assert_eq!(
        load(&mapping("").replace("source = \"demo\"", "source = \"other\"")).unwrap_err(),
        "mapping demo: source is 'other', registered as 'demo'"
    );
    let bad_entity = mapping("").replace("entity = \"policies\"", "entity = \"policy\"");
    assert_eq!(load(&bad_entity).unwrap_err(), "mapping demo: no contract entity 'policy'");
    let bad_path = mapping("").replace("policy_id = \"Id\"", "policy_id = \"Id[\"");
    assert_eq!(load(&bad_path).unwrap_err(), "mapping demo: field path 'Id[': an unclosed '['");
}

#[test]
fn differences_refer_to_mapped_money_columns() {
    let commissions = r#"
source = "demo"
date_formats = ["%Y-%m-%d"]
[event]
occurred_at = "At"
[[targets]]
entity = "commissions"
[targets.columns]
commission_id = "Id"
policy_id = "Policy"
agent_id = "Agent"
carrier_id = "Carrier"
transaction_date = "Date"
kind = { value = "new" }
premium_amount = "Premium"
commission_rate = { path = "Rate", percent = true }
gross_commission = "Gross"
agent_commission = "AgentPay"
agency_commission = { difference = ["gross_commission", "agent_commission"] }
"#;
    let a = Adapter::load("demo", commissions).unwrap();
    let payload = r#"{"Id": "C1", "Policy": "P1", "Agent": "A1", "AgentPay": "10.10", "Carrier": "K1", "Date": "2025-06-01",
        "At": "2025-06-01T00:00:00Z", "Premium": "(500.00)", "Rate": "15", "Gross": "-75.00"}"#;
    let e: Value = serde_json::from_str(&a.map(payload).unwrap()[0].line).unwrap();
    // A chargeback in accounting parentheses: −500.00 at 15 %, −75.00 gross;
    // the agency's share −75.00 − 10.10 = −85.10 (money exact, signs kept).
    assert_eq!(
        (&e["data"]["premium_amount"], &e["data"]["commission_rate"], &e["data"]["agency_commission"]),
        (&json!("-500.00"), &json!("0.15"), &json!("-85.10"))
    );
    // The event id is a hash when the mapping names no id fields.
    assert_eq!(e["event_id"].as_str().unwrap().len(), "demo:commission:".len() + 32);
    let bad = commissions.replace(r#"["gross_commission", "agent_commission"]"#, r#"["gross_commission", "kind"]"#);
    assert_eq!(
        Adapter::load("demo", &bad).unwrap_err().to_string(),
        "mapping demo: commissions.agency_commission: difference of 'kind', not a mapped money column"
    );
}
