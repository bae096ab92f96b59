#!/usr/bin/env bash
# bench/pull/agent-rss.sh: an idle `muster agent`'s resident memory. It
# starts `muster server --agent-listen` on a throwaway project, enrolls
# PULL_RSS_AGENTS agents in each of two modes (the default, which gives
# back the pages of its executable that start-up and runs touched, and
# the naive one that keeps them: MUSTER_AGENT_KEEP_RESIDENT=1), lets each
# run once, then samples every agent's VmRSS (and its anonymous and
# file-backed parts) every PULL_RSS_EVERY seconds for PULL_RSS_SECONDS.
# Writes bench/results/pull-agent-rss.md with p50/p95/max per mode and
# their ratio. Goal: idle RSS under 20 MiB.
#
#   bench/pull/agent-rss.sh
#   PULL_RSS_SECONDS=300 bench/pull/agent-rss.sh   # span several check-ins
#   MUSTER_BIN=/path/to/muster bench/pull/agent-rss.sh
set -euo pipefail
SCRIPT_DIR=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$SCRIPT_DIR/../.." && pwd)
N=${PULL_RSS_AGENTS:-3}
SECONDS_TOTAL=${PULL_RSS_SECONDS:-60}
EVERY=${PULL_RSS_EVERY:-5}
OUT=${PULL_RSS_OUT:-$REPO/bench/results/pull-agent-rss.md}

log() { printf '%s pull-rss: %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
TMP=$(mktemp -d "${TMPDIR:-/tmp}/muster-pull-rss.XXXXXX")
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	rm -rf "$TMP"
}
trap cleanup EXIT

MUSTER=${MUSTER_BIN:-}
if [ -z "$MUSTER" ]; then
	log "building muster (static, as shipped)"
	(cd "$REPO" && CGO_ENABLED=0 go build -o "$TMP/muster" ./cmd/muster)
	MUSTER=$TMP/muster
fi
mkdir -p "$TMP/project" "$TMP/data"
cat >"$TMP/project/pull.yaml" <<EOF2
interval: 1h
backends:
  - {name: local, max_running: 100}
runs:
  - command: 'echo "run \$MUSTER_NODE" >> $TMP/runs.log'
EOF2
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$MUSTER" server --listen 127.0.0.1:0 --data-dir "$TMP/data" --project "$TMP/project" \
	--agent-listen "127.0.0.1:$port" >"$TMP/server.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 100); do grep -q 'listening for agents' "$TMP/server.log" && break; sleep 0.1; done
fp=$(grep -o 'ca_fingerprint=sha256:[0-9a-f]*' "$TMP/server.log" | head -1 | cut -d= -f2)
api=$(grep -o 'api=http://[0-9.:]*' "$TMP/server.log" | cut -d= -f2)
export MUSTER_SERVER=$api MUSTER_DATA_DIR=$TMP/data
token=$("$MUSTER" enroll-token create rss --uses $((2 * N)) --certnames 'rss*.test' 2>/dev/null | grep -o 'mse_[A-Za-z0-9_-]*')
declare -A mode
for m in trim keep; do
	for i in $(seq 1 "$N"); do
		keep=0
		[ "$m" = keep ] && keep=1
		MUSTER_AGENT_KEEP_RESIDENT=$keep "$MUSTER" agent --server "127.0.0.1:$port" --data-dir "$TMP/$m$i" \
			--certname "rss-$m$i.test" --enroll-token "$token" --ca-fingerprint "$fp" --wait 60s >"$TMP/$m$i.log" 2>&1 &
		pids+=($!)
		mode[$!]=$m
	done
done
log "started $((2 * N)) agents; waiting for their first runs"
for _ in $(seq 1 300); do
	[ "$(wc -l <"$TMP/runs.log" 2>/dev/null || echo 0)" -ge $((2 * N)) ] && break
	sleep 0.1
done
sleep 3
log "sampling for ${SECONDS_TOTAL}s"
: >"$TMP/samples"
end=$((SECONDS + SECONDS_TOTAL))
while [ $SECONDS -lt $end ]; do
	for p in "${!mode[@]}"; do
		awk -v m="${mode[$p]}" '/^VmRSS:/{r=$2} /^RssAnon:/{a=$2} /^RssFile:/{f=$2} END{print m, r, a, f}' "/proc/$p/status" >>"$TMP/samples"
	done
	sleep "$EVERY"
done
python3 - "$TMP/samples" "$OUT" "$N" "$SECONDS_TOTAL" "$(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo unknown)" "$(stat -c %s "$MUSTER")" <<'PY'
import sys, platform, datetime
samples, out, n, secs, commit, size = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5], int(sys.argv[6])
by = {}
for line in open(samples):
    m, r, a, f = line.split()
    by.setdefault(m, []).append((int(r) / 1024, int(a) / 1024, int(f) / 1024))
def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, max(0, int(round(p / 100 * len(xs))) - 1))]
rows = {}
for m, xs in by.items():
    rss = [x[0] for x in xs]
    rows[m] = (len(xs), pct(rss, 50), pct(rss, 95), pct(rss, 99), max(rss), pct([x[1] for x in xs], 50), pct([x[2] for x in xs], 50))
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
names = {"trim": "muster agent (default: gives back start-up's pages)", "keep": "naive: MUSTER_AGENT_KEEP_RESIDENT=1"}
with open(out, "w") as f:
    f.write("# Pull mode: an idle agent's resident memory\n\n")
    f.write("`bench/pull/agent-rss.sh`, %s, muster %s (static binary, %.1f MiB). %d `muster agent` processes per row\n"
            "against one `muster server --agent-listen` on 127.0.0.1, each enrolled and past its first run, then\n"
            "idle in a held check-in; VmRSS sampled every few seconds for %s s. The one binary holds the server,\n"
            "both databases and the CLI: start-up maps in much of its code and read-only data, which an idle agent\n"
            "never uses again. By default the agent gives those file-backed pages back (MADV_DONTNEED on its\n"
            "read-only mappings of the executable) before it waits; a page used again comes back from the page cache.\n\n"
            % (datetime.date.today(), commit, size / 2**20, n, secs))
    f.write("| agent | samples | p50 MiB | p95 MiB | p99 MiB | max MiB | anonymous p50 MiB | file-backed p50 MiB |\n|---|---:|---:|---:|---:|---:|---:|---:|\n")
    for m in ("trim", "keep"):
        if m in rows:
            c, p50, p95, p99, mx, an, fi = rows[m]
            f.write("| %s | %d | **%.1f** | %.1f | %.1f | %.1f | %.1f | %.1f |\n" % (names[m], c, p50, p95, p99, mx, an, fi))
    if "trim" in rows and "keep" in rows:
        f.write("\nRatio naive / default at p50: **%.2fx**. Goal: idle RSS under 20 MiB: **%s** (max %.1f MiB).\n"
                % (rows["keep"][1] / rows["trim"][1], "PASS" if rows["trim"][4] < 20 else "FAIL", rows["trim"][4]))
    f.write("\nMachine: %s, %s.\n" % (cpu, platform.platform()))
print(open(out).read())
PY
