#!/bin/sh
# package: install, uninstall, upgrade or report one package with the
# system's package manager (apt, dnf or yum). Built into muster; the
# parameters and results are those of Bolt's package task.
#
# status, install -> {"status": "installed", "version": V[, "latest": L]}
#                    or {"status": "uninstalled", "version": ""}
# uninstall       -> {"status": "uninstalled"}
# upgrade         -> {"old_version": V0, "version": V}
task_module=package

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

action=${PT_action:-}
name=${PT_name:-}
version=${PT_version:-}
manager_options=${PT_manager_options:-}

case $action in
install | uninstall | upgrade | status) ;;
'') fail invalid-parameter "parameter 'action' is required: install, uninstall, upgrade or status" ;;
*) fail invalid-parameter "parameter 'action': unknown action '$action': use install, uninstall, upgrade or status" ;;
esac
check_word name "$name"
[ -z "$version" ] || check_word version "$version"

# manager_of PARAM VALUE prints the manager (apt, dnf, yum) that VALUE
# names, a Puppet provider name or a command.
manager_of() {
	case $2 in
	apt | apt-get | aptitude | dpkg) echo apt ;;
	dnf) echo dnf ;;
	yum | rpm) echo yum ;;
	*) fail invalid-parameter "parameter '$1': '$2' is not supported by the built-in package task: use apt, dnf or yum (other Puppet providers need puppetlabs-package's puppet-agent implementation)" ;;
	esac
}

manager=
[ -z "${PT_manager:-}" ] || manager=$(manager_of manager "$PT_manager") || { echo "$manager"; exit 1; }
if [ -n "${PT_provider:-}" ]; then
	from_provider=$(manager_of provider "$PT_provider") || { echo "$from_provider"; exit 1; }
	if [ -n "$manager" ] && [ "$manager" != "$from_provider" ]; then
		fail invalid-parameter "parameters 'manager' ($PT_manager) and 'provider' ($PT_provider) name different package managers"
	fi
	manager=$from_provider
fi
if [ -z "$manager" ]; then
	if command -v apt-get >/dev/null 2>&1 && command -v dpkg-query >/dev/null 2>&1; then
		manager=apt
	elif command -v dnf >/dev/null 2>&1; then
		manager=dnf
	elif command -v yum >/dev/null 2>&1; then
		manager=yum
	else
		fail unsupported "no supported package manager on $(uname -n): found none of apt-get, dnf, yum"
	fi
fi
case $manager in
apt) needs="apt-get dpkg-query apt-cache" ;;
*) needs="$manager rpm" ;;
esac
for c in $needs; do
	command -v "$c" >/dev/null 2>&1 || fail unsupported "package manager '$manager' is not usable on $(uname -n): '$c' is not installed"
done

if [ "$action" != status ] && [ "$(id -u)" != 0 ]; then
	fail permission-denied "action '$action' needs root, and the task runs as $(id -un 2>/dev/null || id -u): run it with --run-as root"
fi

# installed_version prints the installed version of $name, nothing when
# it is not installed.
installed_version() {
	case $manager in
	apt)
		dpkg-query -W -f='${Status}\t${Version}\n' "$name" 2>/dev/null |
			awk -F '\t' '$1 ~ / installed$/ { print $2; exit }'
		;;
	*)
		rpm -q --qf '%{VERSION}-%{RELEASE}\n' --whatprovides "$name" 2>/dev/null | awk 'NR == 1 && !/ /'
		;;
	esac
}

# latest_version prints the version the manager would install or upgrade
# to, nothing when it knows none.
latest_version() {
	case $manager in
	apt)
		apt-cache policy "$name" 2>/dev/null | awk '$1 == "Candidate:" && $2 != "(none)" { print $2; exit }'
		;;
	*)
		# check-update exits 100 when updates exist; its lines are
		# "<name>.<arch> <version> <repo>".
		"$manager" -q check-update "$name" 2>/dev/null |
			awk -v n="$name" 'index($1, n ".") == 1 { v = $2; sub(/^[0-9]+:/, "", v); print v; exit }'
		;;
	esac
}

status_result() {
	v=$(installed_version)
	if [ -z "$v" ]; then
		printf '{"status":"uninstalled","version":""}\n'
		exit 0
	fi
	l=$(latest_version)
	if [ -n "$l" ] && [ "$l" != "$v" ]; then
		printf '{"status":"installed","version":%s,"latest":%s}\n' "$(json_str "$v")" "$(json_str "$l")"
	else
		printf '{"status":"installed","version":%s}\n' "$(json_str "$v")"
	fi
	exit 0
}

# pm ARGS...: run the package manager non-interactively with the
# manager_options (split into words) before ARGS.
pm() {
	case $manager in
	apt)
		DEBIAN_FRONTEND=noninteractive NEEDRESTART_MODE=a
		export DEBIAN_FRONTEND NEEDRESTART_MODE
		# shellcheck disable=SC2086 # manager_options is a list of words
		run apt-get -y -q -o DPkg::Lock::Timeout=300 \
			-o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold \
			$manager_options "$@"
		;;
	*)
		# shellcheck disable=SC2086
		run "$manager" -y -q $manager_options "$@"
		;;
	esac
}

target=$name
if [ -n "$version" ]; then
	case $manager in
	apt) target=$name=$version ;;
	*) target=$name-$version ;;
	esac
fi

case $action in
status)
	status_result
	;;
install)
	if [ "$manager" = apt ] && [ -n "$version" ]; then
		pm install --allow-downgrades "$target"
	else
		pm install "$target"
	fi
	[ "$cmd_rc" = 0 ] || fail_cmd "$manager could not install '$target'"
	status_result
	;;
uninstall)
	if [ -n "$(installed_version)" ]; then
		pm remove "$target"
		[ "$cmd_rc" = 0 ] || fail_cmd "$manager could not uninstall '$target'"
		[ -z "$(installed_version)" ] || fail command-failed "'$name' is still installed after $manager removed it"
	fi
	printf '{"status":"uninstalled"}\n'
	;;
upgrade)
	old=$(installed_version)
	case $manager in
	apt)
		# apt-get install upgrades an installed package to its candidate,
		# and installs a missing one, as Puppet's upgrade does.
		if [ -n "$version" ]; then
			pm install --allow-downgrades "$target"
		else
			pm install "$target"
		fi
		;;
	*)
		if [ -z "$old" ] || [ -n "$version" ]; then
			pm install "$target"
		else
			pm upgrade "$target"
		fi
		;;
	esac
	[ "$cmd_rc" = 0 ] || fail_cmd "$manager could not upgrade '$target'"
	new=$(installed_version)
	[ -n "$new" ] || fail command-failed "'$name' is not installed after $manager upgraded it" \
		"$(printf '{"command":%s,"output":%s}' "$(json_str "$cmd_line")" "$(json_str "$(printf '%s\n' "$cmd_out" | tail -n 20)")")"
	printf '{"old_version":%s,"version":%s}\n' "$(json_str "$old")" "$(json_str "$new")"
	;;
esac
