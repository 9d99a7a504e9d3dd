"""Preference pairs by the PERSUADE rule: exact counts on hand-built stores, filters, caps,
splits, prompts, export, and a property test against a plain-Python reference."""

from __future__ import annotations

import datetime as dt
import itertools
import json
import tempfile
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from arena.core.errors import UserError
from arena.protocol.debate import Transcript, role_of, side_of
from pairing import (
    PAIR_COLUMNS,
    PairOptions,
    check_names,
    derive_pairs,
    prompt_messages,
    write_pairs,
)
from storage import Store

NOW = dt.datetime(2026, 3, 1, 12, 0, 0)


@dataclass
class D:
    """A hand-built debate: its turns' texts default to unique strings."""

    debate_id: str
    for_model: str
    against_model: str
    winner: str | None
    topic_id: str = "t1"
    run_id: str = "r1"
    texts: Sequence[str] = field(default_factory=list)
    turns: int = 2


def motion(topic_id: str) -> str:
    return f"This house supports {topic_id}."


def fill(
    store: Store,
    debates: Sequence[D],
    max_tokens: int = 200,
    personas: dict[str, str] | None = None,
    verdicts: dict[str, list[str | None]] | None = None,
) -> None:
    """Write `debates` to `store`: runs, topics, contestants (with `personas`), debates, turns,
    and `verdicts` (debate id -> one winner per judge j0, j1, ...; None for an invalid one)."""
    runs = {d.run_id for d in debates}
    store.insert_rows(
        "runs",
        [
            {
                "run_id": r,
                "kind": "tournament",
                "created_at": NOW,
                "updated_at": NOW,
                "status": "complete",
                "seed": 0,
                "turns": max(d.turns for d in debates),
                "replicates": 1,
                "max_tokens": max_tokens,
                "config": "{}",
                "command": "arena tournament",
                "arena_version": "0.1.0",
            }
            for r in sorted(runs)
        ],
    )
    store.insert_rows(
        "topics",
        [
            {"run_id": r, "topic_id": t, "motion": motion(t)}
            for r, t in sorted({(d.run_id, d.topic_id) for d in debates})
        ],
    )
    contestants = sorted({(d.run_id, m) for d in debates for m in (d.for_model, d.against_model)})
    store.insert_rows(
        "models",
        [
            {
                "run_id": r,
                "role": "contestant",
                "name": m,
                "backend": "sim",
                "params": "{}",
                "spec": json.dumps({"name": m, "persona": (personas or {}).get(m)}),
            }
            for r, m in contestants
        ],
    )
    store.insert_rows(
        "verdicts",
        [
            {
                "debate_id": debate_id,
                "judge": f"j{i}",
                "variant": "sides",
                "counts": True,
                "winner": winner,
                "valid": winner is not None,
                "repaired": False,
                "raw_text": str(winner),
                "created_at": NOW,
            }
            for debate_id, winners in (verdicts or {}).items()
            for i, winner in enumerate(winners)
        ],
    )
    store.insert_rows(
        "debates",
        [
            {
                "debate_id": d.debate_id,
                "run_id": d.run_id,
                "topic_id": d.topic_id,
                "for_model": d.for_model,
                "against_model": d.against_model,
                "replicate": 1,
                "turns_planned": d.turns,
                "status": "done",
                "winner": d.winner,
                "created_at": NOW,
                "updated_at": NOW,
            }
            for d in debates
        ],
    )
    turns = []
    for d in debates:
        texts = list(d.texts) or [f"{d.debate_id} says {i}" for i in range(1, d.turns + 1)]
        for i, text in enumerate(texts, start=1):
            side = side_of(i)
            turns.append(
                {
                    "debate_id": d.debate_id,
                    "turn_index": i,
                    "side": side,
                    "role": role_of(i, d.turns),
                    "model": d.for_model if side == "FOR" else d.against_model,
                    "text": text,
                    "raw_text": text,
                    "call_id": f"{d.debate_id}-{i}",
                    "created_at": NOW,
                }
            )
    store.insert_rows("turns", turns)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with Store.open(tmp_path / "arena.duckdb") as s:
        yield s


def ids(rows: list[dict[str, Any]]) -> set[tuple[str, str]]:
    return {(r["chosen_debate_id"], r["rejected_debate_id"]) for r in rows}


BASIC = [
    D("d1", "A", "B", "FOR"),
    D("d2", "B", "A", "AGAINST"),
    D("d3", "C", "B", "FOR"),
    D("d4", "A", "C", "TIE"),
    D("d5", "B", "C", None),
]


def test_cross_product_of_won_and_lost_turns_per_key(store: Store) -> None:
    fill(store, BASIC)
    rows = derive_pairs(store)
    # (t1, FOR, 1): FOR won d1, d3 and lost d2 -> 2; (t1, AGAINST, 2): won d2, lost d1, d3 -> 2.
    assert len(rows) == 4
    assert ids(rows) == {("d1", "d2"), ("d3", "d2"), ("d2", "d1"), ("d2", "d3")}
    assert all(set(r) == set(PAIR_COLUMNS) for r in rows)
    by_key = {
        (r["side"], r["turn_index"], r["chosen_debate_id"], r["rejected_debate_id"]): r
        for r in rows
    }
    row = by_key[("FOR", 1, "d1", "d2")]
    assert row["chosen"] == [{"role": "assistant", "content": "d1 says 1"}]
    assert row["rejected"] == [{"role": "assistant", "content": "d2 says 1"}]
    assert (row["chosen_model"], row["rejected_model"]) == ("A", "B")
    assert by_key[("AGAINST", 2, "d2", "d3")]["chosen_model"] == "A"
    assert {r["split"] for r in rows} == {"train"}


def test_ties_and_null_winners_give_no_pairs(store: Store) -> None:
    fill(store, [D("d4", "A", "C", "TIE"), D("d5", "B", "C", None), D("d1", "A", "B", "FOR")])
    assert derive_pairs(store) == []


def test_identical_texts_after_whitespace_are_dropped(store: Store) -> None:
    fill(
        store,
        [
            D("d1", "A", "B", "FOR", texts=["Tax  the\nrich.", "x1"]),
            D("d2", "B", "A", "AGAINST", texts=[" Tax the rich. ", "x2"]),
            D("d3", "C", "B", "FOR", texts=["Tax the rich!", "x3"]),
        ],
    )
    rows = derive_pairs(store)
    # FOR 1: (d1, d2) identical, dropped; (d3, d2) kept. AGAINST 2: (d2, d1), (d2, d3).
    assert ids(rows) == {("d3", "d2"), ("d2", "d1"), ("d2", "d3")}


def test_model_filters(store: Store) -> None:
    fill(store, BASIC)
    assert ids(derive_pairs(store, PairOptions(chosen_models=["A"]))) == {
        ("d1", "d2"),
        ("d2", "d1"),
        ("d2", "d3"),
    }
    # B spoke every losing turn here: d2's FOR opening, d1's and d3's AGAINST replies.
    both = PairOptions(chosen_models=["C"], rejected_models=["B"])
    assert ids(derive_pairs(store, both)) == {("d3", "d2")}
    assert derive_pairs(store, PairOptions(rejected_models=["A", "C"])) == []
    assert derive_pairs(store, PairOptions(chosen_models=["nobody"])) == []


def test_run_filter(store: Store) -> None:
    again = [D("e1", "A", "B", "FOR", run_id="r2"), D("e2", "B", "A", "AGAINST", run_id="r2")]
    fill(store, [*BASIC, *again])
    # Same topic and settings, so runs pool: FOR 1 won d1, d3, e1 and lost d2, e2 -> 6; and 6.
    assert len(derive_pairs(store)) == 12
    assert ids(derive_pairs(store, PairOptions(run_id="r1"))) == ids(derive_pairs(store, None)) & {
        ("d1", "d2"),
        ("d3", "d2"),
        ("d2", "d1"),
        ("d2", "d3"),
    }
    assert len(derive_pairs(store, PairOptions(run_id="r1"))) == 4
    assert ids(derive_pairs(store, PairOptions(run_id="r2"))) == {("e1", "e2"), ("e2", "e1")}


def test_other_settings_do_not_pool(store: Store) -> None:
    fill(store, [*BASIC, D("e1", "A", "B", "AGAINST", run_id="r2", turns=4)])
    # e1 lost FOR's turn 1 of a 4-turn debate: another task than a 2-turn debate's opening.
    assert ids(derive_pairs(store)) == ids(derive_pairs(store, PairOptions(run_id="r1")))
    assert len(derive_pairs(store)) == 4


def grid(n_winners: int, n_losers: int, topic_id: str = "t1") -> list[D]:
    """FOR wins `n_winners` debates and loses `n_losers` on one topic."""
    won = [D(f"{topic_id}w{i}", f"W{i}", "X", "FOR", topic_id=topic_id) for i in range(n_winners)]
    lost = [
        D(f"{topic_id}l{i}", f"L{i}", "Y", "AGAINST", topic_id=topic_id) for i in range(n_losers)
    ]
    return won + lost


def test_cap_is_a_seeded_reproducible_sample(store: Store) -> None:
    fill(store, grid(3, 3))
    assert len(derive_pairs(store)) == 9 + 9  # FOR 1 and AGAINST 2
    capped = derive_pairs(store, PairOptions(max_per_key=4, seed=1))
    assert len(capped) == 8
    assert sum(r["side"] == "FOR" for r in capped) == 4
    assert derive_pairs(store, PairOptions(max_per_key=4, seed=1)) == capped
    samples = {
        frozenset(ids(derive_pairs(store, PairOptions(max_per_key=4, seed=s)))) for s in range(6)
    }
    assert len(samples) > 1
    assert len(derive_pairs(store, PairOptions(max_per_key=100))) == 18


def test_split_by_fraction_is_topic_disjoint_and_seeded(store: Store) -> None:
    fill(store, [d for t in range(10) for d in grid(1, 1, topic_id=f"t{t}")])
    rows = derive_pairs(store, PairOptions(test_fraction=0.3, seed=7))
    assert len(rows) == 20
    test = {r["topic_id"] for r in rows if r["split"] == "test"}
    train = {r["topic_id"] for r in rows if r["split"] == "train"}
    assert len(test) == 3 and len(train) == 7 and not test & train
    assert derive_pairs(store, PairOptions(test_fraction=0.3, seed=7)) == rows
    other = {
        frozenset(
            r["topic_id"]
            for r in derive_pairs(store, PairOptions(test_fraction=0.3, seed=s))
            if r["split"] == "test"
        )
        for s in range(6)
    }
    assert len(other) > 1


def test_split_by_explicit_topics(store: Store) -> None:
    fill(store, [d for t in range(4) for d in grid(1, 1, topic_id=f"t{t}")])
    rows = derive_pairs(store, PairOptions(test_topics=["t1", "t3"]))
    assert {r["topic_id"] for r in rows if r["split"] == "test"} == {"t1", "t3"}
    assert {r["topic_id"] for r in rows if r["split"] == "train"} == {"t0", "t2"}
    with pytest.raises(ValueError, match="not both"):
        PairOptions(test_topics=["t1"], test_fraction=0.5)


def test_prompt_is_the_task_without_the_transcript(store: Store) -> None:
    fill(store, [D("d1", "A", "B", "FOR", turns=4), D("d2", "B", "A", "AGAINST", turns=4)])
    rows = derive_pairs(store)
    assert {(r["side"], r["turn_index"]) for r in rows} == {
        ("FOR", 1),
        ("AGAINST", 2),
        ("FOR", 3),
        ("AGAINST", 4),
    }
    opening = next(r for r in rows if r["turn_index"] == 1)
    seen = Transcript(motion("t1"), 4, 200).prompt_for(1)
    assert opening["prompt"] == [m.as_dict() for m in seen]
    for r in rows:
        assert [m["role"] for m in r["prompt"]] == ["system", "user"]
        assert r["prompt"] == prompt_messages(motion("t1"), r["side"], r["turn_index"], 4, 200)
        assert "says" not in json.dumps(r["prompt"])  # no turn text of either debate
    closing = next(r for r in rows if r["turn_index"] == 4)
    assert "closing" in closing["prompt"][1]["content"]


def in_order(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows in derive_pairs' order (files are written in no particular order)."""
    return sorted(
        rows,
        key=lambda r: (
            r["topic_id"],
            r["side"],
            r["turn_index"],
            r["chosen_debate_id"],
            r["rejected_debate_id"],
        ),
    )


def test_write_parquet_and_jsonl(store: Store, tmp_path: Path) -> None:
    fill(store, BASIC)
    expected = derive_pairs(store)
    written = write_pairs(store, tmp_path / "out" / "pairs.parquet")
    assert written.total == 4
    assert written.by("split") == {"train": 4}
    assert written.by("chosen_model") == {"A": 3, "C": 1}
    assert written.by("turn_index") == {1: 2, 2: 2}
    assert write_pairs(store, tmp_path / "pairs.jsonl", format="jsonl").total == 4
    # the connection's settings are as they were, and no temporary table is left
    assert store.read(
        "SELECT current_setting('preserve_insertion_order'), current_setting('disabled_optimizers')"
    ) == [(True, "")]
    assert store.read("SELECT count(*) FROM duckdb_tables() WHERE temporary") == [(0,)]
    with duckdb.connect() as con:
        got = con.execute(f"SELECT * FROM '{tmp_path / 'out' / 'pairs.parquet'}'").fetchall()
        cols = [c[0] for c in con.description or []]
    assert cols == list(PAIR_COLUMNS)
    assert in_order([dict(zip(cols, row, strict=True)) for row in got]) == expected
    lines = (tmp_path / "pairs.jsonl").read_text().splitlines()
    assert in_order([json.loads(line) for line in lines]) == expected
    assert write_pairs(store, tmp_path / "none.parquet", PairOptions(run_id="nope")).total == 0
    with duckdb.connect() as con:
        assert con.execute(f"SELECT count(*) FROM '{tmp_path / 'none.parquet'}'").fetchall() == [
            (0,)
        ]
    with pytest.raises(ValueError, match="unknown format"):
        write_pairs(store, tmp_path / "x.csv", format="csv")  # type: ignore[arg-type]


def test_plain_duckdb_connection(tmp_path: Path) -> None:
    db = tmp_path / "arena.duckdb"
    with Store.open(db) as s:
        fill(s, BASIC)
        expected = derive_pairs(s)
    with duckdb.connect(str(db), read_only=True) as con:
        assert derive_pairs(con) == expected
        assert write_pairs(con, tmp_path / "p.parquet").total == 4


def test_long_texts_are_compared_exactly_beyond_their_fingerprints(store: Store) -> None:
    base = " ".join(f"word{i}" for i in range(80))  # 549 characters
    spaced = base.replace("word40 ", "word40 \n\n\t  ")  # the same but for whitespace
    middle = base.replace("word40", "WORD40")  # the same ends, another middle
    padded = " " * 200 + base  # no fingerprint from its first 128 characters
    longer = base + " and more"  # another end
    fill(
        store,
        [
            D("d1", "A", "B", "FOR", texts=[base, "x1"]),
            D("d2", "B", "A", "AGAINST", texts=[spaced, "x2"]),
            D("d3", "C", "B", "AGAINST", texts=[middle, "x3"]),
            D("d4", "C", "A", "AGAINST", texts=[padded, "x4"]),
            D("d5", "B", "C", "AGAINST", texts=[longer, "x5"]),
        ],
    )
    rows = derive_pairs(store)
    # FOR 1: d1 against d2 (equal once normalised) and d4 (likewise) dropped; d3 and d5 kept.
    # AGAINST 2: d2..d5 won, d1 lost, all texts differ.
    assert ids(rows) == {
        ("d1", "d3"),
        ("d1", "d5"),
        ("d2", "d1"),
        ("d3", "d1"),
        ("d4", "d1"),
        ("d5", "d1"),
    }


# Four debates, three judges each (None: an invalid verdict), majorities as debates.winner.
VOTED = [
    D("d1", "A", "B", "FOR"),  # FOR, FOR, FOR: 3 of 3
    D("d2", "B", "A", "AGAINST"),  # AGAINST, AGAINST, invalid: 2 of 2 valid
    D("d3", "C", "B", "FOR"),  # FOR, AGAINST, FOR: 2 of 3
    D("d4", "A", "C", "AGAINST"),  # AGAINST, TIE, AGAINST: 2 of 3 (a tie is a valid verdict)
]
VOTES: dict[str, list[str | None]] = {
    "d1": ["FOR", "FOR", "FOR"],
    "d2": ["AGAINST", "AGAINST", None],
    "d3": ["FOR", "AGAINST", "FOR"],
    "d4": ["AGAINST", "TIE", "AGAINST"],
}


def test_outcomes_by_one_judge(store: Store) -> None:
    fill(store, VOTED, verdicts=VOTES)
    # majority: FOR 1 won d1, d3, lost d2, d4; AGAINST 2 won d2, d4, lost d1, d3
    assert len(derive_pairs(store)) == 8
    # j1: d1 FOR, d2 AGAINST, d3 AGAINST (against the majority), d4 TIE (no outcome)
    assert ids(derive_pairs(store, PairOptions(judge="j1"))) == {
        ("d1", "d2"),
        ("d1", "d3"),
        ("d2", "d1"),
        ("d3", "d1"),
    }
    # j2: d2 invalid (no outcome), d1 and d3 FOR, d4 AGAINST
    assert ids(derive_pairs(store, PairOptions(judge="j2"))) == {
        ("d1", "d4"),
        ("d3", "d4"),
        ("d4", "d1"),
        ("d4", "d3"),
    }
    assert derive_pairs(store, PairOptions(judge="nobody")) == []


def test_minimum_agreement_of_valid_verdicts(store: Store) -> None:
    fill(store, VOTED, verdicts=VOTES)
    unanimous = {("d1", "d2"), ("d2", "d1")}
    assert ids(derive_pairs(store, PairOptions(min_agreement=0.9))) == unanimous
    assert ids(derive_pairs(store, PairOptions(min_agreement=1.0))) == unanimous
    assert ids(derive_pairs(store, PairOptions(min_agreement=0.667))) == unanimous
    assert len(derive_pairs(store, PairOptions(min_agreement=0.6667))) == 8  # two thirds
    assert len(derive_pairs(store, PairOptions(min_agreement=0.0))) == 8
    # with a judge, the share is of that judge's winner: j1 says AGAINST in d3, 1 vote of 3
    both = PairOptions(judge="j1", min_agreement=0.9)
    assert ids(derive_pairs(store, both)) == unanimous
    by_j0 = ids(derive_pairs(store, PairOptions(judge="j0")))
    # verdicts that do not count (a swap-check judge's second reading, an averaging judge's two
    # readings) do not vote, and a judge's outcome is its verdict that counts: nothing changes
    store.insert_rows(
        "verdicts",
        [
            {
                "debate_id": debate_id,
                "judge": judge,
                "variant": variant,
                "counts": False,
                "winner": "AGAINST" if debate_id == "d1" else "FOR",
                "valid": True,
                "repaired": False,
                "raw_text": "B",
                "created_at": NOW,
            }
            for debate_id in VOTES
            for judge, variant in (("j0", "for_b"), ("j1", "for_a"), ("j1", "for_b"))
        ],
    )
    assert ids(derive_pairs(store, PairOptions(min_agreement=1.0))) == unanimous
    assert len(derive_pairs(store, PairOptions(min_agreement=0.6667))) == 8
    assert ids(derive_pairs(store, PairOptions(judge="j0"))) == by_j0
    assert ids(derive_pairs(store, both)) == unanimous


def test_transcript_context_is_the_chosen_speakers_chat(store: Store) -> None:
    texts = {
        "d1": ["A opens.", "B opens.", "A rebuts.", "B closes."],
        "d2": ["B opens.  ", "A opens!", "B rebuts.", "A closes."],
    }
    debates = [
        D("d1", "A", "B", "FOR", turns=4, texts=texts["d1"]),
        D("d2", "B", "A", "AGAINST", turns=4, texts=texts["d2"]),
    ]
    personas = {"A": "a calm analyst"}
    fill(store, debates, personas=personas)
    rows = derive_pairs(store, PairOptions(context="transcript"))
    plain = derive_pairs(store)
    assert [{k: v for k, v in r.items() if k != "prompt"} for r in rows] == [
        {k: v for k, v in r.items() if k != "prompt"} for r in plain
    ]
    assert len(rows) == 4  # A won both: its turns are chosen, B's rejected
    by_id = {d.debate_id: d for d in debates}
    for r in rows:
        d = by_id[r["chosen_debate_id"]]
        replay = Transcript(
            motion("t1"),
            4,
            200,
            {"FOR": personas.get(d.for_model), "AGAINST": personas.get(d.against_model)},
        )
        for i in range(1, r["turn_index"]):
            replay.prompt_for(i)
            replay.add(i, texts[d.debate_id][i - 1])
        assert r["prompt"] == [m.as_dict() for m in replay.prompt_for(r["turn_index"])]
    third = next(r for r in rows if r["turn_index"] == 3)
    assert [m["role"] for m in third["prompt"]] == ["system", "user", "assistant", "user"]
    assert "a calm analyst" in third["prompt"][0]["content"]
    assert third["prompt"][2]["content"] == "A opens."
    assert "B opens." in third["prompt"][3]["content"]
    assert "B rebuts." not in json.dumps(third["prompt"])  # nothing from the rejected debate


def test_pairs_view_is_the_unfiltered_rule(store: Store) -> None:
    fill(store, [*BASIC, D("d6", "C", "A", "AGAINST", texts=["d1 says 1", "x"])])
    rows = derive_pairs(store)
    assert len(rows) == 7  # 8 candidates; d6's opening repeats d1's: (d1, d6) is dropped
    view = store.read(
        "SELECT chosen_debate_id, rejected_debate_id, turn_index, chosen_model, rejected_model,"
        " chosen_text, rejected_text, role FROM pairs"
    )
    expected = [
        (
            r["chosen_debate_id"],
            r["rejected_debate_id"],
            r["turn_index"],
            r["chosen_model"],
            r["rejected_model"],
            r["chosen"][0]["content"],
            r["rejected"][0]["content"],
            "opening",
        )
        for r in rows
    ]
    assert sorted(view) == sorted(expected)


def test_names_are_checked(store: Store) -> None:
    fill(store, VOTED, verdicts=VOTES)
    check_names(
        store, PairOptions(run_id="r1", chosen_models=["A"], judge="j0", test_topics=["t1"])
    )
    for options, message in [
        (PairOptions(chosen_models=["A", "Z"]), "no model named 'Z'"),
        (
            PairOptions(rejected_models=["Q"]),
            r"no model named 'Q' in the database \(models: A, B, C\)",
        ),
        (PairOptions(judge="j9"), r"no judge named 'j9'.*j0, j1, j2"),
        (PairOptions(run_id="r2"), "no run named 'r2'"),
        (PairOptions(test_topics=["t1", "t7"]), "no topic named 't7'"),
    ]:
        with pytest.raises(UserError, match=message):
            check_names(store, options)


# --- property test: small random tournaments against a plain-Python reference ------------------

debate_st = st.tuples(
    st.sampled_from(["t1", "t2", "t3"]),
    st.sampled_from(["A", "B", "C"]),
    st.sampled_from(["A", "B", "C"]),
    st.sampled_from(["FOR", "AGAINST", "TIE", None]),
    st.lists(
        st.sampled_from(["yes", "no", " yes", "maybe so", "maybe  so"]), min_size=3, max_size=3
    ),
)


def reference_pairs(debates: list[D]) -> set[tuple[str, str, int]]:
    """(chosen debate, rejected debate, turn) by the rule, with a Python loop over turns."""
    out = set()
    for w, lost in itertools.permutations(debates, 2):
        if w.topic_id != lost.topic_id or w.winner not in ("FOR", "AGAINST"):
            continue
        for i in range(1, w.turns + 1):
            side = side_of(i)
            same = " ".join(w.texts[i - 1].split()) == " ".join(lost.texts[i - 1].split())
            if (
                w.winner == side
                and lost.winner == ("AGAINST" if side == "FOR" else "FOR")
                and not same
            ):
                out.add((w.debate_id, lost.debate_id, i))
    return out


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(debate_st, min_size=0, max_size=8),
    st.floats(min_value=0, max_value=1),
    st.integers(0, 3),
)
def test_property_pairs_follow_the_rule(
    spec: list[tuple[str, str, str, str | None, list[str]]], fraction: float, seed: int
) -> None:
    debates = [
        D(f"d{i}", f, a, w, topic_id=t, texts=texts, turns=3)
        for i, (t, f, a, w, texts) in enumerate(spec)
    ]
    by_id = {d.debate_id: d for d in debates}
    with tempfile.TemporaryDirectory() as tmp, Store.open(Path(tmp) / "a.duckdb") as store:
        if debates:
            fill(store, debates)
        rows = derive_pairs(store, PairOptions(test_fraction=fraction, seed=seed))
        capped = derive_pairs(store, PairOptions(max_per_key=2, seed=seed))
        view = set(store.read("SELECT chosen_debate_id, rejected_debate_id, turn_index FROM pairs"))
    per_key = Counter((r["topic_id"], r["side"], r["turn_index"]) for r in rows)
    capped_per_key = Counter((r["topic_id"], r["side"], r["turn_index"]) for r in capped)
    assert capped_per_key == Counter({k: min(n, 2) for k, n in per_key.items()})
    assert ids(capped) <= ids(rows)
    got = set()
    for r in rows:
        won, lost = by_id[r["chosen_debate_id"]], by_id[r["rejected_debate_id"]]
        i = r["turn_index"]
        assert r["side"] == side_of(i)
        assert won.winner == r["side"] and lost.winner not in (r["side"], "TIE", None)
        assert won.topic_id == lost.topic_id == r["topic_id"]
        assert r["chosen"][0]["content"] == won.texts[i - 1]
        assert r["rejected"][0]["content"] == lost.texts[i - 1]
        got.add((won.debate_id, lost.debate_id, i))
    assert len(got) == len(rows)
    assert got == reference_pairs(debates) == view
    test = {r["topic_id"] for r in rows if r["split"] == "test"}
    train = {r["topic_id"] for r in rows if r["split"] == "train"}
    assert not test & train
