#!/usr/bin/env bash
# bench/fanout/run.sh: fan-out benchmark of muster against pdsh, parallel-ssh,
# clush and Ansible. It runs `true` on N loopback "hosts" (127.10.x.y, all
# answered by one real OpenSSH sshd) and writes bench/results/fanout.md.
#
# Run as root on a Debian 12 machine; everything it needs is set up here.
# See bench/README.md for what the columns mean.
#
# Environment:
#   FANOUT_SIZES        target counts to run (default "100 500 1000")
#   FANOUT_PARALLELISM  parallelism of every tool (default 100)
#   FANOUT_SLOW_PEERS   1 = every peer config at every N; 0 = skip the slow
#                       peer configs everywhere; auto (default) = skip them at
#                       N >= FANOUT_SLOW_FROM (default 1000)
#   FANOUT_PEERS        space-separated subset of run names to run (default: all);
#                       names: muster pdsh-default pdsh-curve pssh-default
#                       pssh-curve clush-default clush-curve ansible-raw-default
#                       ansible-raw-curve ansible-command-default muster-warm
#   FANOUT_RUN_TIMEOUT  seconds before one run is killed and marked FAILED (900)
#   FANOUT_OUT          report path (default bench/results/fanout.md)
#   MUSTER_BIN          use this muster binary instead of building ./cmd/muster
#   FANOUT_KEEP_TMP=1   keep the temp dir (logs of every run) for debugging
set -uo pipefail

SCRIPT_DIR=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$SCRIPT_DIR/../.." && pwd)
SIZES=${FANOUT_SIZES:-"100 500 1000"}
PAR=${FANOUT_PARALLELISM:-100}
# Rounds per size: every tool runs once per round, rounds one after another,
# so a burst of load from other processes hits every tool alike; the report
# judges each tool by its median round.
ROUNDS=${FANOUT_ROUNDS:-1}
SLOW=${FANOUT_SLOW_PEERS:-auto}
SLOW_FROM=${FANOUT_SLOW_FROM:-1000}
ONLY=${FANOUT_PEERS:-}
RUN_TIMEOUT=${FANOUT_RUN_TIMEOUT:-900}
OUT=${FANOUT_OUT:-$REPO/bench/results/fanout.md}
BENCH_USER=muster-bench
PY=/usr/bin/python3
# Peer configs that are skipped at large N unless FANOUT_SLOW_PEERS=1. They are
# the slowest ones (Ansible at defaults: ~140 s and ~300 s at N=1000 on 2 cores)
# and never the fastest peer at defaults, so the targets stay computable.
SLOW_RUNS="ansible-command-default ansible-raw-default"

log() { printf '%s fanout: %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

[ "$(id -u)" = 0 ] || die "must run as root"

# ---------------------------------------------------------------- packages
ensure_packages() {
	local missing=() p
	for p in openssh-server openssh-client pdsh clustershell pssh ansible-core time; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
	done
	if [ ${#missing[@]} -gt 0 ]; then
		log "installing ${missing[*]}"
		apt-get update >/dev/null || die "apt-get update failed"
		DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}" >/dev/null ||
			die "apt-get install ${missing[*]} failed"
	fi
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
TMP=$(mktemp -d /tmp/muster-fanout.XXXXXX) || die "mktemp failed"
chmod 755 "$TMP"
D=$TMP/ssh
SSHD_PID=
REAPER_PID=
cleanup() {
	local rc=$? c
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
	if [ "${FANOUT_KEEP_TMP:-0}" = 1 ]; then
		log "kept $TMP"
	else
		rm -rf "$TMP"
	fi
	exit $rc
}
trap cleanup EXIT
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

start_sshd() {
	mkdir -p "$D" && chmod 755 "$D"
	ssh-keygen -q -t ed25519 -N '' -C fanout-host -f "$D/host_ed25519" || die "ssh-keygen"
	ssh-keygen -q -t ed25519 -N '' -C fanout-client -f "$D/client_ed25519" || die "ssh-keygen"
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
LogLevel ERROR
Subsystem sftp internal-sftp
EOF
	/usr/sbin/sshd -t -f "$D/sshd_config" || die "sshd config check failed"
	# sshd runs in the foreground (-D) under sshd_reaper.py, which adopts the
	# session processes sshd orphans and counts their CPU (see sshd_ticks).
	$PY "$SCRIPT_DIR/sshd_reaper.py" "$D/orphan_ticks" -- /usr/sbin/sshd -D -f "$D/sshd_config" -E "$D/sshd.log" \
		</dev/null >"$D/reaper.log" 2>&1 &
	REAPER_PID=$!
	for _ in $(seq 1 50); do
		[ -s "$D/sshd.pid" ] && break
		sleep 0.1
	done
	SSHD_PID=$(cat "$D/sshd.pid" 2>/dev/null) || die "sshd wrote no pid file: $(cat "$D/reaper.log")"
	kill -0 "$SSHD_PID" 2>/dev/null || die "sshd is not running"
	[ -s "$D/orphan_ticks" ] || die "sshd_reaper.py is not running: $(cat "$D/reaper.log")"

	# Client configs for the peers: one at OpenSSH's default key exchange, one
	# tuned to curve25519-sha256. -F also keeps /etc/ssh/ssh_config out.
	local kex
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
	log "sshd pid $SSHD_PID on 0.0.0.0:$PORT"
}

# sshd CPU in clock ticks: utime+stime+cutime+cstime of the listener, which
# reaps every per-connection process it forked, plus the CPU of the session
# processes that were orphaned on the way (sshd_reaper.py reaps those). When a
# client ends with SSH_MSG_DISCONNECT (OpenSSH's ssh always does) or a TCP
# reset (muster), sshd's monitor exits without waiting for its post-auth
# session process; that process and the command it ran (~4 ms per login) then
# never reach the listener's cutime/cstime.
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
# Wait until every per-connection sshd process has exited and been reaped,
# by the listener or (orphans) by sshd_reaper.py.
wait_sshd_idle() {
	local i
	for i in $(seq 1 600); do
		if [ -z "$(pgrep -P "$SSHD_PID" 2>/dev/null)" ] &&
			[ -z "$(pgrep -P "$REAPER_PID" 2>/dev/null | grep -vx "$SSHD_PID")" ]; then
			sleep 0.1 # let the reaper write the orphan it has just reaped
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
		if [ -x "$MUSTER_BIN" ]; then
			MUSTER=$MUSTER_BIN
		else
			MUSTER_NOTE="MUSTER_BIN=$MUSTER_BIN is not executable"
		fi
		return
	fi
	if [ ! -d "$REPO/cmd/muster" ]; then
		MUSTER_NOTE="$REPO/cmd/muster does not exist"
		return
	fi
	if ! command -v go >/dev/null; then
		MUSTER_NOTE="go not in PATH"
		return
	fi
	log "building muster"
	if (cd "$REPO" && CGO_ENABLED=0 go build -o "$TMP/muster" ./cmd/muster) >"$TMP/muster-build.log" 2>&1; then
		MUSTER=$TMP/muster
	else
		MUSTER_NOTE="go build failed: $(grep -v '^#' "$TMP/muster-build.log" | head -1 | cut -c1-160)"
	fi
}

# Warm measurement: CPU per further command on already-open connections. It
# needs the in-process API (internal/ssh, internal/inventory), built from
# bench/fanout/warm (package main, built with the module).
WARM=""
WARM_NOTE=""
build_warm() {
	if [ -n "${FANOUT_WARM_BIN:-}" ]; then
		WARM=$FANOUT_WARM_BIN
		return
	fi
	if [ ! -d "$REPO/internal/ssh" ] || [ ! -d "$REPO/internal/inventory" ]; then
		# TODO(fanout): internal/ssh and internal/inventory did not exist when this
		# benchmark was written; bench/fanout/warm is built once they do.
		WARM_NOTE="TODO: internal/ssh or internal/inventory missing, warm pass not measured"
		return
	fi
	if [ ! -f "$SCRIPT_DIR/warm/main.go" ]; then
		WARM_NOTE="TODO: bench/fanout/warm/main.go not written yet"
		return
	fi
	if ! command -v go >/dev/null; then
		WARM_NOTE="not built: go not in PATH"
		return
	fi
	log "building warm helper"
	if (cd "$REPO" && CGO_ENABLED=0 go build -o "$TMP/fanout-warm" ./bench/fanout/warm) >"$TMP/warm-build.log" 2>&1; then
		WARM=$TMP/fanout-warm
	else
		WARM_NOTE="not built: $(grep -v '^#' "$TMP/warm-build.log" | head -1 | cut -c1-160)"
	fi
}

# ---------------------------------------------------------------- per-N files
make_inventories() { # N
	local n=$1 dir=$TMP/n$1 i
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

# ---------------------------------------------------------------- verification
# Each verifier gets: N rc stdout stderr; prints "" when all N hosts succeeded,
# else a short reason.
first_err() { grep -v '^\s*$' "$1" | head -1 | cut -c1-140; }

verify_muster() {
	local n=$1 rc=$2 out=$3 err=$4 r
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
	if [ -n "$r" ]; then echo "$r"; elif [ "$rc" != 0 ]; then echo "exit code $rc"; fi
}
verify_quiet() { # pdsh -S, clush -S: exit code is the max remote rc; errors go to stderr
	local n=$1 rc=$2 out=$3 err=$4
	if [ "$rc" != 0 ]; then
		echo "exit code $rc: $(first_err "$err")"
	elif [ -s "$err" ]; then
		echo "stderr: $(first_err "$err")"
	fi
}
verify_pssh() {
	local n=$1 rc=$2 out=$3 err=$4 ok
	ok=$(grep -c ' \[SUCCESS\] ' "$out")
	if [ "$ok" != "$n" ] || [ "$rc" != 0 ]; then
		echo "$ok/$n [SUCCESS], exit code $rc: $(grep -v ' \[SUCCESS\] ' "$out" | head -1 | cut -c1-100)"
	fi
}
verify_ansible() {
	local n=$1 rc=$2 out=$3 err=$4 ok
	ok=$(grep -c -E ' \| (CHANGED|SUCCESS) \| rc=0 ' "$out")
	if [ "$ok" != "$n" ] || [ "$rc" != 0 ]; then
		echo "$ok/$n rc=0, exit code $rc: $(grep -v -E ' \| (CHANGED|SUCCESS) \| rc=0 ' "$out" | head -1 | cut -c1-100)"
	fi
}

# Ansible keeps ControlPersist masters (default ssh args) running after it
# exits. They are daemonized, so their CPU is in nobody's rusage: read it from
# /proc (ssh -O check gives each master's pid) and add it to the client CPU,
# then close them so their sshd connections end and get counted.
close_ansible_masters() { # run dir; the run's HOME is <run dir>/home
	local cp=$1/home/.ansible/cp
	[ -d "$cp" ] || return 0
	find "$cp" -type s -print0 | xargs -0 -r -n 1 -P 32 sh -c '
		pid=$(ssh -F /dev/null -o ControlPath="$1" -O check x 2>&1 | sed -n "s/.*pid=\([0-9]*\).*/\1/p")
		[ -n "$pid" ] && sed "s/^.*) //" "/proc/$pid/stat" 2>/dev/null | awk "{print \$12+\$13+\$14+\$15}"
		ssh -F /dev/null -o ControlPath="$1" -O exit x >/dev/null 2>&1
		exit 0' _ | awk -v t="$TCK" '{s+=$1} END {printf "%.2f\n", s/t}' >"$1/extra_cpu"
}

# ---------------------------------------------------------------- one run
ROWS=$TMP/rows.tsv
: >"$ROWS"
NCPU=$(nproc)
TCK=$(getconf CLK_TCK)

record() { # N name status wall user sys rss_kb sshd_s conns note other_cpu_s
	local IFS=$'\t'
	echo "$*" >>"$ROWS"
}

# measure N name verifier posthook -- cmd...
measure() {
	local n=$1 name=$2 verifier=$3 post=$4
	shift 5
	local dir=$TMP/n$n/$name
	mkdir -p "$dir"
	wait_sshd_idle || log "warning: sshd still has children before $name"
	sleep 0.5
	local t0 t1 c0 c1 b0 b1 rc
	t0=$(sshd_ticks)
	c0=$(passive_opens)
	b0=$(busy_ticks)
	/usr/bin/time -f '%e %U %S %M' -o "$dir/time" timeout -k 10 "$RUN_TIMEOUT" "$@" >"$dir/out" 2>"$dir/err" </dev/null
	rc=$?
	b1=$(busy_ticks)
	$post "$dir"
	local idle=1
	wait_sshd_idle || idle=0
	t1=$(sshd_ticks)
	c1=$(passive_opens)
	local wall user sys rss
	read -r wall user sys rss < <(grep -E '^[0-9.]+ [0-9.]+ [0-9.]+ [0-9]+$' "$dir/time" | tail -1)
	if [ -s "$dir/extra_cpu" ] && [ -n "${user:-}" ]; then # CPU of detached helpers (Ansible's masters)
		user=$(awk -v u="$user" -v x="$(cat "$dir/extra_cpu")" 'BEGIN{printf "%.2f", u+x}')
	fi
	local sshd_s conns reason
	sshd_s=$(awk -v a="$t0" -v b="$t1" -v t="$TCK" 'BEGIN{printf "%.2f", (b-a)/t}')
	conns=$((c1 - c0))
	# CPU burnt by everything else on the machine while the tool ran (noise):
	# machine busy time minus the tool's and sshd's CPU. sshd CPU is read after
	# the run, so ~0 is the best case; a large value means the run was disturbed.
	local other
	other=$(awk -v a="$b0" -v b="$b1" -v t="$TCK" -v u="${user:-0}" -v s="${sys:-0}" -v d="$sshd_s" \
		'BEGIN{x=(b-a)/t-u-s-d; if (x<0) x=0; printf "%.2f", x}')
	if [ "$rc" = 124 ] || [ "$rc" = 137 ]; then
		reason="timed out after ${RUN_TIMEOUT}s"
	else
		reason=$($verifier "$n" "$rc" "$dir/out" "$dir/err")
	fi
	[ -z "$reason" ] && [ "$conns" -lt "$n" ] && reason="only $conns TCP connections accepted for $n targets"
	[ -z "$reason" ] && [ $idle = 0 ] && reason="sshd connections still open after the run"
	reason=${reason//$'\t'/ }
	reason=${reason//$'\n'/ }
	if [ -n "$reason" ]; then
		record "$n" "$name" FAILED "${wall:-}" "${user:-}" "${sys:-}" "${rss:-}" "$sshd_s" "$conns" "$reason" "$other"
		log "N=$n $name FAILED ($reason) wall=${wall:-?}s"
	else
		record "$n" "$name" ok "$wall" "$user" "$sys" "$rss" "$sshd_s" "$conns" "" "$other"
		log "N=$n $name wall=${wall}s client=$(awk -v u="$user" -v s="$sys" 'BEGIN{print u+s}')s sshd=${sshd_s}s conns=$conns rss=${rss}KiB"
	fi
}
nopost() { :; }

wanted() { # name N -> 0 if this run should happen; else prints the reason
	local name=$1 n=$2
	if [ -n "$ONLY" ] && ! [[ " $ONLY " == *" $name "* ]]; then
		echo "not selected (FANOUT_PEERS)"
		return 1
	fi
	if [[ " $SLOW_RUNS " == *" $name "* ]]; then
		if [ "$SLOW" = 0 ] || { [ "$SLOW" = auto ] && [ "$n" -ge "$SLOW_FROM" ]; }; then
			echo "skipped: slow peer config (FANOUT_SLOW_PEERS=$SLOW)"
			return 1
		fi
	fi
	return 0
}

run_size() {
	local n=$1 dir=$TMP/n$1 name why kex
	make_inventories "$n"
	log "N=$n"
	local round
	for round in $(seq 1 "$ROUNDS"); do
	[ "$ROUNDS" -gt 1 ] && log "N=$n round $round of $ROUNDS"
	for name in muster pdsh-default pdsh-curve pssh-default pssh-curve clush-default clush-curve \
		ansible-raw-default ansible-raw-curve ansible-command-default; do
		if ! why=$(wanted "$name" "$n"); then
			[ "$round" -eq 1 ] && record "$n" "$name" skipped "" "" "" "" "" "" "$why"
			continue
		fi
		kex=default
		[[ $name == *-curve ]] && kex=curve
		case $name in
		muster)
			if [ -z "$MUSTER" ]; then
				record "$n" muster "not built" "" "" "" "" "" "" "$MUSTER_NOTE"
				continue
			fi
			measure "$n" muster verify_muster nopost -- \
				"$MUSTER" command run true -t all -i "$dir/inventory.yaml" --concurrency "$PAR" --format json
			;;
		pdsh-*)
			PDSH_SSH_ARGS="-F $D/ssh_config.$kex %h" \
				measure "$n" "$name" verify_quiet nopost -- \
				pdsh -R ssh -S -f "$PAR" -t 60 -w "^$dir/hosts" true
			;;
		pssh-*)
			measure "$n" "$name" verify_pssh nopost -- \
				parallel-ssh -x "-F $D/ssh_config.$kex" -p "$PAR" -t 0 -h "$dir/hosts" true
			;;
		clush-*)
			measure "$n" "$name" verify_quiet nopost -- \
				clush -S -o "-F $D/ssh_config.$kex" -f "$PAR" -t 60 --hostfile="$dir/hosts" true
			;;
		ansible-*)
			local mod=raw extra="-o UserKnownHostsFile=/dev/null" h=$dir/$name/home
			[[ $name == ansible-command-* ]] && mod=command
			[ $kex = curve ] && extra="$extra -o KexAlgorithms=curve25519-sha256"
			mkdir -p "$h"
			# Default ANSIBLE_SSH_ARGS (ControlMaster=auto, ControlPersist=60s) are
			# kept; UserKnownHostsFile only keeps root's known_hosts clean.
			HOME=$h ANSIBLE_HOST_KEY_CHECKING=False ANSIBLE_TIMEOUT=60 ANSIBLE_NOCOLOR=1 \
				ANSIBLE_SSH_EXTRA_ARGS="$extra" \
				measure "$n" "$name" verify_ansible close_ansible_masters -- \
				ansible bench -i "$dir/ansible.ini" -f "$PAR" -m "$mod" -a true -o
			;;
		esac
	done
	done
	if why=$(wanted muster-warm "$n"); then
		if [ -n "$WARM" ]; then
			wait_sshd_idle || log "warning: sshd still has children before muster-warm"
			log "N=$n muster-warm"
			local w0 w1
			w0=$(sshd_ticks)
			if timeout -k 10 "$RUN_TIMEOUT" "$WARM" -i "$dir/inventory.yaml" -concurrency "$PAR" \
				>"$dir/warm.json" 2>"$dir/warm.err" && [ -s "$dir/warm.json" ]; then
				log "N=$n muster-warm $(cat "$dir/warm.json" | cut -c1-200)"
			else
				echo "{\"n\": $n, \"error\": $(head -c 300 "$dir/warm.err" | $PY -c 'import json,sys; print(json.dumps(sys.stdin.read()))')}" >"$dir/warm.json"
				log "N=$n muster-warm FAILED: $(head -c 200 "$dir/warm.err")"
			fi
			wait_sshd_idle || true
			w1=$(sshd_ticks)
			# Add the sshd CPU of the whole warm run (connect + every pass).
			$PY -c 'import json,sys; d=json.load(open(sys.argv[1])); d["sshd_cpu_s"]=(float(sys.argv[3])-float(sys.argv[2]))/int(sys.argv[4]); print(json.dumps(d))' \
				"$dir/warm.json" "$w0" "$w1" "$TCK" >>"$TMP/warm.jsonl"
		fi
	fi
}

# ---------------------------------------------------------------- main
started=$(date -u +%Y-%m-%dT%H:%M:%SZ)
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
ensure_packages
ensure_user
start_sshd
build_muster
build_warm
[ -n "$MUSTER" ] && log "muster: $MUSTER" || log "muster: $MUSTER_NOTE"
[ -n "$WARM" ] || log "warm: $WARM_NOTE"

for n in $SIZES; do
	run_size "$n"
done

# ---------------------------------------------------------------- report
META=$TMP/meta.json
$PY - "$META" <<EOF
import json, sys
json.dump({
    "started": "$started",
    "finished": "$(date -u +%Y-%m-%dT%H:%M:%SZ)",
    "nproc": $NCPU,
    "load_start": "$LOAD_START",
    "cpu": """$(grep -m1 'model name' /proc/cpuinfo | sed 's/.*: //')""",
    "mem": """$(awk '/MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo)""",
    "kernel": """$(uname -sr)""",
    "os": """$(. /etc/os-release && echo "$PRETTY_NAME")""",
    "openssh": """$(ssh -V 2>&1)""",
    "pdsh": """$(pdsh -V 2>&1 | head -1)""",
    "clush": """$(clush --version 2>&1)""",
    "pssh": """parallel-ssh $(parallel-ssh --version 2>&1)""",
    "ansible": """$(ansible --version 2>&1 | head -1)""",
    "python": """$($PY --version 2>&1)""",
    "go": """$(command -v go >/dev/null && go version)""",
    "muster": """$( [ -n "$MUSTER" ] && { cd "$REPO" && echo "git $(git rev-parse --short HEAD 2>/dev/null)$(git status --porcelain 2>/dev/null | grep -q . && echo ' (dirty tree)')"; } || echo "$MUSTER_NOTE")""",
    "warm_note": """$WARM_NOTE""",
    "parallelism": $PAR,
    "rounds": $ROUNDS,
    "sizes": "$SIZES",
    "slow_peers": "$SLOW",
    "slow_from": $SLOW_FROM,
    "slow_runs": "$SLOW_RUNS",
}, open(sys.argv[1], "w"), indent=1)
EOF
mkdir -p "$(dirname "$OUT")"
[ -f "$TMP/warm.jsonl" ] || : >"$TMP/warm.jsonl"
$PY "$SCRIPT_DIR/report.py" "$META" "$ROWS" "$TMP/warm.jsonl" >"$OUT" || die "report failed"
cp "$ROWS" "${OUT%.md}.tsv"
log "wrote $OUT"
