#!/bin/sh
# Prints its input as a JSON object, from the environment and from stdin.
stdin=$(cat)
printf '{"message":"%s","env_task":"%s","stdin":%s}' "$PT_message" "$PT__task" "${stdin:-null}"
