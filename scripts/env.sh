# Sourced by the project's scripts: checks the toolchain and shares one
# build cache outside the checkout, so a fresh clone reuses earlier builds.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/cip-target}"
if ! command -v cargo >/dev/null 2>&1; then
  echo "cargo not found: install Rust with rustup; cip needs rustc >= 1.94" >&2
  exit 1
fi
cargo fmt --version >/dev/null 2>&1 || rustup component add rustfmt
cargo clippy --version >/dev/null 2>&1 || rustup component add clippy
