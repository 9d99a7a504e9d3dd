"""The `vllm-server` backend over real HTTP, against the local OpenAI-compatible test server."""

from __future__ import annotations

import asyncio
import socket
import time
import zlib
from collections.abc import Callable
from email.utils import formatdate
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from arena.backends.base import Completion, GenerateSettings, Message
from arena.backends.openai_http import AFFINITY_SLACK, VllmServerBackend, VllmServerSpec
from arena.calling import Caller
from arena.config import RetrySettings
from arena.core.errors import BackendError
from arena.records import CallRow
from tests.conftest import query as _query
from tests.conftest import tournament
from tests.openai_server import OpenAITestServer, default_reply

MakeServer = Callable[..., OpenAITestServer]
CHAT = [Message("system", "You argue FOR the motion."), Message("user", "Your opening, please.")]
CHAT_DICTS = [m.as_dict() for m in CHAT]
SETTINGS = GenerateSettings(max_tokens=64)


def _spec(api_base: str | list[str], model: str = "test-model", **fields: Any) -> VllmServerSpec:
    return VllmServerSpec(name="m", backend="vllm-server", model=model, api_base=api_base, **fields)


def _generate(
    backend: VllmServerBackend,
    messages: list[Message] = CHAT,
    settings: GenerateSettings = SETTINGS,
) -> Completion:
    async def go() -> Completion:
        try:
            return await backend.generate(messages, settings)
        finally:
            await backend.aclose()

    return asyncio.run(go())


def _error(backend: VllmServerBackend, messages: list[Message] = CHAT) -> BackendError:
    with pytest.raises(BackendError) as caught:
        _generate(backend, messages)
    return caught.value


def test_generation_sends_the_settings_and_parses_the_reply(make_openai_server: MakeServer) -> None:
    server = make_openai_server(reasoning="Weigh the costs first.")
    backend = VllmServerBackend(_spec(server.url, extra_body={"top_k": 20, "min_p": 0.05}))
    settings = GenerateSettings(max_tokens=200, temperature=0.5, top_p=0.9, seed=7, stop=("END",))
    completion = _generate(backend, CHAT, settings)

    (request,) = server.requests
    body = request.body
    assert body["model"] == "test-model"
    assert body["messages"] == [m.as_dict() for m in CHAT]
    assert (body["max_tokens"], body["temperature"], body["top_p"], body["seed"]) == (
        200,
        0.5,
        0.9,
        7,
    )
    assert body["stop"] == ["END"] and body["top_k"] == 20 and body["min_p"] == 0.05
    assert "logprobs" not in body and request.authorization is None

    expected = default_reply(body)
    assert completion.text == expected
    assert completion.reasoning == "Weigh the costs first."
    assert completion.finish_reason == "stop"
    assert completion.completion_tokens == len(expected.split())
    prompt_chars = sum(len(m.content) for m in CHAT)
    assert completion.prompt_tokens == prompt_chars // 4 + len(CHAT)
    assert completion.top_logprobs is None and completion.cost_usd is None

    # Cut by max_tokens; reasoning under `reasoning`, as newer vLLM servers send it.
    server = make_openai_server(reasoning="Short.", reasoning_field="reasoning")
    short = _generate(VllmServerBackend(_spec(server.url)), CHAT, GenerateSettings(max_tokens=3))
    assert short.finish_reason == "length" and short.completion_tokens == 3
    assert short.reasoning == "Short."


def test_logprobs_are_asked_for_and_parsed(make_openai_server: MakeServer) -> None:
    alternatives = {"AGAINST": -1.5, "FOR": -0.3, "TIE": -4.0}
    server = make_openai_server(first_token_logprobs=alternatives)
    settings = GenerateSettings(max_tokens=5, top_logprobs=2)
    completion = _generate(VllmServerBackend(_spec(server.url)), CHAT, settings)
    body = server.requests[0].body
    assert body["logprobs"] is True and body["top_logprobs"] == 2
    assert completion.top_logprobs == [("FOR", -0.3), ("AGAINST", -1.5)]


def test_replicas_keep_a_prefix_on_one_replica_and_share_the_load(
    make_openai_server: MakeServer,
) -> None:
    one, two = make_openai_server(), make_openai_server()
    backend = VllmServerBackend(_spec([one.url, two.url + "/"]))

    def chat(i: int) -> list[Message]:
        return [Message("system", f"debate {i}"), Message("user", "Turn 1 of 4: your opening.")]

    async def sequential() -> None:
        for _ in range(10):  # the same prefix: always the same replica, for its prefix cache
            await backend.generate(CHAT, SETTINGS)
        for i in range(40):  # many prefixes: spread over both
            await backend.generate(chat(i), SETTINGS)
        await backend.aclose()

    asyncio.run(sequential())
    homes = {r.body["messages"][0]["content"]: r.server_port for r in one.requests + two.requests}
    same_prefix = [r for r in one.requests + two.requests if r.body["messages"] == CHAT_DICTS]
    assert len(same_prefix) == 10 and len({r.server_port for r in same_prefix}) == 1
    assert len(homes) == 41
    assert min(len(one.requests), len(two.requests)) >= 10

    # A busy home replica keeps at most AFFINITY_SLACK more calls than the other; the rest go
    # to the other replica. Order the replicas so that the slow one is CHAT's home.
    slow, fast = make_openai_server(delay_s=0.4), make_openai_server()
    prefix = "\x00".join(m.content for m in CHAT[:2]).encode()
    urls = [slow.url, fast.url] if zlib.crc32(prefix) % 2 == 0 else [fast.url, slow.url]
    backend = VllmServerBackend(_spec(urls))

    async def workers() -> float:
        queue = iter(range(48))

        async def worker() -> None:
            for _ in queue:
                await backend.generate(CHAT, SETTINGS)

        start = time.monotonic()
        await asyncio.gather(*(worker() for _ in range(16)))
        await backend.aclose()
        return time.monotonic() - start

    elapsed = asyncio.run(workers())
    n_slow, n_fast = len(slow.requests), len(fast.requests)
    assert n_slow + n_fast == 48
    assert n_slow >= AFFINITY_SLACK and n_fast >= 24, (n_slow, n_fast)
    assert elapsed < 1.2  # all 48 on the slow replica: 3 rounds of 16 x 0.4 s at least
    assert backend.in_flight() == [0, 0]


def test_a_failing_home_replica_sends_the_retry_elsewhere(make_openai_server: MakeServer) -> None:
    live = make_openai_server()
    dead = f"http://127.0.0.1:{_free_port()}/v1"
    prefix = "\x00".join(m.content for m in CHAT[:2]).encode()
    urls = [dead, live.url] if zlib.crc32(prefix) % 2 == 0 else [live.url, dead]
    backend = VllmServerBackend(_spec(urls))
    assert _error(backend).kind == "connection"  # the home replica is down
    assert _generate(backend).text  # the retry of the same prompt goes to the live one
    assert len(live.requests) == 1


def test_a_lora_adapter_is_called_by_its_served_name(make_openai_server: MakeServer) -> None:
    server = make_openai_server(models={"base-model", "debate-lora"})
    _generate(VllmServerBackend(_spec(server.url, model="debate-lora")))
    assert server.requests[0].body["model"] == "debate-lora"

    backend = VllmServerBackend(_spec(server.url, model="missing-lora"))
    error = _error(backend)
    assert error.kind == "not_found" and not backend.should_retry(error)
    message = str(error)
    assert "missing-lora" in message and server.url in message
    assert "--served-model-name" in message and "--lora-modules" in message


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# (server options, spec fields, expected kind, retryable)
ERROR_CASES: dict[str, tuple[dict[str, Any], dict[str, Any], str, bool]] = {
    "429": ({"script": ["rate_limit"], "retry_after": 2.5}, {}, "rate_limit", True),
    "500": ({"script": ["server_error"]}, {}, "server", True),
    "invalid-json": ({"script": ["malformed"]}, {}, "malformed", True),
    "missing-fields": ({"script": ["incomplete"]}, {}, "malformed", True),
    "disconnect": ({"script": ["disconnect"]}, {}, "connection", True),
    "unknown-model": ({"models": {"served"}}, {"model": "other"}, "not_found", False),
    "context": ({"context_limit": 20}, {}, "context_length", False),
    "always-400": ({}, {"model": "always-400"}, "bad_request", False),
    "no-key": ({"api_key": "server-key"}, {}, "auth", False),
}


@pytest.mark.parametrize("case", list(ERROR_CASES))
def test_errors_are_classified(case: str, make_openai_server: MakeServer) -> None:
    options, fields, kind, retryable = ERROR_CASES[case]
    server = make_openai_server(**options)
    backend = VllmServerBackend(_spec(server.url, **fields))
    error = _error(backend)
    assert error.kind == kind, error
    assert backend.should_retry(error) is retryable
    assert "\n" not in str(error) and server.url in str(error)
    if kind == "rate_limit":
        assert error.retry_after == 2.5


def test_retry_after_as_an_http_date(make_openai_server: MakeServer) -> None:
    server = make_openai_server(
        script=["rate_limit"], retry_after=formatdate(time.time() + 30, usegmt=True)
    )
    error = _error(VllmServerBackend(_spec(server.url)))
    assert error.kind == "rate_limit" and error.retry_after is not None
    assert 27 <= error.retry_after <= 30


def test_timeouts_and_refused_connections(make_openai_server: MakeServer) -> None:
    import aiohttp

    server = make_openai_server(script=["timeout"], timeout_sleep_s=10)
    backend = VllmServerBackend(_spec(server.url), client_timeout=aiohttp.ClientTimeout(total=0.3))
    error = _error(backend)
    assert error.kind == "timeout" and backend.should_retry(error)

    refused = VllmServerBackend(_spec(f"http://127.0.0.1:{_free_port()}/v1"))
    error = _error(refused)
    assert error.kind == "connection" and refused.should_retry(error)


def test_a_wrong_key_is_refused_and_never_repeated(
    make_openai_server: MakeServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = make_openai_server(api_key="right-key")
    monkeypatch.setenv("ARENA_TEST_WRONG_KEY", "wrong-key-4711")
    backend = VllmServerBackend(_spec(server.url, api_key_env="ARENA_TEST_WRONG_KEY"))
    error = _error(backend)
    assert server.requests[0].authorization == "Bearer wrong-key-4711"
    assert error.kind == "auth" and not backend.should_retry(error)
    # the server echoes the key it was given; the backend's message must not
    assert "wrong-key-4711" not in str(error) and "***" in str(error)


def test_spec_checks_its_urls() -> None:
    with pytest.raises(ValidationError, match="not an http"):
        _spec("127.0.0.1:8000/v1")
    with pytest.raises(ValidationError, match="at least one"):
        _spec([])
    assert _spec(["http://a:1/v1/", "http://b:2/v1"]).bases() == ["http://a:1/v1", "http://b:2/v1"]
    assert VllmServerSpec.env_fields == ("api_key_env",)


def _caller(backend: VllmServerBackend, rows: list[CallRow], timeout_s: float = 10.0) -> Caller:
    return Caller(
        {"m": backend},
        max_concurrency=4,
        request_timeout_s=timeout_s,
        retry=RetrySettings(max_attempts=3, initial_backoff_s=0.001, max_backoff_s=5),
        record=rows.append,
        run_id="test",
    )


def test_the_engine_waits_what_retry_after_asks(make_openai_server: MakeServer) -> None:
    server = make_openai_server(script=["rate_limit"], retry_after=1)
    rows: list[CallRow] = []
    caller = _caller(VllmServerBackend(_spec(server.url)), rows)

    async def call() -> None:
        await caller.call("m", CHAT, SETTINGS, purpose="turn", debate_id="d")
        await caller.backends["m"].aclose()

    asyncio.run(call())
    first, second = server.requests
    assert (first.outcome, second.outcome) == ("rate_limit", "ok")
    assert 0.95 <= second.time - first.time < 1.6  # backoff alone would be ~1 ms
    assert [(r.attempt, r.error_kind) for r in rows] == [(1, "rate_limit"), (2, None)]


def test_the_engine_times_out_a_hung_call_and_retries(make_openai_server: MakeServer) -> None:
    server = make_openai_server(script=["timeout"], timeout_sleep_s=10)
    rows: list[CallRow] = []
    caller = _caller(VllmServerBackend(_spec(server.url)), rows, timeout_s=0.3)

    async def call() -> str:
        result = await caller.call("m", CHAT, SETTINGS, purpose="turn", debate_id="d")
        await caller.backends["m"].aclose()
        return result.completion.text

    assert asyncio.run(call()).startswith("Argument ")
    assert [(r.attempt, r.error_kind) for r in rows] == [(1, "timeout"), (2, None)]


# --- through the `arena` command ------------------------------------------------------------


def _models_yaml(
    api_base: str, contestants: list[str], judge: str, **tournament: Any
) -> dict[str, Any]:
    def entry(name: str, model: str) -> dict[str, Any]:
        return {
            "name": name,
            "backend": "vllm-server",
            "model": model,
            "api_base": api_base,
            "api_key_env": "ARENA_TEST_VLLM_KEY",
        }

    return {
        "tournament": tournament,
        "models": [entry(f"c-{m}", m) for m in contestants],
        "judges": [entry("judge", judge)],
    }


def _tournament(tmp_path: Path, models: dict[str, Any], n_topics: int, key: str) -> Any:
    return tournament(
        tmp_path, models, n_topics, "--quiet", env={"ARENA_TEST_VLLM_KEY": key}, timeout=120
    )


def test_tournament_with_transient_faults_completes_and_stores_no_key(
    tmp_path: Path, make_openai_server: MakeServer
) -> None:
    key = "sk-planted-9f3c1e7a5b"
    server = make_openai_server(
        models={"debater-a", "debater-b", "debater-c", "judge-model"},
        api_key=key,
        rate_limit=0.1,
        server_error=0.1,
        timeout=0.05,
        malformed=0.05,
        retry_after=0,
        timeout_sleep_s=10,
        seed=3,
    )
    models = _models_yaml(
        server.url,
        ["debater-a", "debater-b", "debater-c"],
        "judge-model",
        turns=4,
        request_timeout_s=1.0,
        retry={"initial_backoff_s": 0.01, "max_backoff_s": 0.05, "max_attempts": 15},
    )
    result = _tournament(tmp_path, models, 3, key)
    assert result.returncode == 0, result.stderr
    db = tmp_path / "arena.duckdb"
    n = 3 * 2 * 3
    assert _query(db, "select status, count(*) from debates group by all") == [("done", n)]
    assert _query(db, "select count(*) from turns") == [(n * 4,)]
    assert _query(db, "select count(*) from verdicts where valid") == [(n,)]
    failed, total = _query(db, "select count(error), count(*) from calls")[0]
    assert 0.15 < failed / total < 0.45, (failed, total)  # ~30% of attempts failed, retried
    kinds = {
        k
        for (k,) in _query(db, "select distinct error_kind from calls where error_kind is not null")
    }
    assert kinds == {"rate_limit", "server", "timeout", "malformed"}
    # every attempt in `calls` reached the server, and carried the key
    assert len(server.requests) == total
    assert {r.authorization for r in server.requests} == {f"Bearer {key}"}
    # the key is in nothing the run wrote, nor in what it printed
    planted = key.encode()
    written = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert db in written
    assert [p for p in written if planted in p.read_bytes()] == []
    assert key not in result.stdout + result.stderr


def test_a_deterministic_400_is_not_retried(tmp_path: Path, make_openai_server: MakeServer) -> None:
    server = make_openai_server()
    models = _models_yaml(server.url, ["model-a", "always-400"], "judge-model", turns=2)
    result = _tournament(tmp_path, models, 1, "any")
    assert result.returncode == 1, result.stderr
    db = tmp_path / "arena.duckdb"
    assert _query(db, "select status, count(*) from debates group by all") == [("failed", 2)]
    rows = _query(db, "select attempt, error_kind, retryable from calls where error is not null")
    assert rows and all(row == (1, "bad_request", False) for row in rows)
    refused = [r for r in server.requests if r.outcome == "bad_request"]
    assert len(refused) == len(rows)


def test_an_unset_key_variable_stops_before_any_call(
    tmp_path: Path, openai_server: OpenAITestServer
) -> None:
    models = _models_yaml(openai_server.url, ["a", "b"], "j")
    result = tournament(tmp_path, models, 1, env={"ARENA_TEST_VLLM_KEY": ""})
    assert result.returncode == 2
    assert "models[0].api_key_env: environment variable ARENA_TEST_VLLM_KEY is not set" in (
        result.stderr
    )
    assert openai_server.requests == []


def test_a_logprob_judge_reads_the_first_tokens_alternatives(
    tmp_path: Path, make_openai_server: MakeServer
) -> None:
    server = make_openai_server(first_token_logprobs={"FOR": -0.3, "AGAINST": -1.5, "The": -3.0})
    models = _models_yaml(server.url, ["model-a", "model-b"], "judge-model", turns=2)
    models["judges"][0].update(verdict="logprob", top_logprobs=5)
    result = _tournament(tmp_path, models, 1, "any")
    assert result.returncode == 0, result.stderr
    judged = [r.body for r in server.requests if r.body["model"] == "judge-model"]
    assert len(judged) == 2
    assert all(b["logprobs"] is True and b["top_logprobs"] == 5 for b in judged)
    assert all(b["max_tokens"] == 1 for b in judged)
    # P(FOR) = e^-0.3 / (e^-0.3 + e^-1.5) = 0.769, whatever the reply's text
    verdicts = _query(tmp_path / "arena.duckdb", "select winner, rationale, valid from verdicts")
    assert verdicts == [("FOR", "P(FOR) = 0.769", True)] * 2
