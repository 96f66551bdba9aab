//! What an agency would do about an upcoming renewal: the rules behind the
//! renewal feed's `riskLevel` and `recommendedActions`, in one place.
//!
//! Rules, in priority order (an agency's retention playbook):
//! - probability < 60 % (HIGH risk): the producer calls the customer at
//!   least 60 days before expiration;
//! - premium up 10 % or more at the last renewal: re-market the account
//!   with other carriers before the renewal offer goes out (45 days before);
//! - no other policy with the agency: cross-sell (bundled customers renew
//!   markedly more often), 30 days before;
//! - first renewal below 80 %: a coverage review, 30 days before.
//!
//! Due dates that have already passed at the scoring date become the
//! scoring date itself: do it now.

use chrono::{Duration, NaiveDate};

/// Below this probability a renewal is at high risk.
pub const HIGH_RISK_BELOW: f64 = 0.60;
/// Below this (and not high) at medium risk.
pub const MEDIUM_RISK_BELOW: f64 = 0.80;
/// A premium increase at the last renewal that calls for re-marketing.
pub const REMARKET_INCREASE: f64 = 0.10;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Risk {
    High,
    Medium,
    Low,
}

pub fn risk(probability: f64) -> Risk {
    if probability < HIGH_RISK_BELOW {
        Risk::High
    } else if probability < MEDIUM_RISK_BELOW {
        Risk::Medium
    } else {
        Risk::Low
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Action {
    /// Stable code: CONTACT_EARLY, REMARKET, CROSS_SELL, COVERAGE_REVIEW.
    pub code: &'static str,
    pub description: String,
    pub due_by: NaiveDate,
}

/// The facts of one scored renewal the rules read.
#[derive(Debug, Clone, Copy)]
pub struct Facts<'a> {
    pub probability: f64,
    pub premium_change: f64,
    pub other_policies: i64,
    pub tenure_terms: i64,
    pub line_of_business: &'a str,
    pub expiration_date: NaiveDate,
    pub as_of: NaiveDate,
}

fn pct(x: f64) -> String {
    format!("{:.0} %", x * 100.0)
}

/// What to offer a single-policy customer of `line`.
fn cross_sell_offer(line: &str) -> &'static str {
    match line {
        "auto" => "a home or renters policy",
        "home" => "auto and umbrella",
        "renters" => "auto",
        "umbrella" => "the underlying auto and home",
        "commercial_package" | "general_liability" => "commercial auto and workers' comp",
        "workers_comp" | "commercial_auto" => "a commercial package",
        "life" | "health" => "personal auto and home",
        _ => "a second line",
    }
}

pub fn recommend(f: &Facts) -> Vec<Action> {
    let due = |days_before: i64| (f.expiration_date - Duration::days(days_before)).max(f.as_of);
    let mut out = Vec::new();
    if risk(f.probability) == Risk::High {
        out.push(Action {
            code: "CONTACT_EARLY",
            description: format!(
                "Renewal probability {}: call the customer at least 60 days before expiration",
                pct(f.probability)
            ),
            due_by: due(60),
        });
    }
    if f.premium_change >= REMARKET_INCREASE {
        out.push(Action {
            code: "REMARKET",
            description: format!(
                "Premium rose {} at the last renewal: re-market with other carriers before the renewal offer",
                pct(f.premium_change)
            ),
            due_by: due(45),
        });
    }
    if f.other_policies == 0 {
        out.push(Action {
            code: "CROSS_SELL",
            description: format!(
                "Single-policy customer: quote {} (bundled customers renew more often)",
                cross_sell_offer(f.line_of_business)
            ),
            due_by: due(30),
        });
    }
    if f.tenure_terms <= 1 && f.probability < MEDIUM_RISK_BELOW {
        out.push(Action {
            code: "COVERAGE_REVIEW",
            description: "First renewal: schedule a coverage review with the customer".to_string(),
            due_by: due(30),
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }

    #[test]
    fn an_at_risk_single_line_customer_after_a_price_shock_gets_every_action() {
        let f = Facts {
            probability: 0.42,
            premium_change: 0.23,
            other_policies: 0,
            tenure_terms: 1,
            line_of_business: "auto",
            expiration_date: d("2026-03-31"),
            as_of: d("2025-12-31"),
        };
        let a = recommend(&f);
        let codes: Vec<_> = a.iter().map(|a| a.code).collect();
        assert_eq!(codes, ["CONTACT_EARLY", "REMARKET", "CROSS_SELL", "COVERAGE_REVIEW"]);
        // 2026-03-31 − 60 days = 2026-01-30; − 45 = 2026-02-14; − 30 = 2026-03-01.
        assert_eq!(
            a.iter().map(|a| a.due_by).collect::<Vec<_>>(),
            [d("2026-01-30"), d("2026-02-14"), d("2026-03-01"), d("2026-03-01")]
        );
        assert_eq!(a[0].description, "Renewal probability 42 %: call the customer at least 60 days before expiration");
        assert_eq!(
            a[1].description,
            "Premium rose 23 % at the last renewal: re-market with other carriers before the renewal offer"
        );
        assert_eq!(risk(0.42), Risk::High);
    }

    #[test]
    fn a_safe_bundled_renewal_needs_nothing_and_past_due_dates_become_today() {
        let safe = Facts {
            probability: 0.93,
            premium_change: 0.04,
            other_policies: 2,
            tenure_terms: 4,
            line_of_business: "home",
            expiration_date: d("2026-01-20"),
            as_of: d("2025-12-31"),
        };
        assert!(recommend(&safe).is_empty());
        assert_eq!(risk(0.93), Risk::Low);
        assert_eq!(risk(0.60), Risk::Medium);
        // 20 days before expiration, the 60-day call is due now.
        let late = Facts { probability: 0.5, ..safe };
        assert_eq!(
            recommend(&late),
            vec![Action {
                code: "CONTACT_EARLY",
                description: "Renewal probability 50 %: call the customer at least 60 days before expiration".into(),
                due_by: d("2025-12-31"),
            }]
        );
    }
}
