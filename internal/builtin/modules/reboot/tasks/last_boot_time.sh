#!/bin/sh
# reboot::last_boot_time: when the target last booted, and the kernel's
# boot id, which changes at every boot: compare the answers from before
# and after a reboot to know it happened. Built into muster.
#
# -> {"last_boot_time": "2006-01-02T15:04:05+0000", "epoch": SECONDS,
#     "boot_id": "UUID"}
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

epoch=$(awk '$1 == "btime" { print $2; exit }' /proc/stat 2>/dev/null)
[ -n "$epoch" ] || fail unsupported "cannot tell when $(uname -n) booted: /proc/stat has no btime line"
when=$(date -d "@$epoch" '+%Y-%m-%dT%H:%M:%S%z' 2>/dev/null) ||
	when=$(date -r "$epoch" '+%Y-%m-%dT%H:%M:%S%z' 2>/dev/null) ||
	when=
boot_id=$(cat /proc/sys/kernel/random/boot_id 2>/dev/null) || boot_id=
printf '{"last_boot_time":%s,"epoch":%d,"boot_id":%s}\n' "$(json_str "$when")" "$epoch" "$(json_str "$boot_id")"
