"""The config package's parts on their own: roles around provider specs, the backend registry,
the generic error reporter, the one-parse YAML loader; and the CLI package's lazy imports."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Literal

import pytest
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from arena.backends import BackendSpec, create_backend, register, registered
from arena.backends.scripted import ScriptedBackend, ScriptedSpec
from arena.backends.sim import SimBackend, SimJudgeBackend, SimJudgeSpec, SimSpec
from arena.config import ContestantRole, JudgeRole
from arena.config.errors import Positions, flag_problem, validate
from arena.config.load import parse_yaml
from arena.core.errors import ConfigError
from tests.conftest import REPO


def test_a_flat_entry_is_split_into_role_and_provider() -> None:
    entry = {"name": "a", "backend": "sim", "skill": 1.0, "persona": "p", "params": {"seed": 3}}
    role = ContestantRole.model_validate(entry)
    assert isinstance(role.provider, SimSpec)
    assert (role.name, role.persona, role.params.seed, role.provider.skill) == ("a", "p", 3, 1.0)
    judge = JudgeRole.model_validate({"name": "j", "backend": "sim", "verdict": "logprob"})
    assert isinstance(judge.provider, SimJudgeSpec)  # `sim` is another class for judges
    assert (judge.verdict, judge.average_orders, judge.swap_check) == ("logprob", False, False)
    # Already split (from Python): left as it is.
    again = JudgeRole(provider=judge.provider, verdict="logprob", average_orders=True)
    assert again.provider is judge.provider or again.provider == judge.provider
    assert again.average_orders


def test_average_orders_and_swap_check_exclude_each_other() -> None:
    with pytest.raises(ValidationError, match="cannot be combined with swap_check"):
        JudgeRole.model_validate(
            {"name": "j", "backend": "sim", "swap_check": True, "average_orders": True}
        )


def test_the_registry_is_keyed_by_backend_name_per_role() -> None:
    contestants, judges = registered("contestant"), registered("judge")
    assert list(contestants) == list(judges)
    assert (contestants["sim"].spec, contestants["sim"].backend) == (SimSpec, SimBackend)
    assert (judges["sim"].spec, judges["sim"].backend) == (SimJudgeSpec, SimJudgeBackend)
    assert judges["scripted"] == contestants["scripted"]
    role = ContestantRole.model_validate({"name": "s", "backend": "scripted", "replies": ["x"]})
    assert isinstance(create_backend(role.provider), ScriptedBackend)
    assert isinstance(create_backend(role), ScriptedBackend)  # a role stands for its provider


def test_register_refuses_a_spec_whose_tag_is_another_name() -> None:
    with pytest.raises(ValueError, match="must be Literal"):
        register("replay", ScriptedSpec, ScriptedBackend)

    class Nameless(BackendSpec):
        backend: Literal["nameless"]

    with pytest.raises(TypeError, match="no backend registered for Nameless"):
        create_backend(Nameless(name="n", backend="nameless"))


class _Item(BaseModel):
    """A record of some future input file (a JSON Lines benchmark, say)."""

    model_config = ConfigDict(extra="forbid")

    question: str = Field(min_length=1)
    answer: Literal["A", "B", "C"]


def test_the_error_reporter_serves_any_input_file() -> None:
    class Items(BaseModel):
        items: list[_Item]

    records = [{"question": "q", "answer": "A"}, {"question": "q", "answer": "B", "answr": "B"}]
    positions: Positions = {("items", 0): 1, ("items", 1): 2}  # JSON Lines: a record a line
    with pytest.raises(ConfigError) as caught:
        validate(Items, {"items": records}, "bbq.jsonl", positions)
    assert str(caught.value) == "bbq.jsonl:2: items[1].answr: unknown field; did you mean 'answer'?"
    records[1] = {"question": "", "answer": "A"}
    with pytest.raises(ConfigError, match=r"^bbq.jsonl:2: items\[1\].question: String should"):
        validate(Items, {"items": records}, "bbq.jsonl", positions)


def test_flag_problem_names_the_flag() -> None:
    class Options(BaseModel):
        run_id: str | None = None
        max_per_key: int = Field(1, ge=1)

    with pytest.raises(ValidationError) as caught:
        Options(max_per_key=0)
    assert flag_problem(caught.value) == (
        "--max-per-key",
        "Input should be greater than or equal to 1",
    )
    with pytest.raises(ValidationError) as caught:
        Options.model_validate({"run_id": 5})
    assert flag_problem(caught.value, {"run_id": "--run"})[0] == "--run"


def test_one_parse_gives_data_and_lines(tmp_path: Path) -> None:
    path = tmp_path / "f.yaml"
    path.write_text("a: 1\nlist:\n  - x: 2\n    y: &anchor [3]\n  - *anchor\n")
    data, positions = parse_yaml(path)
    assert data == {"a": 1, "list": [{"x": 2, "y": [3]}, [3]]}
    assert positions[("a",)] == 1
    assert positions[("list",)] == 2
    assert positions[("list", 0)] == 3
    assert positions[("list", 0, "y")] == 4
    assert positions[("list", 1)] == 4  # an alias: where its anchor is


def test_a_recursive_alias_does_not_loop(tmp_path: Path) -> None:
    path = tmp_path / "f.yaml"
    path.write_text("a: &x [1, *x]\n")
    _, positions = parse_yaml(path)
    assert positions[("a",)] == 1


def test_the_cli_imports_nothing_heavy_for_help() -> None:
    code = (
        "import sys, arena.cli; "
        "print(sorted(m for m in ('pydantic', 'duckdb', 'yaml', 'storage', 'arena.config',"
        " 'arena.backends', 'rich.table') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=True
    )
    assert out.stdout.strip() == "[]"
