#!/usr/bin/env python3
"""Offline checks of tests/corpus and of krpc.py (standard library only; the krpc.py tests use
a fake node on 127.1.1.1 with an ephemeral port, nothing else).

Run: python3 tests/interop/test_corpus.py   (or python3 -m unittest discover -s tests/interop)
"""
import contextlib
import io
import os
import socket
import threading
import unittest

import krpc

HERE = os.path.dirname(os.path.abspath(__file__))
CORPUS = os.path.join(HERE, "..", "corpus")


def manifest():
    rows = []
    with open(os.path.join(CORPUS, "MANIFEST.txt")) as f:
        for line in f:
            if line.strip() and not line.startswith("#"):
                rows.append(line.split())
    return rows


class Bencode(unittest.TestCase):
    def test_known_encodings(self):
        # Spelled out from the BEP 3 grammar, not produced by the encoder.
        self.assertEqual(krpc.bencode(0), b"i0e")
        self.assertEqual(krpc.bencode(-42), b"i-42e")
        self.assertEqual(krpc.bencode(b""), b"0:")
        self.assertEqual(krpc.bencode("spam"), b"4:spam")
        self.assertEqual(krpc.bencode([1, b"a"]), b"li1e1:ae")
        self.assertEqual(krpc.bencode({b"b": 1, b"a": b"x"}), b"d1:a1:x1:bi1ee")

    def test_decode_rejects_malformed_and_non_canonical(self):
        for bad in (b"", b"i", b"i1", b"ie", b"i-e", b"i01e", b"i-0e", b"03:abc", b"4:abc",
                    b"l", b"d1:ai1e", b"di1ei2ee", b"d1:bi1e1:ai2ee", b"d1:ai1e1:ai2ee",
                    b"i1ei2e", b"x", b"l" * 100 + b"e" * 100):
            with self.assertRaises(krpc.BencodeError, msg=bad):
                krpc.bdecode(bad)

    def test_lenient_mode_accepts_unsorted_keys(self):
        self.assertEqual(krpc.bdecode(b"d1:bi1e1:ai2ee", strict=False), {b"a": 2, b"b": 1})

    def test_decode_values(self):
        self.assertEqual(krpc.bdecode(b"d1:ad2:id2:xxe1:q4:ping1:t2:aa1:y1:qe"),
                         {b"a": {b"id": b"xx"}, b"q": b"ping", b"t": b"aa", b"y": b"q"})
        self.assertEqual(krpc.bdecode(b"li-1e0:le4:spame"), [-1, b"", [], b"spam"])


class Corpus(unittest.TestCase):
    def test_manifest_matches_files(self):
        rows = manifest()
        self.assertGreater(len(rows), 20)
        listed = {r[0] for r in rows}
        on_disk = {f"{d}/{f}" for d in ("libtorrent", "webtorrent")
                   for f in os.listdir(os.path.join(CORPUS, d)) if f.endswith(".bin")}
        self.assertEqual(listed, on_disk)
        for name, impl, _version, kind, method, family, _note in rows:
            self.assertEqual(name, f"{impl}/{kind}-{method}-{name.rsplit('-', 1)[1]}")
            self.assertIn(kind, ("query", "response", "error"))
            self.assertIn(family, ("v4", "v6"))

    def test_every_datagram_is_canonical_krpc(self):
        for name, _impl, _v, kind, method, _family, _note in manifest():
            with open(os.path.join(CORPUS, name), "rb") as f:
                raw = f.read()
            self.assertLess(len(raw), 1500, name)
            msg = krpc.bdecode(raw)  # strict: canonical bencode
            self.assertEqual(krpc.bencode(msg), raw, name)
            self.assertIsInstance(msg.get(b"t"), bytes, name)
            y = {"query": b"q", "response": b"r", "error": b"e"}[kind]
            self.assertEqual(msg.get(b"y"), y, name)
            if kind == "query":
                self.assertEqual(msg[b"q"], method.encode(), name)
                self.assertEqual(len(msg[b"a"][b"id"]), 20, name)
            else:
                # Replies are checked with the same rules krpc.py applies to a live node.
                self.assertEqual(krpc.check_reply(method.encode(), msg, msg[b"t"]), [], name)

    def test_both_implementations_and_families_present(self):
        rows = manifest()
        for impl in ("libtorrent", "webtorrent"):
            for kind in ("query", "response", "error"):
                for family in ("v4", "v6"):
                    self.assertTrue(any(r[1] == impl and r[3] == kind and r[5] == family
                                        for r in rows), (impl, kind, family))


class FakeNode:
    """Answers each query on 127.1.1.1 with reply(query_dict) (bytes, or None for silence)."""

    def __init__(self, reply):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.1.1.1", 0))
        self.sock.settimeout(0.1)
        self.addr = "127.1.1.1:%d" % self.sock.getsockname()[1]
        self.reply, self.stop = reply, False
        self.thread = threading.Thread(target=self.loop, daemon=True)
        self.thread.start()

    def loop(self):
        while not self.stop:
            try:
                data, src = self.sock.recvfrom(2048)
            except socket.timeout:
                continue
            out = self.reply(krpc.bdecode(data))
            if out is not None:
                self.sock.sendto(out, src)

    def close(self):
        self.stop = True
        self.thread.join()
        self.sock.close()


ID = b"N" * 20


def respond(q, r):
    return krpc.bencode({b"t": q[b"t"], b"y": b"r", b"r": {b"id": ID, **r}})


def run_krpc(reply, *args):
    node = FakeNode(reply)
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            return krpc.run(["--timeout", "0.5", node.addr, *args])
    finally:
        node.close()


class KrpcClient(unittest.TestCase):
    H = "ab" * 20

    def test_valid_answers_exit_0(self):
        self.assertEqual(run_krpc(lambda q: respond(q, {}), "ping"), 0)
        self.assertEqual(run_krpc(lambda q: respond(q, {b"nodes": b"x" * 26}),
                                  "find_node", self.H), 0)
        self.assertEqual(run_krpc(lambda q: respond(q, {b"token": b"tk", b"values": [b"p" * 6]}),
                                  "get_peers", self.H), 0)

    def test_announce_uses_the_token_from_get_peers(self):
        seen = []

        def reply(q):
            seen.append(q)
            return respond(q, {b"token": b"secret", b"nodes": b""})

        self.assertEqual(run_krpc(reply, "announce_peer", self.H, "6881"), 0)
        self.assertEqual([q[b"q"] for q in seen], [b"get_peers", b"announce_peer"])
        self.assertEqual(seen[1][b"a"][b"token"], b"secret")
        self.assertEqual(seen[1][b"a"][b"port"], 6881)

    def test_malformed_answers_exit_1(self):
        bad = [
            lambda q: b"not bencode",
            lambda q: respond(q, {}) + b"x",  # trailing bytes
            lambda q: krpc.bencode({b"t": q[b"t"], b"y": b"r", b"r": {b"id": b"short"}}),
            lambda q: krpc.bencode({b"t": q[b"t"], b"y": b"x"}),  # neither r nor e
            lambda q: respond(q, {b"nodes": b"x" * 25}),  # not a multiple of 26
        ]
        for reply in bad:
            self.assertEqual(run_krpc(reply, "find_node", self.H), 1)
        # get_peers without a token
        self.assertEqual(run_krpc(lambda q: respond(q, {b"nodes": b""}), "get_peers", self.H), 1)

    def test_errors_and_silence(self):
        def err(q):
            return krpc.bencode({b"t": q[b"t"], b"y": b"e", b"e": [204, b"Method Unknown"]})

        self.assertEqual(run_krpc(err, "frobnicate"), 3)
        self.assertEqual(run_krpc(err, "--expect-error", "frobnicate"), 0)
        self.assertEqual(run_krpc(err, "--expect-error", "204", "frobnicate"), 0)
        self.assertEqual(run_krpc(err, "--expect-error", "203", "frobnicate"), 3)
        self.assertEqual(run_krpc(lambda q: respond(q, {}), "--expect-error", "ping"), 3)
        self.assertEqual(run_krpc(lambda q: None, "ping"), 2)


if __name__ == "__main__":
    unittest.main()
