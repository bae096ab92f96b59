#!/bin/sh
printf '{"user": "admin", "_sensitive": {"password": "%s"}}\n' "$PT_password"
