//! Binary-classification metrics. (Owned by the renewal work.)
