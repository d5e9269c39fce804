#!/usr/bin/env python3
"""Interoperability scenarios: our `dht` program against libtorrent and bittorrent-dht.

Each scenario starts its own processes on loopback (our `dht node`s, lt.py, wt.js), checks one
claim from the other implementation's side of the wire, and stops everything it started. It
passes, fails with a one-line reason, or is skipped with a printed reason:

  PASS lt-swarm (6.1 s)
  FAIL lt-queries: krpc announce_peer with a bad token: expected KRPC error 203, got a response
  SKIP wt-ipv6: bittorrent-dht 11.0.12 writes IPv4 addresses on IPv6 sockets (see README.md)

Scenarios (each on its own ports, see PORTS; none overlaps smoke.py or capture.py):
  lt-swarm      3 of our nodes and 3 libtorrent sessions bootstrap into one swarm; every
                libtorrent table holds all our nodes (id and address), every table of ours
                holds every libtorrent node
  lt-announce   libtorrent announces; `dht get-peers`, joining through one of our nodes,
                finds that peer
  our-announce  `dht announce` announces; libtorrent accepted it (incoming announce) and
                libtorrent's get_peers finds our peer
  lt-queries    a libtorrent session whose only contact is our node: it admits our node,
                its get_peers / announce_peer / sample_infohashes / put / get to our node all
                get valid answers (raw datagrams checked), its announce is stored by our node,
                it parses the values our node returns; krpc.py checks ping, find_node,
                get_peers, announce_peer with our token, a bad token (error 203) and an
                unknown method (an error)
  wt-swarm      2 of our nodes and 3 bittorrent-dht nodes: tables both ways, announce and
                lookup both ways
  wt-queries    bittorrent-dht's own RPC layer queries our node (ping, find_node, get_peers,
                announce_peer with our token and with a bad one: error 203); its announce
                through our node is stored, and its lookup parses our values
  lt-ipv6       the same claims over [::1] with libtorrent's IPv6 DHT nodes
  wt-ipv6       skipped: bittorrent-dht has no working IPv6
  bt-swarm      2 of our nodes and 3 btdht 0.3.3 nodes (the Cython library): tables both ways
                (btdht cuts about half of its find_node replies mid-entry; we use the whole
                entries), btdht announces and our lookup finds it, we announce and btdht's
                lookup finds us

Usage: scenarios.py [--dht PATH] [--only NAME[,NAME...]] [--timeout SECS] [--logs DIR] [-v]
Exit status: 0 when every scenario passed or was skipped, 1 when one failed, 2 usage.
Python 3.11, standard library plus the harness modules next to this file. lt.py runs under
tests/interop/.venv/bin/python (see install.sh).
"""
import argparse
import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

from jsonl import Harness
import krpc

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
VENV_PY = os.path.join(HERE, ".venv", "bin", "python")

# First port of each scenario; a scenario uses PORT..PORT+19 (its IPv4 nodes share PORT on
# distinct 127.1.1.x addresses; IPv6 nodes on ::1 take PORT+1 and PORT+10.. ). smoke.py uses
# 7000 and capture.py 6881 and 7300-7599.
PORTS = {
    "lt-swarm": 7600, "lt-announce": 7620, "our-announce": 7640, "lt-queries": 7660,
    "wt-swarm": 7680, "wt-queries": 7700, "lt-ipv6": 7720, "wt-ipv6": 7740,
    "bt-swarm": 7760,
}
OURS = ["127.1.1.2", "127.1.1.3", "127.1.1.4"]  # our `dht node`s
CLIENT = "127.1.1.5"  # our one-shot commands bind here (ephemeral port)
LT_BASE = "127.1.1.20"  # libtorrent session i: 127.1.1.(20+i)
WT_BASE = "127.1.1.40"  # bittorrent-dht node i: 127.1.1.(40+i)
BT_BASE = "127.1.1.60"  # btdht node i: 127.1.1.(60+i)


class Fail(Exception):
    """The scenario's claim does not hold; the message is the one-line reason."""


class Skip(Exception):
    """The scenario cannot run here; the message says why."""


class Timeout(BaseException):
    """The per-scenario time limit passed (raised from SIGALRM)."""


def check(ok, reason):
    if not ok:
        raise Fail(reason)


def info_hash(scenario, tag):
    """A distinct, reproducible info-hash per scenario and use."""
    return hashlib.sha1(f"interop {scenario} {tag}".encode()).hexdigest()


def ep(ip, port):
    return f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"


def raw_bytes(v):
    """bytes of a value as wt.js prints it: {"hex": ...} or a printable string."""
    if isinstance(v, dict) and "hex" in v:
        return bytes.fromhex(v["hex"])
    if isinstance(v, str):
        return v.encode("latin1")
    return None


def compact_peers(values):
    out = []
    for v in values or []:
        b = raw_bytes(v)
        if b is not None:
            out.append(krpc.compact_peer(b))
    return out


def ipv6_loopback():
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


class OurNode:
    """One `dht node` process: its id and address come from its first stdout line (JSON)."""

    def __init__(self, ctx, ip, port, bootstrap, node_id=None):
        self.addr = ep(ip, port)
        self.state = os.path.join(ctx.logdir, f"{ctx.name}-node-{ip}-{port}.state")
        argv = [ctx.dht, "node", "--bind", self.addr, "--json", "--duration", "120",
                "--status-interval", "2", "--state", self.state, "-vv"]
        if node_id:
            argv += ["--id", node_id]
        argv += ["--bootstrap", ",".join(bootstrap)] if bootstrap else ["--no-bootstrap"]
        self.h = ctx.start(argv, f"node-{ip}-{port}")
        first = self.h.expect(..., 10, where=lambda e: "listening" in e)
        self.id = first["id"]
        check(self.addr in first["listening"],
              f"dht node bound {first['listening']}, expected {self.addr}")
        self.stopped = None

    def stop(self):
        """SIGTERM, wait for exit; returns the saved routing table {addr: id}."""
        if self.stopped is None:
            self.h.proc.send_signal(signal.SIGTERM)
            try:
                rc = self.h.proc.wait(10)
            except subprocess.TimeoutExpired:
                raise Fail(f"dht node {self.addr} did not exit within 10 s of SIGTERM")
            check(rc == 0, f"dht node {self.addr} exited with status {rc}")
            table = {}
            with open(self.state) as f:
                for line in f:
                    parts = line.split()
                    if len(parts) == 3 and parts[0] == "node":
                        table[parts[2]] = parts[1]
            self.stopped = table
        return self.stopped


class Ctx:
    """What a scenario runs with: its ports, log directory and started processes."""

    def __init__(self, args, name, logdir):
        self.dht = args.dht
        self.name = name
        self.port = PORTS[name]
        self.logdir = logdir
        self.verbose = args.verbose
        self.procs = []
        self.oneshots = []
        self.logs = []

    def start(self, argv, label):
        log = open(os.path.join(self.logdir, f"{self.name}-{label}.log"), "w")
        self.logs.append(log)
        h = Harness(argv, stderr=log, echo=self.verbose)
        self.procs.append(h)
        return h

    def node(self, ip, bootstrap=(), port=None, node_id=None):
        return OurNode(self, ip, port or self.port, list(bootstrap), node_id)

    def lt(self, *extra):
        py = VENV_PY if os.path.exists(VENV_PY) else sys.executable
        argv = [py, "lt.py", "--base", LT_BASE, "--port", str(self.port), "--serve",
                "--duration", "120", "--lookup-timeout", "10", *extra]
        return self.start(argv, "lt")

    def wt(self, *extra):
        argv = ["node", "wt.js", "--base", WT_BASE, "--port", str(self.port), "--serve",
                "--duration", "120", "--lookup-timeout", "10", *extra]
        return self.start(argv, "wt")

    def bt(self, *extra):
        if not os.path.exists(VENV_PY):
            raise Skip("no interop venv: run tests/interop/install.sh")
        argv = [VENV_PY, "bt.py", "--base", BT_BASE, "--port", str(self.port), "--serve",
                "--duration", "120", "--lookup-timeout", "15", *extra]
        return self.start(argv, "bt")

    def run_dht(self, *argv):
        """A one-shot `dht` command with --json: (exit status, JSON lines, stderr)."""
        return self.run_dht_many([argv])[0]

    def run_dht_many(self, argvs, timeout=20):
        """One-shot `dht` commands run at the same time; a result per command, as run_dht."""
        t0 = time.monotonic()
        procs = []
        for argv in argvs:
            cmd = [self.dht, *argv, "--json", "--timeout", "12"]
            p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                 start_new_session=True)
            self.oneshots.append(p)
            procs.append((cmd, p))
        results = []
        for cmd, p in procs:
            try:
                out, err = p.communicate(timeout=max(0.1, t0 + timeout - time.monotonic()))
            except subprocess.TimeoutExpired:
                raise Fail(f"dht {cmd[1]} still running after {timeout} s")
            with open(os.path.join(self.logdir, f"{self.name}-oneshot.log"), "a") as f:
                f.write(f"$ {' '.join(cmd)}\n[exit {p.returncode}]\n{out}{err}\n")
            if self.verbose:
                print(f"  [{self.name}] {' '.join(cmd[1:3])}: exit {p.returncode} "
                      f"after {time.monotonic() - t0:.3f} s", flush=True)
            lines = []
            for line in out.splitlines():
                try:
                    lines.append(json.loads(line))
                except ValueError:
                    pass
            results.append((p.returncode, lines, err.strip()))
        return results

    def krpc(self, *argv):
        """krpc.py: (exit status, its JSON answer)."""
        # --ro (BEP 43): these short-lived clients must not enter our node's table, or it would
        # hand their dead addresses to libtorrent and bittorrent-dht lookups.
        cmd = [sys.executable, os.path.join(HERE, "krpc.py"), "--ro", *argv]
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=15)
        with open(os.path.join(self.logdir, f"{self.name}-krpc.log"), "a") as f:
            f.write(f"$ {' '.join(argv)}\n[exit {p.returncode}]\n{p.stdout}{p.stderr}\n")
        try:
            out = json.loads(p.stdout.strip().splitlines()[-1])
        except (ValueError, IndexError):
            out = {"problems": [p.stderr.strip() or "no output"]}
        return p.returncode, out

    def krpc_ok(self, what, *argv):
        """krpc.py must exit 0; returns its answer."""
        rc, out = self.krpc(*argv)
        check(rc == 0, f"krpc {what}: exit {rc}: {'; '.join(out.get('problems', []))}")
        return out

    def close(self):
        for p in self.oneshots:
            if p.poll() is None:
                p.kill()
                p.wait()
        for h in self.procs:
            if h.proc.poll() is None:
                try:
                    os.killpg(h.proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            h.close(timeout=5)
        for log in self.logs:
            log.close()


# ---- shared steps ------------------------------------------------------------------------------


def tables(h, count, family=None, timeout=10):
    """dump-table on lt.py / wt.js: [{node, id, entries}] of `family` (lt.py), `count` nodes."""
    h.send("dump-table")
    got = []
    while len(got) < count:
        t = h.expect("table", timeout)
        if family is None or t.get("family") == family:
            got.append(t)
    h.expect("done", timeout, where=lambda e: e.get("cmd") == "dump-table")
    return got


def await_in_tables(h, count, ours, within, family=None):
    """Polls until every one of `count` tables holds every node in `ours` ({addr: id})."""
    deadline = time.monotonic() + within
    while True:
        missing = []
        for t in tables(h, count, family):
            held = {e["addr"]: e["id"] for e in t["entries"]}
            for addr, nid in ours.items():
                if held.get(addr) != nid:
                    how = "absent" if addr not in held else f"with id {held[addr][:8]}.."
                    missing.append(f"node {t['node']} lacks {addr} ({how})")
        if not missing:
            return
        if time.monotonic() > deadline:
            raise Fail(f"after {within} s: " + "; ".join(missing[:4]) +
                       (f" (+{len(missing) - 4} more)" if len(missing) > 4 else ""))
        time.sleep(0.5)


def our_tables_hold(nodes, theirs, impl):
    """Stops our nodes; each saved table must hold every node of `theirs` ({addr: id})."""
    for n in nodes:
        table = n.stop()
        lacking = [a for a, nid in theirs.items() if table.get(a) != nid]
        check(not lacking, f"our node {n.addr} (table of {len(table)}) lacks {impl} nodes "
                           f"{', '.join(lacking)}")


def command(h, cmd, event, timeout=20):
    """A harness command; its result event, or Fail with the harness's error."""
    h.send(cmd)
    ev = h.expect((event, "error"), timeout,
                  where=lambda e: e.get("event") == event or e.get("cmd") == cmd)
    check(ev["event"] == event, f"{cmd!r}: {ev.get('error')}")
    return ev


def client_argv(ctx, bind):
    """Where our one-shot commands run from: one address and one id per scenario and family.

    bittorrent-dht ignores BEP 43's "ro" and keeps every querier in its table, and libtorrent
    keeps a read-only node that announced; a client that has exited (or one that, being
    read-only, answers no query) would then stall every later lookup through them by a query
    timeout. Reusing the address and id makes those stale entries the next client's own.
    """
    port = ctx.port + (6 if ":" in bind else 5)
    return ["--bind", ep(bind, port), "--id", info_hash(ctx.name, "client " + bind)]


def get_peers_argv(ctx, ih, bootstrap, bind=CLIENT):
    return ["get-peers", ih, *client_argv(ctx, bind), "--bootstrap", bootstrap]


def announce_argv(ctx, ih, port, bootstrap, bind=CLIENT):
    return ["announce", ih, "--port", str(port), *client_argv(ctx, bind), "--bootstrap", bootstrap]


def found_peers(result):
    """The peers a `dht get-peers` printed, and its exit status."""
    rc, lines, err = result
    return rc, [x["peer"] for x in lines if "peer" in x]


def announced(result):
    """Checks a `dht announce` result: exit 0 and at least one node accepted."""
    rc, lines, err = result
    check(rc == 0 and lines, f"dht announce exited {rc}: {err.splitlines()[-1] if err else ''}")
    out = lines[-1]
    check(out.get("announced", 0) >= 1, f"dht announce: no node accepted it ({out})")
    return out


def get_peers_via(ctx, ih, bootstrap, bind=CLIENT):
    return found_peers(ctx.run_dht(*get_peers_argv(ctx, ih, bootstrap, bind)))


def announce_via(ctx, ih, port, bootstrap, bind=CLIENT):
    return announced(ctx.run_dht(*announce_argv(ctx, ih, port, bootstrap, bind)))


def peer_stored_at(ctx, node_addr, ih, peer, what):
    """krpc.py get_peers to our node: `peer` must be among its values."""
    out = ctx.krpc_ok(f"get_peers to {node_addr}", node_addr, "get_peers", ih)
    values = out.get("r", {}).get("values", [])
    check(peer in values, f"{what}: our node {node_addr} returns values {values}, not {peer}")


def krpc_battery(ctx, node, neighbour=None, family_want="n4,n6"):
    """ping, find_node, get_peers, announce_peer (our token), a bad token, an unknown method."""
    a = node.addr
    out = ctx.krpc_ok("ping", a, "ping")
    check(out["r"]["id"] == node.id, f"krpc ping: id {out['r']['id']} != {node.id}")
    out = ctx.krpc_ok("find_node", a, "find_node", info_hash(ctx.name, "target"), "--want",
                      family_want)
    if neighbour:
        listed = {n["addr"]: n["id"] for k in ("nodes", "nodes6") for n in out["r"].get(k, [])}
        check(listed.get(neighbour[0]) == neighbour[1],
              f"krpc find_node: {neighbour[0]} not in the answer ({sorted(listed)})")
    ih = info_hash(ctx.name, "krpc")
    ctx.krpc_ok("get_peers", a, "get_peers", ih)
    out = ctx.krpc_ok("announce_peer with our token", a, "announce_peer", ih, "6099")
    rc, out = ctx.krpc("--token", "bad", "--expect-error", "203", a, "announce_peer", ih, "6098")
    check(rc == 0, f"krpc announce_peer with a bad token: {'; '.join(out.get('problems', []))}")
    ip = "::1" if a.startswith("[") else "127.1.1.1"
    values = ctx.krpc_ok("get_peers after announce", a, "get_peers", ih)["r"].get("values", [])
    check(ep(ip, 6099) in values and ep(ip, 6098) not in values,
          f"after announces with a good and a bad token our node returns {values}")
    rc, out = ctx.krpc("--expect-error", a, "frobnicate")
    check(rc == 0, f"krpc unknown method: {'; '.join(out.get('problems', []))}")


# ---- scenarios ---------------------------------------------------------------------------------


def lt_swarm(ctx):
    a = ctx.node(OURS[0])
    lt = ctx.lt("--nodes", "3", "--bootstrap", a.addr, "--min-table", "2")
    ready = lt.expect("ready", 20)
    lt_ids = {n["addr"]: n["id"] for n in ready["nodes"]}
    lt_addrs = list(lt_ids)
    b = ctx.node(OURS[1], [lt_addrs[0], a.addr])
    c = ctx.node(OURS[2], [lt_addrs[1], a.addr])
    ours = {n.addr: n.id for n in (a, b, c)}
    await_in_tables(lt, 3, ours, 20, family="v4")
    our_tables_hold((a, b, c), lt_ids, "libtorrent")


def lt_fixture(ctx):
    """Our node A, 3 libtorrent sessions bootstrapped from A, our node B from both."""
    a = ctx.node(OURS[0])
    lt = ctx.lt("--nodes", "3", "--bootstrap", a.addr, "--min-table", "2")
    ready = lt.expect("ready", 20)
    lt_addrs = [n["addr"] for n in ready["nodes"]]
    b = ctx.node(OURS[1], [lt_addrs[0], a.addr])
    await_in_tables(lt, 3, {a.addr: a.id}, 15, family="v4")
    return a, b, lt, lt_addrs


def lt_announce(ctx):
    a, b, lt, lt_addrs = lt_fixture(ctx)
    ih = info_hash(ctx.name, "lt")
    ann = command(lt, f"announce {ih}:6001@0", "announce")
    check(ann["complete"], "libtorrent's announce did not complete")
    want = ep(LT_BASE, 6001)
    rc, peers = get_peers_via(ctx, ih, a.addr)
    check(want in peers, f"dht get-peers (exit {rc}) found {peers}, not libtorrent's {want}")
    # With 5 nodes in all, libtorrent announced to every one, our node A included.
    peer_stored_at(ctx, a.addr, ih, want, "libtorrent's announce_peer")


def our_announce(ctx):
    a, b, lt, lt_addrs = lt_fixture(ctx)
    ih = info_hash(ctx.name, "ours")
    announce_via(ctx, ih, 6002, a.addr)
    peers = command(lt, f"get-peers {ih}@2 {ep(CLIENT, 6002)}", "peers")
    want = ep(CLIENT, 6002)
    check(want in peers["peers"], f"libtorrent's get_peers found {peers['peers']}, not {want}")
    accepted = [e for e in lt.seen if e.get("event") == "incoming_announce"
                and e.get("info_hash") == ih and e.get("port") == 6002]
    check(accepted, "no libtorrent session reported our announce_peer (incoming_announce)")
    check(all(e["from"] == CLIENT for e in accepted),
          f"libtorrent saw our announce from {[e['from'] for e in accepted]}, not {CLIENT}")


def pkt_exchanges(events, peer):
    """From lt.py pkt events: [(method, raw answer)] for libtorrent's queries to `peer`."""
    sent = {}
    answers = []
    for e in events:
        if e.get("event") != "pkt" or e.get("peer") != peer:
            continue
        raw = bytes.fromhex(e["hex"])
        if e["dir"] == "out":
            msg = krpc.bdecode(raw, strict=False)
            if msg.get(b"y") == b"q":
                sent[msg[b"t"]] = msg[b"q"]
        else:
            answers.append(raw)
    out = []
    for raw in answers:
        try:
            msg = krpc.bdecode(raw)  # strict: canonical bencode only
        except krpc.BencodeError as err:
            raise Fail(f"our node sent libtorrent non-canonical bencode ({err}): {raw.hex()}")
        if msg.get(b"y") == b"q":
            continue  # our node's own queries
        tid = msg.get(b"t")
        check(tid in sent, f"our node answered an unknown transaction {tid!r}")
        out.append((sent[tid], msg))
    return out


def lt_queries(ctx):
    a = ctx.node(OURS[0])
    lt = ctx.lt("--nodes", "1", "--no-mesh", "--bootstrap", a.addr, "--min-table", "1",
                "--pkt", "--incoming", "--ready-timeout", "15")
    ready = lt.expect("ready", 20)
    check(ready["complete"], "libtorrent did not admit our node (it answered no get_peers)")
    lt_addr, lt_id = ready["nodes"][0]["addr"], ready["nodes"][0]["id"]
    await_in_tables(lt, 1, {a.addr: a.id}, 5, family="v4")
    # libtorrent's get_peers + announce_peer: its only contact is our node.
    ih = info_hash(ctx.name, "lt")
    ann = command(lt, f"announce {ih}:6003@0", "announce")
    check(ann["complete"], "libtorrent's announce through our node did not complete")
    peer_stored_at(ctx, a.addr, ih, ep(LT_BASE, 6003), "libtorrent's announce_peer")
    # A peer only our node knows: libtorrent must parse our values.
    ih2 = info_hash(ctx.name, "krpc-announced")
    ctx.krpc_ok("announce_peer", a.addr, "announce_peer", ih2, "6004")
    peers = command(lt, f"get-peers {ih2}", "peers")
    check(ep("127.1.1.1", 6004) in peers["peers"],
          f"libtorrent's get_peers through our node found {peers['peers']}, not 127.1.1.1:6004")
    # BEP 51 and BEP 44, straight to / through our node.
    s = command(lt, f"sample {a.addr}", "samples")
    check(ih in s["samples"] and ih2 in s["samples"],
          f"sample_infohashes from our node: {s['samples']} lacks {ih[:8]}.. or {ih2[:8]}..")
    check(s["num_infohashes"] >= 2, f"sample_infohashes num {s['num_infohashes']} < 2")
    put = command(lt, "put interop-item", "put")
    check(put["num_success"] and put["num_success"] >= 1, f"libtorrent's put: {put}")
    out = ctx.krpc_ok("get", a.addr, "get", put["target"])
    check(out["r"].get("v") == "interop-item", f"our node holds {out['r'].get('v')!r} for the put")
    # Every answer our node gave libtorrent, as libtorrent received it.
    lt.send("sleep 0.2")
    lt.expect("done", 5, where=lambda e: e.get("cmd") == "sleep 0.2")
    exchanges = pkt_exchanges(lt.seen, a.addr)
    methods = {m for m, _ in exchanges}
    for m, msg in exchanges:
        problems = krpc.check_reply(m, msg, msg[b"t"])
        check(not problems, f"our answer to libtorrent's {m.decode()}: {'; '.join(problems)}")
        check(msg[b"y"] == b"r", f"our node answered libtorrent's {m.decode()} with error "
                                 f"{msg.get(b'e')}")
        check(msg[b"r"][b"id"].hex() == a.id, "our node answered with another id")
    need = {b"get_peers", b"announce_peer", b"sample_infohashes", b"put", b"get"}
    check(need <= methods, f"libtorrent never got answers to {sorted(need - methods)}")
    krpc_battery(ctx, a, (lt_addr, lt_id))


def wt_swarm(ctx):
    a = ctx.node(OURS[0])
    wt = ctx.wt("--nodes", "3", "--bootstrap", a.addr, "--min-table", "3")
    ready = wt.expect("ready", 20)
    check(ready["complete"], "bittorrent-dht nodes did not fill their tables")
    wt_ids = {n["addr"]: n["id"] for n in ready["nodes"]}
    wt_addrs = list(wt_ids)
    b = ctx.node(OURS[1], [wt_addrs[0], a.addr])
    await_in_tables(wt, 3, {a.addr: a.id, b.addr: b.id}, 15)
    ih = info_hash(ctx.name, "wt")
    ann = command(wt, f"announce {ih}:6005@0", "announce")
    check(ann["complete"], f"bittorrent-dht's announce failed: {ann.get('error')}")
    ih2 = info_hash(ctx.name, "ours")
    got = ctx.run_dht(*get_peers_argv(ctx, ih, a.addr))
    ours = ctx.run_dht(*announce_argv(ctx, ih2, 6006, b.addr))
    rc, peers = found_peers(got)
    want = ep(WT_BASE, 6005)
    check(want in peers, f"dht get-peers (exit {rc}) found {peers}, not bittorrent-dht's {want}")
    announced(ours)
    peers = command(wt, f"get-peers {ih2}@2", "peers")
    check(ep(CLIENT, 6006) in peers["peers"],
          f"bittorrent-dht's lookup found {peers['peers']}, not {ep(CLIENT, 6006)}")
    our_tables_hold((a, b), wt_ids, "bittorrent-dht")


def wt_query(wt, cmd):
    return command(wt, f"query {cmd}", "reply")


def wt_queries(ctx):
    a = ctx.node(OURS[0])
    wt = ctx.wt("--nodes", "1", "--no-mesh", "--bootstrap", a.addr, "--min-table", "1")
    ready = wt.expect("ready", 20)
    check(ready["complete"], "bittorrent-dht did not admit our node")
    wt_addr, wt_id = ready["nodes"][0]["addr"], ready["nodes"][0]["id"]
    await_in_tables(wt, 1, {a.addr: a.id}, 5)
    r = wt_query(wt, f"{a.addr} ping")
    check(r["ok"], f"bittorrent-dht ping: {r.get('error')}")
    check(raw_bytes(r["r"]["id"]).hex() == a.id, "bittorrent-dht ping: wrong id")
    r = wt_query(wt, f"{a.addr} find_node {info_hash(ctx.name, 'target')}")
    check(r["ok"], f"bittorrent-dht find_node: {r.get('error')}")
    nodes = krpc.compact_nodes(raw_bytes(r["r"].get("nodes")) or b"", False)
    check({"id": wt_id, "addr": wt_addr} in nodes,
          f"our find_node answer to bittorrent-dht lacks it: {nodes}")
    ih = info_hash(ctx.name, "wt-query")
    r = wt_query(wt, f"{a.addr} get_peers {ih}")
    check(r["ok"] and raw_bytes(r["r"].get("token")), f"bittorrent-dht get_peers: {r}")
    r = wt_query(wt, f"{a.addr} announce_peer {ih} 6007")
    check(r["ok"], f"bittorrent-dht announce_peer with our token: {r.get('error')}")
    r = wt_query(wt, f"{a.addr} announce_peer {ih} 6008 bad")
    check(not r["ok"] and r.get("code") == 203,
          f"bittorrent-dht announce_peer with a bad token: ok={r['ok']} code={r.get('code')}")
    r = wt_query(wt, f"{a.addr} get_peers {ih}")
    values = compact_peers(r["r"].get("values"))
    check(ep(WT_BASE, 6007) in values and ep(WT_BASE, 6008) not in values,
          f"after good and bad announces our node gives bittorrent-dht values {values}")
    # bittorrent-dht's own announce and lookup, through our node (its only contact).
    ih2 = info_hash(ctx.name, "wt-announce")
    ann = command(wt, f"announce {ih2}:6009", "announce")
    check(ann["complete"], f"bittorrent-dht's announce through our node: {ann.get('error')}")
    peer_stored_at(ctx, a.addr, ih2, ep(WT_BASE, 6009), "bittorrent-dht's announce")
    ih3 = info_hash(ctx.name, "krpc-announced")
    ctx.krpc_ok("announce_peer", a.addr, "announce_peer", ih3, "6010")
    peers = command(wt, f"get-peers {ih3}", "peers")
    check(ep("127.1.1.1", 6010) in peers["peers"],
          f"bittorrent-dht's lookup through our node found {peers['peers']}")


def no_nul_id(tag):
    """An id without zero bytes: btdht copies ids with strncpy and would corrupt the rest."""
    return bytes(b or 1 for b in bytes.fromhex(info_hash("bt-swarm", tag))).hex()


def bt_swarm(ctx):
    a = ctx.node(OURS[0], node_id=no_nul_id("a"))
    bt = ctx.bt("--nodes", "3", "--bootstrap", a.addr, "--min-table", "3")
    ready = bt.expect("ready", 25)
    check(ready["complete"], f"btdht nodes did not fill their tables: {ready['nodes']}")
    bt_ids = {n["addr"]: n["id"] for n in ready["nodes"]}
    bt_addrs = list(bt_ids)
    b = ctx.node(OURS[1], [bt_addrs[0], a.addr], node_id=no_nul_id("b"))
    await_in_tables(bt, 3, {a.addr: a.id, b.addr: b.id}, 20)
    # btdht announces (stored by its siblings: it pads our 8-byte tokens to 20 bytes, so our
    # nodes refuse its announce_peer with 203); our lookup finds it through the btdht nodes.
    ih = info_hash(ctx.name, "bt")
    ann = command(bt, f"announce {ih}:6011@0", "announce", timeout=25)
    check(ann["complete"], "btdht's announce did not finish")
    got = ctx.run_dht(*get_peers_argv(ctx, ih, a.addr))
    rc, peers = found_peers(got)
    want = ep(BT_BASE, 6011)
    check(want in peers, f"dht get-peers (exit {rc}) found {peers}, not btdht's {want}")
    # We announce; btdht's lookup (2 s rounds) finds our peer.
    ih2 = info_hash(ctx.name, "ours")
    announced(ctx.run_dht(*announce_argv(ctx, ih2, 6012, b.addr)))
    peers = command(bt, f"get-peers {ih2}@2", "peers", timeout=25)
    check(ep(CLIENT, 6012) in peers["peers"],
          f"btdht's lookup found {peers['peers']}, not {ep(CLIENT, 6012)}")
    our_tables_hold((a, b), bt_ids, "btdht")


def lt_ipv6(ctx):
    if not ipv6_loopback():
        raise Skip("this machine has no IPv6 loopback (::1)")
    a = ctx.node("::1", port=ctx.port + 1)
    lt = ctx.lt("--nodes", "2", "--ipv6", "--port6", str(ctx.port + 10), "--bootstrap", a.addr,
                "--min-table", "1")
    ready = lt.expect("ready", 20)
    six = {n["addr6"]: n["id6"] for n in ready["nodes"]}
    await_in_tables(lt, 2, {a.addr: a.id}, 15, family="v6")
    ih = info_hash(ctx.name, "lt")
    ann = command(lt, f"announce {ih}:6011@0", "announce")
    check(ann["complete"], "libtorrent's announce did not complete")
    peer_stored_at(ctx, a.addr, ih, "[::1]:6011", "libtorrent's IPv6 announce_peer")
    rc, peers = get_peers_via(ctx, ih, a.addr, bind="::1")
    check("[::1]:6011" in peers, f"dht get-peers over IPv6 (exit {rc}) found {peers}")
    ih2 = info_hash(ctx.name, "ours")
    announce_via(ctx, ih2, 6012, a.addr, bind="::1")
    peers = command(lt, f"get-peers {ih2}@1 [::1]:6012", "peers")
    check("[::1]:6012" in peers["peers"],
          f"libtorrent's get_peers found {peers['peers']}, not [::1]:6012")
    first6 = next(iter(six.items()))
    krpc_battery(ctx, a, first6)
    our_tables_hold((a,), six, "libtorrent IPv6")


def wt_ipv6(ctx):
    raise Skip("bittorrent-dht 11.0.12 encodes every address as IPv4, also on an IPv6 socket "
               "(its nodes and values read as 0.0.0.0:port over ::1), so it has no IPv6 to test")


SCENARIOS = {
    "lt-swarm": lt_swarm, "lt-announce": lt_announce, "our-announce": our_announce,
    "lt-queries": lt_queries, "wt-swarm": wt_swarm, "wt-queries": wt_queries,
    "lt-ipv6": lt_ipv6, "wt-ipv6": wt_ipv6, "bt-swarm": bt_swarm,
}


# ---- runner ------------------------------------------------------------------------------------


def on_alarm(signum, frame):
    raise Timeout()


def on_term(signum, frame):
    raise KeyboardInterrupt()


def run_one(args, name, logdir):
    ctx = Ctx(args, name, logdir)
    t0 = time.monotonic()
    signal.setitimer(signal.ITIMER_REAL, args.timeout)
    try:
        SCENARIOS[name](ctx)
        result, reason = "PASS", None
    except Fail as e:
        result, reason = "FAIL", str(e)
    except Skip as e:
        result, reason = "SKIP", str(e)
    except Timeout:
        result, reason = "FAIL", f"no result within the {args.timeout:g} s limit"
    except (TimeoutError, EOFError) as e:
        result, reason = "FAIL", str(e)
    except Exception as e:  # a harness or parsing error is a failure too, with its reason
        result, reason = "FAIL", f"{type(e).__name__}: {e}"
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        ctx.close()
    secs = time.monotonic() - t0
    reason = " ".join((reason or "").split())
    if result == "PASS":
        print(f"PASS {name} ({secs:.1f} s)", flush=True)
    else:
        print(f"{result} {name}: {reason}", flush=True)
    return result


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dht", default=os.path.join(REPO, "target", "debug", "dht"),
                    help="our dht program (default target/debug/dht)")
    ap.add_argument("--only", default=None, help="comma-separated scenario names")
    ap.add_argument("--timeout", type=float, default=45, help="limit per scenario (s)")
    ap.add_argument("--logs", default=None, help="keep every process's output in this directory")
    ap.add_argument("-v", "--verbose", action="store_true", help="echo harness events")
    args = ap.parse_args()
    names = list(SCENARIOS)
    if args.only:
        names = [n.strip() for n in args.only.split(",") if n.strip()]
        unknown = [n for n in names if n not in SCENARIOS]
        if unknown:
            ap.error(f"unknown scenario {', '.join(unknown)}; known: {', '.join(SCENARIOS)}")
    args.dht = os.path.abspath(args.dht)
    if not os.access(args.dht, os.X_OK):
        ap.error(f"{args.dht} is not an executable (cargo build -p dht-std --bin dht)")
    if args.logs:
        os.makedirs(args.logs, exist_ok=True)
        logdir = os.path.abspath(args.logs)
    else:
        logdir = tempfile.mkdtemp(prefix="interop-")
    signal.signal(signal.SIGALRM, on_alarm)
    signal.signal(signal.SIGTERM, on_term)
    t0 = time.monotonic()
    results = {}
    name = None
    try:
        for name in names:
            results[name] = run_one(args, name, logdir)
    except KeyboardInterrupt:
        print(f"FAIL {name}: interrupted (every process it started was killed)", flush=True)
        return 1
    finally:
        if not args.logs:
            shutil.rmtree(logdir, ignore_errors=True)
    failed = [n for n, r in results.items() if r == "FAIL"]
    counts = {r: sum(1 for x in results.values() if x == r) for r in ("PASS", "FAIL", "SKIP")}
    print(f"{counts['PASS']} passed, {counts['FAIL']} failed, {counts['SKIP']} skipped "
          f"in {time.monotonic() - t0:.1f} s" + (f": {', '.join(failed)}" if failed else ""))
    if failed and args.logs:
        print(f"logs in {logdir}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
