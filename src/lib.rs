//! cip — the Commission Intelligence Platform.
//!
//! `contract` is the data contract as code; `lake` the Parquet tables and
//! their snapshots in object storage; `pipelines` what lands facts there;
//! `query` DataFusion over a snapshot; `graphql` and `serve` the analytics
//! API; `auth` credentials; `generate` the demo book of business.

pub mod auth;
pub mod cli;
pub mod commissions;
pub mod config;
pub mod contract;
pub mod generate;
pub mod graphql;
pub mod lake;
pub mod models;
pub mod pipelines;
pub mod query;
pub mod serve;
pub mod telemetry;
