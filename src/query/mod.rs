//! The query side: DataFusion over a published snapshot.

pub mod tables;
