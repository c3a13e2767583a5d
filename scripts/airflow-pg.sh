#!/usr/bin/env bash
# airflow-pg.sh: a throwaway PostgreSQL for Airflow's metadata database.
#
#   scripts/airflow-pg.sh start DIR   initdb into DIR, start it on 127.0.0.1 on a
#                                     free port, create database "airflow", and
#                                     print its SQLAlchemy URL on stdout
#   scripts/airflow-pg.sh stop DIR    stop it (fast shutdown) and remove its data
#
# The cluster lives in a fresh directory under /tmp owned by the server's user
# (DIR, often private to its creator, may not be enterable by it); DIR/pgdir
# names it, and DIR/postgres.log links to the server's log.
#
# Uses Debian's postgresql package (installed with apt-get when absent). As root
# the server runs as the "postgres" user: PostgreSQL refuses to run as root.
set -euo pipefail
cmd="${1:-}"; dir="${2:-}"
if [ -z "$cmd" ] || [ -z "$dir" ]; then echo "usage: $0 start|stop DIR" >&2; exit 2; fi

bindir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1 || true)
if [ -z "$bindir" ] && [ "$cmd" = start ]; then
  echo "airflow-pg: installing postgresql from Debian's packages" >&2
  apt-get update -qq >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >&2
  bindir=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
fi

as_pg() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

case "$cmd" in
start)
  mkdir -p "$dir"
  pg=$(as_pg mktemp -d "${TMPDIR:-/tmp}/taskwire-pg.XXXXXX")
  echo "$pg" > "$dir/pgdir"
  ln -sf "$pg/postgres.log" "$dir/postgres.log"
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  as_pg "$bindir/initdb" -D "$pg/data" -U airflow --auth=trust -E UTF8 >"$dir/initdb.log" 2>&1 ||
    { cat "$dir/initdb.log" >&2; exit 1; }
  # fsync off: a test database, thrown away after the run.
  as_pg "$bindir/pg_ctl" -D "$pg/data" -l "$pg/postgres.log" -w -t 60 \
    -o "-h 127.0.0.1 -p $port -k $pg -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200" \
    start >&2 || { cat "$pg/postgres.log" >&2; exit 1; }
  as_pg "$bindir/createdb" -h 127.0.0.1 -p "$port" -U airflow airflow >&2
  echo "postgresql+psycopg2://airflow@127.0.0.1:$port/airflow"
  ;;
stop)
  [ -f "$dir/pgdir" ] || exit 0
  pg=$(cat "$dir/pgdir")
  if [ -f "$pg/data/postmaster.pid" ]; then as_pg "$bindir/pg_ctl" -D "$pg/data" -m fast -w -t 60 stop >&2; fi
  rm -rf "$pg" "$dir/pgdir" "$dir/postgres.log"
  ;;
*) echo "usage: $0 start|stop DIR" >&2; exit 2 ;;
esac
