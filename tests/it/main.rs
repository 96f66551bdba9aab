//! Integration tests: one binary, real files, real Parquet, real DataFusion.

mod abuse;
mod ams;
mod cli;
mod commissions;
mod generated;
mod graphiql;
mod graphql;
mod helpers;
mod ingest;
mod lake;
mod metrics;
mod models;
mod reports;
mod rollups;
mod serve;
mod stream;
mod summary;
