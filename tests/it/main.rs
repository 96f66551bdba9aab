//! Integration tests: one binary, real files, real Parquet, real DataFusion.

mod cli;
mod generated;
mod graphql;
mod helpers;
mod ingest;
mod metrics;
mod models;
mod reports;
mod rollups;
mod serve;
