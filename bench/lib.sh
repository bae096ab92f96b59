# bench/lib.sh: shared setup of the SSH benchmarks (bench/fanout, bench/tasks,
# bench/plans, bench/server) and the helpers bench/queue uses.
#
# Source it after setting BENCH_NAME, the short name used in log lines and the
# temp dir ("fanout", "tasks", ...):
#
#   set -uo pipefail
#   BENCH_NAME=tasks
#   . "$(dirname "$0")/../lib.sh"
#
# It sets REPO (repository root), SCRIPT_DIR (the sourcing script's directory),
# BENCH_STARTED and LOAD_START, and provides: log/die, ensure_packages,
# ensure_user, a temp dir $TMP with a cleanup trap, start_sshd (one OpenSSH
# sshd on 0.0.0.0 answering every 127.10.x.y "host"), CPU and connection
# counters, build_muster/build_go, make_inventories, close_ansible_masters,
# measure, the verifiers and write_report.
#
# What a script may change after sourcing (the defaults suit tasks and plans):
#   SSHD_LOG_LEVEL  sshd's LogLevel (VERBOSE). At VERBOSE every connection
#                   ("Connection from") and every session channel ("Starting
#                   session: ...") is one log line: that is how handshakes and
#                   channels are counted for every tool. fanout uses ERROR (no
#                   log writes in sshd's CPU; it counts TCP connections only).
#   SSHD_REAPER     "" (sshd daemonises) or the path of bench/fanout/sshd_reaper.py:
#                   sshd then runs in the foreground under it, and the CPU of the
#                   session processes sshd orphans is added to sshd_ticks.
#   MEASURE_SETTLE  seconds measure waits, once sshd is idle, before reading its
#                   CPU (0.3).
#   RUN_TIMEOUT     seconds before one measured run is killed (BENCH_RUN_TIMEOUT, 1200).
#   KEEP_TMP        1 = keep the temp dir on exit (BENCH_KEEP_TMP, 0).

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[1]:-$0}")" && pwd)
BENCH_USER=muster-bench
PY=/usr/bin/python3
TCK=$(getconf CLK_TCK)
NCPU=$(nproc)
BENCH_STARTED=$(date -u +%Y-%m-%dT%H:%M:%SZ)
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)

log() { printf '%s %s: %s\n' "$(date +%H:%M:%S)" "$BENCH_NAME" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

[ "$(id -u)" = 0 ] || die "must run as root"

# ---------------------------------------------------------------- packages
ensure_packages() { # package...
	"$(dirname "${BASH_SOURCE[0]}")/../scripts/apt-install.sh" "$@" || die "installing $* failed"
	mkdir -p /run/sshd && chmod 755 /run/sshd
}

ensure_user() {
	if ! id "$BENCH_USER" >/dev/null 2>&1; then
		useradd -m -s /bin/sh "$BENCH_USER" || die "useradd failed"
	fi
	# useradd leaves the account locked ('!'); with UsePAM no sshd then refuses it.
	usermod -s /bin/sh -p '*' "$BENCH_USER" || die "usermod failed"
}

# ---------------------------------------------------------------- temp dir, cleanup
TMP=$(mktemp -d "/tmp/muster-$BENCH_NAME.XXXXXX") || die "mktemp failed"
chmod 755 "$TMP"
D=$TMP/ssh
SSHD_PID=
REAPER_PID=
KEEP_TMP=${BENCH_KEEP_TMP:-0}
bench_cleanup() {
	local rc=$? c
	# Any ControlPersist masters Ansible left behind (only ours: they live under $TMP).
	for c in $(find "$TMP" -path '*/.ansible/cp/*' -type s 2>/dev/null); do
		ssh -F /dev/null -o ControlPath="$c" -O exit x >/dev/null 2>&1
	done
	if [ -n "$SSHD_PID" ] && kill -0 "$SSHD_PID" 2>/dev/null; then
		# Per-connection children first (only children of the sshd we started).
		for c in $(pgrep -P "$SSHD_PID" 2>/dev/null); do kill "$c" 2>/dev/null; done
		kill "$SSHD_PID" 2>/dev/null
	fi
	if [ -n "$REAPER_PID" ] && kill -0 "$REAPER_PID" 2>/dev/null; then
		# Orphaned session processes it adopted, then the reaper itself.
		for c in $(pgrep -P "$REAPER_PID" 2>/dev/null); do kill "$c" 2>/dev/null; done
		sleep 0.2
		kill "$REAPER_PID" 2>/dev/null
	fi
	if [ "$KEEP_TMP" = 1 ]; then
		log "kept $TMP"
	else
		rm -rf "$TMP"
	fi
	exit $rc
}
trap bench_cleanup EXIT
trap 'exit 130' INT TERM

# ---------------------------------------------------------------- sshd
free_port() {
	local p
	for _ in $(seq 1 200); do
		p=$((20000 + RANDOM % 12000))
		if $PY -c 'import socket,sys
s=socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", int(sys.argv[1])))' "$p" 2>/dev/null; then
			echo "$p"
			return 0
		fi
	done
	return 1
}

SSHD_LOG_LEVEL=VERBOSE
SSHD_REAPER=
start_sshd() {
	mkdir -p "$D" && chmod 755 "$D"
	ssh-keygen -q -t ed25519 -N '' -C "$BENCH_NAME-host" -f "$D/host_ed25519" || die "ssh-keygen"
	ssh-keygen -q -t ed25519 -N '' -C "$BENCH_NAME-client" -f "$D/client_ed25519" || die "ssh-keygen"
	cp "$D/client_ed25519.pub" "$D/authorized_keys" && chmod 644 "$D/authorized_keys"
	PORT=$(free_port) || die "no free port"
	cat >"$D/sshd_config" <<EOF
Port $PORT
ListenAddress 0.0.0.0
HostKey $D/host_ed25519
PidFile $D/sshd.pid
AuthorizedKeysFile $D/authorized_keys
PasswordAuthentication no
KbdInteractiveAuthentication no
PubkeyAuthentication yes
PermitRootLogin no
AllowUsers $BENCH_USER
UsePAM no
StrictModes no
MaxStartups 1000:30:2000
MaxSessions 10
MaxAuthTries 10
LogLevel $SSHD_LOG_LEVEL
Subsystem sftp internal-sftp
EOF
	/usr/sbin/sshd -t -f "$D/sshd_config" || die "sshd config check failed"
	if [ -n "$SSHD_REAPER" ]; then
		# sshd runs in the foreground (-D) under sshd_reaper.py, which adopts the
		# session processes sshd orphans and counts their CPU (see sshd_ticks).
		$PY "$SSHD_REAPER" "$D/orphan_ticks" -- /usr/sbin/sshd -D -f "$D/sshd_config" -E "$D/sshd.log" \
			</dev/null >"$D/reaper.log" 2>&1 &
		REAPER_PID=$!
	else
		/usr/sbin/sshd -f "$D/sshd_config" -E "$D/sshd.log" || die "sshd failed to start"
	fi
	for _ in $(seq 1 50); do
		[ -s "$D/sshd.pid" ] && break
		sleep 0.1
	done
	SSHD_PID=$(cat "$D/sshd.pid" 2>/dev/null) || die "sshd wrote no pid file${REAPER_PID:+: $(cat "$D/reaper.log")}"
	kill -0 "$SSHD_PID" 2>/dev/null || die "sshd is not running"
	if [ -n "$REAPER_PID" ]; then
		[ -s "$D/orphan_ticks" ] || die "sshd_reaper.py is not running: $(cat "$D/reaper.log")"
	fi

	# Client configs for the peers: one at OpenSSH's default key exchange, one
	# tuned to curve25519-sha256. -F also keeps /etc/ssh/ssh_config out.
	local kex variant
	for variant in default curve; do
		kex=""
		[ $variant = curve ] && kex="  KexAlgorithms curve25519-sha256"
		cat >"$D/ssh_config.$variant" <<EOF
Host *
  Port $PORT
  User $BENCH_USER
  IdentityFile $D/client_ed25519
  IdentitiesOnly yes
  StrictHostKeyChecking no
  UserKnownHostsFile /dev/null
  BatchMode yes
  LogLevel ERROR
  ConnectTimeout 60
$kex
EOF
	done
	local got
	got=$(ssh -F "$D/ssh_config.curve" 127.10.0.1 'echo $SSH_CONNECTION' 2>&1) ||
		die "test login to 127.10.0.1 failed: $got"
	case "$got" in *" 127.10.0.1 $PORT") ;; *) die "unexpected SSH_CONNECTION: $got" ;; esac
	wait_sshd_idle
	if sshd_logs_sessions; then
		# The log must show connections and sessions, or the counts below are 0.
		grep -q 'Starting session: command' "$D/sshd.log" || die "sshd log has no 'Starting session' lines (LogLevel VERBOSE?)"
	fi
	log "sshd pid $SSHD_PID on 0.0.0.0:$PORT (LogLevel $SSHD_LOG_LEVEL${REAPER_PID:+, under $(basename "$SSHD_REAPER")}, $D/sshd.log)"
}
# True when sshd's log has a line per connection and per session (LogLevel VERBOSE or DEBUG*).
sshd_logs_sessions() { case $SSHD_LOG_LEVEL in VERBOSE | DEBUG*) return 0 ;; esac; return 1; }

# sshd CPU in clock ticks: utime+stime+cutime+cstime of the listener, which
# reaps every per-connection process it forked, plus (with SSHD_REAPER) the CPU
# of the session processes that were orphaned on the way. When a client ends
# with SSH_MSG_DISCONNECT (OpenSSH's ssh always does) or a TCP reset (muster),
# sshd's monitor exits without waiting for its post-auth session process; that
# process and the command it ran (~4 ms per login) then never reach the
# listener's cutime/cstime.
sshd_ticks() {
	local o=0
	[ -s "$D/orphan_ticks" ] && o=$(cat "$D/orphan_ticks")
	sed 's/^.*) //' "/proc/$SSHD_PID/stat" | awk -v o="$o" '{printf "%.3f\n", $12+$13+$14+$15+o}'
}
# Busy CPU ticks of the whole machine (all but idle and iowait), from /proc/stat.
busy_ticks() {
	awk '/^cpu / {print $2+$3+$4+$7+$8+$9; exit}' /proc/stat
}
# TCP passive opens, system-wide (approximates connections accepted by sshd).
passive_opens() {
	awk '/^Tcp:/ { if (!h) { for (i=1;i<=NF;i++) if ($i=="PassiveOpens") c=i; h=1 } else print $c }' /proc/net/snmp
}
# Lines in the sshd log so far (a mark for log_count).
log_mark() { wc -l <"$D/sshd.log"; }
# log_count MARK PATTERN: lines after MARK that match PATTERN (grep -E).
log_count() {
	tail -n +"$(($1 + 1))" "$D/sshd.log" | grep -c -E "$2"
}
# Connections and session channels since MARK.
LOG_CONN='Connection from .* on 127\.'
LOG_SESSION='Starting session: '
# Wait until every per-connection sshd process has exited and been reaped, by
# the listener or (orphans, with SSHD_REAPER) by sshd_reaper.py.
wait_sshd_idle() {
	local i
	for i in $(seq 1 600); do
		if [ -z "$(pgrep -P "$SSHD_PID" 2>/dev/null)" ] &&
			{ [ -z "$REAPER_PID" ] || [ -z "$(pgrep -P "$REAPER_PID" 2>/dev/null | grep -vx "$SSHD_PID")" ]; }; then
			[ -n "$REAPER_PID" ] && sleep 0.1 # let the reaper write the orphan it has just reaped
			return 0
		fi
		sleep 0.2
	done
	return 1
}

# ---------------------------------------------------------------- muster
MUSTER=""
MUSTER_NOTE=""
build_muster() {
	if [ -n "${MUSTER_BIN:-}" ]; then
		if [ -x "$MUSTER_BIN" ]; then MUSTER=$MUSTER_BIN; else MUSTER_NOTE="MUSTER_BIN=$MUSTER_BIN is not executable"; fi
		return
	fi
	if [ ! -d "$REPO/cmd/muster" ]; then
		MUSTER_NOTE="$REPO/cmd/muster does not exist"
		return
	fi
	command -v go >/dev/null && log "building muster"
	if MUSTER_NOTE=$(build_go ./cmd/muster "$TMP/muster"); then
		MUSTER=$TMP/muster
	fi
}

# build_go PKG OUT: builds a package main of this module; prints a note on failure.
build_go() {
	command -v go >/dev/null || { echo "go not in PATH"; return 1; }
	if (cd "$REPO" && CGO_ENABLED=0 go build -o "$2" "$1") >"$2.build.log" 2>&1; then
		return 0
	fi
	echo "go build $1 failed: $(grep -v '^#' "$2.build.log" | head -1 | cut -c1-160)"
	return 1
}

# ---------------------------------------------------------------- inventories
# make_inventories N DIR: DIR/hosts, DIR/inventory.yaml (muster), DIR/ansible.ini.
make_inventories() {
	local n=$1 dir=$2 i
	mkdir -p "$dir"
	: >"$dir/hosts"
	for ((i = 0; i < n; i++)); do
		echo "127.10.$((i / 250)).$((i % 250 + 1))" >>"$dir/hosts"
	done
	{
		echo "config:"
		echo "  transport: ssh"
		echo "  ssh: {user: $BENCH_USER, port: $PORT, private-key: $D/client_ed25519, host-key-check: false}"
		echo "targets:"
		sed 's/^/  - /' "$dir/hosts"
	} >"$dir/inventory.yaml"
	{
		echo "[bench]"
		cat "$dir/hosts"
		echo
		echo "[bench:vars]"
		echo "ansible_user=$BENCH_USER"
		echo "ansible_port=$PORT"
		echo "ansible_ssh_private_key_file=$D/client_ed25519"
		echo "ansible_python_interpreter=/usr/bin/python3"
	} >"$dir/ansible.ini"
}

# selected NAME: true when NAME is in $ONLY (a space-separated subset of run
# names) or $ONLY is empty.
selected() { [ -z "${ONLY:-}" ] || [[ " $ONLY " == *" $1 "* ]]; }

# Ansible keeps ControlPersist masters (default ssh args) running after it
# exits. They are daemonized, so their CPU is in nobody's rusage: read it from
# /proc (ssh -O check gives each master's pid), write it to <dir>/extra_cpu
# (measure adds it to the client CPU), then close them so their sshd
# connections end and get counted.
close_ansible_masters() { # run dir; the run's HOME is <run dir>/home
	local cp=$1/home/.ansible/cp
	[ -d "$cp" ] || return 0
	find "$cp" -type s -print0 | xargs -0 -r -n 1 -P 32 sh -c '
		pid=$(ssh -F /dev/null -o ControlPath="$1" -O check x 2>&1 | sed -n "s/.*pid=\([0-9]*\).*/\1/p")
		[ -n "$pid" ] && sed "s/^.*) //" "/proc/$pid/stat" 2>/dev/null | awk "{print \$12+\$13+\$14+\$15}"
		ssh -F /dev/null -o ControlPath="$1" -O exit x >/dev/null 2>&1
		exit 0' _ | awk -v t="$TCK" '{s+=$1} END {printf "%.2f\n", s/t}' >"$1/extra_cpu"
}
nopost() { :; }

# ---------------------------------------------------------------- one measured run
RUN_TIMEOUT=${BENCH_RUN_TIMEOUT:-1200}
MEASURE_SETTLE=0.3
# measure DIR VERIFIER POSTHOOK -- cmd...
# Runs cmd under GNU time with stdout/stderr in DIR/out, DIR/err, then writes
# DIR/m.json: wall, user, sys (s), rss_kib, sshd_s (listener CPU delta, read
# once every connection has ended), tcp (TcpPassiveOpens delta), conns and
# sessions (sshd log lines), other_s (machine busy CPU not explained by the
# tool or sshd), status "ok" or "FAILED" and a reason.
# VERIFIER gets: rc out err; prints "" when the run did what it should.
# POSTHOOK gets DIR, after the run and before sshd's CPU is read.
# Optional, in the environment of the call:
#   MEASURE_LABEL    name of the run in log lines (default: basename of DIR)
#   MEASURE_MIN_TCP  the run FAILs when fewer TCP connections were accepted
# It also leaves the figures in M_WALL M_USER M_SYS M_RSS (GNU time's strings,
# "" when missing), M_SSHD_S (%.2f), M_TCP, M_BUSY (machine busy ticks during
# the run) and M_REASON ("" when ok).
measure() {
	local dir=$1 verifier=$2 post=$3 label=${MEASURE_LABEL:-$(basename "$1")}
	shift 4
	mkdir -p "$dir"
	wait_sshd_idle || log "warning: sshd still has children before $label"
	sleep 0.5
	local t0 t1 c0 c1 b0 b1 m0 rc idle=1
	m0=$(log_mark); t0=$(sshd_ticks); c0=$(passive_opens); b0=$(busy_ticks)
	/usr/bin/time -f '%e %U %S %M' -o "$dir/time" timeout -k 10 "$RUN_TIMEOUT" "$@" >"$dir/out" 2>"$dir/err" </dev/null
	rc=$?
	b1=$(busy_ticks)
	$post "$dir"
	wait_sshd_idle || idle=0
	sleep "$MEASURE_SETTLE"
	t1=$(sshd_ticks); c1=$(passive_opens)
	local conns sessions wall user sys rss sshd_s tcp=$((c1 - c0)) reason=""
	conns=$(log_count "$m0" "$LOG_CONN")
	sessions=$(log_count "$m0" "$LOG_SESSION")
	read -r wall user sys rss < <(grep -E '^[0-9.]+ [0-9.]+ [0-9.]+ [0-9]+$' "$dir/time" | tail -1)
	if [ -s "$dir/extra_cpu" ] && [ -n "${user:-}" ]; then # CPU of detached helpers (Ansible's masters)
		user=$(awk -v u="$user" -v x="$(cat "$dir/extra_cpu")" 'BEGIN{printf "%.2f", u+x}')
	fi
	sshd_s=$(awk -v a="$t0" -v b="$t1" -v t="$TCK" 'BEGIN{printf "%.2f", (b-a)/t}')
	if [ "$rc" = 124 ] || [ "$rc" = 137 ]; then
		reason="timed out after ${RUN_TIMEOUT}s"
	else
		reason=$($verifier "$rc" "$dir/out" "$dir/err")
	fi
	[ -z "$reason" ] && [ -n "${MEASURE_MIN_TCP:-}" ] && [ "$tcp" -lt "$MEASURE_MIN_TCP" ] &&
		reason="only $tcp TCP connections accepted for $MEASURE_MIN_TCP targets"
	[ -z "$reason" ] && [ $idle = 0 ] && reason="sshd connections still open after the run"
	M_WALL=${wall:-} M_USER=${user:-} M_SYS=${sys:-} M_RSS=${rss:-} M_SSHD_S=$sshd_s M_TCP=$tcp
	M_BUSY=$((b1 - b0)) M_REASON=$reason
	REASON=$reason $PY - "$dir/m.json" <<EOF
import json, os, sys
def f(x):
    try: return float(x)
    except Exception: return None
wall, user, sys_, sshd = f("${wall:-}"), f("${user:-}"), f("${sys:-}"), ($t1 - $t0) / $TCK
busy = ($b1 - $b0) / $TCK
json.dump({"wall": wall, "user": user, "sys": sys_, "rss_kib": f("${rss:-}"),
  "sshd_s": sshd, "tcp": $tcp, "conns": $conns, "sessions": $sessions,
  "other_s": max(0.0, busy - (user or 0) - (sys_ or 0) - sshd),
  "rc": $rc, "status": "FAILED" if os.environ["REASON"] else "ok", "reason": os.environ["REASON"]},
  open(sys.argv[1], "w"))
EOF
	if [ -n "$reason" ]; then
		log "$label FAILED ($reason) wall=${wall:-?}s"
	else
		local counts="tcp=$tcp"
		sshd_logs_sessions && counts="conns=$conns sessions=$sessions tcp=$tcp"
		log "$label wall=${wall}s client=$(awk -v u="$user" -v s="$sys" 'BEGIN{print u+s}')s sshd=${sshd_s}s $counts rss=${rss}KiB"
	fi
}

# ---------------------------------------------------------------- verifiers
# Each gets: rc out err (paths); prints "" when the run did what it should,
# else a short reason.
first_err() { grep -v '^\s*$' "$1" | head -1 | cut -c1-140; }

# verify_muster_json N rc out err: exit 0 and N success items.
verify_muster_json() {
	local n=$1 rc=$2 out=$3 r
	r=$($PY - "$n" "$out" <<'EOF'
import json, sys
n, path = int(sys.argv[1]), sys.argv[2]
try:
    doc = json.load(open(path))
except Exception as e:
    print("output is not JSON: %s" % str(e)[:80]); sys.exit()
items = doc.get("items", []) if isinstance(doc, dict) else []
ok = {i.get("target") for i in items if i.get("status") == "success"}
bad = [i for i in items if i.get("status") != "success"]
if len(ok) != n:
    msg = "%d/%d targets succeeded" % (len(ok), n)
    if bad:
        e = (bad[0].get("value") or {}).get("_error") or {}
        msg += "; e.g. %s: %s" % (bad[0].get("target"), str(e.get("msg", ""))[:80])
    print(msg)
EOF
)
	if [ -n "$r" ]; then echo "$r"; elif [ "$rc" != 0 ]; then echo "exit code $rc: $(first_err "$4")"; fi
}
# verify_n_json rc out err: verify_muster_json for $N targets.
verify_n_json() { verify_muster_json "$N" "$@"; }
# verify_quiet rc out err: pdsh -S / clush -S: exit 0 and nothing on stderr.
verify_quiet() {
	local rc=$1 err=$3
	if [ "$rc" != 0 ]; then echo "exit code $rc: $(first_err "$err")"
	elif [ -s "$err" ]; then echo "stderr: $(first_err "$err")"; fi
}

# ---------------------------------------------------------------- report
# machine_info: sets M_NPROC M_CPU M_MEM M_KERNEL M_OS M_GO and M_MUSTER (the
# commit muster was built from, or why it was not built).
machine_info() {
	M_NPROC=$NCPU
	M_CPU=$(grep -m1 'model name' /proc/cpuinfo | sed 's/.*: //')
	M_MEM=$(awk '/MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo)
	M_KERNEL=$(uname -sr)
	M_OS=$(. /etc/os-release && echo "$PRETTY_NAME")
	M_GO=$(command -v go >/dev/null && go version)
	if [ -n "$MUSTER" ]; then
		M_MUSTER="git $(cd "$REPO" && git rev-parse --short HEAD 2>/dev/null)$(cd "$REPO" && git status --porcelain 2>/dev/null | grep -q . && echo ' (dirty tree)')"
	else
		M_MUSTER=$MUSTER_NOTE
	fi
}
machine_meta() { # prints JSON fields (no braces) describing the machine and tools
	machine_info
	cat <<EOF
"nproc": $M_NPROC,
"cpu": """$M_CPU""",
"mem": """$M_MEM""",
"kernel": """$M_KERNEL""",
"os": """$M_OS""",
"openssh": """$(ssh -V 2>&1)""",
"pdsh": """$(pdsh -V 2>&1 | head -1)""",
"ansible": """$(ansible --version 2>&1 | head -1)""",
"go": """$M_GO""",
"muster": """$M_MUSTER""",
EOF
}

# write_report ARG... <<EOF FIELDS EOF: writes $TMP/meta.json (started,
# finished, load_start, machine_meta, then FIELDS from stdin: more
# '"key": value,' lines of a Python dict), then runs
# $SCRIPT_DIR/report.py META ARG... into $OUT.
write_report() {
	local fields meta=$TMP/meta.json
	fields=$(cat)
	$PY - "$meta" <<EOF || die "writing $meta failed"
import json, sys
json.dump({
"started": "$BENCH_STARTED", "finished": "$(date -u +%Y-%m-%dT%H:%M:%SZ)", "load_start": "$LOAD_START",
$(machine_meta)
$fields
}, open(sys.argv[1], "w"), indent=1)
EOF
	mkdir -p "$(dirname "$OUT")"
	$PY "$SCRIPT_DIR/report.py" "$meta" "$@" >"$OUT" || die "report failed"
	log "wrote $OUT"
}
