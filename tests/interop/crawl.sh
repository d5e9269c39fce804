#!/usr/bin/env bash
# The crawler's end-to-end check against libtorrent in one command, for CI: installs libtorrent
# (via install.sh), builds our `dht` program, then runs crawl.py: `dht crawl` with SQLite and
# with PostgreSQL, two crawlers on one PostgreSQL database, and a restart after kill -9, against
# libtorrent sessions seeding and announcing generated torrents on loopback.
#
#   tests/interop/crawl.sh [crawl.py options, e.g. --only sqlite -v]
#
# The PostgreSQL scenarios need DHT_TEST_POSTGRES_URL (run under .ci/postgres.sh, which starts
# a throwaway server); without it they print SKIP. Bounded by CRAWL_E2E_TIMEOUT seconds (default
# 600, the build included). Exit status 0 when no scenario failed.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
cd "$repo"

if [ -z "${CRAWL_E2E_UNDER_TIMEOUT:-}" ]; then
  export CRAWL_E2E_UNDER_TIMEOUT=1
  exec timeout --kill-after=15 "${CRAWL_E2E_TIMEOUT:-600}" "$0" "$@"
fi

step() { printf '\n--> crawler end to end: %s\n' "$*"; }
started=$SECONDS

step "install libtorrent"
timeout --kill-after=10 300 "$here/install.sh"

step "build the dht program"
timeout --kill-after=10 600 cargo build --quiet -p dht-std --bin dht
dht="${CARGO_TARGET_DIR:-$repo/target}/debug/dht"

step "scenarios"
timeout --kill-after=15 300 "$here/.venv/bin/python" "$here/crawl.py" --dht "$dht" "$@"

step "passed in $((SECONDS - started)) s"
