"""Every user mistake: one line naming file and field, exit code 2, nothing called or written."""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from arena.cli import app
from tests.conftest import run_arena, write_yaml

TOPICS: list[dict[str, Any]] = [
    {"id": "t1", "motion": "This house would test everything."},
    {"id": "t2", "motion": "This house would test nothing.", "category": "c", "tags": ["x"]},
]


def _models(log: Path) -> dict[str, Any]:
    scripted = {"backend": "scripted", "replies": ["An argument."], "log_file": str(log)}
    return {
        "tournament": {"turns": 2},
        "models": [{"name": "a", **scripted}, {"name": "b", **scripted}],
        "judges": [
            {
                "name": "j",
                "backend": "scripted",
                "replies": ['{"winner": "FOR", "rationale": "r"}'],
                "log_file": str(log),
            }
        ],
    }


Files = dict[str, Any]  # {"topics": <topics.yaml data>, "models": <models.yaml data>}
Mutation = Callable[[Files], None]


def _walk(files: Files, path: tuple[Any, ...]) -> Any:
    target: Any = files
    for step in path:
        target = target[step]
    return target


def _set(path: tuple[Any, ...], value: Any) -> Mutation:
    def mutate(files: Files) -> None:
        _walk(files, path[:-1])[path[-1]] = copy.deepcopy(value)

    return mutate


def _merge(path: tuple[Any, ...], values: dict[str, Any]) -> Mutation:
    def mutate(files: Files) -> None:
        _walk(files, path).update(copy.deepcopy(values))

    return mutate


def _delete(path: tuple[Any, ...]) -> Mutation:
    def mutate(files: Files) -> None:
        del _walk(files, path[:-1])[path[-1]]

    return mutate


def _append(path: tuple[Any, ...], index: int) -> Mutation:
    def mutate(files: Files) -> None:
        target = _walk(files, path)
        target.append(copy.deepcopy(target[index]))

    return mutate


# (case id, mutation or raw text for a file, extra CLI args, file named, text expected in message)
CASES: list[tuple[str, Any, list[str], str, str]] = [
    (
        "topics-missing-motion",
        _delete(("topics", 0, "motion")),
        [],
        "topics.yaml",
        "topics[0].motion: required field is missing",
    ),
    (
        "topics-unknown-field",
        _set(("topics", 1, "motoin"), "x"),
        [],
        "topics.yaml",
        "topics[1].motoin: unknown field; did you mean 'motion'?",
    ),
    (
        "topics-duplicate-id",
        _append(("topics",), 0),
        [],
        "topics.yaml",
        "topics[2].id: duplicate id 't1'",
    ),
    (
        "topics-id-with-space",
        _set(("topics", 0, "id"), "has space"),
        [],
        "topics.yaml",
        "topics[0].id: String should match pattern",
    ),
    (
        "topics-empty-motion",
        _set(("topics", 0, "motion"), ""),
        [],
        "topics.yaml",
        "topics[0].motion: String should have at least 1 character",
    ),
    (
        "topics-tags-not-list",
        _set(("topics", 1, "tags"), 5),
        [],
        "topics.yaml",
        "topics[1].tags: Input should be a valid list",
    ),
    (
        "topics-bad-turns",
        _set(("topics",), {"topics": TOPICS, "tournament": {"turns": 0}}),
        [],
        "topics.yaml",
        "tournament.turns: Input should be greater than or equal to 2",
    ),
    (
        "models-unknown-backend",
        _set(("models", "models", 0, "backend"), "magic"),
        [],
        "models.yaml",
        "models[0].backend: unknown backend 'magic' (known: sim, scripted",
    ),
    (
        "models-missing-backend",
        _delete(("models", "models", 1, "backend")),
        [],
        "models.yaml",
        "models[1]: field 'backend' is missing",
    ),
    (
        "models-duplicate-name",
        _set(("models", "models", 1, "name"), "a"),
        [],
        "models.yaml",
        "models[1].name: duplicate name 'a'",
    ),
    (
        "models-name-with-space",
        _set(("models", "models", 0, "name"), "my model"),
        [],
        "models.yaml",
        "models[0].name: String should match pattern",
    ),
    (
        "models-unknown-field",
        _set(("models", "models", 0, "delay"), 1),
        [],
        "models.yaml",
        "models[0].delay: unknown field; did you mean 'delay_s'?",
    ),
    (
        "models-one-contestant",
        _delete(("models", "models", 1)),
        [],
        "models.yaml",
        "models: List should have at least 2 items",
    ),
    (
        "models-no-judges",
        _set(("models", "judges"), []),
        [],
        "models.yaml",
        "judges: List should have at least 1 item",
    ),
    (
        "models-zero-concurrency",
        _set(("models", "models", 0, "max_concurrency"), 0),
        [],
        "models.yaml",
        "models[0].max_concurrency: Input should be greater than or equal to 1",
    ),
    (
        "models-negative-temperature",
        _set(("models", "models", 1, "params"), {"temperature": -1}),
        [],
        "models.yaml",
        "models[1].params.temperature: Input should be greater than or equal to 0",
    ),
    (
        "models-unknown-param",
        _set(("models", "models", 1, "params"), {"temprature": 0.5}),
        [],
        "models.yaml",
        "models[1].params.temprature: unknown field; did you mean 'temperature'?",
    ),
    (
        "models-turns-too-few",
        _set(("models", "tournament", "turns"), 1),
        [],
        "models.yaml",
        "tournament.turns: Input should be greater than or equal to 2",
    ),
    (
        "models-unknown-setting",
        _set(("models", "tournament", "turn"), 4),
        [],
        "models.yaml",
        "tournament.turn: unknown field; did you mean 'turns'?",
    ),
    (
        "models-unknown-judge-selected",
        _set(("models", "tournament", "judges"), ["nobody"]),
        [],
        "models.yaml",
        "tournament.judges: no judge named 'nobody'",
    ),
    (
        "models-sim-skill-not-number",
        _set(
            ("models", "models"),
            [{"name": "s", "backend": "sim", "skill": "high"}, {"name": "t", "backend": "sim"}],
        ),
        [],
        "models.yaml",
        "models[0].skill: Input should be a valid number",
    ),
    (
        "models-sim-failures-over-one",
        _set(
            ("models", "models"),
            [
                {"name": "s", "backend": "sim", "failures": {"server_error": 0.7, "timeout": 0.6}},
                {"name": "t", "backend": "sim"},
            ],
        ),
        [],
        "models.yaml",
        "models[0].failures: failure rates add up to more than 1",
    ),
    (
        "models-judge-with-skill",
        _set(("models", "judges"), [{"name": "j", "backend": "sim", "skill": 1}]),
        [],
        "models.yaml",
        "judges[0].skill: unknown field",
    ),
    (
        "models-scripted-no-replies",
        _set(("models", "models", 0, "replies"), []),
        [],
        "models.yaml",
        "models[0].replies: List should have at least 1 item",
    ),
    (
        "models-not-a-mapping",
        _set(("models",), ["a", "b"]),
        [],
        "models.yaml",
        "expected a mapping with 'models:' and 'judges:'",
    ),
    (
        "flag-turns",
        None,
        ["--turns", "1"],
        "command line",
        "--turns: Input should be greater than or equal to 2",
    ),
    (
        "flag-replicates",
        None,
        ["--replicates", "0"],
        "command line",
        "--replicates: Input should be greater than or equal to 1",
    ),
    (
        "flag-judges",
        None,
        ["--judges", "j,zed"],
        "models.yaml",
        "tournament.judges: no judge named 'zed'",
    ),
]

CASES += [
    (
        "models-missing-env-var",
        _set(
            ("models", "models", 0),
            {
                "name": "api",
                "backend": "litellm",
                "model": "openai/gpt-4o-mini",
                "api_key_env": "ARENA_TEST_KEY_THAT_IS_NOT_SET",
            },
        ),
        [],
        "models.yaml",
        "models[0].api_key_env: environment variable ARENA_TEST_KEY_THAT_IS_NOT_SET is not set",
    ),
    (
        "models-missing-env-var-of-a-selected-judge",
        _set(
            ("models", "judges"),
            [
                {"name": "j", "backend": "scripted", "replies": ['{"winner": "FOR"}']},
                {
                    "name": "api",
                    "backend": "litellm",
                    "model": "openai/gpt-4o-mini",
                    "api_key_env": "ARENA_TEST_KEY_THAT_IS_NOT_SET",
                },
            ],
        ),
        ["--judges", "api"],
        "models.yaml",
        "judges[1].api_key_env: environment variable ARENA_TEST_KEY_THAT_IS_NOT_SET is not set",
    ),
    (
        "models-verdict-on-contestant",
        _set(("models", "models", 0, "verdict"), "logprob"),
        [],
        "models.yaml",
        "models[0].verdict: applies to judges only",
    ),
    (
        "models-swap-check-on-contestant",
        _set(("models", "models", 1, "swap_check"), True),
        [],
        "models.yaml",
        "models[1].swap_check: applies to judges only",
    ),
    (
        "models-swap-check-not-bool",
        _set(("models", "judges", 0, "swap_check"), "twice"),
        [],
        "models.yaml",
        "judges[0].swap_check: Input should be a valid boolean",
    ),
    (
        "models-persona-on-judge",
        _set(("models", "judges", 0, "persona"), "a fair judge"),
        [],
        "models.yaml",
        "judges[0].persona: applies to contestants only",
    ),
    (
        "models-bad-verdict-mode",
        _set(("models", "judges", 0, "verdict"), "vibes"),
        [],
        "models.yaml",
        "judges[0].verdict: Input should be 'json' or 'logprob'",
    ),
    (
        "flag-budget",
        None,
        ["--budget-usd", "-1"],
        "command line",
        "--budget-usd: Input should be greater than 0",
    ),
]

# Provider settings and role options are written side by side in one entry; the loader splits them.
CASES += [
    (
        "models-average-orders-with-swap-check",
        _merge(("models", "judges", 0), {"swap_check": True, "average_orders": True}),
        [],
        "models.yaml",
        "judges[0].average_orders: cannot be combined with swap_check",
    ),
    (
        "models-average-orders-on-contestant",
        _set(("models", "models", 0, "average_orders"), True),
        [],
        "models.yaml",
        "models[0].average_orders: applies to judges only",
    ),
    (
        "models-tie-margin-on-contestant",
        _set(("models", "models", 1, "tie_margin"), 0.1),
        [],
        "models.yaml",
        "models[1].tie_margin: applies to judges only",
    ),
    (
        "models-misspelt-role-option",
        _set(("models", "models", 0, "persna"), "a poet"),
        [],
        "models.yaml",
        "models[0].persna: unknown field; did you mean 'persona'?",
    ),
    (
        "models-misspelt-judge-option",
        _set(("models", "judges", 0, "verdit"), "logprob"),
        [],
        "models.yaml",
        "judges[0].verdit: unknown field; did you mean 'verdict'?",
    ),
    (
        "models-missing-name",
        _delete(("models", "models", 1, "name")),
        [],
        "models.yaml",
        "models[1].name: required field is missing",
    ),
    (
        "models-judge-bad-tie-margin",
        _set(("models", "judges", 0, "tie_margin"), 0.9),
        [],
        "models.yaml",
        "judges[0].tie_margin: Input should be less than or equal to 0.5",
    ),
    (
        "models-entry-not-a-mapping",
        _set(("models", "models", 1), "b"),
        [],
        "models.yaml",
        "models[1]: Input should be a valid dictionary",
    ),
    (
        "flag-concurrency",
        None,
        ["--concurrency", "0"],
        "command line",
        "--concurrency: Input should be greater than or equal to 1",
    ),
]

RAW_CASES: list[tuple[str, str, str, str]] = [
    (
        "topics-bad-yaml",
        "topics.yaml",
        "- id: t1\n  motion: [unclosed\n",
        "topics.yaml:3: invalid YAML",
    ),
    ("topics-empty-file", "topics.yaml", "", "topics.yaml: file is empty"),
    ("models-bad-yaml", "models.yaml", "models:\n\t- name: a\n", "models.yaml:2: invalid YAML"),
    ("topics-missing-file", "topics.yaml", "<absent>", "topics.yaml: file not found"),
    ("models-missing-file", "models.yaml", "<absent>", "models.yaml: file not found"),
]


def _invoke(tmp_path: Path, extra: list[str]) -> tuple[int, str]:
    db = tmp_path / "arena.duckdb"
    args = ["tournament", "--topics", str(tmp_path / "topics.yaml")]
    args += ["--models", str(tmp_path / "models.yaml"), "--db", str(db), "-q", *extra]
    result = CliRunner().invoke(app, args)
    assert not db.exists(), "nothing may be written on bad input"
    return result.exit_code, result.output


def _check(tmp_path: Path, code: int, output: str, source: str, expected: str) -> None:
    lines = output.strip().splitlines()
    assert code == 2, output
    assert len(lines) == 1, output
    assert "Traceback" not in output
    assert lines[0].startswith("error: ")
    assert source in lines[0]
    assert expected in lines[0], lines[0]
    assert not (tmp_path / "calls.log").exists(), "no model may be called on bad input"


@pytest.mark.parametrize(
    ("case", "mutate", "extra", "source", "expected"), CASES, ids=[c[0] for c in CASES]
)
def test_bad_config(
    tmp_path: Path, case: str, mutate: Mutation | None, extra: list[str], source: str, expected: str
) -> None:
    files: Files = {"topics": copy.deepcopy(TOPICS), "models": _models(tmp_path / "calls.log")}
    if mutate is not None:
        mutate(files)
    write_yaml(tmp_path / "topics.yaml", files["topics"])
    write_yaml(tmp_path / "models.yaml", files["models"])
    code, output = _invoke(tmp_path, extra)
    _check(tmp_path, code, output, source, expected)


@pytest.mark.parametrize(
    ("case", "name", "text", "expected"), RAW_CASES, ids=[c[0] for c in RAW_CASES]
)
def test_bad_file(tmp_path: Path, case: str, name: str, text: str, expected: str) -> None:
    write_yaml(tmp_path / "topics.yaml", TOPICS)
    write_yaml(tmp_path / "models.yaml", _models(tmp_path / "calls.log"))
    target = tmp_path / name
    if text == "<absent>":
        target.unlink()
    else:
        target.write_text(text)
    code, output = _invoke(tmp_path, [])
    _check(tmp_path, code, output, name, expected)


def test_line_numbers_point_into_the_file(tmp_path: Path) -> None:
    models = _models(tmp_path / "calls.log")
    models["models"][1]["skill"] = 3  # scripted models have no skill
    write_yaml(tmp_path / "topics.yaml", TOPICS)
    path = write_yaml(tmp_path / "models.yaml", models)
    code, output = _invoke(tmp_path, [])
    line_no = next(i for i, line in enumerate(path.read_text().splitlines(), 1) if "skill" in line)
    assert code == 2
    assert f"models.yaml:{line_no}: models[1].skill: unknown field" in output


def test_line_of_a_role_option_and_of_a_provider_setting(tmp_path: Path) -> None:
    """Both halves of a split entry point at their own line in the flat entry."""
    models = _models(tmp_path / "calls.log")
    models["judges"][0] |= {"verdict": "logprob", "swap_check": True, "average_orders": True}
    write_yaml(tmp_path / "topics.yaml", TOPICS)
    path = write_yaml(tmp_path / "models.yaml", models)
    lines = path.read_text().splitlines()
    line_no = next(i for i, line in enumerate(lines, 1) if "average_orders" in line)
    code, output = _invoke(tmp_path, [])
    assert code == 2
    assert f"models.yaml:{line_no}: judges[0].average_orders: cannot be combined" in output

    models = _models(tmp_path / "calls.log")
    models["judges"][0]["delay_s"] = -1
    path = write_yaml(tmp_path / "models.yaml", models)
    lines = path.read_text().splitlines()
    line_no = next(i for i, line in enumerate(lines, 1) if "delay_s" in line)
    code, output = _invoke(tmp_path, [])
    assert code == 2
    assert f"models.yaml:{line_no}: judges[0].delay_s: Input should be greater than" in output


def test_real_process_prints_one_line_and_no_traceback(tmp_path: Path) -> None:
    write_yaml(tmp_path / "topics.yaml", [{"id": "t1"}])
    write_yaml(tmp_path / "models.yaml", _models(tmp_path / "calls.log"))
    result = run_arena(
        "tournament",
        "--topics",
        tmp_path / "topics.yaml",
        "--models",
        tmp_path / "models.yaml",
        "--db",
        tmp_path / "x.duckdb",
    )
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.strip().count("\n") == 0
    assert "topics[0].motion: required field is missing" in result.stderr
    assert not (tmp_path / "x.duckdb").exists()
