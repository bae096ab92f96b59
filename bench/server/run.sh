#!/usr/bin/env bash
# bench/server/run.sh: node-runs per second that `muster server` sustains on
# real SSH targets (N loopback "hosts" 127.10.x.y answered by one OpenSSH
# sshd), for a continuous job of `true`, with each node's connection kept
# between its runs (--keep-connections, the default) and closed after each
# run (--keep-connections 0). Reports runs/s, SSH connections opened and
# sshd CPU per run, and writes bench/results/server-ssh.md. Run as root on
# Debian 12; see bench/README.md.
#
# Environment:
#   SERVER_N          targets (default 200)
#   SERVER_SECONDS    length of each measured window (default 20)
#   SERVER_SLOTS      the server's --slots (default 100)
#   SERVER_OUT        report path (default bench/results/server-ssh.md)
#   MUSTER_BIN        use this muster binary instead of building ./cmd/muster
#   BENCH_KEEP_TMP=1  keep the temp dir (server logs)
set -uo pipefail

BENCH_NAME=server
# shellcheck source=../lib.sh
. "$(dirname "$0")/../lib.sh"

N=${SERVER_N:-200}
SECS=${SERVER_SECONDS:-20}
SLOTS=${SERVER_SLOTS:-100}
OUT=${SERVER_OUT:-$REPO/bench/results/server-ssh.md}

ensure_packages openssh-server openssh-client
ensure_user
start_sshd
build_muster
[ -n "${MUSTER:-}" ] || die "no muster binary: ${MUSTER_NOTE:-}"
PROJECT=$TMP/project
make_inventories "$N" "$PROJECT"

# all_sshd_ticks: CPU ticks of the sshd listener and every live process
# under it (per-connection monitors, their unprivileged children, sessions),
# each with the children it reaped: all of sshd's work so far.
all_sshd_ticks() {
	$PY - "$SSHD_PID" <<'PYEOF'
import os, sys
kids = {}
for p in os.listdir("/proc"):
    if p.isdigit():
        try:
            f = open(f"/proc/{p}/stat").read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        kids.setdefault(int(f[1]), []).append((int(p), sum(int(x) for x in f[11:15])))
def ticks(pid):
    return sum(t + ticks(c) for c, t in kids.get(pid, []))
own = open(f"/proc/{sys.argv[1]}/stat").read().rsplit(")", 1)[1].split()
print(sum(int(x) for x in own[11:15]) + ticks(int(sys.argv[1])))
PYEOF
}

# job_runs JOB: the job's succeeded run count, from the API (cheap).
job_runs() {
	$PY - "$MUSTER_SERVER" "$MUSTER_DATA_DIR/admin.token" "$1" <<'PYEOF'
import json, sys, urllib.request
tok = open(sys.argv[2]).read().strip()
req = urllib.request.Request(f"{sys.argv[1]}/api/v1/jobs/{sys.argv[3]}", headers={"Authorization": "Bearer " + tok})
print(json.load(urllib.request.urlopen(req))["counts"].get("succeeded", 0))
PYEOF
}

# one KEEP: runs a continuous job for SECS seconds under a server started
# with --keep-connections KEEP; prints "runs runs_per_s connections sshd_ms_per_run".
one() {
	local keep=$1 data=$TMP/data-$1 port
	port=$(free_port) || die "no free port"
	export MUSTER_DATA_DIR=$data MUSTER_SERVER=http://127.0.0.1:$port
	"$MUSTER" server --listen "127.0.0.1:$port" --data-dir "$data" --project "$PROJECT" --slots "$SLOTS" \
		--keep-connections "$keep" >"$TMP/server-$keep.log" 2>&1 &
	local spid=$!
	for _ in $(seq 1 100); do
		grep -q 'muster server started' "$TMP/server-$keep.log" && break
		sleep 0.1
	done
	grep -q 'muster server started' "$TMP/server-$keep.log" || die "server did not start: $(tail -3 "$TMP/server-$keep.log")"
	local job
	job=$("$MUSTER" job submit command true -t all --continuous --format json |
		$PY -c 'import json,sys; print(json.load(sys.stdin)["job"]["id"])') || die "submit failed"
	sleep 3 # warm-up: every node's first connection
	local r0 c0 t0 s0 r1 c1 t1 s1
	local mark
	# A count is taken during its API call: time it at the call's midpoint.
	local a b
	mark=$(log_mark); s0=$(all_sshd_ticks)
	a=$(date +%s.%N); r0=$(job_runs "$job"); b=$(date +%s.%N); t0=$($PY -c "print(($a + $b) / 2)")
	sleep "$SECS"
	a=$(date +%s.%N); r1=$(job_runs "$job"); b=$(date +%s.%N); t1=$($PY -c "print(($a + $b) / 2)")
	s1=$(all_sshd_ticks); c1=$(log_count "$mark" "$LOG_CONN"); c0=0
	"$MUSTER" job cancel "$job" >/dev/null
	kill -TERM "$spid"
	wait "$spid"
	$PY - "$r0" "$r1" "$c0" "$c1" "$t0" "$t1" "$s0" "$s1" "$TCK" <<'PYEOF'
import sys
r0, r1, c0, c1 = (int(x) for x in sys.argv[1:5])
t0, t1 = float(sys.argv[5]), float(sys.argv[6])
s0, s1, tck = int(sys.argv[7]), int(sys.argv[8]), int(sys.argv[9])
runs = r1 - r0
print(runs, f"{runs / (t1 - t0):.0f}", c1 - c0, f"{(s1 - s0) / tck * 1000 / max(runs, 1):.2f}")
PYEOF
}

log "N=$N, ${SECS}s windows, --slots $SLOTS"
read -r kr krate kconn ksshd < <(one 1m)
log "kept: $krate runs/s, $kconn connections"
read -r cr crate cconn csshd < <(one 0)
log "closed after each run: $crate runs/s, $cconn connections"
ratio=$($PY -c "print(f'{$krate / max($crate, 1):.1f}')")

mkdir -p "$(dirname "$OUT")"
cat >"$OUT" <<EOF
# muster server on real SSH targets: connections kept between runs

\`bench/server/run.sh\`, $(date -u +%Y-%m-%d). A continuous job of \`true\` on $N targets
(127.10.x.y, one OpenSSH sshd), \`muster server\` with --slots $SLOTS on SQLite; each
window is ${SECS} s after a 3 s warm-up. sshd CPU is the listener's and every
per-connection child's (live or reaped, with the sessions they ran), over the window.

| --keep-connections | node-runs | runs/s | SSH connections opened | sshd CPU ms per run |
|---|---:|---:|---:|---:|
| 1m (default) | $kr | $krate | $kconn | $ksshd |
| 0 (close after each run) | $cr | $crate | $cconn | $csshd |

Keeping connections: **${ratio}x** the runs per second.

Machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo); $(ssh -V 2>&1).
EOF
log "wrote $OUT"
cat "$OUT"
