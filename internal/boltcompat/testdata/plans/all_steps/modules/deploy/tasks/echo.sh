#!/bin/sh
printf '{"said": "%s"}\n' "$PT_message"
