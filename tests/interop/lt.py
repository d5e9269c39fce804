#!/usr/bin/env python3
"""Loopback libtorrent DHT harness: N libtorrent sessions with only the DHT running.

Node i listens on IPv4 address BASE+i (last octet incremented) at PORT, and with --ipv6 also on
[::1] at PORT6+i. Every session is told about each other session (unless --no-mesh) and about
every --bootstrap contact through add_dht_node, which puts contacts in the routing table (unlike
dht_bootstrap_nodes, whose entries libtorrent treats as routers and never keeps). The default
public router is disabled. The harness waits until every routing table holds --min-table nodes
(or --ready-timeout passes), prints a "ready" event, runs the actions given on the command line in
order, then either exits or (with --serve) executes commands read from stdin until stdin closes,
"quit" is read, or --duration elapses. --duration bounds the whole run in every mode.

Output: one JSON object per line on stdout, each with "event" and "t" (seconds since start).
  ready     {"nodes":[{"index","addr","id","addr6"?,"id6"?,"table","table6"?,"ready_t"}],
             "complete":bool,"min_table":K}   (ready_t: when that v4 table first held K nodes)
  ids       same "nodes" list as ready (--node-ids / "node-ids")
  table     {"node":index,"family":"v4"|"v6","id","entries":[{"id","addr"}]}
  announce  {"node","info_hash","port","complete","elapsed"}  (our outgoing announce finished)
  peers     {"node","info_hash","peers":["ip:port"],"complete","elapsed"}
  samples   {"node","from","samples":[hex],"num_infohashes","interval","nodes":[{"id","addr"}]}
  put       {"node","target","num_success","elapsed"}
  item      {"node","target","value"|null,"elapsed"}  (value is the bdecoded item as JSON-ish)
  incoming_announce  {"node","from","info_hash","port"}  (someone announced to a session)
  incoming_get_peers {"node","info_hash"}  (only with --incoming)
  pkt       {"node","dir":"in"|"out","peer","hex"}  (only with --pkt: raw KRPC datagrams)
  done      {"cmd"}  after each command; error {"cmd","error"}; exit {"reason"}
"complete" is true when libtorrent's traversal finished before --lookup-timeout. get-peers with
an IP:PORT returns as soon as that peer has been found (complete is then usually false).

Commands (flags and stdin lines use the same words; @N selects the session, default 0 for
announce/put/sample and the last session for get-peers/get):
  announce HEX[:PORT][@N]   get-peers HEX[@N] [IP:PORT]   dump-table[@N] (flag: --dump-table [N])   node-ids   add-node IP:PORT[@N]
  sample IP:PORT[/TARGETHEX][@N]   put TEXT[@N]   get HEX[@N]   sleep SECONDS   quit
(c) To make libtorrent query one specific node, run with --nodes 1 --no-mesh --bootstrap
THATNODE: its table then holds only that node, so get-peers/announce go to it (and to whatever
nodes it returns); "sample" always goes straight to the given address.
"""
import argparse
import ipaddress
import json
import queue
import re
import sys
import threading
import time

import libtorrent as lt

T0 = time.monotonic()
ZERO_ID = "0" * 40
TRAV_NEW = re.compile(r"\[(\d+)\] NEW target: ([0-9a-f]{40})")
TRAV_DONE = re.compile(r"\[(\d+)\] COMPLETED .*type: (\S+)")
PKT_DIR = re.compile(r"^(<==|==>)\s+\[(.*?)\]\s")


def now():
    return round(time.monotonic() - T0, 3)


def emit(event, **fields):
    sys.stdout.write(json.dumps({"event": event, "t": now(), **fields}) + "\n")
    sys.stdout.flush()


def fmt_ep(ip, port):
    return f"[{ip}]:{port}" if ":" in str(ip) else f"{ip}:{port}"


def parse_ep(text):
    """'1.2.3.4:5' or '[::1]:5' -> (ip, port)."""
    m = re.fullmatch(r"\[([0-9a-fA-F:.]+)\]:(\d+)|([0-9.]+):(\d+)", text.strip())
    if not m:
        raise ValueError(f"bad address {text!r} (want IP:PORT or [IPv6]:PORT)")
    ip, port = (m.group(1), m.group(2)) if m.group(1) else (m.group(3), m.group(4))
    addr = ipaddress.ip_address(ip)
    if not addr.is_loopback:
        raise ValueError(f"{text}: only loopback addresses are allowed")
    if addr.version == 4 and 0 in addr.packed:
        raise ValueError(f"{text}: use a loopback address without a zero octet, e.g. 127.1.1.2")
    return str(addr), int(port)


def hash_arg(text):
    if not re.fullmatch(r"[0-9a-fA-F]{40}", text):
        raise ValueError(f"bad info-hash {text!r} (want 40 hex digits)")
    return text.lower()


def jsonable(v):
    if isinstance(v, bytes):
        try:
            return v.decode()
        except UnicodeDecodeError:
            return {"hex": v.hex()}
    if isinstance(v, dict):
        return {jsonable(k) if isinstance(k, bytes) else k: jsonable(x) for k, x in v.items()}
    if isinstance(v, list):
        return [jsonable(x) for x in v]
    return v


class Node:
    def __init__(self, index, ip, port, port6, log_dht):
        self.index, self.ip, self.port, self.port6 = index, ip, port, port6
        listen = fmt_ep(ip, port) + ("," + fmt_ep("::1", port6) if port6 else "")
        cat = lt.alert.category_t
        mask = cat.dht_notification | cat.dht_operation_notification | cat.error_notification
        mask |= cat.status_notification | cat.dht_log_notification
        self.session = lt.session({
            "listen_interfaces": listen,
            "enable_dht": True,
            "dht_bootstrap_nodes": "",  # no routers, and in particular no public one
            "enable_lsd": False, "enable_upnp": False, "enable_natpmp": False,
            "dht_restrict_routing_ips": False, "dht_restrict_search_ips": False,
            "dht_enforce_node_id": False, "dht_prefer_verified_node_ids": False,
            "dht_ignore_dark_internet": False,
            "dht_upload_rate_limit": 1 << 22, "dht_block_ratelimit": 10000,
            "alert_mask": int(mask), "alert_queue_size": 100000,
        })
        self.log_dht = log_dht
        self.trav = {}  # traversal id -> target hex
        self.done = {}  # target hex -> (type, time)
        self.listening = 0
        self.ids = {}  # "v4"/"v6" -> id hex

    def read_ids(self):
        state = lt.bdecode(lt.write_session_params_buf(self.session.session_state()))
        for raw in (state or {}).get(b"dht state", {}).get(b"node-id", []):
            fam = "v4" if len(raw) == 24 else "v6" if len(raw) == 36 else None
            if fam:
                self.ids[fam] = raw[:20].hex()
        return self.ids

    def describe(self):
        d = {"index": self.index, "addr": fmt_ep(self.ip, self.port), "id": self.ids.get("v4")}
        if self.port6:
            d.update(addr6=fmt_ep("::1", self.port6), id6=self.ids.get("v6"))
        return d


class Harness:
    def __init__(self, args):
        self.args = args
        self.deadline = T0 + args.duration
        self.nodes = []
        self.replies = {}  # (node, info_hash) -> set of "ip:port"
        self.tables = {}  # (node, family) -> entries, filled by dht_live_nodes_alert
        self.samples = []
        self.items = {}
        self.puts = {}
        base = ipaddress.IPv4Address(args.base)
        for i in range(args.nodes):
            ip = base + i
            if not ip.is_loopback or 0 in ip.packed or ip.packed[3] == 255:
                sys.exit(f"node {i}: {ip} is not a usable loopback address")
            port6 = args.port6 + i if args.ipv6 else None
            self.nodes.append(Node(i, str(ip), args.port, port6, args.pkt))

    # ---- alert pump ---------------------------------------------------------------------------
    def pump(self, seconds):
        end = min(time.monotonic() + seconds, self.deadline)
        while True:
            for n in self.nodes:
                for a in n.session.pop_alerts():
                    self.on_alert(n, a)
            if time.monotonic() >= end:
                return
            time.sleep(0.02)

    def on_alert(self, n, a):
        kind = type(a).__name__
        if kind == "dht_log_alert":
            msg = a.log_message()
            m = TRAV_NEW.search(msg)
            if m:
                n.trav[m.group(1)] = m.group(2)
            m = TRAV_DONE.search(msg)
            if m and m.group(1) in n.trav:
                n.done.setdefault(n.trav.pop(m.group(1)), []).append((m.group(2), now()))
        elif kind == "dht_pkt_alert":
            if self.args.pkt:
                m = PKT_DIR.match(a.message())
                emit("pkt", node=n.index, dir="in" if m and m.group(1) == "<==" else "out",
                     peer=m.group(2) if m else None, hex=bytes(a.pkt_buf).hex())
        elif kind == "dht_get_peers_reply_alert":
            key = (n.index, str(a.info_hash))
            self.replies.setdefault(key, set()).update(fmt_ep(ip, p) for ip, p in a.peers())
        elif kind == "dht_live_nodes_alert":
            fam = "v6" if str(a.node_id) == n.ids.get("v6") else "v4"
            self.tables[(n.index, fam)] = [
                {"id": str(e["nid"]), "addr": fmt_ep(*e["endpoint"])} for e in a.nodes]
        elif kind == "dht_announce_alert":
            emit("incoming_announce", node=n.index, **{"from": str(a.ip)}, port=a.port,
                 info_hash=str(a.info_hash))
        elif kind == "dht_get_peers_alert":
            if self.args.incoming:
                emit("incoming_get_peers", node=n.index, info_hash=str(a.info_hash))
        elif kind == "dht_sample_infohashes_alert":
            self.samples.append((n.index, {
                "from": fmt_ep(*a.endpoint), "samples": [str(s) for s in a.samples],
                "num_infohashes": a.num_infohashes, "interval": a.interval.total_seconds()
                if hasattr(a.interval, "total_seconds") else a.interval,
                "nodes": [{"id": str(x["nid"]), "addr": fmt_ep(*x["endpoint"])}
                          for x in a.nodes]}))
        elif kind == "dht_immutable_item_alert":
            self.items[(n.index, str(a.target))] = a.item
        elif kind == "dht_put_alert":
            self.puts[(n.index, str(a.target))] = a.num_success
        elif kind == "listen_succeeded_alert":
            n.listening += 1
        elif kind == "listen_failed_alert":
            emit("error", node=n.index, error=a.message())

    # ---- helpers ------------------------------------------------------------------------------
    def live(self, fam_nodes=None):
        """Refresh self.tables for every node (or the given (node, family) pairs)."""
        want = fam_nodes or [(n, f) for n in self.nodes for f in n.ids]
        for n, fam in want:
            self.tables.pop((n.index, fam), None)
            n.session.dht_live_nodes(lt.sha1_hash(bytes.fromhex(n.ids[fam])))
        end = time.monotonic() + 2
        while time.monotonic() < end and any((n.index, f) not in self.tables for n, f in want):
            self.pump(0.02)

    def start(self):
        need = 2 * (2 if self.args.ipv6 else 1)  # TCP + uTP per interface
        end = time.monotonic() + 5
        while time.monotonic() < end and any(n.listening < need for n in self.nodes):
            self.pump(0.05)
        self.pump(0.3)  # let each DHT node start before anyone talks to it
        for n in self.nodes:
            n.read_ids()
        contacts = [parse_ep(b) for b in self.args.bootstrap]
        for n in self.nodes:
            targets = list(contacts)
            if not self.args.no_mesh:
                for m in self.nodes:
                    if m is not n:
                        targets.append((m.ip, m.port))
                        if m.port6:
                            targets.append(("::1", m.port6))
            for ep in targets:
                n.session.add_dht_node(ep)
        k = self.args.min_table
        if k is None:
            k = min(8, (0 if self.args.no_mesh else len(self.nodes) - 1) + len(contacts))
        end = min(time.monotonic() + self.args.ready_timeout, self.deadline)
        complete = False
        reached = {}  # node index -> time its v4 table first held k nodes
        while time.monotonic() < end:
            self.pump(0.25)
            self.live([(n, "v4") for n in self.nodes])
            for n in self.nodes:
                if len(self.tables.get((n.index, "v4"), [])) >= k:
                    reached.setdefault(n.index, now())
            if len(reached) == len(self.nodes):
                complete = True
                break
        self.live()
        nodes = []
        for n in self.nodes:
            d = n.describe()
            d["table"] = len(self.tables.get((n.index, "v4"), []))
            d["ready_t"] = reached.get(n.index)
            if n.port6:
                d["table6"] = len(self.tables.get((n.index, "v6"), []))
            nodes.append(d)
        emit("ready", nodes=nodes, complete=complete, min_table=k)

    def node_arg(self, text, default):
        if "@" in text:
            text, idx = text.rsplit("@", 1)
            i = int(idx)
        else:
            i = default
        if not 0 <= i < len(self.nodes):
            raise ValueError(f"no node {i}")
        return text, self.nodes[i]

    def wait_traversal(self, n, target, kinds, since, stop=None):
        """Until the traversal completes, --lookup-timeout passes, or `stop()` holds."""
        end = time.monotonic() + self.args.lookup_timeout
        while time.monotonic() < min(end, self.deadline):
            for kind, t in n.done.get(target, []):
                if kind in kinds and t >= since:
                    return True, round(t - since, 3)
            if stop and stop():
                break
            self.pump(0.05)
        return False, round(now() - since, 3)

    # ---- commands -----------------------------------------------------------------------------
    def run(self, cmd):
        word, _, rest = cmd.strip().partition(" ")
        rest = rest.strip()
        if word in ("dump-table", "table") or word.startswith("dump-table@"):
            if "@" in word:
                _, n = self.node_arg(word, 0)
                sel = [n]
            else:
                sel = self.nodes
            self.live([(n, f) for n in sel for f in n.ids])
            for n in sel:
                for fam, nid in sorted(n.ids.items()):
                    emit("table", node=n.index, family=fam, id=nid,
                         entries=self.tables.get((n.index, fam), []))
        elif word in ("node-ids", "ids"):
            emit("ids", nodes=[n.describe() for n in self.nodes])
        elif word == "announce":
            spec, n = self.node_arg(rest, 0)
            ih, _, port = spec.partition(":")
            ih, port = hash_arg(ih), int(port) if port else n.port
            t = now()
            n.session.dht_announce(lt.sha1_hash(bytes.fromhex(ih)), port, 0)
            ok, took = self.wait_traversal(n, ih, ("get_peers", "announce"), t)
            self.pump(0.2)  # the announce_peer queries go out after the traversal
            emit("announce", node=n.index, info_hash=ih, port=port, complete=ok, elapsed=took)
        elif word == "get-peers":
            spec, _, want = rest.partition(" ")
            spec, n = self.node_arg(spec, len(self.nodes) - 1)
            ih = hash_arg(spec)
            if want:
                want = fmt_ep(*parse_ep(want))
            self.replies.pop((n.index, ih), None)
            t = now()
            n.session.dht_get_peers(lt.sha1_hash(bytes.fromhex(ih)))
            found = (lambda: want in self.replies.get((n.index, ih), ())) if want else None
            ok, took = self.wait_traversal(n, ih, ("get_peers",), t, found)
            if not want:
                self.pump(0.1)
            emit("peers", node=n.index, info_hash=ih, complete=ok, elapsed=took,
                 peers=sorted(self.replies.get((n.index, ih), set())))
        elif word == "add-node":
            spec, n = self.node_arg(rest, 0)
            n.session.add_dht_node(parse_ep(spec))
        elif word == "sample":
            spec, n = self.node_arg(rest, 0)
            ep, _, target = spec.partition("/")
            target = hash_arg(target) if target else n.ids["v4"]
            before = len(self.samples)
            n.session.dht_sample_infohashes(parse_ep(ep), lt.sha1_hash(bytes.fromhex(target)))
            end = time.monotonic() + self.args.lookup_timeout
            while time.monotonic() < min(end, self.deadline) and len(self.samples) == before:
                self.pump(0.05)
            if len(self.samples) == before:
                raise TimeoutError("no sample_infohashes answer")
            for idx, s in self.samples[before:]:
                emit("samples", node=idx, **s)
        elif word == "put":
            spec, n = self.node_arg(rest, 0)
            t = now()
            target = str(n.session.dht_put_immutable_item(spec.encode()))
            end = time.monotonic() + self.args.lookup_timeout
            while (n.index, target) not in self.puts and time.monotonic() < min(end, self.deadline):
                self.pump(0.05)
            emit("put", node=n.index, target=target, complete=(n.index, target) in self.puts,
                 elapsed=round(now() - t, 3), num_success=self.puts.get((n.index, target)))
        elif word == "get":
            spec, n = self.node_arg(rest, len(self.nodes) - 1)
            target = hash_arg(spec)
            self.items.pop((n.index, target), None)
            t = now()
            n.session.dht_get_immutable_item(lt.sha1_hash(bytes.fromhex(target)))
            end = time.monotonic() + self.args.lookup_timeout
            while (n.index, target) not in self.items and time.monotonic() < min(end, self.deadline):
                self.pump(0.05)
            item = self.items.get((n.index, target))
            emit("item", node=n.index, target=target, elapsed=round(now() - t, 3),
                 value=None if item is None else jsonable(item))
        elif word == "sleep":
            self.pump(float(rest))
        elif word == "quit":
            return False
        else:
            raise ValueError(f"unknown command {word!r}")
        return True

    def command(self, cmd):
        try:
            go = self.run(cmd)
            emit("done", cmd=cmd)
            return go
        except Exception as e:  # report and carry on: the caller decides what is fatal
            emit("error", cmd=cmd, error=f"{type(e).__name__}: {e}")
            return True


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--nodes", type=int, default=1)
    p.add_argument("--base", default="127.1.1.20", help="IPv4 of node 0; node i gets BASE+i")
    p.add_argument("--port", type=int, default=7000, help="UDP/TCP port of every IPv4 node")
    p.add_argument("--ipv6", action="store_true", help="also listen on [::1]:PORT6+i")
    p.add_argument("--port6", type=int, default=None, help="default PORT+100")
    p.add_argument("--bootstrap", action="append", default=[], metavar="IP:PORT",
                   help="contact added to every node (repeatable, or comma-separated)")
    p.add_argument("--no-mesh", action="store_true", help="do not introduce nodes to each other")
    p.add_argument("--duration", type=float, default=60, help="hard bound on the run (s)")
    p.add_argument("--ready-timeout", type=float, default=20)
    p.add_argument("--min-table", type=int, default=None,
                   help="ready once every v4 table has this many nodes "
                        "(default min(8, siblings + contacts))")
    p.add_argument("--lookup-timeout", type=float, default=15)
    p.add_argument("--serve", action="store_true",
                   help="after the actions, read commands from stdin until EOF/quit/duration")
    p.add_argument("--pkt", action="store_true", help="emit every raw DHT datagram")
    p.add_argument("--incoming", action="store_true", help="emit incoming get_peers")
    for flag in ("announce", "get-peers", "add-node", "sample", "put", "get", "sleep"):
        p.add_argument("--" + flag, action="append", dest="actions", metavar="ARG",
                       type=lambda v, f=flag: f"{f} {v}")
    class DumpTable(argparse.Action):
        def __call__(self, parser, ns, value, option_string=None):
            ns.actions = (ns.actions or []) + [f"dump-table@{value}" if value else "dump-table"]

    p.add_argument("--dump-table", action=DumpTable, dest="actions", nargs="?", metavar="N")
    p.add_argument("--node-ids", action="append_const", dest="actions", const="node-ids")
    args = p.parse_args()
    args.bootstrap = [b for item in args.bootstrap for b in item.split(",") if b]
    if args.port6 is None:
        args.port6 = args.port + 100
    try:
        for b in args.bootstrap:
            parse_ep(b)
    except ValueError as e:
        p.error(str(e))

    h = Harness(args)
    reason = "actions done"
    try:
        h.start()
        for a in args.actions or []:
            h.command(a)
        if args.serve:
            lines = queue.Queue()

            def reader():
                for line in sys.stdin:
                    lines.put(line)
                lines.put(None)

            threading.Thread(target=reader, daemon=True).start()
            reason = "duration"
            while time.monotonic() < h.deadline:
                try:
                    line = lines.get_nowait()
                except queue.Empty:
                    h.pump(0.05)
                    continue
                if line is None:
                    reason = "stdin closed"
                    break
                if line.strip() and not h.command(line.strip()):
                    reason = "quit"
                    break
        if time.monotonic() >= h.deadline:
            reason = "duration"
    except KeyboardInterrupt:
        reason = "interrupted"
    emit("exit", reason=reason)
    for n in h.nodes:
        n.session.pause()
    sys.stdout.flush()
    # Skip slow interpreter teardown of the sessions' native threads.
    import os
    os._exit(0)


if __name__ == "__main__":
    main()
