#!/usr/bin/env bash
# bench/pull/run.sh: the flat run curve of pull mode (bench/pull/main.go).
#
# Drives the real internal/pull scheduler in process, on a simulated clock,
# with 100,000 simulated agents over 2 simulated hours against 150 runs/s of
# backend capacity, and simulates the same fleet under Puppet's runinterval
# (with and without splay) and under cron with an fqdn_rand minute. Writes
# bench/results/pull.md and bench/results/pull.png. Needs only Go: no root,
# no network, no services; about 30 s of one core.
#
#   bench/pull/run.sh                      # the default run
#   bench/pull/run.sh -nodes 20000         # any flag of the program (-h lists them)
#   PULL_OUT=/tmp/pull bench/pull/run.sh   # write elsewhere
set -euo pipefail

REPO=$(cd "$(dirname "$0")/../.." && pwd)
OUT=${PULL_OUT:-$REPO/bench/results}
cd "$REPO"
log() { printf '%s pull: %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

BIN=$(mktemp -d)/pull-bench
trap 'rm -rf "$(dirname "$BIN")"' EXIT
log "building ./bench/pull"
CGO_ENABLED=0 go build -o "$BIN" ./bench/pull
log "simulating (load: $(cut -d' ' -f1-3 /proc/loadavg))"
"$BIN" -out "$OUT" "$@"
awk '/^\| goal/ {s=1} s && /\*\*(PASS|FAIL)/' "$OUT/pull.md" >&2
