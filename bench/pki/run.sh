#!/usr/bin/env bash
# bench/pki/run.sh: how many agent certificates muster's CA issues per
# second with its ed25519 key, against an RSA-4096 CA key (Puppet's
# default), and the latency of one signature (p50/p95/p99). Writes
# bench/results/pki.md.
#
# It runs the Go benchmarks BenchmarkSignEd25519 and BenchmarkSignRSA4096
# of internal/pki (bench_test.go there): each times whole CA.Sign calls on
# one goroutine (the CSR's checks, the certificate's template and the CA's
# signature), for the same ed25519 agent CSR, so the CA's key is the only
# difference. Every signature is timed on its own for the percentiles. The
# RSA-4096 key is generated once, outside the timer. Needs only Go; no
# root, no network. About 2 x PKI_BENCHTIME x PKI_COUNT, plus a few seconds
# for the RSA key and the build.
#
# Environment:
#   PKI_BENCHTIME   go test -benchtime per benchmark (default 3s)
#   PKI_COUNT       runs of each benchmark; the one with the median rate
#                   counts, and all rates are listed (default 1)
#   PKI_OUT         report path (default bench/results/pki.md)
set -euo pipefail

REPO=$(cd "$(dirname "$0")/../.." && pwd)
BENCHTIME=${PKI_BENCHTIME:-3s}
COUNT=${PKI_COUNT:-1}
OUT=${PKI_OUT:-$REPO/bench/results/pki.md}
PY=${PY:-python3}

log() { printf '%s pki: %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

RAW=$(mktemp)
trap 'rm -f "$RAW"' EXIT

STARTED=$(date -u +%Y-%m-%dT%H:%M:%SZ)
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
log "go test -bench BenchmarkSign(Ed25519|RSA4096) -benchtime $BENCHTIME -count $COUNT"
(cd "$REPO" && go test -run '^$' -bench '^BenchmarkSign(Ed25519|RSA4096)$' \
	-benchtime "$BENCHTIME" -count "$COUNT" ./internal/pki) | tee "$RAW" >&2
LOAD_END=$(cut -d' ' -f1-3 /proc/loadavg)

CPU=$(grep -m1 'model name' /proc/cpuinfo | sed 's/.*: //')
NPROC=$(nproc)
GO=$(go version)
KERNEL=$(uname -sr)
COMMIT="$(cd "$REPO" && git rev-parse --short HEAD 2>/dev/null || echo unknown)"
if (cd "$REPO" && git status --porcelain 2>/dev/null | grep -q .); then COMMIT="$COMMIT (dirty tree)"; fi

mkdir -p "$(dirname "$OUT")"
"$PY" - "$RAW" >"$OUT" <<EOF
import re, statistics, sys

rows = {}
for line in open(sys.argv[1]):
    m = re.match(r"^BenchmarkSign(Ed25519|RSA4096)(?:-\d+)?\s+(\d+)\s+(.*)$", line)
    if not m:
        continue
    f = m.group(3).split()
    vals = {f[i + 1]: float(f[i]) for i in range(0, len(f) - 1, 2)}
    vals["n"] = int(m.group(2))
    rows.setdefault(m.group(1), []).append(vals)
if set(rows) != {"Ed25519", "RSA4096"}:
    sys.exit("benchmark output is missing a key type: %s" % sorted(rows))

def median_run(runs):
    rates = sorted(r["certs/s"] for r in runs)
    mid = rates[(len(rates) - 1) // 2]
    return next(r for r in runs if r["certs/s"] == mid)

ed, rsa = median_run(rows["Ed25519"]), median_run(rows["RSA4096"])
ratio = ed["certs/s"] / rsa["certs/s"]

def ms(us):
    return "%.3f" % (us / 1000)

print("# CA signing cost: ed25519 vs RSA-4096")
print()
print("\`bench/pki/run.sh\`, $STARTED. One agent certificate per \`CA.Sign\` call on one goroutine:")
print("the CSR's checks (its ed25519 signature included), the certificate and the CA's signature.")
print("Both CAs sign the same ed25519 agent CSR, so the CA's key is the only difference.")
print("RSA-4096 is Puppet's CA default (PKCS #1 v1.5 with SHA-256 here); ed25519 is muster's.")
print("Each signature is timed on its own for the percentiles. \`-benchtime $BENCHTIME\`, $COUNT run(s) of each;")
print("the run with the median rate counts.")
print()
print("| CA key | certificates signed | certs/s (one goroutine) | mean ms | p50 ms | p95 ms | p99 ms | allocs/cert |")
print("|---|---:|---:|---:|---:|---:|---:|---:|")
for label, r in (("ed25519", ed), ("RSA-4096", rsa)):
    print("| %s | %d | %.0f | %s | %s | %s | %s | %.0f |" % (
        label, r["n"], r["certs/s"], ms(r["ns/op"] / 1000), ms(r["p50-us"]), ms(r["p95-us"]), ms(r["p99-us"]),
        r.get("allocs/op", 0)))
print()
print("ed25519 / RSA-4096: **%.1fx** the certificates per second." % ratio)
if $COUNT > 1:
    for label, key in (("ed25519", "Ed25519"), ("RSA-4096", "RSA4096")):
        print()
        print("%s rates of every run (certs/s): %s" % (label, ", ".join("%.0f" % r["certs/s"] for r in rows[key])))
print()
print("Machine: $CPU, $NPROC cores (shared: other processes may have run; load average")
print("$LOAD_START at the start, $LOAD_END at the end); $KERNEL; $GO; muster git $COMMIT.")
EOF
log "wrote $OUT"
cat "$OUT"
