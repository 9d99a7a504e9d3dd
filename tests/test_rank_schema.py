"""The report's JSON schema in docs/rank.md is the one generated from `eval.report.models`.

`scripts/rank_schema.py --check` fails when the block between the schema markers differs from
what the types generate; these tests run it for real, on the repository's file and on a stale
copy, and check that every field of the report has a description (its docstring).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

from eval.report.models import JSON_SCHEMA_VERSION, RankReport, report_json_schema

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "scripts" / "rank_schema.py"
DOCS = REPO / "docs" / "rank.md"


def _script(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(SCRIPT), *[str(a) for a in args]],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
    )


def test_docs_schema_is_the_generated_one() -> None:
    result = _script("--check")
    assert result.returncode == 0, (
        f"{result.stderr}docs/rank.md's schema is stale: run `python scripts/rank_schema.py`"
    )


def test_check_fails_on_a_stale_copy_and_the_script_repairs_it(tmp_path: Path) -> None:
    stale = tmp_path / "rank.md"
    text = DOCS.read_text(encoding="utf-8")
    edited = text.replace("| `win_rate` | float \\| null |", "| `win_rate` | float |", 1)
    assert edited != text
    stale.write_text(edited, encoding="utf-8")
    result = _script("--check", "--docs", stale)
    assert result.returncode == 1 and "rank_schema.py" in result.stderr
    assert stale.read_text(encoding="utf-8") == edited  # --check writes nothing
    rewritten = _script("--docs", stale)
    assert rewritten.returncode == 0, rewritten.stderr
    assert stale.read_text(encoding="utf-8") == text
    assert _script("--check", "--docs", stale).returncode == 0


def test_a_file_without_the_markers_is_an_error(tmp_path: Path) -> None:
    bare = tmp_path / "rank.md"
    bare.write_text("# no schema here\n", encoding="utf-8")
    result = _script("--docs", bare)
    assert result.returncode != 0 and "schema:begin" in result.stderr
    assert bare.read_text(encoding="utf-8") == "# no schema here\n"


def _objects(schema: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {str(schema["title"]): schema, **schema["$defs"]}


def test_every_object_and_field_is_described() -> None:
    schema = report_json_schema()
    for name, node in _objects(schema).items():
        assert node.get("description"), f"{name} has no docstring"
        for field, spec in node["properties"].items():
            assert spec.get("description"), f"{name}.{field} has no docstring under it"
            assert "\n" not in spec["description"]


def test_schema_version_and_key_order() -> None:
    schema = report_json_schema()
    assert schema["properties"]["schema_version"]["const"] == JSON_SCHEMA_VERSION == 2
    # the JSON document prints its fields in the order the schema lists them (version 2's order)
    version_2 = [
        "schema_version",
        "method",
        "ties",
        "scale",
        "judge",
        "run_id",
        "filters",
        "debates",
        "bootstrap",
        "battles",
        "models",
        "side_advantage",
        "tie_param",
        "matrices",
        "elo_over_time",
        "graph",
        "per_judge",
        "judges",
    ]
    assert list(schema["properties"]) == list(RankReport.model_fields) == version_2
    # an output document: every field is always present (null, never left out)
    for name, node in _objects(schema).items():
        assert set(node["required"]) == set(node["properties"]), name
        assert node["additionalProperties"] is False, name
