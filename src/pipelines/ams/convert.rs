//! A source system's way of writing dates, timestamps, amounts and rates,
//! turned into the contract's (`YYYY-MM-DD`, RFC 3339, plain decimals).
//! Amounts are parsed exactly with rust_decimal from their text; nothing
//! here touches a binary float.

use std::str::FromStr;

use chrono::{DateTime, NaiveDate, NaiveDateTime, SecondsFormat, Utc};
use rust_decimal::Decimal;

/// A date written in one of `formats` (chrono `strftime` patterns; a
/// pattern with a time of day takes the date part), or as RFC 3339 (the
/// date in the timestamp's own offset).
pub fn date(raw: &str, formats: &[String]) -> Option<NaiveDate> {
    let raw = raw.trim();
    for f in formats {
        if let Ok(dt) = NaiveDateTime::parse_from_str(raw, f) {
            return Some(dt.date());
        }
        if let Ok(d) = NaiveDate::parse_from_str(raw, f) {
            return Some(d);
        }
    }
    DateTime::parse_from_rfc3339(raw).ok().map(|t| t.date_naive())
}

/// An instant: RFC 3339, or one of `formats` read as UTC (a date alone is
/// its midnight), as the contract's `occurred_at` text.
pub fn timestamp(raw: &str, formats: &[String]) -> Option<String> {
    let raw = raw.trim();
    let utc = DateTime::parse_from_rfc3339(raw).map(|t| t.with_timezone(&Utc)).ok().or_else(|| {
        formats.iter().find_map(|f| {
            NaiveDateTime::parse_from_str(raw, f)
                .ok()
                .or_else(|| NaiveDate::parse_from_str(raw, f).ok().and_then(|d| d.and_hms_opt(0, 0, 0)))
                .map(|n| n.and_utc())
        })
    })?;
    Some(utc.to_rfc3339_opts(SecondsFormat::Millis, true))
}

/// An amount as agency systems write it: a JSON number's literal, or text
/// with an optional `$`, thousands separators in groups of three, and a
/// minus sign or accounting parentheses (`"$1,234.50"`, `"(35.00)"`,
/// `"-$12"`). Anything else (exponents, other currencies, `1.234,50`) is
/// refused rather than guessed at.
pub fn money(raw: &str) -> Option<Decimal> {
    let mut s = raw.trim();
    let mut negative = false;
    if let Some(inner) = s.strip_prefix('(').and_then(|r| r.strip_suffix(')')) {
        negative = true;
        s = inner.trim();
    }
    if let Some(rest) = s.strip_prefix('-') {
        if negative {
            return None;
        }
        negative = true;
        s = rest.trim_start();
    }
    s = s.strip_prefix('$').unwrap_or(s);
    if let Some(rest) = s.strip_prefix('-') {
        if negative {
            return None;
        }
        negative = true;
        s = rest;
    }
    let (int, frac) = match s.split_once('.') {
        Some((i, f)) => (i, Some(f)),
        None => (s, None),
    };
    let digits = if int.contains(',') {
        let groups: Vec<&str> = int.split(',').collect();
        let first_ok = (1..=3).contains(&groups[0].len());
        if !first_ok || groups[1..].iter().any(|g| g.len() != 3) {
            return None;
        }
        groups.concat()
    } else {
        int.to_string()
    };
    let all_digits = |t: &str| t.bytes().all(|b| b.is_ascii_digit());
    if digits.is_empty() || !all_digits(&digits) || frac.is_some_and(|f| f.is_empty() || !all_digits(f)) {
        return None;
    }
    let text = match frac {
        Some(f) => format!("{}{digits}.{f}", if negative { "-" } else { "" }),
        None => format!("{}{digits}", if negative { "-" } else { "" }),
    };
    Decimal::from_str_exact(&text).ok()
}

/// A rate as a decimal fraction; `percent` (or a trailing `%`) reads
/// `12.5` as 12.5 % = `0.125`.
pub fn rate(raw: &str, percent: bool) -> Option<Decimal> {
    let s = raw.trim();
    let (s, percent) = match s.strip_suffix('%') {
        Some(r) => (r.trim_end(), true),
        None => (s, percent),
    };
    if s.contains(['e', 'E']) {
        return None;
    }
    let d = Decimal::from_str(s).ok()?;
    if percent { d.checked_div(Decimal::ONE_HUNDRED) } else { Some(d) }
}

/// A decimal in the contract's plain form. Trailing zeros past `scale`
/// digits are dropped (`1234.500` is the amount 1234.50); a value that
/// truly has more digits keeps them, for the contract to refuse by name.
pub fn plain(d: Decimal, scale: u32) -> String {
    if d.scale() > scale { d.normalize().to_string() } else { d.to_string() }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fmts(f: &[&str]) -> Vec<String> {
        f.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn dates_in_the_sources_formats() {
        let us = fmts(&["%m/%d/%Y"]);
        assert_eq!(date("03/01/2025", &us), NaiveDate::from_ymd_opt(2025, 3, 1));
        assert_eq!(date(" 3/1/2025 ", &us), NaiveDate::from_ymd_opt(2025, 3, 1));
        assert_eq!(date("13/01/2025", &us), None);
        assert_eq!(date("2025-03-01", &us), None);
        // A timestamp pattern gives its date; RFC 3339 always works.
        let hs = fmts(&["%Y-%m-%dT%H:%M:%S"]);
        assert_eq!(date("2025-06-10T00:00:00", &hs), NaiveDate::from_ymd_opt(2025, 6, 10));
        assert_eq!(date("2025-06-10T23:30:00-05:00", &[]), NaiveDate::from_ymd_opt(2025, 6, 10));
        assert_eq!(date("02/30/2025", &us), None);
    }

    #[test]
    fn timestamps_are_utc_rfc3339() {
        let f = fmts(&["%Y-%m-%d %H:%M:%S", "%m/%d/%Y"]);
        assert_eq!(timestamp("2025-06-03 14:22:10", &f).as_deref(), Some("2025-06-03T14:22:10.000Z"));
        assert_eq!(timestamp("06/03/2025", &f).as_deref(), Some("2025-06-03T00:00:00.000Z"));
        assert_eq!(timestamp("2025-06-03T16:22:10+02:00", &[]).as_deref(), Some("2025-06-03T14:22:10.000Z"));
        assert_eq!(timestamp("yesterday", &f), None);
    }

    #[test]
    fn money_is_exact_in_every_accepted_form() {
        let m = |s: &str| money(s).map(|d| d.to_string());
        assert_eq!(m("$1,234.50").as_deref(), Some("1234.50"));
        assert_eq!(m("1234.5").as_deref(), Some("1234.5"));
        assert_eq!(m("812").as_deref(), Some("812"));
        assert_eq!(m("(35.00)").as_deref(), Some("-35.00"));
        assert_eq!(m("-$12.10").as_deref(), Some("-12.10"));
        assert_eq!(m("$-12.10").as_deref(), Some("-12.10"));
        assert_eq!(m("$1,000,000.01").as_deref(), Some("1000000.01"));
        // A value no float holds exactly comes through digit for digit.
        assert_eq!(m("0.10000000000000000555").as_deref(), Some("0.10000000000000000555"));
        for bad in ["", "$", "1,23.00", "12,3456", "1.2e3", "€12", "1.234,50", "--1", "(-1)", "1.", "abc", "1 000"] {
            assert_eq!(money(bad), None, "{bad:?} accepted");
        }
    }

    #[test]
    fn rates_and_percentages() {
        let r = |s: &str, p: bool| rate(s, p).map(|d| plain(d, 6));
        assert_eq!(r("0.125", false).as_deref(), Some("0.125"));
        assert_eq!(r("12", true).as_deref(), Some("0.12"));
        assert_eq!(r("12.5%", false).as_deref(), Some("0.125"));
        assert_eq!(r("40", true).as_deref(), Some("0.40"));
        assert_eq!(r("1e-1", false), None);
        assert_eq!(r("twelve", true), None);
    }

    #[test]
    fn plain_text_keeps_real_precision() {
        assert_eq!(plain(money("1234.500").unwrap(), 2), "1234.5");
        assert_eq!(plain(money("12.345").unwrap(), 2), "12.345");
        assert_eq!(plain(money("10.00").unwrap(), 2), "10.00");
    }
}
