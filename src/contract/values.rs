//! Parsing one cell of the contract: money, rates, dates, months, enums.
//! Money and rates are parsed digit by digit into an integer mantissa, so no
//! value ever passes through a binary float, and anything that is not a plain
//! decimal string (exponent form, thousands separators, currency signs) is
//! refused rather than guessed at.

use chrono::{Datelike, NaiveDate};
use rust_decimal::Decimal;

use super::{Kind, MONEY_SCALE, RATE_SCALE, RejectCode};

/// A parsed, typed cell, borrowing text from the record it came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Value<'a> {
    Null,
    Str(&'a str),
    /// Days since 1970-01-01 (Arrow Date32).
    Date(i32),
    /// Mantissa at the column's fixed scale (Arrow Decimal128).
    Decimal(i128),
}

/// Days from 0001-01-01 (chrono's day 1) to 1970-01-01.
const UNIX_EPOCH_DAYS_FROM_CE: i32 = 719_163;

pub fn date_to_days(d: NaiveDate) -> i32 {
    d.num_days_from_ce() - UNIX_EPOCH_DAYS_FROM_CE
}

pub fn days_to_date(days: i32) -> NaiveDate {
    NaiveDate::from_num_days_from_ce_opt(days + UNIX_EPOCH_DAYS_FROM_CE).expect("date in range")
}

/// `YYYY-MM-DD`, exactly.
pub fn parse_date(s: &str) -> Option<NaiveDate> {
    let b = s.as_bytes();
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let y = digits(&b[0..4])?;
    let m = digits(&b[5..7])?;
    let d = digits(&b[8..10])?;
    NaiveDate::from_ymd_opt(y as i32, m, d)
}

/// `YYYY-MM`, exactly.
pub fn parse_month(s: &str) -> Option<(i32, u32)> {
    let b = s.as_bytes();
    if b.len() != 7 || b[4] != b'-' {
        return None;
    }
    let y = digits(&b[0..4])? as i32;
    let m = digits(&b[5..7])?;
    (1..=12).contains(&m).then_some((y, m))
}

fn digits(b: &[u8]) -> Option<u32> {
    let mut n = 0u32;
    for &c in b {
        if !c.is_ascii_digit() {
            return None;
        }
        n = n * 10 + (c - b'0') as u32;
    }
    Some(n)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DecimalError {
    /// Not a plain decimal string.
    Syntax,
    /// Exponent form such as `1.2e3`.
    Exponent,
    /// More fraction digits than allowed.
    TooManyFractionDigits,
    /// Too large for the stored precision.
    Overflow,
}

/// Parse a plain decimal string (`-35.5`, `1200.00`, `+7`) into its mantissa
/// at `scale` fraction digits. At most `scale` fraction digits are accepted.
pub fn parse_decimal(s: &str, scale: u32, max_digits: u32) -> Result<i128, DecimalError> {
    let b = s.as_bytes();
    let (neg, rest) = match b.first() {
        Some(b'-') => (true, &b[1..]),
        Some(b'+') => (false, &b[1..]),
        _ => (false, b),
    };
    if rest.is_empty() {
        return Err(DecimalError::Syntax);
    }
    // Significant integer digits (leading zeros do not count).
    let mut int_digits = 0u32;
    let mut frac_digits = 0u32;
    let mut any_digit = false;
    let mut seen_point = false;
    let mut mantissa: i128 = 0;
    for &c in rest {
        match c {
            b'0'..=b'9' => {
                any_digit = true;
                if seen_point {
                    frac_digits += 1;
                    if frac_digits > scale {
                        return Err(DecimalError::TooManyFractionDigits);
                    }
                } else if mantissa != 0 || c != b'0' {
                    int_digits += 1;
                    if int_digits > max_digits - scale {
                        return Err(DecimalError::Overflow);
                    }
                }
                mantissa = mantissa * 10 + (c - b'0') as i128;
            }
            b'.' if !seen_point => seen_point = true,
            b'e' | b'E' => return Err(DecimalError::Exponent),
            _ => return Err(DecimalError::Syntax),
        }
    }
    if !any_digit {
        return Err(DecimalError::Syntax);
    }
    mantissa *= 10i128.pow(scale - frac_digits);
    Ok(if neg { -mantissa } else { mantissa })
}

/// Money as a rust_decimal value (2 fraction digits), for code that works
/// with typed amounts rather than Arrow columns.
pub fn parse_money(s: &str) -> Result<Decimal, DecimalError> {
    let m = parse_decimal(s.trim(), MONEY_SCALE as u32, 18)?;
    Ok(Decimal::from_i128_with_scale(m, MONEY_SCALE as u32))
}

/// Parse one cell by its kind. `raw` is already trimmed and non-empty.
/// Errors carry the reject code and a message naming the problem, not the
/// column (the caller adds it).
pub fn parse_cell<'a>(kind: Kind, raw: &'a str) -> Result<Value<'a>, (RejectCode, String)> {
    match kind {
        Kind::Text | Kind::OpenEnum => Ok(Value::Str(raw)),
        Kind::TenantId => {
            super::check_tenant_id(raw).map(|()| Value::Str(raw)).map_err(|why| (RejectCode::InvalidTenantId, why))
        }
        Kind::Enum(allowed) => allowed
            .iter()
            .find(|a| a.eq_ignore_ascii_case(raw))
            .map(|a| Value::Str(a))
            .ok_or_else(|| (RejectCode::InvalidEnum, format!("'{raw}' is not one of {}", allowed.join("|")))),
        Kind::Date => parse_date(raw)
            .map(|d| Value::Date(date_to_days(d)))
            .ok_or_else(|| (RejectCode::InvalidDate, format!("'{raw}' is not a date YYYY-MM-DD"))),
        Kind::Month => parse_month(raw)
            .map(|_| Value::Str(raw))
            .ok_or_else(|| (RejectCode::InvalidDate, format!("'{raw}' is not a month YYYY-MM"))),
        Kind::Money => parse_decimal(raw, MONEY_SCALE as u32, 18).map(Value::Decimal).map_err(|e| match e {
            DecimalError::TooManyFractionDigits => {
                (RejectCode::MoneyPrecision, format!("'{raw}' has more than 2 fraction digits"))
            }
            DecimalError::Exponent => (RejectCode::InvalidMoney, format!("'{raw}' is in exponent form")),
            DecimalError::Overflow => (RejectCode::InvalidMoney, format!("'{raw}' is too large")),
            DecimalError::Syntax => (RejectCode::InvalidMoney, format!("'{raw}' is not a decimal amount")),
        }),
        Kind::Rate => parse_decimal(raw, RATE_SCALE as u32, 12).map(Value::Decimal).map_err(|e| {
            let why = match e {
                DecimalError::TooManyFractionDigits => "has more than 6 fraction digits",
                DecimalError::Exponent => "is in exponent form",
                DecimalError::Overflow => "is too large",
                DecimalError::Syntax => "is not a decimal fraction",
            };
            (RejectCode::InvalidRate, format!("'{raw}' {why}"))
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn money_is_exact_and_strict() {
        assert_eq!(parse_decimal("1200.00", 2, 18), Ok(120000));
        assert_eq!(parse_decimal("-35.5", 2, 18), Ok(-3550));
        assert_eq!(parse_decimal("+7", 2, 18), Ok(700));
        assert_eq!(parse_decimal("0.01", 2, 18), Ok(1));
        assert_eq!(parse_decimal("10.005", 2, 18), Err(DecimalError::TooManyFractionDigits));
        assert_eq!(parse_decimal("1.2e3", 2, 18), Err(DecimalError::Exponent));
        assert_eq!(parse_decimal("1E3", 2, 18), Err(DecimalError::Exponent));
        assert_eq!(parse_decimal("1,200.00", 2, 18), Err(DecimalError::Syntax));
        assert_eq!(parse_decimal("$12", 2, 18), Err(DecimalError::Syntax));
        assert_eq!(parse_decimal("1.2.3", 2, 18), Err(DecimalError::Syntax));
        assert_eq!(parse_decimal("-", 2, 18), Err(DecimalError::Syntax));
        assert_eq!(parse_decimal(".", 2, 18), Err(DecimalError::Syntax));
        assert_eq!(parse_decimal("1_000", 2, 18), Err(DecimalError::Syntax));
        assert_eq!(parse_decimal("9999999999999999.99", 2, 18), Ok(999_999_999_999_999_999));
        assert_eq!(parse_decimal("99999999999999999", 2, 18), Err(DecimalError::Overflow));
        assert_eq!(parse_decimal("000000000000000000012.5", 2, 18), Ok(1250));
        assert_eq!(parse_money("19.99").unwrap().to_string(), "19.99");
        assert_eq!(parse_money("-35.5").unwrap().to_string(), "-35.50");
    }

    #[test]
    fn rates_take_six_fraction_digits() {
        assert_eq!(parse_decimal("0.125", 6, 12), Ok(125_000));
        assert_eq!(parse_decimal("0.1234567", 6, 12), Err(DecimalError::TooManyFractionDigits));
        assert_eq!(parse_decimal("1.15", 6, 12), Ok(1_150_000));
    }

    #[test]
    fn dates_and_months() {
        assert_eq!(parse_date("2024-02-29").map(date_to_days), Some(19782));
        assert_eq!(parse_date("1970-01-01").map(date_to_days), Some(0));
        assert_eq!(days_to_date(19782), NaiveDate::from_ymd_opt(2024, 2, 29).unwrap());
        assert_eq!(parse_date("2023-02-29"), None);
        assert_eq!(parse_date("2023-13-45"), None);
        assert_eq!(parse_date("03/04/2023"), None);
        assert_eq!(parse_date("2023-1-05"), None);
        assert_eq!(parse_month("2024-07"), Some((2024, 7)));
        assert_eq!(parse_month("2024-13"), None);
    }

    #[test]
    fn cells_by_kind() {
        assert_eq!(parse_cell(Kind::Enum(&["active", "expired"]), "Active"), Ok(Value::Str("active")));
        let (code, msg) = parse_cell(Kind::Enum(&["active", "expired"]), "CANCELED?").unwrap_err();
        assert_eq!(code, RejectCode::InvalidEnum);
        assert_eq!(msg, "'CANCELED?' is not one of active|expired");
        assert_eq!(parse_cell(Kind::Money, "10.005").unwrap_err().0, RejectCode::MoneyPrecision);
        assert_eq!(parse_cell(Kind::Money, "1.2e3").unwrap_err().0, RejectCode::InvalidMoney);
        assert_eq!(parse_cell(Kind::Date, "2024-01-02"), Ok(Value::Date(19724)));
        assert_eq!(parse_cell(Kind::Rate, "0.15"), Ok(Value::Decimal(150_000)));
    }
}
