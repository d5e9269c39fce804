#!/usr/bin/env bash
# Installs the third-party DHT implementations used by the loopback interoperability harnesses:
#   - libtorrent's Python bindings (pinned) into a venv at tests/interop/.venv
#   - btdht 0.3.3 (PyPI sdist, Cython) into the same venv, for bt.py
#   - webtorrent's bittorrent-dht (pinned by node/package-lock.json) into tests/interop/node
#
# Idempotent: a second run only checks what is there. Afterwards use
#   tests/interop/.venv/bin/python   (for lt.py, krpc.py, capture.py)
#   node tests/interop/wt.js         (finds its modules in tests/interop/node/node_modules)
#
# Environment: PYTHON (interpreter that creates the venv, default python3, must be 3.11 for the
# pinned wheel), LIBTORRENT_VERSION (default 2.1.1), BTDHT_VERSION (default 0.3.3).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
python="${PYTHON:-python3}"
lt_version="${LIBTORRENT_VERSION:-2.1.1}"
venv="$here/.venv"

log() { printf 'install.sh: %s\n' "$*" >&2; }

# --- libtorrent -------------------------------------------------------------------------------
have_lt() {
  [ -x "$venv/bin/python" ] &&
    "$venv/bin/python" -c "import libtorrent, sys; sys.exit(libtorrent.__version__.split('.')[:3] != '$lt_version'.split('.'))" 2>/dev/null
}
if have_lt; then
  log "libtorrent $lt_version already in $venv"
else
  if [ ! -x "$venv/bin/python" ]; then
    log "creating venv $venv with $("$python" --version 2>&1)"
    if ! "$python" -m venv "$venv" 2>/dev/null; then
      # Debian's python3 ships venv separately.
      if command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
        log "python venv module missing: installing python3-venv"
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv
      fi
      rm -rf "$venv"
      "$python" -m venv "$venv"
    fi
  fi
  log "pip install libtorrent==$lt_version"
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "libtorrent==$lt_version"
  have_lt || { log "libtorrent $lt_version did not import after install"; exit 1; }
fi
"$venv/bin/python" -c "import libtorrent; print('libtorrent', libtorrent.__version__)"

# --- btdht ------------------------------------------------------------------------------------
# The sdist's pre-generated C does not compile on Python 3.11 (it came from Cython 0.29.13), and
# its code needs Cython 0.x semantics: with Cython < 3 in the venv and no build isolation, its
# setup.py regenerates the C from the .pyx files. A C compiler and the Python headers are needed.
bt_version="${BTDHT_VERSION:-0.3.3}"
have_bt() {
  "$venv/bin/python" -c "import importlib.metadata as m, sys, btdht
sys.exit(m.version('btdht') != '$bt_version')" 2>/dev/null
}
if have_bt; then
  log "btdht $bt_version already in $venv"
else
  if ! command -v cc >/dev/null && command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
    log "no C compiler: installing gcc and the Python headers"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq gcc python3-dev
  fi
  log "pip install btdht==$bt_version (built from its .pyx with Cython < 3)"
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "cython<3" setuptools wheel
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-build-isolation \
    "btdht==$bt_version"
  have_bt || { log "btdht $bt_version did not import after install"; exit 1; }
fi
"$venv/bin/python" -c "import importlib.metadata as m; print('btdht', m.version('btdht'))"

# --- bittorrent-dht ---------------------------------------------------------------------------
node_dir="$here/node"
# Installed tree matches the lock file when npm's hidden lock records the same bittorrent-dht.
wt_version() {
  node -e 'try { const l = require(process.argv[1]);
    console.log(l.packages["node_modules/bittorrent-dht"].version) } catch (e) { process.exit(1) }' "$1"
}
have_wt() {
  local want got
  want="$(wt_version "$node_dir/package-lock.json")" || return 1
  got="$(wt_version "$node_dir/node_modules/.package-lock.json" 2>/dev/null)" || return 1
  [ "$want" = "$got" ] && [ -f "$node_dir/node_modules/bittorrent-dht/index.js" ]
}
if have_wt; then
  log "bittorrent-dht already in $node_dir/node_modules"
else
  log "npm ci in $node_dir"
  (cd "$node_dir" && npm ci --no-audit --no-fund --loglevel=error)
fi
node -e 'console.log("bittorrent-dht", require(process.argv[1] + "/node_modules/bittorrent-dht/package.json").version)' "$node_dir"
