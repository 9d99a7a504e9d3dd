"""Planners: which units of work a run plays, in what order.

A planner is an iterable of units with a known length, read lazily by the runner, so a plan of
millions of units costs no memory. Today: `round_robin`. Later: Swiss and active matchmaking,
which may refit ratings between rounds (they may import `eval.ratings`).
"""

from arena.schedule.round_robin import RoundRobin

__all__ = ["RoundRobin"]
