#!/usr/bin/env python3
"""A libtorrent session seeding generated torrents on loopback, for the metadata scenarios.

  lt_seed.py --dir TMP --ip 127.1.1.60 --port 7860 [--dht-bootstrap IP:PORT] [--duration 60]

Creates three v1 torrents from generated files under --dir and seeds them (seed mode: no
checking) from one session listening on IP:PORT (TCP; uTP off):
  single   one 100 KiB file                       (info dictionary < 16 KiB: one piece)
  multi    a directory of 5 files in 2 levels     (files list, paths)
  pieces   one 48 MiB sparse file, 16 KiB pieces  (61 KiB of piece hashes: 4 metadata pieces)
With --dht-bootstrap the session also runs its DHT, joins through that node only, and announces
every torrent (TCP listen port); it prints "announced" when libtorrent reports the announces.

Output, one JSON object per line: {"event": "seeding", "torrents": [{"name", "info_hash",
"info_hex", "info_len"}], "addr"}, then "announced" {"info_hashes"} (with --dht-bootstrap),
"peer" {"info_hash","from"} when a peer connects, "exit" {"reason"}. Loopback only; exits after
--duration seconds or when stdin closes. Runs under tests/interop/.venv/bin/python.
"""
import argparse
import os
import select
import sys
import time

import libtorrent as lt

from lt_seeding import T0, emit, loopback, make_torrent, seed, session


def write(path, data=None, size=None):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        if data is not None:
            f.write(data)
        else:
            f.truncate(size)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--dir", required=True)
    p.add_argument("--ip", default="127.1.1.60")
    p.add_argument("--port", type=int, default=7860)
    p.add_argument("--dht-bootstrap")
    p.add_argument("--duration", type=float, default=60)
    args = p.parse_args()
    ip = loopback(args.ip)

    root = args.dir
    write(os.path.join(root, "single.bin"), bytes(range(256)) * 400)
    for i, rel in enumerate(["a.txt", "b/c.txt", "b/d.bin", "b/e/f.txt", "g.dat"]):
        write(os.path.join(root, "multi", rel), (f"file {i} " * (50 + 300 * i)).encode())
    write(os.path.join(root, "pieces", "big.bin"), size=48 << 20)
    torrents = {
        "single": make_torrent(root, "single.bin", 16384),
        "multi": make_torrent(root, "multi", 16384),
        "pieces": make_torrent(root, "pieces", 16384),
    }

    dht = args.dht_bootstrap is not None
    cat = lt.alert.category_t
    ses = session(ip, args.port, dht, cat.status_notification | cat.dht_notification
                  | cat.error_notification | cat.peer_notification | cat.connect_notification)
    if dht:
        host, port = args.dht_bootstrap.rsplit(":", 1)
        ses.add_dht_node((loopback(host), int(port)))
    handles = {}
    out = []
    for name, ti in torrents.items():
        h = seed(ses, ti, root)
        ih = str(ti.info_hashes().v1)
        handles[ih] = h
        info = ti.info_section()
        out.append({"name": name, "info_hash": ih, "info_hex": bytes(info).hex(),
                    "info_len": len(info)})
    # Wait until libtorrent listens and every torrent seeds.
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        states = [h.status().state for h in handles.values()]
        if ses.is_listening() and all(s == lt.torrent_status.seeding for s in states):
            break
        ses.wait_for_alert(100)
        ses.pop_alerts()
    emit("seeding", torrents=out, addr=f"{ip}:{ses.listen_port()}")

    announced = set()
    next_force = time.monotonic()
    end = T0 + args.duration
    while time.monotonic() < end:
        if dht and len(announced) < len(handles) and time.monotonic() >= next_force:
            for ih, h in handles.items():
                if ih not in announced:
                    h.force_dht_announce()
            next_force = time.monotonic() + 1.0
        if select.select([sys.stdin], [], [], 0)[0] and not sys.stdin.readline():
            emit("exit", reason="stdin closed")
            return
        ses.wait_for_alert(100)
        for a in ses.pop_alerts():
            if isinstance(a, lt.dht_announce_alert):
                continue
            if type(a).__name__ == "dht_reply_alert" and dht:
                ih = str(a.handle.info_hashes().v1)
                if ih not in announced and a.num_peers >= 0:
                    announced.add(ih)
                    if len(announced) == len(handles):
                        emit("announced", info_hashes=sorted(announced))
            elif isinstance(a, lt.peer_connect_alert) or type(a).__name__ == "incoming_connection_alert":
                try:
                    emit("peer", kind=type(a).__name__, info=a.message())
                except Exception:  # noqa: BLE001 - alert text is best effort
                    pass
    emit("exit", reason="duration")


if __name__ == "__main__":
    main()
