#!/usr/bin/env bash
# Runs each cargo-fuzz target (fuzz/) for a bounded time: `./scripts/fuzz.sh [seconds]`,
# 30 s each by default. Needs the nightly toolchain; installs cargo-fuzz when missing.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds="${1:-30}"
export PATH="${CARGO_HOME:-$HOME/.cargo}/bin:$PATH"

if ! command -v cargo-fuzz >/dev/null 2>&1; then
    echo "installing cargo-fuzz"
    cargo install cargo-fuzz@0.13.2 --locked
fi

for target in magento_product_json import_csv_round_trip; do
    echo "fuzzing $target for ${seconds}s"
    cargo +nightly fuzz run --fuzz-dir fuzz "$target" -- \
        -max_total_time="$seconds" -rss_limit_mb=2048 -print_final_stats=1
done
