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

# The helpers every built-in task shares (json_str, fail, run, check_word,
# pick_manager, ...), shipped with it as the task's "files".
. "${PT__installdir:?run this task with muster or Bolt, which ship its files}/muster_common/files/common.sh"

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

pick_manager package
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
