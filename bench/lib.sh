# bench/lib.sh: shared setup for bench/tasks/run.sh and bench/plans/run.sh
# (bench/fanout/run.sh keeps its own copy of the same approach).
#
# Source it after setting:
#   BENCH_NAME  short name used in log lines and the temp dir ("tasks", "plans")
#   REPO        repository root
# It provides: log/die, ensure_packages, ensure_user, a temp dir $TMP with a
# cleanup trap, start_sshd (one OpenSSH sshd on 0.0.0.0 answering every
# 127.10.x.y "host"), CPU and connection counters, build_muster,
# make_inventories, close_ansible_masters and measure.
#
# sshd runs at LogLevel VERBOSE so every connection ("Connection from") and
# every session channel ("Starting session: ...") is one log line: that is how
# handshakes and channels are counted for every tool.

BENCH_USER=muster-bench
PY=/usr/bin/python3
TCK=$(getconf CLK_TCK)
NCPU=$(nproc)

log() { printf '%s %s: %s\n' "$(date +%H:%M:%S)" "$BENCH_NAME" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

[ "$(id -u)" = 0 ] || die "must run as root"

# ---------------------------------------------------------------- packages
ensure_packages() { # package...
	local missing=() p
	for p in "$@"; do
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
TMP=$(mktemp -d "/tmp/muster-$BENCH_NAME.XXXXXX") || die "mktemp failed"
chmod 755 "$TMP"
D=$TMP/ssh
SSHD_PID=
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
LogLevel VERBOSE
Subsystem sftp internal-sftp
EOF
	/usr/sbin/sshd -t -f "$D/sshd_config" || die "sshd config check failed"
	/usr/sbin/sshd -f "$D/sshd_config" -E "$D/sshd.log" || die "sshd failed to start"
	for _ in $(seq 1 50); do
		[ -s "$D/sshd.pid" ] && break
		sleep 0.1
	done
	SSHD_PID=$(cat "$D/sshd.pid" 2>/dev/null) || die "sshd wrote no pid file"
	kill -0 "$SSHD_PID" 2>/dev/null || die "sshd is not running"

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
	# The log must show connections and sessions, or the counts below are 0.
	grep -q 'Starting session: command' "$D/sshd.log" || die "sshd log has no 'Starting session' lines (LogLevel VERBOSE?)"
	log "sshd pid $SSHD_PID on 0.0.0.0:$PORT (LogLevel VERBOSE, $D/sshd.log)"
}

# utime+stime+cutime+cstime of the sshd listener, in clock ticks. The listener
# reaps every per-connection child, so their CPU lands in cutime/cstime once
# the connection has ended.
sshd_ticks() {
	sed 's/^.*) //' "/proc/$SSHD_PID/stat" | awk '{print $12+$13+$14+$15}'
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
# Wait until every per-connection sshd child has exited (been reaped).
wait_sshd_idle() {
	local i
	for i in $(seq 1 600); do
		[ -z "$(pgrep -P "$SSHD_PID" 2>/dev/null)" ] && return 0
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
	command -v go >/dev/null || { MUSTER_NOTE="go not in PATH"; return; }
	log "building muster"
	if (cd "$REPO" && CGO_ENABLED=0 go build -o "$TMP/muster" ./cmd/muster) >"$TMP/muster-build.log" 2>&1; then
		MUSTER=$TMP/muster
	else
		MUSTER_NOTE="go build failed: $(grep -v '^#' "$TMP/muster-build.log" | head -1 | cut -c1-160)"
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

# Ansible keeps ControlPersist masters (default ssh args) running after it
# exits. They are daemonized, so their CPU is in nobody's rusage: read it from
# /proc (ssh -O check gives each master's pid), write it to <dir>/extra_cpu,
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
nopost() { :; }

# ---------------------------------------------------------------- one measured run
RUN_TIMEOUT=${BENCH_RUN_TIMEOUT:-1200}
# measure DIR VERIFIER POSTHOOK -- cmd...
# Runs cmd under GNU time with stdout/stderr in DIR/out, DIR/err, then writes
# DIR/m.json: wall, user, sys (s), rss_kib, sshd_s (listener CPU delta, read
# once every connection has ended), tcp (TcpPassiveOpens delta), conns and
# sessions (sshd log lines), other_s (machine busy CPU not explained by the
# tool or sshd), status "ok" or "FAILED" and a reason.
# VERIFIER gets: rc out err; prints "" when the run did what it should.
measure() {
	local dir=$1 verifier=$2 post=$3
	shift 4
	mkdir -p "$dir"
	wait_sshd_idle || log "warning: sshd still has children before $dir"
	sleep 0.5
	local t0 t1 c0 c1 b0 b1 m0 rc idle=1
	t0=$(sshd_ticks); c0=$(passive_opens); b0=$(busy_ticks); m0=$(log_mark)
	/usr/bin/time -f '%e %U %S %M' -o "$dir/time" timeout -k 10 "$RUN_TIMEOUT" "$@" >"$dir/out" 2>"$dir/err" </dev/null
	rc=$?
	b1=$(busy_ticks)
	$post "$dir"
	wait_sshd_idle || idle=0
	sleep 0.3
	t1=$(sshd_ticks); c1=$(passive_opens)
	local conns sessions wall user sys rss reason=""
	conns=$(log_count "$m0" "$LOG_CONN")
	sessions=$(log_count "$m0" "$LOG_SESSION")
	read -r wall user sys rss < <(grep -E '^[0-9.]+ [0-9.]+ [0-9.]+ [0-9]+$' "$dir/time" | tail -1)
	if [ -s "$dir/extra_cpu" ] && [ -n "${user:-}" ]; then
		user=$(awk -v u="$user" -v x="$(cat "$dir/extra_cpu")" 'BEGIN{printf "%.2f", u+x}')
	fi
	if [ "$rc" = 124 ] || [ "$rc" = 137 ]; then
		reason="timed out after ${RUN_TIMEOUT}s"
	else
		reason=$($verifier "$rc" "$dir/out" "$dir/err")
	fi
	[ -z "$reason" ] && [ $idle = 0 ] && reason="sshd connections still open after the run"
	REASON=$reason $PY - "$dir/m.json" <<EOF
import json, os, sys
def f(x):
    try: return float(x)
    except Exception: return None
wall, user, sys_, sshd = f("${wall:-}"), f("${user:-}"), f("${sys:-}"), ($t1 - $t0) / $TCK
busy = ($b1 - $b0) / $TCK
json.dump({"wall": wall, "user": user, "sys": sys_, "rss_kib": f("${rss:-}"),
  "sshd_s": sshd, "tcp": $c1 - $c0, "conns": $conns, "sessions": $sessions,
  "other_s": max(0.0, busy - (user or 0) - (sys_ or 0) - sshd),
  "rc": $rc, "status": "FAILED" if os.environ["REASON"] else "ok", "reason": os.environ["REASON"]},
  open(sys.argv[1], "w"))
EOF
	if [ -n "$reason" ]; then
		log "$(basename "$dir") FAILED ($reason) wall=${wall:-?}s"
	else
		log "$(basename "$dir") wall=${wall}s client=$(awk -v u="$user" -v s="$sys" 'BEGIN{print u+s}')s sshd=$(awk -v a="$t0" -v b="$t1" -v t="$TCK" 'BEGIN{printf "%.2f", (b-a)/t}')s conns=$conns sessions=$sessions tcp=$((c1 - c0))"
	fi
}

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
# verify_quiet rc out err: pdsh -S / clush -S: exit 0 and nothing on stderr.
verify_quiet() {
	local rc=$1 err=$3
	if [ "$rc" != 0 ]; then echo "exit code $rc: $(first_err "$err")"
	elif [ -s "$err" ]; then echo "stderr: $(first_err "$err")"; fi
}

machine_meta() { # prints JSON fields (no braces) describing the machine and tools
	cat <<EOF
"nproc": $NCPU,
"cpu": """$(grep -m1 'model name' /proc/cpuinfo | sed 's/.*: //')""",
"mem": """$(awk '/MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo)""",
"kernel": """$(uname -sr)""",
"os": """$(. /etc/os-release && echo "$PRETTY_NAME")""",
"openssh": """$(ssh -V 2>&1)""",
"pdsh": """$(pdsh -V 2>&1 | head -1)""",
"ansible": """$(ansible --version 2>&1 | head -1)""",
"go": """$(command -v go >/dev/null && go version)""",
"muster": """$(cd "$REPO" && echo "git $(git rev-parse --short HEAD 2>/dev/null)$(git status --porcelain 2>/dev/null | grep -q . && echo ' (dirty tree)')")""",
EOF
}
