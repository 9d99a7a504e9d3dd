"""Round robin with side swap: every ordered pair of distinct contestants debates every topic.

So each model argues each side against each other model, `replicates` times. The order is
replicate, topic, FOR model, AGAINST model (the order the store's rows have always had).

>>> plan = RoundRobin("run", [Topic(id="t", motion="m")], ["a", "b", "c"], replicates=2)
>>> len(plan), [(p.for_model, p.against_model) for p in plan][:3]
(12, [('a', 'b'), ('a', 'c'), ('b', 'a')])
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from arena.config import Topic
from arena.tasks.debate import DebatePlan, debate_id


class RoundRobin:
    """The debates of a round robin, generated as they are read."""

    def __init__(
        self, run_id: str, topics: Sequence[Topic], contestants: Sequence[str], replicates: int
    ):
        self.run_id = run_id
        self.topics = list(topics)
        self.contestants = list(contestants)
        self.replicates = replicates

    def __len__(self) -> int:
        n = len(self.contestants)
        return self.replicates * len(self.topics) * n * (n - 1)

    def __iter__(self) -> Iterator[DebatePlan]:
        for rep in range(self.replicates):
            for topic in self.topics:
                for a in self.contestants:
                    for b in self.contestants:
                        if a != b:
                            yield DebatePlan(
                                debate_id(self.run_id, topic.id, a, b, rep), topic, a, b, rep
                            )
