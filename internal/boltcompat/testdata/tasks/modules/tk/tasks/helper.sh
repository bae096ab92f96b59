#!/bin/sh
. "$PT__installdir/tk/lib/words.sh"
printf '{"greeting": "%s", "word": "%s"}\n' "$(cat "$PT__installdir/tk/files/greeting.txt")" "$WORD"
