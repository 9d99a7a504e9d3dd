"""A static site of the recorded debates (`arena view`): plain HTML files that any browser opens
from disk, no server, nothing fetched from elsewhere.

Top to bottom: `page_name` (a safe file name for a model or run name, shared with the rank
report's links), `DebateSummary` (what a debates table row and a model page need of a debate),
`ModelRecord` (a model's wins, losses and ties, per opponent, and its closest losses),
`build_site`, which reads every tournament run through `storage.read_connection` (a bulk read;
a consistent snapshot while a tournament writes), and `write_site`, which renders the pages
from the Jinja templates `eval/templates/site_*.html.j2` into a folder:

    index.html                    the runs
    runs/<run>/debates-<k>.html   a run's debates, `PAGE_SIZE` per page, filterable and sortable
    debates/<debate_id>.html      one debate: its turns in order, every verdict and rationale
    models/<model>.html           a model's record, per opponent (`#vs-<opponent>`), and its
                                  closest losses

Reading needs no JavaScript; a small inline script per debates page filters its rows by model,
opponent, topic, winner and judge disagreement (also from the address: `?model=a&vs=b`) and
sorts them by a clicked column. The rank report links its leaderboard rows to the model pages
and its heatmap cells to a model page's section on that opponent (`arena rank --site`).

A debate's closest losses are the debates a model lost in which the most counting judges sided
with it (the share of its side's valid counting verdicts, a tie counting half); P(FOR) is not
used, as only log-probability judges record it.

The debate pages, most of the work, are rendered and written by forked worker processes, one
per CPU (at most 8), when there are `PARALLEL_FROM` of them or more and the system forks; they
inherit the transcripts read here, so nothing is sent to them but page ranges.

Simplified on purpose: the whole file is read at once (a 15,000-debate file is a few hundred MB
of text in memory); the filters act on the page shown, not on a run's other pages; pages are
rewritten whole on every run of `arena view` (the folder is replaced atomically).
"""

from __future__ import annotations

import hashlib
import os
import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

import jinja2

from eval.transcripts import (
    VARIANTS,
    DebateTranscript,
    connection_fetch,
    gather,
    judges_disagree,
)
from eval.transcripts_render import VERDICT_COLUMNS, about, headline, turn_usage, verdict_cells
from storage import read_connection

PAGE_SIZE: Final = 250
"""Debates per page of a run's debates table."""
CLOSEST: Final = 10
"""Closest losses listed on a model page."""

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def page_name(name: str) -> str:
    """A file name stem for `name`: itself when it is safe, else a readable part and a hash.

    >>> page_name("sim-a"), page_name("org/model:7b")
    ('sim-a', 'org-model-7b-a0975b6b')
    """
    safe = _UNSAFE.sub("-", name).strip("-.")[:60]
    if safe == name and safe:
        return safe
    return f"{safe}-{hashlib.sha256(name.encode()).hexdigest()[:8]}".lstrip("-")


def model_href(name: str, opponent: str | None = None) -> str:
    """The model page's path from the site's root (and its section on `opponent`)."""
    anchor = f"#vs-{page_name(opponent)}" if opponent is not None else ""
    return f"models/{page_name(name)}.html{anchor}"


@dataclass(frozen=True)
class DebateSummary:
    """One row of a debates table."""

    debate_id: str
    run_id: str
    topic_id: str
    for_model: str
    against_model: str
    status: str
    winner: str | None
    winner_model: str | None
    votes: str
    """The counting valid verdicts: 'FOR 2 · AGAINST 1'."""
    support: dict[str, float]
    """Per side, the share of counting valid verdicts for it (a tie half to each)."""
    disagree: bool
    turns: int
    page: int
    """The page of its run's debates table that lists it."""


def summarise(t: DebateTranscript, page: int) -> DebateSummary:
    counted = [v.winner for v in t.verdicts if v.counts and v.valid and v.winner]
    tally = Counter(counted)
    share = {
        side: (tally[side] + tally["TIE"] / 2) / len(counted) if counted else 0.0
        for side in ("FOR", "AGAINST")
    }
    return DebateSummary(
        debate_id=t.debate.debate_id,
        run_id=t.debate.run_id,
        topic_id=t.debate.topic_id,
        for_model=t.debate.for_model,
        against_model=t.debate.against_model,
        status=t.debate.status,
        winner=t.debate.winner,
        winner_model=t.winner_model,
        votes=" · ".join(f"{s} {tally[s]}" for s in ("FOR", "AGAINST", "TIE") if tally[s]),
        support=share,
        disagree=judges_disagree(t),
        turns=len(t.turns),
        page=page,
    )


@dataclass
class ModelRecord:
    """A model's results over the decided debates it took part in (ties count as ties)."""

    name: str
    wins: int = 0
    losses: int = 0
    ties: int = 0
    undecided: int = 0
    per_opponent: dict[str, list[DebateSummary]] = field(default_factory=dict)
    losses_list: list[tuple[float, DebateSummary]] = field(default_factory=list)

    def add(self, d: DebateSummary) -> None:
        side = "FOR" if d.for_model == self.name else "AGAINST"
        opponent = d.against_model if side == "FOR" else d.for_model
        self.per_opponent.setdefault(opponent, []).append(d)
        if d.winner is None:
            self.undecided += 1
        elif d.winner == "TIE":
            self.ties += 1
        elif d.winner == side:
            self.wins += 1
        else:
            self.losses += 1
            self.losses_list.append((d.support[side], d))

    def closest_losses(self) -> list[tuple[float, DebateSummary]]:
        """The `CLOSEST` losses with the most support for this model, most first."""
        return sorted(self.losses_list, key=lambda x: (-x[0], x[1].debate_id))[:CLOSEST]

    def tally(self, opponent: str) -> Counter[str]:
        """Outcomes against `opponent`: won, lost, tie, ..."""
        return Counter(self.outcome(d) for d in self.per_opponent.get(opponent, []))

    def outcome(self, d: DebateSummary) -> str:
        side = "FOR" if d.for_model == self.name else "AGAINST"
        if d.winner is None:
            return d.status if d.status != "done" else "no verdict"
        return "tie" if d.winner == "TIE" else "won" if d.winner == side else "lost"


@dataclass(frozen=True)
class Run:
    run_id: str
    status: str
    created_at: str
    debates: list[DebateSummary]
    pages: int
    topics: list[str]
    models: list[str]


@dataclass(frozen=True)
class SiteStats:
    """What `write_site` wrote."""

    runs: int
    debates: int
    files: int
    bytes: int
    largest: tuple[str, int]
    """The largest page (path from the folder) and its size in bytes."""


RUNS_SQL: Final = (
    "SELECT r.run_id, r.status, CAST(r.created_at AS VARCHAR) FROM runs r"
    " WHERE r.run_id IN (SELECT run_id FROM debates) ORDER BY r.created_at, r.run_id"
)


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("eval", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.globals.update(
        page_name=page_name,
        model_href=model_href,
        about=about,
        headline=headline,
        turn_usage=turn_usage,
        verdict_cells=verdict_cells,
        verdict_columns=VERDICT_COLUMNS,
        variants=VARIANTS,
    )
    return env


def _runs(
    db: str | os.PathLike[str],
) -> Iterator[tuple[tuple[str, str, str], list[DebateTranscript]]]:
    with read_connection(db, tables=["runs", "topics", "debates", "turns", "verdicts"]) as con:
        fetch = connection_fetch(con)
        for run in fetch(RUNS_SQL, [])[1]:
            yield (
                (str(run[0]), str(run[1]), str(run[2])),
                gather(fetch, "{id} IN (SELECT debate_id FROM debates WHERE run_id = ?)", [run[0]]),
            )


_PENDING: list[tuple[DebateTranscript, DebateSummary]] = []
"""The debate pages `write_site` is writing, read by the forked workers of `_write_debates`."""

PARALLEL_FROM: Final = 500
"""Debate pages from which `_write_debates` forks workers (below it, one process is faster)."""


def _write_file(folder: Path, path: str, text: str) -> int:
    target = folder / path
    data = text.encode("utf-8")
    target.write_bytes(data)
    return len(data)


def _write_debate_range(folder: Path, start: int, stop: int) -> list[tuple[str, int]]:
    """Render and write the debate pages `_PENDING[start:stop]`; their paths and sizes."""
    template = _environment().get_template("site_debate.html.j2")
    written: list[tuple[str, int]] = []
    for t, summary in _PENDING[start:stop]:
        path = f"debates/{page_name(summary.debate_id)}.html"
        text = template.render(t=t, d=summary, root="../")
        written.append((path, _write_file(folder, path, text)))
    return written


def _worker_count() -> int:
    """Worker processes for the debate pages: the CPUs this process may use, at most 8."""
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return min(8, cpus or 1)


def _write_debates(
    folder: Path, pages: list[tuple[DebateTranscript, DebateSummary]]
) -> list[tuple[str, int]]:
    """Render and write a page per debate into `folder/debates/`: in forked worker processes,
    one per CPU (at most 8), where the system forks and there are many pages; else here."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    (folder / "debates").mkdir(parents=True, exist_ok=True)
    workers = _worker_count()
    _PENDING[:] = pages
    try:
        if (
            workers < 2
            or len(pages) < PARALLEL_FROM
            or "fork" not in multiprocessing.get_all_start_methods()
        ):
            return _write_debate_range(folder, 0, len(pages))
        step = -(-len(pages) // (workers * 4))  # a few chunks a worker: an even finish
        context = multiprocessing.get_context("fork")
        with ProcessPoolExecutor(workers, mp_context=context) as pool:
            chunks = [
                pool.submit(_write_debate_range, folder, start, start + step)
                for start in range(0, len(pages), step)
            ]
            return [item for chunk in chunks for item in chunk.result()]
    finally:
        _PENDING.clear()


def write_site(db: str | os.PathLike[str], folder: Path) -> SiteStats:
    """Read every run with debates from `db` and write the site into `folder` (which must exist:
    the caller makes it, as a temporary to rename into place)."""
    env = _environment()
    runs: list[Run] = []
    records: dict[str, ModelRecord] = {}
    written: dict[str, int] = {}
    pages: list[tuple[DebateTranscript, DebateSummary]] = []

    def write(path: str, text: str) -> None:
        (folder / path).parent.mkdir(parents=True, exist_ok=True)
        written[path] = _write_file(folder, path, text)

    for (run_id, status, created), transcripts in _runs(db):
        summaries: list[DebateSummary] = []
        for k, t in enumerate(transcripts):
            summary = summarise(t, 1 + k // PAGE_SIZE)
            summaries.append(summary)
            for name in (summary.for_model, summary.against_model):
                records.setdefault(name, ModelRecord(name)).add(summary)
            pages.append((t, summary))
        runs.append(
            Run(
                run_id=run_id,
                status=status,
                created_at=created,
                debates=summaries,
                pages=max(1, -(-len(summaries) // PAGE_SIZE)),
                topics=sorted({s.topic_id for s in summaries}),
                models=sorted({m for s in summaries for m in (s.for_model, s.against_model)}),
            )
        )
    written.update(_write_debates(folder, pages))
    del pages
    table = env.get_template("site_debates.html.j2")
    for run in runs:
        for page in range(1, run.pages + 1):
            rows = run.debates[(page - 1) * PAGE_SIZE : page * PAGE_SIZE]
            write(
                f"runs/{page_name(run.run_id)}/debates-{page}.html",
                table.render(run=run, rows=rows, page=page, root="../../"),
            )
    model_page = env.get_template("site_model.html.j2")
    for record in records.values():
        write(model_href(record.name), model_page.render(m=record, root="../"))
    write(
        "index.html",
        env.get_template("site_runs.html.j2").render(runs=runs, models=sorted(records), root=""),
    )
    largest = max(written.items(), key=lambda item: item[1])
    return SiteStats(
        runs=len(runs),
        debates=sum(len(r.debates) for r in runs),
        files=len(written),
        bytes=sum(written.values()),
        largest=largest,
    )
