#!/usr/bin/env bash
# bench/tasks/run.sh: cost of a Bolt-format task on N loopback "hosts"
# (127.10.x.y, all answered by one real OpenSSH sshd), cold and warm, against
# Ansible's script module and a plain `command run`. Writes
# bench/results/tasks.md. Run as root on Debian 12; see bench/README.md.
#
# Environment:
#   TASKS_N              targets (default 1000)
#   TASKS_PARALLELISM    parallelism of every tool (default 100)
#   TASKS_PEERS          subset of run names (default: all): muster-cold
#                        muster-command warm ansible-script-curve ansible-script-default
#   TASKS_OUT            report path (default bench/results/tasks.md)
#   MUSTER_BIN           use this muster binary instead of building ./cmd/muster
#   BENCH_RUN_TIMEOUT    seconds before one run is killed (default 1200)
#   BENCH_KEEP_TMP=1     keep the temp dir (logs of every run)
set -uo pipefail

BENCH_NAME=tasks
# shellcheck source=../lib.sh
. "$(dirname "$0")/../lib.sh"

N=${TASKS_N:-1000}
PAR=${TASKS_PARALLELISM:-100}
ONLY=${TASKS_PEERS:-}
OUT=${TASKS_OUT:-$REPO/bench/results/tasks.md}
MODPATH=$SCRIPT_DIR/modules
TASK=bench::echo
MESSAGE=hello
SCRIPT=$MODPATH/bench/tasks/echo.sh
# The one-liner equivalent of the task (what it prints).
ONELINER="echo '{\"message\": \"$MESSAGE\"}'"

verify_ansible_script() { # rc out err: N "host | CHANGED => {json}" lines with rc 0 and the task's output
	local rc=$1 out=$2 r
	r=$($PY - "$N" "$out" "$MESSAGE" <<'PYEOF'
import json, sys
n, path, msg = int(sys.argv[1]), sys.argv[2], sys.argv[3]
ok, bad = 0, None
for line in open(path, errors="replace"):
    host, sep, rest = line.partition(" | CHANGED => ")
    try:
        d = json.loads(rest) if sep else None
    except ValueError:
        d = None
    if d and d.get("rc") == 0 and ('"message": "%s"' % msg) in d.get("stdout", ""):
        ok += 1
    elif bad is None and line.strip():
        bad = line.strip()[:100]
if ok != n:
    print("%d/%d CHANGED with rc 0 and the message: %s" % (ok, n, bad or ""))
PYEOF
)
	if [ -n "$r" ]; then echo "$r"; elif [ "$rc" != 0 ]; then echo "exit code $rc"; fi
}

ensure_packages openssh-server openssh-client ansible-core time
ensure_user
start_sshd
build_muster
[ -n "$MUSTER" ] || die "muster: $MUSTER_NOTE"
WARM=$TMP/tasks-warm
WARM_NOTE=$(build_go ./bench/tasks/warm "$WARM") || { log "warm helper: $WARM_NOTE"; WARM=""; }

DIR=$TMP/n$N
make_inventories "$N" "$DIR"
log "N=$N parallelism=$PAR"

if selected muster-cold; then
	# One CLI process: connect, stream the task with its parameters (1 channel),
	# then remove the task cache before exiting (1 channel).
	measure "$DIR/muster-cold" verify_n_json nopost -- \
		"$MUSTER" task run "$TASK" message="$MESSAGE" -t all -i "$DIR/inventory.yaml" \
		--modulepath "$MODPATH" --concurrency "$PAR" --format json
fi
if selected muster-command; then
	measure "$DIR/muster-command" verify_n_json nopost -- \
		"$MUSTER" command run "$ONELINER" -t all -i "$DIR/inventory.yaml" --concurrency "$PAR" --format json
fi
if selected warm && [ -n "$WARM" ]; then
	# One process: task (cold: connects, uploads), then four rounds of task
	# (warm) and command (the one-liner, warm), then cleanup. The report uses
	# the median warm pass of each kind.
	verify_warm() { # rc out err
		[ "$1" = 0 ] || { echo "exit code $1: $(first_err "$3")"; return; }
		$PY - "$N" "$2" <<'EOF'
import json, sys
n = int(sys.argv[1])
try:
    d = json.load(open(sys.argv[2]))
except Exception as e:
    print("output is not JSON: %s" % str(e)[:80]); sys.exit()
for i, p in enumerate(d["passes"]):
    if p["ok"] != n:
        print("pass %d (%s): %d/%d ok: %s" % (i + 1, p["kind"], p["ok"], n, p.get("first_error", "")[:100])); break
EOF
	}
	measure "$DIR/warm" verify_warm nopost -- \
		"$WARM" -i "$DIR/inventory.yaml" -modulepath "$MODPATH" -task "$TASK" -concurrency "$PAR" \
		-passes task,task,command,task,command,task,command,task,command -command "$ONELINER" \
		-sshd-pid "$SSHD_PID" -sshd-log "$D/sshd.log" message="$MESSAGE"
fi
for kex in curve default; do
	name=ansible-script-$kex
	selected "$name" || continue
	extra="-o UserKnownHostsFile=/dev/null"
	[ $kex = curve ] && extra="$extra -o KexAlgorithms=curve25519-sha256"
	mkdir -p "$DIR/$name/home"
	# Default ANSIBLE_SSH_ARGS (-C -o ControlMaster=auto -o ControlPersist=60s)
	# are kept; the script module copies the script over (sftp), runs it, and
	# removes its temp dir.
	HOME=$DIR/$name/home ANSIBLE_HOST_KEY_CHECKING=False ANSIBLE_TIMEOUT=60 ANSIBLE_NOCOLOR=1 \
		ANSIBLE_SSH_EXTRA_ARGS="$extra" \
		measure "$DIR/$name" verify_ansible_script close_ansible_masters -- \
		ansible bench -i "$DIR/ansible.ini" -f "$PAR" -m script -a "$SCRIPT $MESSAGE" -o
done

# ---------------------------------------------------------------- report
write_report "$DIR" <<EOF
"n": $N, "parallelism": $PAR, "task": "$TASK", "message": "$MESSAGE",
"oneliner": """$ONELINER""", "warm_note": """${WARM_NOTE:-}""", "peers": """$ONLY""",
EOF
grep -E '^- \*\*(PASS|FAIL|n/a)' "$OUT" >&2
