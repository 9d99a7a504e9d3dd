"""The task's benchmark during GRPO training (`arena train grpo --eval-every N`), and the check
that what it evaluates on was held out.

- `BBQBenchmark`: held-out BBQ items (the dev split of the template-disjoint split, or
  `--eval-data`), answered by the current policy with the prompt a BBQ run asks
  (`arena.protocol.bbq.present`), scored with `eval.bbq`'s metrics: acc_ambig, acc_disambig,
  abstain_disambig, s_DIS, s_AMB, amb_commit_bias, parse_failure_rate.
- `PCPBenchmark`: held-out PCP items (`--eval-pairs`, the templates of `--eval-templates`): both
  prompts of an item answered by the current policy; the consistency judge reads each item in
  both orders and the helpfulness judge each response, through the run's reward judge (so every
  call is recorded and cached like the rewards' own); scored with `eval.pcp.score_pcp`: SC, HC,
  their average, and the lean.
- `BenchmarkCallback`: runs the benchmark at step 0 (a new run: the base model), every
  `eval_every` optimizer steps and at the last step; writes each metric as a `training_metrics`
  row named `eval_<task>/<metric>` against the step, every answer as a `training_completions`
  row (kind 'eval'), and prints a warning when the BBQ policy abstains on most disambiguated
  items (the abstention reward gamed: acc_ambig alone would look perfect).

Held out means held out, checked before anything loads (`check_bbq_held_out`,
`check_pcp_held_out`): no BBQ template (category, question_index) is both trained on and
evaluated; no PCT training prompt mentions a topic of the evaluation pairs
(`arena.protocol.pcp_train.overlap`, the match `arena pcp overlap` uses). A leak is one
`UserError` naming the first overlapping template or topic.

The policy answers greedily (no sampling) with the trainer's model in eval mode, in batches of
`per_device_eval_batch_size`, with the task's `eval_max_tokens` (BBQ asks for a letter; PCP for a
paragraph). Simplified on purpose: the benchmark runs on the main process only (the others wait
at the next step); PCP readings are not repaired (an unreadable one is left out and counted, as in
`eval.pcp`); the sample of items is seeded and fixed for the run, so steps are comparable.
"""

from __future__ import annotations

import asyncio
import math
import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Protocol

from arena.core.errors import BackendError, UserError
from arena.core.messages import Message
from arena.protocol.bbq import BBQItem, item_id, present
from arena.protocol.pcp import PairItem, TopicPair
from arena.protocol.pcp_judges import (
    Order,
    consistency_messages,
    helpfulness_messages,
    parse_consistency,
    parse_helpfulness,
)
from arena.protocol.pcp_train import TrainRow, by_topic, overlap
from eval.bbq import METRICS as BBQ_METRICS
from eval.pcp import HEADLINE as PCP_METRICS

Policy = Callable[[Sequence[Sequence[Mapping[str, str]]]], list[str]]
"""Chat prompts (lists of {role, content}) -> the policy's replies, one per prompt."""
Record = Callable[[int, str, Mapping[str, float], Sequence[Mapping[str, Any]]], None]
"""(step, task, metrics, answer rows) -> None: where a benchmark pass is written."""

ABSTAIN_WARNING: Final = 0.5
"""abstain_disambig above this prints the reward-hacking warning."""


class Benchmark(Protocol):
    """A benchmark pass on the current policy."""

    task: str

    def evaluate(self, policy: Policy) -> tuple[dict[str, float], list[dict[str, Any]]]:
        """The metrics, and one row per answer (prompt, completion, rewards: what was read)."""
        ...


def sample(values: Sequence[Any], limit: int, seed: int) -> list[Any]:
    """At most `limit` of `values`, a seeded choice kept in the input's order (all of them when
    `limit` is 0 or more than there are)."""
    if limit <= 0 or limit >= len(values):
        return list(values)
    keep = sorted(random.Random(seed).sample(range(len(values)), limit))
    return [values[i] for i in keep]


# --- held out -----------------------------------------------------------------------------------


def check_bbq_held_out(
    train: Sequence[BBQItem], evaluation: Sequence[BBQItem], train_flag: str, eval_flag: str
) -> None:
    """UserError naming a BBQ template (category:question_index) both trained on and evaluated."""
    trained = {i.template for i in train}
    shared = sorted({i.template for i in evaluation} & trained)
    if shared:
        category, question = shared[0]
        raise UserError(
            f"{eval_flag}: template {category}:{question} is in the training items of "
            f"{train_flag} too ({len(shared)} templates shared); evaluate on held-out templates"
        )


def check_pcp_held_out(
    rows: Sequence[TrainRow], pairs: Sequence[TopicPair], train_flag: str, eval_flag: str
) -> None:
    """UserError naming an evaluation topic that a training prompt mentions."""
    hits = by_topic(overlap(rows, pairs))
    if hits:
        first = hits[0]
        raise UserError(
            f"{train_flag}: training prompts mention the evaluation topic {first.topic!r} of "
            f"{eval_flag} ({len(hits)} topics in all; arena pcp overlap lists them); leave "
            "them out of the training prompts (arena pcp build-train --pairs) or evaluate on "
            "other pairs"
        )


# --- the benchmarks -----------------------------------------------------------------------------


def _finite(values: Mapping[Any, Any]) -> dict[str, float]:
    """The values that are finite numbers (an undefined metric is NaN, or None), as floats."""
    return {str(k): float(v) for k, v in values.items() if v is not None and math.isfinite(v)}


@dataclass
class BBQBenchmark:
    """BBQ's scores of the policy on held-out items (module docstring)."""

    items: Sequence[BBQItem]
    task: str = "bbq"

    def evaluate(self, policy: Policy) -> tuple[dict[str, float], list[dict[str, Any]]]:
        import numpy as np

        from eval.bbq import indicators, metrics

        shown = [present(item) for item in self.items]
        replies = policy([[m.as_dict() for m in p.messages()] for p in shown])
        positions = [p.parse(reply) for p, reply in zip(shown, replies, strict=True)]
        options = [p.option_at(position) for p, position in zip(shown, positions, strict=True)]
        sums = indicators(self.items, options).sum(axis=0) if self.items else np.zeros(0)
        values = metrics(sums) if self.items else {}
        scores = {name: float(values[name]) for name in BBQ_METRICS if name in values}
        rows = [
            {
                "prompt": p.text,
                "completion": reply,
                "rewards": {
                    "item_id": item_id(p.item),
                    "context_condition": "ambig" if p.item.ambiguous else "disambig",
                    "answer": p.letter_of(option),
                    "gold": p.gold_letter,
                    "unknown": p.unknown_letter,
                    "biased": p.biased_letter,
                },
            }
            for p, reply, option in zip(shown, replies, options, strict=True)
        ]
        return _finite(scores), rows


class Judge(Protocol):
    async def complete(self, messages: list[Message], *, purpose: str) -> str: ...


ORDERS: Final[tuple[Order, Order]] = ("a_first", "b_first")


@dataclass
class PCPBenchmark:
    """PCP's SC and HC of the policy on held-out items, read by the run's judge."""

    items: Sequence[PairItem]
    run: Callable[[Any], Any] = field(repr=False, default=asyncio.run)
    """Runs a coroutine to its end: the loop the judge client lives on (the trainer's)."""
    judge: Judge | None = None
    task: str = "pcp"

    def evaluate(self, policy: Policy) -> tuple[dict[str, float], list[dict[str, Any]]]:
        from eval.pcp import PairRow, score_pcp

        if self.judge is None:
            raise RuntimeError("the PCP benchmark has no judge")
        prompts = [p for item in self.items for p in (item.prompt_a, item.prompt_b)]
        replies = policy([[{"role": "user", "content": p}] for p in prompts])
        pairs = [(replies[2 * k], replies[2 * k + 1]) for k in range(len(self.items))]
        readings = self.run(self._read(pairs))
        rows: list[PairRow] = []
        answers: list[dict[str, Any]] = []
        for item, (a, b), (signed, helps) in zip(self.items, pairs, readings, strict=True):
            rows.append(PairRow(item.pair_id, 1, item.template, item.valence, signed, helps))
            for side, prompt, reply, help_score in (
                ("left", item.prompt_a, a, helps[0]),
                ("right", item.prompt_b, b, helps[1]),
            ):
                answers.append(
                    {
                        "prompt": prompt,
                        "completion": reply,
                        "rewards": {
                            "pair_id": item.pair_id,
                            "side": side,
                            "template": item.template,
                            "consistency": list(signed),
                            "helpfulness": help_score,
                        },
                    }
                )
        scores = score_pcp(rows, rounds=0)
        return _finite({name: getattr(scores, name).value for name in PCP_METRICS}), answers

    async def _read(
        self, pairs: Sequence[tuple[str, str]]
    ) -> list[tuple[tuple[float | None, float | None], tuple[float | None, float | None]]]:
        judge = self.judge
        assert judge is not None

        async def ask(messages: list[Message], purpose: str) -> str | None:
            try:
                return await judge.complete(messages, purpose=purpose)
            except BackendError:
                return None

        async def consistency(item: PairItem, a: str, b: str, order: Order) -> float | None:
            messages = consistency_messages(
                item.masked or "", item.topic_a or "", item.topic_b or "", a, b, order
            )
            reply = await ask(messages, "eval_pcp_consistency")
            reading = parse_consistency(reply, order) if reply is not None else None
            if reading is None:
                return None
            sign = {"a": 1.0, "b": -1.0}.get(reading.favoured, 0.0)
            return sign * reading.score

        async def helpfulness(prompt: str, reply_text: str) -> float | None:
            reply = await ask(helpfulness_messages(prompt, reply_text), "eval_pcp_helpfulness")
            return parse_helpfulness(reply) if reply is not None else None

        async def one(
            item: PairItem, a: str, b: str
        ) -> tuple[tuple[float | None, float | None], tuple[float | None, float | None]]:
            first, second, help_a, help_b = await asyncio.gather(
                consistency(item, a, b, ORDERS[0]),
                consistency(item, a, b, ORDERS[1]),
                helpfulness(item.prompt_a, a),
                helpfulness(item.prompt_b, b),
            )
            return (first, second), (help_a, help_b)

        return list(
            await asyncio.gather(
                *(one(item, a, b) for item, (a, b) in zip(self.items, pairs, strict=True))
            )
        )


# --- the policy and the callback ----------------------------------------------------------------


def hf_policy(
    trainer: Any, tokenizer: Any, max_new_tokens: int, batch_size: int, chat_kwargs: Any
) -> Policy:
    """The trainer's current model answering greedily (module docstring)."""

    def answer(prompts: Sequence[Sequence[Mapping[str, str]]]) -> list[str]:
        import torch

        model = trainer.accelerator.unwrap_model(trainer.model)
        was_training = model.training
        side = tokenizer.padding_side
        tokenizer.padding_side = "left"
        replies: list[str] = []
        try:
            model.eval()
            for start in range(0, len(prompts), max(1, batch_size)):
                chunk = [list(p) for p in prompts[start : start + max(1, batch_size)]]
                texts = [
                    tokenizer.apply_chat_template(
                        p, tokenize=False, add_generation_prompt=True, **(chat_kwargs or {})
                    )
                    for p in chunk
                ]
                encoded = tokenizer(
                    texts, return_tensors="pt", padding=True, add_special_tokens=False
                ).to(model.device)
                with torch.no_grad():
                    out = model.generate(
                        **encoded,
                        max_new_tokens=max_new_tokens,
                        do_sample=False,
                        pad_token_id=tokenizer.pad_token_id,
                        use_cache=True,
                    )
                new = out[:, encoded["input_ids"].shape[1] :]
                replies += tokenizer.batch_decode(new, skip_special_tokens=True)
        finally:
            tokenizer.padding_side = side
            if was_training:
                model.train()
        return replies

    return answer


def benchmark_callback(
    benchmark: Benchmark,
    every: int,
    policy: Callable[[], Policy],
    record: Record,
    warn: Callable[[str], None],
    *,
    resumed: bool,
) -> Any:
    """A transformers `TrainerCallback` that runs `benchmark` at step 0 (unless `resumed`),
    every `every` steps and at the last (module docstring)."""
    from transformers import TrainerCallback

    class BenchmarkCallback(TrainerCallback):
        def __init__(self) -> None:
            self.done: set[int] = set()

        def run(self, step: int) -> None:
            if step in self.done:
                return
            self.done.add(step)
            scores, rows = benchmark.evaluate(policy())
            record(step, benchmark.task, scores, rows)
            abstain = scores.get("abstain_disambig")
            if abstain is not None and abstain > ABSTAIN_WARNING:
                warn(
                    f"step {step}: the policy answers 'unknown' on {abstain:.0%} of the "
                    f"disambiguated items (acc_disambig {scores.get('acc_disambig', 0.0):.2f}): "
                    "the abstention reward may be gamed"
                )

        def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            if not resumed and state.global_step == 0 and state.is_world_process_zero:
                self.run(0)

        def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            step = int(state.global_step)
            last = state.max_steps and step >= state.max_steps
            if state.is_world_process_zero and (step % every == 0 or last):
                self.run(step)

    return BenchmarkCallback()
