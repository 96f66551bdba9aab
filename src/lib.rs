//! cip — the Commission Intelligence Platform.
//!
//! `contract` is the data contract as code; `lake` the Parquet tables and
//! their snapshots in object storage; `pipelines` what lands facts there;
//! `query` DataFusion over a snapshot; `generate` the demo book of business.

pub mod cli;
pub mod contract;
pub mod generate;
pub mod lake;
pub mod pipelines;
pub mod query;
pub mod telemetry;
