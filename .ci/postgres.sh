#!/usr/bin/env bash
# Runs a command beside a throwaway PostgreSQL server: installs the Debian package if no server
# binaries are found, creates a cluster in a temporary directory (as the `postgres` user when run
# as root), serves it on a free 127.0.0.1 port, exports its URL as DHT_TEST_POSTGRES_URL, runs
# the command and removes the cluster however the command ends.
#   usage: .ci/postgres.sh COMMAND [ARGS...]
set -euo pipefail

pg_bin() { ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1; }
bin=$(pg_bin)
if [ -z "$bin" ] || [ ! -x "$bin/initdb" ]; then
    echo "postgres.sh: installing PostgreSQL from the Debian packages" >&2
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
    bin=$(pg_bin)
fi

dir=$(mktemp -d /tmp/dht-postgres.XXXXXX)
as_owner() { "$@"; }
if [ "$(id -u)" = 0 ]; then
    # PostgreSQL refuses to run as root.
    id -u postgres >/dev/null 2>&1 || useradd --system --no-create-home postgres
    chown postgres "$dir"
    as_owner() { runuser -u postgres -- "$@"; }
fi
cleanup() {
    as_owner "$bin/pg_ctl" -D "$dir/data" -m immediate stop >/dev/null 2>&1 || true
    rm -rf "$dir"
}
trap cleanup EXIT

port=
for p in $(seq 54320 54420); do
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then port=$p; break; fi
done
[ -n "$port" ] || { echo "postgres.sh: no free port in 54320-54420" >&2; exit 1; }

as_owner "$bin/initdb" -D "$dir/data" -U dht --auth=trust -E UTF8 --no-locale >/dev/null
as_owner "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
    -o "-c listen_addresses=127.0.0.1 -p $port -k $dir -c max_connections=200" start >/dev/null \
    || { cat "$dir/server.log" >&2; exit 1; }
echo "postgres.sh: PostgreSQL $("$bin/postgres" --version | awk '{print $3}') on 127.0.0.1:$port" >&2

export DHT_TEST_POSTGRES_URL="postgres://dht@127.0.0.1:$port/postgres"
"$@"
