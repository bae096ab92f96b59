#!/bin/sh
# reboot::last_boot_time: when the target last booted, and the kernel's
# boot id, which changes at every boot: compare the answers from before
# and after a reboot to know it happened. Built into muster.
#
# -> {"last_boot_time": "2006-01-02T15:04:05+0000", "epoch": SECONDS,
#     "boot_id": "UUID"}
task_module=reboot

# The helpers every built-in task shares (json_str, fail, run, check_word,
# pick_manager, ...), shipped with it as the task's "files".
. "${PT__installdir:?run this task with muster or Bolt, which ship its files}/muster_common/files/common.sh"

epoch=$(awk '$1 == "btime" { print $2; exit }' /proc/stat 2>/dev/null)
[ -n "$epoch" ] || fail unsupported "cannot tell when $(uname -n) booted: /proc/stat has no btime line"
when=$(date -d "@$epoch" '+%Y-%m-%dT%H:%M:%S%z' 2>/dev/null) ||
	when=$(date -r "$epoch" '+%Y-%m-%dT%H:%M:%S%z' 2>/dev/null) ||
	when=
boot_id=$(cat /proc/sys/kernel/random/boot_id 2>/dev/null) || boot_id=
printf '{"last_boot_time":%s,"epoch":%d,"boot_id":%s}\n' "$(json_str "$when")" "$epoch" "$(json_str "$boot_id")"
