#!/usr/bin/env bash
# bench/plans/run.sh: a 10-step plan of trivial commands on N loopback "hosts"
# (127.10.x.y, all answered by one real OpenSSH sshd), against an Ansible
# playbook of 10 raw tasks and 10 sequential pdsh calls. Counts handshakes
# (sshd connections) and channels (sessions) from sshd's log. Writes
# bench/results/plans.md. Run as root on Debian 12; see bench/README.md.
#
# Environment:
#   PLANS_N              targets (default 200)
#   PLANS_PARALLELISM    parallelism of every tool (default 100)
#   PLANS_PEERS          subset of run names (default: all): muster
#                        ansible-playbook pdsh-curve pdsh-default
#   PLANS_OUT            report path (default bench/results/plans.md)
#   MUSTER_BIN           use this muster binary instead of building ./cmd/muster
#   BENCH_RUN_TIMEOUT    seconds before one run is killed (default 1200)
#   BENCH_KEEP_TMP=1     keep the temp dir (logs of every run)
set -uo pipefail

BENCH_NAME=plans
# shellcheck source=../lib.sh
. "$(dirname "$0")/../lib.sh"

N=${PLANS_N:-200}
PAR=${PLANS_PARALLELISM:-100}
ONLY=${PLANS_PEERS:-}
OUT=${PLANS_OUT:-$REPO/bench/results/plans.md}
STEPS=10
MODPATH=$SCRIPT_DIR/modules
PLAN=bench::ten
PLAYBOOK=$SCRIPT_DIR/ten.yml

verify_plan() { # rc out err: exit 0 and the plan's return value says every target of the last step succeeded
	local rc=$1 out=$2
	if [ "$rc" != 0 ]; then echo "exit code $rc: $(first_err "$3")"; return; fi
	$PY - "$N" "$out" <<'PYEOF'
import json, sys
n = int(sys.argv[1])
try:
    d = json.load(open(sys.argv[2]))
except Exception as e:
    print("output is not JSON: %s" % str(e)[:80]); sys.exit()
if not (isinstance(d, dict) and d.get("ok") is True and d.get("count") == n):
    print("unexpected return value: %s" % json.dumps(d)[:100])
PYEOF
}
verify_playbook() { # rc out err: PLAY RECAP shows N hosts with ok=10 and nothing failed
	local rc=$1 out=$2 ok
	ok=$(grep -c -E "^127\.10\.[0-9.]+ +: ok=$STEPS +changed=[0-9]+ +unreachable=0 +failed=0" "$out")
	if [ "$ok" != "$N" ] || [ "$rc" != 0 ]; then
		echo "$ok/$N hosts ok=$STEPS in the recap, exit code $rc: $(grep -E 'UNREACHABLE|FAILED' "$out" | head -1 | cut -c1-100)"
	fi
}

ensure_packages openssh-server openssh-client ansible-core pdsh time
ensure_user
start_sshd
build_muster
[ -n "$MUSTER" ] || die "muster: $MUSTER_NOTE"

DIR=$TMP/n$N
make_inventories "$N" "$DIR"
log "N=$N parallelism=$PAR steps=$STEPS"

if selected muster; then
	measure "$DIR/muster" verify_plan nopost -- \
		"$MUSTER" plan run "$PLAN" -t all -i "$DIR/inventory.yaml" --modulepath "$MODPATH" \
		--concurrency "$PAR" --format json
fi
if selected ansible-playbook; then
	mkdir -p "$DIR/ansible-playbook/home"
	# Default ANSIBLE_SSH_ARGS (-C -o ControlMaster=auto -o ControlPersist=60s)
	# and key exchange; UserKnownHostsFile only keeps root's known_hosts clean.
	HOME=$DIR/ansible-playbook/home ANSIBLE_HOST_KEY_CHECKING=False ANSIBLE_TIMEOUT=60 ANSIBLE_NOCOLOR=1 \
		ANSIBLE_SSH_EXTRA_ARGS="-o UserKnownHostsFile=/dev/null" \
		measure "$DIR/ansible-playbook" verify_playbook close_ansible_masters -- \
		ansible-playbook -i "$DIR/ansible.ini" -f "$PAR" "$PLAYBOOK"
fi
for kex in curve default; do
	name=pdsh-$kex
	selected "$name" || continue
	# Ten pdsh calls, one after another, as a shell script runs them; each
	# must succeed (-S: exit code is the largest remote one).
	PDSH_SSH_ARGS="-F $D/ssh_config.$kex %h" \
		measure "$DIR/$name" verify_quiet nopost -- \
		sh -c 'for i in $(seq 1 "$1"); do pdsh -R ssh -S -f "$2" -t 60 -w "^$3" true || exit $?; done' \
		_ "$STEPS" "$PAR" "$DIR/hosts"
done

# ---------------------------------------------------------------- report
write_report "$DIR" <<EOF
"n": $N, "parallelism": $PAR, "steps": $STEPS, "plan": "$PLAN", "peers": """$ONLY""",
EOF
grep -E '^- \*\*(PASS|FAIL|n/a)' "$OUT" >&2
