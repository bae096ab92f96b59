# muster_common/files/common.sh: the shell helpers of muster's built-in
# tasks (package, service, facts, reboot). Each task lists this file in its
# metadata's "files", so muster (and Bolt) ship it with the task and pass
# its install directory in PT__installdir; the task sets task_module (the
# kind prefix of its errors) and sources it:
#
#   task_module=package
#   . "$PT__installdir/muster_common/files/common.sh"
#
# POSIX sh: it runs under dash, bash and busybox sh alike.

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

# pick_manager WHAT: set $manager from the manager and provider parameters
# (PT_manager, PT_provider), each mapped by the task's own
# "manager_of PARAM VALUE"; when both are given they must name the same
# manager. WHAT names the kind of manager in the error. $manager stays
# empty when neither is given (the task detects one).
pick_manager() {
	manager=
	[ -z "${PT_manager:-}" ] || manager=$(manager_of manager "$PT_manager") || { echo "$manager"; exit 1; }
	if [ -n "${PT_provider:-}" ]; then
		from_provider=$(manager_of provider "$PT_provider") || { echo "$from_provider"; exit 1; }
		if [ -n "$manager" ] && [ "$manager" != "$from_provider" ]; then
			fail invalid-parameter "parameters 'manager' ($PT_manager) and 'provider' ($PT_provider) name different $1 managers"
		fi
		manager=$from_provider
	fi
}
