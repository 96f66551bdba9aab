//! Field paths into a source system's JSON payload (`Policy.PolicyNumber`,
//! `Policies[0].LOBs[0].Code`, `$.ClientNumber`), read from the payload's
//! own text: a JSON number is taken as its literal digits, so an amount
//! never passes through a binary float on its way to the contract.

use std::borrow::Cow;
use std::collections::BTreeMap;

use serde_json::value::RawValue;

/// A parsed field path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldPath {
    /// As written in the mapping file: what a reject names.
    pub text: String,
    /// `$.`: from the payload's root even inside an `each` target.
    root: bool,
    steps: Vec<Step>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Step {
    Key(String),
    Index(usize),
}

/// What a path finds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Found<'a> {
    /// Absent, JSON null or an empty string: no value (as in the contract).
    Missing,
    /// A string's content, or a number's or boolean's literal text.
    Scalar(Cow<'a, str>),
    /// An object or an array where one value was expected.
    Compound,
}

impl FieldPath {
    /// `Name(.Name)*` where each name may carry `[n]` indexes; `$.` first
    /// reads from the payload's root.
    pub fn parse(text: &str) -> Result<Self, String> {
        let bad = |why: &str| format!("field path '{text}': {why}");
        let (root, rest) = match text.strip_prefix("$.") {
            Some(rest) => (true, rest),
            None => (false, text),
        };
        let mut steps = Vec::new();
        for segment in rest.split('.') {
            let (name, mut indexes) = match segment.find('[') {
                Some(i) => (&segment[..i], &segment[i..]),
                None => (segment, ""),
            };
            if name.is_empty() {
                return Err(bad("an empty name"));
            }
            if name.contains([']', ' ', '$']) {
                return Err(bad("a name has ']', '$' or a space"));
            }
            steps.push(Step::Key(name.to_string()));
            while !indexes.is_empty() {
                let close = indexes.find(']').ok_or_else(|| bad("an unclosed '['"))?;
                let n: usize = indexes[1..close].parse().map_err(|_| bad("an index is not a number"))?;
                steps.push(Step::Index(n));
                indexes = &indexes[close + 1..];
                if !indexes.is_empty() && !indexes.starts_with('[') {
                    return Err(bad("text after an index"));
                }
            }
        }
        Ok(FieldPath { text: text.to_string(), root, steps })
    }

    /// The value at this path, from `here` (or the payload's `root` for `$.`).
    pub fn find<'a>(&self, root: &'a RawValue, here: &'a RawValue) -> Found<'a> {
        let mut at = if self.root { root } else { here };
        for step in &self.steps {
            let next = match step {
                Step::Key(k) => object(at).and_then(|mut m| m.remove(k.as_str())),
                Step::Index(i) => array(at).and_then(|a| a.get(*i).copied()),
            };
            match next {
                Some(v) => at = v,
                None => return Found::Missing,
            }
        }
        scalar(at)
    }

    /// The array at this path (an `each` target's rows); `None` when the
    /// path is missing, null or not an array.
    pub fn find_array<'a>(&self, root: &'a RawValue, here: &'a RawValue) -> Option<Vec<&'a RawValue>> {
        let mut at = if self.root { root } else { here };
        for step in &self.steps {
            at = match step {
                Step::Key(k) => object(at)?.remove(k.as_str())?,
                Step::Index(i) => *array(at)?.get(*i)?,
            };
        }
        array(at)
    }
}

/// The members of a JSON object (`None` if it is not one).
pub fn object(v: &RawValue) -> Option<BTreeMap<String, &RawValue>> {
    if !v.get().starts_with('{') {
        return None;
    }
    serde_json::from_str(v.get()).ok()
}

fn array(v: &RawValue) -> Option<Vec<&RawValue>> {
    if !v.get().starts_with('[') {
        return None;
    }
    serde_json::from_str(v.get()).ok()
}

fn scalar(v: &RawValue) -> Found<'_> {
    let text = v.get();
    match text.as_bytes().first() {
        Some(b'{' | b'[') => Found::Compound,
        Some(b'"') => match serde_json::from_str::<Cow<'_, str>>(text) {
            Ok(s) if s.trim().is_empty() => Found::Missing,
            Ok(s) => Found::Scalar(s),
            Err(_) => Found::Missing,
        },
        _ if text == "null" => Found::Missing,
        // Numbers and booleans: the literal as written.
        _ => Found::Scalar(Cow::Borrowed(text)),
    }
}

/// A canonical text of a JSON value (object members sorted by key, no
/// insignificant whitespace, scalars as written): the same payload sent
/// again, whatever its key order or layout, hashes alike.
pub fn canonical(v: &RawValue, out: &mut String) {
    if let Some(members) = object(v) {
        out.push('{');
        for (i, (k, m)) in members.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            out.push_str(&serde_json::to_string(k).expect("a string serialises"));
            out.push(':');
            canonical(m, out);
        }
        out.push('}');
    } else if let Some(items) = array(v) {
        out.push('[');
        for (i, item) in items.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            canonical(item, out);
        }
        out.push(']');
    } else {
        match serde_json::from_str::<String>(v.get()) {
            // Strings re-escaped one way (`\u00e9` and `é` alike).
            Ok(s) => out.push_str(&serde_json::to_string(&s).expect("a string serialises")),
            Err(_) => out.push_str(v.get().trim()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(text: &str) -> Box<RawValue> {
        RawValue::from_string(text.to_string()).unwrap()
    }

    #[test]
    fn paths_find_values_by_name_and_index() {
        let doc = raw(
            r#"{"Policy": {"PolicyNumber": "HO-1", "Premium": 1234.50, "Lines": [{"Code": "HOME"}, {"Code": "UMBR"}],
                "Empty": "  ", "Gone": null, "Flag": true, "Nested": {"a": 1}}}"#,
        );
        let find = |p: &str| FieldPath::parse(p).unwrap().find(&doc, &doc);
        assert_eq!(find("Policy.PolicyNumber"), Found::Scalar("HO-1".into()));
        // The number's literal text, trailing zero and all: no float in between.
        assert_eq!(find("Policy.Premium"), Found::Scalar("1234.50".into()));
        assert_eq!(find("Policy.Lines[1].Code"), Found::Scalar("UMBR".into()));
        assert_eq!(find("Policy.Lines[2].Code"), Found::Missing);
        assert_eq!(find("Policy.Empty"), Found::Missing);
        assert_eq!(find("Policy.Gone"), Found::Missing);
        assert_eq!(find("Policy.Absent.Deeper"), Found::Missing);
        assert_eq!(find("Policy.Flag"), Found::Scalar("true".into()));
        assert_eq!(find("Policy.Nested"), Found::Compound);
        assert_eq!(find("Policy.Lines"), Found::Compound);
    }

    #[test]
    fn root_paths_reach_past_the_row() {
        let doc = raw(r#"{"ClientNumber": 4417, "Policies": [{"PolicyNumber": "A"}, {"PolicyNumber": "B"}]}"#);
        let rows = FieldPath::parse("Policies").unwrap().find_array(&doc, &doc).unwrap();
        assert_eq!(rows.len(), 2);
        let number = FieldPath::parse("PolicyNumber").unwrap();
        let client = FieldPath::parse("$.ClientNumber").unwrap();
        assert_eq!(number.find(&doc, rows[1]), Found::Scalar("B".into()));
        assert_eq!(client.find(&doc, rows[1]), Found::Scalar("4417".into()));
        assert!(FieldPath::parse("ClientNumber").unwrap().find_array(&doc, &doc).is_none());
    }

    #[test]
    fn bad_paths_are_refused() {
        for bad in ["", "a..b", "a[", "a[x]", "a[0]b", "a b", ".a"] {
            assert!(FieldPath::parse(bad).is_err(), "{bad:?} accepted");
        }
        assert!(FieldPath::parse("a[0][1].b").is_ok());
    }

    #[test]
    fn canonical_text_ignores_layout_and_key_order() {
        let (mut a, mut b) = (String::new(), String::new());
        canonical(&raw(r#"{"b": [1, {"y": "\u00e9", "x": 2.50}], "a": null}"#), &mut a);
        canonical(&raw("{\n \"a\":null,\"b\":[1,{\"x\":2.50,\"y\":\"é\"}]}"), &mut b);
        assert_eq!(a, b);
        assert_eq!(a, r#"{"a":null,"b":[1,{"x":2.50,"y":"é"}]}"#);
    }
}
