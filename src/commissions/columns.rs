//! A column as the batches the engine returned, read as one column without
//! copying them into one buffer: for a million statement lines that copy
//! was a third of a gigabyte of fresh memory (its page faults and the copy
//! itself about a fifth of a reconciliation's CPU time).

use arrow::array::{Array, Date32Array, Decimal128Array, StringArray};

#[derive(Debug, Clone)]
pub struct Chunked<A> {
    parts: Vec<A>,
    /// `ends[p]`: the index after the last row of part `p`.
    ends: Vec<usize>,
}

impl<A: Array> Chunked<A> {
    pub fn new(parts: Vec<A>) -> Self {
        let mut end = 0;
        let ends = parts
            .iter()
            .map(|p| {
                end += p.len();
                end
            })
            .collect();
        Chunked { parts, ends }
    }

    pub fn len(&self) -> usize {
        self.ends.last().copied().unwrap_or(0)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The parts, in order: columns of one read share their boundaries, so
    /// a pass over all rows walks the parts of each in step.
    pub fn parts(&self) -> &[A] {
        &self.parts
    }

    /// The part holding row `i` and the row's position in it.
    #[inline]
    fn at(&self, i: usize) -> (&A, usize) {
        if self.parts.len() == 1 {
            return (&self.parts[0], i);
        }
        let p = self.ends.partition_point(|&e| e <= i);
        let start = if p == 0 { 0 } else { self.ends[p - 1] };
        (&self.parts[p], i - start)
    }

    pub fn is_null(&self, i: usize) -> bool {
        let (a, j) = self.at(i);
        a.is_null(j)
    }
}

impl<A: Array> From<A> for Chunked<A> {
    fn from(a: A) -> Self {
        Chunked::new(vec![a])
    }
}

impl Chunked<StringArray> {
    pub fn value(&self, i: usize) -> &str {
        let (a, j) = self.at(i);
        a.value(j)
    }

    pub fn get(&self, i: usize) -> Option<&str> {
        let (a, j) = self.at(i);
        (!a.is_null(j)).then(|| a.value(j))
    }
}

impl Chunked<Decimal128Array> {
    /// Units at [`Chunked::scale`].
    pub fn value(&self, i: usize) -> i128 {
        let (a, j) = self.at(i);
        a.value(j)
    }

    /// The parts' scale (all parts of a column share its type).
    pub fn scale(&self) -> i8 {
        self.parts.first().map_or(crate::contract::MONEY_SCALE, |p| p.scale())
    }
}

impl Chunked<Date32Array> {
    /// Days since 1970-01-01.
    pub fn value(&self, i: usize) -> i32 {
        let (a, j) = self.at(i);
        a.value(j)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_are_found_across_parts() {
        let c = Chunked::new(vec![
            StringArray::from(vec!["a", "b"]),
            StringArray::from(Vec::<&str>::new()),
            StringArray::from(vec![Some("c"), None, Some("e")]),
        ]);
        assert_eq!(c.len(), 5);
        let got: Vec<Option<&str>> = (0..c.len()).map(|i| c.get(i)).collect();
        assert_eq!(got, [Some("a"), Some("b"), Some("c"), None, Some("e")]);
        assert!(c.is_null(3));
        let d: Chunked<Date32Array> = Date32Array::from(vec![3, 4]).into();
        assert_eq!((d.value(1), d.parts().len()), (4, 1));
        let empty: Chunked<StringArray> = Chunked::new(vec![]);
        assert!(empty.is_empty());
    }
}
