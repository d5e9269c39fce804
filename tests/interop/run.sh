#!/usr/bin/env bash
# The interoperability check in one command, for CI: installs libtorrent, btdht and bittorrent-dht,
# builds our `dht` program, checks the captured corpus offline, then runs every scenario of
# scenarios.py against real libtorrent, btdht and bittorrent-dht nodes on loopback.
#
#   tests/interop/run.sh [scenarios.py options, e.g. --only lt-queries -v]
#
# Every step is bounded by `timeout`, and the whole run by INTEROP_TIMEOUT seconds (default
# 600: a fresh machine downloads the wheel, the npm packages and the crates). Exit status: 0
# when everything passed, non-zero otherwise (124 when a time limit was hit).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
cd "$repo"

if [ -z "${INTEROP_UNDER_TIMEOUT:-}" ]; then
  export INTEROP_UNDER_TIMEOUT=1
  exec timeout --kill-after=15 "${INTEROP_TIMEOUT:-600}" "$0" "$@"
fi

step() { printf '\n--> interop: %s\n' "$*"; }
started=$SECONDS

step "install libtorrent, btdht and bittorrent-dht"
timeout --kill-after=10 300 "$here/install.sh"

step "build the dht program"
timeout --kill-after=10 600 cargo build --quiet -p dht-std --bin dht
dht="${CARGO_TARGET_DIR:-$repo/target}/debug/dht"

step "corpus (offline)"
timeout --kill-after=10 60 "$here/.venv/bin/python" "$here/test_corpus.py"

step "scenarios"
timeout --kill-after=15 240 "$here/.venv/bin/python" "$here/scenarios.py" --dht "$dht" "$@"

step "passed in $((SECONDS - started)) s"
