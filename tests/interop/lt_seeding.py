"""What lt_seed.py and lt_swarm.py share: JSON-line events on stdout, the loopback check, v1
torrents made from files on disk and libtorrent sessions that seed them on loopback.

Imported by those scripts only (they run under tests/interop/.venv/bin/python, beside this file).
"""
import ipaddress
import json
import os
import sys
import time
import warnings

import libtorrent as lt

# Start of the process's clock: every event's "t" and the scripts' --duration count from here.
T0 = time.monotonic()
# add_files and the file_storage constructor are deprecated in 2.x but still the simplest way.
warnings.simplefilter("ignore", DeprecationWarning)


def emit(event, **fields):
    """Writes one JSON event line, with seconds since T0, and flushes it."""
    sys.stdout.write(json.dumps({"event": event, "t": round(time.monotonic() - T0, 3), **fields}) + "\n")
    sys.stdout.flush()


def loopback(ip):
    """ip, if it is a loopback address without a zero octet; otherwise exits naming the script."""
    a = ipaddress.ip_address(ip)
    if not a.is_loopback or (a.version == 4 and 0 in a.packed):
        script = os.path.basename(sys.argv[0])
        sys.exit(f"{script}: {ip}: only loopback addresses without a zero octet")
    return ip


def make_torrent(root, name, piece_size=16384):
    """A v1 torrent of the file or directory root/name; returns its torrent_info."""
    fs = lt.file_storage()
    lt.add_files(fs, os.path.join(root, name))
    ct = lt.create_torrent(fs, piece_size, flags=lt.create_torrent.v1_only)
    ct.set_creator("dht interop")
    lt.set_piece_hashes(ct, root)
    return lt.torrent_info(lt.bencode(ct.generate()))


def session(ip, port, dht, alert_mask, **settings):
    """A session listening on ip:port (TCP, and UDP for the DHT when dht is true; uTP, LSD, UPnP
    and NAT-PMP off), with the DHT's address restrictions lifted for loopback and no bootstrap
    node of its own; settings are added to (or override) these."""
    return lt.session({
        "listen_interfaces": f"{ip}:{port}",
        "enable_outgoing_utp": False, "enable_incoming_utp": False,
        "enable_dht": dht, "dht_bootstrap_nodes": "",
        "enable_lsd": False, "enable_upnp": False, "enable_natpmp": False,
        "dht_restrict_routing_ips": False, "dht_restrict_search_ips": False,
        "dht_enforce_node_id": False, "dht_prefer_verified_node_ids": False,
        "dht_ignore_dark_internet": False, "dht_block_ratelimit": 10000,
        "allow_multiple_connections_per_ip": True,
        "alert_mask": int(alert_mask),
        **settings,
    })


def seed(ses, ti, save_path):
    """Adds torrent ti to ses in seed mode (no checking), started and not auto-managed, its data
    under save_path; returns the handle."""
    atp = lt.add_torrent_params()
    atp.ti = ti
    atp.save_path = save_path
    atp.flags |= lt.torrent_flags.seed_mode
    atp.flags &= ~lt.torrent_flags.auto_managed
    atp.flags &= ~lt.torrent_flags.paused
    return ses.add_torrent(atp)
