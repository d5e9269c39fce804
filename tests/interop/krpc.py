#!/usr/bin/env python3
"""Standalone KRPC client (BEP 5/32/44/51) for poking a DHT node from the outside.

Usage: krpc.py [options] ADDR METHOD [ARGS...]
  ADDR   IP:PORT or [IPv6]:PORT (loopback only)
  METHOD ping | find_node TARGET | get_peers INFOHASH | announce_peer INFOHASH PORT |
         get TARGET | put VALUE | sample_infohashes TARGET | any other word (sent as a query
         with only an "id" argument, to see how unknown methods are handled)
  Hashes are 40 hex digits. announce_peer fetches a token with get_peers first unless --token
  is given; put stores VALUE (a string) as an immutable item, fetching a token with get first.
Options:
  --bind IP[:PORT]   local address (default 127.1.1.1:0, or [::1]:0 for an IPv6 ADDR)
  --id HEX           our node id (default random)       --timeout S  (default 3)
  --token HEX        token for announce_peer/put ("bad" sends a token that cannot be valid)
  --implied-port     set implied_port=1 in announce_peer
  --want n4,n6       BEP 32 "want" list for find_node/get_peers/get/sample_infohashes
  --ro               set "ro": 1 (BEP 43 read-only node), also on the token-fetching query
  --expect-error [CODE]  success means a KRPC error (with that code) came back
  --save-query FILE / --save-reply FILE   write the raw datagrams
  --quiet            print nothing but problems
Prints one JSON object: {"ok", "from", "rtt_ms", "y", "r"|"e", "problems": [...]}.
Exit status: 0 valid answer (or the expected error), 1 malformed answer, 2 no answer,
3 a KRPC error that was not expected, 64 bad usage.
"""
import hashlib
import ipaddress
import json
import os
import re
import socket
import sys
import time

# ---- bencode --------------------------------------------------------------------------------


def bencode(v):
    """int, bytes/str, list, dict (keys bytes/str) -> bytes; dict keys are emitted sorted."""
    if isinstance(v, bool):
        raise TypeError("bool is not bencodable")
    if isinstance(v, int):
        return b"i%de" % v
    if isinstance(v, str):
        v = v.encode()
    if isinstance(v, (bytes, bytearray)):
        return b"%d:%s" % (len(v), bytes(v))
    if isinstance(v, (list, tuple)):
        return b"l" + b"".join(bencode(x) for x in v) + b"e"
    if isinstance(v, dict):
        items = sorted((k.encode() if isinstance(k, str) else k, x) for k, x in v.items())
        return b"d" + b"".join(bencode(k) + bencode(x) for k, x in items) + b"e"
    raise TypeError(f"cannot bencode {type(v).__name__}")


class BencodeError(ValueError):
    pass


def bdecode(data, strict=True):
    """Decode one bencoded value that must span all of `data`. Strict mode also rejects
    non-canonical forms: leading zeros, -0, unsorted or duplicate dict keys."""

    def fail(msg, i):
        raise BencodeError(f"{msg} at offset {i}")

    def value(i, depth):
        if depth > 64:
            fail("nesting too deep", i)
        if i >= len(data):
            fail("unexpected end", i)
        c = data[i:i + 1]
        if c == b"i":
            end = data.find(b"e", i)
            if end < 0:
                fail("unterminated integer", i)
            text = data[i + 1:end]
            if not re.fullmatch(rb"-?\d+", text):
                fail("bad integer", i)
            if strict and (text.startswith(b"-0") or (len(text) > 1 and text.startswith(b"0"))):
                fail("non-canonical integer", i)
            return int(text), end + 1
        if c.isdigit():
            colon = data.find(b":", i)
            if colon < 0 or not data[i:colon].isdigit():
                fail("bad string length", i)
            if strict and colon - i > 1 and data[i:i + 1] == b"0":
                fail("non-canonical string length", i)
            n = int(data[i:colon])
            if colon + 1 + n > len(data):
                fail("string past end", i)
            return data[colon + 1:colon + 1 + n], colon + 1 + n
        if c == b"l":
            out, i = [], i + 1
            while data[i:i + 1] != b"e":
                x, i = value(i, depth + 1)
                out.append(x)
            return out, i + 1
        if c == b"d":
            out, i, last = {}, i + 1, None
            while data[i:i + 1] != b"e":
                if not data[i:i + 1].isdigit():
                    fail("dict key is not a string", i)
                k, i = value(i, depth + 1)
                if strict and last is not None and k <= last:
                    fail("dict keys unsorted or duplicated", i)
                last = k
                out[k], i = value(i, depth + 1)
            return out, i + 1
        fail(f"unexpected byte {c!r}", i)

    v, end = value(0, 0)
    if end != len(data):
        fail("trailing bytes", end)
    return v


# ---- KRPC helpers ---------------------------------------------------------------------------


def parse_addr(text):
    m = re.fullmatch(r"\[([0-9a-fA-F:.]+)\]:(\d+)|([0-9.]+):(\d+)", text.strip())
    if not m:
        raise ValueError(f"bad address {text!r}")
    ip, port = (m.group(1), m.group(2)) if m.group(1) else (m.group(3), m.group(4))
    addr = ipaddress.ip_address(ip)
    if not addr.is_loopback:
        raise ValueError(f"{text}: only loopback addresses are allowed")
    if addr.version == 4 and 0 in addr.packed:
        raise ValueError(f"{text}: use a loopback address without a zero octet, e.g. 127.1.1.2")
    return ip, int(port)


def fmt_addr(ip, port):
    return f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"


def compact_nodes(raw, v6):
    size = 38 if v6 else 26
    out = []
    for off in range(0, len(raw) - len(raw) % size, size):
        rec = raw[off:off + size]
        ip = socket.inet_ntop(socket.AF_INET6 if v6 else socket.AF_INET, rec[20:size - 2])
        out.append({"id": rec[:20].hex(), "addr": fmt_addr(ip, int.from_bytes(rec[-2:], "big"))})
    return out


def compact_peer(raw):
    fam = {6: socket.AF_INET, 18: socket.AF_INET6}.get(len(raw))
    if fam is None:
        return {"hex": raw.hex()}
    return fmt_addr(socket.inet_ntop(fam, raw[:-2]), int.from_bytes(raw[-2:], "big"))


def show(v):
    """JSON view of a decoded value: printable byte strings as text, others as hex."""
    if isinstance(v, bytes):
        return v.decode() if re.fullmatch(rb"[\x20-\x7e]*", v) else {"hex": v.hex()}
    if isinstance(v, list):
        return [show(x) for x in v]
    if isinstance(v, dict):
        return {k.decode(errors="replace"): show(x) for k, x in v.items()}
    return v


def describe_r(r):
    out = show(r)
    for key, v6 in ((b"nodes", False), (b"nodes6", True)):
        if isinstance(r.get(key), bytes):
            out[key.decode()] = compact_nodes(r[key], v6)
    if isinstance(r.get(b"values"), list):
        out["values"] = [compact_peer(p) if isinstance(p, bytes) else show(p) for p in r[b"values"]]
    if isinstance(r.get(b"samples"), bytes):
        s = r[b"samples"]
        out["samples"] = [s[i:i + 20].hex() for i in range(0, len(s) - len(s) % 20, 20)]
    for key in (b"id", b"token"):
        if isinstance(r.get(key), bytes):
            out[key.decode()] = r[key].hex()
    return out


def check_reply(method, msg, tid):
    """Problems with a decoded KRPC answer to `method` sent with transaction id `tid`."""
    p = []
    if not isinstance(msg, dict):
        return ["answer is not a dict"]
    if msg.get(b"t") != tid:
        p.append(f"transaction id {msg.get(b't')!r} != {tid!r}")
    y = msg.get(b"y")
    if y == b"e":
        e = msg.get(b"e")
        if not (isinstance(e, list) and len(e) >= 2 and isinstance(e[0], int)
                and isinstance(e[1], bytes)):
            p.append(f"error body is not [int, string]: {e!r}")
        return p
    if y != b"r":
        return p + [f"y is {y!r}, want r or e"]
    r = msg.get(b"r")
    if not isinstance(r, dict):
        return p + ["r is not a dict"]
    if not (isinstance(r.get(b"id"), bytes) and len(r[b"id"]) == 20):
        p.append("r.id is not 20 bytes")
    if b"ip" in msg and not (isinstance(msg[b"ip"], bytes) and len(msg[b"ip"]) in (6, 18)):
        p.append("ip is not a 6- or 18-byte compact address")
    for key, size in ((b"nodes", 26), (b"nodes6", 38)):
        if key in r and not (isinstance(r[key], bytes) and len(r[key]) % size == 0):
            p.append(f"r.{key.decode()} length is not a multiple of {size}")
    if b"values" in r:
        vals = r[b"values"]
        if not (isinstance(vals, list) and all(isinstance(v, bytes) and len(v) in (6, 18)
                                               for v in vals)):
            p.append("r.values is not a list of 6/18-byte compact peers")
    has_nodes = b"nodes" in r or b"nodes6" in r
    if method == b"find_node" and not has_nodes:
        p.append("find_node answer has neither nodes nor nodes6")
    if method in (b"get_peers", b"get"):
        if not isinstance(r.get(b"token"), bytes) or not r[b"token"]:
            p.append(f"{method.decode()} answer has no token")
    if method == b"get_peers" and not (has_nodes or b"values" in r):
        p.append("get_peers answer has neither values nor nodes")
    if method == b"get" and not (has_nodes or b"v" in r):
        p.append("get answer has neither v nor nodes")
    if method == b"sample_infohashes":
        s = r.get(b"samples")
        if not (isinstance(s, bytes) and len(s) % 20 == 0):
            p.append("samples is missing or not a multiple of 20 bytes")
        for key in (b"num", b"interval"):
            if not isinstance(r.get(key), int):
                p.append(f"{key.decode()} is missing or not an integer")
    return p


class Client:
    """One UDP socket that sends queries and waits for the matching answer."""

    def __init__(self, bind=None, family=socket.AF_INET, node_id=None, timeout=3.0):
        self.sock = socket.socket(family, socket.SOCK_DGRAM)
        if bind:
            self.sock.bind(bind)
        else:
            self.sock.bind(("::1" if family == socket.AF_INET6 else "127.1.1.1", 0))
        self.id = node_id or os.urandom(20)
        self.timeout = timeout
        self.counter = int.from_bytes(os.urandom(2), "big")

    def query(self, addr, method, args, extra=None):
        """Send a query; return (raw query, raw answer or None, decoded answer or None, rtt)."""
        self.counter = (self.counter + 1) & 0xFFFF
        tid = self.counter.to_bytes(2, "big")
        msg = {b"t": tid, b"y": b"q", b"q": method, b"a": {b"id": self.id, **args}}
        msg.update(extra or {})
        raw = bencode(msg)
        self.sock.sendto(raw, addr)
        start = time.monotonic()
        end = start + self.timeout
        while True:
            left = end - time.monotonic()
            if left <= 0:
                return raw, None, None, None
            self.sock.settimeout(left)
            try:
                data, src = self.sock.recvfrom(65536)
            except socket.timeout:
                return raw, None, None, None
            if src[:2] != addr[:2]:
                continue
            try:
                dec = bdecode(data)
            except BencodeError:
                dec = None
            # Skip stray datagrams (e.g. queries from the node we talk to) that are not ours.
            if isinstance(dec, dict) and dec.get(b"y") == b"q":
                continue
            if isinstance(dec, dict) and dec.get(b"t") not in (None, tid):
                continue
            return raw, data, dec, time.monotonic() - start


def build_args(method, params, opts):
    def h(i, what):
        if len(params) <= i or not re.fullmatch(r"[0-9a-fA-F]{40}", params[i]):
            raise ValueError(f"{method} needs {what} (40 hex digits)")
        return bytes.fromhex(params[i])

    a = {}
    if method == "find_node":
        a[b"target"] = h(0, "TARGET")
    elif method == "get_peers":
        a[b"info_hash"] = h(0, "INFOHASH")
    elif method == "announce_peer":
        a[b"info_hash"] = h(0, "INFOHASH")
        if len(params) < 2 or not params[1].isdigit():
            raise ValueError("announce_peer needs PORT")
        a[b"port"] = int(params[1])
        if opts.get("implied_port"):
            a[b"implied_port"] = 1
    elif method in ("get", "sample_infohashes"):
        a[b"target"] = h(0, "TARGET")
    elif method == "put":
        if not params:
            raise ValueError("put needs VALUE")
        a[b"v"] = params[0].encode()
    if opts.get("want") and method in ("find_node", "get_peers", "get", "sample_infohashes"):
        a[b"want"] = [w.encode() for w in opts["want"]]
    return a


def run(argv):
    opts = {"timeout": 3.0, "expect_error": None}
    pos = []
    i = 0
    while i < len(argv):
        arg = argv[i]

        def val():
            nonlocal i
            if i + 1 >= len(argv):
                raise ValueError(f"{arg} needs a value")
            i += 1
            return argv[i]

        if arg == "--bind":
            opts["bind"] = val()
        elif arg == "--id":
            opts["id"] = bytes.fromhex(val())
        elif arg == "--timeout":
            opts["timeout"] = float(val())
        elif arg == "--token":
            opts["token"] = val()
        elif arg == "--implied-port":
            opts["implied_port"] = True
        elif arg == "--want":
            opts["want"] = val().split(",")
        elif arg == "--ro":
            opts["ro"] = True
        elif arg == "--expect-error":
            code = argv[i + 1] if i + 1 < len(argv) and argv[i + 1].isdigit() else None
            if code:
                i += 1
            opts["expect_error"] = int(code) if code else 0
        elif arg == "--save-query":
            opts["save_query"] = val()
        elif arg == "--save-reply":
            opts["save_reply"] = val()
        elif arg == "--quiet":
            opts["quiet"] = True
        elif arg in ("-h", "--help"):
            print(__doc__)
            return 0
        elif arg.startswith("--"):
            raise ValueError(f"unknown option {arg}")
        else:
            pos.append(arg)
        i += 1
    if len(pos) < 2:
        raise ValueError("need ADDR and METHOD")
    addr = parse_addr(pos[0])
    method, params = pos[1], pos[2:]
    v6 = ":" in addr[0]
    bind = None
    if "bind" in opts:
        bind = parse_addr(opts["bind"]) if re.search(r":\d+$", opts["bind"]) else (
            parse_addr(f"[{opts['bind']}]:0" if ":" in opts["bind"] else f"{opts['bind']}:0"))
    client = Client(bind, socket.AF_INET6 if v6 else socket.AF_INET, opts.get("id"),
                    opts["timeout"])
    try:
        return exchange(client, addr, method, params, opts)
    finally:
        client.sock.close()


def exchange(client, addr, method, params, opts):
    """Sends the query (after fetching a token, if needed), prints the verdict, returns the
    exit status."""
    args = build_args(method, params, opts)
    extra = {b"ro": 1} if opts.get("ro") else None
    out = {"to": fmt_addr(*addr), "method": method}

    if method in ("announce_peer", "put"):
        if "token" in opts:
            token = os.urandom(8) if opts["token"] == "bad" else bytes.fromhex(opts["token"])
        else:
            pre = "get_peers" if method == "announce_peer" else "get"
            pre_args = {b"info_hash": args[b"info_hash"]} if method == "announce_peer" else {
                b"target": hashlib.sha1(bencode(args[b"v"])).digest()}
            _, _, dec, _ = client.query(addr, pre.encode(), pre_args, extra)
            r = dec.get(b"r") if isinstance(dec, dict) else None
            token = r.get(b"token") if isinstance(r, dict) else None
            if not isinstance(token, bytes):
                out.update(ok=False, problems=[f"no token from {pre} before {method}"])
                print(json.dumps(out))
                return 2 if dec is None else 1
            out["token"] = token.hex()
        args[b"token"] = token

    raw_q, raw, dec, rtt = client.query(addr, method.encode(), args, extra)
    if opts.get("save_query"):
        with open(opts["save_query"], "wb") as f:
            f.write(raw_q)
    if raw is not None and opts.get("save_reply"):
        with open(opts["save_reply"], "wb") as f:
            f.write(raw)
    if raw is None:
        out.update(ok=False, problems=["no answer within %.1fs" % opts["timeout"]])
        print(json.dumps(out))
        return 2
    out["rtt_ms"] = round(rtt * 1000, 2)
    out["bytes"] = len(raw)
    if dec is None:
        try:
            bdecode(raw)
            why = "answer does not match"
        except BencodeError as e:
            why = f"answer is not valid bencode: {e}"
        out.update(ok=False, problems=[why], raw=raw.hex())
        print(json.dumps(out))
        return 1
    tid = bdecode(raw_q)[b"t"]
    problems = check_reply(method.encode(), dec, tid)
    y = dec.get(b"y")
    out["y"] = show(y)
    if isinstance(dec.get(b"r"), dict):
        out["r"] = describe_r(dec[b"r"])
    if b"e" in dec:
        out["e"] = show(dec[b"e"])
    for key in (b"v", b"ip"):
        if key in dec:
            out[key.decode()] = (compact_peer(dec[key]) if key == b"ip"
                                 and isinstance(dec[key], bytes) else show(dec[key]))
    code = 0
    if problems:
        code = 1
    elif y == b"e":
        want = opts["expect_error"]
        got = dec[b"e"][0]
        if want is None:
            code = 3
            problems.append(f"KRPC error {got}")
        elif want and got != want:
            code = 3
            problems.append(f"KRPC error {got}, expected {want}")
    elif opts["expect_error"] is not None:
        code = 3
        problems.append("expected a KRPC error, got a response")
    out["ok"] = code == 0
    out["problems"] = problems
    if not opts.get("quiet") or problems:
        print(json.dumps(out))
    return code


def main():
    try:
        return run(sys.argv[1:])
    except ValueError as e:
        print(f"krpc.py: {e}", file=sys.stderr)
        return 64


if __name__ == "__main__":
    sys.exit(main())
