//! Money and rates as exact decimals: the one rounding rule of the
//! commission engine, and the conversions to and from the lake's
//! `Decimal128(18, 2)` (money) and `Decimal128(12, 6)` (rates).

use rust_decimal::{Decimal, RoundingStrategy};

use crate::contract::{MONEY_SCALE, RATE_SCALE};

/// Rounds to cents, half away from zero: 10.005 → 10.01 and −10.005 →
/// −10.01, so a chargeback rounds exactly like the commission it reverses.
/// The result always carries two fraction digits ("10.00", not "10"), and
/// zero is never negative ("-0.00" would be the negation of a zero).
pub fn round_cents(d: Decimal) -> Decimal {
    let mut r = d.round_dp_with_strategy(MONEY_SCALE as u32, RoundingStrategy::MidpointAwayFromZero);
    r.rescale(MONEY_SCALE as u32);
    if r.is_zero() {
        r.set_sign_positive(true);
    }
    r
}

/// A money amount stored as Decimal128 units at `scale` fraction digits.
pub fn from_units(units: i128, scale: i8) -> Decimal {
    Decimal::from_i128_with_scale(units, scale.max(0) as u32)
}

/// Cents of an amount (rounded to cents first, so never silently truncated).
pub fn cents(d: Decimal) -> i128 {
    round_cents(d).mantissa()
}

/// Millionths of a rate with at most 6 fraction digits; `None` when the
/// rate has more (a rate the contract does not allow).
pub fn micros(rate: Decimal) -> Option<i128> {
    let mut r = rate.normalize();
    if r.scale() > RATE_SCALE as u32 {
        return None;
    }
    r.rescale(RATE_SCALE as u32);
    Some(r.mantissa())
}

/// `"1234.50"`: two fraction digits always.
pub fn fmt_money(d: Decimal) -> String {
    format!("{:.2}", round_cents(d))
}

/// A rate without trailing zeros (`"0.125"`).
pub fn fmt_rate(d: Decimal) -> String {
    d.normalize().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;

    fn d(s: &str) -> Decimal {
        Decimal::from_str(s).unwrap()
    }

    #[test]
    fn half_cents_round_away_from_zero_on_both_signs() {
        assert_eq!(round_cents(d("10.005")).to_string(), "10.01");
        assert_eq!(round_cents(d("-10.005")).to_string(), "-10.01");
        assert_eq!(round_cents(d("10.0049999")).to_string(), "10.00");
        assert_eq!(round_cents(d("-0.004")).to_string(), "0.00");
        assert_eq!(round_cents(-d("0.00")).to_string(), "0.00");
        assert_eq!(round_cents(d("2.675")).to_string(), "2.68"); // 2.675 is 2.67499… as a float
        assert_eq!(round_cents(d("7")).to_string(), "7.00");
        assert_eq!(cents(d("-35.5")), -3550);
        assert_eq!(from_units(-3550, 2), d("-35.50"));
    }

    #[test]
    fn rates_are_millionths_or_refused() {
        assert_eq!(micros(d("0.125")), Some(125_000));
        assert_eq!(micros(d("0.1250000")), Some(125_000));
        assert_eq!(micros(d("0.0000001")), None);
        assert_eq!(fmt_rate(d("0.1250")), "0.125");
        assert_eq!(fmt_money(d("-3.1")), "-3.10");
    }
}
