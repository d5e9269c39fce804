#!/usr/bin/env bash
# The metadata-exchange interoperability check in one command, for CI: installs libtorrent (via
# install.sh) and webtorrent's bittorrent-protocol + ut_metadata (npm ci in node-wire/), builds
# our `dht` program, then runs metadata.py: `dht metadata` against libtorrent and webtorrent
# seeders and lying peers on loopback.
#
#   tests/interop/metadata.sh [metadata.py options, e.g. --only lt-meta-dht -v]
#
# Bounded by METADATA_TIMEOUT seconds (default 600). Exit status 0 when every scenario passed.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
cd "$repo"

if [ -z "${METADATA_UNDER_TIMEOUT:-}" ]; then
  export METADATA_UNDER_TIMEOUT=1
  exec timeout --kill-after=15 "${METADATA_TIMEOUT:-600}" "$0" "$@"
fi

step() { printf '\n--> metadata interop: %s\n' "$*"; }
started=$SECONDS

step "install libtorrent, bittorrent-protocol and ut_metadata"
timeout --kill-after=10 300 "$here/install.sh"
wire="$here/node-wire"
if [ -f "$wire/node_modules/ut_metadata/index.js" ] &&
  cmp -s "$wire/package-lock.json" "$wire/node_modules/.package-lock.json" 2>/dev/null; then
  echo "bittorrent-protocol and ut_metadata already in $wire/node_modules"
else
  (cd "$wire" && timeout --kill-after=10 300 npm ci --no-audit --no-fund --loglevel=error)
fi

step "build the dht program"
timeout --kill-after=10 600 cargo build --quiet -p dht-std --bin dht
dht="${CARGO_TARGET_DIR:-$repo/target}/debug/dht"

step "scenarios"
timeout --kill-after=15 240 "$here/.venv/bin/python" "$here/metadata.py" --dht "$dht" "$@"

step "passed in $((SECONDS - started)) s"
