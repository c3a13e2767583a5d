"""The task protocol: framing, the two body codecs and the message shapes.

This is the Python side of the Go package github.com/taskwire/taskwire/protocol
(protocol/frame.go, codec.go, message.go), byte for byte: the golden frames in
protocol/testdata decode and encode again to the same bytes.

Framing: every frame is a 4-byte big-endian body length, then the body. The
length is checked against a maximum (MAX_FRAME_SIZE_DEFAULT) before anything
is allocated.

Bodies: a request (task -> worker) is the array ``[id, msg]``, a response
(worker -> task) ``[id, msg, error]`` (a missing trailing error is accepted).
``msg`` is a map whose "type" field names the message; ``error`` is None or an
ErrorResponse map. Bodies are msgpack (the default) or JSON, fixed per
connection.

Messages are plain dicts. :func:`message` builds one in the wire's field
order, leaving out empty optional fields and sorting the keys of values typed
"any" (XCom values, kwargs, params, extras) as the Go side does, so the same
message gives the same bytes in Go and Python. Decoded messages are checked
against the same shapes and filled in: a missing field holds its zero value.
"""

from __future__ import annotations

import base64
import datetime as _dt
import json
import math
import re
import select
import socket
import struct
import threading
import time
from typing import Any, Callable, Dict, List, Mapping, Optional, Protocol, Tuple, Union

from . import _msgpack

Message = Dict[str, Any]
"""A message: a dict whose "type" names it, its fields in wire order."""


class Reader(Protocol):
    """What read_frame reads from: a binary stream."""

    def read(self, n: int, /) -> bytes: ...


class Writer(Protocol):
    """What write_frame writes to: a binary stream."""

    def write(self, b: bytes, /) -> Any: ...

__all__ = [
    "MAX_FRAME_SIZE_DEFAULT", "ProtocolError", "FrameTooLarge", "Codec", "MSGPACK", "JSON",
    "parse_codec", "read_frame", "write_frame", "frame", "message", "normalize", "validate",
    "Request", "Response", "Conn", "MESSAGE_TYPES", "rfc3339",
    "ENV_COMM_SECRET", "comm_secret", "auth_frame", "log_header",
]

# MAX_FRAME_SIZE_DEFAULT is the largest frame body accepted, in bytes (Go's
# protocol.MaxFrameSizeDefault).
MAX_FRAME_SIZE_DEFAULT = 4 << 20


class ProtocolError(Exception):
    """A frame that cannot be read or decoded (Go's ErrMalformedFrame and
    friends). ``id`` is the frame's id when the frame was read whole and its
    id is known, else None: the stream may still be usable then."""

    def __init__(self, message: str, id: Optional[int] = None) -> None:
        super().__init__(message)
        self.id = id


class FrameTooLarge(ProtocolError):
    """A frame longer than the maximum; the stream is out of step."""


# ------------------------------------------------------------ the secret

# ENV_COMM_SECRET gives the runtime the secret it presents first on every
# comm and logs connection (Go's protocol.EnvCommSecret): the worker takes
# no connection that does not, so another local process that connects
# first gets nothing. It is in the environment only, never in argv.
ENV_COMM_SECRET = "TASKWIRE_COMM_SECRET"


def comm_secret() -> str:
    """The runtime's secret, from TASKWIRE_COMM_SECRET ("" when unset)."""
    import os
    return os.environ.get(ENV_COMM_SECRET, "")


def auth_frame(secret: str) -> bytes:
    """The first frame of every comm connection, length header included:
    ``{"type":"Auth","secret":…}`` in JSON whatever the codec (Go's
    protocol.AuthFrame, golden vector protocol/testdata/auth_frame.bin)."""
    return frame(json.dumps({"type": "Auth", "secret": secret}, separators=(",", ":")).encode("utf-8"))


def log_header(secret: str, ti_id: Optional[str] = None, try_number: Optional[int] = None,
               mux: bool = False) -> bytes:
    """The first line of every log connection, newline included (Go's
    protocol.LogStreamHeader): ``{"secret":…}`` for a cold runtime, with
    ti_id and try_number for a warm try's own stream, with mux for a warm
    process's multiplexed one (golden vectors protocol/testdata/log_stream_*)."""
    h: Dict[str, Any] = {}
    if ti_id:
        h["ti_id"] = ti_id
    if try_number:
        h["try_number"] = try_number
    if mux:
        h["mux"] = True
    h["secret"] = secret
    return (json.dumps(h, ensure_ascii=False, separators=(",", ":")) + "\n").encode("utf-8")


# ------------------------------------------------------------------ framing


def frame(body: bytes, max_size: Optional[int] = MAX_FRAME_SIZE_DEFAULT) -> bytes:
    """Return body with its 4-byte big-endian length in front."""
    if max_size and len(body) > max_size:
        raise FrameTooLarge("frame too large: %d bytes, the limit is %d" % (len(body), max_size))
    if len(body) > 0xFFFFFFFF:
        raise FrameTooLarge("frame too large: %d bytes do not fit a frame header" % len(body))
    return struct.pack(">I", len(body)) + bytes(body)


def write_frame(stream: Writer, body: bytes, max_size: Optional[int] = MAX_FRAME_SIZE_DEFAULT) -> None:
    """Write body as one frame to a file-like object with write()."""
    stream.write(frame(body, max_size))


def read_frame(stream: Reader, max_size: Optional[int] = MAX_FRAME_SIZE_DEFAULT) -> Optional[bytes]:
    """Read one frame from a file-like object with read() and return its body.

    Returns None when the stream ends cleanly before a frame; raises
    ProtocolError when it ends inside one and FrameTooLarge (before reading
    or allocating the body) when the header is above max_size.
    """
    hdr = _read_exact(stream, 4, allow_eof=True)
    if hdr is None:
        return None
    n = struct.unpack(">I", hdr)[0]
    _check_size(n, max_size)
    return _read_exact(stream, n, allow_eof=False)


def _check_size(n: int, max_size: Optional[int]) -> None:
    if max_size is None or max_size <= 0:
        max_size = MAX_FRAME_SIZE_DEFAULT
    if n > max_size:
        raise FrameTooLarge("frame too large: %d bytes, the limit is %d" % (n, max_size))


def _read_exact(stream: Reader, n: int, allow_eof: bool) -> Optional[bytes]:
    buf = bytearray()
    while len(buf) < n:
        chunk = stream.read(n - len(buf))
        if not chunk:
            if allow_eof and not buf:
                return None
            raise ProtocolError("unexpected end of stream inside a frame (%d of %d bytes)" % (len(buf), n))
        buf += chunk
    return bytes(buf)


# ------------------------------------------------------------------- codecs


class Codec(object):
    """A body codec: MSGPACK or JSON. encode/decode convert between bodies
    (bytes) and JSON-like Python values, keeping map order."""

    name = ""

    def encode(self, value: Any) -> bytes:
        raise NotImplementedError

    def decode(self, body: bytes) -> Any:
        raise NotImplementedError

    def __repr__(self) -> str:
        return "<taskwire codec %s>" % self.name

    def __str__(self) -> str:
        return self.name

    # Request and response bodies.

    def encode_request(self, id: int, msg: Optional[Mapping[str, Any]]) -> bytes:
        """Encode the request body [id, msg]."""
        if msg is None:
            raise ValueError("encode request %d: nil message" % id)
        return self.encode([id, msg])

    def encode_response(self, id: int, msg: Optional[Mapping[str, Any]],
                        error: Optional[Mapping[str, Any]] = None) -> bytes:
        """Encode the response body [id, msg, error]; msg and error may be None."""
        err: Optional[Message] = None
        if error is not None:
            e = dict(error)
            e["type"] = "ErrorResponse"
            err = normalize(e)
        return self.encode([id, msg, err])

    def decode_request(self, body: bytes) -> Request:
        """Decode a request body into a Request, checking the message."""
        arr = self._decode_array(body)
        id = _frame_id(arr[0])
        if len(arr) == 3 and arr[2] is not None:
            raise ProtocolError("malformed frame: request %d has an error element" % id, id)
        if arr[1] is None:
            raise ProtocolError("malformed frame: request %d: msg is nil" % id, id)
        return Request(id, _decode_message(arr[1], id))

    def decode_response(self, body: bytes) -> Response:
        """Decode a response body into a Response, checking its parts."""
        arr = self._decode_array(body)
        id = _frame_id(arr[0])
        msg: Optional[Message] = None
        if arr[1] is not None:
            msg = _decode_message(arr[1], id)
        err: Optional[Message] = None
        if len(arr) == 3 and arr[2] is not None:
            e = arr[2]
            if not isinstance(e, dict):
                raise ProtocolError("malformed frame: response %d: error is %s, want a map or nil" % (id, _kind(e)), id)
            t = e.get("type")
            if t is not None and t != "ErrorResponse":
                raise ProtocolError("malformed frame: response %d: error has type %r, want ErrorResponse" % (id, t), id)
            e = dict(e)
            e["type"] = "ErrorResponse"
            err = _decode_message(e, id)
        return Response(id, msg, err)

    def _decode_array(self, body: bytes) -> List[Any]:
        v = self.decode(body)
        if not isinstance(v, list):
            raise ProtocolError("malformed frame: body is %s, want an array" % _kind(v))
        if not 2 <= len(v) <= 3:
            raise ProtocolError("malformed frame: body has %d elements, want 2 or 3" % len(v))
        return v


class _MsgpackCodec(Codec):
    name = "msgpack"

    def encode(self, value: Any) -> bytes:
        try:
            return _msgpack.packb(value)
        except _msgpack.PackError as e:
            raise TypeError("msgpack: %s" % e) from None

    def decode(self, body: bytes) -> Any:
        try:
            return _msgpack.unpackb(body)
        except _msgpack.UnpackError as e:
            raise ProtocolError("malformed frame: %s" % e) from None


class _JSONCodec(Codec):
    name = "json"

    def encode(self, value: Any) -> bytes:
        out: List[str] = []
        _json_encode(value, out, 0)
        return "".join(out).encode("utf-8")

    def decode(self, body: bytes) -> Any:
        try:
            text = bytes(body).decode("utf-8")
        except UnicodeDecodeError as e:
            raise ProtocolError("malformed frame: json: %s" % e) from None
        try:
            return json.loads(text, parse_int=_json_int, parse_float=_json_float, parse_constant=_json_constant)
        except (ValueError, RecursionError) as e:
            raise ProtocolError("malformed frame: json: %s" % e) from None


MSGPACK = _MsgpackCodec()
JSON = _JSONCodec()


def parse_codec(name: Union[Codec, str, None]) -> Codec:
    """Return the codec named "msgpack" or "json"; "" or None mean msgpack."""
    if isinstance(name, Codec):
        return name
    if name in ("", None, "msgpack"):
        return MSGPACK
    if name == "json":
        return JSON
    raise ValueError("unknown codec %r: want msgpack or json" % (name,))


_INT64_MIN, _INT64_MAX = -(1 << 63), (1 << 63) - 1


def _json_int(s: str) -> Union[int, float]:
    n = int(s)
    if _INT64_MIN <= n <= _INT64_MAX:
        return n
    return float(s)  # as Go does for integers beyond int64


def _json_float(s: str) -> Union[int, float]:
    # JSON does not tell 1.0 from 1: an integral value is an integer (as the
    # Go codec decodes it).
    f = float(s)
    if math.isfinite(f) and f == math.floor(f) and -(2.0 ** 63) <= f < 2.0 ** 63:
        return int(f)
    if not math.isfinite(f):
        raise ValueError("number %s out of range" % s)
    return f


def _json_constant(s: str) -> Any:
    raise ValueError("invalid JSON constant %s" % s)


_SURROGATE = re.compile("[\ud800-\udfff]")


def _json_str(s: str) -> str:
    # As Go's encoding/json with SetEscapeHTML(false): raw UTF-8, the usual
    # short escapes, \u00XX for other controls, and U+2028/U+2029 escaped.
    out = json.dumps(s, ensure_ascii=False)
    if "\u2028" in out or "\u2029" in out:
        out = out.replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")
    if _SURROGATE.search(out):
        out = _SURROGATE.sub(lambda m: "\\ufffd", out)
    return out


def _go_float(f: float) -> str:
    """Format f as Go's encoding/json writes a float64."""
    if not math.isfinite(f):
        raise ValueError("json: unsupported value: %r" % f)
    if f == 0:
        return "-0" if math.copysign(1.0, f) < 0 else "0"
    r = repr(f)  # the shortest digits that read back as f
    neg = r.startswith("-")
    if neg:
        r = r[1:]
    mant, _, exps = r.partition("e")
    exp = int(exps) if exps else 0
    ip, _, fp = mant.partition(".")
    digits = ip + fp
    point = len(ip) + exp  # digits before the decimal point
    stripped = digits.lstrip("0")
    point -= len(digits) - len(stripped)
    digits = stripped.rstrip("0") or "0"
    a = abs(f)
    if a < 1e-6 or a >= 1e21:
        e = point - 1
        s = digits[0] + ("." + digits[1:] if len(digits) > 1 else "")
        s += "e%s%02d" % ("-" if e < 0 else "+", abs(e))
        if s[-4:-1] == "e-0":
            s = s[:-2] + s[-1]
    elif point <= 0:
        s = "0." + "0" * (-point) + digits
    elif point >= len(digits):
        s = digits + "0" * (point - len(digits))
    else:
        s = digits[:point] + "." + digits[point:]
    return "-" + s if neg else s


def _json_encode(v: Any, out: List[str], depth: int) -> None:
    if depth > _msgpack.MAX_DEPTH:
        raise TypeError("json: value nested deeper than %d" % _msgpack.MAX_DEPTH)
    if v is None:
        out.append("null")
    elif v is True:
        out.append("true")
    elif v is False:
        out.append("false")
    elif isinstance(v, int):
        out.append(str(int(v)))
    elif isinstance(v, float):
        out.append(_go_float(v))
    elif isinstance(v, str):
        out.append(_json_str(v))
    elif isinstance(v, dict):
        out.append("{")
        first = True
        for k, e in v.items():
            if not isinstance(k, str):
                raise TypeError("json: map key %r is %s, want a str" % (k, type(k).__name__))
            if not first:
                out.append(",")
            first = False
            out.append(_json_str(k))
            out.append(":")
            _json_encode(e, out, depth + 1)
        out.append("}")
    elif isinstance(v, (list, tuple)):
        out.append("[")
        for i, e in enumerate(v):
            if i:
                out.append(",")
            _json_encode(e, out, depth + 1)
        out.append("]")
    elif isinstance(v, (bytes, bytearray, memoryview)):
        out.append('"' + base64.b64encode(bytes(v)).decode("ascii") + '"')  # as Go writes []byte
    elif isinstance(v, _dt.datetime):
        out.append(_json_str(rfc3339(v)))
    else:
        raise TypeError("cannot encode %s as JSON" % type(v).__name__)


def rfc3339(t: Optional[_dt.datetime] = None) -> str:
    """Format an aware datetime (naive means UTC; None means now) in UTC as Go's
    time.RFC3339Nano does: "2026-11-22T08:15:30.123456Z"."""
    if t is None:
        t = _dt.datetime.now(_dt.timezone.utc)
    elif t.tzinfo is None:
        t = t.replace(tzinfo=_dt.timezone.utc)
    t = t.astimezone(_dt.timezone.utc)
    s = t.strftime("%Y-%m-%dT%H:%M:%S")
    if t.microsecond:
        s += ("." + "%06d" % t.microsecond).rstrip("0")
    return s + "Z"


# ----------------------------------------------------------------- messages

# Field kinds: "str", "int", "intptr" (an int or None, omitted when None),
# "any" (a JSON-like value), "map" (a dict of JSON-like values), or a nested
# struct (a tuple of fields). A field is (name, kind, omitempty).

# A struct's fields: (name, kind, omitempty); kind is a str or a nested struct.
Spec = Tuple[Tuple[str, Any, bool], ...]

TASK_INSTANCE: Spec = (
    ("id", "str", False),
    ("dag_id", "str", False),
    ("task_id", "str", False),
    ("run_id", "str", False),
    ("map_index", "int", False),
    ("try_number", "int", False),
)

RUN_CONTEXT: Spec = (
    ("max_tries", "int", False),
    ("queue", "str", False),
    ("entrypoint", "str", False),
    ("params", "map", True),
    # The DAG run (dag_id, run_id, logical_date, run_type, conf); absent
    # for a task submitted alone.
    ("dag_run", "map", True),
)

_T = ("type", "str", False)

# MESSAGE_TYPES maps each message type to its fields, in wire order
# (protocol/message.go).
MESSAGE_TYPES: Dict[str, Spec] = {
    "StartupDetails": (_T, ("ti", TASK_INSTANCE, False), ("ti_context", RUN_CONTEXT, False),
                       ("next_method", "str", True), ("next_kwargs", "map", True), ("start_date", "str", False)),
    "ConnectionResult": (_T, ("conn_id", "str", False), ("conn_type", "str", False), ("host", "str", True),
                         ("schema", "str", True), ("login", "str", True), ("password", "str", True),
                         ("port", "int", True), ("extra", "map", True)),
    "VariableResult": (_T, ("key", "str", False), ("value", "str", False)),
    "XComResult": (_T, ("key", "str", False), ("value", "any", False)),
    "OKResponse": (_T,),
    "ErrorResponse": (_T, ("error", "str", False), ("detail", "map", True)),
    "GetConnection": (_T, ("conn_id", "str", False)),
    "GetVariable": (_T, ("key", "str", False)),
    "PutVariable": (_T, ("key", "str", False), ("value", "str", False), ("description", "str", True)),
    "GetXCom": (_T, ("key", "str", False), ("dag_id", "str", False), ("run_id", "str", False),
                ("task_id", "str", False), ("map_index", "intptr", True)),
    "SetXCom": (_T, ("key", "str", False), ("value", "any", False), ("dag_id", "str", False),
                ("run_id", "str", False), ("task_id", "str", False), ("map_index", "intptr", True)),
    "DeleteXCom": (_T, ("key", "str", False), ("dag_id", "str", False), ("run_id", "str", False),
                   ("task_id", "str", False), ("map_index", "intptr", True)),
    "DeferTask": (_T, ("classpath", "str", False), ("trigger_kwargs", "map", True), ("trigger_timeout", "str", True),
                  ("next_method", "str", False), ("next_kwargs", "map", True)),
    "RetryTask": (_T, ("end_date", "str", True), ("reason", "str", True)),
    "SucceedTask": (_T, ("end_date", "str", True)),
    "TaskState": (_T, ("state", "str", False), ("end_date", "str", True), ("reason", "str", True)),
    "MaskSecret": (_T, ("value", "str", False), ("name", "str", True)),
}

_ZERO: Dict[str, Any] = {"str": "", "int": 0, "intptr": None, "any": None, "map": None}


def message(type: str, **fields: Any) -> Message:
    """Build a message of type from keyword fields, in wire order.

    Unknown fields raise TypeError; empty optional fields are left out; the
    keys of maps in values typed "any" are sorted. Values must be JSON-like:
    None, bool, int, float, str, bytes, list/tuple, dict with str keys.
    """
    if type not in MESSAGE_TYPES:
        raise ValueError("unknown message type %r" % (type,))
    fields["type"] = type
    return normalize(fields)


def normalize(msg: Mapping[str, Any]) -> Message:
    """Return msg (a dict with a known "type") laid out as the wire has it:
    fields in struct order, zero values for missing ones, empty optional
    fields left out, keys of "any" values sorted. Unknown fields raise
    TypeError."""
    t = msg.get("type")
    spec = MESSAGE_TYPES.get(t) if isinstance(t, str) else None
    if spec is None or not isinstance(t, str):
        raise ValueError("unknown message type %r" % (t,))
    return _layout(spec, msg, t, strict=True)


def _layout(spec: Spec, src: Mapping[str, Any], path: str, strict: bool) -> Message:
    known = set()
    out: Message = {}
    for name, kind, omitempty in spec:
        known.add(name)
        v = src.get(name)
        if isinstance(kind, tuple):
            v = _layout(kind, v or {}, path + "." + name, strict)
        elif kind == "str":
            v = "" if v is None else v
            if omitempty and v == "":
                continue
        elif kind == "int":
            v = 0 if v is None else v
            if omitempty and v == 0:
                continue
        elif kind == "intptr":
            if v is None:
                continue
        elif kind == "map":
            if not v:
                if omitempty:
                    continue
                v = None
            else:
                v = sort_keys(v)
        else:  # any
            v = sort_keys(v)
        out[name] = v
    if strict:
        extra = [k for k in src if k not in known]
        if extra:
            raise TypeError("%s has no field %s" % (path, ", ".join(sorted(extra))))
    return out


def sort_keys(v: Any) -> Any:
    """Return v with the keys of every map in it sorted (Go's order for
    maps), and tuples as lists."""
    if isinstance(v, dict):
        for k in v:
            if not isinstance(k, str):
                raise TypeError("map key %r is %s, want a str" % (k, type(k).__name__))
        return {k: sort_keys(v[k]) for k in sorted(v)}
    if isinstance(v, (list, tuple)):
        return [sort_keys(e) for e in v]
    return v


def _kind(v: Any) -> str:
    if v is None:
        return "nil"
    if isinstance(v, bool):
        return "a bool"
    if isinstance(v, int):
        return "an integer"
    if isinstance(v, float):
        return "a float"
    if isinstance(v, str):
        return "a string"
    if isinstance(v, bytes):
        return "binary"
    if isinstance(v, list):
        return "an array"
    if isinstance(v, dict):
        return "a map"
    return type(v).__name__


def _frame_id(v: Any) -> int:
    if isinstance(v, bool) or not isinstance(v, int) or not _INT64_MIN <= v <= _INT64_MAX:
        raise ProtocolError("malformed frame: id is %s, want an integer" % _kind(v))
    return v


def validate(msg: Any, id: Optional[int] = None) -> Message:
    """Check a decoded msg against its type's shape and return it laid out
    with zero values for missing fields (unknown fields are dropped, as newer
    peers may add fields). Raises ProtocolError."""
    return _decode_message(msg, id)


def _decode_message(v: Any, id: Optional[int]) -> Message:
    if not isinstance(v, dict):
        raise ProtocolError("malformed frame: msg is %s, want a map" % _kind(v), id)
    if "type" not in v:
        raise ProtocolError("malformed frame: msg has no type", id)
    t = v["type"]
    if not isinstance(t, str):
        raise ProtocolError("malformed frame: msg type is %s, want a string" % _kind(t), id)
    spec = MESSAGE_TYPES.get(t)
    if spec is None:
        raise ProtocolError("unknown message type %r" % t, id)
    return _check(spec, v, t, id)


def _check(spec: Spec, src: Mapping[str, Any], path: str, id: Optional[int]) -> Message:
    out: Message = {}
    for name, kind, _ in spec:
        v = src.get(name)
        p = path + "." + name
        if isinstance(kind, tuple):
            if v is not None and not isinstance(v, dict):
                raise ProtocolError("malformed frame: %s is %s, want a map" % (p, _kind(v)), id)
            v = _check(kind, v or {}, p, id)
        elif v is None:
            v = _ZERO[kind]
        elif kind == "str":
            if not isinstance(v, str):
                raise ProtocolError("malformed frame: %s is %s, want a string" % (p, _kind(v)), id)
        elif kind in ("int", "intptr"):
            if isinstance(v, bool) or not isinstance(v, int) or not _INT64_MIN <= v <= _INT64_MAX:
                raise ProtocolError("malformed frame: %s is %s, want an integer" % (p, _kind(v)), id)
        elif kind == "map":
            if not isinstance(v, dict):
                raise ProtocolError("malformed frame: %s is %s, want a map" % (p, _kind(v)), id)
        out[name] = v
    return out


class Request(object):
    """A decoded request body: [id, msg]."""

    __slots__ = ("id", "msg")

    def __init__(self, id: int, msg: Message) -> None:
        self.id = id
        self.msg = msg

    def __repr__(self) -> str:
        return "Request(%r, %r)" % (self.id, self.msg)


class Response(object):
    """A decoded response body: [id, msg, error]; msg and error may be None."""

    __slots__ = ("id", "msg", "error")

    def __init__(self, id: int, msg: Optional[Message], error: Optional[Message] = None) -> None:
        self.id = id
        self.msg = msg
        self.error = error

    def __repr__(self) -> str:
        return "Response(%r, %r, %r)" % (self.id, self.msg, self.error)


# --------------------------------------------------------------- connection


class Conn(object):
    """Frames of one codec on a connected socket.

    Reads keep a partial frame across a timeout, so a read that times out
    can be tried again. Writes are serialized and each frame goes out whole.
    A read that fails on the stream (end of stream, FrameTooLarge, a socket
    error) leaves the read side unusable; one that fails only to decode a
    body (ProtocolError with an id) consumed the whole frame.
    """

    def __init__(self, sock: socket.socket, codec: Union[Codec, str, None] = MSGPACK,
                 max_frame: Optional[int] = MAX_FRAME_SIZE_DEFAULT) -> None:
        self.sock = sock
        self.codec = parse_codec(codec)
        self.max_frame = max_frame if max_frame and max_frame > 0 else MAX_FRAME_SIZE_DEFAULT
        self._buf = bytearray()
        self._rlock = threading.Lock()
        self._wlock = threading.Lock()

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass

    def write_body(self, body: bytes) -> None:
        data = frame(body, self.max_frame)
        with self._wlock:
            self.sock.sendall(data)

    def write_request(self, id: int, msg: Mapping[str, Any]) -> None:
        self.write_body(self.codec.encode_request(id, msg))

    def write_response(self, id: int, msg: Optional[Mapping[str, Any]],
                       error: Optional[Mapping[str, Any]] = None) -> None:
        self.write_body(self.codec.encode_response(id, msg, error))

    def read_body(self, timeout: Optional[float] = None) -> Optional[bytes]:
        """Read one frame's body. Returns None at a clean end of stream.
        Raises socket.timeout (TimeoutError) after timeout seconds (None:
        no limit), keeping what was read for the next call."""
        with self._rlock:
            deadline = None if timeout is None else time.monotonic() + timeout
            while True:
                if len(self._buf) >= 4:
                    n = struct.unpack(">I", bytes(self._buf[:4]))[0]
                    _check_size(n, self.max_frame)
                    if len(self._buf) >= 4 + n:
                        body = bytes(self._buf[4:4 + n])
                        del self._buf[:4 + n]
                        return body
                    want = 4 + n - len(self._buf)
                else:
                    want = 4 - len(self._buf)
                if deadline is not None:
                    # Wait with select, not the socket's timeout: a timeout
                    # set on the socket would also bound the writers'
                    # sendall on other threads, which could then give up
                    # half way through a frame.
                    left = deadline - time.monotonic()
                    if left <= 0 or not select.select([self.sock], [], [], left)[0]:
                        raise socket.timeout("timed out waiting for the worker")
                chunk = self.sock.recv(min(max(want, 4096), 1 << 20))
                if not chunk:
                    if not self._buf:
                        return None
                    raise ProtocolError("unexpected end of stream inside a frame")
                self._buf += chunk

    def read_request(self, timeout: Optional[float] = None) -> Optional[Request]:
        body = self.read_body(timeout)
        return None if body is None else self.codec.decode_request(body)

    def read_response(self, timeout: Optional[float] = None) -> Optional[Response]:
        body = self.read_body(timeout)
        return None if body is None else self.codec.decode_response(body)
