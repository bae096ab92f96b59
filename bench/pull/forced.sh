#!/usr/bin/env bash
# bench/pull/forced.sh: how fast a change to a watched file turns into a
# run on pull-mode agents. It starts `muster server --agent-listen` on a
# throwaway project, enrolls PULL_AGENTS real `muster agent` processes
# (all on this machine, 127.0.0.1), lets their first runs pass, then
# changes the watched file PULL_TOUCHES times, PULL_GAP seconds apart, and
# measures, for every agent and every change, the time from the write to
# the run's start (the run command logs its own start). It reports
# p50/p95/p99 and the maximum, and writes bench/results/pull-forced.md.
#
# Environment:
#   PULL_AGENTS    agents (default 10)
#   PULL_TOUCHES   changes of the watched file (default 20)
#   PULL_GAP       seconds between changes (default 3)
#   PULL_FORCED_OUT  report path (default bench/results/pull-forced.md)
#   MUSTER_BIN     use this muster binary instead of building ./cmd/muster
set -euo pipefail
SCRIPT_DIR=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$SCRIPT_DIR/../.." && pwd)
AGENTS=${PULL_AGENTS:-10}
TOUCHES=${PULL_TOUCHES:-20}
GAP=${PULL_GAP:-3}
OUT=${PULL_FORCED_OUT:-$REPO/bench/results/pull-forced.md}

log() { printf '%s pull-forced: %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
TMP=$(mktemp -d "${TMPDIR:-/tmp}/muster-pull-forced.XXXXXX")
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	[ "${PULL_KEEP:-0}" = 1 ] && log "kept $TMP" || rm -rf "$TMP"
}
trap cleanup EXIT

MUSTER=${MUSTER_BIN:-}
if [ -z "$MUSTER" ]; then
	log "building muster"
	(cd "$REPO" && CGO_ENABLED=0 go build -o "$TMP/muster" ./cmd/muster)
	MUSTER=$TMP/muster
fi
mkdir -p "$TMP/project" "$TMP/data"
WATCHED=$TMP/watched
RUNS=$TMP/runs.log
echo first >"$WATCHED"
cat >"$TMP/project/pull.yaml" <<EOF
interval: 1h
backends:
  - {name: local, max_running: 100}
runs:
  - command: 'echo "\$(date +%s.%N) \$MUSTER_NODE" >> $RUNS'
    watch: [$WATCHED]
EOF
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$MUSTER" server --listen 127.0.0.1:0 --data-dir "$TMP/data" --project "$TMP/project" \
	--agent-listen "127.0.0.1:$port" >"$TMP/server.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 100); do grep -q 'listening for agents' "$TMP/server.log" && break; sleep 0.1; done
fp=$(grep -o 'ca_fingerprint=sha256:[0-9a-f]*' "$TMP/server.log" | head -1 | cut -d= -f2)
api=$(grep -o 'api=http://[0-9.:]*' "$TMP/server.log" | cut -d= -f2)
export MUSTER_SERVER=$api MUSTER_DATA_DIR=$TMP/data
token=$("$MUSTER" enroll-token create bench --uses "$AGENTS" --certnames 'bench*.test' 2>/dev/null | grep -o 'mse_[A-Za-z0-9_-]*')
log "starting $AGENTS agents"
for i in $(seq 1 "$AGENTS"); do
	"$MUSTER" agent --server "127.0.0.1:$port" --data-dir "$TMP/agent$i" --certname "bench$i.test" \
		--enroll-token "$token" --ca-fingerprint "$fp" --wait 60s >"$TMP/agent$i.log" 2>&1 &
	pids+=($!)
done
for _ in $(seq 1 300); do
	[ "$(wc -l <"$RUNS" 2>/dev/null || echo 0)" -ge "$AGENTS" ] && break
	sleep 0.1
done
sleep 2 # the first runs' reports, and the agents' watches, settle
: >"$TMP/touches"
for k in $(seq 1 "$TOUCHES"); do
	date +%s.%N >>"$TMP/touches"
	echo "change $k" >"$WATCHED"
	sleep "$GAP"
done
sleep 3
log "measuring"
python3 - "$TMP/touches" "$RUNS" "$AGENTS" "$TOUCHES" "$GAP" "$OUT" "$(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo unknown)" <<'PY'
import sys, statistics, platform, datetime
touches = [float(l) for l in open(sys.argv[1])]
runs = [(float(t), n) for t, n in (l.split() for l in open(sys.argv[2]) if l.strip())]
agents, n_touch, gap, out, commit = int(sys.argv[3]), int(sys.argv[4]), sys.argv[5], sys.argv[6], sys.argv[7]
lat, missed = [], 0
for i, t0 in enumerate(touches):
    t1 = touches[i + 1] if i + 1 < len(touches) else float("inf")
    for node in {n for _, n in runs}:
        starts = [t for t, n in runs if n == node and t0 <= t < t1]
        if starts:
            lat.append(min(starts) - t0)
        else:
            missed += 1
lat.sort()
def pct(p):
    return lat[min(len(lat) - 1, max(0, int(round(p / 100 * len(lat))) - 1))]
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
with open(out, "w") as f:
    f.write("# Pull mode: from a watched file's change to the run\n\n")
    f.write("`bench/pull/forced.sh`, %s, muster %s. %d `muster agent` processes and one `muster server\n"
            "--agent-listen` on 127.0.0.1 (SQLite), all watching one file; it was changed %d times, %s s apart.\n"
            "Latency is from the write to the start of each agent's run (the run command logs its own start):\n"
            "the agent's file watch (debounced 1 s), its check-in, the scheduler's forced admission, the run's\n"
            "claim, and the start of the command.\n\n" % (datetime.date.today(), commit, agents, n_touch, gap))
    f.write("| changes x agents | runs measured | missed | p50 s | p95 s | p99 s | max s | goal |\n|---:|---:|---:|---:|---:|---:|---:|---|\n")
    f.write("| %d x %d | %d | %d | %.2f | %.2f | **%.2f** | %.2f | p99 < 5 s: **%s** |\n" % (
        n_touch, agents, len(lat), missed, pct(50), pct(95), pct(99), lat[-1], "PASS" if pct(99) < 5 and missed == 0 else "FAIL"))
    f.write("\nMachine: %s, %s.\n" % (cpu, platform.platform()))
print(open(out).read())
PY
