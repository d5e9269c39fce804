#!/usr/bin/env python3
"""Offline checks of tests/corpus and of krpc.py's bencode (no network, standard library only).

Run: python3 tests/interop/test_corpus.py   (or python3 -m unittest discover -s tests/interop)
"""
import os
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
            raw = open(os.path.join(CORPUS, name), "rb").read()
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


if __name__ == "__main__":
    unittest.main()
