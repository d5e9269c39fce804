#!/usr/bin/env python3
"""Regenerate tests/corpus/: real KRPC datagrams sent by libtorrent and bittorrent-dht.

What it does (everything on loopback, every process bounded and killed at the end):
  1. Starts a "sink" node in this process on 127.1.1.2:6881 and [::1]:6881. It answers every
     query minimally but validly (id, empty nodes, a token, ...) so the others keep talking to
     it, and records each query it receives.
  2. Starts 2 libtorrent sessions (lt.py, IPv4 + IPv6) and 2 bittorrent-dht nodes (wt.js, IPv4)
     plus 1 bittorrent-dht node on [::1], all bootstrapped from the sink, and makes them
     announce, look up, put, get and sample so that they send every query kind they know.
  3. Sends every query kind to one node of each implementation and family with krpc.Client and
     records the raw answers: responses, and errors (unknown method, bad token, missing argument).
Writes tests/corpus/<impl>/<kind>-<method>-<n>.bin and tests/corpus/MANIFEST.txt.
Run: tests/interop/.venv/bin/python tests/interop/capture.py [--out DIR] [-v]
"""
import argparse
import hashlib
import os
import socket
import subprocess
import sys
import threading
import time

import krpc
from jsonl import Harness

HERE = os.path.dirname(os.path.abspath(__file__))
VENV_PY = os.path.join(HERE, ".venv", "bin", "python")
SINK4, SINK6 = ("127.1.1.2", 6881), ("::1", 6881)
LT_BASE, LT_PORT, LT_PORT6 = "127.1.1.20", 7300, 7400
WT_BASE, WT_PORT, WT_PORT6 = "127.1.1.40", 7300, 7500
PER_KEY = 2  # datagrams kept per (impl, kind, method, family, note)


def versions():
    py = VENV_PY if os.path.exists(VENV_PY) else sys.executable
    lt = subprocess.run([py, "-c", "import libtorrent; print(libtorrent.__version__)"],
                        capture_output=True, text=True, timeout=30).stdout.strip()
    wt = subprocess.run(["node", "-p", "require('./node/node_modules/bittorrent-dht/package.json')"
                         ".version"], cwd=HERE, capture_output=True, text=True,
                        timeout=30).stdout.strip()
    return {"libtorrent": lt or "?", "webtorrent": wt or "?"}


class Corpus:
    def __init__(self):
        self.items = []  # (impl, kind, method, family, note, raw)
        self.lock = threading.Lock()

    def add(self, impl, kind, method, family, raw, note="-"):
        with self.lock:
            same = [i for i in self.items if i[:5] == (impl, kind, method, family, note)]
            if len(same) < PER_KEY and len(raw) < 1500 and all(i[5] != raw for i in same):
                self.items.append((impl, kind, method, family, note, raw))

    def write(self, out, vers):
        lines = ["# Raw KRPC datagrams captured on loopback by tests/interop/capture.py.",
                 "# file implementation version kind method family note"]
        counters = {}
        for impl, kind, method, family, note, raw in sorted(
                self.items, key=lambda i: (i[0], i[1], i[2], i[3], i[4])):
            os.makedirs(os.path.join(out, impl), exist_ok=True)
            key = (impl, kind, method)
            counters[key] = counters.get(key, 0) + 1
            name = f"{impl}/{kind}-{method}-{counters[key]}.bin"
            with open(os.path.join(out, name), "wb") as f:
                f.write(raw)
            lines.append(f"{name} {impl} {vers[impl]} {kind} {method} {family} {note}")
        with open(os.path.join(out, "MANIFEST.txt"), "w") as f:
            f.write("\n".join(lines) + "\n")
        return len(lines) - 2


class Sink:
    """Answers queries minimally and records them, attributing them by source address."""

    def __init__(self, corpus, who):
        self.corpus, self.who = corpus, who
        self.id = hashlib.sha1(b"capture sink").digest()
        self.seen = {}
        self.stop = False
        self.socks = []
        for fam, addr in ((socket.AF_INET, SINK4), (socket.AF_INET6, SINK6)):
            s = socket.socket(fam, socket.SOCK_DGRAM)
            s.bind(addr)
            s.settimeout(0.2)
            self.socks.append(s)
            threading.Thread(target=self.loop, args=(s, fam == socket.AF_INET6),
                             daemon=True).start()

    def loop(self, s, v6):
        while not self.stop:
            try:
                data, src = s.recvfrom(65536)
            except socket.timeout:
                continue
            except OSError:
                return
            try:
                msg = krpc.bdecode(data, strict=False)
            except krpc.BencodeError:
                continue
            if not isinstance(msg, dict) or msg.get(b"y") != b"q":
                continue
            method = msg.get(b"q", b"?").decode(errors="replace")
            impl = self.who(src)
            if impl:
                self.corpus.add(impl, "query", method, "v6" if v6 else "v4", data)
                self.seen[(impl, method, v6)] = self.seen.get((impl, method, v6), 0) + 1
            reply = self.answer(msg, method, v6)
            try:
                s.sendto(krpc.bencode(reply), src)
            except OSError:
                pass

    def answer(self, msg, method, v6):
        t = msg.get(b"t", b"")
        r = {b"id": self.id}
        empty = {b"nodes6" if v6 else b"nodes": b""}
        if method in ("find_node",):
            r.update(empty)
        elif method in ("get_peers", "get"):
            r.update(empty, token=b"sinktokn")
        elif method == "sample_infohashes":
            r.update(empty, interval=60, num=0, samples=b"")
        elif method not in ("ping", "announce_peer", "put"):
            return {b"t": t, b"y": b"e", b"e": [204, b"Method Unknown"]}
        return {b"t": t, b"y": b"r", b"r": r}

    def close(self):
        self.stop = True
        time.sleep(0.3)
        for s in self.socks:
            s.close()


def probe(corpus, impl, addr, verbose):
    """Send every query kind to addr and record what comes back."""
    v6 = ":" in addr[0]
    fam = "v6" if v6 else "v4"
    c = krpc.Client(family=socket.AF_INET6 if v6 else socket.AF_INET, timeout=2.0,
                    node_id=hashlib.sha1(b"capture probe").digest())
    ih = hashlib.sha1(b"capture infohash").digest()
    other = hashlib.sha1(b"capture unknown").digest()
    value = b"capture item"
    item = hashlib.sha1(krpc.bencode(value)).digest()
    want = {b"want": [b"n4", b"n6"]}

    def send(method, args, note="-", extra=None, q=None):
        _, raw, dec, _ = c.query(addr, (q or method).encode(), args, extra)
        if raw is None:
            if verbose:
                print(f"  {impl} {fam} {method} {note}: no answer", flush=True)
            return None
        kind = "error" if isinstance(dec, dict) and dec.get(b"y") == b"e" else "response"
        corpus.add(impl, kind, method, fam, raw, note)
        if verbose:
            print(f"  {impl} {fam} {method} {note}: {kind} {len(raw)} bytes", flush=True)
        return dec

    send("ping", {})
    send("find_node", {b"target": other})
    send("find_node", {b"target": other, **want}, note="want-n4-n6")
    dec = send("get_peers", {b"info_hash": ih})
    token = (dec or {}).get(b"r", {}).get(b"token", b"x")
    send("announce_peer", {b"info_hash": ih, b"port": 6881, b"token": token})
    send("announce_peer", {b"info_hash": ih, b"port": 6881, b"token": b"badtoken"},
         note="bad-token")
    send("get_peers", {b"info_hash": ih}, note="values")
    dec = send("get", {b"target": item})
    token = (dec or {}).get(b"r", {}).get(b"token", b"x")
    send("put", {b"v": value, b"token": token})
    send("put", {b"v": value, b"token": b"badtoken"}, note="bad-token")
    send("get", {b"target": item}, note="value")
    send("sample_infohashes", {b"target": other})
    send("frobnicate", {}, note="unknown-method")
    send("get_peers", {}, note="missing-info_hash")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.path.join(HERE, "..", "corpus"))
    ap.add_argument("-v", "--verbose", action="store_true")
    a = ap.parse_args()
    out = os.path.abspath(a.out)
    py = VENV_PY if os.path.exists(VENV_PY) else sys.executable
    vers = versions()
    corpus = Corpus()
    sources = {(f"127.1.1.{20 + i}", LT_PORT): "libtorrent" for i in range(2)}
    sources.update({("::1", LT_PORT6 + i): "libtorrent" for i in range(2)})
    sources.update({(f"127.1.1.{40 + i}", WT_PORT): "webtorrent" for i in range(2)})
    sources[("::1", WT_PORT6)] = "webtorrent"

    def who(src):
        return sources.get((src[0], src[1]))

    sink = Sink(corpus, who)
    ih = hashlib.sha1(b"capture announce").hexdigest()
    sinks = "127.1.1.2:6881,[::1]:6881"
    lt_cmd = [py, "lt.py", "--nodes", "2", "--base", LT_BASE, "--port", str(LT_PORT), "--ipv6",
              "--port6", str(LT_PORT6), "--bootstrap", sinks, "--duration", "90", "--serve",
              "--lookup-timeout", "8", "--ready-timeout", "10", "--min-table", "2"]
    wt_cmd = ["node", "wt.js", "--nodes", "2", "--base", WT_BASE, "--port", str(WT_PORT),
              "--bootstrap", "127.1.1.2:6881", "--duration", "60", "--serve",
              "--lookup-timeout", "8"]
    wt6_cmd = ["node", "wt.js", "--nodes", "1", "--ipv6", "--port", str(WT_PORT6),
               "--bootstrap", "[::1]:6881", "--duration", "60", "--serve", "--lookup-timeout",
               "8"]
    try:
        with Harness(lt_cmd, echo=a.verbose) as lt, Harness(wt_cmd, echo=a.verbose) as wt, \
                Harness(wt6_cmd, echo=a.verbose) as wt6:
            for h in (lt, wt, wt6):
                h.expect("ready", 30)
            # Queries: make each implementation talk to the sink.
            lt.command(f"announce {ih}:6881@0", "announce", 20)
            lt.command(f"get-peers {ih}@1", "peers", 20)
            put = lt.command("put capture item from libtorrent@0", "put", 20)
            lt.command(f"get {put['target']}@1", "item", 20)
            lt.command("sample 127.1.1.2:6881@0", "done", 20)
            # (libtorrent 2.1.1 sends nothing for dht_sample_infohashes to an IPv6 endpoint.)
            for h, sink_addr in ((wt, "127.1.1.2:6881"), (wt6, "[::1]:6881")):
                h.command(f"announce {ih}:6881@0", "announce", 20)
                h.command(f"get-peers {ih}@0", "peers", 20)
                put = h.command("put capture item from webtorrent@0", "put", 20)
                h.command(f"get {put['target']}@0", "item", 20)
                h.command(f"add-node {sink_addr}@0", "done", 5)  # pings the sink
                h.command("sleep 1", "done", 5)
            lt.command("sleep 2", "done", 10)
            # Responses and errors.
            for impl, addr in (("libtorrent", (LT_BASE, LT_PORT)), ("libtorrent", ("::1", LT_PORT6)),
                               ("webtorrent", (WT_BASE, WT_PORT)), ("webtorrent", ("::1", WT_PORT6))):
                probe(corpus, impl, addr, a.verbose)
            for h in (lt, wt, wt6):
                h.send("quit")
    finally:
        sink.close()
    for (impl, method, v6), n in sorted(sink.seen.items()):
        print(f"sink saw {n:3d} {method} queries from {impl} over {'v6' if v6 else 'v4'}")
    # Replace the previous corpus wholesale so no stale file survives.
    for impl in ("libtorrent", "webtorrent"):
        d = os.path.join(out, impl)
        if os.path.isdir(d):
            for f in os.listdir(d):
                if f.endswith(".bin"):
                    os.remove(os.path.join(d, f))
    n = corpus.write(out, vers)
    print(f"wrote {n} datagrams to {out} ({vers})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
