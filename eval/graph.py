"""The majority-win graph between models, and its intransitive cycles (networkx).

An edge A -> B means A scored more than half the points in the battles between A and B (a tie is
half a point each; sides pooled). An exact 50-50 split gives no edge. A cycle A -> B -> C -> A is
an intransitivity that no rating can express; each is listed with the debates behind its edges.
"""

from __future__ import annotations

from dataclasses import dataclass

import networkx as nx

from eval.ratings import Counts, head_to_head


@dataclass(frozen=True)
class Edge:
    winner: str
    loser: str
    points: float
    """Points the winner scored against the loser (a tie is half a point)."""
    debates: int


@dataclass(frozen=True)
class Cycle:
    models: list[str]
    """In order: models[0] beats models[1] beats ... beats models[0]."""
    debates: list[int]
    """Debates behind each edge, models[i] -> models[i + 1]."""


def majority_graph(counts: Counts, names: list[str]) -> nx.DiGraph:
    """The directed graph of head-to-head majorities, edges carrying `points` and `debates`.

    >>> from eval.ratings import A_WINS, aggregate
    >>> c = aggregate([0, 1, 2], [1, 2, 0], [A_WINS, A_WINS, A_WINS], 3)
    >>> sorted(majority_graph(c, ["x", "y", "z"]).edges)
    [('x', 'y'), ('y', 'z'), ('z', 'x')]
    """
    n = len(names)
    points, games = head_to_head(counts, n)
    graph = nx.DiGraph()
    graph.add_nodes_from(names)
    for i in range(n):
        for j in range(n):
            if i != j and games[i, j] and points[i, j] > games[i, j] / 2:
                graph.add_edge(
                    names[i], names[j], points=float(points[i, j]), debates=int(games[i, j])
                )
    return graph


def edges(graph: nx.DiGraph) -> list[Edge]:
    """Every majority edge, the most lopsided first."""
    out = [
        Edge(str(u), str(v), float(d["points"]), int(d["debates"]))
        for u, v, d in graph.edges(data=True)
    ]
    return sorted(out, key=lambda e: (-e.points / e.debates, e.winner, e.loser))


def cycles(graph: nx.DiGraph, max_length: int = 4, limit: int = 100) -> tuple[list[Cycle], bool]:
    """Intransitive cycles of up to `max_length` models, the shortest first, at most `limit`.

    Returns (cycles, truncated). Each cycle is rotated to start at its alphabetically first model,
    so the listing is deterministic.
    """
    found: list[Cycle] = []
    truncated = False
    for nodes in nx.simple_cycles(graph, length_bound=max_length):
        if len(found) == limit:
            truncated = True
            break
        names = [str(x) for x in nodes]
        start = names.index(min(names))
        names = names[start:] + names[:start]
        debates = [
            int(graph.edges[names[i], names[(i + 1) % len(names)]]["debates"])
            for i in range(len(names))
        ]
        found.append(Cycle(names, debates))
    return sorted(found, key=lambda c: (len(c.models), c.models)), truncated
