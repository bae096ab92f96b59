#!/bin/sh
# reboot: queue a reboot of the target and answer at once, as Bolt's
# reboot task does; the reboot starts `timeout` seconds later (at least
# 3, so that the answer reaches the controller first). The task does not
# wait for the target to come back: run reboot::last_boot_time before and
# after (see the module's README.md). Built into muster.
#
# -> {"status": "queued", "timeout": SECONDS}
task_module=reboot

# The helpers every built-in task shares (json_str, fail, run, check_word,
# pick_manager, ...), shipped with it as the task's "files".
. "${PT__installdir:?run this task with muster or Bolt, which ship its files}/muster_common/files/common.sh"

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
