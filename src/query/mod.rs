//! The query side: DataFusion over a published snapshot.

pub mod metrics;
pub mod tables;
pub mod view;
