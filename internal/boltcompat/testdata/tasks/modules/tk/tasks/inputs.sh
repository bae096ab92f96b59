#!/bin/sh
stdin=$(cat)
# Bolt passes strings raw in PT_ variables and other values as JSON.
printf '{"env_name": "%s", "env_count": "%s", "env_tags": %s, "stdin_has_name": %s, "task": "%s"}\n' \
  "$PT_name" "$PT_count" "${PT_tags:-null}" \
  "$(case "$stdin" in *'"name":'*) echo true;; *) echo false;; esac)" "$PT__task"
