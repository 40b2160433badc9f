#!/usr/bin/env bash
# The whole test suite: formatting, lints, unit and integration tests.
# Kernel tests need root; run as root (CI is root).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo fmt --all -- --check
scripts/build-monitor.sh
cargo clippy --workspace --all-targets --locked -- -D warnings
cargo test --workspace --locked
