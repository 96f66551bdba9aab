# Sourced by the project's scripts: checks the toolchain and shares one
# build cache outside the checkout, so a fresh clone reuses earlier builds.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/cip-target}"
if ! command -v cargo >/dev/null 2>&1; then
  echo "cargo not found: install Rust with rustup; cip needs rustc >= 1.95" >&2
  exit 1
fi
cargo fmt --version >/dev/null 2>&1 || rustup component add rustfmt
cargo clippy --version >/dev/null 2>&1 || rustup component add clippy
# GraphiQL's browser assets (assets/vendor/, embedded in the binary): fetched
# from the npm registry at pinned versions; a no-op once they are there.
bash "$(dirname "${BASH_SOURCE[0]}")/vendor-assets.sh" || { return 1 2>/dev/null || exit 1; }
