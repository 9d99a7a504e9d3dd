"""`arena train report`: how a training run went, read back from the database.

A run's rows are written with the recorder `arena train` uses (`training.records.RunRecorder`),
with known values; the report gives them back: the benchmark pivoted by step in its headline
order, the last training figures, every metric in JSON, an HTML page whose charts draw the
benchmark and the reward; a file with no training run, or an unknown `--run`, is one `error:`
line and exit code 2.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import run_arena


@pytest.fixture
def db(tmp_path: Path) -> Path:
    from storage import Store
    from training.records import RunRecorder

    path = tmp_path / "arena.duckdb"
    with Store.open(path) as store:
        recorder = RunRecorder(store, "grpo-test")
        recorder.start(
            kind="grpo",
            base="smollm2-135m-instruct",
            out=tmp_path / "adapter",
            config={"grpo": {"beta": 0.04}},
            pairs={"folder": str(tmp_path), "task": "bbq"},
            command="arena train grpo --task bbq",
        )
        for step, acc, dis in ((0, 0.40, 0.90), (5, 0.70, 0.85), (10, 0.95, 0.30)):
            recorder.metrics(
                step, {"eval_bbq/acc_ambig": acc, "eval_bbq/acc_disambig": dis, "x": True}
            )
        for step in range(1, 11):
            recorder.metrics(
                step,
                {"reward": step / 10, "rewards/bbq_reward/mean": step / 10, "loss": 0.1, "kl": 0.0},
            )
        recorder.finish("done", reason=None, steps=10, adapter_step=10)
    return path


def test_the_benchmark_by_step_and_the_last_figures(db: Path) -> None:
    from eval.training_report import benchmark_rows, render_markdown, training_report

    report = training_report(db)
    assert report.run["run_id"] == "grpo-test" and report.run["status"] == "done"
    header, rows = benchmark_rows(report)
    assert header == ["step", "acc_ambig", "acc_disambig"]
    assert rows == [["0", "0.4", "0.9"], ["5", "0.7", "0.85"], ["10", "0.95", "0.3"]]
    text = render_markdown(report)
    assert "| 10 | 0.95 | 0.3 |" in text
    assert "- **reward**: 1 at step 10" in text
    assert "x" not in report.metrics  # a boolean is not a metric


def test_json_html_and_the_command(db: Path, tmp_path: Path) -> None:
    done = run_arena("train", "report", "--db", db, "-f", "json")
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    assert data["metrics"]["eval_bbq/acc_ambig"] == {"0": 0.4, "5": 0.7, "10": 0.95}
    assert data["run"]["config"] == {"grpo": {"beta": 0.04}}
    out = tmp_path / "report.html"
    done = run_arena("train", "report", "--db", db, "-f", "html", "-o", out)
    assert done.returncode == 0, done.stderr
    page = out.read_text(encoding="utf-8")
    assert page.count("<svg") == 4  # the benchmark, the reward, the loss, the KL
    assert "benchmark: bbq" in page and ">acc_ambig</text>" in page
    assert ">bbq_reward</text>" in page  # each reward function under its name
    table = run_arena("train", "report", "--db", db)
    assert table.returncode == 0 and "acc_disambig" in table.stdout


def test_no_training_run_and_an_unknown_run_are_one_line(db: Path, tmp_path: Path) -> None:
    done = run_arena("train", "report", "--db", db, "--run", "grpo-nope")
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        f"error: {db}: no training run 'grpo-nope' (training runs: grpo-test)"
    ]
    from storage import Store

    empty = tmp_path / "empty.duckdb"
    Store.open(empty).close()
    done = run_arena("train", "report", "--db", empty)
    assert done.returncode == 2
    assert "no training run in this file (arena train records one)" in done.stderr
