"""The litellm backend over real HTTP against the local OpenAI-compatible test server."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from arena.backends import GenerateSettings, Message
from arena.backends.litellm_backend import LiteLLMBackend, LiteLLMSpec
from arena.calling import Caller
from arena.config import RetrySettings
from arena.core.errors import BackendError
from tests.conftest import query as _query
from tests.conftest import tournament
from tests.openai_server import OpenAITestServer

MODEL = "openai/gpt-4o-mini"  # in litellm's bundled cost map, so calls have a cost
SETTINGS = GenerateSettings(max_tokens=32, seed=1)
MakeServer = Callable[..., OpenAITestServer]


def _backend(server: OpenAITestServer, **fields: Any) -> LiteLLMBackend:
    spec = LiteLLMSpec.model_validate(
        {"name": "m", "backend": "litellm", "model": MODEL, "api_base": server.url, **fields}
    )
    return LiteLLMBackend(spec)


def _generate(backend: LiteLLMBackend, text: str = "Hello", **settings: Any) -> Any:
    chosen = GenerateSettings(**{"max_tokens": 32, "seed": 1, **settings})
    return asyncio.run(backend.generate([Message("user", text)], chosen))


def test_generation_tokens_cost_and_logprobs(
    make_openai_server: MakeServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TEST_KEY", "sk-test-123")
    server = make_openai_server(api_key="sk-test-123")
    completion = _generate(_backend(server, api_key_env="TEST_KEY"), top_logprobs=5)
    assert completion.text
    assert completion.prompt_tokens and completion.completion_tokens
    assert completion.cost_usd is not None and completion.cost_usd > 0
    assert completion.top_logprobs is not None
    assert [t for t, _ in completion.top_logprobs][:2] == ["FOR", "AGAINST"]
    body = server.requests[-1].body
    assert body["max_tokens"] == 32 and body["seed"] == 1 and body["top_logprobs"] == 5


@pytest.mark.parametrize(
    ("options", "model", "kind", "retryable"),
    [
        ({"script": ["rate_limit"], "retry_after": 3}, MODEL, "rate_limit", True),
        ({"script": ["server_error"]}, MODEL, "server", True),
        ({}, "openai/always-400", "bad_request", False),
        ({"models": {"gpt-4o-mini"}}, "openai/not-served", "not_found", False),
        ({"context_limit": 10}, MODEL, "context_length", False),
        ({"api_key": "right"}, MODEL, "auth", False),
    ],
)
def test_errors_are_classified_and_litellm_does_not_retry(
    make_openai_server: MakeServer,
    options: dict[str, Any],
    model: str,
    kind: str,
    retryable: bool,
) -> None:
    server = make_openai_server(**options)
    backend = _backend(server, model=model)
    with pytest.raises(BackendError) as info:
        _generate(backend, "a prompt longer than ten characters")
    assert info.value.kind == kind, str(info.value)
    assert backend.should_retry(info.value) is retryable
    if kind == "rate_limit":
        assert info.value.retry_after == 3
    assert len(server.requests) == 1, "litellm's own retries must be off"


def test_retry_after_is_honoured_by_the_engine(make_openai_server: MakeServer) -> None:
    server = make_openai_server(script=["rate_limit"], retry_after=1)
    backend = _backend(server)
    caller = Caller(
        {"m": backend},
        max_concurrency=4,
        request_timeout_s=30,
        retry=RetrySettings(initial_backoff_s=0.0, max_attempts=3),
        record=lambda row: None,
        run_id="r",
    )
    start = time.perf_counter()
    result = asyncio.run(
        caller.call("m", [Message("user", "hi")], SETTINGS, purpose="t", debate_id=None)
    )
    waited = time.perf_counter() - start
    assert result.completion.text
    assert [r.outcome for r in server.requests] == ["rate_limit", "ok"]
    assert 0.9 < waited < 3.0
    gap = server.requests[1].time - server.requests[0].time
    assert gap >= 0.95


def _models(server: OpenAITestServer, **tournament: Any) -> dict[str, Any]:
    entry = {"backend": "litellm", "model": MODEL, "api_base": server.url}
    keyed = {**entry, "api_key_env": "ARENA_TEST_SECRET"}
    return {
        "tournament": {"turns": 4, **tournament},
        "models": [{"name": "a", **keyed}, {"name": "b", **entry}, {"name": "c", **keyed}],
        "judges": [{"name": "j", **keyed}],
    }


def _tournament(tmp_path: Path, models: dict[str, Any], *extra: str) -> Any:
    return tournament(
        tmp_path, models, 2, *extra, env={"ARENA_TEST_SECRET": "sk-planted-SECRET-4242"}
    )


def test_tournament_through_litellm_with_faults_and_no_leaked_key(
    tmp_path: Path, make_openai_server: MakeServer
) -> None:
    server = make_openai_server(
        rate_limit=0.1, server_error=0.1, malformed=0.05, disconnect=0.05, retry_after=0, seed=3
    )
    retry = {"initial_backoff_s": 0.01, "max_backoff_s": 0.05, "max_attempts": 15}
    result = _tournament(tmp_path, _models(server, retry=retry))
    assert result.returncode == 0, result.stderr
    db = tmp_path / "arena.duckdb"
    assert _query(db, "select status, count(*) from debates group by all") == [("done", 12)]
    assert _query(db, "select count(*) from turns") == [(48,)]
    assert _query(db, "select count(*) from verdicts where valid") == [(12,)]
    failed = _query(db, "select count(*) from calls where error is not null")[0][0]
    assert failed > 0
    assert {o for o in (r.outcome for r in server.requests)} > {"ok"}
    cost = _query(db, "select sum(cost_usd) from calls")[0][0]
    assert cost > 0
    # The key was sent to the server (as a bearer token) and written nowhere.
    assert any("sk-planted-SECRET-4242" in (r.authorization or "") for r in server.requests)
    secret = b"sk-planted-SECRET-4242"
    for path in tmp_path.rglob("*"):
        if path.is_file():
            assert secret not in path.read_bytes(), path
    assert "ARENA_TEST_SECRET" in _query(db, "select spec from models where name = 'a'")[0][0]


def test_deterministic_bad_request_fails_its_debates_without_retry(
    tmp_path: Path, make_openai_server: MakeServer
) -> None:
    server = make_openai_server()
    models = _models(server)
    models["models"][2]["model"] = "openai/always-400"
    result = _tournament(tmp_path, models)
    assert result.returncode == 1
    db = tmp_path / "arena.duckdb"
    assert _query(db, "select count(*) from debates where status = 'failed'") == [(8,)]
    assert _query(db, "select max(attempt), min(error_kind) from calls where model = 'c'") == [
        (1, "bad_request")
    ]


def test_budget_stops_new_work(tmp_path: Path, make_openai_server: MakeServer) -> None:
    server = make_openai_server()
    result = _tournament(tmp_path, _models(server, max_concurrency=1), "--budget-usd", "0.0001")
    assert result.returncode == 3, result.stderr
    db = tmp_path / "arena.duckdb"
    assert _query(db, "select count(*) from debates where status = 'pending'")[0][0] > 0
    assert _query(db, "select sum(cost_usd) >= 0.0001 from calls") == [(True,)]
