//! The query side: DataFusion over a published snapshot.

pub mod industry;
pub mod lake_stats;
pub mod metrics;
pub mod policies;
pub mod renewals;
pub mod rollups;
pub mod single_flight;
pub mod summary;
pub mod tables;
pub mod view;
