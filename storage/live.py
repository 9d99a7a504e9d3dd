"""Live reads: a Unix-socket query server inside the tournament process, and its client.

DuckDB lets one process open a file read-write, and while it does no other process can open the
file at all, not even read-only. So a running tournament (`Store.serve_live`) starts a small
server thread that answers read-only queries from other processes (`arena sql`) on cursors of
its own connection; DuckDB's MVCC lets them read committed data while the writer goes on.

- The socket lives in `tempfile.gettempdir()`, named by a hash of the absolute database path and
  the tournament's pid, `arena-live-<hash>-<pid>.sock` (a Unix socket path must stay under
  ~104-108 bytes), and is readable by its owner only.
- `<db>.live.json` ({pid, socket, started_at, db}) tells clients where it is. A file whose pid is
  no longer running is stale (the tournament was killed) and is ignored.
- Both are removed when the server stops (`LiveServer.stop`, on every way a tournament ends but
  SIGKILL). What a killed tournament left is removed when the next one starts: its live.json by
  `Store.open` (which holds the file's lock, so any live.json is stale), sockets whose pid is dead,
  for any database, by `remove_stale_sockets` (from `Store.open` and `LiveServer`).
- Framing: a 4-byte big-endian length, then UTF-8 JSON. One request per connection, of two kinds:
  - a query, `{"sql": ..., "params": [...], "limits": {...}}` (params optional: JSON values bound
    to the `?` of a one-statement query; limits optional: a client's own `ReadLimits`, which can
    only tighten the server's), answered `{"ok": true, "columns": [...], "rows": [[...], ...]}`;
  - a snapshot for a bulk reader, `{"snapshot": "/abs/new.duckdb", "tables": [...]}` (tables
    optional: all of them), answered `{"ok": true, "tables": {name: rows}}` once the tournament
    has copied those tables, as of one moment, into that new file (storage/snapshot.py). It
    writes only that file, which must not exist; the database itself is only read.
  A failure is `{"ok": false, "kind": "read_only" | "limit" | "error" | "unavailable",
  "error": "..."}`.

A reader must not be able to change or hold up the tournament, which shares its DuckDB instance
with the writer. So a query is sealed (storage/query.py): only queries pass, on the database's
own tables only (never files: the instance keeps external access, which the writer's snapshots
need, so the parse-tree check is what stops `read_csv`), in a read-only transaction; the server
turns off extension autoinstall/autoload for the instance (nothing of the writer's needs them:
json, parquet and icu are built in) and lets DuckDB's allocator return freed memory in the
background (`_INSTANCE_SETTINGS`). And a query is bounded (`LiveServer.limits`, `LIVE_LIMITS`
by default): at most `max_concurrent` run at once (others wait for a slot, up to their time
limit), each is interrupted at its time limit or as soon as its client disconnects (a watchdog
polls the socket), and its result streams from DuckDB into JSON bytes, stopping at the row or byte
limit, so the tournament never holds more than one capped result per query.

DuckDB offers no working per-query memory bound (2.0.1 lists a per-connection
`operator_memory_limit`, but it did not bound a query's memory in our measurements), so the
watchdog also cancels a query once the process's resident memory has grown by more than
`memory_budget` (512 MiB by default) since it began: a cross join that builds gigabytes in the
tournament's buffer pool is stopped within a tenth of a second of passing that.

Simplified on purpose: no authentication beyond the socket's file mode (whoever can connect is
the tournament's own user, who could write a snapshot's file anyway); the memory bound reads the
whole process's growth (Linux only), so the writer's own growth counts against a reader's query.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import select
import socket
import socketserver
import struct
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb

from storage.errors import ReadOnlyQueryError, StoreError
from storage.query import (
    LIVE_LIMITS,
    Params,
    QueryCancelled,
    QueryLimitError,
    QueryResult,
    ReadLimits,
    check_params,
    stream_read_query,
)
from storage.snapshot import write_snapshot

_HEADER = struct.Struct(">I")
MAX_REQUEST_BYTES = 1 << 20
CONNECT_TIMEOUT_S = 2.0
SERVER_IO_TIMEOUT_S = 30.0
"""How long the server waits on a client that stops sending or reading."""
MAX_CONCURRENT_QUERIES = 4
"""Queries a live server runs at once; more wait for a slot."""
QUERY_MEMORY_BUDGET = 512 * 2**20
"""How far one live query may grow the tournament's resident memory before it is cancelled."""
CLIENT_GRACE_S = 10.0
"""How much longer than a query's limits a client waits for the server's answer."""
_INSTANCE_SETTINGS = (
    "SET GLOBAL autoinstall_known_extensions = false",
    "SET GLOBAL autoload_known_extensions = false",
    "SET GLOBAL allow_community_extensions = false",
    "SET GLOBAL allow_extension_repositories = 'forbidden'",
    "SET GLOBAL allocator_background_threads = true",
)
"""Settings of the tournament's DuckDB instance that the server changes (they are global): no
reader's query may install or load an extension (the writer uses only built-in ones), and memory
a cancelled query freed goes back to the system within a second or two instead of staying
resident (DuckDB's allocator otherwise keeps it until later work flushes it)."""
_SEND_BATCH = 4096


class LiveUnavailable(Exception):
    """The live server could not be reached or went away; the caller may read the file instead."""


@dataclass(frozen=True)
class LiveInfo:
    """The contents of `<db>.live.json`."""

    pid: int
    socket: str
    started_at: str


def live_info_path(db: Path) -> Path:
    """`<db>.live.json`, beside the database."""
    return db.with_name(db.name + ".live.json")


def live_info_tmp_path(db: Path) -> Path:
    """Where `<db>.live.json` is written before it is renamed into place."""
    return db.with_name(db.name + ".live.tmp")


SOCKET_PREFIX = "arena-live-"
_SOCKET_NAME = re.compile(r"^arena-live-[0-9a-f]{16}(?:-(\d+))?\.sock$")


def _socket_folders() -> list[Path]:
    """Where live sockets are made: the temporary folder, and /tmp when its path is too long."""
    folders = [Path(tempfile.gettempdir())]
    if folders[0] != Path("/tmp"):
        folders.append(Path("/tmp"))
    return folders


def socket_path_for(db: Path, pid: int | None = None) -> Path:
    """Where the live server of `db` (an absolute path) run by process `pid` (this one when
    None) listens."""
    digest = hashlib.sha256(str(db).encode()).hexdigest()[:16]
    name = f"{SOCKET_PREFIX}{digest}-{os.getpid() if pid is None else pid}.sock"
    path = _socket_folders()[0] / name
    if len(os.fsencode(path)) >= 100:  # an unusually long TMPDIR
        path = Path("/tmp") / name
    return path


def _listening(path: Path) -> bool:
    """Whether a server accepts connections on the Unix socket `path`."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        probe.settimeout(CONNECT_TIMEOUT_S)
        try:
            probe.connect(str(path))
        except (ConnectionRefusedError, FileNotFoundError):
            return False
        except OSError:  # busy (EAGAIN), not permitted: leave it alone
            return True
    return True


def remove_stale_sockets() -> list[Path]:
    """Remove the live sockets that killed tournaments left behind; the paths removed.

    A socket named with a pid (`arena-live-<hash>-<pid>.sock`) is stale when no process has that
    pid; one without (written by an earlier debate-arena) when nothing listens on it. Sockets of
    other users cannot be removed and are left alone.
    """
    removed: list[Path] = []
    for folder in _socket_folders():
        try:
            entries = list(folder.glob(f"{SOCKET_PREFIX}*.sock"))
        except OSError:
            continue
        for path in entries:
            match = _SOCKET_NAME.match(path.name)
            if match is None:
                continue
            pid = match.group(1)
            if pid is not None and (int(pid) == os.getpid() or pid_alive(int(pid))):
                continue
            if pid is None and _listening(path):
                continue
            try:
                path.unlink()
            except OSError:
                continue
            removed.append(path)
    return removed


def pid_alive(pid: int) -> bool:
    """Whether a process with this id exists (it may belong to another user)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def read_live_info(db: Path) -> LiveInfo | None:
    """The live server announced for `db`, or None: no file, unreadable, or its process is gone."""
    try:
        data = json.loads(live_info_path(db).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict):
        return None
    pid, sock, started_at = data.get("pid"), data.get("socket"), data.get("started_at")
    if not isinstance(pid, int) or not isinstance(sock, str) or not pid_alive(pid):
        return None
    return LiveInfo(pid, sock, str(started_at))


def _recv_exact(sock: socket.socket, size: int) -> bytes:
    parts: list[bytes] = []
    while size:
        part = sock.recv(min(size, 1 << 20))
        if not part:
            raise ConnectionError("the connection closed mid-message")
        parts.append(part)
        size -= len(part)
    return b"".join(parts)


def send_frame(sock: socket.socket, message: object) -> None:
    """Send one length-prefixed JSON message."""
    body = json.dumps(message, ensure_ascii=False).encode("utf-8")
    sock.sendall(_HEADER.pack(len(body)) + body)


def recv_frame(sock: socket.socket, limit: int | None = None) -> Any:
    """Receive one length-prefixed JSON message."""
    (size,) = _HEADER.unpack(_recv_exact(sock, _HEADER.size))
    if limit is not None and size > limit:
        raise ValueError(f"message of {size} bytes is over the {limit}-byte limit")
    return json.loads(_recv_exact(sock, size).decode("utf-8"))


class _Server(socketserver.ThreadingUnixStreamServer):
    daemon_threads = False  # server_close() waits for queries in flight (interrupted first)
    request_queue_size = 128  # a Unix socket refuses (EAGAIN) a client past the backlog
    live: LiveServer


class _Handler(socketserver.BaseRequestHandler):
    server: _Server
    request: socket.socket

    def handle(self) -> None:
        self.request.settimeout(SERVER_IO_TIMEOUT_S)
        try:
            request = recv_frame(self.request, MAX_REQUEST_BYTES)
        except (OSError, ValueError):
            return  # not one of our clients, or it went away
        reply = self.server.live.answer(request, gone=_peer_gone(self.request))
        with contextlib.suppress(OSError):
            reply.send(self.request)


def _peer_gone(sock: socket.socket) -> Callable[[], bool]:
    """Whether the client has gone away: once its request is read it only waits for the answer,
    so anything readable on the socket (end of file, above all) means it closed or misbehaves."""
    poller = select.poll()
    hangup = select.POLLHUP | getattr(select, "POLLRDHUP", 0)  # POLLRDHUP: Linux only
    poller.register(sock.fileno(), select.POLLIN | hangup)

    def gone() -> bool:
        try:
            return bool(poller.poll(0))
        except (OSError, ValueError):
            return True

    return gone


@dataclass
class _Reply:
    """An answer: a JSON message, and for a query result its rows already encoded as JSON."""

    message: dict[str, Any]
    rows: list[bytes] | None = None

    def send(self, sock: socket.socket) -> None:
        """Send it as one frame; rows go in batches, never joined into one large string."""
        if self.rows is None:
            send_frame(sock, self.message)
            return
        head = (json.dumps(self.message, ensure_ascii=False)[:-1] + ', "rows": [').encode()
        tail = b"]}"
        size = len(head) + sum(len(r) for r in self.rows) + max(len(self.rows) - 1, 0) + len(tail)
        sock.sendall(_HEADER.pack(size) + head)
        for start in range(0, len(self.rows), _SEND_BATCH):
            batch = b",".join(self.rows[start : start + _SEND_BATCH])
            sock.sendall(batch if start == 0 else b"," + batch)
        sock.sendall(tail)


def _failure(kind: str, message: str) -> _Reply:
    return _Reply({"ok": False, "kind": kind, "error": message})


class LiveServer:
    """Answers read-only queries and snapshot requests on cursors of `con`'s database, one thread
    per client; queries are sealed and held to `limits` (see the module's docstring)."""

    def __init__(
        self,
        db: Path,
        con: duckdb.DuckDBPyConnection,
        *,
        limits: ReadLimits = LIVE_LIMITS,
        max_concurrent: int = MAX_CONCURRENT_QUERIES,
        memory_budget: int | None = QUERY_MEMORY_BUDGET,
    ) -> None:
        self.db = db
        self.limits = limits
        """The most a query may take (time, rows, bytes); a client may ask for less."""
        self.memory_budget = memory_budget
        """How far one query may grow this process's resident memory (bytes; None: no bound)."""
        self.max_concurrent = max_concurrent
        self.socket_path = socket_path_for(db)
        self._root = con.cursor()
        self._lock = threading.Lock()
        self._slots = threading.BoundedSemaphore(max_concurrent)
        self._active: set[duckdb.DuckDBPyConnection] = set()
        self._stopping = False
        try:
            for statement in _INSTANCE_SETTINGS:
                self._root.execute(statement)
        except duckdb.Error as exc:
            self._root.close()
            raise StoreError(f"cannot seal the database for live reads: {exc}") from None
        remove_stale_sockets()  # left by killed runs, of this database or another
        try:
            self.socket_path.unlink(missing_ok=True)
            self._server = _Server(str(self.socket_path), _Handler)
            os.chmod(self.socket_path, 0o600)
        except OSError as exc:
            self._root.close()
            self.socket_path.unlink(missing_ok=True)
            raise StoreError(f"cannot serve live reads at {self.socket_path}: {exc}") from exc
        self._server.live = self
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.1},
            name="storage-live-server",
            daemon=True,
        )
        self._thread.start()
        info = {
            "pid": os.getpid(),
            "socket": str(self.socket_path),
            "started_at": datetime.now(UTC).isoformat(),
            "db": str(db),
        }
        tmp = live_info_tmp_path(db)
        try:
            tmp.write_text(json.dumps(info), encoding="utf-8")
            os.replace(tmp, live_info_path(db))
        except BaseException:  # a full disk: no server without its live.json, nothing left
            tmp.unlink(missing_ok=True)
            self.stop()
            raise

    def answer(self, request: object, gone: Callable[[], bool] | None = None) -> _Reply:
        """The reply to one request (never raises); `gone()` tells whether the client left."""
        if not isinstance(request, dict):
            return _failure("error", "the request is not a JSON object")
        if "snapshot" in request:
            return self._snapshot(request)
        sql, params = request.get("sql"), request.get("params")
        if not isinstance(sql, str):
            return _failure("error", "the request has no 'sql' string")
        try:
            values = check_params(params)
            asked = request.get("limits")
            limits = self.limits.tighter(None if asked is None else ReadLimits.from_json(asked))
        except TypeError as exc:
            return _failure("error", str(exc))
        return self._query(sql, values, limits, gone)

    def _query(
        self,
        sql: str,
        values: list[object] | None,
        limits: ReadLimits,
        gone: Callable[[], bool] | None,
    ) -> _Reply:
        """Run one query in a free slot, its rows kept only as JSON bytes."""
        waited = time.monotonic()
        while not self._slots.acquire(timeout=0.1):
            if gone is not None and gone():
                return _failure("error", "the client went away")
            if limits.timeout_s is not None and time.monotonic() - waited > limits.timeout_s:
                return _failure(
                    "limit",
                    f"the running tournament is busy with {self.max_concurrent} queries;"
                    f" no slot came free within {limits.timeout_s:g} s",
                )
        try:
            rows: list[bytes] = []

            def run(cursor: duckdb.DuckDBPyConnection) -> _Reply:
                columns = stream_read_query(
                    cursor,
                    sql,
                    values,
                    limits=limits,
                    allow_files=False,
                    gone=gone,
                    memory_budget=self.memory_budget,
                    sink=lambda _safe, encoded: rows.extend(encoded),
                )
                return _Reply({"ok": True, "columns": columns}, rows)

            return self._on_cursor(run)
        finally:
            self._slots.release()

    def _snapshot(self, request: dict[str, Any]) -> _Reply:
        target, tables = request.get("snapshot"), request.get("tables")
        if not isinstance(target, str):
            return _failure("error", "'snapshot' must be a path")
        if tables is not None and not (
            isinstance(tables, list) and all(isinstance(t, str) for t in tables)
        ):
            return _failure("error", "'tables' must be a list of names")
        return self._on_cursor(
            lambda cursor: _Reply(
                {"ok": True, "tables": write_snapshot(cursor, Path(target), tables)}
            )
        )

    def _on_cursor(self, work: Callable[[duckdb.DuckDBPyConnection], _Reply]) -> _Reply:
        """`work` on a fresh cursor that `stop` can interrupt; failures become replies."""
        with self._lock:
            if self._stopping:
                return _failure("unavailable", "the tournament is closing")
            cursor = self._root.cursor()
            self._active.add(cursor)
        try:
            return work(cursor)
        except ReadOnlyQueryError as exc:
            return _failure("read_only", str(exc))
        except QueryLimitError as exc:
            return _failure("limit", str(exc))
        except StoreError as exc:
            return _failure("unavailable" if self._stopping else "error", str(exc))
        except Exception as exc:
            return _failure("error", f"the live server failed: {exc!r}")
        finally:
            with self._lock:
                self._active.discard(cursor)
            cursor.close()

    def stop(self) -> None:
        """Withdraw live.json, stop accepting, interrupt and wait for queries in flight, remove
        the socket. The files go even when stopping fails half-way."""
        try:
            info = read_live_info(self.db)
            if info is not None and info.socket == str(self.socket_path):
                live_info_path(self.db).unlink(missing_ok=True)
            with self._lock:
                self._stopping = True
                for cursor in self._active:
                    cursor.interrupt()
            self._server.shutdown()
            self._server.server_close()
            self._thread.join()
            self._root.close()
        finally:
            self.socket_path.unlink(missing_ok=True)


def _connect(info: LiveInfo) -> socket.socket:
    """A socket connected to the live server; LiveUnavailable if there is none.

    A Unix socket refuses a connection at once (EAGAIN) while the server's backlog is full, so
    that is retried for up to CONNECT_TIMEOUT_S.
    """
    deadline = time.monotonic() + CONNECT_TIMEOUT_S
    while True:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(CONNECT_TIMEOUT_S)
        try:
            sock.connect(info.socket)
            return sock
        except BlockingIOError as exc:
            sock.close()
            if time.monotonic() >= deadline:
                raise LiveUnavailable(str(exc)) from exc
            time.sleep(0.01)
        except OSError as exc:
            sock.close()
            raise LiveUnavailable(str(exc)) from exc


def _ask(
    info: LiveInfo,
    request: dict[str, Any],
    timeout_s: float | None,
    cancelled: Callable[[], bool] | None = None,
) -> dict[str, Any]:
    """Send one request and return the successful answer; raise for a failed one.

    LiveUnavailable when there is no server to answer (the caller may read the file instead);
    QueryCancelled as soon as `cancelled()` turns true while waiting (the socket is closed, which
    tells the server to interrupt the query).
    """
    with _connect(info) as sock:
        sock.settimeout(timeout_s)
        try:
            send_frame(sock, request)
            _wait_readable(sock, timeout_s, cancelled)
            response = recv_frame(sock)
        except TimeoutError:
            raise StoreError(
                f"the running tournament did not answer within {timeout_s} s"
            ) from None
        except (OSError, ValueError) as exc:
            raise LiveUnavailable(str(exc)) from exc
    if not isinstance(response, dict):
        raise LiveUnavailable("malformed answer")
    if response.get("ok"):
        return response
    kind, message = response.get("kind"), str(response.get("error"))
    if kind == "read_only":
        raise ReadOnlyQueryError(message)
    if kind == "limit":
        raise QueryLimitError(message)
    if kind == "unavailable":
        raise LiveUnavailable(message)
    raise StoreError(message)


def _wait_readable(
    sock: socket.socket, timeout_s: float | None, cancelled: Callable[[], bool] | None
) -> None:
    """Wait until the answer begins to arrive, checking `cancelled()` every 0.1 s."""
    if cancelled is None:
        return  # recv waits, within the socket's timeout
    poller = select.poll()
    poller.register(sock.fileno(), select.POLLIN | select.POLLHUP | select.POLLERR)
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    while not poller.poll(100):
        if cancelled():
            raise QueryCancelled("the query was cancelled")
        if deadline is not None and time.monotonic() >= deadline:
            raise TimeoutError


def query_live(
    info: LiveInfo,
    sql: str,
    params: Params = None,
    limits: ReadLimits | None = None,
    cancelled: Callable[[], bool] | None = None,
) -> QueryResult:
    """Run `sql` with `params` on the live server, within `limits` as well as the server's own;
    LiveUnavailable when there is none to answer. The query is cancelled (QueryCancelled) as
    soon as `cancelled()` turns true.

    The client waits for the answer as long as the limits allow (twice the time limit: a slot,
    then the query) and a little more; with no time limit of its own, as long as it takes.
    """
    request: dict[str, Any] = {"sql": sql}
    values = check_params(params)
    if values is not None:
        request["params"] = values
    wait_s = None
    if limits is not None:
        request["limits"] = limits.to_json()
        if limits.timeout_s is not None:
            wait_s = 2 * limits.timeout_s + CLIENT_GRACE_S
    response = _ask(info, request, wait_s, cancelled)
    columns = [str(c) for c in response.get("columns", [])]
    return QueryResult(columns, [tuple(row) for row in response.get("rows", [])])


def snapshot_live(
    info: LiveInfo,
    target: Path,
    tables: Sequence[str] | None = None,
    timeout_s: float | None = None,
) -> dict[str, int]:
    """Have the live server copy `tables` (all when None) into the new file `target`.

    Returns the rows copied per table; LiveUnavailable when there is no server to answer.
    """
    request: dict[str, Any] = {"snapshot": str(target)}
    if tables is not None:
        request["tables"] = list(tables)
    response = _ask(info, request, timeout_s)
    copied = response.get("tables")
    if not isinstance(copied, dict):
        raise LiveUnavailable("malformed answer")
    return {str(name): int(rows) for name, rows in copied.items()}
