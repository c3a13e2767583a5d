"""The running task try, as a task function sees it."""

from __future__ import annotations

import asyncio
import datetime as _dt
import logging
import numbers
import re
import threading
from typing import TYPE_CHECKING, Any, Dict, List, Mapping, NamedTuple, NoReturn, Optional, Union

from .errors import NotFound, TaskDeferred, WorkerGone
from .protocol import Message, message

if TYPE_CHECKING:
    from .client import Client

__all__ = ["Context", "TaskInstance", "RunContext", "Connection", "FAIL_METHOD", "go_duration"]

# FAIL_METHOD is the next_method with which the executor resumes a task whose
# trigger failed, ended without an event or passed its timeout (Airflow's
# "__fail__"); next_kwargs["error"] says why. It runs no task code and cannot
# be registered or deferred to.
FAIL_METHOD = "__fail__"


class TaskInstance(NamedTuple):
    """The identity of the task try a process runs."""

    id: str
    dag_id: str
    task_id: str
    run_id: str
    map_index: int
    try_number: int


class RunContext(NamedTuple):
    """What the executor tells a task about its run."""

    max_tries: int
    queue: str
    entrypoint: str
    params: Dict[str, Any]


_MISSING = object()


class Connection(object):
    """A connection (ConnectionResult). Fields are attributes and also keys:
    ``conn.host`` or ``conn["host"]``. The worker masks its password in the
    task's logs."""

    FIELDS = ("conn_id", "conn_type", "host", "port", "login", "password", "schema", "extra")
    __slots__ = FIELDS

    def __init__(self, conn_id: str = "", conn_type: str = "", host: str = "", port: int = 0, login: str = "",
                 password: str = "", schema: str = "", extra: Optional[Mapping[str, Any]] = None) -> None:
        self.conn_id = conn_id
        self.conn_type = conn_type
        self.host = host
        self.port = port
        self.login = login
        self.password = password
        self.schema = schema
        self.extra = dict(extra or {})

    @classmethod
    def from_message(cls, m: Mapping[str, Any]) -> Connection:
        kw: Dict[str, Any] = {f: m.get(f) for f in cls.FIELDS if m.get(f) is not None}
        return cls(**kw)

    def to_dict(self) -> Dict[str, Any]:
        return {f: getattr(self, f) for f in self.FIELDS}

    def __getitem__(self, key: str) -> Any:
        if key not in self.FIELDS:
            raise KeyError(key)
        return getattr(self, key)

    def get(self, key: str, default: Any = None) -> Any:
        return getattr(self, key, default) if key in self.FIELDS else default

    def keys(self) -> List[str]:
        return list(self.FIELDS)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Connection) and self.to_dict() == other.to_dict()

    def __repr__(self) -> str:
        d = self.to_dict()
        if d["password"]:
            d["password"] = "***"
        return "Connection(%s)" % ", ".join("%s=%r" % kv for kv in d.items())


class Context(object):
    """The running task try: its identity, params and resume state, its
    logger, and requests to the worker (variables, connections, XComs,
    masking, deferral). Request methods may be called from several threads;
    they raise APIError (NotFound for "not_found") when the worker answers
    with an error."""

    def __init__(self, startup: Mapping[str, Any], client: Client, logger: Optional[logging.Logger] = None) -> None:
        self.startup = startup
        self._client = client
        self._lock = threading.Lock()
        self._deferred = False
        #: The DeferTask message the worker accepted, once the task deferred.
        self.defer_message: Optional[Message] = None
        ti = startup["ti"]
        self.ti = TaskInstance(ti["id"], ti["dag_id"], ti["task_id"], ti["run_id"], ti["map_index"], ti["try_number"])
        rc = startup["ti_context"]
        self.params = dict(rc.get("params") or {})
        self.run_context = RunContext(rc["max_tries"], rc["queue"], rc["entrypoint"], self.params)
        #: The DAG run (dag_id, run_id, logical_date, run_type, conf), or
        #: None for a task submitted alone.
        self.dag_run = dict(rc["dag_run"]) if rc.get("dag_run") else None
        #: The DAG run's conf ({} when none).
        self.conf = dict((self.dag_run or {}).get("conf") or {})
        #: The method the task resumes at after a deferral: "" on a first run.
        self.next_method: str = startup.get("next_method") or ""
        #: The kwargs for next_method, with the trigger's event under "event".
        self.next_kwargs = dict(startup.get("next_kwargs") or {})
        #: When the try started, an RFC 3339 string.
        self.start_date: str = startup.get("start_date") or ""
        #: The task's logger (logging.getLogger("task")), shipped to the task's log.
        self.log = logger or logging.getLogger("task")
        # Set by a warm runtime when the worker cancels the try.
        self._cancel_event: Optional[threading.Event] = None

    @property
    def event(self) -> Any:
        """The payload of the trigger event the task resumed with
        (next_kwargs["event"]): None on a first run or when the trigger sent
        none. Numbers pass through JSON on their way: an integer may arrive
        as an int or a float."""
        return self.next_kwargs.get("event")

    @property
    def task_id(self) -> str:
        return self.ti.task_id

    @property
    def cancelled(self) -> bool:
        """Whether the worker cancelled the try (warm mode: timeout, kill or
        shutdown). A plain def task of a warm runtime should return soon
        after; an async def task is cancelled at its next await instead. In
        cold mode the worker ends the process, and this stays False."""
        e = self._cancel_event
        return e is not None and e.is_set()

    @property
    def deferred(self) -> bool:
        """Whether the worker accepted a deferral of this try."""
        with self._lock:
            return self._deferred

    def _call(self, type: str, **fields: Any) -> Optional[Message]:
        return self._client.call(message(type, **fields))

    def _ok(self, type: str, **fields: Any) -> None:
        m = self._call(type, **fields)
        if m is not None and m.get("type") != "OKResponse":
            raise _unexpected(type, m)

    # ----------------------------------------------------------- variables

    def variable(self, key: str, default: Any = _MISSING) -> Any:
        """Return the value of the variable key. Raises NotFound when there is
        none, unless default is given."""
        try:
            m = self._call("GetVariable", key=key)
        except NotFound:
            if default is _MISSING:
                raise
            return default
        if m is None or m.get("type") != "VariableResult":
            raise _unexpected("GetVariable", m)
        return m["value"]

    def set_variable(self, key: str, value: str, description: Optional[str] = None) -> None:
        """Set the variable key to the string value."""
        self._ok("PutVariable", key=key, value=value, description=description or "")

    # ---------------------------------------------------------- connection

    def connection(self, conn_id: str) -> Connection:
        """Return the Connection conn_id. Raises NotFound when there is none."""
        m = self._call("GetConnection", conn_id=conn_id)
        if m is None or m.get("type") != "ConnectionResult":
            raise _unexpected("GetConnection", m)
        return Connection.from_message(m)

    # --------------------------------------------------------------- xcoms

    def xcom_push(self, key: str, value: Any) -> None:
        """Store value as the XCom key of this task try. value must be
        JSON-like: None, bool, int, float, str, list/tuple, dict with str keys
        (bytes travel as msgpack bin, or base64 in JSON)."""
        ti = self.ti
        self._ok("SetXCom", key=key, value=value, dag_id=ti.dag_id, run_id=ti.run_id, task_id=ti.task_id,
                 map_index=ti.map_index)

    def xcom_pull(self, task_id: Optional[str] = None, key: str = "return_value", dag_id: Optional[str] = None,
                  run_id: Optional[str] = None, map_index: Optional[int] = None, default: Any = None) -> Any:
        """Return the XCom key of task task_id (this task by default) in the
        same DAG run (or dag_id/run_id), or default when there is none."""
        ti = self.ti
        try:
            m = self._call("GetXCom", key=key, dag_id=dag_id or ti.dag_id, run_id=run_id or ti.run_id,
                           task_id=task_id or ti.task_id, map_index=map_index)
        except NotFound:
            return default
        if m is None or m.get("type") != "XComResult":
            raise _unexpected("GetXCom", m)
        v = m.get("value")
        return default if v is None else v

    def xcom_delete(self, key: str) -> None:
        """Delete the XCom key of this task try."""
        ti = self.ti
        self._ok("DeleteXCom", key=key, dag_id=ti.dag_id, run_id=ti.run_id, task_id=ti.task_id,
                 map_index=ti.map_index)

    # -------------------------------------------------------------- others

    def mask_secret(self, value: object, name: Optional[str] = None) -> None:
        """Ask the worker to mask value in the task's logs from now on."""
        self._ok("MaskSecret", value=str(value), name=name or "")

    def defer(self, trigger: str, kwargs: Optional[Mapping[str, Any]] = None, method: Optional[str] = None,
              next_kwargs: Optional[Mapping[str, Any]] = None,
              timeout: Union[float, _dt.timedelta, str, None] = None) -> NoReturn:
        """Suspend the task until the trigger fires, freeing the worker slot.

        trigger is a trigger classpath ("timedelta", "datetime", "http",
        "file", "event" or their taskwire.triggers.* / Airflow classpaths),
        kwargs its kwargs. When it fires, the task runs again (same try) with
        next_method = method and next_kwargs plus the trigger's event under
        "event": in the function registered with App.method(task, method),
        else in the task's function. timeout (seconds, a timedelta or a Go
        duration string like "90s") bounds the wait; when the trigger fails
        or times out the try fails, retried while tries remain.

        Once the worker accepts, raises TaskDeferred, which must not be
        caught: the try is over.
        """
        if not trigger:
            raise ValueError("defer needs a trigger classpath")
        if not method:
            raise ValueError("defer needs the method to resume at")
        if method == FAIL_METHOD:
            raise ValueError("defer: next method %r is reserved" % FAIL_METHOD)
        with self._lock:
            if self._deferred:
                raise RuntimeError("defer to %s: the task is already deferred" % trigger)
        msg = message("DeferTask", classpath=trigger, trigger_kwargs=kwargs or {}, next_method=method,
                      next_kwargs=next_kwargs or {}, trigger_timeout=_timeout(timeout))
        m = self._client.call(msg)
        if m is not None and m.get("type") != "OKResponse":
            raise _unexpected("DeferTask", m)
        with self._lock:
            self._deferred = True
            self.defer_message = msg
        raise TaskDeferred(trigger, method)


    # ------------------------------------------------ async def tasks

    # The awaitable forms of the request methods, for async def tasks: each
    # runs its blocking form on a thread of the runtime (the event loop goes
    # on meanwhile) and returns or raises what it does.

    async def avariable(self, key: str, default: Any = _MISSING) -> Any:
        return await asyncio.to_thread(self.variable, key, default)

    async def aset_variable(self, key: str, value: str, description: Optional[str] = None) -> None:
        await asyncio.to_thread(self.set_variable, key, value, description)

    async def aconnection(self, conn_id: str) -> Connection:
        return await asyncio.to_thread(self.connection, conn_id)

    async def axcom_push(self, key: str, value: Any) -> None:
        await asyncio.to_thread(self.xcom_push, key, value)

    async def axcom_pull(self, *args: Any, **kwargs: Any) -> Any:
        return await asyncio.to_thread(self.xcom_pull, *args, **kwargs)

    async def axcom_delete(self, key: str) -> None:
        await asyncio.to_thread(self.xcom_delete, key)

    async def amask_secret(self, value: object, name: Optional[str] = None) -> None:
        await asyncio.to_thread(self.mask_secret, value, name)

    async def adefer(self, *args: Any, **kwargs: Any) -> NoReturn:
        await asyncio.to_thread(self.defer, *args, **kwargs)
        raise AssertionError("unreachable: defer raises")


def _unexpected(req: str, m: Optional[Mapping[str, Any]]) -> WorkerGone:
    got = "nothing" if m is None else m.get("type")
    return WorkerGone("unexpected answer from the worker to %s: %s" % (req, got))


# A Go duration string, as time.ParseDuration reads it.
_DURATION = re.compile("^[-+]?(0|(([0-9]+(\\.[0-9]*)?|\\.[0-9]+)(ns|us|\u00b5s|\u03bcs|ms|s|m|h))+)$")


def _timeout(t: Union[float, _dt.timedelta, str, None]) -> str:
    if t is None or t == "":
        return ""
    if isinstance(t, str):
        if not _DURATION.match(t):
            raise ValueError("timeout %r: want seconds, a timedelta or a Go duration like \"90s\"" % t)
        return t
    if isinstance(t, _dt.timedelta):
        ns = (t.days * 86400 + t.seconds) * 10 ** 9 + t.microseconds * 1000
    elif isinstance(t, numbers.Real) and not isinstance(t, bool):
        ns = int(round(float(t) * 1e9))
    else:
        raise TypeError("timeout %r: want seconds, a timedelta or a Go duration string" % (t,))
    if ns < 0:
        raise ValueError("timeout %r is negative" % (t,))
    return go_duration(ns) if ns > 0 else ""


def go_duration(ns: Union[int, float]) -> str:
    """Format a number of nanoseconds as Go's time.Duration.String does:
    "1h2m3.5s", "1m30s", "500ms", "1.5µs", "0s"."""
    n = int(ns)
    neg, u = n < 0, abs(n)
    if u == 0:
        return "0s"
    if u < 10 ** 9:
        if u < 10 ** 3:
            s = "%dns" % u
        elif u < 10 ** 6:
            s = _frac(u, 3) + "\u00b5s"
        else:
            s = _frac(u, 6) + "ms"
    else:
        secs = _frac(u % (60 * 10 ** 9), 9) + "s"
        mins = u // (60 * 10 ** 9)
        if mins == 0:
            s = secs
        elif mins < 60:
            s = "%dm%s" % (mins, secs)
        else:
            s = "%dh%dm%s" % (mins // 60, mins % 60, secs)
    return "-" + s if neg else s


def _frac(v: int, prec: int) -> str:
    ip, fp = divmod(v, 10 ** prec)
    f = ("%0*d" % (prec, fp)).rstrip("0")
    return "%d.%s" % (ip, f) if f else "%d" % ip
