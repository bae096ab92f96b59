#!/usr/bin/env bash
# bench/queue/run.sh: throughput and latency of muster server's durable queue,
# on SQLite (one server) and on PostgreSQL (one and two servers), with the
# hidden no-op backend (--backend fake:0). Writes bench/results/queue.md.
#
# Run as root on Debian 12 (PostgreSQL runs as the postgres user). It installs
# what is missing (postgresql, with pg_stat_statements), builds muster and the
# driver (bench/queue, package main), starts a throwaway PostgreSQL cluster
# with durable, production settings (fsync=on, synchronous_commit=on,
# full_page_writes=on) on 127.0.0.1, runs every configuration on a fresh
# store, stops everything and removes its temp dir (trap, also on failure).
#
# Environment:
#   QUEUE_JOBS          throughput: jobs per configuration (default 20)
#   QUEUE_NODES         throughput: nodes per job = inventory size (default 1000)
#   QUEUE_SUBMITTERS    throughput: client goroutines submitting (default 4)
#   QUEUE_REPEAT        throughput repetitions per configuration, each on a
#                       fresh store; the median counts (default 3)
#   QUEUE_LAT_SAMPLES   latency: single-node jobs, one at a time (default 1000)
#   QUEUE_SLOTS, QUEUE_CLAIM_BATCH
#                       muster server --slots / --claim-batch for every row;
#                       unset: the best of the sweep for each store
#   QUEUE_SWEEP         "SLOTSxBATCH ..." pairs tried (throughput only) on
#                       sqlite/1 and postgres/1 before the measured rows
#                       (default "100x100 200x200 500x500 1000x1000"; "" = no
#                       sweep, server defaults 100x100)
#   QUEUE_SWEEP_JOBS    jobs per sweep run (default QUEUE_JOBS, same nodes)
#   QUEUE_SWEEP_REPEAT  repetitions per sweep point (default QUEUE_REPEAT)
#   QUEUE_ASYNC_ROW     1 (default) = also a postgres/1 row with
#                       synchronous_commit=off (labelled; no target); 0 = skip
#   QUEUE_CONFIGS       subset of: sqlite-1 postgres-1 postgres-2 postgres-1-async
#   QUEUE_OUT           report path (default bench/results/queue.md)
#   MUSTER_BIN          use this muster binary instead of building ./cmd/muster
#   BENCH_KEEP_TMP=1    keep the temp dir (server logs, JSON results)
set -uo pipefail

BENCH_NAME=queue
# shellcheck source=../lib.sh
. "$(dirname "$0")/../lib.sh"

JOBS=${QUEUE_JOBS:-20}
NODES=${QUEUE_NODES:-1000}
SUBMITTERS=${QUEUE_SUBMITTERS:-4}
REPEAT=${QUEUE_REPEAT:-3}
LAT_SAMPLES=${QUEUE_LAT_SAMPLES:-1000}
SWEEP=${QUEUE_SWEEP-"100x100 200x200 500x500 1000x1000"}
SWEEP_JOBS=${QUEUE_SWEEP_JOBS:-$JOBS}
SWEEP_REPEAT=${QUEUE_SWEEP_REPEAT:-$REPEAT}
ASYNC_ROW=${QUEUE_ASYNC_ROW:-1}
CONFIGS=${QUEUE_CONFIGS:-"sqlite-1 postgres-1 postgres-2 postgres-1-async"}
OUT=${QUEUE_OUT:-$REPO/bench/results/queue.md}
TARGET_PG_RPS=5000
TARGET_SQLITE_RPS=2000
TARGET_P99_MS=50

wanted() { [[ " $CONFIGS " == *" $1 "* ]]; }

# ---------------------------------------------------------------- PostgreSQL
PG_BIN=""
PG_DIR=""
PG_PORT=""
PG_PID=""
DRIVER_PID=""
as_pg() { runuser -u postgres -- "$@"; }

# The cluster: what initdb makes (no --no-sync), plus only what a benchmark
# on loopback needs. Durability is PostgreSQL's default and is spelled out.
PG_SETTINGS=(
	listen_addresses=127.0.0.1
	max_connections=200
	fsync=on
	synchronous_commit=on
	full_page_writes=on
	wal_sync_method=fdatasync
	shared_preload_libraries=pg_stat_statements
	pg_stat_statements.track=all
)

start_pg() {
	PG_BIN=$(dirname "$(ls /usr/lib/postgresql/*/bin/initdb 2>/dev/null | sort -V | tail -n 1)")
	[ -x "$PG_BIN/initdb" ] || die "no PostgreSQL initdb found"
	PG_DIR=$TMP/pg
	mkdir -p "$PG_DIR" && chown postgres:postgres "$PG_DIR"
	as_pg "$PG_BIN/initdb" -D "$PG_DIR/data" -U postgres -A trust -E UTF8 >"$TMP/initdb.log" 2>&1 ||
		die "initdb failed: $(tail -3 "$TMP/initdb.log")"
	local opts="" s
	for s in "${PG_SETTINGS[@]}"; do opts="$opts -c $s"; done
	for _ in 1 2 3 4 5; do
		PG_PORT=$(free_port) || die "no free port"
		if as_pg "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -l "$PG_DIR/log" -w -t 60 \
			-o "-p $PG_PORT -k $PG_DIR $opts" start >/dev/null 2>&1; then
			PG_PID=$(head -1 "$PG_DIR/data/postmaster.pid")
			log "PostgreSQL pid $PG_PID on 127.0.0.1:$PG_PORT ($PG_DIR)"
			return 0
		fi
	done
	die "PostgreSQL did not start: $(tail -5 "$PG_DIR/log" 2>/dev/null)"
}

stop_pg() {
	if [ -n "$PG_PID" ] && [ -n "$PG_BIN" ]; then
		as_pg "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -m fast -w -t 60 stop >/dev/null 2>&1 ||
			{ kill -- "$PG_PID" 2>/dev/null; sleep 1; }
		PG_PID=""
	fi
}

pg_show() { # setting names -> "name=value" lines, as the running server reports them
	local q n
	q="SELECT name || '=' || setting || COALESCE(unit, '') FROM pg_settings WHERE name IN ("
	for n in "$@"; do q="$q'$n',"; done
	q="${q%,}) ORDER BY name"
	psql -X -h 127.0.0.1 -p "$PG_PORT" -U postgres -d postgres -Atc "$q" 2>/dev/null
}

queue_cleanup() {
	local rc=$?
	if [ -n "$DRIVER_PID" ] && kill -0 "$DRIVER_PID" 2>/dev/null; then
		kill -TERM "$DRIVER_PID" 2>/dev/null # it stops its servers
		wait "$DRIVER_PID" 2>/dev/null
	fi
	stop_pg
	(exit $rc)
	bench_cleanup
}
trap queue_cleanup EXIT

# ---------------------------------------------------------------- driver
DRIVER_CMDS=()
# drive OUT.json [driver flags]: one driver run. The driver runs in the
# background so that a signal to this script is handled at once (the trap
# stops it, and it stops its servers).
drive() {
	local out=$1 rc
	shift
	"$QB" -muster "$MUSTER" -out "$out" -workdir "$TMP/work/$(basename "$out" .json)" -keep "$@" &
	DRIVER_PID=$!
	wait "$DRIVER_PID"
	rc=$?
	DRIVER_PID=""
	[ "$rc" = 0 ] || log "$(basename "$out" .json): driver exit code $rc (recorded as FAILED in the report)"
	return 0
}

pg_url() { echo "postgres://postgres@127.0.0.1:$PG_PORT/postgres?sslmode=disable"; }

# best_of FILES...: "SLOTS BATCH" of the highest median runs/s among sweep
# results (one file per point and round).
best_of() {
	$PY - "$@" <<'EOF'
import json, sys
rates = {}
for p in sys.argv[1:]:
    try:
        d = json.load(open(p))
    except Exception:
        continue
    if d.get("error"):
        continue
    for t in d.get("repeats") or []:
        rates.setdefault((d["slots"], d["claim_batch"]), []).append(t["runs_per_sec"])
best = None
for k, v in rates.items():
    v.sort()
    med = v[(len(v) - 1) // 2]
    if best is None or med > best[0]:
        best = (med, k)
print("%d %d" % best[1] if best else "100 100")
EOF
}

# ---------------------------------------------------------------- main
ensure_packages postgresql postgresql-client python3
build_muster
[ -n "$MUSTER" ] || die "muster: $MUSTER_NOTE"
QB=$TMP/queue-driver
note=$(build_go ./bench/queue "$QB") || die "driver: $note"
mkdir -p "$TMP/work" "$TMP/results"
chmod 755 "$TMP/work"

log "measuring the disk's fsync rate (pg_test_fsync, ~20 s)"
FSYNC=$("$(dirname "$(ls /usr/lib/postgresql/*/bin/pg_test_fsync | sort -V | tail -n 1)")/pg_test_fsync" -s 1 -f "$TMP/fsync.test" 2>/dev/null |
	awk '/one 8kB write/ {s=1} s && $1=="fdatasync" {print $2 " ops/s (" $4 " us/op)"; exit}')
rm -f "$TMP/fsync.test"
DISK=$(df -T "$TMP" | awk 'NR==2 {print $2 " on " $1}')

start_pg
PG_VERSION=$(psql -X -h 127.0.0.1 -p "$PG_PORT" -U postgres -d postgres -Atc 'SELECT version()' | sed 's/ on x86_64.*//')
mapfile -t PG_SHOW < <(pg_show fsync synchronous_commit full_page_writes wal_sync_method wal_level shared_buffers \
	max_connections max_wal_size checkpoint_timeout shared_preload_libraries commit_delay)

BASE=(-jobs "$JOBS" -nodes "$NODES" -submitters "$SUBMITTERS")
SQLITE_FLAGS="${QUEUE_SLOTS:-100} ${QUEUE_CLAIM_BATCH:-100}"
PG_FLAGS=$SQLITE_FLAGS
SWEEP_FILES=()
if [ -z "${QUEUE_SLOTS:-}${QUEUE_CLAIM_BATCH:-}" ] && [ -n "$SWEEP" ]; then
	# Rounds interleave the points, so that a burst of load from other
	# processes does not land on one point only.
	sq=() pq=()
	for round in $(seq 1 "$SWEEP_REPEAT"); do
		for combo in $SWEEP; do
			s=${combo%x*} b=${combo#*x}
			if wanted sqlite-1; then
				f=$TMP/results/sweep-sqlite-$combo-r$round.json
				args=(-name sweep-sqlite -jobs "$SWEEP_JOBS" -nodes "$NODES" -submitters "$SUBMITTERS" -slots "$s"
					-claim-batch "$b" -skip-latency)
				log "sweep round $round/$SWEEP_REPEAT: sqlite/1 --slots $s --claim-batch $b"
				[ "$round" = 1 ] && DRIVER_CMDS+=("queue ${args[*]}")
				drive "$f" "${args[@]}"
				sq+=("$f") SWEEP_FILES+=("$f")
			fi
			if wanted postgres-1 || wanted postgres-2; then
				f=$TMP/results/sweep-postgres-$combo-r$round.json
				args=(-name sweep-postgres -database "$(pg_url)" -pg-pid "$PG_PID" -jobs "$SWEEP_JOBS" -nodes "$NODES"
					-submitters "$SUBMITTERS" -slots "$s" -claim-batch "$b" -skip-latency)
				log "sweep round $round/$SWEEP_REPEAT: postgres/1 --slots $s --claim-batch $b"
				[ "$round" = 1 ] && DRIVER_CMDS+=("queue ${args[*]}")
				drive "$f" "${args[@]}"
				pq+=("$f") SWEEP_FILES+=("$f")
			fi
		done
	done
	[ ${#sq[@]} -gt 0 ] && SQLITE_FLAGS=$(best_of "${sq[@]}")
	[ ${#pq[@]} -gt 0 ] && PG_FLAGS=$(best_of "${pq[@]}")
	log "best: sqlite --slots/--claim-batch $SQLITE_FLAGS, postgres $PG_FLAGS"
fi
read -r SQ_SLOTS SQ_BATCH <<<"$SQLITE_FLAGS"
read -r PG_SLOTS PG_BATCH <<<"$PG_FLAGS"

# cfg_args CONFIG: the driver flags of a configuration (no spaces in any).
cfg_args() {
	local pg="-database $(pg_url) -pg-pid $PG_PID -pg-stat -slots $PG_SLOTS -claim-batch $PG_BATCH"
	case $1 in
	sqlite-1) echo "-name sqlite/1 -slots $SQ_SLOTS -claim-batch $SQ_BATCH -target-rps $TARGET_SQLITE_RPS" ;;
	postgres-1) echo "-name postgres/1 $pg -target-rps $TARGET_PG_RPS -target-p99-ms $TARGET_P99_MS" ;;
	postgres-2) echo "-name postgres/2 -servers 2 $pg -target-p99-ms $TARGET_P99_MS" ;;
	postgres-1-async) echo "-name postgres/1 $pg -pg-synchronous-commit off" ;;
	esac
}
SELECTED=()
for c in sqlite-1 postgres-1 postgres-2 postgres-1-async; do
	wanted "$c" || continue
	[ "$c" = postgres-1-async ] && [ "$ASYNC_ROW" != 1 ] && continue
	SELECTED+=("$c")
done
[ ${#SELECTED[@]} -gt 0 ] || die "no configuration selected (QUEUE_CONFIGS=$CONFIGS)"
# Rounds interleave the configurations; the last round of each measures
# latency too, on the idle servers after its throughput phase.
for round in $(seq 1 "$REPEAT"); do
	for c in "${SELECTED[@]}"; do
		read -ra args <<<"$(cfg_args "$c")"
		args+=("${BASE[@]}")
		if [ "$round" = "$REPEAT" ]; then args+=(-lat-samples "$LAT_SAMPLES"); else args+=(-skip-latency); fi
		{ [ "$round" = 1 ] || [ "$round" = "$REPEAT" ]; } && DRIVER_CMDS+=("queue ${args[*]}")
		log "round $round/$REPEAT: $c"
		drive "$TMP/results/$c-r$round.json" "${args[@]}"
	done
done
RESULTS=()
for c in "${SELECTED[@]}"; do
	parts=()
	for round in $(seq 1 "$REPEAT"); do
		[ -s "$TMP/results/$c-r$round.json" ] && parts+=("$TMP/results/$c-r$round.json")
	done
	if [ ${#parts[@]} -eq 0 ]; then
		log "$c: no result at all"
		continue
	fi
	"$QB" merge "$TMP/results/$c.json" "${parts[@]}" || die "merging the results of $c failed"
	RESULTS+=("$TMP/results/$c.json")
done
[ ${#RESULTS[@]} -gt 0 ] || die "no configuration produced a result"
stop_pg

# ---------------------------------------------------------------- report
META=$TMP/meta.json
CMDLINE="sudo bench/queue/run.sh"
for v in QUEUE_JOBS QUEUE_NODES QUEUE_SUBMITTERS QUEUE_REPEAT QUEUE_LAT_SAMPLES QUEUE_SLOTS QUEUE_CLAIM_BATCH \
	QUEUE_SWEEP QUEUE_SWEEP_JOBS QUEUE_SWEEP_REPEAT QUEUE_ASYNC_ROW QUEUE_CONFIGS; do
	[ -n "${!v+x}" ] && CMDLINE="$v=\"${!v}\" $CMDLINE"
done
NOTES=("Work per configuration: $JOBS jobs x $NODES nodes = $((JOBS * NODES)) node-runs from $SUBMITTERS client goroutines, $REPEAT times (fresh store each); then $LAT_SAMPLES latency samples (pause 5-30 ms, uniform).")
if [ ${#SWEEP_FILES[@]} -gt 0 ]; then
	NOTES+=("--slots/--claim-batch: best median of a sweep ($SWEEP; $SWEEP_JOBS jobs x $NODES nodes, $SWEEP_REPEAT repetitions each, see below): SQLite $SQ_SLOTS/$SQ_BATCH, PostgreSQL $PG_SLOTS/$PG_BATCH.")
else
	NOTES+=("--slots/--claim-batch: SQLite $SQ_SLOTS/$SQ_BATCH, PostgreSQL $PG_SLOTS/$PG_BATCH (no sweep).")
fi
NOTES+=("The synchronous_commit=off row sets it on the benchmark database only (ALTER DATABASE; fsync stays on): a commit is acknowledged before its WAL is flushed, so a crash of PostgreSQL can lose the last few hundred ms of acknowledged submits and completions. Many queue deployments accept that; it is shown for comparison and judged against no target.")
machine_info
export M_NPROC M_CPU M_MEM M_KERNEL M_OS M_GO M_MUSTER
export M_STARTED=$BENCH_STARTED M_FINISHED=$(date -u +%Y-%m-%dT%H:%M:%SZ) M_LOAD_START=$LOAD_START \
	M_LOAD_END="$(cut -d' ' -f1-3 /proc/loadavg)" M_PG="$PG_VERSION" M_DISK="$DISK" M_FSYNC="pg_test_fsync, one 8 kB write + fdatasync: ${FSYNC:-not measured}" \
	M_PG_SETTINGS="$(printf '%s\n' "${PG_SHOW[@]}")" M_COMMAND="$CMDLINE" \
	M_DRIVER="$(printf '%s\n' "${DRIVER_CMDS[@]}" | sed "s|$(pg_url)|postgres://postgres@127.0.0.1:\$PGPORT/postgres?sslmode=disable|; s| -pg-pid [0-9]*| -pg-pid \$POSTMASTER_PID|")" \
	M_NOTES="$(printf '%s\n' "${NOTES[@]}")"
$PY - "$META" <<'EOF'
import json, os, sys
e = os.environ
lines = lambda k: [l for l in e[k].split("\n") if l.strip()]
json.dump({"started": e["M_STARTED"], "finished": e["M_FINISHED"], "nproc": int(e["M_NPROC"]), "cpu": e["M_CPU"],
    "mem": e["M_MEM"], "kernel": e["M_KERNEL"], "os": e["M_OS"], "load_start": e["M_LOAD_START"],
    "load_end": e["M_LOAD_END"], "go": e["M_GO"], "muster": e["M_MUSTER"], "postgres": e["M_PG"],
    "pg_settings": lines("M_PG_SETTINGS"), "pg_fsync": e["M_FSYNC"], "disk": e["M_DISK"],
    "command": e["M_COMMAND"], "driver_commands": lines("M_DRIVER"), "notes": lines("M_NOTES")},
    open(sys.argv[1], "w"), indent=1)
EOF
sweep_arg=()
[ ${#SWEEP_FILES[@]} -gt 0 ] && sweep_arg=(-sweep "$(IFS=,; echo "${SWEEP_FILES[*]}")")
mkdir -p "$(dirname "$OUT")"
"$QB" report -meta "$META" "${sweep_arg[@]}" "${RESULTS[@]}" >"$OUT.tmp" || die "report failed"
mv "$OUT.tmp" "$OUT"
log "wrote $OUT"
awk '/^## Targets/ {s=1} s && /\*\*(PASS|FAIL)/' "$OUT" >&2
