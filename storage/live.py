"""Live reads: a Unix-socket query server inside the tournament process, and its client.

DuckDB lets one process open a file read-write, and while it does no other process can open the
file at all, not even read-only. So a running tournament (`Store.serve_live`) starts a small
server thread that answers read-only queries from other processes (`arena sql`) on cursors of
its own connection; DuckDB's MVCC lets them read committed data while the writer goes on.

- The socket lives in `tempfile.gettempdir()`, named by a hash of the absolute database path
  (a Unix socket path must stay under ~104-108 bytes), and is readable by its owner only.
- `<db>.live.json` ({pid, socket, started_at, db}) tells clients where it is. A file whose pid is
  no longer running is stale (the tournament was killed) and is ignored.
- Framing: a 4-byte big-endian length, then UTF-8 JSON. One request per connection, of two kinds:
  - a query, `{"sql": ..., "params": [...]}` (params optional: JSON values bound to the `?` of a
    one-statement query), answered `{"ok": true, "columns": [...], "rows": [[...], ...]}`;
  - a snapshot for a bulk reader, `{"snapshot": "/abs/new.duckdb", "tables": [...]}` (tables
    optional: all of them), answered `{"ok": true, "tables": {name: rows}}` once the tournament
    has copied those tables, as of one moment, into that new file (storage/snapshot.py). It
    writes only that file, which must not exist; the database itself is only read.
  A failure is `{"ok": false, "kind": "read_only" | "error" | "unavailable", "error": "..."}`.

Simplified on purpose: no authentication beyond the socket's file mode (whoever can connect is
the tournament's own user, who could write a snapshot's file anyway), and no result size cap:
a query's rows travel as one JSON message, which is what snapshots are for when they are many.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import socket
import socketserver
import struct
import tempfile
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb

from storage.errors import ReadOnlyQueryError, StoreError
from storage.query import Params, QueryResult, check_params, execute_read_query
from storage.snapshot import write_snapshot

_HEADER = struct.Struct(">I")
MAX_REQUEST_BYTES = 1 << 20
CONNECT_TIMEOUT_S = 2.0
SERVER_IO_TIMEOUT_S = 30.0
"""How long the server waits on a client that stops sending or reading."""


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


def socket_path_for(db: Path) -> Path:
    """Where the live server of `db` (an absolute path) listens."""
    name = f"arena-live-{hashlib.sha256(str(db).encode()).hexdigest()[:16]}.sock"
    path = Path(tempfile.gettempdir()) / name
    if len(os.fsencode(path)) >= 100:  # an unusually long TMPDIR
        path = Path("/tmp") / name
    return path


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
        response = self.server.live.answer(request)
        with contextlib.suppress(OSError):
            send_frame(self.request, response)


class LiveServer:
    """Answers read-only queries and snapshot requests on cursors of `con`'s database, one thread
    per client."""

    def __init__(self, db: Path, con: duckdb.DuckDBPyConnection) -> None:
        self.db = db
        self.socket_path = socket_path_for(db)
        self._root = con.cursor()
        self._lock = threading.Lock()
        self._active: set[duckdb.DuckDBPyConnection] = set()
        self._stopping = False
        try:
            self.socket_path.unlink(missing_ok=True)  # left by a killed run
            self._server = _Server(str(self.socket_path), _Handler)
            os.chmod(self.socket_path, 0o600)
        except OSError as exc:
            self._root.close()
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
        tmp = live_info_path(db).with_suffix(".tmp")
        tmp.write_text(json.dumps(info), encoding="utf-8")
        os.replace(tmp, live_info_path(db))

    def answer(self, request: object) -> dict[str, Any]:
        """The response to one request (never raises)."""
        if not isinstance(request, dict):
            return {"ok": False, "kind": "error", "error": "the request is not a JSON object"}
        if "snapshot" in request:
            return self._snapshot(request)
        sql, params = request.get("sql"), request.get("params")
        if not isinstance(sql, str):
            return {"ok": False, "kind": "error", "error": "the request has no 'sql' string"}
        try:
            values = check_params(params)
        except TypeError as exc:
            return {"ok": False, "kind": "error", "error": str(exc)}
        return self._on_cursor(lambda cursor: _rows_answer(execute_read_query(cursor, sql, values)))

    def _snapshot(self, request: dict[str, Any]) -> dict[str, Any]:
        target, tables = request.get("snapshot"), request.get("tables")
        if not isinstance(target, str):
            return {"ok": False, "kind": "error", "error": "'snapshot' must be a path"}
        if tables is not None and not (
            isinstance(tables, list) and all(isinstance(t, str) for t in tables)
        ):
            return {"ok": False, "kind": "error", "error": "'tables' must be a list of names"}
        return self._on_cursor(
            lambda cursor: {"ok": True, "tables": write_snapshot(cursor, Path(target), tables)}
        )

    def _on_cursor(
        self, work: Callable[[duckdb.DuckDBPyConnection], dict[str, Any]]
    ) -> dict[str, Any]:
        """`work` on a fresh cursor that `stop` can interrupt; failures become answers."""
        with self._lock:
            if self._stopping:
                return {"ok": False, "kind": "unavailable", "error": "the tournament is closing"}
            cursor = self._root.cursor()
            self._active.add(cursor)
        try:
            return work(cursor)
        except ReadOnlyQueryError as exc:
            return {"ok": False, "kind": "read_only", "error": str(exc)}
        except StoreError as exc:
            kind = "unavailable" if self._stopping else "error"
            return {"ok": False, "kind": kind, "error": str(exc)}
        except Exception as exc:
            return {"ok": False, "kind": "error", "error": f"the live server failed: {exc!r}"}
        finally:
            with self._lock:
                self._active.discard(cursor)
            cursor.close()

    def stop(self) -> None:
        """Withdraw live.json, stop accepting, interrupt and wait for queries in flight."""
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
        self.socket_path.unlink(missing_ok=True)


def _rows_answer(result: QueryResult) -> dict[str, Any]:
    return {"ok": True, "columns": result.columns, "rows": [list(r) for r in result.rows]}


def _ask(info: LiveInfo, request: dict[str, Any], timeout_s: float | None) -> dict[str, Any]:
    """Send one request and return the successful answer; raise for a failed one.

    LiveUnavailable when there is no server to answer (the caller may read the file instead).
    """
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(CONNECT_TIMEOUT_S)
        try:
            sock.connect(info.socket)
        except OSError as exc:
            raise LiveUnavailable(str(exc)) from exc
        sock.settimeout(timeout_s)
        try:
            send_frame(sock, request)
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
    if kind == "unavailable":
        raise LiveUnavailable(message)
    raise StoreError(message)


def query_live(
    info: LiveInfo, sql: str, params: Params = None, timeout_s: float | None = None
) -> QueryResult:
    """Run `sql` with `params` on the live server; LiveUnavailable when there is none to answer."""
    request: dict[str, Any] = {"sql": sql}
    values = check_params(params)
    if values is not None:
        request["params"] = values
    response = _ask(info, request, timeout_s)
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
