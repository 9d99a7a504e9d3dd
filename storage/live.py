"""Live reads: a Unix-socket query server inside the tournament process, and its client.

DuckDB lets one process open a file read-write, and while it does no other process can open the
file at all, not even read-only. So a running tournament (`Store.serve_live`) starts a small
server thread that answers read-only queries from other processes (`arena sql`) on cursors of
its own connection; DuckDB's MVCC lets them read committed data while the writer goes on.

- The socket lives in `tempfile.gettempdir()`, named by a hash of the absolute database path
  (a Unix socket path must stay under ~104-108 bytes), and is readable by its owner only.
- `<db>.live.json` ({pid, socket, started_at, db}) tells clients where it is. A file whose pid is
  no longer running is stale (the tournament was killed) and is ignored.
- Framing: a 4-byte big-endian length, then UTF-8 JSON. One query per connection: the request
  `{"sql": ...}`, the answer `{"ok": true, "columns": [...], "rows": [[...], ...]}` or
  `{"ok": false, "kind": "read_only" | "error" | "unavailable", "error": "..."}`.

Simplified on purpose: no authentication beyond the socket's file mode, and no result size cap.
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
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb

from storage.errors import ReadOnlyQueryError, StoreError
from storage.query import QueryResult, execute_read_query

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
    """Answers read-only queries on cursors of `con`'s database, one thread per client."""

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
        sql = request.get("sql") if isinstance(request, dict) else None
        if not isinstance(sql, str):
            return {"ok": False, "kind": "error", "error": "the request has no 'sql' string"}
        with self._lock:
            if self._stopping:
                return {"ok": False, "kind": "unavailable", "error": "the tournament is closing"}
            cursor = self._root.cursor()
            self._active.add(cursor)
        try:
            result = execute_read_query(cursor, sql)
            return {"ok": True, "columns": result.columns, "rows": [list(r) for r in result.rows]}
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


def query_live(info: LiveInfo, sql: str, timeout_s: float | None = None) -> QueryResult:
    """Run `sql` on the live server; LiveUnavailable when there is no server to answer."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(CONNECT_TIMEOUT_S)
        try:
            sock.connect(info.socket)
        except OSError as exc:
            raise LiveUnavailable(str(exc)) from exc
        sock.settimeout(timeout_s)
        try:
            send_frame(sock, {"sql": sql})
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
        columns = [str(c) for c in response.get("columns", [])]
        return QueryResult(columns, [tuple(row) for row in response.get("rows", [])])
    kind, message = response.get("kind"), str(response.get("error"))
    if kind == "read_only":
        raise ReadOnlyQueryError(message)
    if kind == "unavailable":
        raise LiveUnavailable(message)
    raise StoreError(message)
