//! Pipelines that land facts in the lake.

pub mod ams;
pub mod batch;
pub mod events;
pub mod key_index;
pub mod resolve;
pub mod rollups;
pub mod source;
pub mod stage;
pub mod stream;
pub mod summary;
pub mod writer_cache;
