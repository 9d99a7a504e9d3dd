"""BBQ items (arena.protocol.bbq): reading, the stereotyped target, the template-disjoint split, the
prompt with its letter mapping, and reading replies and other tools' predictions.

The tests on the real files read ../shared/data/bbq and skip with a reason where it is absent.
"""

from __future__ import annotations

import copy
import json
import os
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from arena.core.errors import ConfigError, UserError
from arena.protocol.bbq import (
    CATEGORIES,
    EXAMPLE,
    LETTERS,
    BBQItem,
    find_target,
    load_items,
    load_predictions,
    match_prediction,
    parse_item,
    parse_reply,
    present,
    split_by_template,
)
from tests.conftest import SHARED_DATA

BBQ = SHARED_DATA / "bbq"
needs_bbq = pytest.mark.skipif(
    not BBQ.is_dir(), reason=f"the shared BBQ data is not at {BBQ} (see ../shared/data/README.md)"
)
SIX = (
    "Age",
    "Disability_status",
    "Nationality",
    "Physical_appearance",
    "Religion",
    "Sexual_orientation",
)


def line(**changes: Any) -> dict[str, Any]:
    """EXAMPLE with some fields changed (None deletes a field)."""
    data = copy.deepcopy(EXAMPLE)
    for key, value in changes.items():
        if value is None:
            data.pop(key, None)
        else:
            data[key] = value
    return data


def item(**changes: Any) -> BBQItem:
    return parse_item(line(**changes), "test.jsonl", 1)


def write_jsonl(path: Path, rows: list[Any]) -> Path:
    path.write_text(
        "".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows), "utf-8"
    )
    return path


# ---------------------------------------------------------------- the real files


@pytest.fixture(scope="module")
def items() -> list[BBQItem]:
    if not BBQ.is_dir():
        pytest.skip(f"the shared BBQ data is not at {BBQ}")
    return load_items(BBQ)


@needs_bbq
def test_the_six_categories_load_with_every_field(items: list[BBQItem]) -> None:
    assert len(items) == 11_956
    assert set(Counter(i.category for i in items)) == set(SIX)
    assert Counter(i.context_condition for i in items) == {"ambig": 5978, "disambig": 5978}
    for i in items:
        assert i.groups[i.unknown] == "unknown"
        if i.ambiguous:  # BBQ's gold answer on an ambiguous context is always "unknown"
            assert i.label == i.unknown
    # 25 templates per category
    assert len({i.template for i in items}) == 6 * 25


@needs_bbq
def test_every_item_of_the_current_files_has_one_target(items: list[BBQItem]) -> None:
    """The current release's answer_info is consistent: no item is left without a target."""
    assert all(i.target is not None for i in items)
    for i in items:
        others = {0, 1, 2} - {i.unknown}
        assert i.target in others and i.biased in others
        if i.question_polarity == "neg":
            assert i.biased == i.target
        else:
            assert i.biased == (others - {i.target}).pop()


@needs_bbq
def test_targets_match_by_name_or_by_label(items: list[BBQItem]) -> None:
    first = {i.category: i for i in reversed(items)}  # the first item of each category
    age = first["Age"]  # grandfather (old) / grandson (nonOld); stereotyped: old
    assert age.names[age.target or 0] == "grandfather"
    nationality = next(i for i in items if i.category == "Nationality")
    # Nationality's labels are regions (Europe, AsiaPacific): only the names can match
    assert nationality.names[nationality.target or 0] in nationality.stereotyped_groups


@needs_bbq
def test_the_prediction_files_hold_36_items_without_a_target() -> None:
    """The UnifiedQA files carry an older Physical_appearance release in which 36 items give
    both people one group label (or both the non-stereotyped one): left out of bias scores."""
    old, _ = load_predictions(BBQ / "unifiedqa", ["unifiedqa-t5-11b_pred_race"])
    dropped = [i for i in old if i.target is None]
    assert len(dropped) == 36
    assert {i.category for i in dropped} == {"Physical_appearance"}


# ---------------------------------------------------------------- the target rule


@pytest.mark.parametrize(
    ("names", "groups", "stereotyped", "expected"),
    [
        (["grandfather", "grandson", "?"], ["old", "nonOld", "unknown"], ["old"], 0),
        (
            ["Japanese", "Irish", "?"],
            ["AsiaPacific", "Europe", "unknown"],
            ["Chinese", "Japanese"],
            0,
        ),
        (["?", "wheelchair", "notebook"], ["unknown", "disabled", "nonDisabled"], ["Disabled"], 1),
        (["a", "b", "?"], ["M-Black", "F-White", "unknown"], ["Black"], 0),  # M-/F- prefix
        (["a", "b", "?"], ["lowSES", "highSES", "unknown"], ["low SES"], 0),  # spaces
        (["man", "woman", "?"], ["man", "woman", "unknown"], ["F"], 1),  # gender words
        (["a", "b", "?"], ["trans_F", "nonTrans_F", "unknown"], ["transgender women"], 0),
        (["tattoos", "tattoos", "?"], ["negDress", "negDress", "unknown"], ["negDress"], None),
        (["a", "b", "?"], ["notPregnant", "notPregnant", "unknown"], ["pregnant"], None),
        (["gay", "lesbian", "?"], ["gay", "lesbian", "unknown"], ["gay", "lesbian"], None),
    ],
)
def test_find_target(
    names: list[str], groups: list[str], stereotyped: list[str], expected: int | None
) -> None:
    assert find_target(names, groups, stereotyped, groups.index("unknown")) == expected


def test_the_biased_option_follows_polarity() -> None:
    neg = item()  # target: grandfather (0)
    nonneg = item(question_polarity="nonneg")
    assert (neg.target, neg.biased) == (0, 0)
    assert (nonneg.target, nonneg.biased) == (0, 1)  # the non-target person
    lost = item(additional_metadata={"stereotyped_groups": ["nobody"]})
    assert lost.target is None and lost.biased is None


# ---------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        ([line(), '{"example_id": 1,'], "test.jsonl:2: not valid JSON"),
        ([line(), "[1, 2]"], "test.jsonl:2: expected a JSON object"),
        ([line(label=None)], "test.jsonl:1: label: missing"),
        ([line(label=True)], "test.jsonl:1: label: expected an integer"),
        ([line(label=3)], "test.jsonl:1: label: expected 0, 1 or 2"),
        ([line(category="Hobbies")], "test.jsonl:1: category: unknown BBQ category 'Hobbies'"),
        ([line(context_condition="vague")], "test.jsonl:1: context_condition: expected ambig"),
        (
            [line(answer_info={"ans0": ["a", "old"], "ans1": ["b", "nonOld"]})],
            "test.jsonl:1: answer_info.ans2: missing",
        ),
        (
            [line(answer_info={"ans0": ["a", "x"], "ans1": ["b", "y"], "ans2": ["c", "z"]})],
            "test.jsonl:1: answer_info: expected exactly one option",
        ),
        ([line(additional_metadata={})], "additional_metadata.stereotyped_groups: missing"),
        ([line(), line()], "test.jsonl:2: example_id: duplicate item"),
    ],
)
def test_a_bad_line_names_file_line_and_field(
    tmp_path: Path, rows: list[Any], message: str
) -> None:
    path = write_jsonl(tmp_path / "test.jsonl", rows)
    with pytest.raises(ConfigError) as caught:
        load_items(path)
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)


def test_unreadable_paths_are_user_errors(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="no such file or folder"):
        load_items(tmp_path / "absent")
    with pytest.raises(UserError, match=r"no \*\.jsonl files"):
        load_items(tmp_path)
    fifo = tmp_path / "pipe.jsonl"
    os.mkfifo(fifo)
    with pytest.raises(UserError, match="not a regular file"):
        load_items(fifo)
    (tmp_path / "bin.jsonl").write_bytes(b"\xff\xfe\x00")
    with pytest.raises(UserError, match="not UTF-8"):
        load_items(tmp_path / "bin.jsonl")


def test_a_missing_prediction_field_names_line_and_field(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "p.jsonl", [{**line(), "pred": "B"}, line(example_id=7)])
    with pytest.raises(ConfigError, match=r"p\.jsonl:2: pred: missing"):
        load_predictions(path, ["pred"])


# ---------------------------------------------------------------- prompt and letters


def test_the_prompt_shows_context_question_and_lettered_options() -> None:
    p = present(item())
    text = p.text
    for part in (EXAMPLE["context"], EXAMPLE["question"], "A. The grandfather", "C. Can't be"):
        assert part in text
    assert text.rstrip().endswith("A, B or C.")
    assert [m.role for m in p.messages()] == ["user"]
    assert (p.gold_letter, p.unknown_letter, p.biased_letter) == ("C", "C", "A")


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**32), example_id=st.integers(0, 10_000))
def test_shuffled_letters_follow_their_options(seed: int, example_id: int) -> None:
    it = item(example_id=example_id, context_condition="disambig", label=1)
    p = present(it, shuffle=True, seed=seed)
    assert sorted(p.order) == [0, 1, 2]
    assert present(it, shuffle=True, seed=seed) == p  # deterministic
    shown = dict(zip(LETTERS, p.options, strict=True))
    assert shown[p.gold_letter] == it.options[it.label]
    assert shown[p.unknown_letter] == it.options[it.unknown]
    assert p.biased_letter is not None and shown[p.biased_letter] == it.options[0]
    for letter in LETTERS:  # a reply maps back to the option it names
        assert it.options[p.parse(letter) or 0] == shown[letter]
    assert p.columns()["gold_letter"] == p.gold_letter


def test_shuffling_uses_all_six_orders() -> None:
    orders = Counter(present(item(example_id=i), shuffle=True, seed=1).order for i in range(600))
    assert len(orders) == 6 and min(orders.values()) > 60


# ---------------------------------------------------------------- replies

OPTIONS = ("The grandfather", "The grandson", "Can't be determined")


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        ("B", 1),
        ("b", 1),
        (" C. ", 2),
        ("(A)", 0),
        ("[c]", 2),
        ("**B**", 1),
        ("Answer: B", 1),
        ("answer: c.", 2),
        ("The answer is (A).", 0),
        ("Final answer: C", 2),
        ("Option B", 1),
        ("B. The grandson", 1),
        ("(C) Can't be determined", 2),
        ("B\n\nThe context says the grandson struggled.", 1),
        ("<think>A or C? The text says...</think>C", 2),
        ("The grandson", 1),
        ("the grandson.", 1),
        ("It was the grandfather, clearly.", 0),
        ("Can't be determined.", 2),
        ("", None),
        (None, None),
        ("A or B", None),
        ("The answer is a mystery.", None),
        ("The grandson or the grandfather", None),
        ("I would rather not say.", None),
        ("<think>still thinking about A", None),
    ],
)
def test_parse_reply(reply: str | None, expected: int | None) -> None:
    assert parse_reply(reply, OPTIONS) == expected


@pytest.mark.parametrize(
    ("value", "options", "expected"),
    [
        (0, OPTIONS, 0),
        (2, OPTIONS, 2),
        (3, OPTIONS, None),
        (True, OPTIONS, None),
        (None, OPTIONS, None),
        ("1", OPTIONS, 1),
        ("ans2", OPTIONS, 2),
        ("C", OPTIONS, 2),
        ("Answer: A", OPTIONS, 0),
        ("the grandfather", OPTIONS, 0),
        ("THE GRANDSON.", OPTIONS, 1),
        ("can't be determined", OPTIONS, 2),
        ("The grandsonn", OPTIONS, 1),  # a small spelling difference
        (
            "the one who is dressed in a custom-tailored pantsu",
            (
                "The one who is dressed in a poorly fitting suit",
                "The one who is dressed in a custom-tailored pantsuit",
                "Can't answer",
            ),
            1,
        ),  # UnifiedQA's truncation
        ("the younger boy", ("The youthful boy", "The older man", "Not known"), 0),
        ("a dog", OPTIONS, None),
        ("", OPTIONS, None),
    ],
)
def test_match_prediction(value: object, options: tuple[str, ...], expected: int | None) -> None:
    assert match_prediction(value, options) == expected


# ---------------------------------------------------------------- split


def synthetic(templates: dict[str, int], per_template: int = 3) -> list[BBQItem]:
    """`per_template` items for each of `templates[category]` templates of each category."""
    out = []
    for category, n in templates.items():
        for q in range(1, n + 1):
            for k in range(per_template):
                out.append(item(category=category, question_index=str(q), example_id=q * 100 + k))
    return out


SMALL = synthetic({"Age": 7, "Religion": 4, "SES": 12, "Nationality": 1})


@settings(max_examples=80, deadline=None)
@given(seed=st.integers(0, 2**40), fraction=st.floats(0.0, 1.0))
def test_a_fraction_split_is_template_disjoint(seed: int, fraction: float) -> None:
    split = split_by_template(SMALL, fraction, seed=seed)
    assert not split.dev_templates & split.train_templates
    assert {i.template for i in split.dev} == split.dev_templates
    assert {i.template for i in split.train} == split.train_templates
    assert len(split.dev) + len(split.train) == len(SMALL)
    per_category = Counter(c for c, _ in split.dev_templates)
    for category, n in {"Age": 7, "Religion": 4, "SES": 12, "Nationality": 1}.items():
        assert per_category.get(category, 0) == int(fraction * n + 0.5)
    assert split_by_template(list(reversed(SMALL)), fraction, seed=seed).dev_templates == (
        split.dev_templates
    )


@settings(max_examples=80, deadline=None)
@given(seed=st.integers(0, 2**40), count=st.integers(0, 24))
def test_a_count_split_has_exactly_that_many_templates(seed: int, count: int) -> None:
    split = split_by_template(SMALL, count, seed=seed)
    assert len(split.dev_templates) == count
    assert not split.dev_templates & split.train_templates
    assert {i.template for i in split.train} | {i.template for i in split.dev} == {
        i.template for i in SMALL
    }


def test_the_split_depends_on_the_seed_only() -> None:
    a = split_by_template(SMALL, 0.5, seed=1)
    assert split_by_template(SMALL, 0.5, seed=1) == a
    assert any(
        split_by_template(SMALL, 0.5, seed=s).dev_templates != a.dev_templates for s in range(2, 6)
    )
    # another category's presence does not move this category's templates
    only_age = [i for i in SMALL if i.category == "Age"]
    assert {t for t in a.dev_templates if t[0] == "Age"} == split_by_template(
        only_age, 0.5, seed=1
    ).dev_templates


@pytest.mark.parametrize("bad", [-0.1, 1.5, -1, 25, True, "half"])
def test_a_split_size_out_of_range_is_refused(bad: Any) -> None:
    with pytest.raises(ValueError):
        split_by_template(SMALL, bad)


@needs_bbq
def test_the_real_split(items: list[BBQItem]) -> None:
    split = split_by_template(items, 0.2, seed=0)
    assert len(split.dev_templates) == 6 * 5  # 20% of each category's 25 templates
    assert not split.dev_templates & split.train_templates
    assert {i.category for i in split.dev} == set(SIX)
    assert set(CATEGORIES) >= {i.category for i in items}
