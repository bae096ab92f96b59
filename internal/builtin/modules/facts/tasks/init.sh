#!/bin/sh
# facts: the operating system, kernel and networking facts of a target,
# in facter's shape, as Bolt's facts task returns them (a subset: no
# facter needed). Built into muster.
#
# {"os": {"name", "family", "release": {"full", "major"[, "minor"]},
#         "distro": {"id", "codename", "description",
#                    "release": {"full", "major"[, "minor"]}},
#         "architecture", "hardware"},
#  "kernel", "kernelrelease", "kernelversion", "kernelmajversion",
#  "networking": {"hostname", "fqdn"[, "domain"]}}
task_module=facts

# The helpers every built-in task shares (json_str, fail, run, check_word,
# pick_manager, ...), shipped with it as the task's "files".
. "${PT__installdir:?run this task with muster or Bolt, which ship its files}/muster_common/files/common.sh"

# os_release KEY prints KEY's value from os-release(5), unquoted.
os_release() {
	for f in /etc/os-release /usr/lib/os-release; do
		if [ -r "$f" ]; then
			sed -n "s/^$1=//p" "$f" | sed -e 's/^"\(.*\)"$/\1/' -e "s/^'\(.*\)'\$/\1/" | head -n 1
			return
		fi
	done
}

# os_name ID prints facter's spelling of an os-release ID.
os_name() {
	case $1 in
	debian) echo Debian ;;
	ubuntu) echo Ubuntu ;;
	linuxmint) echo LinuxMint ;;
	raspbian) echo Raspbian ;;
	devuan) echo Devuan ;;
	rhel | redhat) echo RedHat ;;
	centos) echo CentOS ;;
	fedora) echo Fedora ;;
	rocky) echo Rocky ;;
	almalinux) echo AlmaLinux ;;
	ol | oracle) echo OracleLinux ;;
	amzn) echo Amazon ;;
	sles | sles_sap) echo SLES ;;
	opensuse | opensuse-leap | opensuse-tumbleweed) echo OpenSuSE ;;
	suse) echo SuSE ;;
	arch) echo Archlinux ;;
	manjaro) echo ManjaroLinux ;;
	alpine) echo Alpine ;;
	gentoo) echo Gentoo ;;
	photon) echo PhotonOS ;;
	'') uname -s ;;
	*) printf '%s\n' "$1" | awk '{ print toupper(substr($0, 1, 1)) substr($0, 2) }' ;;
	esac
}

# os_family NAME ID_LIKE prints facter's os.family.
os_family() {
	case $1 in
	Debian | Ubuntu | LinuxMint | Raspbian | Devuan) echo Debian ;;
	RedHat | CentOS | Fedora | Rocky | AlmaLinux | OracleLinux | Amazon) echo RedHat ;;
	SLES | OpenSuSE | SuSE) echo Suse ;;
	Archlinux | ManjaroLinux) echo Archlinux ;;
	Alpine) echo Alpine ;;
	Gentoo) echo Gentoo ;;
	*)
		for like in $2; do
			case $like in
			debian | ubuntu) echo Debian ;;
			rhel | fedora | centos) echo RedHat ;;
			suse | opensuse) echo Suse ;;
			arch) echo Archlinux ;;
			*) continue ;;
			esac
			return
		done
		echo "$1"
		;;
	esac
}

# release_json FULL [ONLY_MAJOR] prints {"full", "major"[, "minor"]};
# with ONLY_MAJOR the whole version is the major one (Ubuntu's "22.04").
release_json() {
	full=$1
	if [ -n "${2:-}" ]; then
		major=$full
		minor=
	else
		major=${full%%.*}
		minor=
		case $full in
		*.*) minor=${full#*.} && minor=${minor%%.*} ;;
		esac
	fi
	printf '{"full":%s,"major":%s' "$(json_str "$full")" "$(json_str "$major")"
	[ -z "$minor" ] || printf ',"minor":%s' "$(json_str "$minor")"
	printf '}'
}

id=$(os_release ID)
id_like=$(os_release ID_LIKE)
version_id=$(os_release VERSION_ID)
codename=$(os_release VERSION_CODENAME)
description=$(os_release PRETTY_NAME)
if [ -z "$id" ] && [ -r /etc/redhat-release ]; then
	# Before os-release: "CentOS release 6.10 (Final)".
	description=$(head -n 1 /etc/redhat-release)
	id=$(printf '%s\n' "$description" | awk '{ print tolower($1) }')
	[ "$id" != red ] || id=rhel
	version_id=$(printf '%s\n' "$description" | sed -n 's/.*release \([0-9][0-9.]*\).*/\1/p')
	codename=$(printf '%s\n' "$description" | sed -n 's/.*(\(.*\)).*/\1/p')
fi
[ -n "$version_id" ] || version_id=$(uname -r)
[ -n "$description" ] || description="$(uname -s) $(uname -r)"

name=$(os_name "$id")
family=$(os_family "$name" "$id_like")

# Facter takes Debian's point release from /etc/debian_version ("12.11").
full=$version_id
if [ "$family" = Debian ] && [ "$name" != Ubuntu ] && [ -r /etc/debian_version ]; then
	dv=$(head -n 1 /etc/debian_version)
	case $dv in
	[0-9]*.[0-9]*) case $dv in "$version_id".*) full=$dv ;; esac ;;
	esac
fi
only_major=
[ "$name" != Ubuntu ] || only_major=1

hardware=$(uname -m)
architecture=$hardware
if [ "$family" = Debian ] && command -v dpkg >/dev/null 2>&1; then
	architecture=$(dpkg --print-architecture 2>/dev/null) || architecture=$hardware
fi

hostname=$(uname -n)
hostname=${hostname%%.*}
fqdn=
if command -v hostname >/dev/null 2>&1; then
	if command -v timeout >/dev/null 2>&1; then
		fqdn=$(timeout 5 hostname -f 2>/dev/null)
	else
		fqdn=$(hostname -f 2>/dev/null)
	fi
fi
case $fqdn in
'' | localhost | localhost.*) fqdn=$(uname -n) ;;
esac
domain=
case $fqdn in
*.*) domain=${fqdn#*.} ;;
esac

kernel=$(uname -s)
kernelrelease=$(uname -r)
kernelversion=${kernelrelease%%-*}
kernelmajversion=$(printf '%s\n' "$kernelversion" | awk -F . '{ print $1 "." $2 }')

printf '{"os":{"name":%s,"family":%s,"release":%s,' "$(json_str "$name")" "$(json_str "$family")" "$(release_json "$full" "$only_major")"
printf '"distro":{"id":%s,"codename":%s,"description":%s,"release":%s},' \
	"$(json_str "$name")" "$(json_str "$codename")" "$(json_str "$description")" "$(release_json "$full" "$only_major")"
printf '"architecture":%s,"hardware":%s},' "$(json_str "$architecture")" "$(json_str "$hardware")"
printf '"kernel":%s,"kernelrelease":%s,"kernelversion":%s,"kernelmajversion":%s,' \
	"$(json_str "$kernel")" "$(json_str "$kernelrelease")" "$(json_str "$kernelversion")" "$(json_str "$kernelmajversion")"
printf '"networking":{"hostname":%s,"fqdn":%s' "$(json_str "$hostname")" "$(json_str "$fqdn")"
[ -z "$domain" ] || printf ',"domain":%s' "$(json_str "$domain")"
printf '}}\n'
