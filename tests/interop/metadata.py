#!/usr/bin/env python3
"""Metadata exchange (BEP 9 + BEP 10) scenarios: `dht metadata` against real seeders.

  metadata.py [--dht PATH] [--only NAME,...] [--timeout SECS] [--logs DIR] [-v]

Scenarios (ports 7860-7899; none overlaps scenarios.py, smoke.py or capture.py):
  lt-meta-single  libtorrent seeds a one-file torrent: `dht metadata --peer` writes a .torrent
                  whose info dictionary is byte-identical to libtorrent's
  lt-meta-multi   the same for a multi-file torrent (5 files in 2 levels, paths checked)
  lt-meta-pieces  the same for an info dictionary of 61 KiB (4 metadata pieces of 16 KiB)
  lt-meta-dht     libtorrent joins the DHT through our `dht node` only and announces; `dht
                  metadata` with no --peer finds it through the DHT and fetches the metadata
  wt-meta         webtorrent's bittorrent-protocol + ut_metadata serve a 40 KiB info dictionary
                  (3 pieces): byte-identical
  liars           four lying peers (wrong data, 1 GiB metadata_size, garbage after the
                  handshake, silence) and a closed port: alone, each fails with its own reason
                  (exit 1, reasons in --json and -v); given before libtorrent, the metadata
                  still comes from libtorrent

Each prints `PASS name (secs)` or `FAIL name: reason`; exit status 1 if any failed. Every process
started is killed at the end (own process groups). Runs under tests/interop/.venv/bin/python
(libtorrent); wt_seed.js needs `npm ci` in tests/interop/node-wire (metadata.sh does both).
"""
import argparse
import hashlib
import json
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time

from jsonl import Harness

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
PORT = 7860
LT_IP = "127.1.1.60"
WT_IP = "127.1.1.70"
LIAR_IP = "127.1.1.80"
OUR_NODE = "127.1.1.2"
CLIENT = "127.1.1.5"


class Fail(Exception):
    pass


def check(cond, why):
    if not cond:
        raise Fail(why)


class Ctx:
    def __init__(self, args, name):
        self.args = args
        self.name = name
        self.tmp = tempfile.mkdtemp(prefix=f"dht-{name}-")
        self.procs = []

    def start(self, argv, label):
        log = open(os.path.join(self.args.logs, f"{self.name}-{label}.log"), "w") \
            if self.args.logs else subprocess.DEVNULL
        h = Harness(argv, cwd=HERE, stderr=log, echo=self.args.verbose)
        self.procs.append(h)
        return h

    def dht_metadata(self, info_hash, extra, timeout=40):
        argv = [self.args.dht, "metadata", info_hash, "--json", "-v", "--output", self.tmp,
                "--timeout", "30"] + extra
        r = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
        if self.args.logs:
            with open(os.path.join(self.args.logs, f"{self.name}-metadata.log"), "a") as f:
                f.write(f"$ {' '.join(argv)}\nexit {r.returncode}\n{r.stdout}{r.stderr}\n")
        if self.args.verbose:
            print(f"  exit {r.returncode}: {r.stdout.strip()[:300]}\n  {r.stderr.strip()[-600:]}")
        return r

    def close(self):
        for h in self.procs:
            h.close(timeout=2)
        shutil.rmtree(self.tmp, ignore_errors=True)


def fetch_identical(ctx, torrent, extra):
    """Runs `dht metadata` for `torrent` (a seeding event entry) and checks the saved file."""
    r = ctx.dht_metadata(torrent["info_hash"], extra)
    check(r.returncode == 0, f"dht metadata exit {r.returncode}: {r.stderr.strip()[-300:]}")
    out = json.loads(r.stdout.splitlines()[0])
    check(out["type"] == "metadata", f"unexpected output {out}")
    path = os.path.join(ctx.tmp, torrent["info_hash"] + ".torrent")
    with open(path, "rb") as f:
        saved = f.read()
    info = bytes.fromhex(torrent["info_hex"])
    check(saved == b"d4:info" + info + b"e",
          f"{path}: {len(saved)} bytes, not d4:info + the seeder's {len(info)}-byte info + e")
    check(hashlib.sha1(info).hexdigest() == torrent["info_hash"], "seeder's info-hash mismatch")
    check(out["info_size"] == len(info), f"info_size {out['info_size']} != {len(info)}")
    return out, r


def lt_seeder(ctx, port, dht_bootstrap=None):
    argv = [os.path.join(HERE, ".venv", "bin", "python"), "lt_seed.py", "--dir", ctx.tmp + "/lt",
            "--ip", LT_IP, "--port", str(port), "--duration", "60"]
    if dht_bootstrap:
        argv += ["--dht-bootstrap", dht_bootstrap]
    os.makedirs(ctx.tmp + "/lt", exist_ok=True)
    h = ctx.start(argv, "lt")
    ev = h.expect("seeding", 30)
    return h, ev, {t["name"]: t for t in ev["torrents"]}


def lt_meta(name):
    def run(ctx):
        _, ev, torrents = lt_seeder(ctx, PORT)
        t = torrents[name]
        out, _ = fetch_identical(ctx, t, ["--peer", ev["addr"]])
        check(out["client"] and out["client"].startswith("libtorrent"),
              f"client {out['client']!r}")
        if name == "multi":
            paths = sorted(f["path"] for f in out["files"])
            check(paths == ["a.txt", "b/c.txt", "b/d.bin", "b/e/f.txt", "g.dat"], f"files {paths}")
            check(out["name"] == "multi", f"name {out['name']}")
        if name == "pieces":
            check(t["info_len"] > 3 * 16384, f"info only {t['info_len']} bytes")
            check(out["total_size"] == 48 << 20, f"total_size {out['total_size']}")
        if name == "single":
            check(out["files"] == [{"path": "single.bin", "length": 102400}], f"{out['files']}")
    return run


def lt_meta_dht(ctx):
    node_addr = f"{OUR_NODE}:{PORT + 20}"
    node = ctx.start([ctx.args.dht, "node", "--bind", node_addr, "--json", "--duration", "60",
                      "--no-bootstrap", "-vv"], "node")
    node.expect(..., 10, where=lambda e: "listening" in e)
    lt, ev, torrents = lt_seeder(ctx, PORT + 21, dht_bootstrap=node_addr)
    lt.expect("announced", 25)
    t = torrents["multi"]
    out, r = fetch_identical(ctx, t, ["--bootstrap", node_addr, "--bind", f"{CLIENT}:{PORT + 25}"])
    check(out["peer"] == ev["addr"], f"fetched from {out['peer']}, libtorrent is {ev['addr']}")
    check(out["peers_found"] >= 1, f"peers_found {out['peers_found']}")


def wt_meta(ctx):
    h = ctx.start(["node", "wt_seed.js", "--ip", WT_IP, "--port", str(PORT + 30),
                   "--size", "40000", "--duration", "60"], "wt")
    ev = h.expect("seeding", 15)
    check(ev["info_len"] > 2 * 16384, f"info only {ev['info_len']} bytes")
    fetch_identical(ctx, ev, ["--peer", ev["addr"]])
    closed = h.expect("connection_closed", 5)
    check(closed["extended_messages"] >= 3,
          f"webtorrent saw {closed['extended_messages']} extended messages, expected >= 3")


class Liar(threading.Thread):
    """A lying peer on LIAR_IP:port: answers the handshake, then misbehaves."""

    def __init__(self, port, mode, info_hash):
        super().__init__(daemon=True)
        self.mode, self.info_hash = mode, bytes.fromhex(info_hash)
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((LIAR_IP, port))
        self.sock.listen(4)
        self.addr = f"{LIAR_IP}:{port}"
        self.stop = False
        self.start()

    def run(self):
        self.sock.settimeout(0.2)
        while not self.stop:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            threading.Thread(target=self.serve, args=(conn,), daemon=True).start()

    def serve(self, conn):
        try:
            conn.settimeout(20)
            conn.recv(68)
            if self.mode == "silent":
                while not self.stop and conn.recv(4096):
                    pass
                return
            hs = b"\x13BitTorrent protocol" + bytes([0, 0, 0, 0, 0, 0x10, 0, 0]) \
                + self.info_hash + b"-LIAR-" + b"0" * 14
            size = (1 << 30) if self.mode == "oversized" else 20000
            ext = b"d1:md11:ut_metadatai3ee13:metadata_sizei%dee" % size
            conn.sendall(hs + struct.pack(">IBB", len(ext) + 2, 20, 0) + ext)
            if self.mode == "garbage":
                conn.sendall(os.urandom(64) + b"\xff" * 8)
            buf = b""
            while not self.stop:
                data = conn.recv(4096)
                if not data:
                    return
                buf += data
                # Answer any ut_metadata request with made-up data (wrong hash).
                if self.mode == "wrong" and b"msg_typei0e" in buf:
                    buf = b""
                    for piece in range(2):
                        n = 16384 if piece == 0 else 20000 - 16384
                        d = b"d8:msg_typei1e5:piecei%de10:total_sizei20000ee" % piece
                        body = bytes([20, 1]) + d + b"x" * n
                        conn.sendall(struct.pack(">I", len(body)) + body)
        except OSError:
            pass
        finally:
            conn.close()

    def close(self):
        self.stop = True
        self.sock.close()


def liars(ctx):
    _, ev, torrents = lt_seeder(ctx, PORT + 40)
    t = torrents["single"]
    modes = ["wrong", "oversized", "garbage", "silent"]
    ls = [Liar(PORT + 41 + i, m, t["info_hash"]) for i, m in enumerate(modes)]
    try:
        closed = socket.socket()
        closed.bind((LIAR_IP, PORT + 49))
        closed_addr = f"{LIAR_IP}:{PORT + 49}"
        closed.close()
        liar_args = []
        for addr in [l.addr for l in ls] + [closed_addr]:
            liar_args += ["--peer", addr]
        # The liars alone: exit 1, each with its own reason (the silent one after the
        # handshake time limit).
        r = ctx.dht_metadata(t["info_hash"], liar_args)
        check(r.returncode == 1, f"liars only: exit {r.returncode}, expected 1")
        out = json.loads(r.stdout.splitlines()[0])
        check(out["type"] == "metadata_failed", f"liars only: {out}")
        reasons = {f["peer"]: f["reason"] for f in out["failures"]}
        for addr, want in [(ls[0].addr, "the metadata does not match the info-hash"),
                           (ls[1].addr, "the peer announces 1073741824 bytes of metadata"),
                           (ls[2].addr, "-byte message, over the cap"),
                           (ls[3].addr, "timed out in the handshake"),
                           (closed_addr, "cannot connect")]:
            check(want in reasons.get(addr, ""), f"{addr}: {reasons.get(addr)!r}, not {want!r}")
            check(f"{addr}: {reasons[addr]}" in r.stderr, f"{addr}'s reason not in the -v log")
        # The liars first, libtorrent last: the metadata comes from libtorrent.
        out, r = fetch_identical(ctx, t, liar_args + ["--peer", ev["addr"]])
        check(out["peer"] == ev["addr"], f"fetched from {out['peer']}")
        check(out["peers_found"] == 6, f"peers_found {out['peers_found']}")
    finally:
        for l in ls:
            l.close()


SCENARIOS = {
    "lt-meta-single": lt_meta("single"),
    "lt-meta-multi": lt_meta("multi"),
    "lt-meta-pieces": lt_meta("pieces"),
    "lt-meta-dht": lt_meta_dht,
    "wt-meta": wt_meta,
    "liars": liars,
}


class Timeout(BaseException):
    pass


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dht", default=os.path.join(REPO, "target", "debug", "dht"))
    p.add_argument("--only")
    p.add_argument("--timeout", type=float, default=60)
    p.add_argument("--logs")
    p.add_argument("-v", "--verbose", action="store_true")
    args = p.parse_args()
    if args.logs:
        os.makedirs(args.logs, exist_ok=True)
    names = args.only.split(",") if args.only else list(SCENARIOS)
    for n in names:
        if n not in SCENARIOS:
            p.error(f"unknown scenario {n}")

    def alarm(*_):
        raise Timeout()

    signal.signal(signal.SIGALRM, alarm)
    failed = 0
    for name in names:
        ctx = Ctx(args, name)
        start = time.monotonic()
        signal.setitimer(signal.ITIMER_REAL, args.timeout)
        try:
            SCENARIOS[name](ctx)
            print(f"PASS {name} ({time.monotonic() - start:.1f} s)", flush=True)
        except Timeout:
            failed += 1
            print(f"FAIL {name}: no result within {args.timeout} s", flush=True)
        except (Fail, TimeoutError, EOFError, subprocess.TimeoutExpired) as e:
            failed += 1
            print(f"FAIL {name}: {e}", flush=True)
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
            ctx.close()
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
