//! Versioned model artifacts in the lake's object store.
