"""The exceptions of the task SDK: how a task ends other than by returning,
and what requests to the worker raise."""

from __future__ import annotations

from typing import Any, Mapping, Optional

__all__ = ["TaskwireError", "APIError", "NotFound", "TooLarge", "WorkerGone", "TaskDeferred", "Skip", "Fail"]


class TaskwireError(Exception):
    """Base class of the SDK's exceptions."""


class APIError(TaskwireError):
    """An ErrorResponse from the worker to one request.

    ``error`` is its short machine name ("not_found", "forbidden",
    "bad_request", "too_large" (a value over a size limit the message
    names), "api_error", ...), ``detail`` the map the worker sent
    with it ("message" usually explains). Requests raise NotFound, a
    subclass, for "not_found", and TooLarge for "too_large".
    """

    def __init__(self, error: Optional[str], detail: Optional[Mapping[str, Any]] = None) -> None:
        self.error = error or ""
        self.detail = dict(detail or {})
        msg = self.detail.get("message")
        super().__init__("%s: %s" % (self.error, msg) if isinstance(msg, str) and msg else self.error)

    @property
    def code(self) -> str:
        """The same as ``error``."""
        return self.error

    @staticmethod
    def from_response(err: Mapping[str, Any]) -> APIError:
        """Return the APIError (NotFound for "not_found") of an ErrorResponse map."""
        code = str(err.get("error") or "")
        cls = {"not_found": NotFound, "too_large": TooLarge}.get(code, APIError)
        return cls(code, err.get("detail"))


class NotFound(APIError):
    """The variable, connection or XCom asked for does not exist."""


class TooLarge(APIError):
    """A value (an XCom, a variable, ...) or request over a size limit:
    ``limit`` is that limit in bytes when the executor named it (None
    otherwise), and the message always says it."""

    def __init__(self, error: Optional[str], detail: Optional[Mapping[str, Any]] = None) -> None:
        super().__init__(error, detail)
        raw = self.detail.get("limit")
        self.limit: Optional[int] = raw if isinstance(raw, int) and not isinstance(raw, bool) and raw > 0 else None
        msg = self.detail.get("message")
        text = msg if isinstance(msg, str) and msg else "too large"
        if self.limit is not None and str(self.limit) not in text:
            text += " (the limit is %d bytes)" % self.limit
        elif self.limit is None and "limit" not in text:
            text += " (the worker did not name the limit)"
        self.args = ("too_large: " + text,)


class WorkerGone(TaskwireError):
    """The connection to the worker was lost or broke the protocol."""


class TaskDeferred(BaseException):
    """Raised by Context.defer once the worker has accepted the deferral: the
    try is over and nothing the task does afterwards is reported. Do not
    catch it (it derives from BaseException, so ``except Exception`` lets it
    through)."""

    def __init__(self, trigger: str, method: str) -> None:
        super().__init__("task deferred: until %s fires, then %s" % (trigger, method))
        self.trigger = trigger
        self.method = method


class Skip(TaskwireError):
    """Raise to end the try as skipped, with a reason."""

    def __init__(self, reason: object = "") -> None:
        super().__init__(reason)
        self.reason = str(reason)


class Fail(TaskwireError):
    """Raise to fail the try without a retry, whatever tries remain. reason
    may be a string or an exception."""

    def __init__(self, reason: object = "task failed") -> None:
        super().__init__(reason)
        self.reason = str(reason) if reason is not None else "task failed"
