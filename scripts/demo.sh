#!/usr/bin/env bash
# The README's first command: build muster, start `muster server` on its
# embedded defaults (SQLite in ~/.local/share/muster, API on 127.0.0.1:7420),
# submit a demo job on this machine, follow it to the end and show the
# queue's stats. The server keeps running for the tour; the last lines say
# how to stop it. A server already answering on the address is reused.
set -euo pipefail
cd "$(dirname "$0")/.."

echo "==> building bin/muster"
CGO_ENABLED=0 go build -o bin/muster ./cmd/muster
data=${MUSTER_DATA_DIR:-${XDG_DATA_HOME:-$HOME/.local/share}/muster}
mkdir -p "$data"

if bin/muster job stats >/dev/null 2>&1; then
  echo "==> a muster server already answers; using it"
else
  # The demo job runs on this machine, so this server allows local
  # targets (for admin tokens only); a server without the flag refuses
  # localhost and local:// jobs, which would run as the server's user.
  echo "==> starting muster server --allow-local-targets (log: $data/server.log)"
  nohup bin/muster server --allow-local-targets >"$data/server.log" 2>&1 &
  echo $! >"$data/server.pid"
  for _ in $(seq 1 100); do
    if bin/muster job stats >/dev/null 2>&1; then break; fi
    if ! kill -0 "$(cat "$data/server.pid")" 2>/dev/null; then
      echo "muster server exited; its log:" >&2
      cat "$data/server.log" >&2
      exit 1
    fi
    sleep 0.1
  done
fi

echo "==> muster job submit command 'uname -a; uptime' -t localhost --watch"
bin/muster job submit command 'uname -a; uptime' -t localhost --watch
echo "==> muster job stats"
bin/muster job stats
if [ -f "$data/server.pid" ] && kill -0 "$(cat "$data/server.pid")" 2>/dev/null; then
  echo "==> the server keeps running for the tour; stop it with: kill $(cat "$data/server.pid")"
fi
