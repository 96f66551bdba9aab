#!/usr/bin/env bash
# Every check the project has: formatting, lints, unit and integration tests
# on the local filesystem, then the lake's integration tests again against a
# real S3-compatible server on loopback (scripts/s3-server.sh).
# This is the README's test command; .ci/run runs exactly this.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
cargo fmt --check
cargo clippy --all-targets --locked -- -D warnings
cargo test --all-targets --locked
# The same binary again, every lake it opens on S3 (one prefix per test).
source scripts/s3-server.sh
CIP_TEST_LAKE=s3 cargo test --locked --test it -- \
  lake:: ingest:: rollups:: serve:: graphql:: reports:: abuse:: cli:: stream:: commissions::
# Another Delta reader (delta-rs' Python package) reads what cip wrote, on
# disk and on S3: the same rows and money sums, table by table.
benches/lake_interop.sh 2000
benches/lake_interop.sh 2000 "s3://$CIP_TEST_S3_BUCKET/interop/lake"
# Streaming ingest survives SIGKILL at random moments: every acknowledged
# event in the lake exactly once (bounded: 2000 events, 4 kills).
tests/stream_crash.sh 2000 4
