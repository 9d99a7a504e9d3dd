"""Runs recorded before contestants and judges became roles around a provider spec continue.

`tests/data/v0_1/` was written by arena 0.1 (commit daaf030), in that folder:
`arena tournament --topics topics.yaml --models models.yaml --db old.duckdb -q`, the database then
gzipped to `run.duckdb.gz`. `specs.json` holds entries of every backend and the `models.model` and
`models.spec` values 0.1 stored for them.
"""

from __future__ import annotations

import gzip
import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from arena.config import ContestantRole, JudgeRole, ModelsFile
from arena.config.load import load_models
from arena.runs import stored_spec
from tests.conftest import REPO, arena_cmd, query

DATA = REPO / "tests" / "data" / "v0_1"
COMMAND = ["tournament", "--topics", "topics.yaml", "--models", "models.yaml", "--db", "old.duckdb"]


def _roles(parsed: ModelsFile) -> list[ContestantRole | JudgeRole]:
    return [*parsed.models, *parsed.judges]


def test_every_backend_stores_the_spec_it_stored_before(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """One change is deliberate: a `local` model that leaves `dtype` unset now has 'auto'
    (bfloat16 only on a CPU that computes it natively, else float32; issue 9), stored as such.
    On a CPU with native bfloat16 its model id is the one stored before, so its runs continue
    there; elsewhere the id says float32 and a run refuses to continue, as its texts would
    differ."""
    from arena.backends import local_model

    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("flags\t\t: fpu avx2 avx512f avx512_bf16\n")
    monkeypatch.setattr(local_model, "CPUINFO", cpuinfo)
    data = json.loads((DATA / "specs.json").read_text())
    parsed = ModelsFile.model_validate(data["entries"])
    for role, stored in zip(
        _roles(parsed), data["stored"]["contestant"] + data["stored"]["judge"], strict=True
    ):
        expected = stored["spec"]
        if role.provider.backend == "local":
            expected = expected.replace('"dtype": "bfloat16"', '"dtype": "auto"')
        assert role.provider.model_id() == stored["model"]
        assert json.dumps(stored_spec(role)) == expected


def test_a_new_option_is_stored_only_when_set() -> None:
    judge = JudgeRole.model_validate({"name": "j", "backend": "sim"})
    assert "average_orders" not in stored_spec(judge)
    averaging = JudgeRole.model_validate({"name": "j", "backend": "sim", "average_orders": True})
    spec = stored_spec(averaging)
    assert spec["average_orders"] is True
    assert list(spec)[:12] == [*list(stored_spec(judge))[:11], "average_orders"]


@pytest.fixture
def old_run(tmp_path: Path) -> Path:
    """A folder with the 0.1 database and the files it was run from."""
    for name in ("topics.yaml", "models.yaml"):
        shutil.copy(DATA / name, tmp_path / name)
    with gzip.open(DATA / "run.duckdb.gz") as src, (tmp_path / "old.duckdb").open("wb") as dst:
        shutil.copyfileobj(src, dst)
    return tmp_path


def _arena(folder: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run(
        arena_cmd(*args),
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        cwd=folder,
        stdin=subprocess.DEVNULL,
    )


def _rows(db: Path) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    runs = query(db, "select run_id, config, command from runs order by run_id")
    models = query(db, "select role, name, backend, model, params, spec from models order by all")
    return runs, models


def test_a_run_recorded_before_continues_unchanged(old_run: Path) -> None:
    db = old_run / "old.duckdb"
    runs, models = _rows(db)
    assert len(runs) == 1 and len(models) == 5

    result = _arena(old_run, *COMMAND, "-q")

    assert result.returncode == 0, result.stderr
    assert "defined differently" not in result.stderr
    assert f"continuing run {runs[0][0]}" in result.stderr
    assert _rows(db) == (runs, models)  # runs.config rewritten byte for byte
    parsed = load_models(old_run / "models.yaml")
    stored = [spec for *_, spec in models]  # ordered by role: contestants, then judges
    assert [json.dumps(stored_spec(role)) for role in _roles(parsed)] == stored


@pytest.mark.parametrize(
    ("section", "index", "change", "changed"),
    [
        ("models", 0, {"persona": "a poet"}, "persona"),
        ("models", 1, {"skill": 2.0}, "model"),
        ("judges", 0, {"average_orders": True}, "average_orders"),
        ("judges", 2, {"swap_check": False}, "swap_check"),
    ],
)
def test_a_changed_definition_is_still_refused(
    old_run: Path, section: str, index: int, change: dict[str, Any], changed: str
) -> None:
    path = old_run / "models.yaml"
    models = yaml.safe_load(path.read_text())
    models[section][index].update(change)
    path.write_text(yaml.safe_dump(models, sort_keys=False))
    before = _rows(old_run / "old.duckdb")

    result = _arena(old_run, *COMMAND, "-q")

    assert result.returncode == 2
    name = models[section][index]["name"]
    assert f"{name!r} is defined differently" in result.stderr
    assert f"({changed} changed)" in result.stderr
    assert _rows(old_run / "old.duckdb") == before
