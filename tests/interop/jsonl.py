"""Drive lt.py / wt.js (or any program printing JSON lines) from a Python test.

    from jsonl import Harness
    with Harness([LT_PYTHON, "lt.py", "--nodes", "3", "--serve", "--duration", "60"]) as lt:
        ready = lt.expect("ready", timeout=30)
        lt.send("get-peers " + "aa" * 20)
        peers = lt.expect("peers", timeout=20)

Every process is started in its own process group and killed (whole group) on exit from the
`with` block, so nothing outlives a test. Standard library only.
"""
import json
import os
import queue
import signal
import subprocess
import threading
import time


class Harness:
    def __init__(self, argv, cwd=None, stderr=subprocess.DEVNULL, echo=False):
        self.argv = argv
        self.echo = echo
        self.proc = subprocess.Popen(
            argv, cwd=cwd or os.path.dirname(os.path.abspath(__file__)), stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, stderr=stderr, text=True, bufsize=1, start_new_session=True)
        self.events = queue.Queue()
        self.seen = []  # every event read so far, in order
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.proc.stdout:
            line = line.strip()
            if not line:
                continue
            try:
                ev = json.loads(line)
            except ValueError:
                ev = {"event": "text", "text": line}
            if self.echo:
                print(f"  [{os.path.basename(self.argv[1])}] {line[:300]}", flush=True)
            self.events.put(ev)
        self.events.put(None)

    def send(self, command):
        self.proc.stdin.write(command.rstrip("\n") + "\n")
        self.proc.stdin.flush()

    def expect(self, event, timeout, where=None):
        """Next event named `event` (and satisfying `where`, if given), skipping others.

        `event` may also be a tuple of names, or `...` for any line (then `where` decides)."""
        end = time.monotonic() + timeout
        while True:
            left = end - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"no {event!r} event within {timeout}s from {self.argv}")
            try:
                ev = self.events.get(timeout=left)
            except queue.Empty:
                continue
            if ev is None:
                self.events.put(None)
                raise EOFError(f"{self.argv} exited before a {event!r} event")
            self.seen.append(ev)
            name = ev.get("event")
            named = (event is ... or name == event
                     or (isinstance(event, tuple) and name in event))
            if named and (where is None or where(ev)):
                return ev

    def command(self, command, event, timeout):
        """Send a command and return its result event (named `event`)."""
        self.send(command)
        return self.expect(event, timeout)

    def close(self, timeout=10):
        try:
            self.proc.stdin.close()
        except OSError:
            pass
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            pass
        finally:
            if self.proc.poll() is None:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
