#!/usr/bin/env bash
# The main job on the embedded default: build, generate the demo book of
# business, ingest it into the lake (data/lake), train and score the models,
# print the summaries and serve the API.
#   scripts/demo.sh [extra `cip demo` options, e.g. --policies 200000, --no-serve]
# It builds with the dev profile (dependencies optimised, see Cargo.toml), the
# very build scripts/test.sh uses: running both compiles the stack once.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
cargo build --locked
exec "$CARGO_TARGET_DIR/debug/cip" demo "$@"
