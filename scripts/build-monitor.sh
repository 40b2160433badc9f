#!/usr/bin/env bash
# Builds the small per-container monitor as a static binary and puts it next
# to the estiba binary of the same profile, where estiba looks for it.
#   scripts/build-monitor.sh [--release]
# It is built in its own target dir because crt-static must not reach the
# rest of the workspace (estiba links libseccomp dynamically).
set -euo pipefail
cd "$(dirname "$0")/.."
profile=debug
flags=()
if [ "${1:-}" = --release ]; then profile=release; flags=(--release); fi
RUSTFLAGS="-C target-feature=+crt-static" cargo build -q --locked -p estiba-monitor --target-dir target/static "${flags[@]}"
mkdir -p "target/$profile"
install -m 0755 "target/static/$profile/estiba-monitor" "target/$profile/estiba-monitor"
