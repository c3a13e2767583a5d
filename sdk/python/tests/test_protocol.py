"""Framing, the codecs and the message shapes, against the shared golden
frames in protocol/testdata (written by the Go codec)."""

import glob
import io
import os
import socket
import struct
import threading
import unittest

from fakeworker import REPO_ROOT
from taskwire import protocol as P

TESTDATA = os.path.join(REPO_ROOT, "protocol", "testdata")

# Messages the worker sends (response bodies [id, msg, error]); the rest are
# requests [id, msg].
RESPONSES = {"StartupDetails", "ConnectionResult", "VariableResult", "XComResult", "OKResponse", "ErrorResponse"}


def read(path):
    with open(path, "rb") as f:
        return f.read()


def golden_files():
    out = []
    for codec, pattern in ((P.MSGPACK, "msgpack/*.bin"), (P.JSON, "json/*.json.bin")):
        for path in sorted(glob.glob(os.path.join(TESTDATA, pattern))):
            name = os.path.basename(path).split(".")[0]
            out.append((codec, name, path))
    return out


# The messages of protocol/golden_test.go, built with protocol.message: each
# must encode to its golden frame byte for byte.
RUN_ID = "scheduled__2026-11-22T00:00:00+00:00"
END = "2026-11-22T08:16:02.5Z"
BUILT = {
    "StartupDetails": (0, True, P.message(
        "StartupDetails",
        ti={"id": "0195b3c2-7a1e-7c4d-9f1a-3b2c1d0e9f8a", "dag_id": "etl", "task_id": "transform",
            "run_id": RUN_ID, "map_index": -1, "try_number": 2},
        ti_context={"max_tries": 3, "queue": "go", "entrypoint": "transform", "params": {
            "tables": ["orders", "customers"], "day": "2026-11-22", "limit": 500, "ratio": 0.25, "dry_run": False,
            "target": {"schema": "analytics", "partitions": 8}}},
        next_method="resume_after_wait",
        next_kwargs={"event": {"status": "done", "rows": 1204}, "attempts": [1, 2]},
        start_date="2026-11-22T08:15:30.123456Z")),
    "ConnectionResult": (3, True, P.message(
        "ConnectionResult", conn_id="warehouse", conn_type="postgres", host="db.internal", schema="analytics",
        login="etl_user", password="s3cret!", port=5432,
        extra={"sslmode": "require", "connect_timeout": 10, "options": ("-c", "statement_timeout=60000")})),
    "VariableResult": (4, True, P.message("VariableResult", key="greeting", value="hello taskwire")),
    "XComResult": (5, True, P.message("XComResult", key="return_value", value={
        "rows": 1204, "mean": 17.5, "ok": True, "missing": None,
        "files": ["s3://bucket/a.parquet", "s3://bucket/b.parquet"], "stats": {"min": -3, "max": 99}})),
    "OKResponse": (6, True, P.message("OKResponse")),
    "GetConnection": (3, False, P.message("GetConnection", conn_id="warehouse")),
    "GetVariable": (4, False, P.message("GetVariable", key="greeting")),
    "PutVariable": (8, False, P.message("PutVariable", key="last_run", value="2026-11-22",
                                        description="day the ETL last ran")),
    "GetXCom": (5, False, P.message("GetXCom", key="return_value", dag_id="etl", run_id=RUN_ID,
                                    task_id="extract", map_index=2)),
    "SetXCom": (9, False, P.message("SetXCom", key="summary", dag_id="etl", run_id=RUN_ID, task_id="transform",
                                    map_index=-1, value={"rows": 1204, "ratio": 0.25,
                                                         "tags": ["daily", {"k": "v"}], "none": None, "done": True})),
    "DeleteXCom": (10, False, P.message("DeleteXCom", key="scratch", dag_id="etl",
                                        run_id="manual__2026-11-22T09:00:00+00:00", task_id="transform",
                                        map_index=0)),
    "DeferTask": (11, False, P.message("DeferTask", classpath="taskwire.triggers.TimeDelta",
                                       trigger_kwargs={"delta": "90s", "poll": {"interval": "5s", "jitter": 0.1}},
                                       trigger_timeout="1h", next_method="resume_after_wait",
                                       next_kwargs={"attempt": 1, "ids": [7, 8]})),
    "RetryTask": (12, False, P.message("RetryTask", end_date=END, reason="upstream API returned 503")),
    "SucceedTask": (12, False, P.message("SucceedTask", end_date=END)),
    "TaskState": (12, False, P.message("TaskState", state="skipped", end_date=END, reason="no new partitions")),
    "MaskSecret": (2, False, P.message("MaskSecret", value="s3cret!", name="warehouse_password")),
}
ERROR_RESPONSE = (7, {"error": "not_found", "detail": {
    "status": 404, "message": "variable \"greeting\" not found", "key": "greeting"}})


class TestGoldenFrames(unittest.TestCase):
    def test_every_type_has_golden_frames(self):
        names = {(c.name, n) for c, n, _ in golden_files()}
        for t in P.MESSAGE_TYPES:
            for c in ("msgpack", "json"):
                self.assertIn((c, t), names)
        self.assertEqual(len(names), 2 * len(P.MESSAGE_TYPES))

    def test_raw_round_trip_is_byte_identical(self):
        # Decode the body to plain values and encode them again.
        for codec, name, path in golden_files():
            with self.subTest(codec=codec.name, name=name):
                data = read(path)
                body = P.read_frame(io.BytesIO(data))
                self.assertEqual(P.frame(codec.encode(codec.decode(body))), data)

    def test_decoded_message_round_trip_is_byte_identical(self):
        # Decode as the protocol does (checked and filled in) and encode the
        # message again through its layout.
        for codec, name, path in golden_files():
            with self.subTest(codec=codec.name, name=name):
                data = read(path)
                body = P.read_frame(io.BytesIO(data))
                if name in RESPONSES:
                    r = codec.decode_response(body)
                    msg = None if r.msg is None else P.normalize(r.msg)
                    again = codec.encode_response(r.id, msg, r.error)
                else:
                    r = codec.decode_request(body)
                    self.assertEqual(r.msg["type"], name)
                    again = codec.encode_request(r.id, P.normalize(r.msg))
                self.assertEqual(P.frame(again), data)

    def test_built_messages_encode_to_golden_bytes(self):
        for codec, name, path in golden_files():
            with self.subTest(codec=codec.name, name=name):
                data = read(path)
                if name == "ErrorResponse":
                    id, err = ERROR_RESPONSE
                    body = codec.encode_response(id, None, err)
                else:
                    id, response, msg = BUILT[name]
                    body = codec.encode_response(id, msg) if response else codec.encode_request(id, msg)
                self.assertEqual(P.frame(body), data)

    def test_decoded_fields(self):
        for codec in (P.MSGPACK, P.JSON):
            with self.subTest(codec=codec.name):
                ext = ".bin" if codec is P.MSGPACK else ".json.bin"
                sub = "msgpack" if codec is P.MSGPACK else "json"

                def load(name):
                    with open(os.path.join(TESTDATA, sub, name + ext), "rb") as f:
                        return P.read_frame(f)

                r = codec.decode_response(load("StartupDetails"))
                self.assertEqual(r.id, 0)
                self.assertIsNone(r.error)
                sd = r.msg
                self.assertEqual(sd["ti"]["map_index"], -1)
                self.assertEqual(sd["ti"]["try_number"], 2)
                self.assertEqual(sd["ti_context"]["params"]["ratio"], 0.25)
                self.assertIs(sd["ti_context"]["params"]["dry_run"], False)
                self.assertEqual(sd["next_kwargs"]["event"], {"rows": 1204, "status": "done"})
                self.assertEqual(sd["start_date"], "2026-11-22T08:15:30.123456Z")

                r = codec.decode_response(load("ErrorResponse"))
                self.assertEqual(r.id, 7)
                self.assertIsNone(r.msg)
                self.assertEqual(r.error["error"], "not_found")
                self.assertEqual(r.error["detail"]["status"], 404)

                r = codec.decode_response(load("XComResult"))
                self.assertIsNone(r.msg["value"]["missing"])
                self.assertEqual(r.msg["value"]["mean"], 17.5)

                r = codec.decode_request(load("GetXCom"))
                self.assertEqual((r.id, r.msg["map_index"]), (5, 2))


class TestFraming(unittest.TestCase):
    def test_frame_round_trip(self):
        for body in [b"", b"x", bytes(70000)]:
            buf = io.BytesIO()
            P.write_frame(buf, body)
            self.assertEqual(buf.getvalue()[:4], struct.pack(">I", len(body)))
            buf.seek(0)
            self.assertEqual(P.read_frame(buf), body)
            self.assertIsNone(P.read_frame(buf))  # clean end

    def test_truncated(self):
        for data in [b"\x00\x00", b"\x00\x00\x00\x05abc"]:
            with self.subTest(data=data):
                with self.assertRaisesRegex(P.ProtocolError, "end of stream"):
                    P.read_frame(io.BytesIO(data))

    def test_too_large_before_allocating(self):
        class Stream(object):
            def __init__(self):
                self.data = io.BytesIO(b"\xff\xff\xff\xff")
                self.reads = []

            def read(self, n):
                self.reads.append(n)
                return self.data.read(n)

        s = Stream()
        with self.assertRaises(P.FrameTooLarge):
            P.read_frame(s)
        self.assertEqual(s.reads, [4])  # the body was never asked for
        self.assertEqual(P.MAX_FRAME_SIZE_DEFAULT, 4 << 20)
        with self.assertRaises(P.FrameTooLarge):
            P.read_frame(io.BytesIO(struct.pack(">I", 11) + bytes(11)), max_size=10)
        self.assertEqual(P.read_frame(io.BytesIO(struct.pack(">I", 10) + bytes(10)), max_size=10), bytes(10))
        with self.assertRaises(P.FrameTooLarge):
            P.frame(bytes(11), max_size=10)

    def test_conn_over_socketpair(self):
        a, b = socket.socketpair()
        try:
            ca, cb = P.Conn(a, "json"), P.Conn(b, "json")
            ca.write_request(1, P.message("GetVariable", key="k"))
            req = cb.read_request(timeout=5)
            self.assertEqual((req.id, req.msg["key"]), (1, "k"))
            cb.write_response(1, None, {"error": "not_found"})
            resp = ca.read_response(timeout=5)
            self.assertEqual(resp.error, {"type": "ErrorResponse", "error": "not_found", "detail": None})
        finally:
            a.close()
            b.close()

    def test_conn_keeps_partial_frame_across_timeout(self):
        a, b = socket.socketpair()
        try:
            conn = P.Conn(a)
            data = P.frame(P.MSGPACK.encode_response(1, P.message("OKResponse")))
            b.sendall(data[:6])
            with self.assertRaises(socket.timeout):
                conn.read_response(timeout=0.05)
            b.sendall(data[6:])
            self.assertEqual(conn.read_response(timeout=5).msg, {"type": "OKResponse"})
            b.close()
            self.assertIsNone(conn.read_response(timeout=5))
        finally:
            a.close()
            b.close()

    def test_timed_read_leaves_writes_unbounded(self):
        # A read with a timeout on one thread must not bound a write on
        # another: a frame larger than the socket buffers, to a peer that
        # starts reading only after the read's timeout, is sent whole.
        a, b = socket.socketpair()
        try:
            conn = P.Conn(a, max_frame=64 << 20)
            body = P.MSGPACK.encode_request(1, P.message("SetXCom", key="k", value="x" * (8 << 20)))
            errors = []

            def write():
                try:
                    conn.write_body(body)
                except Exception as e:  # noqa: BLE001 - reported below
                    errors.append(e)

            with self.assertRaises(socket.timeout):
                conn.read_body(timeout=0.01)
            self.assertIsNone(a.gettimeout())
            w = threading.Thread(target=write)
            w.start()
            with self.assertRaises(socket.timeout):
                conn.read_body(timeout=0.3)
            got = P.Conn(b, max_frame=64 << 20).read_body(timeout=30)
            w.join(30)
            self.assertEqual(errors, [])
            self.assertEqual(got, body)
        finally:
            a.close()
            b.close()

    def test_conn_too_large_and_truncated(self):
        a, b = socket.socketpair()
        try:
            conn = P.Conn(a, max_frame=16)
            b.sendall(struct.pack(">I", 17))
            with self.assertRaises(P.FrameTooLarge):
                conn.read_body(timeout=5)
        finally:
            a.close()
            b.close()
        a, b = socket.socketpair()
        try:
            conn = P.Conn(a)
            b.sendall(struct.pack(">I", 10) + b"abc")
            b.close()
            with self.assertRaisesRegex(P.ProtocolError, "end of stream"):
                conn.read_body(timeout=5)
        finally:
            a.close()

    def test_concurrent_writes_stay_whole(self):
        a, b = socket.socketpair()
        try:
            ca, cb = P.Conn(a), P.Conn(b)
            n = 200

            def writer(base):
                for i in range(n):
                    ca.write_request(base + i, P.message("MaskSecret", value="x" * 300))
            ts = [threading.Thread(target=writer, args=(k * 1000,)) for k in range(1, 4)]
            for t in ts:
                t.start()
            got = [cb.read_request(timeout=5).id for _ in range(3 * n)]
            for t in ts:
                t.join()
            self.assertEqual(sorted(got), sorted(k * 1000 + i for k in range(1, 4) for i in range(n)))
        finally:
            a.close()
            b.close()


class TestBodies(unittest.TestCase):
    def test_malformed_bodies(self):
        cases = [
            (P.JSON, b"{}", "want an array"),
            (P.JSON, b"[1]", "2 or 3"),
            (P.JSON, b"[1,2,3,4]", "2 or 3"),
            (P.JSON, b'["1",{"type":"OKResponse"}]', "id is a string"),
            (P.JSON, b"[1.5,null]", "id is a float"),
            (P.JSON, b"[1,[]]", "msg is an array"),
            (P.JSON, b"[1,{}]", "no type"),
            (P.JSON, b'[1,{"type":3}]', "type is an integer"),
            (P.JSON, b'[1,{"type":"Nope"}]', "unknown message type"),
            (P.JSON, b'[1,{"type":"VariableResult","key":3}]', "VariableResult.key is an integer"),
            (P.JSON, b'[0,{"type":"StartupDetails","ti":{"map_index":"x"}}]', "ti.map_index is a string"),
            (P.JSON, b'[0,{"type":"StartupDetails","ti":{"map_index":true}}]', "ti.map_index is a bool"),
            (P.JSON, b'[1,null,"boom"]', "error is a string"),
            (P.JSON, b'[1,null,{"type":"OKResponse"}]', "want ErrorResponse"),
            (P.JSON, b"[1,null] x", "json"),
            (P.JSON, b"[1,NaN]", "json"),
            (P.JSON, b"\xff", "json"),
            (P.MSGPACK, b"\x92\x01", "exceeds"),
            (P.MSGPACK, b"\x92\x01\xa3ab", "unexpected end"),
            (P.MSGPACK, b"\x92\x01\xc0\xc0", "after the value"),
            (P.MSGPACK, b"\x92\x01\xc7\x01\x05\x00", "unsupported extension type 5"),
        ]
        for codec, body, msg in cases:
            with self.subTest(body=body):
                with self.assertRaisesRegex(P.ProtocolError, msg):
                    codec.decode_response(body)

    def test_malformed_msg_keeps_id(self):
        with self.assertRaises(P.ProtocolError) as cm:
            P.JSON.decode_response(b'[7,{"type":"Nope"},null]')
        self.assertEqual(cm.exception.id, 7)
        with self.assertRaises(P.ProtocolError) as cm:
            P.JSON.decode_response(b"[1]")
        self.assertIsNone(cm.exception.id)

    def test_requests(self):
        with self.assertRaisesRegex(P.ProtocolError, "msg is nil"):
            P.JSON.decode_request(b"[1,null]")
        with self.assertRaisesRegex(P.ProtocolError, "error element"):
            P.JSON.decode_request(b'[1,{"type":"SucceedTask"},{"error":"x"}]')
        r = P.JSON.decode_request(b'[1,{"type":"SucceedTask"},null]')
        self.assertEqual(r.msg, {"type": "SucceedTask", "end_date": ""})

    def test_missing_trailing_error_and_unknown_fields(self):
        r = P.MSGPACK.decode_response(P.MSGPACK.encode([3, {"type": "VariableResult", "key": "k", "value": "v",
                                                            "new_field": [1, 2]}]))
        self.assertEqual((r.id, r.msg, r.error), (3, {"type": "VariableResult", "key": "k", "value": "v"}, None))
        r = P.JSON.decode_response(b'[3,{"type":"OKResponse"}]')
        self.assertEqual(r.msg, {"type": "OKResponse"})

    def test_json_numbers_like_go(self):
        v = P.JSON.decode(b"[1, 1.0, 2.5, 1e3, -0.0, 9223372036854775807, 9223372036854775808, 1e400]"
                          .replace(b", 1e400", b""))
        self.assertEqual(v, [1, 1, 2.5, 1000, 0, 2 ** 63 - 1, 9223372036854775808.0])
        self.assertIsInstance(v[1], int)
        self.assertIsInstance(v[6], float)
        with self.assertRaises(P.ProtocolError):
            P.JSON.decode(b"[1e400]")

    def test_json_floats_like_go(self):
        # As Go's encoding/json writes float64s (checked against it).
        cases = [
            (0.25, "0.25"), (1.0, "1"), (-0.0, "-0"), (100.0, "100"), (1e21, "1e+21"),
            (1e20, "100000000000000000000"), (9.999999999999999e20, "999999999999999900000"),
            (1e-6, "0.000001"), (1e-7, "1e-7"), (2.5e-7, "2.5e-7"), (0.000001234, "0.000001234"),
            (123456789.125, "123456789.125"), (5e-324, "5e-324"),
            (1.7976931348623157e308, "1.7976931348623157e+308"), (1e100, "1e+100"), (1.5e300, "1.5e+300"),
            (-1.5e-10, "-1.5e-10"), (12345678901234567890.0, "12345678901234567000"), (0.1 + 0.2, "0.30000000000000004"),
        ]
        for f, want in cases:
            with self.subTest(f=f):
                self.assertEqual(P.JSON.encode(f).decode(), want)
        for bad in (float("nan"), float("inf")):
            with self.assertRaises(ValueError):
                P.JSON.encode(bad)

    def test_json_strings_like_go(self):
        s = "q\"b\\s\b\f\n\r\t\x01\x1f\x7f<>&\u00e9\u20ac\u2028\u2029\U0001F600"
        want = '"q\\"b\\\\s\\b\\f\\n\\r\\t\\u0001\\u001f\x7f<>&\u00e9\u20ac\\u2028\\u2029\U0001F600"'
        self.assertEqual(P.JSON.encode(s).decode("utf-8"), want)
        self.assertEqual(P.JSON.decode(P.JSON.encode(s)), s)
        self.assertEqual(P.JSON.encode(b"\x00\x01"), b'"AAE="')  # as Go writes []byte

    def test_message_layout(self):
        m = P.message("GetXCom", task_id="t", key="k")
        self.assertEqual(list(m), ["type", "key", "dag_id", "run_id", "task_id"])  # map_index omitted
        m = P.message("DeferTask", classpath="timedelta", next_method="resume", trigger_kwargs={"b": 1, "a": {"d": 1, "c": 2}})
        self.assertEqual(list(m), ["type", "classpath", "trigger_kwargs", "next_method"])
        self.assertEqual(list(m["trigger_kwargs"]), ["a", "b"])
        self.assertEqual(list(m["trigger_kwargs"]["a"]), ["c", "d"])
        with self.assertRaisesRegex(TypeError, "no field"):
            P.message("GetVariable", key="k", value="v")
        with self.assertRaises(ValueError):
            P.message("Nope")
        self.assertEqual(P.message("SetXCom", key="k", value=(1, {"b": 2, "a": 1}))["value"], [1, {"a": 1, "b": 2}])

    def test_parse_codec(self):
        self.assertIs(P.parse_codec(""), P.MSGPACK)
        self.assertIs(P.parse_codec(None), P.MSGPACK)
        self.assertIs(P.parse_codec("msgpack"), P.MSGPACK)
        self.assertIs(P.parse_codec("json"), P.JSON)
        with self.assertRaises(ValueError):
            P.parse_codec("xml")

    def test_rfc3339(self):
        import datetime as dt
        utc = dt.timezone.utc
        self.assertEqual(P.rfc3339(dt.datetime(2026, 11, 22, 8, 16, 2, 500000, tzinfo=utc)), "2026-11-22T08:16:02.5Z")
        self.assertEqual(P.rfc3339(dt.datetime(2026, 11, 22, 8, 16, 2)), "2026-11-22T08:16:02Z")
        plus2 = dt.timezone(dt.timedelta(hours=2))
        self.assertEqual(P.rfc3339(dt.datetime(2026, 11, 22, 10, 0, 0, 123, tzinfo=plus2)), "2026-11-22T08:00:00.000123Z")


if __name__ == "__main__":
    unittest.main()
