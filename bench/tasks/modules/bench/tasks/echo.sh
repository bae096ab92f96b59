#!/bin/sh
# Benchmark task: echo the "message" parameter back as JSON.
# Under muster (or Bolt) the parameter arrives as $PT_message; under Ansible's
# script module (`-m script -a "echo.sh hello"`) it arrives as $1.
msg=${PT_message:-$1}
echo "{\"message\": \"$msg\"}"
