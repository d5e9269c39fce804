#!/usr/bin/env python3
"""Mixed loopback swarm check: libtorrent and bittorrent-dht find each other's peers.

Starts 5 libtorrent sessions (127.1.1.20-24:PORT, lt.py) and 3 bittorrent-dht nodes
(127.1.1.40-42:PORT, wt.js), bootstraps the webtorrent nodes from the libtorrent ones, then
checks, with timings printed as JSON lines:
  1. every libtorrent table holds the webtorrent nodes (and the reverse);
  2. a webtorrent node announces, a libtorrent node finds the peer with get_peers;
  3. a libtorrent node announces, a webtorrent node finds the peer with a lookup;
  4. libtorrent-only and webtorrent-only announce/lookup.
Exit status 0 when all pass. Every process is bounded (--duration) and killed at the end.
Run: tests/interop/.venv/bin/python tests/interop/smoke.py [--port 7000] [-v]
"""
import argparse
import json
import os
import sys
import time

from jsonl import Harness

HERE = os.path.dirname(os.path.abspath(__file__))
VENV_PY = os.path.join(HERE, ".venv", "bin", "python")


def report(**kw):
    print(json.dumps(kw), flush=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, default=7000)
    ap.add_argument("--lt-nodes", type=int, default=5)
    ap.add_argument("--wt-nodes", type=int, default=3)
    ap.add_argument("-v", "--verbose", action="store_true")
    a = ap.parse_args()
    py = VENV_PY if os.path.exists(VENV_PY) else sys.executable
    lt_addrs = [f"127.1.1.{20 + i}:{a.port}" for i in range(a.lt_nodes)]
    wt_addrs = [f"127.1.1.{40 + i}:{a.port}" for i in range(a.wt_nodes)]
    ih_wt, ih_lt, ih_ltlt, ih_wtwt = ("%02x" % b * 20 for b in (0xA1, 0xB2, 0xC3, 0xD4))
    failures = []

    def check(name, ok, **kw):
        report(check=name, ok=bool(ok), **kw)
        if not ok:
            failures.append(name)

    t0 = time.monotonic()
    lt_cmd = [py, "lt.py", "--nodes", str(a.lt_nodes), "--base", "127.1.1.20", "--port",
              str(a.port), "--duration", "120", "--serve", "--lookup-timeout", "20"]
    wt_cmd = ["node", "wt.js", "--nodes", str(a.wt_nodes), "--base", "127.1.1.40", "--port",
              str(a.port), "--duration", "120", "--serve", "--lookup-timeout", "20",
              "--bootstrap", ",".join(lt_addrs)]
    with Harness(lt_cmd, echo=a.verbose) as lt:
        ready = lt.expect("ready", 40)
        report(step="libtorrent ready", t=round(time.monotonic() - t0, 3), lt_t=ready["t"],
               complete=ready["complete"], tables=[n["table"] for n in ready["nodes"]])
        t1 = time.monotonic()
        with Harness(wt_cmd, echo=a.verbose) as wt:
            wready = wt.expect("ready", 40)
            report(step="webtorrent ready", t=round(time.monotonic() - t1, 3),
                   complete=wready["complete"], tables=[n["table"] for n in wready["nodes"]],
                   walks=[n["walk"] for n in wready["nodes"]])
            wt_ids = {n["addr"]: n["id"] for n in wready["nodes"]}
            lt_ids = {n["addr"]: n["id"] for n in ready["nodes"]}

            # 1. Tables: libtorrent learns the webtorrent nodes from their queries.
            deadline = time.monotonic() + 30
            while True:
                lt.send("dump-table")
                tables = [lt.expect("table", 10) for _ in range(a.lt_nodes)]
                have = [sum(1 for e in tb["entries"] if wt_ids.get(e["addr"]) == e["id"])
                        for tb in tables]
                if all(h == a.wt_nodes for h in have) or time.monotonic() > deadline:
                    break
                time.sleep(0.5)
            check("libtorrent tables hold every webtorrent node (id and address)",
                  all(h == a.wt_nodes for h in have), per_node=have,
                  after=round(time.monotonic() - t1, 3))
            wt.send("dump-table")
            wtables = [wt.expect("table", 10) for _ in range(a.wt_nodes)]
            whave = [sum(1 for e in tb["entries"] if lt_ids.get(e["addr"]) == e["id"])
                     for tb in wtables]
            check("webtorrent tables hold libtorrent nodes", all(h >= 1 for h in whave),
                  per_node=whave)

            # 2. webtorrent announces, libtorrent finds it.
            ann = wt.command(f"announce {ih_wt}:6881@0", "announce", 30)
            check("webtorrent announce", ann["complete"], elapsed=ann["elapsed"])
            peers = lt.command(f"get-peers {ih_wt}@{a.lt_nodes - 1}", "peers", 30)
            check("libtorrent get_peers finds webtorrent's peer", "127.1.1.40:6881" in peers["peers"],
                  elapsed=peers["elapsed"], peers=peers["peers"], complete=peers["complete"])

            # 3. libtorrent announces, webtorrent finds it.
            ann = lt.command(f"announce {ih_lt}:6882@0", "announce", 30)
            check("libtorrent announce", ann["complete"], elapsed=ann["elapsed"])
            peers = wt.command(f"get-peers {ih_lt}@{a.wt_nodes - 1}", "peers", 30)
            check("webtorrent lookup finds libtorrent's peer", "127.1.1.20:6882" in peers["peers"],
                  elapsed=peers["elapsed"], peers=peers["peers"])

            # 4. Within each implementation.
            lt.command(f"announce {ih_ltlt}:6883@1", "announce", 30)
            peers = lt.command(f"get-peers {ih_ltlt}@{a.lt_nodes - 1}", "peers", 30)
            check("libtorrent -> libtorrent", "127.1.1.21:6883" in peers["peers"],
                  elapsed=peers["elapsed"])
            wt.command(f"announce {ih_wtwt}:6884@1", "announce", 30)
            peers = wt.command(f"get-peers {ih_wtwt}@0", "peers", 30)
            check("webtorrent -> webtorrent", "127.1.1.41:6884" in peers["peers"],
                  elapsed=peers["elapsed"])
            wt.send("quit")
        lt.send("quit")
    report(result="pass" if not failures else "fail", failures=failures,
           total=round(time.monotonic() - t0, 3))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
