#!/usr/bin/env python3
"""libtorrent sessions seeding many generated torrents on the DHT, for the crawler scenarios.

  lt_swarm.py --dir TMP --base 127.1.3.10 --port 7910 --sessions 4 --torrents 36 \
              --dht-bootstrap IP:PORT[,IP:PORT...] [--duration 200]

Session i listens on BASE+i:PORT (TCP, DHT on the same port; uTP off), joins the DHT through the
given nodes and the other sessions, and seeds torrents i, i+S, i+2S, ... (seed mode: no
checking). Torrent k is a small v1 torrent, deterministic from k: one file or a directory of two
to four files, named "crawl e2e k <word>" (sizes 1-40 KiB).

Output, one JSON object per line: "seeding" {"torrents": [{"info_hash", "name", "total_size",
"files": [[path, size], ...], "session"}], "nodes": [IP:PORT...]}, then "announced" {"count"} each
time libtorrent has sent the announces a command asked for, "exit" {"reason"}.
Commands on stdin: "announce" (every session force-announces every torrent now).
Loopback only; exits after --duration seconds or when stdin closes. Runs under
tests/interop/.venv/bin/python.
"""
import argparse
import ipaddress
import os
import select
import sys
import time

import libtorrent as lt

from lt_seeding import T0, emit, loopback, make_torrent, seed, session

WORDS = ["amber", "birch", "cedar", "dune", "elm", "fern", "grove", "heath", "iris"]


def generate(root, k):
    """Writes torrent k's files under root; returns (name, [(relative path, size)])."""
    name = f"crawl e2e {k} {WORDS[k % len(WORDS)]}"
    if k % 3 == 0:
        files = [(name, 1024 * (1 + k % 40))]
    else:
        files = [(f"{name}/part {j}.bin", 1000 * (j + 1) + k) for j in range(2 + k % 3)]
        files[-1] = (f"{name}/sub/last.txt", files[-1][1])
    for rel, size in files:
        path = os.path.join(root, rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            f.write(bytes((k + i) % 251 for i in range(size)))
    return name, files


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--dir", required=True)
    p.add_argument("--base", default="127.1.3.10")
    p.add_argument("--port", type=int, default=7910)
    p.add_argument("--sessions", type=int, default=4)
    p.add_argument("--torrents", type=int, default=36)
    p.add_argument("--dht-bootstrap", required=True)
    p.add_argument("--duration", type=float, default=200)
    args = p.parse_args()
    base = ipaddress.ip_address(loopback(args.base))
    ips = [loopback(str(base + i)) for i in range(args.sessions)]
    boot = []
    for b in args.dht_bootstrap.split(","):
        host, port = b.rsplit(":", 1)
        boot.append((loopback(host), int(port)))

    cat = lt.alert.category_t
    sessions = []
    for ip in ips:
        ses = session(ip, args.port, True,
                      cat.status_notification | cat.dht_notification | cat.error_notification,
                      dht_upload_rate_limit=1 << 20, dht_sample_infohashes_interval=0)
        for node in boot:
            ses.add_dht_node(node)
        for other in ips:
            if other != ip:
                ses.add_dht_node((other, args.port))
        sessions.append(ses)

    out = []
    handles = []  # (session index, handle)
    for k in range(args.torrents):
        root = os.path.join(args.dir, f"t{k}")
        name, files = generate(root, k)
        ti = make_torrent(root, name)
        i = k % len(sessions)
        handles.append((i, seed(sessions[i], ti, root)))
        fs = ti.files()
        listed = [[fs.file_path(j).split(os.sep, 1)[1] if ti.num_files() > 1 else fs.file_path(j),
                   fs.file_size(j)] for j in range(ti.num_files())]
        out.append({"info_hash": str(ti.info_hashes().v1), "name": ti.name(),
                    "total_size": ti.total_size(), "files": listed, "session": i})
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if all(s.is_listening() for s in sessions) and all(
                h.status().state == lt.torrent_status.seeding for _, h in handles):
            break
        time.sleep(0.1)
        for s in sessions:
            s.pop_alerts()
    emit("seeding", torrents=out, nodes=[f"{ip}:{args.port}" for ip in ips])

    asked = 0  # announces asked for and not yet reported by libtorrent
    end = T0 + args.duration
    while time.monotonic() < end:
        if select.select([sys.stdin], [], [], 0.1)[0]:
            line = sys.stdin.readline()
            if not line:
                emit("exit", reason="stdin closed")
                return
            if line.strip() == "announce":
                for _, h in handles:
                    h.force_dht_announce()
                asked = len(handles)
        for s in sessions:
            for a in s.pop_alerts():
                if type(a).__name__ == "dht_reply_alert" and asked > 0:
                    asked -= 1
                    if asked == 0:
                        emit("announced", count=len(handles))
    emit("exit", reason="duration")


if __name__ == "__main__":
    main()
