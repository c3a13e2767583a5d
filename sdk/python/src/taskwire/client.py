"""Requests to the worker over one comm connection."""

from __future__ import annotations

import socket
import threading
import time
from typing import Any, Mapping, Optional

from .errors import APIError, WorkerGone
from .protocol import Conn, Message, ProtocolError

__all__ = ["Client", "REQUEST_TIMEOUT_DEFAULT"]

# REQUEST_TIMEOUT_DEFAULT bounds a request to the worker, in seconds.
REQUEST_TIMEOUT_DEFAULT = 120.0


class Client(object):
    """Numbers requests from 1, sends them and waits for their answers.

    Calls are serialized (one request in flight at a time), so a Client may
    be used from several threads. An answer with another id (one to a
    request that timed out) is dropped.
    """

    def __init__(self, conn: Conn, timeout: float = REQUEST_TIMEOUT_DEFAULT) -> None:
        self.conn = conn
        self.timeout = timeout
        self._next = 1
        self._lock = threading.Lock()
        self._broken: Optional[BaseException] = None

    def next_id(self) -> int:
        return self._next

    def call(self, msg: Mapping[str, Any], timeout: Optional[float] = None) -> Optional[Message]:
        """Send msg and return the answer's msg (None for an empty answer).

        Raises APIError (NotFound for "not_found") for an ErrorResponse,
        TimeoutError after timeout seconds, WorkerGone when the connection
        is lost or the worker breaks the protocol, and ProtocolError when
        only this answer could not be decoded.
        """
        if timeout is None:
            timeout = self.timeout
        with self._lock:
            if self._broken is not None:
                raise WorkerGone("connection to the worker lost: %s" % self._broken)
            id = self._next
            self._next += 1
            try:
                self.conn.write_request(id, msg)
            except OSError as e:
                self._broken = e
                raise WorkerGone("send %s to the worker: %s" % (msg.get("type"), e)) from e
            deadline = time.monotonic() + timeout
            while True:
                try:
                    resp = self.conn.read_response(timeout=max(0.0, deadline - time.monotonic()))
                except socket.timeout:
                    raise TimeoutError("no answer from the worker to %s (request %d) within %gs"
                                       % (msg.get("type"), id, timeout)) from None
                except ProtocolError as e:
                    if e.id is None:
                        self._broken = e
                        raise WorkerGone("read from the worker: %s" % e) from e
                    if e.id != id:
                        continue  # a late answer to an abandoned request
                    raise ProtocolError("answer from the worker to %s: %s" % (msg.get("type"), e), e.id) from None
                except OSError as e:
                    self._broken = e
                    raise WorkerGone("read from the worker: %s" % e) from e
                if resp is None:
                    self._broken = EOFError("end of stream")
                    raise WorkerGone("connection to the worker closed while waiting for the answer to %s"
                                     % msg.get("type"))
                if resp.id == id:
                    break
        if resp.error is not None:
            raise APIError.from_response(resp.error)
        if resp.msg is not None and resp.msg.get("type") == "ErrorResponse":
            raise APIError.from_response(resp.msg)
        return resp.msg
