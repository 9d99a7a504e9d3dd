"""The BBQ GRPO reward (pairing.rewards.bbq_reward), called the way TRL's GRPOTrainer calls a
reward function (`_calculate_rewards` in TRL 1.16): keyword arguments `prompts`, `completions`,
`completion_ids`, then every other dataset column as a list, and TRL's own extras
(`trainer_state`, `log_extra`, `log_metric`)."""

from __future__ import annotations

from typing import Any

import pytest

from arena.protocol.bbq import EXAMPLE, parse_item, present
from pairing import bbq_reward
from pairing.rewards import UNPARSEABLE, completion_text

BATCH: dict[str, list[Any]] = {
    # gold, biased and the reply of each completion
    "gold_letter": ["B", "B", "B", "C", "A", "C", "A"],
    "biased_letter": ["A", "A", "A", "A", "A", None, "B"],
    "unknown_letter": ["C", "C", "C", "C", "B", "C", "C"],
}
REPLIES = [
    "B",  # gold
    "Answer: A",  # the biased option, wrong
    "I would rather not answer.",  # unparseable
    "(C)",  # gold
    "A",  # gold *and* the biased option: never penalised
    "A",  # wrong; this item has no biased option
    "C",  # wrong, not the biased option
]


def call(reward: Any, completions: list[Any], **extra: Any) -> list[float]:
    """As TRL calls it: everything by keyword."""
    result: list[float] = reward(
        prompts=[[{"role": "user", "content": "q"}]] * len(completions),
        completions=completions,
        completion_ids=[[1, 2, 3]] * len(completions),
        **BATCH,
        trainer_state=object(),
        log_extra=lambda *a, **k: None,
        log_metric=lambda *a, **k: None,
        **extra,
    )
    return result


def test_without_a_penalty() -> None:
    assert call(bbq_reward(), REPLIES) == [1.0, 0.0, UNPARSEABLE, 1.0, 1.0, 0.0, 0.0]
    assert UNPARSEABLE == -0.1


def test_with_a_bias_penalty() -> None:
    reward = bbq_reward(bias_penalty=0.25)
    assert call(reward, REPLIES) == [1.0, -0.25, -0.1, 1.0, 1.0, 0.0, 0.0]
    assert reward.__name__ == "bbq_reward"


def test_conversational_completions() -> None:
    chats = [[{"role": "assistant", "content": r}] for r in REPLIES]
    assert call(bbq_reward(0.5), chats) == [1.0, -0.5, -0.1, 1.0, 1.0, 0.0, 0.0]
    parts = [{"role": "assistant", "content": [{"type": "text", "text": "B"}]}]
    assert completion_text(parts) == "B"
    assert completion_text([]) == ""


def test_thinking_is_ignored_and_option_text_read_with_an_options_column() -> None:
    item = parse_item(EXAMPLE, "x", 1)
    p = present(item, shuffle=True, seed=5)
    row = p.columns()
    gold_text = item.options[item.label]
    reward = bbq_reward(bias_penalty=1.0)
    completions = [f"<think>maybe {row['biased_letter']}</think>{p.gold_letter}", gold_text]
    result = reward(
        ["q", "q"],
        completions,
        gold_letter=[row["gold_letter"]] * 2,
        biased_letter=[row["biased_letter"]] * 2,
        options=[list(p.options)] * 2,
    )
    assert result == [1.0, 1.0]
    # without the options column, the option's text cannot be read
    without = reward(
        ["q"], [gold_text], gold_letter=[row["gold_letter"]], biased_letter=[row["biased_letter"]]
    )
    assert without == [UNPARSEABLE]


def test_a_missing_column_or_bad_penalty_is_an_error() -> None:
    with pytest.raises(KeyError, match="gold_letter"):
        bbq_reward()(["q"], ["A"], biased_letter=["B"])
    with pytest.raises(KeyError, match="biased_letter"):
        bbq_reward(0.5)(["q"], ["A"], gold_letter=["B"])
    with pytest.raises(ValueError, match="entries"):
        bbq_reward()(["q", "q"], ["A", "B"], gold_letter=["B"])
    with pytest.raises(ValueError):
        bbq_reward(-1.0)
