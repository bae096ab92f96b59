#!/bin/sh
# service: start, stop, restart, enable, disable or report one service
# with systemd or sysvinit (the service command and /etc/init.d scripts;
# update-rc.d or chkconfig for enable and disable). Built into muster;
# the parameters and results are those of Bolt's service task.
#
# start    -> {"status": "started"} or {"status": "in_sync"}
# stop     -> {"status": "stopped"} or {"status": "in_sync"}
# restart  -> {"status": "restarted"}
# enable   -> {"status": "enabled"} or {"status": "in_sync"}
# disable  -> {"status": "disabled"} or {"status": "in_sync"}
# status   -> {"status": "running" | "stopped", "enabled": "true" | "false"}
task_module=service

# The helpers every built-in task shares (json_str, fail, run, check_word,
# pick_manager, ...), shipped with it as the task's "files".
. "${PT__installdir:?run this task with muster or Bolt, which ship its files}/muster_common/files/common.sh"

action=${PT_action:-}
name=${PT_name:-}

case $action in
start | stop | restart | enable | disable | status) ;;
'') fail invalid-parameter "parameter 'action' is required: start, stop, restart, enable, disable or status" ;;
*) fail invalid-parameter "parameter 'action': unknown action '$action': use start, stop, restart, enable, disable or status" ;;
esac
check_word name "$name"
case $name in
*/*) fail invalid-parameter "parameter 'name' must be a service name, not a path: got '$name'" ;;
esac

# manager_of PARAM VALUE prints the manager (systemd, sysvinit) that
# VALUE names, a manager or a Puppet service provider.
manager_of() {
	case $2 in
	systemd) echo systemd ;;
	sysvinit | sysv | init | service | debian | redhat) echo sysvinit ;;
	*) fail invalid-parameter "parameter '$1': '$2' is not supported by the built-in service task: use systemd or sysvinit" ;;
	esac
}

pick_manager service

# systemd manages the services when it is running, which is when
# /run/systemd/system exists (sd_booted(3)); having systemctl installed
# is not enough.
systemd_running() {
	[ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1
}

if [ -z "$manager" ]; then
	if systemd_running; then
		manager=systemd
	elif command -v service >/dev/null 2>&1 || [ -d /etc/init.d ]; then
		manager=sysvinit
	else
		fail unsupported "no service manager on $(uname -n): systemd is not running (PID 1 is $(init_pid1)), and there is neither a service command nor /etc/init.d"
	fi
elif [ "$manager" = systemd ] && ! systemd_running; then
	fail unsupported "systemd is not running on $(uname -n) (PID 1 is $(init_pid1)): use manager=sysvinit, or leave manager unset to detect it"
fi

# --- systemd

sd_exists() {
	state=$(systemctl show -p LoadState "$name" 2>/dev/null | sed -n 's/^LoadState=//p')
	[ -n "$state" ] && [ "$state" != not-found ]
}

sd_running() {
	systemctl is-active --quiet "$name" 2>/dev/null
}

sd_enabled() {
	case $(systemctl is-enabled "$name" 2>/dev/null) in
	enabled | enabled-runtime | static | indirect | alias | generated) return 0 ;;
	esac
	return 1
}

# --- sysvinit

script=/etc/init.d/$name

sv_exists() {
	[ -f "$script" ] && [ -x "$script" ]
}

sv() {
	if command -v service >/dev/null 2>&1; then
		run service "$name" "$@"
	else
		run "$script" "$@"
	fi
}

# LSB: "status" exits 0 when the service runs.
sv_running() {
	sv status
	[ "$cmd_rc" = 0 ]
}

sv_enabled() {
	if command -v update-rc.d >/dev/null 2>&1; then
		set +f
		for link in /etc/rc[2345].d/S[0-9][0-9]"$name"; do
			if [ -e "$link" ]; then
				set -f
				return 0
			fi
		done
		set -f
		return 1
	elif command -v chkconfig >/dev/null 2>&1; then
		chkconfig "$name" >/dev/null 2>&1
	else
		return 1
	fi
}

sv_links() {
	set +f
	for link in /etc/rc[0-6S].d/[SK][0-9][0-9]"$name"; do
		if [ -e "$link" ]; then
			set -f
			return 0
		fi
	done
	set -f
	return 1
}

sv_enable() {
	if command -v update-rc.d >/dev/null 2>&1; then
		if ! sv_links; then
			run update-rc.d "$name" defaults
			[ "$cmd_rc" = 0 ] || return 1
		fi
		run update-rc.d "$name" enable
	elif command -v chkconfig >/dev/null 2>&1; then
		run chkconfig --add "$name"
		[ "$cmd_rc" = 0 ] || return 1
		run chkconfig "$name" on
	else
		fail unsupported "cannot enable '$name' on $(uname -n): neither update-rc.d nor chkconfig is installed"
	fi
	[ "$cmd_rc" = 0 ]
}

sv_disable() {
	if command -v update-rc.d >/dev/null 2>&1; then
		run update-rc.d "$name" disable
	elif command -v chkconfig >/dev/null 2>&1; then
		run chkconfig "$name" off
	else
		fail unsupported "cannot disable '$name' on $(uname -n): neither update-rc.d nor chkconfig is installed"
	fi
	[ "$cmd_rc" = 0 ]
}

# --- the action

if [ "$manager" = systemd ]; then
	exists() { sd_exists; }
	running() { sd_running; }
	enabled() { sd_enabled; }
	control() { run systemctl "$1" "$name"; [ "$cmd_rc" = 0 ]; }
	enable() { control enable; }
	disable() { control disable; }
	missing="there is no systemd unit '$name'"
else
	exists() { sv_exists; }
	running() { sv_running; }
	enabled() { sv_enabled; }
	control() { sv "$1"; [ "$cmd_rc" = 0 ]; }
	enable() { sv_enable; }
	disable() { sv_disable; }
	missing="there is no init script $script"
fi

if ! exists; then
	if [ "$action" = status ]; then
		# As Puppet answers for a service it does not know.
		printf '{"status":"stopped","enabled":"false"}\n'
		exit 0
	fi
	fail not-found "cannot $action service '$name' on $(uname -n): $missing"
fi

case $action in
status)
	if running; then state=running; else state=stopped; fi
	if enabled; then on=true; else on=false; fi
	printf '{"status":"%s","enabled":"%s"}\n' "$state" "$on"
	;;
start)
	if running; then
		printf '{"status":"in_sync"}\n'
		exit 0
	fi
	control start || fail_cmd "$manager could not start '$name'"
	[ "$manager" = systemd ] || running || fail_cmd "'$name' is not running after $manager started it"
	printf '{"status":"started"}\n'
	;;
stop)
	if ! running; then
		printf '{"status":"in_sync"}\n'
		exit 0
	fi
	control stop || fail_cmd "$manager could not stop '$name'"
	printf '{"status":"stopped"}\n'
	;;
restart)
	control restart || fail_cmd "$manager could not restart '$name'"
	printf '{"status":"restarted"}\n'
	;;
enable)
	if enabled; then
		printf '{"status":"in_sync"}\n'
		exit 0
	fi
	enable || fail_cmd "$manager could not enable '$name'"
	printf '{"status":"enabled"}\n'
	;;
disable)
	if ! enabled; then
		printf '{"status":"in_sync"}\n'
		exit 0
	fi
	disable || fail_cmd "$manager could not disable '$name'"
	printf '{"status":"disabled"}\n'
	;;
esac
