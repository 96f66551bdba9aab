//! Pipelines that land facts in the lake.

pub mod batch;
pub mod resolve;
pub mod rollups;
pub mod source;
pub mod stage;
