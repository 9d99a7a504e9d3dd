"""A local OpenAI-compatible chat-completions server for tests and benchmarks.

It speaks enough of the OpenAI API (the way vLLM serves it) for the openai SDK, litellm and the
`vllm-server` backend: `POST /v1/chat/completions` (plain JSON, or server-sent events with
`stream: true`) and `GET /v1/models`. It is aiohttp.web running in a background thread with its own
event loop, bound to 127.0.0.1 on a free port, never to any other address.

Replies are deterministic: by default a text derived from a hash of the request's messages, and for
a judge's request (a system prompt containing "You are the judge") a valid verdict, the JSON object
`{"winner": ..., "rationale": ...}`, or the bare word FOR or AGAINST when the judge is asked for
one. Any other reply rule can be given as `reply=function(body) -> str`. Replies carry `usage`,
`finish_reason` ("length" when `max_tokens` cut them), `id`, `model` and `created`, and `logprobs`
in OpenAI's format when the request asks for them, the first token's alternatives given by
`first_token_logprobs`.

Faults are injected per server, seeded: the outcome of a request is drawn from a hash of (seed,
request body, how many times this body was seen), so a retried request gets a fresh draw and a run
gets the same faults whatever the scheduling order. `script` forces the outcomes of the first
requests, for tests that need an exact sequence. Every request is recorded (`requests`), with its
body, arrival time and outcome, under a lock.

    with OpenAITestServer(ServerOptions(rate_limit=0.2, retry_after=0)) as server:
        ...  # point a client at server.url ("http://127.0.0.1:PORT/v1")

As a separate process, so that a benchmarked client does not share its CPU with the server:

    python -m tests.openai_server --port 8011    # prints "listening on http://..." once ready

Simplified on purpose: "tokens" are whitespace-delimited words, prompt tokens are characters / 4,
the context limit counts characters, and `n` > 1, tools and the legacy completions API are not
served.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import json
import random
import re
import threading
import time
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import pytest
from aiohttp import web

ReplyFunction = Callable[[dict[str, Any]], str]

OUTCOMES = (
    "ok",
    "rate_limit",
    "server_error",
    "timeout",
    "malformed",
    "incomplete",
    "disconnect",
)
"""What the server can do with a request; the names of `ServerOptions`' fault rates."""

_TOKEN = re.compile(r"\s*\S+")
_WORDS = (
    "evidence",
    "shows",
    "that",
    "the",
    "motion",
    "serves",
    "people",
    "better",
    "than",
    "its",
    "alternative",
    "because",
    "costs",
    "fall",
    "and",
    "benefits",
    "grow",
)


@dataclass
class ServerOptions:
    """How the test server behaves. Rates are per-request probabilities, drawn independently."""

    models: Collection[str] | None = None
    """Served model names; others get vLLM's 404 body. None serves any name."""
    reply: ReplyFunction | None = None
    """The reply text for a request body; `default_reply` when unset."""
    reasoning: str | None = None
    """When set, sent with every reply as `message.<reasoning_field>`."""
    reasoning_field: str = "reasoning_content"
    """Where the reasoning goes: vLLM's `reasoning_content`, or `reasoning` (newer servers)."""
    first_token_logprobs: Mapping[str, float] = field(
        default_factory=lambda: {"FOR": -0.3, "AGAINST": -1.5}
    )
    """The first generated token's top alternatives when logprobs are asked for."""
    rate_limit: float = 0.0
    """429 with a Retry-After header."""
    server_error: float = 0.0
    """500."""
    timeout: float = 0.0
    """The server sleeps `timeout_sleep_s` before answering (the client should give up first)."""
    malformed: float = 0.0
    """Status 200 with a body that is not valid JSON."""
    incomplete: float = 0.0
    """Status 200 with valid JSON that lacks `choices`."""
    disconnect: float = 0.0
    """The connection is closed without a reply."""
    script: Sequence[str | None] = ()
    """Outcomes (names in OUTCOMES, None for a random draw) of the first requests, in order."""
    seed: int = 0
    """Seed of the fault draws."""
    retry_after: float | str | None = 1.0
    """Retry-After sent with a 429: seconds, or a string sent as is (an HTTP date); None: none."""
    timeout_sleep_s: float = 30.0
    """How long a 'timeout' request sleeps before it is answered."""
    delay_s: float = 0.0
    """Delay before every reply (slow replies)."""
    context_limit: int | None = None
    """A prompt longer than this many characters gets vLLM's 400 'maximum context length'."""
    bad_request_model: str = "always-400"
    """A model name that always gets a 400."""
    api_key: str | None = None
    """When set, requests must carry `Authorization: Bearer <api_key>`, or get a 401."""
    echo_key: bool = True
    """A 401 quotes back the key it was given, in its message and in its `param` field (as some
    providers do), so that a client must scrub it; False: a message without the key."""
    record: bool = True
    """Record every request (turn off for long benchmarks)."""


@dataclass(frozen=True)
class RecordedRequest:
    """One request the server received."""

    path: str
    body: dict[str, Any]
    time: float
    """`time.monotonic()` on arrival."""
    outcome: str
    """A name in OUTCOMES, or the refusal: 'unauthorized', 'bad_request', 'not_found',
    'context_length'."""
    authorization: str | None
    """The Authorization header as received."""
    server_port: int


def _messages_digest(body: Mapping[str, Any]) -> bytes:
    messages = body.get("messages") or []
    blob = json.dumps(messages, sort_keys=True, ensure_ascii=False).encode()
    return hashlib.sha256(blob).digest()


def is_judge_request(body: Mapping[str, Any]) -> bool:
    """A request whose system prompt contains 'You are the judge'."""
    messages = body.get("messages") or []
    return any(
        m.get("role") == "system" and "you are the judge" in str(m.get("content", "")).lower()
        for m in messages
        if isinstance(m, Mapping)
    )


def default_reply(body: dict[str, Any]) -> str:
    """A deterministic reply: a verdict for a judge, else prose derived from the messages' hash.

    >>> judge = {"messages": [{"role": "system", "content": "You are the judge of a debate."}]}
    >>> sorted(json.loads(default_reply(judge)))
    ['rationale', 'winner']
    >>> default_reply({"messages": [{"role": "user", "content": "hi"}]}).startswith("Argument ")
    True
    """
    digest = _messages_digest(body)
    pick, tag = digest[0], digest[:6].hex()
    if is_judge_request(body):
        messages = body.get("messages") or []
        last = str(messages[-1].get("content", "")) if messages else ""
        if "Answer FOR or AGAINST" in last:
            return ("FOR", "AGAINST")[pick % 2]
        winner = ("FOR", "AGAINST", "TIE")[pick % 3]
        return json.dumps({"winner": winner, "rationale": f"Case {tag} was stronger."})
    words = " ".join(_WORDS[b % len(_WORDS)] for b in digest[8:32])
    return f"Argument {tag}: {words}."


def _error_body(message: str, kind: str, code: int) -> dict[str, Any]:
    """vLLM's error body (the OpenAI SDK reads `message` at the top level or under `error`)."""
    return {"object": "error", "message": message, "type": kind, "param": None, "code": code}


class OpenAITestServer:
    """The server, running in a background thread once `start()` is called (or `with`)."""

    def __init__(self, options: ServerOptions | None = None, *, port: int = 0):
        self.options = options or ServerOptions()
        self.port = port
        self._lock = threading.Lock()
        self._requests: list[RecordedRequest] = []
        self._seen: dict[str, int] = {}
        self._script_index = 0
        self._counter = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._thread: threading.Thread | None = None

    # --- lifecycle -------------------------------------------------------------------------

    @property
    def url(self) -> str:
        """The API base, e.g. http://127.0.0.1:PORT/v1."""
        return f"http://127.0.0.1:{self.port}/v1"

    def app(self) -> web.Application:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_post("/v1/chat/completions", self._chat)
        app.router.add_get("/v1/models", self._models)
        return app

    async def _start_site(self) -> None:
        # handler_cancellation: a client that gives up cancels its handler (a 'timeout' sleep).
        runner = web.AppRunner(
            self.app(), access_log=None, shutdown_timeout=0.2, handler_cancellation=True
        )
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", self.port, backlog=1024)
        await site.start()
        self._runner = runner
        self.port = int(runner.addresses[0][1])

    def start(self) -> OpenAITestServer:
        """Start serving in a background thread; returns once the port accepts connections."""
        ready = threading.Event()
        failure: list[BaseException] = []

        def serve() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            try:
                loop.run_until_complete(self._start_site())
            except BaseException as exc:  # reported to start()'s caller
                failure.append(exc)
                ready.set()
                loop.close()
                return
            ready.set()
            try:
                loop.run_forever()
            finally:
                loop.close()

        self._thread = threading.Thread(target=serve, name="openai-test-server", daemon=True)
        self._thread.start()
        ready.wait(30)
        if failure:
            raise failure[0]
        return self

    def stop(self) -> None:
        loop, runner, thread = self._loop, self._runner, self._thread
        if loop is None or thread is None:
            return
        if runner is not None and loop.is_running():
            asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(timeout=30)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=30)
        self._loop = self._runner = self._thread = None

    def __enter__(self) -> OpenAITestServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- what was received -----------------------------------------------------------------

    @property
    def requests(self) -> list[RecordedRequest]:
        """Every chat-completions request so far, in arrival order (a copy)."""
        with self._lock:
            return list(self._requests)

    def outcomes(self) -> list[str]:
        return [r.outcome for r in self.requests]

    def reset(self) -> None:
        """Forget recorded requests, fault counters and the script position."""
        with self._lock:
            self._requests.clear()
            self._seen.clear()
            self._script_index = 0

    # --- handlers --------------------------------------------------------------------------

    async def _models(self, request: web.Request) -> web.Response:
        names = sorted(self.options.models or ["test-model"])
        data = [
            {"id": n, "object": "model", "created": 0, "owned_by": "test", "root": n} for n in names
        ]
        return web.json_response({"object": "list", "data": data})

    def _outcome(self, raw: bytes) -> str:
        options = self.options
        with self._lock:
            if self._script_index < len(options.script):
                scripted = options.script[self._script_index]
                self._script_index += 1
                if scripted is not None:
                    if scripted not in OUTCOMES:
                        raise ValueError(f"unknown scripted outcome {scripted!r}")
                    return scripted
            rates = [getattr(options, name) for name in OUTCOMES[1:]]
            if not any(rates):
                return "ok"
            key = hashlib.sha256(options.seed.to_bytes(8, "big", signed=True) + raw).hexdigest()
            seen = self._seen.get(key, 0) + 1
            self._seen[key] = seen
        draw = random.Random(f"{key}:{seen}").random()
        for name, rate in zip(OUTCOMES[1:], rates, strict=True):
            if draw < rate:
                return name
            draw -= rate
        return "ok"

    def _record(
        self, request: web.Request, body: dict[str, Any], outcome: str, arrived: float
    ) -> None:
        if self.options.record:
            entry = RecordedRequest(
                path=request.path,
                body=body,
                time=arrived,
                outcome=outcome,
                authorization=request.headers.get("Authorization"),
                server_port=self.port,
            )
            with self._lock:
                self._requests.append(entry)

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        options = self.options
        arrived = time.monotonic()
        raw = await request.read()
        try:
            body = json.loads(raw)
        except ValueError:
            return web.json_response(
                _error_body("request body is not JSON", "BadRequestError", 400), status=400
            )
        if not isinstance(body, dict):
            return web.json_response(
                _error_body("request body must be an object", "BadRequestError", 400), status=400
            )
        rejection = self._rejection(request, body)
        if rejection is not None:
            self._record(request, body, rejection[0], arrived)
            return rejection[1]
        outcome = self._outcome(raw)
        self._record(request, body, outcome, arrived)
        if options.delay_s:
            await asyncio.sleep(options.delay_s)
        model = str(body["model"])
        messages: list[dict[str, Any]] = body["messages"]
        max_tokens = int(body.get("max_tokens") or body.get("max_completion_tokens") or 256)
        prompt_chars = sum(len(str(m.get("content") or "")) for m in messages)

        if outcome == "rate_limit":
            headers: dict[str, str] = {}
            if options.retry_after is not None:
                headers["Retry-After"] = (
                    options.retry_after
                    if isinstance(options.retry_after, str)
                    else f"{options.retry_after:g}"
                )
            error = {"message": "Rate limit reached, slow down", "type": "rate_limit_error"}
            return web.json_response(
                {"error": {**error, "param": None, "code": "rate_limit_exceeded"}},
                status=429,
                headers=headers,
            )
        if outcome == "server_error":
            return web.json_response(
                _error_body("Internal server error (injected)", "InternalServerError", 500),
                status=500,
            )
        if outcome == "timeout":
            await asyncio.sleep(options.timeout_sleep_s)
        if outcome == "malformed":
            return web.Response(
                body=b'{"id": "chatcmpl-broken", "choices": [{"message": {"content": "Hal',
                content_type="application/json",
            )
        if outcome == "incomplete":
            return web.json_response({"id": "chatcmpl-incomplete", "object": "chat.completion"})
        if outcome == "disconnect":
            if request.transport is not None:
                request.transport.abort()
            return web.Response()  # never sent: the connection is gone

        text = (options.reply or default_reply)(body)
        tokens = _TOKEN.findall(text) or [text]
        finish_reason = "stop"
        if len(tokens) > max_tokens:
            tokens, finish_reason = tokens[:max_tokens], "length"
            text = "".join(tokens)
        with self._lock:
            self._counter += 1
            number = self._counter
        usage = {
            "prompt_tokens": prompt_chars // 4 + len(messages),
            "completion_tokens": len(tokens),
            "total_tokens": prompt_chars // 4 + len(messages) + len(tokens),
        }
        logprobs = self._logprobs(body, tokens)
        completion_id = f"chatcmpl-{self.port}-{number}"
        if body.get("stream"):
            return await self._stream(request, body, completion_id, tokens, finish_reason, usage)
        message: dict[str, Any] = {"role": "assistant", "content": text, "tool_calls": []}
        if options.reasoning is not None:
            message[options.reasoning_field] = options.reasoning
        reply = {
            "id": completion_id,
            "object": "chat.completion",
            "created": int(time.time()),
            "model": model,
            "choices": [
                {
                    "index": 0,
                    "message": message,
                    "logprobs": logprobs,
                    "finish_reason": finish_reason,
                    "stop_reason": None,
                }
            ],
            "usage": usage,
            "system_fingerprint": None,
        }
        return web.Response(body=json.dumps(reply).encode(), content_type="application/json")

    def _rejection(
        self, request: web.Request, body: dict[str, Any]
    ) -> tuple[str, web.Response] | None:
        """A request the server refuses whatever the faults: (outcome, response), or None."""
        options = self.options
        if options.api_key is not None:
            given = request.headers.get("Authorization", "")
            if given != f"Bearer {options.api_key}":
                key = given.removeprefix("Bearer ")
                if options.echo_key:  # hostile on purpose: a client must scrub what comes back
                    message = f"Incorrect API key provided: {key!r}. Check the key ({key})."
                    param: str | None = f"api_key={key}"
                else:
                    message, param = "Incorrect API key provided.", None
                error = {
                    "message": message,
                    "type": "invalid_request_error",
                    "param": param,
                    "code": 401,
                }
                return "unauthorized", web.json_response({"error": error}, status=401)
        model = body.get("model")
        messages = body.get("messages")
        if not isinstance(model, str) or not isinstance(messages, list) or not messages:
            message = "model (a string) and messages (a non-empty list) are required"
            return "bad_request", web.json_response(
                _error_body(message, "BadRequestError", 400), status=400
            )
        if model == options.bad_request_model:
            message = f"The request for model `{model}` is invalid (it always is)."
            return "bad_request", web.json_response(
                _error_body(message, "BadRequestError", 400), status=400
            )
        if options.models is not None and model not in options.models:
            message = f"The model `{model}` does not exist."
            return "not_found", web.json_response(
                _error_body(message, "NotFoundError", 404), status=404
            )
        max_tokens = int(body.get("max_tokens") or body.get("max_completion_tokens") or 256)
        prompt_chars = sum(
            len(str(m.get("content") or "")) for m in messages if isinstance(m, Mapping)
        )
        if options.context_limit is not None and prompt_chars > options.context_limit:
            limit = options.context_limit
            message = (
                f"This model's maximum context length is {limit} tokens. However, you requested "
                f"{prompt_chars + max_tokens} tokens ({prompt_chars} in the messages, "
                f"{max_tokens} in the completion). Please reduce the length of the messages or "
                "completion."
            )
            return "context_length", web.json_response(
                _error_body(message, "BadRequestError", 400), status=400
            )
        return None

    def _logprobs(self, body: Mapping[str, Any], tokens: list[str]) -> dict[str, Any] | None:
        """OpenAI's `choices[0].logprobs`, when the request asks for it."""
        if not body.get("logprobs"):
            return None
        k = int(body.get("top_logprobs") or 0)
        content = []
        for index, token in enumerate(tokens):
            if index == 0 and self.options.first_token_logprobs:
                ranked = sorted(self.options.first_token_logprobs.items(), key=lambda kv: -kv[1])
            else:
                ranked = [(token, -0.05), (token.upper(), -3.5), ("the", -6.0)]
            top = [{"token": t, "logprob": lp, "bytes": list(t.encode())} for t, lp in ranked[:k]]
            chosen = dict(ranked).get(token, ranked[0][1] if index == 0 else -0.05)
            content.append(
                {
                    "token": token,
                    "logprob": chosen,
                    "bytes": list(token.encode()),
                    "top_logprobs": top,
                }
            )
        return {"content": content}

    async def _stream(
        self,
        request: web.Request,
        body: Mapping[str, Any],
        completion_id: str,
        tokens: list[str],
        finish_reason: str,
        usage: dict[str, int],
    ) -> web.StreamResponse:
        """Server-sent events, one chunk per token, as the OpenAI API streams."""
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        base = {
            "id": completion_id,
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": body.get("model"),
        }

        async def send(choices: list[dict[str, Any]], **extra: Any) -> None:
            chunk = {**base, "choices": choices, **extra}
            await response.write(b"data: " + json.dumps(chunk).encode() + b"\n\n")

        await send([{"index": 0, "delta": {"role": "assistant", "content": ""}}])
        for token in tokens:
            await send([{"index": 0, "delta": {"content": token}, "finish_reason": None}])
        await send([{"index": 0, "delta": {}, "finish_reason": finish_reason}])
        stream_options = body.get("stream_options") or {}
        if stream_options.get("include_usage"):
            await send([], usage=usage)
        await response.write(b"data: [DONE]\n\n")
        await response.write_eof()
        return response


# --- pytest fixtures ------------------------------------------------------------------------


@pytest.fixture
def openai_server() -> Iterator[OpenAITestServer]:
    """A test server with default options (any model name, no faults), for one test."""
    with OpenAITestServer() as server:
        yield server


@pytest.fixture
def make_openai_server() -> Iterator[Callable[..., OpenAITestServer]]:
    """Build servers with options: `make_openai_server(rate_limit=0.3, models={"m"})`."""
    servers: list[OpenAITestServer] = []

    def make(**options: Any) -> OpenAITestServer:
        server = OpenAITestServer(replace(ServerOptions(), **options)).start()
        servers.append(server)
        return server

    yield make
    for server in servers:
        server.stop()


# --- as a process ---------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--port", type=int, default=0, help="0: a free port (printed)")
    parser.add_argument("--delay-s", type=float, default=0.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--models", nargs="*", default=None, help="served names (default: any)")
    for name in OUTCOMES[1:]:
        parser.add_argument(f"--{name.replace('_', '-')}", type=float, default=0.0, metavar="RATE")
    parser.add_argument("--retry-after", type=float, default=1.0)
    parser.add_argument("--record", action="store_true", help="keep every request in memory")
    args = parser.parse_args(argv)
    options = ServerOptions(
        models=set(args.models) if args.models is not None else None,
        delay_s=args.delay_s,
        seed=args.seed,
        retry_after=args.retry_after,
        record=args.record,
        **{name: getattr(args, name) for name in OUTCOMES[1:]},
    )
    server = OpenAITestServer(options, port=args.port)

    async def serve() -> None:
        await server._start_site()
        print(f"listening on {server.url}", flush=True)
        await asyncio.Event().wait()

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve())


if __name__ == "__main__":
    main()
