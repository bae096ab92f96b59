#!/bin/sh
. "$PT__installdir/demo/lib/helper.sh"
printf '{"helper":"%s","data":"%s","installdir_ok":%s}' "$(helper)" "$(cat "$PT__installdir/other/files/data.txt")" "$( [ "$(dirname "$(dirname "$(dirname "$0")")")" = "$PT__installdir" ] && echo true || echo false)"
