//! Integration tests: one binary, real files, real Parquet, real DataFusion.

mod helpers;
mod ingest;
