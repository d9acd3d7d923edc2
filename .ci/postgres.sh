#!/usr/bin/env bash
# Start a throwaway PostgreSQL server for the store tests and print its SQLAlchemy URL.
# Uses the Debian packages (installed here if missing); prints nothing and fails if impossible.
set -euo pipefail
bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
if [ -z "$bin" ] && command -v apt-get >/dev/null; then
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql) >&2
  bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
fi
[ -n "$bin" ] || { echo "no PostgreSQL binaries" >&2; exit 1; }
dir=$(mktemp -d /tmp/speechlab-pg.XXXXXX)
port=${SPEECHLAB_PG_PORT:-$(python3 -c "import socket; s = socket.socket(); s.bind(('127.0.0.1', 0)); print(s.getsockname()[1])")}
run=()
if [ "$(id -u)" = 0 ]; then chown postgres "$dir"; run=(runuser -u postgres --); fi
"${run[@]}" "$bin/initdb" -D "$dir/data" -A trust -U speechlab >&2
"${run[@]}" "$bin/pg_ctl" -D "$dir/data" -o "-p $port -k $dir -c listen_addresses=127.0.0.1" -l "$dir/log" -w start >&2
"${run[@]}" "$bin/createdb" -h 127.0.0.1 -p "$port" -U speechlab speechlab_test >&2
echo "postgresql+psycopg://speechlab@127.0.0.1:$port/speechlab_test"
