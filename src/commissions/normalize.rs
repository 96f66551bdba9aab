//! Policy numbers as carriers print them, made comparable.
//!
//! The data contract warns that a statement writes the number "the
//! carrier's way": case, spaces, dashes and leading zeros may differ from
//! the policy's own number (`NBM-0012345-02` printed as `nbm 12345 02`,
//! `PAH-00012345-02` as `PAH0001234502`, `0512345678` as `512345678`). The
//! normal form:
//!
//! 1. upper-case ASCII letters;
//! 2. drop every character that is not an ASCII letter or digit (spaces,
//!    dashes, dots, slashes, underscores…);
//! 3. in what is left, drop the leading zeros of every run of digits,
//!    keeping a run's last digit (`A000` → `A0`).
//!
//! Separators go *before* zeros are stripped, because carriers also drop
//! separators: `PAH-00012345-02` and `PAH0001234502` are one number, and
//! only after joining are `00012345` and `02` one run (`PAH1234502` both
//! ways). The price: two numbers that differ only in where a separator
//! sits before zeros (`A-01-2` and `A-0-12`) are one; numbers of one
//! carrier have one format, and matching is always within a carrier.

/// The normal form of `number` (see the module).
pub fn normalize(number: &str) -> String {
    let mut out = String::with_capacity(number.len());
    normalize_into(number, &mut out);
    out
}

/// [`normalize`] into a reused buffer (cleared first): no allocation per
/// number when matching millions of lines.
pub fn normalize_into(number: &str, out: &mut String) {
    out.clear();
    // Whether the kept characters so far end in a run of zeros that began a
    // digit run (those zeros were skipped and one may still be owed).
    let mut pending_zero = false;
    let mut in_digits = false;
    for b in number.bytes() {
        match b {
            b'0'..=b'9' => {
                if !in_digits || pending_zero {
                    if b == b'0' {
                        in_digits = true;
                        pending_zero = true;
                        continue;
                    }
                    pending_zero = false;
                }
                in_digits = true;
                out.push(b as char);
            }
            b'a'..=b'z' | b'A'..=b'Z' => {
                if pending_zero {
                    out.push('0');
                    pending_zero = false;
                }
                in_digits = false;
                out.push(b.to_ascii_uppercase() as char);
            }
            // A separator neither ends nor starts a run: it vanishes.
            _ => {}
        }
    }
    if pending_zero {
        out.push('0');
    }
}

#[cfg(test)]
mod tests {
    use super::normalize;

    #[test]
    fn case_spaces_dashes_and_leading_zeros() {
        // The generator's carriers: own number and statement number agree.
        for (own, printed) in [
            ("NBM-0012345-02", "nbm 12345 02"),
            ("GSI031811399", "GSI-31811399"),
            ("PAH-00012345-02", "PAH0001234502"),
            ("0512345678", "512345678"),
            ("RFC 0456789 01", "RFC-0456789-01"),
            ("MG-00012345", "mg12345"),
            ("KCC-012345-03", "KCC 12345 03"),
            ("LSI0001234502", "lsi-00012345-02"),
            ("EHP-00012345-02", "EHP1234502"),
            ("CHA001234502", "cha 0012345 02"),
        ] {
            assert_eq!(normalize(own), normalize(printed), "{own} vs {printed}");
        }
        assert_eq!(normalize("NBM-0012345-02"), "NBM1234502");
        assert_eq!(normalize(" nbm 12345 02 "), "NBM1234502");
        assert_eq!(normalize("0512345678"), "512345678");
        assert_eq!(normalize("A000"), "A0");
        assert_eq!(normalize("000"), "0");
        assert_eq!(normalize("A0B"), "A0B");
        assert_eq!(normalize("a.b/c_0-1"), "ABC1");
        assert_eq!(normalize(""), "");
        // Non-ASCII letters are not letters of a policy number: dropped.
        assert_eq!(normalize("Ü-12"), "12");
        // Different numbers stay different.
        assert_ne!(normalize("NBM-0012345-02"), normalize("NBM-0012345-03"));
        assert_ne!(normalize("NBM-0012345"), normalize("NBM-0012346"));
        assert_ne!(normalize("GSI031811399"), normalize("GSI031811390"));
    }
}
