#!/bin/sh
if [ "$PT__noop" = "true" ]; then echo '{"changed": false, "noop": true}'; else echo '{"changed": true}'; fi
