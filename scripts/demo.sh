#!/usr/bin/env bash
# The main job on the embedded default: build, generate the demo book of
# business, ingest it into the lake (data/lake) and print the summary.
#   scripts/demo.sh [extra `cip demo` options, e.g. --policies 200000]
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
cargo build --release --locked
exec "$CARGO_TARGET_DIR/release/cip" demo "$@"
