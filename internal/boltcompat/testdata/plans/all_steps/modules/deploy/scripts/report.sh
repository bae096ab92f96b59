#!/bin/sh
# Arguments arrive as separate words, as Bolt passes them.
printf '%s|%s\n' "$1" "$2"
