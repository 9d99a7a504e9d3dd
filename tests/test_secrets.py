"""Secrets never leave the process: a key a provider quotes back is in no record, file or output.

The end-to-end test plants a wrong key for every backend that can return a provider's error
(`litellm`, `vllm-server`), against the local test server made to quote the key back in its 401
(`echo_key`), and looks for the key everywhere: every file under the test's folder, every text
column of every table of the database (read with DuckDB, since its files compress strings), stdout
and stderr. The `local`, `sim`, `scripted` and in-process `vllm` backends hold no key (no `*_env`
field); `test_only_the_http_backends_name_keys` keeps that list honest.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote

import duckdb
import pytest

from arena.backends import GenerateSettings, Message
from arena.backends.registry import ROLES, registered
from arena.backends.scripted import ScriptedBackend, ScriptedSpec
from arena.calling import Caller
from arena.config import RetrySettings
from arena.core.errors import BackendError, as_backend_error
from arena.core.redact import MASK, Redactor, redact, remember_env
from arena.records import CallRow
from tests.conftest import tournament
from tests.openai_server import OpenAITestServer

MakeServer = Callable[..., OpenAITestServer]

# --- the redactor ---------------------------------------------------------------------------


def test_values_of_named_variables_are_hidden_in_every_form() -> None:
    secret = 'planted "Value" 0042/x'
    redactor = Redactor(environ={"ARENA_PLANTED": secret, "OTHER": "not-a-secret-9999"})
    assert redactor(f"saw {secret}") == f"saw {secret}", "nothing is hidden before it is named"
    redactor.remember_env(["ARENA_PLANTED", None])
    for form in (secret, json.dumps(secret)[1:-1], quote(secret, safe="")):
        text = redactor(f"401: Incorrect API key provided: '{form}' (try again)")
        assert secret not in text and form not in text and MASK in text, text
    assert "not-a-secret-9999" in redactor("value not-a-secret-9999"), "unnamed, unguessed"


def test_variables_named_like_secrets_are_hidden_without_being_named() -> None:
    environ = {
        "HF_TOKEN": "plainvaluewithoutshape",
        "OPENAI_API_KEY": "another-plain-value",
        "MY_SERVICE_SECRET": "third-plain-value",
        "TOKENIZERS_PARALLELISM": "false",
        "HOME": "/home/someone-with-a-long-name",
        "SHORT_TOKEN": "abc",
    }
    redactor = Redactor(environ=environ)
    for name in ("HF_TOKEN", "OPENAI_API_KEY", "MY_SERVICE_SECRET"):
        assert environ[name] not in redactor(f"error: {environ[name]} refused")
    for kept in ("false", "/home/someone-with-a-long-name", "abc"):
        assert kept in redactor(f"error: {kept} here")


@pytest.mark.parametrize(
    ("text", "secret"),
    [
        ("Incorrect API key provided: sk-proj-AbCdEf123456GhIjKl", "sk-proj-AbCdEf123456GhIjKl"),
        ("key sk-ant-api03-abcdefghij0123456789 is invalid", "sk-ant-api03-abcdefghij0123456789"),
        ("Authorization: Bearer wrong-key-4711", "wrong-key-4711"),
        ("header 'Basic dXNlcjpwYXNzd29yZA=='", "dXNlcjpwYXNzd29yZA=="),
        ("token hf_AbCdEfGhIjKlMnOpQrStUvWxYz012345 lacks access", "hf_AbCdEfGhIjKlMnOpQrStUv"),
        ("gated repo: ghp_0123456789abcdefghijABCDEFGHIJklmnop", "ghp_0123456789abcdefghij"),
        ("AWS key AKIAIOSFODNN7EXAMPLE denied", "AKIAIOSFODNN7EXAMPLE"),
        ("GET /v1?key=0123456789abcdef0123456789abcdef&x=1", "0123456789abcdef0123456789abcdef"),
        ('{"api_key": "Zm9vYmFyYmF6cXV4MTIzNDU2"}', "Zm9vYmFyYmF6cXV4MTIzNDU2"),
        ("access_token: 9f86d081884c7d659a2feaa0c55ad015", "9f86d081884c7d659a2feaa0c55ad015"),
        ("password=hunter2hunter2hunter2", "hunter2hunter2hunter2"),
        (
            "jwt eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTYifQ.c2lnbmF0dXJlLXBhcnQ",
            "eyJhbGciOiJIUzI1NiJ9",
        ),
    ],
)
def test_key_shapes_are_hidden(text: str, secret: str) -> None:
    redacted = Redactor(environ={})(text)
    assert secret not in redacted and MASK in redacted, redacted


@pytest.mark.parametrize(
    "text",
    [
        "The key point is that tokens of appreciation matter more than any password policy.",
        "sk-learn is a library; the token limit is 4096 tokens; the secret is out.",
        "max_tokens=512 and top_logprobs=20 at turn 3; context length 4096 tokens exceeded",
        "model meta-llama/Llama-3.1-8B-Instruct is not served at http://127.0.0.1:8000/v1",
        "HTTP 404: model 'test-model' does not exist; GET http://127.0.0.1:8000/v1/models",
        "call 1a2b3c4d5e6f7a8b9c0d1e2f3a4b5c6d failed after 3 attempts (rate_limit)",
        "A bearer of bad news carries a key to the city.",
        "Basic assumptions: Bearer tokens are secrets, and so are passwords.",
        "call timed out",
    ],
)
def test_ordinary_text_passes_unchanged(text: str) -> None:
    assert Redactor(environ={})(text) == text


# --- where errors are made, recorded and printed --------------------------------------------


def test_backend_errors_are_redacted_when_made(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ARENA_TEST_PLANTED_A", "planted-value-a-0042")
    remember_env(["ARENA_TEST_PLANTED_A"])
    error = BackendError("m: 401 Incorrect key 'planted-value-a-0042'", kind="auth")
    assert "planted-value-a-0042" not in str(error) and MASK in str(error)
    wrapped = as_backend_error(RuntimeError("client said planted-value-a-0042"))
    assert "planted-value-a-0042" not in str(wrapped)
    assert redact("planted-value-a-0042") == MASK


class _Leaky(ScriptedBackend):
    """A backend whose client library raises an error that quotes the key."""

    async def generate(self, messages: list[Message], settings: GenerateSettings) -> Any:
        raise RuntimeError("401 from provider: key planted-value-b-0042 is wrong")


def test_the_caller_records_and_raises_redacted_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ARENA_TEST_PLANTED_B", "planted-value-b-0042")
    remember_env(["ARENA_TEST_PLANTED_B"])
    spec = ScriptedSpec(name="m", backend="scripted", replies=["x"])
    rows: list[CallRow] = []
    caller = Caller(
        {"m": _Leaky(spec)},
        max_concurrency=1,
        request_timeout_s=5,
        retry=RetrySettings(max_attempts=1),
        record=rows.append,
        run_id="r",
    )
    with pytest.raises(BackendError) as caught:
        asyncio.run(
            caller.call(
                "m", [Message("user", "hi")], GenerateSettings(8), purpose="t", debate_id=None
            )
        )
    assert "planted-value-b-0042" not in str(caught.value)
    assert caught.value.__cause__ is None, "a cause quoting the key would print in a traceback"
    (row,) = rows
    assert row.error is not None and MASK in row.error and "planted-value-b-0042" not in row.error


def test_only_the_http_backends_name_keys() -> None:
    """Every backend whose spec names an environment variable is covered by the test below."""
    keyed = {
        name
        for role in ROLES
        for name, entry in registered(role).items()
        if entry.spec.env_fields or any(f.endswith("_env") for f in entry.spec.model_fields)
    }
    assert keyed == {"litellm", "vllm-server"}


# --- end to end: a wrong key, quoted back by the server -------------------------------------

PLANTED = "planted-Wrong-Key-0042-zz"  # no known key shape: only its variable's name betrays it
RIGHT = "right-server-key-7"


def _models(backend: str, server: OpenAITestServer) -> dict[str, Any]:
    model = "openai/gpt-4o-mini" if backend == "litellm" else "test-model"
    entry = {"backend": backend, "model": model, "api_base": server.url}
    keyed = {**entry, "api_key_env": "ARENA_TEST_PLANTED_KEY"}
    return {
        "tournament": {"turns": 2, "retry": {"max_attempts": 2, "initial_backoff_s": 0}},
        "models": [{"name": "a", **keyed}, {"name": "b", **keyed}],
        "judges": [{"name": "j", **keyed}],
    }


def _text_columns(db: Path) -> list[str]:
    """Every value of every text or JSON column of every table, as text."""
    found: list[str] = []
    with duckdb.connect(str(db), read_only=True) as con:
        columns = con.execute(
            "select table_name, column_name from information_schema.columns "
            "where data_type in ('VARCHAR', 'JSON') or data_type like '%[]'"
        ).fetchall()
        for table, column in columns:
            rows = con.execute(f'select cast("{column}" as varchar) from "{table}"').fetchall()
            found.extend(str(value) for (value,) in rows if value is not None)
    return found


@pytest.mark.parametrize("backend", ["litellm", "vllm-server"])
def test_a_quoted_back_key_is_in_no_file_record_or_output(
    tmp_path: Path, make_openai_server: MakeServer, backend: str
) -> None:
    server = make_openai_server(api_key=RIGHT, echo_key=True)
    result = tournament(
        tmp_path, _models(backend, server), 1, env={"ARENA_TEST_PLANTED_KEY": PLANTED}
    )
    # The key was sent, refused, and quoted back: the test is not vacuous.
    assert result.returncode == 1, result.stderr
    assert server.requests and all(r.outcome == "unauthorized" for r in server.requests)
    assert all(r.authorization == f"Bearer {PLANTED}" for r in server.requests)

    assert PLANTED not in result.stdout and PLANTED not in result.stderr
    assert MASK in result.stderr, result.stderr  # the summary names the failure, redacted
    for path in tmp_path.rglob("*"):
        if path.is_file():
            assert PLANTED.encode() not in path.read_bytes(), path
    db = tmp_path / "arena.duckdb"
    assert not [value for value in _text_columns(db) if PLANTED in value]
    with duckdb.connect(str(db), read_only=True) as con:
        calls = con.execute("select error_kind, error from calls").fetchall()
        debates = con.execute("select status, error from debates").fetchall()
    assert calls and all(kind == "auth" and MASK in error for kind, error in calls), calls
    assert debates and all(s == "failed" and MASK in error for s, error in debates), debates
