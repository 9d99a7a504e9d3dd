"""Every user mistake: one line naming file and field, exit code 2, nothing called or written.

Hostile inputs too (a billion-laughs YAML, a FIFO, /dev/zero, a 50 MB file, numbers no column
holds, a plan of billions of debates): the same one line, in under two seconds, before the
database file exists.
"""

from __future__ import annotations

import copy
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from arena.cli import app
from arena.config import InputLimits, load_tournament
from arena.core.errors import ConfigError
from tests.conftest import run_arena, write_yaml

HOSTILE_SECONDS = 2.0
"""A hostile input is refused within this long (the process already started)."""

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

# Numbers: finite, and within what the store's columns hold (seed BIGINT; turns, replicates,
# max_tokens INTEGER); a plan over 100,000 debates needs --yes. All refused before any write.
CASES += [
    (
        "models-skill-nan",
        _set(
            ("models", "models"),
            [
                {"name": "s", "backend": "sim", "skill": float("nan")},
                {"name": "t", "backend": "sim"},
            ],
        ),
        [],
        "models.yaml",
        "models[0].skill: Input should be a finite number",
    ),
    (
        "models-skill-inf",
        _set(
            ("models", "models"),
            [
                {"name": "s", "backend": "sim"},
                {"name": "t", "backend": "sim", "skill": float("-inf")},
            ],
        ),
        [],
        "models.yaml",
        "models[1].skill: Input should be a finite number",
    ),
    (
        "models-temperature-nan",
        _set(("models", "models", 0, "params"), {"temperature": float("nan")}),
        [],
        "models.yaml",
        "models[0].params.temperature: Input should be a finite number",
    ),
    (
        "models-sim-failure-rate-nan",
        _set(
            ("models", "models"),
            [
                {"name": "s", "backend": "sim", "failures": {"timeout": float("nan")}},
                {"name": "t", "backend": "sim"},
            ],
        ),
        [],
        "models.yaml",
        "models[0].failures.timeout: Input should be a finite number",
    ),
    (
        "models-budget-inf",
        _set(("models", "tournament", "budget_usd"), float("inf")),
        [],
        "models.yaml",
        "tournament.budget_usd: Input should be a finite number",
    ),
    (
        "models-retry-total-inf",
        _set(("models", "tournament", "retry"), {"max_total_s": float("inf")}),
        [],
        "models.yaml",
        "tournament.retry.max_total_s: Input should be a finite number",
    ),
    (
        "models-params-max-tokens-too-big",
        _set(("models", "models", 1, "params"), {"max_tokens": 10**12}),
        [],
        "models.yaml",
        "models[1].params.max_tokens: Input should be less than or equal to 2147483647",
    ),
    (
        "models-params-seed-too-big",
        _set(("models", "models", 0, "params"), {"seed": 2**64}),
        [],
        "models.yaml",
        "models[0].params.seed: Input should be less than or equal to 9223372036854775807",
    ),
    (
        "topics-seed-too-big",
        _set(("topics",), {"topics": TOPICS, "tournament": {"seed": 2**63}}),
        [],
        "topics.yaml",
        "tournament.seed: Input should be less than or equal to 9223372036854775807",
    ),
    (
        "models-replicates-too-big",
        _set(("models", "tournament", "replicates"), 2**31),
        [],
        "models.yaml",
        "tournament.replicates: Input should be less than or equal to 2147483647",
    ),
    (
        "models-judge-max-tokens-too-big",
        _set(("models", "tournament", "judge_max_tokens"), 10**12),
        [],
        "models.yaml",
        "tournament.judge_max_tokens: Input should be less than or equal to 2147483647",
    ),
    (
        "models-plan-over-threshold",
        _set(("models", "tournament", "replicates"), 30_000),
        [],
        "command line",
        "--yes: the plan is 120,000 debates (2 topics x 2 ordered pairs x 30,000 replicates; "
        "about 360,000 model calls, 3 a debate), over the 100,000",
    ),
    (
        "models-key-written-instead-of-its-variable",
        _set(
            ("models", "models", 0),
            {
                "name": "api",
                "backend": "vllm-server",
                "model": "m",
                "api_base": "http://127.0.0.1:9/v1",
                "api_key_env": "sk-this-is-the-key-itself-0123456789",
            },
        ),
        [],
        "models.yaml",
        "models[0].api_key_env: String should match pattern",
    ),
    (
        "flag-seed-too-big",
        None,
        ["--seed", str(2**63)],
        "command line",
        "--seed: Input should be less than or equal to 9223372036854775807",
    ),
    (
        "flag-seed-too-small",
        None,
        ["--seed", str(-(2**63) - 1)],
        "command line",
        "--seed: Input should be greater than or equal to -9223372036854775808",
    ),
    (
        "flag-max-tokens-too-big",
        None,
        ["--max-tokens", str(10**12)],
        "command line",
        "--max-tokens: Input should be less than or equal to 2147483647",
    ),
    (
        "flag-budget-inf",
        None,
        ["--budget-usd", "inf"],
        "command line",
        "--budget-usd: Input should be a finite number",
    ),
    (
        "flag-budget-nan",
        None,
        ["--budget-usd", "nan"],
        "command line",
        "--budget-usd: Input should be a finite number",
    ),
    (
        "flag-replicates-over-integer",
        None,
        ["--replicates", str(10**10)],
        "command line",
        "--replicates: Input should be less than or equal to 2147483647",
    ),
    (
        "flag-replicates-a-billion",
        None,
        ["--replicates", str(10**9)],
        "command line",
        "--yes: the plan is 4,000,000,000 debates (2 topics x 2 ordered pairs x "
        "1,000,000,000 replicates; about 12,000,000,000 model calls",
    ),
    (
        "flag-concurrency-over-integer",
        None,
        ["--concurrency", str(2**31)],
        "command line",
        "--concurrency: Input should be less than or equal to 2147483647",
    ),
    (
        "flag-max-input-mb-zero",
        None,
        ["--max-input-mb", "0"],
        "command line",
        "--max-input-mb: must be a finite number above 0",
    ),
    (
        "flag-max-input-mb-nan",
        None,
        ["--max-input-mb", "nan"],
        "command line",
        "--max-input-mb: must be a finite number above 0",
    ),
]


def _billion_laughs(root: str) -> str:
    """Nine levels of ten aliases: 10^9 strings from under a kilobyte."""
    lines = ["l0: &l0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    for level in range(1, 10):
        lines.append(f"l{level}: &l{level} [{', '.join([f'*l{level - 1}'] * 10)}]")
    return "\n".join(lines) + f"\n{root}\n"


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
    (
        "topics-duplicate-key",
        "topics.yaml",
        "- id: t1\n  motion: One motion.\n  motion: Another.\n",
        "topics.yaml:3: topics[0].motion: duplicate key (first written at line 2)",
    ),
    (
        "models-duplicate-key-in-entry",
        "models.yaml",
        "models:\n  - {name: a, backend: sim}\n  - name: b\n    backend: sim\n"
        "    backend: scripted\njudges: [{name: j, backend: sim}]\n",
        "models.yaml:5: models[1].backend: duplicate key (first written at line 4)",
    ),
    (
        "models-duplicate-section",
        "models.yaml",
        "models: [{name: a, backend: sim}, {name: b, backend: sim}]\njudges: []\n"
        "models: [{name: c, backend: sim}, {name: d, backend: sim}]\n",
        "models.yaml:3: models: duplicate key (first written at line 1)",
    ),
    (
        "topics-billion-laughs",
        "topics.yaml",
        _billion_laughs("topics: [{id: t, motion: m, tags: *l9}]"),
        "topics.yaml:4: aliases expand to more than 10,000 nodes",
    ),
    (
        "models-billion-laughs",
        "models.yaml",
        _billion_laughs("models: *l9\njudges: *l9"),
        "models.yaml:4: aliases expand to more than 10,000 nodes",
    ),
    (
        "topics-nested-too-deep",
        "topics.yaml",
        "[" * 50_000 + "]" * 50_000,
        "topics.yaml:1: nested more than 64 levels deep",
    ),
    (
        "topics-integer-too-long",
        "topics.yaml",
        "- id: t1\n  motion: " + "7" * 100_000 + "\n",
        "topics.yaml:2: integer too long (100,000 characters)",
    ),
    (
        "models-recursive-alias",
        "models.yaml",
        "models: &m [*m, *m]\njudges: [{name: j, backend: sim}]\n",
        "models.yaml:1: models[0]: Input should be a valid dictionary",
    ),
    (
        "topics-not-utf8",
        "topics.yaml",
        "<bytes>",
        "topics.yaml: cannot read: not UTF-8 text",
    ),
]

HOSTILE = {
    "topics-billion-laughs",
    "models-billion-laughs",
    "topics-nested-too-deep",
    "topics-integer-too-long",
}
"""Raw cases that must be refused within HOSTILE_SECONDS."""


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
    assert "sk-this-is-the-key-itself" not in output, "a key is never printed"


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
    elif text == "<bytes>":
        target.write_bytes(b"- id: t1\n  motion: caf\xe9 \xff\xfe\n")
    else:
        target.write_text(text)
    started = time.perf_counter()
    code, output = _invoke(tmp_path, [])
    elapsed = time.perf_counter() - started
    _check(tmp_path, code, output, name, expected)
    if case in HOSTILE:
        assert elapsed < HOSTILE_SECONDS, f"{case} took {elapsed:.2f} s"


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


# --- files that are not what they seem: refused from os.stat, before anything is opened -------


def _fifo(path: Path) -> None:
    os.mkfifo(path)  # opening it to read would wait for a writer forever


def _dev_zero(path: Path) -> None:
    path.symlink_to("/dev/zero")  # reading it never ends


def _directory(path: Path) -> None:
    path.mkdir()


def _sparse_50_mb(path: Path) -> None:
    with path.open("wb") as file:
        file.truncate(50 * 2**20)  # 50 MB on paper, no disk used


def _padded(size: int) -> Callable[[Path], None]:
    def write(path: Path) -> None:
        text = "".join(f"- {{id: t{i}, motion: Motion {i}.}}\n" for i in range(2))
        path.write_text(text + "#" * (size - len(text) - 1) + "\n")

    return write


# (case id, file replaced, how, extra flags, text expected in the message)
SPECIAL_FILES: list[tuple[str, str, Callable[[Path], None], list[str], str]] = [
    ("topics-fifo", "topics.yaml", _fifo, [], "is a FIFO (named pipe), not a regular file"),
    ("models-fifo", "models.yaml", _fifo, [], "is a FIFO (named pipe), not a regular file"),
    ("topics-dev-zero", "topics.yaml", _dev_zero, [], "is a character device, not a regular"),
    ("models-directory", "models.yaml", _directory, [], "is a directory, not a YAML file"),
    (
        "topics-50-mb",
        "topics.yaml",
        _sparse_50_mb,
        [],
        "file is 50.0 MB, over the 10.0 MB limit (raise it with --max-input-mb)",
    ),
    (
        "models-over-a-lowered-cap",
        "models.yaml",
        _padded(4096),
        ["--max-input-mb", "0.001"],
        "file is 4,096 bytes, over the 1,048 bytes limit (raise it with --max-input-mb)",
    ),
]


@pytest.mark.timeout(30)  # a read that blocks fails here instead of hanging the suite
@pytest.mark.parametrize(
    ("case", "name", "make", "extra", "expected"), SPECIAL_FILES, ids=[c[0] for c in SPECIAL_FILES]
)
def test_special_file(
    tmp_path: Path,
    case: str,
    name: str,
    make: Callable[[Path], None],
    extra: list[str],
    expected: str,
) -> None:
    write_yaml(tmp_path / "topics.yaml", TOPICS)
    write_yaml(tmp_path / "models.yaml", _models(tmp_path / "calls.log"))
    target = tmp_path / name
    target.unlink()
    make(target)
    started = time.perf_counter()
    code, output = _invoke(tmp_path, extra)
    elapsed = time.perf_counter() - started
    _check(tmp_path, code, output, f"{name}: ", expected)
    assert elapsed < HOSTILE_SECONDS, f"{case} took {elapsed:.2f} s"


def test_max_input_mb_raises_the_cap(tmp_path: Path) -> None:
    write_yaml(tmp_path / "models.yaml", _models(tmp_path / "calls.log"))
    _padded(4096)(tmp_path / "topics.yaml")
    code, output = _invoke(tmp_path, ["--max-input-mb", "0.001"])
    _check(tmp_path, code, output, "topics.yaml", "over the 1,048 bytes limit")
    args = ["tournament", "--topics", str(tmp_path / "topics.yaml")]
    args += ["--models", str(tmp_path / "models.yaml"), "--db", str(tmp_path / "ok.duckdb")]
    result = CliRunner().invoke(app, [*args, "-q", "--max-input-mb", "0.01"])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "ok.duckdb").exists()


def test_yes_confirms_a_large_plan(tmp_path: Path) -> None:
    """The threshold counts debates; `--yes` (`confirmed`) lets any size through."""
    topics = write_yaml(tmp_path / "topics.yaml", TOPICS)
    models = write_yaml(tmp_path / "models.yaml", _models(tmp_path / "calls.log"))
    flags = {"replicates": 25_001}  # 2 topics x 2 ordered pairs x 25,001 = 100,004 debates
    assert load_tournament(topics, models, {"replicates": 25_000}).planned_debates() == 100_000
    with pytest.raises(ConfigError, match="the plan is 100,004 debates"):
        load_tournament(topics, models, flags)
    config = load_tournament(topics, models, flags, InputLimits(confirmed=True))
    assert config.planned_debates() == 100_004 and config.calls_per_debate() == 3


@pytest.mark.timeout(60)
def test_real_process_refuses_a_fifo_without_waiting(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "topics.yaml")
    write_yaml(tmp_path / "models.yaml", _models(tmp_path / "calls.log"))
    result = run_arena(
        "tournament",
        "--topics",
        tmp_path / "topics.yaml",
        "--models",
        tmp_path / "models.yaml",
        "--db",
        tmp_path / "x.duckdb",
        timeout=50,
    )
    assert result.returncode == 2, result.stderr
    assert result.stdout == "" and result.stderr.strip().count("\n") == 0
    assert "topics.yaml: is a FIFO (named pipe), not a regular file" in result.stderr
    assert not (tmp_path / "x.duckdb").exists()
