#!/usr/bin/env bash
# Starts a throwaway PostgreSQL cluster for the store tests, or stops one.
#
#   eval "$(scripts/pgtest.sh)"     start one; sets MUSTER_TEST_POSTGRES_URL
#   scripts/pgtest.sh stop DIR      stop it and delete DIR
#   scripts/pgtest.sh restart DIR   restart it (fast shutdown: connections drop)
#
# Start prints shell lines on stdout: `export MUSTER_TEST_POSTGRES_URL=...`,
# `export MUSTER_TEST_POSTGRES_DIR=...` and the stop command as a comment.
# The cluster lives in a mktemp directory, listens on 127.0.0.1 on a free
# port, trusts local connections and runs with fsync off: tests only.
# As root it installs Debian's postgresql package if no initdb is found and
# runs the server as the postgres user (initdb refuses to run as root).
set -euo pipefail

as_pg() {
  if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

if [ "${1:-}" = stop ]; then
  dir=${2:?usage: pgtest.sh stop DIR}
  if [ ! -f "$dir/pgtest-cluster" ]; then
    echo "pgtest.sh: $dir is not a cluster made by pgtest.sh" >&2
    exit 1
  fi
  as_pg "$(cat "$dir/pgtest-cluster")/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null || true
  rm -rf "$dir"
  exit 0
fi
if [ "${1:-}" = restart ]; then
  dir=${2:?usage: pgtest.sh restart DIR}
  if [ ! -f "$dir/pgtest-cluster" ]; then
    echo "pgtest.sh: $dir is not a cluster made by pgtest.sh" >&2
    exit 1
  fi
  as_pg "$(cat "$dir/pgtest-cluster")/pg_ctl" -D "$dir/data" -l "$dir/log" -m fast -w -t 60 restart >/dev/null
  exit 0
fi
if [ $# -ne 0 ]; then
  echo "usage: pgtest.sh [stop DIR | restart DIR]" >&2
  exit 2
fi

find_initdb() { ls /usr/lib/postgresql/*/bin/initdb 2>/dev/null | sort -V | tail -n 1; }
initdb=$(find_initdb || true)
if [ -z "$initdb" ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "pgtest.sh: no /usr/lib/postgresql/*/bin/initdb; install postgresql or run as root" >&2
    exit 1
  fi
  "$(dirname "$0")/apt-install.sh" postgresql >&2
  initdb=$(find_initdb)
fi
bin=$(dirname "$initdb")

dir=$(mktemp -d "${TMPDIR:-/tmp}/muster-pg.XXXXXX")
chmod 755 "$dir" # the server needs to traverse it
echo "$bin" >"$dir/pgtest-cluster"
if [ "$(id -u)" -eq 0 ]; then chown postgres:postgres "$dir"; fi
if ! as_pg "$bin/initdb" -D "$dir/data" -U postgres -A trust -E UTF8 --no-sync >"$dir/initdb.log" 2>&1; then
  cat "$dir/initdb.log" >&2
  rm -rf "$dir"
  exit 1
fi

port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
started=
for _ in 1 2 3 4 5; do
  port=$((20000 + RANDOM % 40000))
  port_free "$port" || continue
  if as_pg "$bin/pg_ctl" -D "$dir/data" -l "$dir/log" -w -t 30 -o "-p $port -k $dir \
      -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off \
      -c max_connections=200" start >/dev/null 2>&1; then
    started=1
    break
  fi
done
if [ -z "$started" ]; then
  echo "pgtest.sh: could not start postgres; log:" >&2
  cat "$dir/log" >&2 || true
  rm -rf "$dir"
  exit 1
fi
echo "export MUSTER_TEST_POSTGRES_URL='postgres://postgres@127.0.0.1:$port/postgres?sslmode=disable'"
echo "export MUSTER_TEST_POSTGRES_DIR='$dir'"
echo "# stop with: $0 stop $dir"
