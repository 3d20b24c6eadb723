#!/usr/bin/env bash
# Figures for docs/BENCHMARKS.md ("Agents on loopback"): real `vigil agent`
# processes on 127.0.0.1 with the lan preset. Prints convergence time,
# SIGKILL full-detection time (median, max), idle CPU and RSS per agent, and
# bytes sent per agent per second.
#
# Usage: scripts/bench-agents.sh [sizes=5,20] [kills=5] [idle_secs=30]
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -q -p vigil-agent --bin vigil --example bench_agents
target_dir=$(cargo metadata --format-version 1 --no-deps | sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')
echo "machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(nproc) cores; $(date -u +%Y-%m-%d)"
exec "$target_dir/release/examples/bench_agents" "$target_dir/release/vigil" "${1:-5,20}" "${2:-5}" "${3:-30}"
