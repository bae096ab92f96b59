#!/bin/sh
# reboot: queue a reboot of the target and answer at once, as Bolt's
# reboot task does; the reboot starts `timeout` seconds later (at least
# 3, so that the answer reaches the controller first). The task does not
# wait for the target to come back: run reboot::last_boot_time before and
# after (see the module's README.md). Built into muster.
#
# -> {"status": "queued", "timeout": SECONDS}
task_module=reboot

# >>> muster built-in task helpers: the same in every built-in task (a test checks)
set -f
LC_ALL=C
export LC_ALL
PATH="${PATH:-/usr/bin:/bin}:/usr/local/sbin:/usr/sbin:/sbin"
export PATH

# json_str VALUE prints VALUE as a JSON string. Control characters other
# than tab, carriage return and newline are dropped.
json_str() {
	printf '"'
	printf '%s' "$1" | tr -d '\000-\010\013\014\016-\037' | awk '
		BEGIN { ORS = "" }
		{
			if (NR > 1) print "\\n"
			n = length($0)
			for (i = 1; i <= n; i++) {
				c = substr($0, i, 1)
				if (c == "\\") print "\\\\"
				else if (c == "\"") print "\\\""
				else if (c == "\t") print "\\t"
				else if (c == "\r") print "\\r"
				else print c
			}
		}'
	printf '"'
}

# fail KIND MESSAGE [DETAILS]: print Bolt's error result, kind
# "<module>/KIND", with the DETAILS object (default {}), and exit 1.
fail() {
	fail_details=${3:-}
	[ -n "$fail_details" ] || fail_details='{}'
	printf '{"status":"failure","_error":{"kind":%s,"msg":%s,"details":%s}}\n' \
		"$(json_str "$task_module/$1")" "$(json_str "$2")" "$fail_details"
	exit 1
}

# run COMMAND...: run it with its output (stdout and stderr) in $cmd_out,
# its status in $cmd_rc and its words in $cmd_line. The output goes
# through a file, not a pipe, so a daemon the command leaves behind with
# the output still open does not keep the task waiting.
run_log=
trap 'rm -f "$run_log"' EXIT
run() {
	cmd_line=$*
	if [ -z "$run_log" ]; then
		run_log=$(mktemp "${TMPDIR:-/tmp}/muster-task.XXXXXX") || fail tmpdir-error "cannot create a temporary file in ${TMPDIR:-/tmp}"
	fi
	"$@" >"$run_log" 2>&1 </dev/null
	cmd_rc=$?
	cmd_out=$(cat "$run_log")
}

# fail_cmd MESSAGE: fail with kind command-failed, the last run command,
# its exit code and the last lines of its output as details.
fail_cmd() {
	fail command-failed "$1" "$(printf '{"command":%s,"exit_code":%d,"output":%s}' \
		"$(json_str "$cmd_line")" "$cmd_rc" "$(json_str "$(printf '%s\n' "$cmd_out" | tail -n 20)")")"
}

# init_pid1 prints the name of process 1, to say which init is running.
init_pid1() {
	cat /proc/1/comm 2>/dev/null || ps -p 1 -o comm= 2>/dev/null || echo unknown
}

# check_word PARAM VALUE: VALUE must not be empty, start with "-" or hold
# white space, since it is passed to a command as one argument.
check_word() {
	case $2 in
	'') fail invalid-parameter "parameter '$1' is required" ;;
	-*) fail invalid-parameter "parameter '$1' must not start with '-': got '$2'" ;;
	*[[:space:]]*) fail invalid-parameter "parameter '$1' must not contain white space: got '$2'" ;;
	esac
}
# <<< muster built-in task helpers

timeout=${PT_timeout:-3}
message=${PT_message:-}
case $timeout in
'' | *[!0-9]*) fail invalid-parameter "parameter 'timeout' must be a whole number of seconds: got '$timeout'" ;;
esac
case $message in
*'|'* | *'&'*) fail invalid-parameter "parameter 'message' must not contain '|' or '&'" ;;
esac
# Leading zeros would make $((...)) read the number as octal.
timeout=$(printf '%s\n' "$timeout" | sed 's/^0*\([0-9]\)/\1/')
[ "$timeout" -ge 3 ] || timeout=3

systemd_running() {
	[ -d /run/systemd/system ]
}

# A shutdown that is systemctl under another name only works while
# systemd runs.
shutdown=$(command -v shutdown 2>/dev/null) ||
	fail unsupported "cannot reboot $(uname -n): there is no shutdown command"
real=$(readlink -f "$shutdown" 2>/dev/null) || real=$shutdown
case $real in
*/systemctl)
	systemd_running ||
		fail unsupported "cannot reboot $(uname -n): $shutdown is systemd's, and systemd is not running (PID 1 is $(init_pid1))"
	;;
esac
if [ "$(id -u)" != 0 ]; then
	fail permission-denied "rebooting needs root, and the task runs as $(id -un 2>/dev/null || id -u): run it with --run-as root"
fi

# shutdown counts in minutes: sleep away the seconds that are left over,
# then ask for the reboot in the remaining whole minutes (users logged in
# get shutdown's warnings meanwhile). The job runs in its own session,
# away from the connection that started the task, which is closed when
# the task answers.
minutes=$((timeout / 60))
seconds=$((timeout % 60))
job='sleep "$1"; exec "$2" -r "+$3" ${4:+"$4"}'
if command -v setsid >/dev/null 2>&1; then
	setsid nohup sh -c "$job" reboot-task "$seconds" "$shutdown" "$minutes" "$message" </dev/null >/dev/null 2>&1 &
else
	nohup sh -c "$job" reboot-task "$seconds" "$shutdown" "$minutes" "$message" </dev/null >/dev/null 2>&1 &
fi

printf '{"status":"queued","timeout":%d}\n' "$timeout"
