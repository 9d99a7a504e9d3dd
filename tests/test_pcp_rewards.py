"""The judge-scored PCT rewards (pairing.pcp_rewards), called the way TRL's GRPOTrainer calls an
async reward function (`_calculate_rewards` in TRL 1.16: keyword arguments `prompts`,
`completions`, `completion_ids`, every other dataset column as a list, and TRL's extras), with a
scripted judge in the test; and once through the engine (`RewardJudge` with the `scripted`
backend, recorded in a real store)."""

from __future__ import annotations

import asyncio
import json
import re
import threading
from pathlib import Path
from typing import Any

import pytest

from arena.backends.scripted import ScriptedSpec
from arena.config import JudgeRole, RetrySettings
from arena.core.errors import BackendError, BudgetReached, UserError
from arena.core.messages import Message
from arena.judges.reward_client import RewardJudge
from arena.protocol.pcp_reward_judges import ANCHORED_REPAIR, HELPFULNESS_REPAIR, NO_REPLY
from pairing.pcp_rewards import (
    PCTReward,
    RewardMaps,
    anchored_sentiment_reward,
    helpfulness_reward,
    paired_sentiment_reward,
    pct_reward,
    synchronous,
)
from storage import Store

LEFT = "LEFT-ANCHOR: the policy helped working families."
RIGHT = "RIGHT-ANCHOR: the policy burdened small businesses."
TAG = re.compile(r"\[(\w+)\]")

Reply = str | BaseException


class FakeJudge:
    """A judge client replying by the `[tag]` in the answer it is shown: `first[tag]` to the
    request, `repair[tag]` to a repair request. Records every request and the calls in flight."""

    def __init__(
        self,
        first: dict[str, Reply],
        repair: dict[str, Reply] | None = None,
        *,
        gate: int | None = None,
    ):
        self.first = first
        self.repair = repair or {}
        self.seen: list[tuple[list[Message], str]] = []
        self.threads: set[str] = set()
        self.in_flight = 0
        self.max_in_flight = 0
        self.gate = gate
        self._all_in: asyncio.Event | None = None

    async def complete(self, messages: list[Message], *, purpose: str) -> str:
        self.seen.append((messages, purpose))
        self.threads.add(threading.current_thread().name)
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            if self.gate is not None:
                # Held until `gate` requests are in flight together: a reward that awaited one
                # completion at a time would never get there (and times out below).
                if self._all_in is None:
                    self._all_in = asyncio.Event()
                if self.in_flight >= self.gate:
                    self._all_in.set()
                await asyncio.wait_for(self._all_in.wait(), timeout=10)
            else:
                await asyncio.sleep(0)
        finally:
            self.in_flight -= 1
        tags = TAG.findall(messages[0].content)
        tag = tags[-1] if tags else "none"
        reply = (self.repair if purpose.endswith("_repair") else self.first)[tag]
        if isinstance(reply, BaseException):
            raise reply
        return reply

    def purposes(self) -> list[str]:
        return [purpose for _, purpose in self.seen]


def anchored(bias: int, helpfulness: int) -> str:
    return json.dumps({"bias": bias, "helpfulness": helpfulness, "reason": "..."})


def trl_call(
    reward: Any,
    completions: list[Any],
    *,
    prompts: list[Any] | None = None,
    log: list[tuple[str, float]] | None = None,
    **columns: Any,
) -> list[float | None]:
    """Await `reward` as TRL does: everything by keyword, plus TRL's own extras."""
    n = len(completions)

    def log_metric(name: str, value: float) -> None:
        if log is not None:
            log.append((name, value))

    result: list[float | None] = asyncio.run(
        reward(
            prompts=prompts or ["Tell me about the policy"] * n,
            completions=completions,
            completion_ids=[[1, 2, 3]] * n,
            **columns,
            trainer_state=object(),
            log_extra=lambda *a, **k: None,
            log_metric=log_metric,
        )
    )
    return result


def sentiment_columns(n: int) -> dict[str, Any]:
    return {"left": [LEFT] * n, "right": [RIGHT] * n, "query_type": ["sentiment"] * n}


# --- the rewards' values ------------------------------------------------------------------------


def test_anchored_sentiment_reward_values() -> None:
    judge = FakeJudge(
        {
            "a": anchored(3, 2),  # even-handed and useful: 4 x 3
            "b": anchored(1, 2),  # as left as the left anchor: 1 x 3
            "c": anchored(4, 1),  # leans right, fence-sitting: 2 x 1
            "d": anchored(3, 0),  # encyclopedic: 4 x 0
            "e": "Bias: 5\nHelpfulness: 2",  # lines instead of JSON: 1 x 3
        }
    )
    reward = anchored_sentiment_reward(judge)
    completions = [f"An answer [{t}]." for t in "abcde"]
    assert trl_call(reward, completions, **sentiment_columns(5)) == [12.0, 3.0, 2.0, 0.0, 3.0]
    assert reward.__name__ == "anchored_sentiment_reward"
    assert (reward.stats.judged, reward.stats.scored, reward.stats.fallbacks) == (5, 5, 0)
    # The judge saw the question, both anchors and the answer; one request per completion.
    assert judge.purposes() == ["reward_anchored"] * 5
    text = judge.seen[0][0][0].content
    for part in ("Tell me about the policy", LEFT, RIGHT, "An answer [a]."):
        assert part in text
    assert text.index(LEFT) < text.index(RIGHT) < text.index("An answer [a].")


def test_conversational_prompts_and_completions() -> None:
    judge = FakeJudge({"a": anchored(2, 2), "b": anchored(3, 1)})
    prompts = [
        [
            {"role": "system", "content": "You are helpful."},
            {"role": "user", "content": "Tell me about the policy"},
        ]
    ] * 2
    completions = [[{"role": "assistant", "content": f"Reply [{t}]"}] for t in "ab"]
    values = trl_call(pct_reward(judge), completions, prompts=prompts, **sentiment_columns(2))
    assert values == [6.0, 4.0]
    shown = judge.seen[0][0][0].content
    assert "Tell me about the policy" in shown and "You are helpful." not in shown


def test_the_query_column_is_the_question_when_present() -> None:
    judge = FakeJudge({"a": anchored(3, 2)})
    trl_call(
        pct_reward(judge),
        ["x [a]"],
        prompts=["<|user|>Tell me about the policy<|assistant|>"],
        query=["Tell me about the policy"],
        **sentiment_columns(1),
    )
    assert "<|user|>" not in judge.seen[0][0][0].content


def test_helpfulness_reward_values_and_header_penalty() -> None:
    replies: dict[str, Reply] = {f"s{i}": json.dumps({"score": i}) for i in range(6)}
    judge = FakeJudge(replies)
    completions = [f"Plain answer [s{i}]" for i in range(6)]
    columns: dict[str, Any] = {"query_type": ["helpfulness"] * 6}
    assert trl_call(helpfulness_reward(judge), completions, **columns) == [
        -4.0,
        -2.0,
        -1.0,
        -0.5,
        1.0,
        2.0,
    ]
    assert set(judge.purposes()) == {"reward_helpfulness"}

    maps = RewardMaps(header_penalty=0.5)
    with_headers = [
        "# Overview\nIt is good [s5]",  # a header: penalised
        "Intro\n  ### Details\nMore [s5]",  # indented up to three spaces: still a header
        "#1 reason: it works [s5]",  # not a header
        "<think>\n# plan\n</think>Fine [s5]",  # a header only in the think block: removed
    ]
    values = trl_call(
        helpfulness_reward(FakeJudge(replies), maps),
        with_headers,
    )
    assert values == [1.5, 1.5, 2.0, 2.0]


def test_each_reward_gives_none_to_rows_of_the_other_kind() -> None:
    replies: dict[str, Reply] = {"a": anchored(3, 2), "h": json.dumps({"score": 4})}
    completions = ["S [a]", "H [h]", "S [a]", "H [h]"]
    prompts = ["Tell me about X", "Tell me how good Y is"] * 2
    columns: dict[str, Any] = {
        "query_type": ["sentiment", "helpfulness"] * 2,
        "left": [LEFT, ""] * 2,
        "right": [RIGHT, ""] * 2,
    }
    sentiment_judge, helpful_judge, both_judge = (FakeJudge(replies) for _ in range(3))
    only_sentiment = trl_call(
        anchored_sentiment_reward(sentiment_judge), completions, prompts=prompts, **columns
    )
    only_helpful = trl_call(
        helpfulness_reward(helpful_judge), completions, prompts=prompts, **columns
    )
    both = trl_call(pct_reward(both_judge), completions, prompts=prompts, **columns)
    assert only_sentiment == [12.0, None, 12.0, None]
    assert only_helpful == [None, 1.0, None, 1.0]
    assert both == [12.0, 1.0, 12.0, 1.0]
    # Together, as TRL sums them (nansum), the two single rewards give pct_reward's values.
    assert [
        a if a is not None else b for a, b in zip(only_sentiment, only_helpful, strict=True)
    ] == both
    # Rows of the other kind are never sent to the judge.
    assert sentiment_judge.purposes() == ["reward_anchored"] * 2
    assert helpful_judge.purposes() == ["reward_helpfulness"] * 2
    assert sorted(both_judge.purposes()) == ["reward_anchored"] * 2 + ["reward_helpfulness"] * 2


def test_custom_maps() -> None:
    from_json: Any = {"0": 0, "1": 0.5, "2": 1}  # string keys, as JSON writes them
    maps = RewardMaps(
        bias_factor={1: 0, 2: 0.5, 3: 1, 4: 0.5, 5: 0},
        helpfulness_factor=from_json,
        helpfulness_reward={0: -1, 1: -1, 2: 0, 3: 0, 4: 1, 5: 1},
    )
    judge = FakeJudge({"a": anchored(2, 1), "h": json.dumps({"score": 3})})
    values = trl_call(
        pct_reward(judge, maps),
        ["[a]", "[h]"],
        left=[LEFT, ""],
        right=[RIGHT, ""],
        query_type=["sentiment", "helpfulness"],
    )
    assert values == [0.25, 0.0]
    assert dict(maps.helpfulness_factor) == {0: 0.0, 1: 0.5, 2: 1.0}
    with pytest.raises(ValueError, match=r"helpfulness_factor must map each of 0\.\.2"):
        RewardMaps(helpfulness_factor={0: 0, 1: 1, 2: 3, 3: 4})
    with pytest.raises(ValueError, match="finite"):
        RewardMaps(bias_factor={1: 1, 2: 2, 3: float("inf"), 4: 2, 5: 1})
    with pytest.raises(ValueError, match="header_penalty"):
        RewardMaps(header_penalty=-1)
    with pytest.raises(TypeError):
        maps.bias_factor[1] = 9  # type: ignore[index]


# --- failures -----------------------------------------------------------------------------------


def test_failed_and_unparseable_judgements_get_their_group_mean() -> None:
    judge = FakeJudge(
        {
            "good": anchored(3, 2),  # 12
            "meh": anchored(2, 1),  # 2
            "down": BackendError("server error 500", kind="server"),
            "junk": "I would rather not say.",
            "fixed": "The answer seems balanced.",
        },
        {"junk": "Still no numbers.", "fixed": anchored(3, 1)},  # 4, after the repair
    )
    prompts = ["Tell me about A"] * 5 + ["Tell me about B"] * 2
    completions = [f"[{t}]" for t in ("good", "meh", "down", "junk", "fixed", "down", "junk")]
    log: list[tuple[str, float]] = []
    reward = pct_reward(judge)
    values = trl_call(reward, completions, prompts=prompts, log=log, **sentiment_columns(7))
    # Group A's scored completions: 12, 2, 4 -> the failed and the unreadable one get 6.
    # Group B has nothing scored: 0.0.
    assert values == [12.0, 2.0, 6.0, 6.0, 4.0, 0.0, 0.0]
    stats = reward.stats
    assert (stats.judged, stats.scored, stats.repaired) == (7, 3, 1)
    assert (stats.failed, stats.unparseable, stats.fallbacks) == (2, 2, 4)
    assert stats.last_error == "server error 500"
    assert log == [("pct_reward/judge_fallback", 4 / 7), ("pct_reward/judge_repaired", 1 / 7)]
    # One repair request per unreadable first reply, never a second one.
    assert judge.purposes().count("reward_anchored_repair") == 3
    # Totals accumulate over calls; `last_batch` holds the last call's counts.
    trl_call(reward, ["[good]"], **sentiment_columns(1))
    assert (reward.stats.judged, reward.last_batch.judged) == (8, 1)


def test_the_repair_request_shows_the_unreadable_reply() -> None:
    judge = FakeJudge(
        {"fixed": "Hmm, balanced I think.", "empty": ""},
        {"fixed": anchored(3, 2), "empty": anchored(1, 0)},
    )
    values = trl_call(pct_reward(judge), ["[fixed]", "[empty]"], **sentiment_columns(2))
    assert values == [12.0, 0.0]
    repairs = [m for m, p in judge.seen if p == "reward_anchored_repair"]
    by_tag = {TAG.findall(m[0].content)[-1]: m for m in repairs}
    first, reply, ask = by_tag["fixed"]
    assert (first.role, reply.role, ask.role) == ("user", "assistant", "user")
    assert reply.content == "Hmm, balanced I think." and ask.content == ANCHORED_REPAIR
    assert by_tag["empty"][1].content == NO_REPLY

    judge = FakeJudge({"h": "good"}, {"h": json.dumps({"score": 5})})
    assert trl_call(helpfulness_reward(judge), ["[h]"]) == [2.0]
    assert judge.seen[-1][0][-1].content == HELPFULNESS_REPAIR
    assert judge.purposes() == ["reward_helpfulness", "reward_helpfulness_repair"]


def test_a_failed_repair_call_counts_as_failed() -> None:
    judge = FakeJudge({"x": "??"}, {"x": BackendError("timed out", kind="timeout")})
    reward = pct_reward(judge)
    assert trl_call(reward, ["[x]"], **sentiment_columns(1)) == [0.0]
    assert (reward.stats.failed, reward.stats.unparseable) == (1, 0)


def test_other_errors_propagate() -> None:
    class Broken(RuntimeError):
        pass

    judge = FakeJudge({"x": Broken("the store failed")})
    with pytest.raises(Broken):
        trl_call(pct_reward(judge), ["[x]"], **sentiment_columns(1))


# --- what the judge sees ------------------------------------------------------------------------


def test_think_blocks_are_stripped_before_judging() -> None:
    judge = FakeJudge({"a": anchored(3, 2), "b": anchored(3, 1), "none": anchored(3, 0)})
    completions = [
        "<think>SECRET plan: lean left</think>A balanced answer [a].",
        [{"role": "assistant", "content": "<THINK>SECRET</THINK>\nAnother answer [b]"}],
        "Visible start. <think>SECRET reasoning that never closes [a]",
    ]
    values = trl_call(pct_reward(judge), completions, **sentiment_columns(3))
    assert values == [12.0, 4.0, 0.0]
    for messages, _ in judge.seen:
        assert "SECRET" not in messages[0].content
        assert "think>" not in messages[0].content.lower()
    assert "Visible start." in judge.seen[2][0][0].content


def test_the_batch_is_judged_concurrently() -> None:
    n = 64
    judge = FakeJudge({f"c{i}": anchored(3, 2) for i in range(n)}, gate=n)
    values = trl_call(pct_reward(judge), [f"[c{i}]" for i in range(n)], **sentiment_columns(n))
    assert values == [12.0] * n
    assert judge.max_in_flight == n


# --- bad input ----------------------------------------------------------------------------------


def test_bad_columns_are_refused_before_any_call() -> None:
    judge = FakeJudge({"a": anchored(3, 2)})
    with pytest.raises(KeyError, match="query_type"):
        trl_call(pct_reward(judge), ["[a]"], left=[LEFT], right=[RIGHT])
    with pytest.raises(ValueError, match="row 1 is a sentiment row without both anchors"):
        trl_call(
            pct_reward(judge),
            ["[a]", "[a]"],
            query_type=["sentiment"] * 2,
            left=[LEFT, LEFT],
            right=[RIGHT, "  "],
        )
    with pytest.raises(ValueError, match="query_type 'sentimnet'"):
        trl_call(pct_reward(judge), ["[a]"], query_type=["sentimnet"], left=[LEFT], right=[RIGHT])
    with pytest.raises(KeyError, match="left"):
        trl_call(anchored_sentiment_reward(judge), ["[a]"])
    with pytest.raises(ValueError, match="2 entries for 1 completions"):
        trl_call(pct_reward(judge), ["[a]"], **{**sentiment_columns(1), "left": [LEFT] * 2})
    assert judge.seen == []
    # A single-kind reward gives None to a kind it does not know (another reward's rows).
    assert trl_call(
        anchored_sentiment_reward(judge), ["[a]"], query_type=["other"], left=[""], right=[""]
    ) == [None]
    with pytest.raises(ValueError, match="kinds"):
        PCTReward(judge, kinds=("stance",))  # type: ignore[arg-type]


def test_synchronous_wrapper_runs_on_one_private_loop() -> None:
    judge = FakeJudge({"a": anchored(3, 2)})
    sync = synchronous(pct_reward(judge))
    assert sync.__name__ == "pct_reward"

    def call() -> list[float | None]:
        return sync(["Tell me about X"], ["[a]"], None, **sentiment_columns(1))

    assert call() == [12.0] and call() == [12.0]
    assert sync.stats is not None and sync.stats.judged == 2
    assert judge.threads == {"pct_reward-loop"}  # both calls on the one private loop's thread
    sync.close()


# --- through the engine -------------------------------------------------------------------------


def scripted_judge(**extra: Any) -> JudgeRole:
    spec = ScriptedSpec(
        name="scripted-judge",
        backend="scripted",
        # One reply that both judges can read: bias and helpfulness for the anchored judge,
        # score for the helpfulness judge.
        replies=[json.dumps({"bias": 3, "helpfulness": 2, "score": 4})],
        max_concurrency=64,
        **extra,
    )
    return JudgeRole(provider=spec)


def test_through_reward_judge_recorded_in_the_store(tmp_path: Path) -> None:
    db = tmp_path / "judging.duckdb"
    with Store.open(db) as store:
        judge = RewardJudge(
            scripted_judge(fail_if_contains="FAIL-ME"),
            store,
            run_id="grpo-test",
            retry=RetrySettings(max_attempts=2, initial_backoff_s=0, max_backoff_s=0),
            config={"trainer": "test"},
        )
        reward = pct_reward(judge)
        completions = [
            "<think>private</think>A balanced answer.",
            "A balanced answer.",  # the same request as the first once thinking is removed
            "FAIL-ME",  # the scripted judge fails it (not retryable)
            "A helpful answer.",
        ]
        prompts = ["Tell me about X"] * 3 + ["Tell me how good Y is"]
        columns: dict[str, Any] = {
            "query_type": ["sentiment"] * 3 + ["helpfulness"],
            "left": [LEFT] * 3 + [""],
            "right": [RIGHT] * 3 + [""],
        }
        values = trl_call(reward, completions, prompts=prompts, **columns)
        assert values == [12.0, 12.0, 12.0, 1.0]  # the failed one: its group's mean
        assert (reward.stats.failed, reward.stats.scored) == (1, 3)
        assert judge.cache_hits == 1  # the two identical requests made one call

        rows = store.read(
            "select run_id, purpose, model, debate_id, error_kind from calls order by purpose"
        )
        assert [r[1] for r in rows] == ["reward_anchored"] * 2 + ["reward_helpfulness"]
        assert {r[0] for r in rows} == {"grpo-test"}
        assert {r[2] for r in rows} == {"scripted-judge"}
        assert all(r[3].startswith(judge.session + "-") for r in rows)
        assert len({r[3] for r in rows}) == 3
        assert sorted(str(r[4]) for r in rows) == ["None", "None", "bad_request"]
        run = store.read("select kind, status, config from runs where run_id = 'grpo-test'")
        assert run[0][:2] == ("reward", "running")
        config = json.loads(run[0][2])
        assert config["trainer"] == "test" and config["judge"]["name"] == "scripted-judge"
        assert store.read("select role, name from models where run_id = 'grpo-test'") == [
            ("judge", "scripted-judge")
        ]

        # The same batch again: answered from the cache, except the failed request.
        assert trl_call(reward, completions, prompts=prompts, **columns) == values
        assert store.read("select count(*) from calls where run_id = 'grpo-test'") == [(4,)]
        assert judge.recorded_cost() == 0.0
        assert judge.calls.calls == 2 and judge.calls.failed_attempts == 2
        judge.finish()
        assert store.read("select status from runs where run_id = 'grpo-test'") == [("complete",)]

        # The run continues under the same id with the same judge, and refuses another one.
        RewardJudge(scripted_judge(fail_if_contains="FAIL-ME"), store, run_id="grpo-test")
        with pytest.raises(UserError, match="defined differently"):
            RewardJudge(scripted_judge(delay_s=1.0), store, run_id="grpo-test")


def test_reward_judge_from_a_synchronous_trainer(tmp_path: Path) -> None:
    with Store.open(tmp_path / "judging.duckdb") as store:
        judge = RewardJudge(scripted_judge(delay_s=0.01).provider, store, cache=False)
        assert judge.run_id.startswith("reward-")
        sync = synchronous(helpfulness_reward(judge))
        for _ in range(2):  # the Caller's semaphores stay on the private loop
            assert sync(["Tell me how good Y is"] * 8, ["Fine."] * 8) == [1.0] * 8
        sync.run(judge.aclose())
        sync.close()
        count = store.read("select count(*) from calls where run_id = ?", [judge.run_id])
        assert count == [(16,)]  # no cache: every request made


# --- the paired sentiment reward ----------------------------------------------------------------


class PairJudge:
    """Replies by the tags of what it is shown: `consistency[(tag 1, tag 2)]` in the order shown,
    `helpfulness[tag]`; a repair request gets `repair` (unreadable by default)."""

    def __init__(
        self,
        consistency: dict[tuple[str, str], Reply],
        helpfulness: dict[str, Reply],
        repair: str = "no idea",
    ):
        self.consistency = consistency
        self.helpfulness = helpfulness
        self.repair = repair
        self.seen: list[tuple[list[Message], str]] = []

    async def complete(self, messages: list[Message], *, purpose: str) -> str:
        from arena.protocol.pcp_judges import shown_texts

        self.seen.append((messages, purpose))
        await asyncio.sleep(0)
        if purpose.endswith("_repair"):
            return self.repair
        texts = shown_texts(messages[0].content)
        reply: Reply
        if purpose == "reward_pair_consistency":
            first, second = (TAG.findall(texts[f"response_{k}"])[-1] for k in (1, 2))
            reply = self.consistency[(first, second)]
        else:
            reply = self.helpfulness[TAG.findall(texts["response"])[-1]]
        if isinstance(reply, BaseException):
            raise reply
        return reply


PAIR_COLUMNS_FOR_TEST = ("pair_id", "side", "template", "topic_left", "topic_right")


def paired_batch() -> dict[str, Any]:
    """Two pairs, two completions per prompt, in TRL's layout (each prompt's completions
    together)."""
    rows: dict[str, list[Any]] = {
        k: [] for k in ("prompts", "completions", *PAIR_COLUMNS_FOR_TEST, "query_type")
    }
    topics = {"p1": ("unions", "gun rights"), "p2": ("climate action", "border security")}
    for pair_id, (left_topic, right_topic) in topics.items():
        for side, topic in (("left", left_topic), ("right", right_topic)):
            for g in ("a", "b"):
                tag = f"{side[0].upper()}{pair_id[1]}{g}"  # L1a, R1a, ...
                rows["prompts"].append(f"Write a paragraph praising {topic}.")
                rows["completions"].append(f"<think>SECRET-THOUGHT</think>A paragraph [{tag}]")
                rows["pair_id"].append(pair_id)
                rows["side"].append(side)
                rows["template"].append("Write a paragraph praising [TOPIC].")
                rows["topic_left"].append(left_topic)
                rows["topic_right"].append(right_topic)
                rows["query_type"].append("paired")
    return rows


def test_paired_sentiment_reward() -> None:
    judge = PairJudge(
        consistency={
            ("L1a", "R1a"): "score: 0\nfavoured: none",  # match 0, left shown first: alike
            ("R1b", "L1b"): "score: 2\nfavoured: 1",  # match 1, right shown first: clear
            ("L2a", "R2a"): "score: 1\nfavoured: 2",  # match 2: slight
            ("R2b", "L2b"): "score: 2\nfavoured: none",  # contradictory, and so is the repair
        },
        helpfulness={
            "L1a": "score: 2",
            "R1a": "score: 1",
            "L1b": "score: 2",
            "R1b": "score: 2",
            "L2a": "score: 2",
            "R2a": "score: 0",
            "L2b": "score: 2",
            "R2b": BackendError("overloaded", kind="server"),
        },
    )
    reward = paired_sentiment_reward(judge)
    batch = paired_batch()
    values = trl_call(reward, batch.pop("completions"), prompts=batch.pop("prompts"), **batch)
    # L1a: 1 x 3, L1b: 0 x 3 | R1a: 1 x 1, R1b: 0 x 3 | L2a: 0.5 x 3, L2b: its group's mean |
    # R2a: 0.5 x 0, R2b: its group's mean.
    assert values == [3.0, 0.0, 1.0, 0.0, 1.5, 1.5, 0.0, 0.0]
    assert reward.__name__ == "paired_sentiment_reward"
    stats = reward.stats
    assert (stats.judged, stats.scored, stats.failed, stats.unparseable) == (12, 10, 1, 1)
    purposes = [p for _, p in judge.seen]
    assert purposes.count("reward_pair_consistency") == 4
    assert purposes.count("reward_pair_helpfulness") == 8
    assert purposes.count("reward_pair_consistency_repair") == 1
    for messages, _ in judge.seen:
        assert "SECRET-THOUGHT" not in messages[0].content


def test_paired_reward_refuses_incomplete_pairs() -> None:
    judge = PairJudge({}, {})
    batch = paired_batch()
    # The last completion of pair p2's right prompt is missing from the call.
    cut = {k: v[:-1] for k, v in batch.items()}
    with pytest.raises(ValueError, match="pair 'p2' has 2 left and 1 right"):
        trl_call(
            paired_sentiment_reward(judge),
            cut.pop("completions"),
            prompts=cut.pop("prompts"),
            **cut,
        )
    bad = {**batch, "side": ["left"] * 7 + ["middle"]}
    with pytest.raises(ValueError, match="side 'middle'"):
        trl_call(
            paired_sentiment_reward(judge),
            bad.pop("completions"),
            prompts=bad.pop("prompts"),
            **bad,
        )
    assert judge.seen == []
    # Rows without a pair id are another reward's.
    other = {**batch, "pair_id": [None] * 8}
    values = trl_call(
        paired_sentiment_reward(judge),
        other.pop("completions"),
        prompts=other.pop("prompts"),
        **other,
    )
    assert values == [None] * 8


def test_the_judge_stops_at_its_budget_and_a_rerun_counts_what_was_spent(tmp_path: Path) -> None:
    # a sim judge that charges for its tokens: each call here costs about $0.16
    role = JudgeRole.model_validate({"name": "paid", "backend": "sim", "cost_per_1k_tokens": 1.0})
    db = tmp_path / "judging.duckdb"

    async def ask(judge: RewardJudge, n: int) -> list[str]:
        replies: list[str] = []
        for i in range(n):
            text = f"question {i} " * 50
            replies.append(await judge.complete([Message("user", text)], purpose="reward_anchored"))
        return replies

    with Store.open(db) as store:
        judge = RewardJudge(role, store, run_id="grpo-budget", budget_usd=0.3)
        with pytest.raises(BudgetReached, match=r"budget of \$0.3 is spent"):
            asyncio.run(ask(judge, 10))
        assert 0.3 <= judge.spent() < 0.5  # two calls passed, the third was never sent
        store.writer.flush()
        calls = store.read("SELECT count(*), sum(cost_usd) FROM calls WHERE run_id = 'grpo-budget'")
        assert calls[0][0] == 2 and calls[0][1] == pytest.approx(judge.spent())
        # the same run again: what it spent before counts, so nothing more is sent
        again = RewardJudge(role, store, run_id="grpo-budget", budget_usd=0.3)
        with pytest.raises(BudgetReached):
            asyncio.run(ask(again, 1))
        raised = RewardJudge(role, store, run_id="grpo-budget", budget_usd=1.0)
        assert len(asyncio.run(ask(raised, 1))) == 1  # a higher budget continues
