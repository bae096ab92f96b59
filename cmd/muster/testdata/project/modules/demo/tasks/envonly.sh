#!/bin/sh
stdin=$(cat)
echo "{\"count\": $PT_count, \"stdin_len\": ${#stdin}}"
