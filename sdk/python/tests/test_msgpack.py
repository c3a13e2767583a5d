"""The pure-Python msgpack codec: round trips and vmihailenco/msgpack's
encoding choices (the expected bytes come from the Go codec)."""

import datetime as dt
import math
import struct
import unittest

from taskwire import _msgpack as mp


def h(s):
    return bytes.fromhex(s)


class TestIntegers(unittest.TestCase):
    # (value, encoding as github.com/vmihailenco/msgpack/v5 writes it with
    # UseCompactInts, as protocol.CodecMsgpack does).
    VECTORS = [
        (0, "00"), (1, "01"), (127, "7f"), (128, "cc80"), (255, "ccff"), (256, "cd0100"),
        (65535, "cdffff"), (65536, "ce00010000"), (4294967295, "ceffffffff"),
        (4294967296, "cf0000000100000000"), (2 ** 63 - 1, "cf7fffffffffffffff"),
        (2 ** 64 - 1, "cfffffffffffffffff"),
        (-1, "ff"), (-32, "e0"), (-33, "d0df"), (-128, "d080"), (-129, "d1ff7f"), (-32768, "d18000"),
        (-32769, "d2ffff7fff"), (-2 ** 31, "d280000000"), (-2 ** 31 - 1, "d3ffffffff7fffffff"),
        (-2 ** 63, "d38000000000000000"),
    ]

    def test_smallest_encoding(self):
        for n, enc in self.VECTORS:
            with self.subTest(n=n):
                self.assertEqual(mp.packb(n).hex(), enc)
                self.assertEqual(mp.unpackb(h(enc)), n)

    def test_every_width_decodes(self):
        # Non-minimal encodings other writers may choose.
        cases = {"cc05": 5, "cd0005": 5, "ce00000005": 5, "cf0000000000000005": 5,
                 "d0fb": -5, "d1fffb": -5, "d2fffffffb": -5, "d3fffffffffffffffb": -5, "d005": 5}
        for enc, n in cases.items():
            with self.subTest(enc=enc):
                self.assertEqual(mp.unpackb(h(enc)), n)

    def test_out_of_range(self):
        for n in (2 ** 64, -2 ** 63 - 1):
            with self.assertRaises(mp.PackError):
                mp.packb(n)

    def test_bool_is_not_int(self):
        self.assertEqual(mp.packb(True), b"\xc3")
        self.assertEqual(mp.packb(False), b"\xc2")
        self.assertIs(mp.unpackb(b"\xc3"), True)
        self.assertIsNone(mp.unpackb(b"\xc0"))
        self.assertEqual(mp.packb(None), b"\xc0")


class TestFloats(unittest.TestCase):
    def test_float64(self):
        for f, enc in [(0.25, "cb3fd0000000000000"), (1.0, "cb3ff0000000000000"),
                       (1e21, "cb444b1ae4d6e2ef50"), (5e-324, "cb0000000000000001"),
                       (-1.5e-10, "cbbde49da7e361ce4c")]:
            with self.subTest(f=f):
                self.assertEqual(mp.packb(f).hex(), enc)
                self.assertEqual(mp.unpackb(h(enc)), f)
        self.assertTrue(math.isnan(mp.unpackb(mp.packb(float("nan")))))
        self.assertEqual(mp.unpackb(mp.packb(float("-inf"))), float("-inf"))

    def test_float32_decode(self):
        self.assertEqual(mp.unpackb(b"\xca" + struct.pack(">f", 1.5)), 1.5)
        self.assertAlmostEqual(mp.unpackb(b"\xca" + struct.pack(">f", 0.1)), 0.1, places=6)
        self.assertIsInstance(mp.unpackb(b"\xca" + struct.pack(">f", 2.0)), float)


class TestStringsAndBinary(unittest.TestCase):
    def test_str_length_classes(self):
        # fixstr < 32, then str8, str16, str32 (Go's heads for "a" * n).
        for n, head in [(0, "a0"), (31, "bf"), (32, "d920"), (255, "d9ff"), (256, "da0100"),
                        (65535, "daffff"), (65536, "db00010000")]:
            with self.subTest(n=n):
                b = mp.packb("a" * n)
                self.assertEqual(b[:len(head) // 2].hex(), head)
                self.assertEqual(len(b), len(head) // 2 + n)
                self.assertEqual(mp.unpackb(b), "a" * n)

    def test_utf8(self):
        s = "héllo € 😀"
        b = mp.packb(s)
        self.assertEqual(b[0], 0xA0 | len(s.encode("utf-8")))
        self.assertEqual(mp.unpackb(b), s)

    def test_invalid_utf8_round_trips(self):
        b = h("a2ff61")
        self.assertEqual(mp.packb(mp.unpackb(b)), b)

    def test_bin_length_classes(self):
        for n, head in [(0, "c400"), (255, "c4ff"), (256, "c50100"), (65535, "c5ffff"), (65536, "c600010000")]:
            with self.subTest(n=n):
                data = bytes(range(256)) * (n // 256) + bytes(n % 256)
                b = mp.packb(data)
                self.assertEqual(b[:len(head) // 2].hex(), head)
                self.assertEqual(mp.unpackb(b), data)
        self.assertEqual(mp.packb(bytearray(b"ab")), h("c4026162"))
        self.assertIsInstance(mp.unpackb(h("c4026162")), bytes)


class TestContainers(unittest.TestCase):
    def test_array_length_classes(self):
        for n, head in [(0, "90"), (15, "9f"), (16, "dc0010"), (65535, "dcffff"), (65536, "dd00010000")]:
            with self.subTest(n=n):
                a = list(range(n))
                b = mp.packb(a)
                self.assertEqual(b[:len(head) // 2].hex(), head)
                self.assertEqual(mp.unpackb(b), a)
        self.assertEqual(mp.packb((1, 2)), h("920102"))

    def test_map_length_classes(self):
        for n, head in [(0, "80"), (15, "8f"), (16, "de0010"), (65536, "df00010000")]:
            with self.subTest(n=n):
                m = {"k%d" % i: i for i in range(n)}
                b = mp.packb(m)
                self.assertEqual(b[:len(head) // 2].hex(), head)
                self.assertEqual(mp.unpackb(b), m)

    def test_map_order_is_kept(self):
        m = {"z": 1, "a": 2, "m": 3}
        out = mp.unpackb(mp.packb(m))
        self.assertEqual(list(out), ["z", "a", "m"])

    def test_nested(self):
        v = {"rows": 1204, "mean": 17.5, "ok": True, "missing": None,
             "files": ["s3://a", "s3://b", {"deep": [[[{"x": -3}]]], "bin": b"\x00\x01"}],
             "stats": {"min": -3, "max": 99, "big": 2 ** 40, "neg": -2 ** 40, "": ""}}
        self.assertEqual(mp.unpackb(mp.packb(v)), v)

    def test_non_string_keys_rejected(self):
        with self.assertRaises(mp.PackError):
            mp.packb({1: "a"})
        with self.assertRaises(mp.UnpackError):
            mp.unpackb(h("810102"))  # {1: 2}


class TestTimestamp(unittest.TestCase):
    def test_decode_all_sizes(self):
        utc = dt.timezone.utc
        # timestamp 32
        self.assertEqual(mp.unpackb(h("d6ff") + struct.pack(">I", 1700000000)),
                         dt.datetime(2023, 11, 14, 22, 13, 20, tzinfo=utc))
        # timestamp 64, with nanoseconds (kept to the microsecond)
        u = (123456789 << 34) | 1700000000
        self.assertEqual(mp.unpackb(h("d7ff") + struct.pack(">Q", u)),
                         dt.datetime(2023, 11, 14, 22, 13, 20, 123456, tzinfo=utc))
        # timestamp 96, before the epoch
        self.assertEqual(mp.unpackb(h("c70cff") + struct.pack(">Iq", 0, -86400)),
                         dt.datetime(1969, 12, 31, tzinfo=utc))

    def test_round_trip(self):
        utc = dt.timezone.utc
        for t in [dt.datetime(2026, 11, 22, 8, 15, 30, tzinfo=utc),
                  dt.datetime(2026, 11, 22, 8, 15, 30, 123456, tzinfo=utc),
                  dt.datetime(1900, 1, 1, tzinfo=utc),
                  dt.datetime(2600, 1, 1, 0, 0, 0, 1, tzinfo=utc)]:
            with self.subTest(t=t):
                self.assertEqual(mp.unpackb(mp.packb(t)), t)
        self.assertEqual(mp.packb(dt.datetime(2026, 1, 1, tzinfo=utc))[:2], h("d6ff"))

    def test_unknown_ext_rejected(self):
        for enc in ["d40501", "d5050102", "c7010501"]:
            with self.subTest(enc=enc):
                with self.assertRaisesRegex(mp.UnpackError, "unsupported extension type 5"):
                    mp.unpackb(h(enc))

    def test_bad_timestamp(self):
        with self.assertRaises(mp.UnpackError):
            mp.unpackb(h("d4ff01"))  # 1 byte
        with self.assertRaises(mp.UnpackError):
            mp.unpackb(h("d7ff") + struct.pack(">Q", (1000000000 << 34)))


class TestMalformed(unittest.TestCase):
    def test_errors(self):
        cases = {
            "": "unexpected end",
            "c1": "invalid code",
            "a5616263": "unexpected end",
            "dc0003": "exceeds",
            "dfffffffff": "exceeds",
            "dbffffffff": "exceeds",
            "0101": "after the value",
            "92": "exceeds",
            "cd01": "unexpected end",
        }
        for enc, msg in cases.items():
            with self.subTest(enc=enc):
                with self.assertRaisesRegex(mp.UnpackError, msg):
                    mp.unpackb(h(enc))

    def test_depth_bounded(self):
        with self.assertRaisesRegex(mp.UnpackError, "nested deeper"):
            mp.unpackb(b"\x91" * 100000 + b"\xc0")
        ok = b"\x91" * 100 + b"\xc0"
        self.assertEqual(mp.packb(mp.unpackb(ok)), ok)

    def test_unsupported_type(self):
        with self.assertRaises(mp.PackError):
            mp.packb(object())
        with self.assertRaises(mp.PackError):
            mp.packb({1, 2})


if __name__ == "__main__":
    unittest.main()
