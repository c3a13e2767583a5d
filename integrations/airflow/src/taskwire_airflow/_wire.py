"""The fork server's wire format: a request (the caller's environment as
NUL-separated ``K=V`` bytes, its stdin, stdout and stderr as SCM_RIGHTS)
and the exit code back.

Standard library only, and little of it: ``taskwire_airflow.run`` imports this
for every task, before it hands the task to the fork server.
"""

from __future__ import annotations

import os
import socket
import struct

_HEADER = struct.Struct("!I")


def send_request(sock: socket.socket, env: dict[str, str], fds: list[int]) -> None:
    body = b"\0".join(os.fsencode(f"{k}={v}") for k, v in env.items())
    socket.send_fds(sock, [_HEADER.pack(len(body))], fds)
    sock.sendall(body)


def _recv_exact(sock: socket.socket, n: int) -> bytes:
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise EOFError("connection closed")
        buf += chunk
    return buf


def recv_request(sock: socket.socket) -> tuple[dict[str, str], list[int]]:
    head, fds, _flags, _addr = socket.recv_fds(sock, _HEADER.size, 3)
    if len(head) < _HEADER.size:
        head += _recv_exact(sock, _HEADER.size - len(head))
    (n,) = _HEADER.unpack(head)
    if n > 64 << 20:
        raise ValueError(f"request of {n} bytes")
    env = {}
    for item in _recv_exact(sock, n).split(b"\0") if n else ():
        k, sep, v = os.fsdecode(item).partition("=")
        if not sep:
            raise ValueError(f"environment item without '=': {k[:50]!r}")
        env[k] = v
    return env, list(fds)


def send_exit(sock: socket.socket, code: int) -> None:
    sock.sendall(_HEADER.pack(code & 0xFFFFFFFF))


def recv_exit(sock: socket.socket) -> int:
    (code,) = _HEADER.unpack(_recv_exact(sock, _HEADER.size))
    return code - (1 << 32) if code >= 1 << 31 else code
