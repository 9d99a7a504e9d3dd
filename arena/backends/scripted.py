"""A backend that replays given replies, for tests and demonstrations.

Each request gets one of `replies`, chosen by the request's hash (`arena.core.ids.request_hash`, as
in `calls.request_hash`), so the same request always gets the same reply whatever the scheduling
order; or in turn (`order: cycle`). With `log_file` set, every request is appended to that file as
one JSON line before it is answered, so a test can check exactly which calls were made, for example
that a resumed run did not ask again for turns it had already recorded. `fail_if_contains` makes
every request whose messages contain a string fail with a non-retryable error.
"""

from __future__ import annotations

import asyncio
import json
import os
import threading
import time
from itertools import count
from typing import Literal

from pydantic import Field

from arena.backends.base import Backend, BackendSpec, Completion, GenerateSettings, Message
from arena.core.errors import BackendError
from arena.core.ids import request_hash


class ScriptedSpec(BackendSpec):
    """`backend: scripted`: replays `replies`."""

    backend: Literal["scripted"]
    replies: list[str] = Field(min_length=1)
    """The replies to give."""
    order: Literal["hash", "cycle"] = "hash"
    """'hash': chosen by the request's content (deterministic); 'cycle': in turn."""
    delay_s: float = Field(0.0, ge=0)
    """Delay before each reply, in seconds."""
    log_file: str | None = None
    """Append one JSON line per request to this file (model, request hash, time, pid)."""
    log_messages: bool = False
    """Also log each request's messages."""
    fail_if_contains: str | None = None
    """Fail (not retryable) every request whose messages contain this string."""

    def model_id(self) -> str | None:
        return "scripted"


class ScriptedBackend(Backend):
    spec: ScriptedSpec

    def __init__(self, spec: ScriptedSpec):
        super().__init__(spec)
        self.spec = spec
        self._counter = count()
        self._log_lock = threading.Lock()

    async def generate(self, messages: list[Message], settings: GenerateSettings) -> Completion:
        spec = self.spec
        request_key = request_hash(self.name, [m.as_dict() for m in messages], settings.as_dict())
        if spec.log_file:
            entry: dict[str, object] = {
                "model": self.name,
                "request": request_key,
                "time": time.time(),
                "pid": os.getpid(),
            }
            if spec.log_messages:
                entry["messages"] = [m.as_dict() for m in messages]
            line = json.dumps(entry)
            await asyncio.to_thread(self._append_log, spec.log_file, line)
        if spec.delay_s:
            await asyncio.sleep(spec.delay_s)
        if spec.fail_if_contains and any(spec.fail_if_contains in m.content for m in messages):
            raise BackendError(
                f"scripted failure: request contains {spec.fail_if_contains!r}", kind="bad_request"
            )
        if spec.order == "cycle":
            index = next(self._counter) % len(spec.replies)
        else:
            index = int(request_key, 16) % len(spec.replies)
        text = spec.replies[index]
        return Completion(
            text=text,
            prompt_tokens=sum(len(m.content) // 4 + 1 for m in messages),
            completion_tokens=len(text) // 4 + 1,
            cost_usd=0.0,
            finish_reason="stop",
        )

    def _append_log(self, path: str, line: str) -> None:
        with self._log_lock, open(path, "a", encoding="utf-8") as handle:
            handle.write(line + "\n")
