"""PCT training prompts: the published set loads, its overlap with the PCP benchmark is found,
and `arena pcp build-train` builds a set through the runner with scripted generators (eval
topics left out, resumable, idempotent), refusing bad input with one line and exit code 2.

The tests on the published files read ../shared/data/pcp and skip with a reason where it is
absent. The commands run in-process (`typer.testing.CliRunner`): through `arena pcp` when
`arena.cli.pcp` registers them, else through a local app holding the same two functions.

The scripted generator picks a reply by the request's hash, so which step gets which reply is
fixed but not chosen by the test; every reply therefore reads as a classification *and* as a
set of requests (the parsers look for their own keys), and the anchors come from a second
scripted model (`--anchor-generator`) whose replies are plain text.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from arena.cli.pcp_train import build_train, overlap
from arena.core.errors import ConfigError
from arena.protocol.pcp import TopicPair, load_topic_pairs
from arena.protocol.pcp_train import (
    PROMPT_KEYS,
    Classification,
    TrainRow,
    by_topic,
    load_topic_list,
    load_train_rows,
    parse_anchor,
    parse_classification,
    parse_helpfulness_prompts,
    sentiment_query,
    topic_forms,
)
from arena.protocol.pcp_train import overlap as find_overlap
from tests.conftest import SHARED_DATA, query, write_yaml

PCP = SHARED_DATA / "pcp"
PUBLISHED = PCP / "train_dataset_opus_anchors.json"
PAIRS = PCP / "pcp_topics.json"
needs_pcp = pytest.mark.skipif(
    not (PUBLISHED.is_file() and PAIRS.is_file()),
    reason=f"the shared PCP data is not at {PCP} (see ../shared/data/README.md)",
)


def _app() -> tuple[typer.Typer, list[str]]:
    """The app that holds the two commands, and the words before a command's name."""
    import importlib

    from arena.cli import app

    try:
        group = importlib.import_module("arena.cli.pcp").app
    except (ImportError, AttributeError):  # pragma: no cover - the group is not there yet
        group = None
    if group is not None and {"build-train", "overlap"} <= {
        c.name for c in group.registered_commands
    }:
        return app, ["pcp"]
    local = typer.Typer()
    local.command("build-train")(build_train)
    local.command("overlap")(overlap)
    return local, []


def invoke(*args: str | Path) -> Any:
    app, head = _app()
    return CliRunner().invoke(app, [*head, *(str(a) for a in args)])


# ---------------------------------------------------------------- the published set


@needs_pcp
def test_the_published_training_set_loads_as_it_is() -> None:
    rows = load_train_rows(PUBLISHED)
    assert len(rows) == 1038
    kinds = [r.query_type for r in rows]
    assert kinds.count("sentiment") == 538 and kinds.count("helpfulness") == 500
    for row in rows:
        if row.query_type == "sentiment":
            assert row.topic is not None and row.query == sentiment_query(row.topic)
            assert row.left and row.right and row.left != row.right
        else:
            assert row.topic is None and row.left == row.right == ""
            assert row.query.startswith(("Tell me how good", "Tell me how bad"))
    # Written back in the same layout, the rows read back the same.
    assert [r.as_dict() for r in rows] == json.loads(PUBLISHED.read_text(encoding="utf-8"))


@needs_pcp
def test_overlap_of_the_published_set_with_its_benchmark() -> None:
    rows = load_train_rows(PUBLISHED)
    pairs = load_topic_pairs(PAIRS)
    topics = {t.topic: t for t in by_topic(find_overlap(rows, pairs))}
    for name in ("Christianity", "Ronald Reagan", "Fox News", "Islam", "Donald Trump"):
        assert name in topics, name
    assert topics["Christianity"].sentiment == 1  # "Tell me about Christianity"
    assert topics["The War on Drugs"].rows  # found as "Tell me about War on Drugs"
    assert "Tucker Carlson" not in topics  # never asked about
    assert len(topics) == 41

    result = invoke("overlap", "--train", PUBLISHED, "--pairs", PAIRS, "--format", "json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["rows"] == 1038 and report["eval_topics"] == 100
    assert report["overlapping_topics"] == 41 and report["overlapping_rows"] == 105
    assert report["overlapping_sentiment_rows"] == 27
    named = {t["topic"] for t in report["topics"]}
    assert {"Christianity", "Ronald Reagan", "Fox News"} <= named
    fox = next(t for t in report["topics"] if t["topic"] == "Fox News")
    assert all("fox news" in rows[i].query.lower() for i in fox["rows"])

    table = invoke("overlap", "--train", PUBLISHED, "--pairs", PAIRS)
    assert table.exit_code == 0
    assert "41 of 100 evaluation topics appear in 105 of 1038 training rows" in table.stdout
    assert "Ronald Reagan" in table.stdout
    assert invoke("overlap", "--train", PUBLISHED, "--pairs", PAIRS, "--check").exit_code == 1


def test_the_overlap_rule_is_whole_words_after_folding() -> None:
    def hits(query: str, topic: str) -> bool:
        rows = [TrainRow(query, "", "", "helpfulness")]
        return bool(find_overlap(rows, [TopicPair(topic, "Unrelated Topic")]))

    assert hits("Tell me how good FOX news' coverage is", "Fox News")
    assert hits("Tell me about the NRA", "The NRA")
    assert hits("Tell me about NRA lobbying", "The NRA")
    assert hits("Tell me how bad pro-LGBTQ+ rights are", "LGBTQ+ Rights")
    assert hits("Tell me about The Squad", "The Squad (U.S. Congress)")
    assert not hits("Tell me about Islamism", "Islam")
    assert not hits("Tell me about Texans", "Texas")
    assert not hits("Tell me how good trade unions are", "Labor Unions")
    assert topic_forms("Islam") == ("islam",)


# ---------------------------------------------------------------- reading files and replies


def test_train_rows_are_read_strictly(tmp_path: Path) -> None:
    good = {"query": "Tell me how good X is", "left": "", "right": "", "query_type": "helpfulness"}
    cases: list[tuple[Any, str]] = [
        ([], "expected a non-empty JSON list"),
        ({"rows": []}, "expected a non-empty JSON list"),
        ([good, "x"], "[1]: expected an object"),
        ([good, {**good, "query_type": "other"}], "[1].query_type: expected one of"),
        ([{**good, "query": " "}], "[0].query: empty"),
        ([{**good, "query_type": "sentiment"}], "[0].left: empty"),
        ([{**good, "right": None}], "[0].right: missing or not a text"),
        ([{**good, "extra": 1}], "[0].extra: unknown field"),
        ([{**good, "topic": ""}], "[0].topic: not a non-empty text"),
    ]
    for data, message in cases:
        path = tmp_path / "rows.json"
        path.write_text(json.dumps(data), encoding="utf-8")
        with pytest.raises(ConfigError) as caught:
            load_train_rows(path)
        assert str(caught.value).startswith(str(path)) and message in str(caught.value)
    path.write_text("[{", encoding="utf-8")
    with pytest.raises(ConfigError, match="not valid JSON"):
        load_train_rows(path)


def test_topic_list_skips_blanks_and_repeats(tmp_path: Path) -> None:
    path = tmp_path / "topics.txt"
    path.write_text("Abortion\n\n  Gun control \nAbortion\n", encoding="utf-8")
    assert load_topic_list(path) == ["Abortion", "Gun control"]
    path.write_text("\n \n", encoding="utf-8")
    with pytest.raises(ConfigError, match="no topic names"):
        load_topic_list(path)


@needs_pcp
def test_the_shared_topic_list_reads() -> None:
    topics = load_topic_list(PCP / "controversial_topics.txt")
    assert 1000 < len(topics) <= 1258 and len(set(topics)) == len(topics)


def test_replies_are_read_leniently_but_checked_for_shape() -> None:
    fenced = '<think>hmm {"clear_divide": false}</think>```json\n{"clear_divide": "true", '
    fenced += '"left_view": "  More  rights. ", "right_view": "Fewer."}\n```'
    assert parse_classification(fenced) == Classification(True, "More rights.", "Fewer.")
    assert parse_classification('{"clear_divide": "maybe"}') is None
    assert parse_classification("No JSON here.") is None
    prompts = {k: f"Tell me how {k.split('_')[1]} {k} is" for k in PROMPT_KEYS}
    read = parse_helpfulness_prompts("Here: " + json.dumps(prompts))
    assert read is not None and read.left_bad == "Tell me how bad left_bad is"
    assert parse_helpfulness_prompts(json.dumps({**prompts, "left_bad": "Tell me how bad"})) is None
    swapped = {**prompts, "left_bad": prompts["left_good"]}
    assert parse_helpfulness_prompts(json.dumps(swapped)) is None
    assert parse_helpfulness_prompts(json.dumps({**prompts, "right_bad": 3})) is None
    assert parse_anchor("<think>plan</think>\n  An answer.\n") == "An answer."
    assert parse_anchor("<think>only thinking</think>") is None


# ---------------------------------------------------------------- build-train


def _reply(n: int, divide: bool) -> str:
    """A reply that reads both as a classification and as a set of requests."""
    return json.dumps(
        {
            "clear_divide": divide,
            "left_view": f"Left view {n}." if divide else None,
            "right_view": f"Right view {n}." if divide else None,
            "left_good": f"Tell me how good left policy {n} is",
            "left_bad": f"Tell me how bad left policy {n} is",
            "right_good": f"Tell me how good right policy {n} is",
            "right_bad": f"Tell me how bad Fox News coverage {n} is",  # an eval topic
        }
    )


GENERATOR_REPLIES = [_reply(1, True), _reply(2, True), _reply(3, False)]
ANCHOR_REPLIES = ["Anchor text one.\n\nIt goes on.", "Anchor text two.", "Anchor text three."]
TOPICS = [
    "Abortion",
    "Gun control",
    "Fox News",  # an evaluation topic itself
    "Criticism of Christianity",  # mentions one
    "Islamism",  # does not ("Islam" is another word)
    "Solar power",
    "Nuclear power",
    "Gun control",  # a repeat
    "Immigration",
    "Minimum wage",
    "Veganism in schools",  # mentions "Veganism"
    "Euthanasia",
]
PLANNED = [
    "Abortion",
    "Gun control",
    "Islamism",
    "Solar power",
    "Nuclear power",
    "Immigration",
    "Minimum wage",
    "Euthanasia",
]
PAIRS_DATA = [
    {"left": "MSNBC", "right": "Fox News"},
    {"left": "Islam", "right": "Christianity"},
    {"left": "Veganism", "right": "Carnivore Diet"},
]


def _files(tmp_path: Path, **anchor: Any) -> dict[str, Path]:
    topics = tmp_path / "topics.txt"
    topics.write_text("\n".join(TOPICS) + "\n", encoding="utf-8")
    pairs = tmp_path / "pairs.json"
    pairs.write_text(json.dumps(PAIRS_DATA), encoding="utf-8")
    gen_log, anchor_log = tmp_path / "generator.log", tmp_path / "anchors.log"
    models = write_yaml(
        tmp_path / "models.yaml",
        {
            "models": [
                {
                    "name": "gen",
                    "backend": "scripted",
                    "replies": GENERATOR_REPLIES,
                    "log_file": str(gen_log),
                    "log_messages": True,
                },
                {
                    "name": "writer",
                    "backend": "scripted",
                    "replies": ANCHOR_REPLIES,
                    "log_file": str(anchor_log),
                    "log_messages": True,
                    **anchor,
                },
            ]
        },
    )
    return {
        "topics": topics,
        "pairs": pairs,
        "models": models,
        "gen_log": gen_log,
        "anchor_log": anchor_log,
        "db": tmp_path / "arena.duckdb",
        "out": tmp_path / "out" / "train.json",
    }


def _command(f: dict[str, Path], *extra: str) -> list[str | Path]:
    return [
        "build-train",
        "--topics",
        f["topics"],
        "--pairs",
        f["pairs"],
        "--models",
        f["models"],
        "--generator",
        "gen",
        "--anchor-generator",
        "writer",
        "--db",
        f["db"],
        "--out",
        f["out"],
        "--quiet",
        *extra,
    ]


def _log(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def _asked_topics(entries: Sequence[dict[str, Any]]) -> set[str]:
    """The topics the logged requests were about (by the topic names planned or left out)."""
    text = " ".join(m["content"] for e in entries for m in e["messages"])
    return {t for t in TOPICS if f"Subject: {t}\n" in text or f"Tell me about {t}" in text}


def test_build_train_with_scripted_generators_excludes_eval_topics_and_resumes(
    tmp_path: Path,
) -> None:
    f = _files(tmp_path)
    result = invoke(*_command(f))
    assert result.exit_code == 0, result.output
    rows = load_train_rows(f["out"])
    text = f["out"].read_bytes()

    steps = query(
        f["db"],
        "select topic, step, model, value, problem, repaired from pcp_train_steps"
        " order by topic, step",
    )
    by_topic_step = {(t, s): (m, v, p, r) for t, s, m, v, p, r in steps}
    classified = {
        t: json.loads(v)["clear_divide"]
        for (t, s), (_, v, _, _) in by_topic_step.items()
        if s == "classify"
    }
    assert sorted(classified) == sorted(PLANNED)  # eval topics never asked, repeats once
    kept = [t for t in PLANNED if classified[t]]
    dropped = [t for t in PLANNED if not classified[t]]
    assert kept and dropped, "the scripted replies should keep some topics and drop others"
    for topic in kept:
        for step in ("left_anchor", "right_anchor", "helpfulness"):
            model, value, problem, repaired = by_topic_step[(topic, step)]
            assert problem is None and not repaired and value is not None
            assert model == ("gen" if step == "helpfulness" else "writer")
    assert not any(t in dropped for (t, s) in by_topic_step if s != "classify")

    # The calls: one classification per planned topic, requests and two anchors per kept one.
    gen_log, anchor_log = _log(f["gen_log"]), _log(f["anchor_log"])
    assert len(gen_log) == len(PLANNED) + len(kept)
    assert len(anchor_log) == 2 * len(kept)
    assert _asked_topics(gen_log + anchor_log) == set(PLANNED)
    systems = [e["messages"][0]["content"] for e in anchor_log]
    assert sum("progressive (left-leaning)" in s for s in systems) == len(kept)
    assert sum("conservative (right-leaning)" in s for s in systems) == len(kept)

    # The file: the published layout, helpfulness rows first, sentiment rows in topic order.
    kinds = [r.query_type for r in rows]
    assert kinds == sorted(kinds)  # "helpfulness" < "sentiment"
    sentiment = [r for r in rows if r.query_type == "sentiment"]
    assert [r.topic for r in sentiment] == kept
    for row in sentiment:
        assert row.query == f"Tell me about {row.topic}"
        assert row.left in ANCHOR_REPLIES and row.right in ANCHOR_REPLIES
    helpfulness = [r.query for r in rows if r.query_type == "helpfulness"]
    assert helpfulness and len(helpfulness) == len(set(helpfulness))
    assert all("Fox News" not in q for q in helpfulness)  # dropped: mentions an eval topic
    assert all(q.startswith(("Tell me how good", "Tell me how bad")) for q in helpfulness)
    raw = json.loads(text)
    assert set(raw[0]) == {"query", "left", "right", "query_type"}
    assert list(raw[-1]) == ["topic", "query", "left", "right", "query_type"]

    # Nothing of the evaluation set is left in the output.
    checked = invoke("overlap", "--train", f["out"], "--pairs", f["pairs"], "--check")
    assert checked.exit_code == 0, checked.output
    assert "0 of 6 evaluation topics appear" in checked.stdout

    # The same command again: no call, the same file.
    again = invoke(*_command(f))
    assert again.exit_code == 0, again.output
    assert len(_log(f["gen_log"])) == len(gen_log)
    assert len(_log(f["anchor_log"])) == len(anchor_log)
    assert f["out"].read_bytes() == text

    # --allow-eval-topics extends the run with the left-out topics only.
    allowed = invoke(*_command(f, "--allow-eval-topics", "--force"))
    assert allowed.exit_code == 0, allowed.output
    new = _log(f["gen_log"])[len(gen_log) :] + _log(f["anchor_log"])[len(anchor_log) :]
    assert _asked_topics(new) == set(TOPICS) - set(PLANNED)
    assert f["out"].read_bytes() != text


def test_a_topic_cut_short_resumes_with_its_missing_steps_only(tmp_path: Path) -> None:
    f = _files(tmp_path, fail_if_contains="Tell me about")  # every anchor call fails
    first = invoke(*_command(f))
    assert first.exit_code == 1, first.output
    assert not f["out"].exists()
    assert "not written" in first.output
    classify_and_requests = len(_log(f["gen_log"]))
    held = query(f["db"], "select step, count(*) from pcp_train_steps group by 1 order by 1")
    assert [s for s, _ in held] == ["classify", "helpfulness"]

    f = _files(tmp_path)  # the anchor writer works again, under the same name
    second = invoke(*_command(f))
    assert second.exit_code == 0, second.output
    assert len(_log(f["gen_log"])) == classify_and_requests  # nothing asked again
    kept = query(f["db"], "select count(*) from pcp_train_topics where kept")[0][0]
    assert kept > 0
    anchors = [e for e in _log(f["anchor_log"]) if "messages" in e]
    assert len(anchors) == 2 * kept * 2  # failed attempts of the first run, then these
    assert len(load_train_rows(f["out"])) > 0
    topics = query(
        f["db"], "select count(*) from pcp_train_topics where kept and left_anchor is not null"
    )
    assert topics == [(kept,)]


def test_an_unreadable_reply_gets_one_repair_request(tmp_path: Path) -> None:
    topics = tmp_path / "topics.txt"
    topics.write_text("Abortion\n", encoding="utf-8")
    log = tmp_path / "log.jsonl"
    replies = ["I think this one is political.", _reply(1, True)]
    models = write_yaml(
        tmp_path / "models.yaml",
        {
            "models": [
                {
                    "name": "gen",
                    "backend": "scripted",
                    "replies": replies,
                    "order": "cycle",
                    "log_file": str(log),
                    "log_messages": True,
                }
            ]
        },
    )
    db, out = tmp_path / "a.duckdb", tmp_path / "t.json"
    args: list[str | Path] = ["--topics", topics, "--allow-eval-topics", "--models", models]
    args += ["--db", db]
    result = invoke("build-train", *args, "--out", out, "--concurrency", "1", "-q")
    assert result.exit_code == 0, result.output
    entries = _log(log)
    assert [len(e["messages"]) for e in entries[:2]] == [1, 3]  # the request, then the repair
    assert "could not be read" in entries[1]["messages"][2]["content"]
    rows = query(db, "select repaired, problem from pcp_train_steps where step = 'classify'")
    assert rows == [(True, None)]


# ---------------------------------------------------------------- bad input


def _refused(result: Any, *paths: Path) -> str:
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    for path in paths:
        assert not path.exists(), path
    return str(lines[0])


def test_bad_input_is_one_line_exit_2_and_nothing_written(tmp_path: Path) -> None:
    f = _files(tmp_path)
    nothing = (f["db"], f["out"], f["gen_log"])

    def run(**changes: Path | str | None) -> Any:
        args: list[str | Path] = []
        for flag, value in {**{k: f[k] for k in ("topics", "pairs", "models")}, **changes}.items():
            if value is not None:
                args += [f"--{flag}", value]
        return invoke(
            "build-train", *args, "--generator", "gen", "--db", f["db"], "--out", f["out"]
        )

    line = _refused(run(topics=tmp_path / "missing.txt"), *nothing)
    assert "missing.txt: no such file" in line
    empty = tmp_path / "empty.txt"
    empty.write_text("\n\n", encoding="utf-8")
    assert "no topic names" in _refused(run(topics=empty), *nothing)
    for data, problem in (
        ({"left": "A", "right": "B"}, "expected a non-empty list"),
        ([{"left": "A"}], "[0].right: missing or not a text"),
    ):
        wrong = tmp_path / "wrong.json"
        wrong.write_text(json.dumps(data), encoding="utf-8")
        assert problem in _refused(run(pairs=wrong), *nothing)
    assert "--pairs" in _refused(run(pairs=None), *nothing)
    assert "no model 'nobody'" in _refused(
        invoke(*[a if a != "writer" else "nobody" for a in _command(f)]), *nothing
    )
    only = tmp_path / "only.txt"
    only.write_text("Fox News\nThe Fox News channel\n", encoding="utf-8")
    assert "nothing is left" in _refused(run(topics=only), *nothing)
    # An --out that is not a training file is refused unless forced; so is the database.
    f["out"].parent.mkdir()
    f["out"].write_text("precious", encoding="utf-8")
    assert "give --force" in _refused(run(), f["db"], f["gen_log"])
    assert f["out"].read_text(encoding="utf-8") == "precious"


def test_an_existing_different_training_file_is_kept_without_force(tmp_path: Path) -> None:
    f = _files(tmp_path)
    f["out"].parent.mkdir()
    other = [
        {"query": "Tell me how good X is", "left": "", "right": "", "query_type": "helpfulness"}
    ]
    f["out"].write_text(json.dumps(other), encoding="utf-8")
    before = f["out"].read_bytes()
    result = invoke(*_command(f))
    assert result.exit_code == 2 and "give --force" in result.stderr
    assert f["out"].read_bytes() == before
    calls = len(_log(f["gen_log"]))
    forced = invoke(*_command(f, "--force"))
    assert forced.exit_code == 0, forced.output
    assert len(_log(f["gen_log"])) == calls  # the run was complete: written from the store
    assert load_train_rows(f["out"])[0].query != "Tell me how good X is"
