"""A small pure-Python msgpack encoder and decoder (standard library only).

It covers what the task protocol carries: nil, bool, integers of every width,
float32 (decoded) and float64, str, bin, array and map, plus the timestamp
extension (type -1), which decodes to an aware UTC ``datetime``. Any other
extension type is rejected with an :class:`UnpackError`.

The encoder chooses encodings the way github.com/vmihailenco/msgpack/v5 does
with compact integers (as the Go side of taskwire encodes), so that the same
value gives the same bytes in both languages:

- integers: the smallest encoding (positive fixint, uint8/16/32/64 for
  non-negative values; negative fixint, int8/16/32/64 for negative ones);
- floats: always float64;
- str: fixstr below 32 bytes, then str8, str16, str32;
- bin: bin8, bin16, bin32;
- arrays and maps: fix sizes below 16 entries, then 16- and 32-bit sizes.

Maps are written in the dict's own order (dicts keep insertion order); sort
them first for a canonical encoding.
"""

from __future__ import annotations

import datetime as _dt
import struct
from typing import Any, Dict, List, NoReturn, Optional

__all__ = ["packb", "unpackb", "PackError", "UnpackError", "MAX_DEPTH"]

# MAX_DEPTH bounds the nesting of encoded and decoded values, so a frame of
# nested arrays cannot exhaust the interpreter's stack (the recursion limit
# is 1000 frames by default).
MAX_DEPTH = 200

_Str = str  # for _Reader, whose method str hides the type

_EPOCH = _dt.datetime(1970, 1, 1, tzinfo=_dt.timezone.utc)

_pack_u16 = struct.Struct(">H").pack
_pack_u32 = struct.Struct(">I").pack
_pack_u64 = struct.Struct(">Q").pack
_pack_f64 = struct.Struct(">d").pack


class PackError(TypeError):
    """A value that msgpack (as this module writes it) cannot hold."""


class UnpackError(ValueError):
    """Bytes that are not a valid msgpack value."""


# ---------------------------------------------------------------- encoding


def packb(obj: Any) -> bytes:
    """Return the msgpack encoding of obj as bytes.

    obj may hold None, bool, int (-2**63 .. 2**64-1), float, str, bytes,
    bytearray, memoryview, list, tuple, dict with str keys and aware or naive
    (taken as UTC) datetime.datetime, encoded as a timestamp extension.
    """
    out = bytearray()
    _pack(obj, out, 0)
    return bytes(out)


def _pack(obj: Any, out: bytearray, depth: int) -> None:
    if depth > MAX_DEPTH:
        raise PackError("value nested deeper than %d" % MAX_DEPTH)
    if obj is None:
        out.append(0xC0)
    elif obj is True:
        out.append(0xC3)
    elif obj is False:
        out.append(0xC2)
    elif isinstance(obj, int):
        _pack_int(int(obj), out)
    elif isinstance(obj, float):
        out.append(0xCB)
        out += _pack_f64(obj)
    elif isinstance(obj, str):
        try:
            b = obj.encode("utf-8", "surrogateescape")
        except UnicodeEncodeError as e:
            raise PackError("string is not valid unicode: %s" % e) from None
        _pack_len(len(b), out, 0xA0, 32, 0xD9, 0xDA, 0xDB)
        out += b
    elif isinstance(obj, (bytes, bytearray, memoryview)):
        b = bytes(obj)
        _pack_len(len(b), out, None, 0, 0xC4, 0xC5, 0xC6)
        out += b
    elif isinstance(obj, dict):
        _pack_len(len(obj), out, 0x80, 16, None, 0xDE, 0xDF)
        for k, v in obj.items():
            if not isinstance(k, str):
                raise PackError("map key %r is %s, want a str" % (k, type(k).__name__))
            _pack(k, out, depth + 1)
            _pack(v, out, depth + 1)
    elif isinstance(obj, (list, tuple)):
        _pack_len(len(obj), out, 0x90, 16, None, 0xDC, 0xDD)
        for v in obj:
            _pack(v, out, depth + 1)
    elif isinstance(obj, _dt.datetime):
        _pack_timestamp(obj, out)
    else:
        raise PackError("cannot encode %s as msgpack" % type(obj).__name__)


def _pack_int(n: int, out: bytearray) -> None:
    if n >= 0:
        if n <= 0x7F:
            out.append(n)
        elif n <= 0xFF:
            out += bytes((0xCC, n))
        elif n <= 0xFFFF:
            out.append(0xCD)
            out += _pack_u16(n)
        elif n <= 0xFFFFFFFF:
            out.append(0xCE)
            out += _pack_u32(n)
        elif n <= 0xFFFFFFFFFFFFFFFF:
            out.append(0xCF)
            out += _pack_u64(n)
        else:
            raise PackError("integer %d does not fit 64 bits" % n)
    elif n >= -32:
        out.append(n & 0xFF)
    elif n >= -0x80:
        out += struct.pack(">Bb", 0xD0, n)
    elif n >= -0x8000:
        out += struct.pack(">Bh", 0xD1, n)
    elif n >= -0x80000000:
        out += struct.pack(">Bi", 0xD2, n)
    elif n >= -0x8000000000000000:
        out += struct.pack(">Bq", 0xD3, n)
    else:
        raise PackError("integer %d does not fit 64 bits" % n)


def _pack_len(n: int, out: bytearray, fix: Optional[int], fixmax: int, c8: Optional[int], c16: int, c32: int) -> None:
    if fix is not None and n < fixmax:
        out.append(fix | n)
    elif c8 is not None and n <= 0xFF:
        out += bytes((c8, n))
    elif n <= 0xFFFF:
        out.append(c16)
        out += _pack_u16(n)
    elif n <= 0xFFFFFFFF:
        out.append(c32)
        out += _pack_u32(n)
    else:
        raise PackError("length %d does not fit 32 bits" % n)


def _pack_timestamp(t: _dt.datetime, out: bytearray) -> None:
    if t.tzinfo is None:
        t = t.replace(tzinfo=_dt.timezone.utc)
    delta = t - _EPOCH
    sec = delta.days * 86400 + delta.seconds
    nsec = delta.microseconds * 1000
    if sec >> 34 == 0:
        if nsec == 0 and sec <= 0xFFFFFFFF:
            out += b"\xd6\xff" + _pack_u32(sec)  # timestamp 32
        else:
            out += b"\xd7\xff" + _pack_u64((nsec << 34) | sec)  # timestamp 64
    else:
        out += b"\xc7\x0c\xff" + _pack_u32(nsec) + struct.pack(">q", sec)  # timestamp 96


# ---------------------------------------------------------------- decoding


def unpackb(data: bytes) -> Any:
    """Decode one msgpack value that fills data exactly.

    Integers become int, float32 and float64 float, str str, bin bytes,
    arrays lists, maps dicts (in their encoded order; keys must be strings)
    and timestamps aware UTC datetimes (to the microsecond). Raises
    UnpackError on anything else: truncated input, trailing bytes, unknown
    extension types, non-string map keys, invalid codes, nesting deeper than
    MAX_DEPTH.
    """
    r = _Reader(bytes(data))
    v = r.value(0)
    if r.off != len(r.b):
        raise UnpackError("%d bytes after the value" % (len(r.b) - r.off))
    return v


class _Reader(object):
    __slots__ = ("b", "off")

    def __init__(self, b: bytes) -> None:
        self.b = b
        self.off = 0

    def fail(self, what: _Str) -> NoReturn:
        raise UnpackError("msgpack at byte %d: %s" % (self.off, what))

    def take(self, n: int) -> bytes:
        if n > len(self.b) - self.off:
            self.fail("unexpected end of data (want %d more bytes, have %d)" % (n, len(self.b) - self.off))
        s = self.b[self.off:self.off + n]
        self.off += n
        return s

    def uint(self, size: int) -> int:
        return int.from_bytes(self.take(size), "big")

    def length(self, size: int, per_item: int) -> int:
        n = self.uint(size)
        # Never allocate more than the remaining input can fill.
        if n * per_item > len(self.b) - self.off:
            self.fail("length %d exceeds the %d bytes left" % (n, len(self.b) - self.off))
        return n

    def value(self, depth: int) -> Any:
        if depth > MAX_DEPTH:
            self.fail("nested deeper than %d" % MAX_DEPTH)
        c = self.take(1)[0]
        if c <= 0x7F:
            return c
        if c >= 0xE0:
            return c - 0x100
        if 0x80 <= c <= 0x8F:
            return self.map(c & 0x0F, depth)
        if 0x90 <= c <= 0x9F:
            return self.array(c & 0x0F, depth)
        if 0xA0 <= c <= 0xBF:
            return self.str(c & 0x1F)
        if c == 0xC0:
            return None
        if c == 0xC2:
            return False
        if c == 0xC3:
            return True
        if 0xC4 <= c <= 0xC6:
            return bytes(self.take(self.length(1 << (c - 0xC4), 1)))
        if 0xC7 <= c <= 0xC9:
            return self.ext(self.length(1 << (c - 0xC7), 1))
        if c == 0xCA:
            return struct.unpack(">f", self.take(4))[0]
        if c == 0xCB:
            return struct.unpack(">d", self.take(8))[0]
        if 0xCC <= c <= 0xCF:
            return self.uint(1 << (c - 0xCC))
        if 0xD0 <= c <= 0xD3:
            return int.from_bytes(self.take(1 << (c - 0xD0)), "big", signed=True)
        if 0xD4 <= c <= 0xD8:
            return self.ext(1 << (c - 0xD4))
        if 0xD9 <= c <= 0xDB:
            return self.str(self.length(1 << (c - 0xD9), 1))
        if c in (0xDC, 0xDD):
            return self.array(self.length(2 << (c - 0xDC), 1), depth)
        if c in (0xDE, 0xDF):
            return self.map(self.length(2 << (c - 0xDE), 2), depth)
        self.off -= 1
        self.fail("invalid code 0x%02x" % c)

    def str(self, n: int) -> str:
        return self.take(n).decode("utf-8", "surrogateescape")

    def array(self, n: int, depth: int) -> List[Any]:
        if n > len(self.b) - self.off:
            self.fail("array of %d exceeds the %d bytes left" % (n, len(self.b) - self.off))
        a: List[Any] = []
        for _ in range(n):
            a.append(self.value(depth + 1))
        return a

    def map(self, n: int, depth: int) -> Dict[_Str, Any]:
        if 2 * n > len(self.b) - self.off:
            self.fail("map of %d exceeds the %d bytes left" % (n, len(self.b) - self.off))
        m: Dict[_Str, Any] = {}
        for _ in range(n):
            k = self.value(depth + 1)
            if not isinstance(k, str):
                self.fail("map key is %s, want a str" % type(k).__name__)
            m[k] = self.value(depth + 1)
        return m

    def ext(self, n: int) -> _dt.datetime:
        t = int.from_bytes(self.take(1), "big", signed=True)
        d = self.take(n)
        if t != -1:
            self.fail("unsupported extension type %d (only the timestamp, -1, is known)" % t)
        if n == 4:
            sec, nsec = int.from_bytes(d, "big"), 0
        elif n == 8:
            u = int.from_bytes(d, "big")
            sec, nsec = u & ((1 << 34) - 1), u >> 34
        elif n == 12:
            nsec = int.from_bytes(d[:4], "big")
            sec = int.from_bytes(d[4:], "big", signed=True)
        else:
            self.fail("timestamp of %d bytes, want 4, 8 or 12" % n)
        if nsec >= 1000000000:
            self.fail("timestamp with %d nanoseconds" % nsec)
        try:
            return _EPOCH + _dt.timedelta(seconds=sec, microseconds=nsec // 1000)
        except OverflowError:
            self.fail("timestamp %d out of range" % sec)
