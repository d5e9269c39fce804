#!/usr/bin/env python3
"""Loopback harness for btdht 0.3.3 (PyPI, Cython): N nodes in one process, JSON lines on stdout.

Node i binds BASE+i (last IPv4 octet incremented) at PORT. btdht never contacts its default
public routers here: every node is a subclass whose `bootstarp` (sic) sends its find_node only to
the --bootstrap contacts plus its siblings (unless --no-mesh), and the private-range filter is
off (`ignored_net=[]`) so loopback peers count. Node ids are fixed per index and contain no zero
byte (btdht copies ids with strncpy and would corrupt them).

Usage: bt.py [options] [actions]
  --nodes N (1)  --base IP (127.1.1.60)  --port P (7000)
  --bootstrap IP:PORT[,IP:PORT...] (repeatable)  --no-mesh  --duration S (60)
  --ready-timeout S (20)  --min-table K (default min(8, siblings + contacts))
  --lookup-timeout S (20)  --serve
Actions (flags, or stdin lines in --serve mode without the dashes; @N picks the node, default 0
for announce and the last node for get-peers):
  --announce HEX[:PORT][@N]   --get-peers HEX[@N]   --dump-table [N]   --node-ids   --sleep S
  bootstrap[@N] (stdin only): send the find_node to the contacts again.   quit (stdin only)
Events (every one has "event" and "t", seconds since start):
  ready {nodes: [{index, addr, id, table}], complete, min_table}   ids {nodes}
  table {node, id, entries: [{id, addr}]}   announce {node, info_hash, port, complete, elapsed}
  peers {node, info_hash, peers: ["ip:port"], complete, elapsed}   done {cmd}
  error {cmd, error}   exit {reason}

Runs under tests/interop/.venv/bin/python (install.sh installs btdht there).
"""
import argparse
import hashlib
import json
import os
import sys
import threading
import time

# btdht prints its log lines on stdout: keep stdout for our events only.
OUT = sys.stdout
sys.stdout = sys.stderr

import btdht  # noqa: E402  (after the stdout swap)
from btdht import utils  # noqa: E402

T0 = time.monotonic()
LOCK = threading.Lock()


def now():
    return round(time.monotonic() - T0, 3)


def emit(event, **fields):
    with LOCK:
        OUT.write(json.dumps({"event": event, "t": now(), **fields}) + "\n")
        OUT.flush()


def parse_ep(text):
    host, _, port = text.rpartition(":")
    octets = host.split(".")
    if len(octets) != 4 or octets[0] != "127" or not port.isdigit():
        raise ValueError(f"bad address {text} (want a 127.x.y.z:PORT loopback address)")
    if any(int(o) == 0 for o in octets):
        raise ValueError(f"{text}: btdht truncates at NUL bytes; use an address without a zero octet")
    return host, int(port)


def node_id(base, port, index):
    """A fixed id per node with no zero byte."""
    h = hashlib.sha1(f"btdht {base}:{port} {index}".encode()).digest()
    return bytes(b or 1 for b in h)


class LocalDHT(btdht.DHT):
    """A btdht node that bootstraps only from the contacts it is given."""

    def bootstarp(self, addresses=None):  # the library's own (misspelt) name
        btdht.DHT.bootstarp(self, self.contacts)


class Harness:
    def __init__(self, args):
        self.args = args
        self.deadline = time.monotonic() + args.duration
        self.scheduler = utils.Scheduler()
        base = [int(o) for o in args.base.split(".")]
        self.nodes = []
        for i in range(args.nodes):
            ip = ".".join(map(str, base[:3] + [base[3] + i]))
            parse_ep(f"{ip}:{args.port}")
            n = LocalDHT(bind_ip=ip, bind_port=args.port, id=node_id(args.base, args.port, i),
                         ignored_net=[], ignored_ip=[], prefix=f"bt{i}:",
                         scheduler=self.scheduler, debuglvl=0)
            n.index = i
            n.addr = f"{ip}:{args.port}"
            self.nodes.append(n)
        contacts = [parse_ep(c) for c in args.bootstrap]
        for n in self.nodes:
            siblings = [] if args.no_mesh else [parse_ep(m.addr) for m in self.nodes if m is not n]
            n.contacts = contacts + siblings

    def start(self):
        for n in self.nodes:
            n.start(start_scheduler=False)
        self.scheduler.start()
        for n in self.nodes:
            n.bootstarp()

    def table(self, n):
        """The routing table of `n` without itself (btdht lists its own id too)."""
        entries = []
        for bucket in n.root:
            for node in bucket:
                if node.id != n.myid.value:
                    entries.append({"id": node.id.hex(), "addr": f"{node.ip}:{node.port}"})
        return entries

    def describe(self, n):
        return {"index": n.index, "addr": n.addr, "id": n.myid.value.hex(),
                "table": len(self.table(n))}

    def wait_ready(self):
        contacts = len(self.args.bootstrap) + (0 if self.args.no_mesh else len(self.nodes) - 1)
        k = self.args.min_table if self.args.min_table is not None else min(8, contacts)
        end = min(time.monotonic() + self.args.ready_timeout, self.deadline)
        complete = False
        last_kick = time.monotonic()
        while time.monotonic() < end:
            if all(len(self.table(n)) >= k for n in self.nodes):
                complete = True
                break
            if time.monotonic() - last_kick > 2:
                # A find_node lost to a truncated reply or a NUL in its transaction id: resend.
                for n in self.nodes:
                    if len(self.table(n)) < k:
                        n.bootstarp()
                last_kick = time.monotonic()
            time.sleep(0.1)
        emit("ready", nodes=[self.describe(n) for n in self.nodes], complete=complete,
             min_table=k)

    def pick(self, arg, default):
        if "@" in arg:
            arg, idx = arg.rsplit("@", 1)
            return arg, self.nodes[int(idx)]
        return arg, self.nodes[default]

    def run(self, cmd):
        name, _, rest = cmd.strip().partition(" ")
        rest = rest.strip()
        try:
            if name == "announce":
                spec, n = self.pick(rest, 0)
                ih, _, port = spec.partition(":")
                port = int(port) if port else self.args.port
                t = time.monotonic()

                def announce():
                    # btdht announces only to nodes whose token it already holds, and sends
                    # the others a get_peers for one; its lookup can end before any answer
                    # came back. The second call, a second later, finds the tokens.
                    n.announce_peer(bytes.fromhex(ih), port)
                    time.sleep(1)
                    n.announce_peer(bytes.fromhex(ih), port)

                worker = threading.Thread(target=announce, daemon=True)
                worker.start()
                worker.join(self.args.lookup_timeout)
                # The announce_peer queries leave btdht's send queue and reach the storing
                # nodes' threads after announce_peer returns: let them land.
                time.sleep(0.5)
                emit("announce", node=n.index, info_hash=ih, port=port,
                     complete=not worker.is_alive(), elapsed=round(time.monotonic() - t, 3))
            elif name == "get-peers":
                ih, n = self.pick(rest, len(self.nodes) - 1)
                found = threading.Event()
                got = []

                def callback(peers):
                    got.extend(peers or [])
                    found.set()

                t = time.monotonic()
                peers = n.get_peers(bytes.fromhex(ih), block=False, callback=callback,
                                    limit=1000)
                complete = found.wait(self.args.lookup_timeout)
                peers = got or peers or n._get_peers(bytes.fromhex(ih), compact=False) or []
                emit("peers", node=n.index, info_hash=ih, complete=complete,
                     elapsed=round(time.monotonic() - t, 3),
                     peers=sorted({f"{ip}:{port}" for ip, port in peers}))
            elif name == "dump-table":
                which = [self.nodes[int(rest)]] if rest else self.nodes
                for n in which:
                    emit("table", node=n.index, id=n.myid.value.hex(), entries=self.table(n))
            elif name == "node-ids":
                emit("ids", nodes=[self.describe(n) for n in self.nodes])
            elif name == "bootstrap":
                _, n = self.pick(rest or "", 0) if rest else (None, None)
                for m in [n] if n else self.nodes:
                    m.bootstarp()
            elif name == "sleep":
                time.sleep(float(rest))
            else:
                raise ValueError(f"unknown command {name!r}")
            emit("done", cmd=cmd.strip())
        except Exception as e:  # reported, the harness goes on
            emit("error", cmd=cmd.strip(), error=f"{type(e).__name__}: {e}")

    def serve(self):
        """Reads commands from stdin until EOF, `quit` or the deadline."""
        lines = []
        cond = threading.Condition()

        def reader():
            for line in sys.stdin:
                with cond:
                    lines.append(line)
                    cond.notify()
            with cond:
                lines.append(None)
                cond.notify()

        threading.Thread(target=reader, daemon=True).start()
        while True:
            with cond:
                left = self.deadline - time.monotonic()
                if left <= 0:
                    return "duration"
                if not lines:
                    cond.wait(min(left, 0.5))
                    continue
                line = lines.pop(0)
            if line is None:
                return "eof"
            if line.strip() == "quit":
                return "quit"
            if line.strip():
                self.run(line)


def main():
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--nodes", type=int, default=1)
    p.add_argument("--base", default="127.1.1.60")
    p.add_argument("--port", type=int, default=7000)
    p.add_argument("--bootstrap", action="append", default=[])
    p.add_argument("--no-mesh", action="store_true")
    p.add_argument("--duration", type=float, default=60)
    p.add_argument("--ready-timeout", type=float, default=20)
    p.add_argument("--min-table", type=int, default=None)
    p.add_argument("--lookup-timeout", type=float, default=20)
    p.add_argument("--serve", action="store_true")
    p.add_argument("--announce", action="append", default=[])
    p.add_argument("--get-peers", action="append", default=[])
    p.add_argument("--dump-table", nargs="?", const="", default=None)
    p.add_argument("--node-ids", action="store_true")
    p.add_argument("--sleep", type=float, default=None)
    args = p.parse_args()
    args.bootstrap = [c for arg in args.bootstrap for c in arg.split(",") if c]
    h = Harness(args)
    h.start()
    h.wait_ready()
    for a in args.announce:
        h.run(f"announce {a}")
    for g in args.get_peers:
        h.run(f"get-peers {g}")
    if args.dump_table is not None:
        h.run(f"dump-table {args.dump_table}")
    if args.node_ids:
        h.run("node-ids")
    if args.sleep:
        h.run(f"sleep {args.sleep}")
    reason = h.serve() if args.serve else "actions done"
    emit("exit", reason=reason)
    # btdht's stop() joins its threads for up to 30 s each; the process ends here instead.
    os._exit(0)


if __name__ == "__main__":
    main()
