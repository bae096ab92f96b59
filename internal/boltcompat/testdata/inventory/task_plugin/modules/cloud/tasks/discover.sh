#!/bin/sh
# Reads the JSON parameters on stdin, as input_method stdin says.
params=$(cat)
prefix=$(printf '%s' "$params" | sed -n 's/.*"prefix": *"\([^"]*\)".*/\1/p')
count=$(printf '%s' "$params" | sed -n 's/.*"count": *\([0-9]*\).*/\1/p')
printf '{"value": ['
i=1
while [ "$i" -le "$count" ]; do
  [ "$i" -gt 1 ] && printf ','
  printf '{"name": "%s%d", "uri": "%s%d.cloud.example.net", "facts": {"index": %d}}' "$prefix" "$i" "$prefix" "$i" "$i"
  i=$((i + 1))
done
printf ']}\n'
