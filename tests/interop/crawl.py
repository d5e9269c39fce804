#!/usr/bin/env python3
"""`dht crawl` end to end against libtorrent on loopback.

  crawl.py [--dht PATH] [--only NAME,...] [--torrents N] [--timeout SECS] [--logs DIR] [-v]

One swarm for every scenario (addresses 127.1.3.x, ports 7900-7999; nothing else uses them):
16 of our `dht node`s (127.1.3.40-55) and eight libtorrent sessions (lt_swarm.py) seeding --torrents generated
torrents (default 24) and announcing them on the DHT when asked. Each scenario starts its own
crawler(s) on a fresh database, asks libtorrent to announce everything (again every 5 s until
done), and reads the database directly (python's sqlite3; psql for PostgreSQL):

  sqlite      `dht crawl --db sqlite:...` finds every info-hash and stores each torrent's name,
              total size and files exactly as libtorrent made them
  postgres    the same with --db postgres://... (a throwaway database on the server that
              .ci/postgres.sh started: DHT_TEST_POSTGRES_URL; SKIP without it)
  pg-two      two crawler processes on one PostgreSQL database: every torrent stored once, and
              the two runs' metadata fetches add up to the number of torrents (none twice)
  kill9       a crawler is killed with SIGKILL after storing some torrents; restarted with the
              same state file and database it stores the rest: no torrent fetched twice, no
              duplicate rows or files

The scenarios run at the same time (each with its own crawler addresses and database). Each
prints `PASS name (secs)`, `SKIP name: why` or `FAIL name: reason` within --timeout seconds
(default 120); exit status 1 if any failed. Every process started is killed
at the end (own process groups). Runs under tests/interop/.venv/bin/python (libtorrent).
"""
import argparse
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse

from jsonl import Harness

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
OUR_NODES = [f"127.1.3.{40 + i}:7900" for i in range(16)]
LT_BASE, LT_PORT, LT_SESSIONS = "127.1.3.10", 7910, 8
# Crawler k binds 127.1.3.(20 + k):7920 and the next ports (one per id).
CRAWLER_IP = "127.1.3.{}"
IDS = 8


class Fail(Exception):
    pass


class Skip(Exception):
    pass


def check(cond, why):
    if not cond:
        raise Fail(why)


class Swarm:
    """Our nodes and the libtorrent sessions, shared by the scenarios."""

    def __init__(self, args):
        self.args = args
        self.tmp = tempfile.mkdtemp(prefix="dht-crawl-e2e-")
        self.procs = []
        self.lock = threading.Lock()
        self.last_announce = 0.0
        nodes = []
        for i, addr in enumerate(OUR_NODES):
            argv = [args.dht, "node", "--bind", addr, "--json", "--duration", "900",
                    "--state", os.path.join(self.tmp, f"node{i}.state")]
            argv += ["--bootstrap", OUR_NODES[0]] if i else ["--no-bootstrap"]
            nodes.append(self.start(argv, f"node{i}"))
        for h in nodes:
            h.expect(..., 15, where=lambda e: "listening" in e)
        self.lt = self.start([sys.executable, "lt_swarm.py", "--dir", os.path.join(self.tmp, "lt"),
                              "--base", LT_BASE, "--port", str(LT_PORT), "--torrents",
                              str(args.torrents), "--sessions", str(LT_SESSIONS), "--dht-bootstrap", ",".join(OUR_NODES),
                              "--duration", "900"], "lt")
        seeding = self.lt.expect("seeding", 60)
        self.torrents = {t["info_hash"]: t for t in seeding["torrents"]}
        self.lt_nodes = seeding["nodes"]
        check(len(self.torrents) == args.torrents, "libtorrent seeds every generated torrent")

    def start(self, argv, label):
        with self.lock:
            return self._start(argv, label)

    def _start(self, argv, label):
        log = open(os.path.join(self.args.logs, f"{label}.log"), "a") \
            if self.args.logs else subprocess.DEVNULL
        h = Harness(argv, cwd=HERE, stderr=log, echo=self.args.verbose)
        self.procs.append(h)
        return h

    def announce(self):
        """Asks libtorrent to announce everything, at most every 4 s whoever asks."""
        with self.lock:
            if time.monotonic() - self.last_announce >= 4:
                self.last_announce = time.monotonic()
                self.lt.send("announce")

    def close(self):
        # SIGTERM to all at once (our nodes exit on it), then reap each.
        for h in self.procs:
            if h.proc.poll() is None:
                h.proc.send_signal(signal.SIGTERM)
        for h in reversed(self.procs):
            h.close(timeout=3)
        shutil.rmtree(self.tmp, ignore_errors=True)


class Crawler:
    """A `dht crawl --json` process."""

    def __init__(self, swarm, ctx, k, db, state, label, extra=()):
        argv = [swarm.args.dht, "crawl", "--json", "--db", db, "--state", state,
                "--ids", str(IDS), "--bind", f"{CRAWLER_IP.format(20 + k)}:7920",
                "--status-interval", "1", "--retry-after", "3", "--bootstrap", ",".join(OUR_NODES + swarm.lt_nodes),
                *extra]
        self.h = swarm.start(argv, label)
        ctx["procs"].append(self.h)
        self.started = self.first()

    def first(self):
        end = time.monotonic() + 20
        while time.monotonic() < end:
            ev = self.h.expect(..., end - time.monotonic(), where=lambda e: "type" in e)
            if ev["type"] == "crawl":
                return ev
        raise Fail("dht crawl printed no start record")

    def joined(self, timeout=15):
        """Waits for a status line with contacts (the ids have joined)."""
        self.h.expect(..., timeout, where=lambda e: e.get("type") == "crawl_status"
                      and e.get("contacts", 0) >= IDS)

    def stop(self):
        """SIGTERM; returns the crawl_done record."""
        self.h.proc.send_signal(signal.SIGTERM)
        done = self.h.expect(..., 20, where=lambda e: e.get("type") == "crawl_done")
        rc = self.h.proc.wait(10)
        check(rc == 0, f"dht crawl exited with {rc} after SIGTERM")
        return done

    def kill9(self):
        os.killpg(self.h.proc.pid, signal.SIGKILL)
        self.h.proc.wait(5)


# --- reading the databases ----------------------------------------------------------------------

QUERY_TORRENTS = ("SELECT {hex}, name, total_size, file_count FROM torrents t "
                  "WHERE fetched_at IS NOT NULL")
QUERY_FILES = ("SELECT {hex}, f.idx, f.path, f.size FROM files f JOIN torrents t ON t.id = "
               "f.torrent_id ORDER BY 1, 2")
QUERY_ROWS = "SELECT count(*), count(DISTINCT info_hash) FROM torrents"


def sqlite_reader(path):
    def read(query):
        if not os.path.exists(path):
            return []
        con = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
        try:
            return con.execute(query.format(hex="lower(hex(t.info_hash))")).fetchall()
        except sqlite3.OperationalError:
            return []  # not migrated yet
        finally:
            con.close()
    return read


def psql():
    found = shutil.which("psql")
    if found:
        return found
    bins = sorted(d for d in os.listdir("/usr/lib/postgresql")) if os.path.isdir(
        "/usr/lib/postgresql") else []
    for v in reversed(bins):
        p = f"/usr/lib/postgresql/{v}/bin/psql"
        if os.path.exists(p):
            return p
    return None


def pg_exec(url, sql):
    r = subprocess.run([psql(), "-X", "-q", "-At", "-F", "\t", "-d", url, "-c", sql],
                       capture_output=True, text=True, timeout=20)
    if r.returncode != 0:
        raise Fail(f"psql: {r.stderr.strip()}")
    return [tuple(line.split("\t")) for line in r.stdout.splitlines() if line]


def pg_reader(url):
    def read(query):
        try:
            rows = pg_exec(url, query.format(hex="encode(t.info_hash, 'hex')"))
        except Fail as e:
            if "does not exist" in str(e):
                return []  # not migrated yet
            raise
        return [tuple(int(c) if c.isdigit() else c for c in row) for row in rows]
    return read


class PgDb:
    """A throwaway database on the server DHT_TEST_POSTGRES_URL names."""

    def __init__(self, name):
        admin = os.environ.get("DHT_TEST_POSTGRES_URL")
        if not admin or not psql():
            raise Skip("no PostgreSQL (run under .ci/postgres.sh)")
        self.admin = admin
        self.name = f"dht_crawl_e2e_{name}_{os.getpid()}"
        pg_exec(admin, f"DROP DATABASE IF EXISTS {self.name} WITH (FORCE)")
        pg_exec(admin, f"CREATE DATABASE {self.name}")
        u = urllib.parse.urlsplit(admin)
        self.url = urllib.parse.urlunsplit(u._replace(path="/" + self.name))

    def drop(self):
        try:
            pg_exec(self.admin, f"DROP DATABASE IF EXISTS {self.name} WITH (FORCE)")
        except Exception:
            pass


def stored(read):
    """{info_hash: (name, total_size, file_count)} of the torrents stored with metadata."""
    return {r[0]: (r[1], int(r[2]), int(r[3])) for r in read(QUERY_TORRENTS)}


def wait_stored(swarm, read, until, deadline):
    """Announces every 5 s until `until(stored)` holds; returns what is stored."""
    last = 0.0
    while True:
        have = stored(read)
        if until(have):
            return have
        if time.monotonic() > deadline:
            raise Fail(f"{len(have)} of {len(swarm.torrents)} torrents stored in time")
        if time.monotonic() - last > 5:
            swarm.announce()
            last = time.monotonic()
        time.sleep(0.5)


def verify(swarm, read):
    """Every torrent stored once, with libtorrent's name, size and files."""
    have = stored(read)
    missing = set(swarm.torrents) - set(have)
    check(not missing, f"not stored: {sorted(swarm.torrents[m]['name'] for m in missing)}")
    rows, distinct = read(QUERY_ROWS)[0]
    check(int(rows) == int(distinct), f"{rows} rows for {distinct} info-hashes")
    files = {}
    for ih, idx, path, size in read(QUERY_FILES):
        files.setdefault(ih, []).append((int(idx), path, int(size)))
    for ih, t in swarm.torrents.items():
        name, total, count = have[ih]
        check(name == t["name"], f"{ih}: name {name!r}, libtorrent says {t['name']!r}")
        check(total == t["total_size"], f"{t['name']}: total size {total}, not {t['total_size']}")
        want = [(i, p, s) for i, (p, s) in enumerate(t["files"])]
        got = sorted(files.get(ih, []))
        check(count == len(want) and got == want, f"{t['name']}: files {got}, not {want}")


# --- scenarios ----------------------------------------------------------------------------------

def all_stored(swarm):
    return lambda have: set(swarm.torrents) <= set(have)


def one_crawler(swarm, ctx, db, read):
    c = Crawler(swarm, ctx, ctx["k"], db, os.path.join(ctx["tmp"], "crawl.state"), ctx["name"])
    c.joined()
    wait_stored(swarm, read, all_stored(swarm), ctx["deadline"] - 5)
    done = c.stop()
    verify(swarm, read)
    check(done["fetched"] == len(swarm.torrents),
          f"{done['fetched']} fetches for {len(swarm.torrents)} torrents")


def sqlite_scenario(swarm, ctx):
    path = os.path.join(ctx["tmp"], "crawl.sqlite")
    one_crawler(swarm, ctx, f"sqlite:{path}", sqlite_reader(path))


def postgres_scenario(swarm, ctx):
    db = PgDb("one")
    try:
        one_crawler(swarm, ctx, db.url, pg_reader(db.url))
    finally:
        db.drop()


def pg_two_scenario(swarm, ctx):
    db = PgDb("two")
    try:
        read = pg_reader(db.url)
        a = Crawler(swarm, ctx, ctx["k"], db.url, os.path.join(ctx["tmp"], "a.state"), "pg-two-a")
        b = Crawler(swarm, ctx, ctx["k"] + 1, db.url, os.path.join(ctx["tmp"], "b.state"), "pg-two-b")
        a.joined()
        b.joined()
        wait_stored(swarm, read, all_stored(swarm), ctx["deadline"] - 8)
        fetched = [a.stop()["fetched"], b.stop()["fetched"]]
        verify(swarm, read)
        check(sum(fetched) == len(swarm.torrents),
              f"fetches {fetched} for {len(swarm.torrents)} torrents: some fetched twice")
        ctx["note"] = f"fetches split {fetched[0]} + {fetched[1]}"
    finally:
        db.drop()


def kill9_scenario(swarm, ctx):
    path = os.path.join(ctx["tmp"], "crawl.sqlite")
    read = sqlite_reader(path)
    state = os.path.join(ctx["tmp"], "crawl.state")
    # Killed as soon as it has stored something: at full rate it stores all 24 torrents
    # within a few seconds of starting and commits once a second, so waiting for a share of
    # them would find them all stored. Four queries a second (the samples that find the
    # torrents, the asks for their peers) and one fetch at a time spread its work out.
    c = Crawler(swarm, ctx, ctx["k"], f"sqlite:{path}", state, "kill9-a",
                ("--rate", "4", "--fetch-concurrency", "1"))
    c.joined()
    wait_stored(swarm, read, lambda have: len(have) >= 1, ctx["deadline"] - 30)
    c.kill9()
    before = stored(read)
    check(len(before) < len(swarm.torrents), "killed before it had everything")
    r = Crawler(swarm, ctx, ctx["k"], f"sqlite:{path}", state, "kill9-b")
    check(r.started["ids"] == c.started["ids"], "the restart runs the same ids")
    r.joined()
    wait_stored(swarm, read, all_stored(swarm), ctx["deadline"] - 5)
    done = r.stop()
    verify(swarm, read)
    check(done["fetched"] == len(swarm.torrents) - len(before),
          f"the restart fetched {done['fetched']}, {len(before)} were stored before the kill")
    ctx["note"] = f"{len(before)} stored before SIGKILL, {done['fetched']} after the restart"


SCENARIOS = {
    "sqlite": sqlite_scenario,
    "postgres": postgres_scenario,
    "pg-two": pg_two_scenario,
    "kill9": kill9_scenario,
}


def run_scenario(swarm, args, name, k, results):
    """Runs one scenario (on its own thread); its crawlers are stopped at the end."""
    ctx = {"name": name, "k": k, "tmp": tempfile.mkdtemp(prefix=f"dht-crawl-{name}-"),
           "deadline": time.monotonic() + args.timeout, "procs": []}
    t = time.monotonic()
    try:
        SCENARIOS[name](swarm, ctx)
        note = f", {ctx['note']}" if "note" in ctx else ""
        results[name] = f"PASS {name} ({time.monotonic() - t:.1f} s{note})"
    except Skip as e:
        results[name] = f"SKIP {name}: {e}"
    except Exception as e:
        results[name] = f"FAIL {name}: {type(e).__name__}: {e}"
    finally:
        for h in ctx["procs"]:
            if h.proc.poll() is None:
                h.proc.send_signal(signal.SIGTERM)
            h.close(timeout=3)
            if args.logs:
                rest = []
                while not h.events.empty():
                    rest.append(h.events.get())
                with open(os.path.join(args.logs, f"{name}.jsonl"), "a") as f:
                    f.writelines(json.dumps(e) + "\n" for e in h.seen + rest if e)
        shutil.rmtree(ctx["tmp"], ignore_errors=True)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--dht", default=os.path.join(REPO, "target", "debug", "dht"))
    p.add_argument("--only")
    p.add_argument("--torrents", type=int, default=24)
    p.add_argument("--timeout", type=float, default=120)
    p.add_argument("--logs")
    p.add_argument("-v", "--verbose", action="store_true")
    args = p.parse_args()
    args.dht = os.path.abspath(args.dht)
    if args.logs:
        os.makedirs(args.logs, exist_ok=True)
    names = args.only.split(",") if args.only else list(SCENARIOS)

    results = {}
    start = time.monotonic()
    swarm = None
    try:
        swarm = Swarm(args)
        print(f"swarm: {len(OUR_NODES)} dht nodes, {len(swarm.lt_nodes)} libtorrent sessions "
              f"seeding {len(swarm.torrents)} torrents ({time.monotonic() - start:.1f} s)",
              flush=True)
        # The scenarios run at once, each with its own crawler addresses and database: the
        # crawler's lookups wait for the send budget's one query per IP per second, so each
        # scenario spends most of its time waiting.
        threads = [threading.Thread(target=run_scenario, args=(swarm, args, name, 2 * k, results),
                                    daemon=True) for k, name in enumerate(names)]
        for t in threads:
            t.start()
        end = time.monotonic() + args.timeout + 30
        for t in threads:
            t.join(max(0, end - time.monotonic()))
    except Exception as e:
        results["swarm"] = f"FAIL swarm: {type(e).__name__}: {e}"
    finally:
        if swarm:
            swarm.close()
    for name in ["swarm"] + names:
        if name in results:
            print(results[name], flush=True)
        elif name != "swarm":
            results[name] = f"FAIL {name}: no result within {args.timeout} s"
            print(results[name], flush=True)
    sys.exit(1 if any(r.startswith("FAIL") for r in results.values()) else 0)


if __name__ == "__main__":
    main()
