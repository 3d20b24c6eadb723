#!/usr/bin/env bash
# Figures for docs/BENCHMARKS.md ("Idle footprint of real agents"): N real
# `vigil agent` processes (encrypted, lan preset), each in its own network
# namespace on one bridge, idle; per member: CPU % of one core, RSS, bytes
# sent on its interface (headers included). Needs root (namespaces).
#
# Usage: scripts/bench-footprint.sh [sizes=20,50] [secs=60]
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -q -p vigil-agent --bin vigil
cargo build --release -q -p vigil-chaos
target_dir=$(cargo metadata --format-version 1 --no-deps | sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')
IFS=, read -r -a sizes <<< "${1:-20,50}"
for n in "${sizes[@]}"; do
  "$target_dir/release/vigil-chaos" bench --members "$n" --secs "${2:-60}" --bin "$target_dir/release/vigil"
done
