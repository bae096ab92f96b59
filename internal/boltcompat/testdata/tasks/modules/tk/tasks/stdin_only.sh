#!/bin/sh
stdin=$(cat)
printf '{"env_set": %s, "stdin": %s}\n' "$([ -n "${PT_word+x}" ] && echo true || echo false)" "$stdin"
